//! The single error type of the operations, and what a call's outcome is recorded as.
//! Each front door (`soap::fault`, `rest::problem`) maps each variant to one answer.

use std::fmt;

/// Why an operation did not succeed. Each variant is exactly one SOAP fault and one
/// REST problem; the front doors map it in one function each.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A parameter is missing, malformed or breaks the password policy.
    #[error("wrong parameters: {0}")]
    WrongParameters(ParameterError),
    /// The caller could not be signed in. What went wrong is for the audit trail only:
    /// every kind is answered alike (see [`AuthFailure::message`]).
    #[error("authentication failed ({0:?})")]
    AuthenticationFailed(AuthFailure),
    /// `userId` names no user of the caller's account.
    #[error("unknown user")]
    UnknownUser,
    /// The caller may not change this user's password.
    #[error("permission denied: {0}")]
    PermissionDenied(DenyReason),
    /// No hashing slot became free in time; the client should retry later.
    #[error("server busy")]
    ServerBusy,
    /// A reset link that is unknown, expired, spent or dead (contract §12): one answer
    /// for all.
    #[error("reset link no longer valid")]
    LinkInvalid,
    /// Anything unexpected (database, thread pool). Kept for the log only: the caller is
    /// told nothing about it.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be reached now (contract §15): a `soap:Server` fault, REST
    /// 503. Like [`ServiceError::Internal`], the cause is for the log only.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a sign-in failed. A domain rule (contract §4, §10): a lockout looks exactly like
/// a wrong password, so that it tells an attacker nothing about which e-mails exist or
/// how close a pair is to its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Unknown account or e-mail, wrong password, or a caller who may not sign in.
    Credentials,
    /// The (account, e-mail) pair or the client address is locked (contract §10).
    LockedOut,
    /// A WS-Security token type whose password cannot be checked (PasswordDigest needs
    /// the plaintext on the server; only argon2id hashes are stored).
    UnsupportedToken,
}

impl AuthFailure {
    /// What the caller is told: the same for a lockout as for a wrong password.
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Credentials | AuthFailure::LockedOut => {
                "The account, e-mail or password is wrong, or the caller may not sign in."
            }
            AuthFailure::UnsupportedToken => {
                "WS-Security PasswordDigest tokens (and any password type but PasswordText) are not \
                 supported: passwords are stored only as argon2id hashes, so a digest cannot be \
                 checked. Send a PasswordText token over TLS, or credentials in the Body."
            }
        }
    }
}

/// What an audit row, a refused-call counter and the access log record as a call's
/// outcome. Stored as its [`Outcome::as_str`] text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    WrongParameters,
    AuthenticationFailed,
    UnknownUser,
    PermissionDenied,
    ServerBusy,
    LinkInvalid,
    Internal,
    /// A pair or address lock started.
    Lockout,
    /// An operator lifted a lock.
    Unlocked,
    /// Refused before it was read as a request, for the reason the front door names
    /// (`NOT_XML`, `TOO_LARGE`, …).
    Refused(&'static str),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "OK",
            Outcome::WrongParameters => "WRONG_PARAMETERS",
            Outcome::AuthenticationFailed => "AUTHENTICATION_FAILED",
            Outcome::UnknownUser => "UNKNOWN_USER",
            Outcome::PermissionDenied => "PERMISSION_DENIED",
            Outcome::ServerBusy => "SERVER_BUSY",
            Outcome::LinkInvalid => "LINK_INVALID",
            Outcome::Internal => "INTERNAL",
            Outcome::Lockout => "LOCKOUT",
            Outcome::Unlocked => "UNLOCKED",
            Outcome::Refused(code) => code,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ServiceError {
    /// The stable outcome written to the log line and the audit trail.
    pub fn outcome(&self) -> Outcome {
        match self {
            ServiceError::WrongParameters(_) => Outcome::WrongParameters,
            ServiceError::AuthenticationFailed(_) => Outcome::AuthenticationFailed,
            ServiceError::UnknownUser => Outcome::UnknownUser,
            ServiceError::PermissionDenied(_) => Outcome::PermissionDenied,
            ServiceError::ServerBusy => Outcome::ServerBusy,
            ServiceError::LinkInvalid => Outcome::LinkInvalid,
            ServiceError::Internal(_) | ServiceError::Unavailable(_) => Outcome::Internal,
        }
    }

    /// A machine-readable refinement for the audit trail (`TOO_SHORT,TOO_COMMON`, a deny reason).
    pub fn audit_detail(&self) -> Option<String> {
        match self {
            ServiceError::WrongParameters(p) => Some(if p.violations.is_empty() {
                p.parameter.to_string()
            } else {
                let ids: Vec<&str> = p.violations.iter().map(|v| v.id()).collect();
                format!("{}:{}", p.parameter, ids.join(","))
            }),
            ServiceError::PermissionDenied(r) => Some(r.id().to_string()),
            ServiceError::AuthenticationFailed(AuthFailure::UnsupportedToken) => {
                Some("UNSUPPORTED_TOKEN".to_string())
            }
            ServiceError::AuthenticationFailed(AuthFailure::LockedOut) => {
                Some("LOCKED_OUT".to_string())
            }
            _ => None,
        }
    }

    /// The human sentence every front door sends: never a secret, never internal.
    pub fn message(&self) -> std::borrow::Cow<'static, str> {
        match self {
            ServiceError::WrongParameters(p) => p.message.clone().into(),
            ServiceError::AuthenticationFailed(why) => why.message().into(),
            ServiceError::UnknownUser => {
                "No user with this userId exists in the caller's account.".into()
            }
            ServiceError::PermissionDenied(reason) => format!(
                "The caller may not change this user's password: {}.",
                reason.describe()
            )
            .into(),
            ServiceError::ServerBusy => "The service is at capacity; retry shortly.".into(),
            ServiceError::LinkInvalid => {
                "This link is no longer valid: it is unknown, expired or already used, or a \
                 newer one was sent. Ask for a new one."
                    .into()
            }
            ServiceError::Internal(_) => "Internal error".into(),
            ServiceError::Unavailable(_) => {
                "The service cannot reach its database; retry shortly.".into()
            }
        }
    }

    /// Decided before any password was checked (shed, or locked): audited in aggregate,
    /// so that a flood of them costs a counter, not a row each.
    pub fn is_cheap_refusal(&self) -> bool {
        matches!(
            self,
            ServiceError::ServerBusy | ServiceError::AuthenticationFailed(AuthFailure::LockedOut)
        )
    }

    pub(crate) fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ServiceError::Internal(e.into())
    }
}

impl From<ParameterError> for ServiceError {
    fn from(e: ParameterError) -> Self {
        ServiceError::WrongParameters(e)
    }
}

/// Which parameter is wrong, and (for passwords) every policy rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterError {
    /// The parameter's path as the client knows it: `password`, `credentials/email`, …
    pub parameter: &'static str,
    /// A human sentence; never contains a secret or echoes input.
    pub message: String,
    /// Policy rule ids, in a stable order; empty for structural problems.
    pub violations: Vec<Violation>,
}

impl ParameterError {
    pub fn new(parameter: &'static str, message: impl Into<String>) -> Self {
        ParameterError {
            parameter,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    /// `parameter` was not sent.
    pub fn missing(parameter: &'static str) -> Self {
        ParameterError::new(parameter, format!("{parameter} is missing"))
    }
}

impl fmt::Display for ParameterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.parameter, self.message)
    }
}

/// A password-policy rule the new password breaks (contract §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Violation {
    TooShort,
    TooLong,
    SameAsCurrent,
    ContainsEmail,
    TooCommon,
    Reused,
    ConfirmMismatch,
}

impl Violation {
    pub fn id(self) -> &'static str {
        match self {
            Violation::TooShort => "TOO_SHORT",
            Violation::TooLong => "TOO_LONG",
            Violation::SameAsCurrent => "SAME_AS_CURRENT",
            Violation::ContainsEmail => "CONTAINS_EMAIL",
            Violation::TooCommon => "TOO_COMMON",
            Violation::Reused => "REUSED",
            Violation::ConfirmMismatch => "CONFIRM_MISMATCH",
        }
    }

    /// Human wording used to build the fault's `message`.
    pub fn describe(self) -> &'static str {
        match self {
            Violation::TooShort => "is shorter than the policy's minimum length",
            Violation::TooLong => "is longer than the policy's maximum length",
            Violation::SameAsCurrent => "is the same as the current password",
            Violation::ContainsEmail => "contains the user's e-mail address",
            Violation::TooCommon => "is a common or easily guessed password",
            Violation::Reused => "was used recently",
            Violation::ConfirmMismatch => "does not match passwordConfirm",
        }
    }
}

/// Why the permission rules (contract §5) refuse a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    NotInScope,
    OutranksCaller,
    UserDeactivated,
    ExternallyManaged,
    SelfServiceDisabled,
    /// The caller's own password is temporary: they may only change it, or read their
    /// own status, until they do (contract §11.1).
    PasswordChangeRequired,
}

impl DenyReason {
    pub fn id(self) -> &'static str {
        match self {
            DenyReason::NotInScope => "NOT_IN_SCOPE",
            DenyReason::OutranksCaller => "OUTRANKS_CALLER",
            DenyReason::UserDeactivated => "USER_DEACTIVATED",
            DenyReason::ExternallyManaged => "EXTERNALLY_MANAGED",
            DenyReason::SelfServiceDisabled => "SELF_SERVICE_DISABLED",
            DenyReason::PasswordChangeRequired => "PASSWORD_CHANGE_REQUIRED",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            DenyReason::NotInScope => "the user is outside the departments the caller manages",
            DenyReason::OutranksCaller => "the user's role or reach is wider than the caller's",
            DenyReason::UserDeactivated => "the user is deactivated",
            DenyReason::ExternallyManaged => {
                "the user's password is managed by an external directory"
            }
            DenyReason::SelfServiceDisabled => {
                "the account does not allow users to change their own password"
            }
            DenyReason::PasswordChangeRequired => {
                "the caller's password is temporary and must be changed first"
            }
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}
