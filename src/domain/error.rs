//! The single error type of the operation; `soap::fault` maps each variant to one fault.

use std::fmt;

/// Why the operation did not succeed. Each variant is exactly one SOAP fault.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A parameter is missing, malformed or breaks the password policy.
    #[error("wrong parameters: {0}")]
    WrongParameters(ParameterError),
    /// Unknown account or e-mail, wrong password, caller deactivated or locked out.
    /// Deliberately carries no detail: the caller must not learn which one it was.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The (account, e-mail) pair or the client address is locked after repeated
    /// failures (contract §10): answered exactly like `AuthenticationFailed`.
    #[error("locked out")]
    LockedOut,
    /// A WS-Security token type whose password cannot be checked (PasswordDigest needs
    /// the plaintext on the server; only argon2id hashes are stored).
    #[error("unsupported WS-Security token type")]
    UnsupportedToken,
    /// `userId` names no user of the caller's account.
    #[error("unknown user")]
    UnknownUser,
    /// The caller may not change this user's password.
    #[error("permission denied: {0}")]
    PermissionDenied(DenyReason),
    /// No hashing slot became free in time; the client should retry later.
    #[error("server busy")]
    ServerBusy,
    /// Anything unexpected (database, thread pool). The text is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// The stable outcome code written to the log line and the audit trail.
    pub fn outcome_code(&self) -> &'static str {
        match self {
            ServiceError::WrongParameters(_) => "WRONG_PARAMETERS",
            ServiceError::AuthenticationFailed
            | ServiceError::LockedOut
            | ServiceError::UnsupportedToken => "AUTHENTICATION_FAILED",
            ServiceError::UnknownUser => "UNKNOWN_USER",
            ServiceError::PermissionDenied(_) => "PERMISSION_DENIED",
            ServiceError::ServerBusy => "SERVER_BUSY",
            ServiceError::Internal(_) => "INTERNAL",
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
            ServiceError::UnsupportedToken => Some("UNSUPPORTED_TOKEN".to_string()),
            ServiceError::LockedOut => Some("LOCKED_OUT".to_string()),
            _ => None,
        }
    }

    pub(crate) fn internal(e: impl fmt::Display) -> Self {
        ServiceError::Internal(e.to_string())
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
}

impl DenyReason {
    pub fn id(self) -> &'static str {
        match self {
            DenyReason::NotInScope => "NOT_IN_SCOPE",
            DenyReason::OutranksCaller => "OUTRANKS_CALLER",
            DenyReason::UserDeactivated => "USER_DEACTIVATED",
            DenyReason::ExternallyManaged => "EXTERNALLY_MANAGED",
            DenyReason::SelfServiceDisabled => "SELF_SERVICE_DISABLED",
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
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}
