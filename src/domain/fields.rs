//! Identifiers sent by clients: account URL, e-mail, user id. Each is trimmed, bounded
//! and carries the normalised key used for matching (contract §3, §8).

use super::ParameterError;

/// Longest `credentials/accountUrl`, in characters.
pub const MAX_ACCOUNT_URL_CHARS: usize = 2048;
/// Longest `credentials/email`, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest `userId`, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;

/// Trims `raw`, then checks it is non-empty, within `max` characters and free of
/// control characters.
fn bounded(parameter: &'static str, raw: &str, max: usize) -> Result<String, ParameterError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ParameterError::new(
            parameter,
            format!("{parameter} is empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(ParameterError::new(
            parameter,
            format!("{parameter} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ParameterError::new(
            parameter,
            format!("{parameter} contains control characters"),
        ));
    }
    Ok(value.to_string())
}

/// The account's URL; accounts match ignoring scheme, case and a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUrl {
    value: String,
    key: String,
}

impl AccountUrl {
    pub fn parse(parameter: &'static str, raw: &str) -> Result<Self, ParameterError> {
        let value = bounded(parameter, raw, MAX_ACCOUNT_URL_CHARS)?;
        if value.chars().any(char::is_whitespace) {
            return Err(ParameterError::new(
                parameter,
                format!("{parameter} contains white space"),
            ));
        }
        let key = Self::key_of(&value);
        if key.is_empty() {
            return Err(ParameterError::new(
                parameter,
                format!("{parameter} has no host"),
            ));
        }
        Ok(AccountUrl { value, key })
    }

    /// The matching key: lower-cased, without `scheme://` and trailing slashes.
    pub fn key_of(url: &str) -> String {
        let lower = url.trim().to_lowercase();
        let without_scheme = match lower.find("://") {
            Some(i) => &lower[i + 3..],
            None => lower.as_str(),
        };
        without_scheme.trim_end_matches('/').to_string()
    }

    /// The account a caller addresses by the request's host (WS-Security, REST): the
    /// host name without a port and a trailing dot, so `myaccount.example.com:8443` and
    /// `myaccount.example.com.` name `http://myaccount.example.com`.
    pub fn from_host(parameter: &'static str, host: &str) -> Result<Self, ParameterError> {
        AccountUrl::parse(parameter, host_name(host))
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// An e-mail address; e-mails match ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    value: String,
    key: String,
}

impl Email {
    pub fn parse(parameter: &'static str, raw: &str) -> Result<Self, ParameterError> {
        let value = bounded(parameter, raw, MAX_EMAIL_CHARS)?;
        let well_formed = match value.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && !domain.is_empty() && !value.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if !well_formed {
            return Err(ParameterError::new(
                parameter,
                format!("{parameter} is not an e-mail address"),
            ));
        }
        let key = Self::key_of(&value);
        Ok(Email { value, key })
    }

    pub fn key_of(email: &str) -> String {
        email.trim().to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The host name of a `Host` header value, without a port and a trailing dot.
fn host_name(host: &str) -> &str {
    let without_port = match host.rsplit_once(':') {
        // `[::1]:8080` or `name:8080`; a bare IPv6 literal has no brackets to end at.
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    without_port.trim_end_matches('.')
}

/// The id of the user whose password is to change, as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub fn parse(parameter: &'static str, raw: &str) -> Result<Self, ParameterError> {
        bounded(parameter, raw, MAX_USER_ID_CHARS).map(UserId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_urls_match_ignoring_scheme_case_and_trailing_slash() {
        let key = AccountUrl::key_of("http://MyAccount.ispringlearn.com");
        assert_eq!(
            AccountUrl::key_of("https://myaccount.ispringlearn.com/"),
            key
        );
        assert_eq!(AccountUrl::key_of("myaccount.ispringlearn.com"), key);
        assert_ne!(AccountUrl::key_of("other.ispringlearn.com"), key);
    }

    #[test]
    fn fields_are_trimmed_and_bounded() {
        assert_eq!(UserId::parse("userId", "  u-1 \n").unwrap().as_str(), "u-1");
        assert!(UserId::parse("userId", "   ").is_err());
        assert!(UserId::parse("userId", &"x".repeat(129)).is_err());
        assert!(UserId::parse("userId", &"é".repeat(128)).is_ok());
        assert!(Email::parse("credentials/email", "no-at-sign").is_err());
        assert!(Email::parse("credentials/email", &format!("{}@x.io", "a".repeat(250))).is_err());
        let e = Email::parse("credentials/email", " Admin@Example.COM ").unwrap();
        assert_eq!(e.key(), "admin@example.com");
    }

    #[test]
    fn a_token_account_is_the_host_name_without_port_or_trailing_dot() {
        assert_eq!(host_name("Tenant.Example.com:8443"), "Tenant.Example.com");
        assert_eq!(host_name("tenant.example.com."), "tenant.example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("tenant.example.com"), "tenant.example.com");
    }
}
