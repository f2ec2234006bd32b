//! An account's password policy (contract §6) and the rules that need no hashing.

use super::{Email, Password, Violation};

/// Per-account password rules; the defaults are the contract's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: u32,
    pub max_length: u32,
    pub forbid_email: bool,
    pub forbid_common: bool,
    pub history: u32,
    pub self_service: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 10,
            max_length: 128,
            forbid_email: true,
            forbid_common: true,
            history: 0,
            self_service: true,
        }
    }
}

/// zxcvbn score below which a password counts as "common or easily guessed":
/// 3 means it survives more than 10^8 guesses, zxcvbn's own recommended floor.
const MIN_ZXCVBN_SCORE: u8 = 3;

/// Local parts shorter than this are not searched for (contract §6).
const MIN_LOCAL_PART_CHARS: usize = 3;

impl PasswordPolicy {
    /// The rules that look only at the new password and the target's e-mail.
    /// `SAME_AS_CURRENT` and `REUSED` need the stored hashes and are checked by the service.
    pub fn check_text(&self, password: &Password, email: &str) -> Vec<Violation> {
        let mut violations = Vec::new();
        let chars = password.char_count();
        if chars < self.min_length as usize {
            violations.push(Violation::TooShort);
        }
        if chars > self.max_length as usize {
            violations.push(Violation::TooLong);
        }
        if self.forbid_email && contains_email(password.expose(), email) {
            violations.push(Violation::ContainsEmail);
        }
        if self.forbid_common && is_common(password.expose()) {
            violations.push(Violation::TooCommon);
        }
        violations
    }
}

fn contains_email(password: &str, email: &str) -> bool {
    let password = password.to_lowercase();
    let email = Email::key_of(email);
    if email.is_empty() {
        return false;
    }
    if password.contains(&email) {
        return true;
    }
    let local = email.rsplit_once('@').map_or("", |(local, _)| local);
    local.chars().count() >= MIN_LOCAL_PART_CHARS && password.contains(local)
}

/// zxcvbn's dictionaries (the leaked-password frequency lists, English words, names,
/// keyboard patterns, dates, sequences) decide what is common or easily guessed.
fn is_common(password: &str) -> bool {
    (zxcvbn::zxcvbn(password, &[]).score() as u8) < MIN_ZXCVBN_SCORE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pw: &str, email: &str) -> Vec<Violation> {
        PasswordPolicy::default().check_text(&Password::normalise(pw), email)
    }

    #[test]
    fn a_strong_password_passes() {
        assert!(check("vK7#pLq2!mZr9wX", "learner@example.com").is_empty());
    }

    #[test]
    fn every_violation_is_listed() {
        let v = check("learner", "learner@example.com");
        assert_eq!(
            v,
            vec![
                Violation::TooShort,
                Violation::ContainsEmail,
                Violation::TooCommon
            ]
        );
    }

    #[test]
    fn email_checks_are_case_insensitive_and_skip_short_local_parts() {
        assert!(
            check("xx-LEARNER@EXAMPLE.COM-xx", "learner@example.com")
                .contains(&Violation::ContainsEmail)
        );
        assert!(check("Zq!jo9#Lw2vR7xkT", "jo@example.com").is_empty());
    }

    #[test]
    fn common_passwords_are_refused() {
        for pw in ["password123", "qwertyuiop", "iloveyou12", "Password1!"] {
            assert!(check(pw, "a@b.c").contains(&Violation::TooCommon), "{pw}");
        }
    }

    #[test]
    fn lengths_count_code_points_after_nfkc() {
        let policy = PasswordPolicy {
            min_length: 4,
            max_length: 5,
            forbid_common: false,
            ..Default::default()
        };
        // five code points, ten bytes
        assert!(
            policy
                .check_text(&Password::normalise("ééééé"), "a@b.c")
                .is_empty()
        );
        assert_eq!(
            policy.check_text(&Password::normalise("éééééé"), "a@b.c"),
            vec![Violation::TooLong]
        );
    }
}
