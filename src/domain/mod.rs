//! The vocabulary of the operation: parsed request values, roles, policy and the one
//! error enum every layer below `soap` speaks.
//!
//! Every type here is constructed only by parsing ("parse, don't validate"), so the
//! service never sees an over-long e-mail or an un-normalised password.

mod client;
mod error;
mod fields;
pub mod lockout;
mod password;
mod policy;
mod role;

pub use client::ClientAddress;
pub use error::{AuthFailure, DenyReason, Outcome, ParameterError, ServiceError, Violation};
pub use fields::{AccountUrl, Email, UserId};
pub use password::Password;
pub use policy::PasswordPolicy;
pub use role::{Role, UserStatus};

/// A call a front door decoded: what the service is asked to do.
#[derive(Debug)]
pub enum Call {
    UpdatePassword(UpdatePasswordRequest),
}

/// What a call that succeeded answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    PasswordUpdated,
}

/// Everything the service needs to run `UpdateUserPassword`, already validated.
#[derive(Debug)]
pub struct UpdatePasswordRequest {
    pub credentials: Credentials,
    pub user_id: UserId,
    pub new_password: Password,
}

/// The caller's own login, as sent in `credentials` (or, later, a WS-Security token).
#[derive(Debug)]
pub struct Credentials {
    pub account_url: AccountUrl,
    pub email: Email,
    pub password: Password,
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
}
