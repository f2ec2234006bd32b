//! Wire structs of `UpdateUserPasswordRequest` and their decoding from the operation's
//! element subtree, then conversion into the domain request.
//!
//! Decoding is hand-written rather than serde-derived because the contract needs what
//! serde's XML mapping cannot say precisely: a field given twice or holding elements is a
//! `WrongParametersFault` naming that field, and children count only in the `api`
//! namespace or in none (unqualified JAX-WS stubs), while unknown elements are ignored.

use secrecy::{ExposeSecret, SecretString};

use super::API_NS;
use super::envelope::{Element, WSSE_NS};
use crate::domain::{
    AccountUrl, Credentials, Email, ParameterError, Password, ServiceError, UpdatePasswordRequest,
    UserId, Violation,
};

/// The request's fields, by parameter path, in document order. A test checks the
/// published XSD declares exactly these.
pub const REQUEST_FIELDS: &[&str] = &[
    "credentials",
    "credentials/accountUrl",
    "credentials/email",
    "credentials/password",
    "userId",
    "password",
    "passwordConfirm",
];

/// `<credentials>` as sent.
#[derive(Debug)]
pub struct CredentialsWire {
    pub account_url: Option<String>,
    pub email: Option<String>,
    pub password: Option<SecretString>,
}

/// `<UpdateUserPasswordRequest>` as sent: each field present at most once, as text.
#[derive(Debug)]
pub struct UpdateUserPasswordWire {
    pub credentials: Option<CredentialsWire>,
    pub user_id: Option<String>,
    pub password: Option<SecretString>,
    pub password_confirm: Option<SecretString>,
}

/// How a WS-Security UsernameToken carries the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPasswordType {
    /// `#PasswordText` (or no `Type`): the password itself.
    Text,
    /// `#PasswordDigest` or anything else: cannot be checked against an argon2id hash.
    Unsupported,
}

/// `wsse:Security/wsse:UsernameToken` as sent.
#[derive(Debug)]
pub struct UsernameTokenWire {
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub password_type: TokenPasswordType,
}

/// What the HTTP layer knows that the message does not: the account a WS-Security
/// caller addresses is the one whose URL is the request's host.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    /// The `Host` header (or `X-Forwarded-Host` behind a trusted proxy).
    pub host: Option<String>,
}

/// True for children that count as fields: in `api` or in no namespace.
fn ours(e: &Element) -> bool {
    matches!(e.ns.as_deref(), None | Some(API_NS))
}

/// True for WS-Security elements.
fn wsse(e: &Element) -> bool {
    e.ns.as_deref() == Some(WSSE_NS)
}

/// Takes the single child named `local` that `accept` admits, refusing duplicates.
fn take_one_where(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
    accept: fn(&Element) -> bool,
) -> Result<Option<Element>, ParameterError> {
    let mut found = None;
    let mut i = 0;
    while i < parent.children.len() {
        if accept(&parent.children[i]) && parent.children[i].local == local {
            let e = parent.children.swap_remove(i);
            if found.is_some() {
                return Err(ParameterError::new(
                    parameter,
                    format!("{parameter} is given more than once"),
                ));
            }
            found = Some(e);
        } else {
            i += 1;
        }
    }
    Ok(found)
}

/// Takes the single field named `local` (in `api` or no namespace), refusing duplicates.
fn take_one(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
) -> Result<Option<Element>, ParameterError> {
    take_one_where(parent, local, parameter, ours)
}

/// Takes a text field: present at most once, holding no elements.
fn take_text(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
) -> Result<Option<String>, ParameterError> {
    text_of(take_one(parent, local, parameter)?, parameter)
}

fn text_of(
    element: Option<Element>,
    parameter: &'static str,
) -> Result<Option<String>, ParameterError> {
    match element {
        None => Ok(None),
        Some(e) if !e.children.is_empty() => Err(ParameterError::new(
            parameter,
            format!("{parameter} holds elements instead of text"),
        )),
        Some(mut e) => Ok(Some(std::mem::take(&mut e.text))),
    }
}

impl UpdateUserPasswordWire {
    /// Decodes the operation element's subtree.
    pub fn decode(mut op: Element) -> Result<Self, ParameterError> {
        let credentials = match take_one(&mut op, "credentials", "credentials")? {
            None => None,
            Some(mut c) => {
                if c.has_text() {
                    return Err(ParameterError::new(
                        "credentials",
                        "credentials holds text instead of elements",
                    ));
                }
                Some(CredentialsWire {
                    account_url: take_text(&mut c, "accountUrl", "credentials/accountUrl")?,
                    email: take_text(&mut c, "email", "credentials/email")?,
                    password: take_text(&mut c, "password", "credentials/password")?
                        .map(SecretString::from),
                })
            }
        };
        Ok(UpdateUserPasswordWire {
            credentials,
            user_id: take_text(&mut op, "userId", "userId")?,
            password: take_text(&mut op, "password", "password")?.map(SecretString::from),
            password_confirm: take_text(&mut op, "passwordConfirm", "passwordConfirm")?
                .map(SecretString::from),
        })
    }

    /// Converts into the domain request, checking presence and bounds in the order of
    /// the contract's parameter list, then `passwordConfirm`. Body `credentials` take
    /// precedence over a WS-Security token; a token's account is the request's host.
    pub fn into_domain(
        self,
        token: Option<UsernameTokenWire>,
        origin: &RequestOrigin,
    ) -> Result<UpdatePasswordRequest, ServiceError> {
        let mut unsupported_token = false;
        let credentials = match (self.credentials, token) {
            (Some(c), _) => {
                let account_url = c
                    .account_url
                    .ok_or_else(|| missing("credentials/accountUrl"))?;
                let account_url = AccountUrl::parse("credentials/accountUrl", &account_url)?;
                let email = c.email.ok_or_else(|| missing("credentials/email"))?;
                let email = Email::parse("credentials/email", &email)?;
                let password = c.password.ok_or_else(|| missing("credentials/password"))?;
                let password = Password::parse("credentials/password", password.expose_secret())?;
                Credentials {
                    account_url,
                    email,
                    password,
                }
            }
            (None, Some(t)) => {
                let email = t.username.ok_or_else(|| missing(TOKEN_USERNAME))?;
                let email = Email::parse(TOKEN_USERNAME, &email)?;
                let password = t.password.ok_or_else(|| missing(TOKEN_PASSWORD))?;
                let password = Password::parse(TOKEN_PASSWORD, password.expose_secret())?;
                let host = origin.host.as_deref().ok_or_else(|| {
                    ParameterError::new(
                        "credentials",
                        "credentials are missing and the request names no host",
                    )
                })?;
                let account_url = AccountUrl::parse("credentials", host_name(host))?;
                unsupported_token = t.password_type == TokenPasswordType::Unsupported;
                Credentials {
                    account_url,
                    email,
                    password,
                }
            }
            (None, None) => return Err(missing("credentials").into()),
        };
        let user_id = self.user_id.ok_or_else(|| missing("userId"))?;
        let user_id = UserId::parse("userId", &user_id)?;
        let new_password = self.password.ok_or_else(|| missing("password"))?;
        let new_password = Password::parse("password", new_password.expose_secret())?;
        if let Some(confirm) = self.password_confirm {
            // Compared after NFKC normalisation, like every password comparison.
            let confirm = Password::normalise(confirm.expose_secret());
            if !confirm.matches(&new_password) {
                return Err(ParameterError {
                    parameter: "passwordConfirm",
                    message: "passwordConfirm does not match password".into(),
                    violations: vec![Violation::ConfirmMismatch],
                }
                .into());
            }
        }
        // Parameters are all well-formed; a token we cannot verify fails authentication.
        if unsupported_token {
            return Err(ServiceError::UnsupportedToken);
        }
        Ok(UpdatePasswordRequest {
            credentials,
            user_id,
            new_password,
        })
    }
}

/// The host name of a `Host` header value: without a port and a trailing dot, so
/// `myaccount.example.com:8443` and `myaccount.example.com.` name the account
/// `http://myaccount.example.com`.
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

const TOKEN_USERNAME: &str = "Security/UsernameToken/Username";
const TOKEN_PASSWORD: &str = "Security/UsernameToken/Password";
const PASSWORD_TEXT: &str = "#PasswordText";

fn missing(parameter: &'static str) -> ParameterError {
    ParameterError::new(parameter, format!("{parameter} is missing"))
}

impl UsernameTokenWire {
    /// Decodes the `wsse:Security` header block; `None` when it holds no UsernameToken
    /// (a Timestamp-only header, say).
    pub fn decode(mut security: Element) -> Result<Option<Self>, ParameterError> {
        let Some(mut token) = take_one_where(
            &mut security,
            "UsernameToken",
            "Security/UsernameToken",
            wsse,
        )?
        else {
            return Ok(None);
        };
        let username = text_of(
            take_one_where(&mut token, "Username", TOKEN_USERNAME, wsse)?,
            TOKEN_USERNAME,
        )?;
        let password = take_one_where(&mut token, "Password", TOKEN_PASSWORD, wsse)?;
        let password_type = match password.as_ref().and_then(|p| p.attribute("Type")) {
            None => TokenPasswordType::Text,
            Some(t) if t.trim().ends_with(PASSWORD_TEXT) => TokenPasswordType::Text,
            Some(_) => TokenPasswordType::Unsupported,
        };
        let password = text_of(password, TOKEN_PASSWORD)?.map(SecretString::from);
        Ok(Some(UsernameTokenWire {
            username,
            password,
            password_type,
        }))
    }
}

/// Decodes and converts the operation element (and the WS-Security header, if any) in one step.
pub fn decode_update_password(
    op: Element,
    security: Option<Element>,
    origin: &RequestOrigin,
) -> Result<UpdatePasswordRequest, ServiceError> {
    let wire = UpdateUserPasswordWire::decode(op)?;
    // Body credentials take precedence: then the token is not read at all, so a token
    // the middleware got wrong cannot fail a call that authenticates in the Body.
    let token = match security {
        Some(s) if wire.credentials.is_none() => UsernameTokenWire::decode(s)?,
        _ => None,
    };
    wire.into_domain(token, origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{Limits, Operation, parse_envelope};

    fn decode_with(header: &str, body: &str) -> Result<UpdatePasswordRequest, ServiceError> {
        let doc = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header>{header}</e:Header><e:Body>
               <a:UpdateUserPasswordRequest xmlns:a="{API_NS}">{body}</a:UpdateUserPasswordRequest>
               </e:Body></e:Envelope>"#
        );
        let env = parse_envelope(&doc, &Limits::default()).unwrap();
        let Operation::UpdateUserPassword(op) = env.operation;
        let origin = RequestOrigin {
            host: Some("Tenant.Example.com".into()),
        };
        decode_update_password(op, env.security, &origin)
    }

    fn decode(body: &str) -> Result<UpdatePasswordRequest, ParameterError> {
        decode_with("", body).map_err(|e| match e {
            ServiceError::WrongParameters(p) => p,
            other => panic!("{other:?}"),
        })
    }

    fn token(password_type: &str) -> String {
        format!(
            r#"<wsse:Security xmlns:wsse="{WSSE_NS}" e:mustUnderstand="1"><wsse:UsernameToken>
                 <wsse:Username>caller@example.com</wsse:Username>
                 <wsse:Password{password_type}>token-pw</wsse:Password>
               </wsse:UsernameToken></wsse:Security>"#
        )
    }

    #[test]
    fn a_username_token_authenticates_when_the_body_has_no_credentials() {
        let r = decode_with(&token(""), "<userId>u</userId><password>new</password>").unwrap();
        assert_eq!(r.credentials.email.as_str(), "caller@example.com");
        assert_eq!(r.credentials.password.expose(), "token-pw");
        assert_eq!(r.credentials.account_url.key(), "tenant.example.com");
        let text = format!(
            r#" Type="{}#PasswordText""#,
            "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
        );
        assert!(decode_with(&token(&text), "<userId>u</userId><password>new</password>").is_ok());
    }

    #[test]
    fn a_token_account_is_the_host_name_without_port_or_trailing_dot() {
        assert_eq!(host_name("Tenant.Example.com:8443"), "Tenant.Example.com");
        assert_eq!(host_name("tenant.example.com."), "tenant.example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("tenant.example.com"), "tenant.example.com");
    }

    #[test]
    fn body_credentials_take_precedence_over_a_token() {
        let r = decode_with(
            &token(""),
            &format!("{CREDS}<userId>u</userId><password>new</password>"),
        )
        .unwrap();
        assert_eq!(r.credentials.email.as_str(), "a@b.c");
    }

    #[test]
    fn a_password_digest_token_is_unsupported_after_parameters_are_checked() {
        let digest = r#" Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest""#;
        let e =
            decode_with(&token(digest), "<userId>u</userId><password>new</password>").unwrap_err();
        assert!(matches!(e, ServiceError::UnsupportedToken), "{e:?}");
        let e = decode_with(&token(digest), "<password>new</password>").unwrap_err();
        assert!(
            matches!(e, ServiceError::WrongParameters(ref p) if p.parameter == "userId"),
            "{e:?}"
        );
    }

    const CREDS: &str = "<credentials><accountUrl>http://a</accountUrl><email>a@b.c</email><password>pw</password></credentials>";

    #[test]
    fn unqualified_children_are_fields_foreign_ones_are_ignored() {
        let r = decode(&format!("{CREDS}<userId>u</userId><password>new</password><x:password xmlns:x='urn:x'>other</x:password><extra/>")).unwrap();
        assert_eq!(r.user_id.as_str(), "u");
        assert_eq!(r.new_password.expose(), "new");
    }

    #[test]
    fn duplicates_and_child_elements_name_the_field() {
        let e = decode(&format!(
            "{CREDS}<userId>u</userId><password>a</password><password>b</password>"
        ))
        .unwrap_err();
        assert_eq!(e.parameter, "password");
        let e = decode(&format!(
            "{CREDS}<userId><b>u</b></userId><password>a</password>"
        ))
        .unwrap_err();
        assert_eq!(e.parameter, "userId");
        let e = decode(
            "<credentials><accountUrl>x</accountUrl><accountUrl>y</accountUrl></credentials>",
        )
        .unwrap_err();
        assert_eq!(e.parameter, "credentials/accountUrl");
    }

    #[test]
    fn missing_fields_and_confirmation() {
        assert_eq!(
            decode(&format!("{CREDS}<password>a</password>"))
                .unwrap_err()
                .parameter,
            "userId"
        );
        let e = decode(&format!(
            "{CREDS}<userId>u</userId><password>a</password><passwordConfirm>b</passwordConfirm>"
        ))
        .unwrap_err();
        assert_eq!(
            (e.parameter, e.violations),
            ("passwordConfirm", vec![Violation::ConfirmMismatch])
        );
    }
}
