//! The vocabulary of the operation: parsed request values, roles, policy and the one
//! error enum every layer below `soap` speaks.
//!
//! Every type here is constructed only by parsing ("parse, don't validate"), so the
//! service never sees an over-long e-mail or an un-normalised password.

mod change;
mod client;
mod error;
mod fields;
pub mod lockout;
mod password;
mod policy;
pub mod records;
mod reset;
mod role;

pub use change::{
    BatchFields, ChangeFields, PasswordChange, UpdatePasswordsRequest, batch_items,
    confirmed_password,
};
pub use client::ClientAddress;
pub use error::{AuthFailure, DenyReason, Outcome, ParameterError, ServiceError, Violation};
pub use fields::{AccountUrl, Email, UserId};
pub use password::Password;
pub use policy::PasswordPolicy;
pub use reset::{
    Delivery, IssuedLink, LinkChangeRequest, ResetItem, ResetOutcome, ResetRequest, ResetTargets,
    ResetToken, delivery, reset_targets,
};
pub use role::{Role, UserStatus};

/// A call a front door decoded: what the service is asked to do.
#[derive(Debug)]
pub enum Call {
    UpdatePassword(UpdatePasswordRequest),
    UpdatePasswords(UpdatePasswordsRequest),
    PasswordStatus(PasswordStatusRequest),
    ResetPasswords(ResetRequest),
    ChangeByLink(LinkChangeRequest),
}

/// What a call that succeeded answers.
#[derive(Debug)]
pub enum Reply {
    PasswordUpdated,
    /// One result per item, in the request's order.
    PasswordsUpdated(Vec<ItemResult>),
    Status(PasswordStatus),
    ResetsIssued(ResetOutcome),
}

/// Everything the service needs to run `UpdateUserPassword`, already validated.
#[derive(Debug)]
pub struct UpdatePasswordRequest {
    pub credentials: Credentials,
    pub change: PasswordChange,
}

/// How one item of a batch went.
#[derive(Debug)]
pub struct ItemResult {
    pub user_id: String,
    pub result: Result<(), ServiceError>,
}

/// `GetUserPasswordStatus` (contract §11.3).
#[derive(Debug)]
pub struct PasswordStatusRequest {
    pub credentials: Credentials,
    pub user_id: UserId,
}

/// A user's password status (contract §11.3). Times are RFC 3339, UTC, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordStatus {
    pub user_id: String,
    pub status: UserStatus,
    pub externally_managed: bool,
    pub password_changed_at: String,
    pub temporary: bool,
    pub credential_version: i64,
    /// An unused, unexpired reset link exists.
    pub reset_pending: bool,
    /// While the user's (account, e-mail) pair is locked.
    pub locked_until: Option<String>,
}

/// Which front door a call came through, for events (`via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrontDoor {
    #[default]
    Soap,
    Rest,
    /// The reset form (HTML).
    Page,
}

/// The caller's own login, as sent in `credentials`, a WS-Security token, HTTP Basic,
/// or a REST self-change's `currentPassword`.
#[derive(Debug)]
pub struct Credentials {
    pub account_url: AccountUrl,
    pub login: Login,
    pub password: Password,
}

/// Who signs in.
#[derive(Debug, Clone)]
pub enum Login {
    /// By e-mail: every front door's usual login.
    Email(Email),
    /// By user id: a REST self-change without `Authorization`, whose caller is the user
    /// the path names (contract §13).
    UserId(UserId),
}

impl Login {
    /// As the caller named themself, for the audit trail.
    pub fn as_str(&self) -> &str {
        match self {
            Login::Email(e) => e.as_str(),
            Login::UserId(id) => id.as_str(),
        }
    }
}

/// Facts about the HTTP exchange the service records in the audit trail.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Random id also sent back in the `X-Request-Id` header and written to the log line.
    pub request_id: String,
    /// The client's address, written to the audit trail: the connection's peer, or the
    /// right-most `X-Forwarded-For` hop not in a trusted proxy network.
    pub client_addr: String,
    /// The same address, parsed (`None` when the peer is unknown).
    pub client_ip: Option<std::net::IpAddr>,
    /// What the client is counted under (§10 counters, hashing fairness): the address,
    /// or an IPv6 client's /64.
    pub client_key: String,
    /// The front door the call came through.
    pub front: FrontDoor,
}
