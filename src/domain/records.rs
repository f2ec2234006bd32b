//! The records the service and the stores exchange: accounts, users and the facts the
//! permission rules need, a change to commit, reset links, audit rows, outbox events,
//! the §10 counters' keys and a validated provisioning file. Plain data: each backend
//! (`store`) reads them from and writes them to its own SQL.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::lockout::{LockRule, ThrottlePolicy};
use super::{Outcome, PasswordPolicy, RequestContext, Role, UserStatus};

// Accounts, users and what a change commits.

/// An account and its password policy.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub id: i64,
    pub policy: PasswordPolicy,
}

/// A user as the operation needs them. `password_hash` never leaves the service.
#[derive(Clone)]
pub struct UserRecord {
    pub id: i64,
    pub ext_id: String,
    pub email: String,
    pub role: Role,
    pub status: UserStatus,
    pub externally_managed: bool,
    pub password_hash: String,
    /// The password was set by an administrator as temporary: until the user changes
    /// it, they may only change it or read their own status (contract §11.1).
    pub temporary: bool,
    /// As stored: RFC 3339, UTC.
    pub password_changed_at: String,
    pub credential_version: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("ext_id", &self.ext_id)
            .field("role", &self.role)
            .field("status", &self.status)
            .field("externally_managed", &self.externally_managed)
            .field("password_hash", &"[redacted]")
            .field("temporary", &self.temporary)
            .field("credential_version", &self.credential_version)
            .finish()
    }
}

/// The account named by the caller's URL and the user with the caller's e-mail in it.
#[derive(Debug)]
pub struct CallerLookup {
    pub account: Option<AccountRecord>,
    pub user: Option<UserRecord>,
}

/// The target user plus the facts the permission rules need.
#[derive(Debug)]
pub struct TargetRecord {
    pub user: UserRecord,
    /// The target's department lies in a subtree the caller administers or holds
    /// `change_password` over.
    pub in_scope: bool,
    /// Every department the target administers or holds a role over lies in such a subtree.
    pub reach_in_scope: bool,
    /// Hashes of the passwords the user had before the current one, newest first,
    /// at most the policy's history length.
    pub history: Vec<String>,
}

/// One row of the audit trail, built from who asked ([`AuditRecord::new`]) and what is
/// known of the call when it ends.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub(crate) at: String,
    pub(crate) request_id: String,
    pub(crate) account_id: Option<i64>,
    pub(crate) account_url: Option<String>,
    pub(crate) caller_id: Option<i64>,
    pub(crate) caller_email: Option<String>,
    pub(crate) target_id: Option<i64>,
    pub(crate) target_ext_id: Option<String>,
    pub(crate) outcome: Outcome,
    pub(crate) detail: Option<String>,
    pub(crate) client_addr: String,
}

impl AuditRecord {
    /// A row, timed now, for request `request_id` from `client_addr` (`cli` for an
    /// operator's command) with `outcome`; the rest unknown until set.
    pub fn new(request_id: &str, client_addr: &str, outcome: Outcome) -> Self {
        AuditRecord {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            request_id: request_id.to_string(),
            account_id: None,
            account_url: None,
            caller_id: None,
            caller_email: None,
            target_id: None,
            target_ext_id: None,
            outcome,
            detail: None,
            client_addr: client_addr.to_string(),
        }
    }

    /// A row for a call of `ctx`.
    pub fn of(ctx: &RequestContext, outcome: Outcome) -> Self {
        Self::new(&ctx.request_id, &ctx.client_addr, outcome)
    }

    /// The account as resolved (`id`) and as the caller named it (`url`).
    pub fn account(mut self, id: Option<i64>, url: Option<&str>) -> Self {
        self.account_id = id;
        self.account_url = url.map(str::to_string);
        self
    }

    /// The caller as resolved (`id`) and as named (`email`).
    pub fn caller(mut self, id: Option<i64>, email: Option<&str>) -> Self {
        self.caller_id = id;
        self.caller_email = email.map(str::to_string);
        self
    }

    /// The target as resolved (`id`) and as named (`ext_id`).
    pub fn target(mut self, id: Option<i64>, ext_id: Option<&str>) -> Self {
        self.target_id = id;
        self.target_ext_id = ext_id.map(str::to_string);
        self
    }

    pub fn detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }

    pub(crate) fn at_str(&self) -> &str {
        &self.at
    }

    pub(crate) fn request_id_str(&self) -> &str {
        &self.request_id
    }
}

/// A password change to commit.
pub struct ChangeRecord {
    pub account_id: i64,
    pub target_id: i64,
    pub new_hash: String,
    /// The new password must be changed by its user (contract §11.1).
    pub temporary: bool,
    /// How the change was made, for the event (`soap`, `rest`, `batch`, `reset_link`).
    pub via: &'static str,
    /// How many previous hashes the account's policy needs kept.
    pub history_keep: u32,
    /// A reset link this change spends (its SHA-256): the change commits only if the
    /// link is still live, and then the link is gone (contract §12: at most once).
    pub spends_link: Option<[u8; 32]>,
    /// The target's credential version the change's checks were made against: the
    /// change commits only if it is still the stored one (another change, through this
    /// instance or another, did not commit in between).
    pub read_version: i64,
    pub audit: AuditRecord,
}

/// What [`ChangeRecord`]'s transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Committed: the user's new credential version.
    Changed(i64),
    /// The change spends a link that is no longer live: nothing changed.
    LinkDead,
    /// Another change of the user committed since the checks were made: nothing changed.
    Overtaken,
}

// Reset links.

/// A link to issue: the user, its token's SHA-256, when it expires, and — with
/// `delivery=notify` — the event that carries the link to the user.
#[derive(Debug)]
pub struct ResetRecord {
    pub account_id: i64,
    pub user_id: i64,
    pub token_hash: [u8; 32],
    /// Unix ms.
    pub expires_ms: i64,
    /// The link and its expiry (RFC 3339) for the `password_reset_requested` event;
    /// `None` when the link goes back to the caller instead.
    pub notify: Option<(String, String)>,
    pub audit: AuditRecord,
}

/// A user of a caller's reach, with what decides whether a reset reaches them.
#[derive(Debug)]
pub struct ReachedUser {
    pub user: UserRecord,
    /// With the user's id, where the next page starts ([`ReachCursor`]).
    pub department_id: i64,
    /// Everything the user administers or holds a role over lies in the caller's scope.
    pub reach_in_scope: bool,
}

/// The user a live link belongs to.
#[derive(Debug)]
pub struct LinkOwner {
    pub account_id: i64,
    pub user: UserRecord,
    pub policy: crate::domain::PasswordPolicy,
    /// Hashes of the user's previous passwords, newest first, as the policy's history
    /// needs.
    pub history: Vec<String>,
}

/// Where a page of a caller's reach starts: after this (department, user) pair.
pub type ReachCursor = (i64, i64);

// The audit trail and the outbox, as read back.

/// One audit row as the `audit` command shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub request_id: String,
    pub account: Option<String>,
    pub caller_email: Option<String>,
    pub caller_id: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub client_addr: String,
    /// How many calls the row stands for: 1, or more for calls refused before
    /// authentication, which are counted per client address, outcome and minute.
    pub count: i64,
}

/// Which audit rows to show.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Account URL key (matching ignores scheme, case and a trailing slash).
    pub account_key: Option<String>,
    /// A user id, as caller or target.
    pub user: Option<String>,
    /// RFC 3339 time; rows at or after it.
    pub since: Option<String>,
}

/// One event of the outbox (contract §14): `password_changed` (ASVS 2.5.5) or
/// `password_reset_requested`, for the mail sender and the `events` command.
#[derive(Clone, Serialize)]
pub struct OutboxEvent {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub account: String,
    pub user_id: String,
    pub email: String,
    pub credential_version: i64,
    pub request_id: String,
    /// How the password was changed: `soap`, `rest`, `batch` (`None` for events written
    /// before this was recorded).
    pub via: Option<String>,
    /// The new password is temporary (contract §11.1).
    pub temporary: bool,
    /// A `password_reset_requested` event's link, until the event is acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// When that link expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_expires_at: Option<String>,
}

/// The link is a bearer secret: never in a `Debug` rendering (nor, so, in a log line).
impl std::fmt::Debug for OutboxEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxEvent")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("credential_version", &self.credential_version)
            .field("via", &self.via)
            .field("link", &self.link.as_ref().map(|_| "<redacted>"))
            .field("link_expires_at", &self.link_expires_at)
            .finish_non_exhaustive()
    }
}

/// An event taken for delivery, with the attempts made before this one.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub event: OutboxEvent,
    pub attempts: i64,
}

// The §10 counters.

/// Which counter a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleKey {
    /// Account URL key and e-mail key, normalised as for matching.
    Pair(String),
    /// A client address (an IPv6 client by its /64).
    Address(String),
}

impl ThrottleKey {
    pub fn pair(account_key: &str, email_key: &str) -> Self {
        ThrottleKey::Pair(format!("pair:{account_key}|{email_key}"))
    }

    pub fn address(addr: &str) -> Self {
        ThrottleKey::Address(format!("addr:{addr}"))
    }

    pub fn as_str(&self) -> &str {
        match self {
            ThrottleKey::Pair(k) | ThrottleKey::Address(k) => k,
        }
    }

    pub fn rule(&self, policy: &ThrottlePolicy) -> LockRule {
        match self {
            ThrottleKey::Pair(_) => policy.pair_rule(),
            ThrottleKey::Address(_) => policy.address_rule(),
        }
    }
}

/// How a reserved sign-in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The password matched an active user: the pair's count resets.
    Success,
    /// Verified and wrong (or the user is unknown or deactivated): counted.
    Failure,
    /// Never verified (shed, or the client went away): the place is freed.
    Abandoned,
}

/// A lock a failure started: its key and its end (Unix ms).
pub type LockStarted = (ThrottleKey, i64);

/// One sign-in's counters: the (account, e-mail) pair, the client address (none when
/// allowlisted), the reservation id, and the rules they follow.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub account_key: String,
    pub email_key: String,
    pub pair: ThrottleKey,
    pub address: Option<ThrottleKey>,
    pub id: u64,
    pub policy: ThrottlePolicy,
}

/// What `Store::reserve_sign_in` found.
#[derive(Debug)]
pub enum SignInGate {
    /// Reserved: the caller lookup, to verify against.
    Open(CallerLookup),
    /// The pair or the address is locked.
    Locked,
    /// The pair's failures and verifications under way reach its threshold.
    Full,
}

// A provisioning file, validated, as the store imports it: its accounts (with their
// departments and roles) first, then its users a batch at a time, as they are read.

/// One batch of validated users of the account at `account` (an index into the
/// accounts the import began with), in file order.
#[derive(Debug)]
pub struct UserBatch {
    pub account: usize,
    pub users: Vec<UserPlan>,
}

#[derive(Debug)]
pub struct AccountPlan {
    pub url: String,
    pub url_key: String,
    pub name: String,
    pub policy: PasswordPolicy,
    /// Parents come before their children.
    pub departments: Vec<DepartmentPlan>,
    pub roles: Vec<RolePlan>,
}

#[derive(Debug)]
pub struct DepartmentPlan {
    pub ext_id: String,
    pub name: String,
    pub parent: Option<String>,
}

#[derive(Debug)]
pub struct RolePlan {
    pub ext_id: String,
    pub name: String,
    pub permissions: Vec<String>,
}

pub struct UserPlan {
    pub ext_id: String,
    pub email: String,
    pub email_key: String,
    pub role: Role,
    pub department: String,
    pub status: UserStatus,
    pub externally_managed: bool,
    /// Set for users to create; ignored for users that already exist.
    pub password_hash: Option<String>,
    pub manages: Vec<String>,
    pub custom_roles: Vec<CustomRolePlan>,
    /// Stored users, later in the file, who give up their e-mail key and owner role
    /// before this user is written: this user takes one of them. (Each is written with
    /// its own values when its turn comes; one the file does not list fails the import.)
    pub release: Vec<String>,
}

impl std::fmt::Debug for UserPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPlan")
            .field("ext_id", &self.ext_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct CustomRolePlan {
    pub role: String,
    pub departments: Vec<String>,
}

/// What an import did, for the command's one-line report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub accounts: usize,
    pub departments: usize,
    pub roles: usize,
    pub users_created: usize,
    pub users_updated: usize,
}

/// Ids already stored for an account, so a file may refer to them and import hashes
/// only the passwords of users it creates.
#[derive(Debug, Default)]
pub struct ExistingIds {
    pub users: HashSet<String>,
    pub departments: HashSet<String>,
    pub roles: HashSet<String>,
    /// E-mail key of each stored user → that user's id, so a clash names its JSON path.
    pub emails: HashMap<String, String>,
    /// The stored owner's id, if the account has one.
    pub owner: Option<String>,
}

// Calls refused before any password was checked.

/// A call refused before any password was checked.
#[derive(Debug, Clone)]
pub struct RefusedCall {
    pub at_ms: i64,
    pub request_id: String,
    pub client_addr: String,
    pub outcome: Outcome,
    pub detail: Option<String>,
    /// The address counter it counts against (parameter faults; none when the address
    /// is allowlisted or the refusal is not the caller's fault).
    pub counts_against: Option<ThrottleKey>,
}
