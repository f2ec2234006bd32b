//! An account's password policy (contract §6) and the rules that need no hashing.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

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

/// The characters of a password zxcvbn scores: its first 16 (after separators are
/// taken out). zxcvbn's cost grows with the square of the length, times the l33t
/// substitutions it tries: a crafted 100-character password cost 0.5–1.3 s of CPU, 20–50
/// argon2 operations, for any caller allowed to change a password (issue 9). The worst
/// string found (every l33t character in turn) costs ~4 ms at 16 characters, a quarter
/// of an argon2 operation (~19 ms at 20, ~46 ms at 32): at 16, an admin keeps more than
/// half its change rate against eight connections of such changes on two cores (the
/// kit's "attacks" row; 46–48 % at 20 and 24). A password whose first 16 characters are
/// not guessable (zxcvbn: more than 10^8 guesses) is not guessable; one whose are
/// (`passwordpassword…`) is refused whatever follows, as zxcvbn itself stops at 100.
pub const MAX_SCORED_CHARS: usize = 16;

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
        let joined = without_separators(password.expose());
        if self.forbid_email && contains_email(&joined, email) {
            violations.push(Violation::ContainsEmail);
        }
        if self.forbid_common && is_common(&joined) {
            violations.push(Violation::TooCommon);
        }
        violations
    }
}

/// The password without what only separates its parts: control characters (`\n`,
/// `\t`…), invisible format characters (zero-width spaces and joiners, bidi marks, the
/// soft hyphen) and white space. zxcvbn's patterns do not match across them, so
/// `"12345\n12345"` or `"qwerty qwerty"` scored as strong while `"1234512345"` does
/// not; an attacker guessing the one guesses the other.
fn without_separators(password: &str) -> String {
    password
        .chars()
        .filter(|c| {
            !(c.is_control()
                || c.is_whitespace()
                || c.general_category() == GeneralCategory::Format)
        })
        .collect()
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
/// keyboard patterns, dates, sequences) decide what is common or easily guessed, on at
/// most [`MAX_SCORED_CHARS`] characters.
fn is_common(password: &str) -> bool {
    let scored: String = password.chars().take(MAX_SCORED_CHARS).collect();
    (zxcvbn::zxcvbn(&scored, &[]).score() as u8) < MIN_ZXCVBN_SCORE
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

    /// Issue 9: separators padded weak passwords past `TOO_COMMON`.
    #[test]
    fn separators_do_not_defeat_the_common_check() {
        for pw in [
            "\n\n\n\n\n\n\n\n\n\n",
            "12345\n12345",
            "qwerty\nqwerty",
            "qwerty qwerty",
            "pass\u{200b}word123",
            "password\tpassword",
            "1\u{0}2\u{0}3\u{0}4\u{0}5\u{0}6\u{0}7\u{0}8\u{0}9\u{0}0",
            "ab\u{00ad}cd\u{00ad}ef\u{00ad}gh\u{00ad}ij",
        ] {
            assert!(check(pw, "a@b.c").contains(&Violation::TooCommon), "{pw:?}");
        }
        // A strong password stays strong with spaces in it.
        assert!(check("correct horse battery staple", "a@b.c").is_empty());
        // And the e-mail is found across an invisible character.
        assert!(
            check("Zq!9learn\u{200b}er-xT7", "learner@example.com")
                .contains(&Violation::ContainsEmail)
        );
    }

    /// The strength check's cost is bounded: the worst string found (every l33t
    /// character in turn), at 4096 bytes, costs what its first 32 characters cost.
    #[test]
    fn the_strength_check_scores_a_bounded_prefix() {
        let l33t = "4@8({[<3!1|70$5%2+69";
        let long: String = l33t.chars().cycle().take(4096).collect();
        let prefix: String = long.chars().take(MAX_SCORED_CHARS).collect();
        assert_eq!(is_common(&long), is_common(&prefix));
        // A guessable prefix is refused whatever follows it.
        assert!(is_common(&format!("{}Zq!9xT7#kLm2", "password".repeat(4))));
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
