//! Storage: the service's needs as methods named for what they do (`reserve_sign_in`,
//! `find_target`, `apply_change`, `issue_resets`, …), and the backends that meet them.
//! [`Store`] is the seam: the service, the CLI and the mail sender see only its methods
//! and the records of `domain::records`; SQL lives only in the backends (`sqlite`).
//!
//! Architecture invariant: only the backend modules know SQL.

pub(crate) mod audit;
mod codec;
mod postgres;
mod sqlite;

use std::collections::HashMap;

use crate::config::Database;

pub use crate::domain::lockout::ThrottlePolicy;
use crate::domain::records::{
    AccountPlan, Applied, AuditEntry, AuditFilter, AuditRecord, ChangeRecord, Claimed, ExistingIds,
    ImportSummary, LinkOwner, LockStarted, OutboxEvent, ReachCursor, ReachedUser, ResetRecord,
    Settlement, SignIn, SignInGate, TargetRecord, ThrottleKey, UserBatch,
};
pub use audit::{AuditSink, AuditWriter, DEFAULT_RETENTION, Upkeep};
pub use sqlite::LockCache;

/// An account's rows as an import's users refer to them, on either backend.
pub(crate) struct AccountIds {
    pub(crate) id: i64,
    pub(crate) departments: HashMap<String, i64>,
    pub(crate) roles: HashMap<String, i64>,
    /// The account's stored users, read once: a user absent from it is inserted without
    /// the lookups and clean-up an update needs.
    pub(crate) stored: HashMap<String, i64>,
}

impl AccountIds {
    pub(crate) fn department(&self, ext: &str) -> Result<i64, StoreError> {
        self.departments
            .get(ext)
            .copied()
            .ok_or_else(|| StoreError::Conflict(format!("no department \"{ext}\"")))
    }

    pub(crate) fn role(&self, ext: &str) -> Result<i64, StoreError> {
        self.roles
            .get(ext)
            .copied()
            .ok_or_else(|| StoreError::Conflict(format!("no role \"{ext}\"")))
    }
}

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("database worker stopped: {0}")]
    Join(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    PgPool(#[from] deadpool_postgres::PoolError),
    #[error("database settings: {0}")]
    Config(String),
    #[error("the database did not answer in time")]
    Timeout,
    /// An import's source of users stopped it (its reason is the source's to report).
    #[error("the import was stopped by its source")]
    Aborted,
}

/// A PostgreSQL error as an operator can act on it: the server's message and SQLSTATE
/// (tokio-postgres says only "db error"). Never the server's DETAIL: for a row that
/// breaks a constraint it lists the row's values, password hash included.
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// What `/health/ready` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The database does not answer (within its bound).
    Unavailable,
    /// It answers, but its schema lacks migrations this build needs (they are applied at
    /// start; another process may have reset or replaced the database since).
    SchemaBehind,
}

impl StoreError {
    /// The database cannot be reached or does not answer (as opposed to a query that
    /// failed): a connection refused or lost, a pool that found no connection in time,
    /// an operation past its bound.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::PgPool(_) | StoreError::Timeout => true,
            StoreError::Postgres(e) => e.is_closed() || e.code().is_none(),
            StoreError::Pool(_) => true,
            _ => false,
        }
    }
}

/// The database the service runs on.
#[derive(Clone)]
pub enum Store {
    /// An embedded SQLite file (one process).
    Sqlite(sqlite::SqliteStore),
    /// A PostgreSQL database, shared by any number of instances.
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to the latest schema.
    pub fn open(db: &Database, max_connections: u32) -> Result<Store, StoreError> {
        Ok(match db {
            Database::Sqlite(path) => {
                Store::Sqlite(sqlite::SqliteStore::open(path, max_connections)?)
            }
            Database::Postgres(_) => Store::Postgres(postgres::PgStore::open(
                db.postgres_url().unwrap_or_default(),
                max_connections,
            )?),
        })
    }

    /// True when the database answers a trivial query.
    pub async fn healthy(&self) -> bool {
        match self {
            Store::Sqlite(s) => s.healthy().await,
            Store::Postgres(p) => p.healthy().await,
        }
    }

    /// Whether the database answers and holds every migration this build knows (contract
    /// §16, `/health/ready`).
    pub async fn readiness(&self) -> Readiness {
        match self {
            Store::Sqlite(s) => s.readiness().await,
            Store::Postgres(p) => p.readiness().await,
        }
    }

    /// Reset links issued and neither used nor expired at `now_ms`, in every account
    /// (`/metrics`).
    pub async fn outstanding_resets(&self, now_ms: i64) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.outstanding_resets(now_ms).await,
            Store::Postgres(p) => p.outstanding_resets(now_ms).await,
        }
    }

    /// The e-mail key of the user `user_id` of the account `account_key`, if there is one
    /// (a sign-in by user id counts against that user's pair).
    pub async fn email_key_of(
        &self,
        account_key: String,
        user_id: String,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.email_key_of(account_key, user_id).await,
            Store::Postgres(p) => p.email_key_of(account_key, user_id).await,
        }
    }

    /// When `key`'s lock ends, if it is locked now (a user's status, §11.3).
    pub async fn locked_until(
        &self,
        key: ThrottleKey,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.locked_until(key, now_ms).await,
            Store::Postgres(p) => p.locked_until(key, now_ms).await,
        }
    }

    /// Whether any of `keys` is locked now: a read, so that a flood against a lock is
    /// refused before it takes a place in the hashing queue or the writer's turn.
    pub async fn any_locked(
        &self,
        keys: Vec<ThrottleKey>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.any_locked(keys, now_ms).await,
            Store::Postgres(p) => p.any_locked(keys, now_ms).await,
        }
    }

    /// Reserves the verification of a sign-in (contract §10: at most the threshold of
    /// verifications per pair, whatever the concurrency) and looks the caller up, in one
    /// write transaction: [`SignInGate::Open`] with the lookup, or why not. An open gate
    /// must be settled with [`Store::settle_sign_in`].
    pub async fn reserve_sign_in(
        &self,
        sign_in: SignIn,
        now_ms: i64,
    ) -> Result<SignInGate, StoreError> {
        match self {
            Store::Sqlite(s) => s.reserve_sign_in(sign_in, now_ms).await,
            Store::Postgres(p) => p.reserve_sign_in(sign_in, now_ms).await,
        }
    }

    /// Settles a reserved sign-in: a success resets the pair, a failure counts against
    /// the pair and the address, an abandoned one frees its place. Returns the locks it
    /// started. Now and then it also forgets counters that can no longer matter.
    pub async fn settle_sign_in(
        &self,
        sign_in: SignIn,
        outcome: Settlement,
        now_ms: i64,
    ) -> Result<Vec<LockStarted>, StoreError> {
        match self {
            Store::Sqlite(s) => s.settle_sign_in(sign_in, outcome, now_ms).await,
            Store::Postgres(p) => p.settle_sign_in(sign_in, outcome, now_ms).await,
        }
    }

    /// Lifts the locks of `keys` and forgets their failures, with an audit row for each
    /// (an operator's `unlock`); returns, per key, whether it had a counter and the end
    /// of the lock that was lifted.
    pub fn unlock_blocking(
        &self,
        keys: &[ThrottleKey],
        audit: &AuditRecord,
        now_ms: i64,
    ) -> Result<Vec<(bool, Option<i64>)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.unlock_blocking(keys, audit, now_ms),
            Store::Postgres(p) => p.unlock_blocking(keys, audit, now_ms),
        }
    }

    /// Looks up the target within the caller's account, with everything the permission
    /// rules and the history check need, in one round trip.
    pub async fn find_target(
        &self,
        account_id: i64,
        caller_id: i64,
        target_ext_id: String,
        history: u32,
    ) -> Result<Option<TargetRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.find_target(account_id, caller_id, target_ext_id, history)
                    .await
            }
            Store::Postgres(p) => {
                p.find_target(account_id, caller_id, target_ext_id, history)
                    .await
            }
        }
    }

    /// Stores the new hash, history, audit and event rows in one transaction (killing
    /// the user's reset links): [`Applied::Changed`] with the new credential version, or
    /// nothing changed because the change's link is dead or another change of the user
    /// committed since its checks.
    pub async fn apply_change(
        &self,
        change: ChangeRecord,
        now_ms: i64,
    ) -> Result<Applied, StoreError> {
        match self {
            Store::Sqlite(s) => s.apply_change(change, now_ms).await,
            Store::Postgres(p) => p.apply_change(change, now_ms).await,
        }
    }

    /// Issues reset links in one transaction, each replacing its user's older ones.
    pub async fn issue_resets(&self, resets: Vec<ResetRecord>) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.issue_resets(resets).await,
            Store::Postgres(p) => p.issue_resets(resets).await,
        }
    }

    /// The owner of the live link whose token hashes to `token_hash`.
    pub async fn find_link(
        &self,
        token_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Option<LinkOwner>, StoreError> {
        match self {
            Store::Sqlite(s) => s.find_link(token_hash, now_ms).await,
            Store::Postgres(p) => p.find_link(token_hash, now_ms).await,
        }
    }

    /// Whether the user has a live reset link.
    pub async fn reset_pending(&self, user_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.reset_pending(user_id, now_ms).await,
            Store::Postgres(p) => p.reset_pending(user_id, now_ms).await,
        }
    }

    /// A page of the users a caller's `allInScope` reset reaches (see `resets`).
    pub async fn reach_page(
        &self,
        account_id: i64,
        caller_id: i64,
        caller_role: crate::domain::Role,
        after: ReachCursor,
        limit: usize,
    ) -> Result<Vec<ReachedUser>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.reach_page(account_id, caller_id, caller_role, after, limit)
                    .await
            }
            Store::Postgres(p) => {
                p.reach_page(account_id, caller_id, caller_role, after, limit)
                    .await
            }
        }
    }

    /// Replaces a hash made with weaker parameters, if it is still the stored one.
    pub async fn upgrade_hash(
        &self,
        user_id: i64,
        old_hash: String,
        new_hash: String,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.upgrade_hash(user_id, old_hash, new_hash).await,
            Store::Postgres(p) => p.upgrade_hash(user_id, old_hash, new_hash).await,
        }
    }

    /// How many stored hashes cost more to verify than `configured`.
    pub fn count_costlier_hashes(
        &self,
        configured: crate::crypto::HashParams,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.count_costlier_hashes(configured),
            Store::Postgres(p) => p.count_costlier_hashes(configured),
        }
    }

    /// Ids already stored for the account with this URL key.
    pub fn existing_ids(&self, account_key: &str) -> Result<ExistingIds, StoreError> {
        match self {
            Store::Sqlite(s) => s.existing_ids(account_key),
            Store::Postgres(p) => p.existing_ids(account_key),
        }
    }

    /// Applies a validated provisioning plan in one transaction; `progress` hears how
    /// many users are written so far.
    pub fn import(
        &self,
        accounts: &[AccountPlan],
        users: &mut dyn FnMut() -> Result<Option<UserBatch>, StoreError>,
        progress: &dyn Fn(u64),
    ) -> Result<ImportSummary, StoreError> {
        match self {
            Store::Sqlite(s) => s.import(accounts, users, progress),
            Store::Postgres(p) => p.import(accounts, users, progress),
        }
    }

    /// Audit rows matching `filter`, oldest first.
    pub fn audit_trail(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            Store::Sqlite(s) => s.audit_trail(filter),
            Store::Postgres(p) => p.audit_trail(filter),
        }
    }

    /// Unacknowledged `password_changed` events with an id above `after`, oldest first.
    pub fn events_after(&self, after: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.events_after(after),
            Store::Postgres(p) => p.events_after(after),
        }
    }

    /// Acknowledges every event up to and including `id`; returns how many.
    ///
    /// Only where ids are committed in order (SQLite: one writer). On PostgreSQL a lower
    /// id can commit after a higher one was read, and would be acknowledged unseen: use
    /// [`Store::ack_listed`] there.
    pub fn ack_events(&self, id: i64) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(s) => s.ack_events(id),
            Store::Postgres(p) => p.ack_events(id),
        }
    }

    /// Acknowledges exactly the events `ids` (those a notifier read); returns how many
    /// were still unacknowledged.
    pub fn ack_listed(&self, ids: &[i64]) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(s) => s.ack_listed(ids),
            Store::Postgres(p) => p.ack_listed(ids),
        }
    }

    /// Whether event ids may commit out of order (so `--ack ID` would be unsafe).
    pub fn commits_out_of_id_order(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Claims up to `limit` events due for mail at `now_ms` until `lease_until_ms`.
    pub async fn claim_mail(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim_mail(now_ms, lease_until_ms, limit).await,
            Store::Postgres(p) => p.claim_mail(now_ms, lease_until_ms, limit).await,
        }
    }

    /// Acknowledges the delivered event `id`; false if it already was.
    pub async fn ack_mailed(&self, id: i64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.ack_mailed(id).await,
            Store::Postgres(p) => p.ack_mailed(id).await,
        }
    }

    /// Leaves the event `id` unacknowledged, due again at `next_ms`.
    pub async fn defer_mail(&self, id: i64, next_ms: i64) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.defer_mail(id, next_ms).await,
            Store::Postgres(p) => p.defer_mail(id, next_ms).await,
        }
    }

    /// Folds the write-ahead log into the database file, so the file is complete on its
    /// own (the last step of a graceful stop).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.checkpoint(),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// True when no account exists yet (the demo loads only into an empty database).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.is_empty(),
            Store::Postgres(p) => p.is_empty(),
        }
    }
    /// The audit writer's batch of rows (`store::audit`), in one transaction.
    pub(crate) fn write_audit_rows(&self, batch: &[AuditRecord]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.write_audit_rows(batch),
            Store::Postgres(p) => p.write_audit_rows(batch),
        }
    }

    /// The audit writer's refused calls: their minutes' rows and their addresses' counts.
    pub(crate) fn write_refusals(
        &self,
        tally: &audit::Tally,
        policy: &ThrottlePolicy,
        now_ms: i64,
    ) -> Result<Vec<audit::Counted>, StoreError> {
        match self {
            Store::Sqlite(s) => s.write_refusals(tally, policy, now_ms),
            Store::Postgres(p) => p.write_refusals(tally, policy, now_ms),
        }
    }

    /// One batch of retention's deletions.
    pub(crate) fn prune_batch(
        &self,
        what: audit::Pruned,
        cutoff: &str,
        batch: usize,
    ) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune_batch(what, cutoff, batch),
            Store::Postgres(p) => p.prune_batch(what, cutoff, batch),
        }
    }

    /// Forgets throttle counters that can no longer matter.
    pub(crate) fn forget_quiet_counters(
        &self,
        policy: &ThrottlePolicy,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.forget_quiet_counters(policy, now_ms),
            Store::Postgres(p) => p.forget_quiet_counters(policy, now_ms),
        }
    }
}
