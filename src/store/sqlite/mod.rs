//! The SQLite backend: the schema and its migrations, the connection pool, and every
//! query. Each method runs on a blocking thread with a pooled connection, never on the
//! async executor.

mod directory;
mod import;
mod outbox;
mod resets;
mod schema;
mod throttle;
mod trail;
mod writer;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use super::StoreError;
use crate::domain::lockout::ThrottlePolicy;
use crate::domain::records::{
    AccountPlan, Applied, AuditEntry, AuditFilter, AuditRecord, ChangeRecord, Claimed, ExistingIds,
    ImportSummary, LinkOwner, LockStarted, OutboxEvent, ReachCursor, ReachedUser, ResetRecord,
    Settlement, SignIn, SignInGate, TargetRecord, ThrottleKey, UserBatch,
};
pub use throttle::LockCache;

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of connections to one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// Taken around every write transaction of this process. SQLite lets one writer in
    /// at a time anyway; waiting here instead of in SQLite's busy handler means a writer
    /// starts the moment the previous one commits, rather than after a busy-handler sleep
    /// (1, 2, 5, 10 … ms) during which a request may be holding a hashing slot. The busy
    /// timeout still covers writers in other processes.
    writer: std::sync::Arc<std::sync::Mutex<()>>,
}

/// The pragmas every connection gets: WAL so readers never block the writer,
/// foreign keys enforced, a busy timeout instead of instant `SQLITE_BUSY`.
fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it to the latest schema.
    pub fn open(path: &Path, max_connections: u32) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        configure(&mut conn)?;
        schema::migrations().to_latest(&mut conn)?;
        // Fail now, with a clear message, when the file is not writable.
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
        drop(conn);
        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(SqliteStore {
            pool,
            writer: Default::default(),
        })
    }

    /// Runs `work` with a pooled connection on a blocking thread.
    pub(super) async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// [`Store::call`] for work that writes: it runs under the process's writer lock.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(work))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Runs `work` with a pooled connection on the current thread (CLI commands, import).
    pub(super) fn call_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        work(&mut conn)
    }

    /// [`Store::call_blocking`] for work that writes, under the writer lock.
    pub(super) fn write_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        // A writer that panicked left no transaction open (rusqlite rolls back on drop).
        let _writing = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut conn)
    }

    /// Ready when the database answers and its `user_version` is this build's latest.
    pub async fn readiness(&self) -> super::Readiness {
        let latest = schema::LATEST;
        match self
            .call(|conn| Ok(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?))
            .await
        {
            Ok(version) if version >= latest => super::Readiness::Ready,
            Ok(_) => super::Readiness::SchemaBehind,
            Err(_) => super::Readiness::Unavailable,
        }
    }

    /// True when the database answers a trivial query.
    pub async fn healthy(&self) -> bool {
        self.call(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .is_ok()
    }

    pub async fn outstanding_resets(&self, now_ms: i64) -> Result<i64, StoreError> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached("SELECT count(*) FROM reset_tokens WHERE expires_at > ?1")?
                .query_row([now_ms], |r| r.get(0))?)
        })
        .await
    }

    /// The e-mail key of the user `user_id` of the account `account_key`, if there is one
    /// (a sign-in by user id counts against that user's pair).
    pub async fn email_key_of(
        &self,
        account_key: String,
        user_id: String,
    ) -> Result<Option<String>, StoreError> {
        self.call(move |conn| directory::email_key_of(conn, &account_key, &user_id))
            .await
    }

    /// When `key`'s lock ends, if it is locked now (a user's status, §11.3).
    pub async fn locked_until(
        &self,
        key: ThrottleKey,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.call(move |conn| throttle::locked_until(conn, &key, now_ms))
            .await
    }

    /// Whether any of `keys` is locked now: a read, so that a flood against a lock is
    /// refused before it takes a place in the hashing queue or the writer's turn.
    pub async fn any_locked(
        &self,
        keys: Vec<ThrottleKey>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.call(move |conn| throttle::any_locked(conn, &keys, now_ms))
            .await
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
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let gate = throttle::reserve(
                &tx,
                &sign_in.pair,
                sign_in.address.as_ref(),
                sign_in.id,
                &sign_in.policy,
                now_ms,
            )?;
            let gate = match gate {
                Ok(()) => SignInGate::Open(directory::find_caller(
                    &tx,
                    &sign_in.account_key,
                    &sign_in.email_key,
                )?),
                Err(throttle::Closed::Locked) => SignInGate::Locked,
                Err(throttle::Closed::Full) => SignInGate::Full,
            };
            tx.commit()?;
            Ok(gate)
        })
        .await
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
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let started = throttle::settle(
                &tx,
                &sign_in.pair,
                sign_in.address.as_ref(),
                sign_in.id,
                outcome,
                &sign_in.policy,
                now_ms,
            )?;
            if rand::random::<u8>() == 0 {
                throttle::forget_quiet(&tx, &sign_in.policy, now_ms)?;
            }
            tx.commit()?;
            Ok(started)
        })
        .await
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
        self.write_blocking(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut out = Vec::new();
            for key in keys {
                out.push(throttle::unlock(&tx, key, now_ms)?);
            }
            directory::insert_audit(&tx, audit)?;
            tx.commit()?;
            Ok(out)
        })
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
        self.call(move |conn| {
            directory::find_target(conn, account_id, caller_id, &target_ext_id, history)
        })
        .await
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
        self.write(move |conn| directory::apply_change(conn, &change, now_ms))
            .await
    }

    /// Issues reset links in one transaction, each replacing its user's older ones.
    pub async fn issue_resets(&self, resets: Vec<ResetRecord>) -> Result<(), StoreError> {
        self.write(move |conn| resets::issue(conn, &resets)).await
    }

    /// The owner of the live link whose token hashes to `token_hash`.
    pub async fn find_link(
        &self,
        token_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Option<LinkOwner>, StoreError> {
        self.call(move |conn| resets::find_link(conn, &token_hash, now_ms))
            .await
    }

    /// Whether the user has a live reset link.
    pub async fn reset_pending(&self, user_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.call(move |conn| resets::pending(conn, user_id, now_ms))
            .await
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
        self.call(move |conn| {
            resets::reach_page(conn, account_id, caller_id, caller_role, after, limit)
        })
        .await
    }

    /// Replaces a hash made with weaker parameters, if it is still the stored one.
    pub async fn upgrade_hash(
        &self,
        user_id: i64,
        old_hash: String,
        new_hash: String,
    ) -> Result<(), StoreError> {
        self.write(move |conn| directory::upgrade_hash(conn, user_id, &old_hash, &new_hash))
            .await
    }

    /// How many stored hashes cost more to verify than `configured`.
    pub fn count_costlier_hashes(
        &self,
        configured: crate::crypto::HashParams,
    ) -> Result<u64, StoreError> {
        self.call_blocking(|conn| {
            let mut stmt = conn.prepare("SELECT password_hash FROM users")?;
            let mut rows = stmt.query([])?;
            let mut n = 0;
            while let Some(row) = rows.next()? {
                let phc: String = row.get(0)?;
                if crate::crypto::validate_hash(&phc).is_ok_and(|p| p.cost() > configured.cost()) {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Ids already stored for the account with this URL key.
    pub fn existing_ids(&self, account_key: &str) -> Result<ExistingIds, StoreError> {
        self.call_blocking(|conn| import::existing_ids(conn, account_key))
    }

    /// Applies a validated provisioning plan in one transaction; `progress` hears how
    /// many users are written so far.
    pub fn import(
        &self,
        accounts: &[AccountPlan],
        users: &mut dyn FnMut() -> Result<Option<UserBatch>, StoreError>,
        progress: &dyn Fn(u64),
    ) -> Result<ImportSummary, StoreError> {
        self.write_blocking(|conn| import::import(conn, accounts, users, progress))
    }

    /// Audit rows matching `filter`, oldest first.
    pub fn audit_trail(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        self.call_blocking(|conn| trail::audit(conn, filter))
    }

    /// Unacknowledged `password_changed` events with an id above `after`, oldest first.
    pub fn events_after(&self, after: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        self.call_blocking(|conn| trail::events_after(conn, after))
    }

    /// Acknowledges every event up to and including `id`; returns how many.
    pub fn ack_events(&self, id: i64) -> Result<usize, StoreError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.write_blocking(|conn| trail::ack(conn, id, &now))
    }

    /// Acknowledges exactly the events `ids`; returns how many changed.
    pub fn ack_listed(&self, ids: &[i64]) -> Result<usize, StoreError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.write_blocking(|conn| trail::ack_listed(conn, ids, &now))
    }

    /// Claims up to `limit` events due for mail at `now_ms` until `lease_until_ms`.
    pub async fn claim_mail(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.write(move |conn| outbox::claim_due(conn, now_ms, lease_until_ms, limit))
            .await
    }

    /// Acknowledges the delivered event `id`; false if it already was.
    pub async fn ack_mailed(&self, id: i64) -> Result<bool, StoreError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.write(move |conn| outbox::ack_one(conn, id, &now))
            .await
    }

    /// Leaves the event `id` unacknowledged, due again at `next_ms`.
    pub async fn defer_mail(&self, id: i64, next_ms: i64) -> Result<(), StoreError> {
        self.write(move |conn| outbox::defer(conn, id, next_ms))
            .await
    }

    /// The audit writer's batch of rows, in one transaction.
    pub(crate) fn write_audit_rows(&self, batch: &[AuditRecord]) -> Result<(), StoreError> {
        self.write_blocking(|conn| writer::write_rows(conn, batch))
    }

    /// The audit writer's refused calls, counted (see `store::audit`).
    pub(crate) fn write_refusals(
        &self,
        tally: &crate::store::audit::Tally,
        policy: &ThrottlePolicy,
        now_ms: i64,
    ) -> Result<Vec<crate::store::audit::Counted>, StoreError> {
        self.write_blocking(|conn| writer::write_refusals(conn, tally, policy, now_ms))
    }

    /// One batch of retention's deletions; returns how many rows went.
    pub(crate) fn prune_batch(
        &self,
        what: crate::store::audit::Pruned,
        cutoff: &str,
        batch: usize,
    ) -> Result<usize, StoreError> {
        self.write_blocking(|conn| writer::prune_batch(conn, what, cutoff, batch))
    }

    /// Forgets throttle counters that can no longer matter.
    pub(crate) fn forget_quiet_counters(
        &self,
        policy: &ThrottlePolicy,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.write_blocking(|conn| throttle::forget_quiet(conn, policy, now_ms).map(|_| ()))
    }

    /// Folds the write-ahead log into the database file, so the file is complete on its
    /// own (the last step of a graceful stop).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.call_blocking(|conn| {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok(())
        })
    }

    /// True when no account exists yet (the demo loads only into an empty database).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.call_blocking(|conn| {
            Ok(
                conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM accounts)", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }
}
