//! Passwords as they travel through the service: NFKC-normalised once, at parse time,
//! and held as a `SecretString` so they cannot reach a log line by accident.

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use super::ParameterError;

/// Longest password accepted on the wire, in bytes as sent (the policy's own maximum,
/// in code points, is checked later as `TOO_LONG`).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// A password, NFKC-normalised so the same password typed on two keyboards matches.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Takes the password exactly as sent: no trimming, only NFKC normalisation.
    pub fn parse(parameter: &'static str, raw: &str) -> Result<Self, ParameterError> {
        if raw.is_empty() {
            return Err(ParameterError::new(
                parameter,
                format!("{parameter} is empty"),
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(ParameterError::new(
                parameter,
                format!("{parameter} is longer than {MAX_PASSWORD_BYTES} bytes"),
            ));
        }
        Ok(Password::normalise(raw))
    }

    /// Normalises without the wire bounds (provisioning file, tests).
    pub fn normalise(raw: &str) -> Self {
        Password(SecretString::from(raw.nfkc().collect::<String>()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Length in code points after normalisation, as the policy counts it.
    pub fn char_count(&self) -> usize {
        self.expose().chars().count()
    }

    /// Constant-time comparison of two normalised passwords.
    pub fn matches(&self, other: &Password) -> bool {
        let (a, b) = (self.expose().as_bytes(), other.expose().as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_trimmed_but_are_nfkc_normalised() {
        assert_eq!(Password::parse("password", " a ").unwrap().expose(), " a ");
        // U+FF21 FULLWIDTH A normalises to A; "ﬁ" ligature to "fi".
        let p = Password::parse("password", "\u{FF21}\u{FB01}").unwrap();
        assert_eq!(p.expose(), "Afi");
        assert_eq!(p.char_count(), 3);
        // precomposed and decomposed é are the same password
        let a = Password::parse("password", "caf\u{e9}").unwrap();
        let b = Password::parse("password", "cafe\u{301}").unwrap();
        assert!(a.matches(&b));
    }

    #[test]
    fn wire_bounds_are_bytes_as_sent() {
        assert!(Password::parse("password", "").is_err());
        assert!(Password::parse("password", &"a".repeat(4096)).is_ok());
        assert!(Password::parse("password", &"a".repeat(4097)).is_err());
        assert!(Password::parse("password", &"é".repeat(2049)).is_err());
    }

    #[test]
    fn debug_output_is_redacted() {
        let p = Password::parse("password", "hunter2-secret").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
