//! Reset by link (contract §11.4, §12): the request, its outcome, and the token.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{Credentials, ParameterError, Password, ServiceError, UserId};

/// Whom a reset reaches.
#[derive(Debug)]
pub enum ResetTargets {
    /// These users, in this order (no one twice).
    Users(Vec<UserId>),
    /// Every user of the caller's reach the caller may change (§5), the caller excepted.
    AllInScope,
}

/// Where the link goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// To the user only, in a `password_reset_requested` event (and its mail).
    #[default]
    Notify,
    /// Back to the caller, for a helpdesk to hand over (named users only).
    Return,
}

/// `ResetUserPasswords` / `POST /api/password-resets`.
#[derive(Debug)]
pub struct ResetRequest {
    pub credentials: Credentials,
    pub targets: ResetTargets,
    pub delivery: Delivery,
    /// The origin links start with (`--public-url`'s, else the request's).
    pub link_base: String,
}

/// A link issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLink {
    /// RFC 3339, UTC, to the second.
    pub expires_at: String,
    /// Only with `delivery=return`.
    pub link: Option<String>,
}

/// How one user's reset went.
#[derive(Debug)]
pub struct ResetItem {
    pub user_id: String,
    pub result: Result<IssuedLink, ServiceError>,
}

/// The answer of a reset: the items (named users; with `allInScope` only the skipped
/// ones) and the counts.
#[derive(Debug)]
pub struct ResetOutcome {
    pub items: Vec<ResetItem>,
    pub reset: usize,
    pub skipped: usize,
}

/// Setting a password with a reset link (the form, `POST /api/password-resets/{token}`).
#[derive(Debug)]
pub struct LinkChangeRequest {
    pub token: ResetToken,
    pub new_password: Password,
}

/// Whom a reset names: exactly one of a list of users (1 to `batch_max`, none twice)
/// and `allInScope` (contract §11.4: else a wrong `userId`, as `users_parameter` names it).
pub fn reset_targets(
    users: Option<Vec<String>>,
    all_in_scope: bool,
    batch_max: usize,
    users_parameter: &'static str,
) -> Result<ResetTargets, ParameterError> {
    match (users, all_in_scope) {
        (Some(users), false) if !users.is_empty() => {
            if users.len() > batch_max {
                return Err(ParameterError::new(
                    users_parameter,
                    format!("a reset names at most {batch_max} users"),
                ));
            }
            let mut seen = std::collections::HashSet::new();
            let mut ids = Vec::with_capacity(users.len());
            for user in &users {
                let id = UserId::parse(users_parameter, user)?;
                if !seen.insert(id.as_str().to_string()) {
                    return Err(ParameterError::new(
                        users_parameter,
                        "a userId is named twice",
                    ));
                }
                ids.push(id);
            }
            Ok(ResetTargets::Users(ids))
        }
        (None, true) => Ok(ResetTargets::AllInScope),
        (Some(users), true) if !users.is_empty() => Err(ParameterError::new(
            users_parameter,
            "name the users to reset, or send allInScope, not both",
        )),
        // `allInScope` false (or no target at all) is the same as sending nothing.
        _ => Err(ParameterError::new(
            users_parameter,
            "name the users to reset, or send allInScope true",
        )),
    }
}

/// `delivery`: `notify` (the default) or `return`, which is not for `allInScope`.
pub fn delivery(
    sent: Option<&str>,
    targets: &ResetTargets,
    parameter: &'static str,
) -> Result<Delivery, ParameterError> {
    let delivery = match sent.map(str::trim) {
        None | Some("notify") => Delivery::Notify,
        Some("return") => Delivery::Return,
        Some(_) => {
            return Err(ParameterError::new(
                parameter,
                format!("{parameter} is notify or return"),
            ));
        }
    };
    if delivery == Delivery::Return && matches!(targets, ResetTargets::AllInScope) {
        return Err(ParameterError::new(
            parameter,
            "links of allInScope go to the users only (delivery=notify)",
        ));
    }
    Ok(delivery)
}

/// A reset link's token: 256 bits from the OS's CSPRNG, URL-safe base64. Only its
/// SHA-256 is stored; its `Debug` shows nothing.
pub struct ResetToken(String);

impl std::fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetToken([redacted])")
    }
}

impl ResetToken {
    /// A fresh token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        ResetToken(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as sent back in a link (its text is only ever hashed).
    pub fn from_link(text: &str) -> Self {
        ResetToken(text.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What is stored and looked up.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl Drop for ResetToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}
