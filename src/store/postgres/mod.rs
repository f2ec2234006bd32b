//! The PostgreSQL backend (contract §15): the same needs as `sqlite`, over a pool of
//! async connections (tokio-postgres + deadpool), so that any number of instances share
//! one database and act as one service. Every counter, version, link, audit row and
//! event is in the database; nothing that decides a call lives only in a process.
//!
//! All database work runs on this backend's own small tokio runtime: the connections'
//! tasks live there whichever runtime (an HTTP worker's, none for the CLI) asks, and the
//! blocking methods of the seam (`import`, `audit`, the audit writer's thread) wait on
//! it without an executor of their own. The SQL stays within what CockroachDB and
//! YugabyteDB also run: no advisory locks, no LISTEN/NOTIFY, no functions or triggers;
//! a transaction that fails to serialize (SQLSTATE 40001, 40P01) is retried.

mod directory;
mod import;
mod resets;
mod schema;
mod throttle;
mod trail;
mod writer;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::StoreError;
use crate::domain::records::{
    Applied, AuditEntry, AuditFilter, AuditRecord, ChangeRecord, Claimed, LinkOwner, LockStarted,
    OutboxEvent, ReachCursor, ReachedUser, ResetRecord, Settlement, SignIn, SignInGate,
    TargetRecord, ThrottleKey,
};

/// How long a call waits for a pooled connection, or for a new one to be made, before
/// the call fails (a `soap:Server` fault, REST 503) instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a statement may run (the server's bound).
const STATEMENT_TIMEOUT: &str = "5s";
/// The longest any database operation may take here, whatever the server does (a
/// database that stops answering cannot enforce its own statement timeout): past it the
/// call fails as unavailable instead of hanging.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `/health` waits for the database.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// TCP keepalive and user timeout: a connection whose peer went silent is found dead.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Attempts of a transaction that fails to serialize or deadlocks.
const SERIALIZATION_ATTEMPTS: u32 = 5;

/// The runtime the connections live on; shut down without blocking when the last store
/// handle goes (which may happen on an async worker, where a blocking drop would panic).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn get(&self) -> &tokio::runtime::Runtime {
        // Some until dropped.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime is gone only on drop"))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A pool of connections to one PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    rt: Arc<Runtime>,
}

impl PgStore {
    /// Connects to `url` and migrates the schema to the latest version (whichever
    /// instance comes first applies a migration; the others wait for it, then skip it).
    pub fn open(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT}"));
        config.keepalives(true);
        config.keepalives_idle(KEEPALIVE_IDLE);
        #[cfg(target_os = "linux")]
        config.tcp_user_timeout(KEEPALIVE_IDLE);
        if config.get_application_name().is_none() {
            config.application_name("soap-passwd");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Join(e.to_string()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _inside = rt.enter();
            Pool::builder(manager)
                .max_size(usize::try_from(max_connections.max(2)).unwrap_or(2))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| StoreError::Config(e.to_string()))?
        };
        let store = PgStore {
            pool,
            rt: Arc::new(Runtime(Some(rt))),
        };
        store.blocking(|pool| async move { schema::migrate(&pool).await })?;
        Ok(store)
    }

    /// Runs `work` with the pool on this backend's runtime.
    pub(super) async fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let task = self.rt.get().spawn(work(self.pool.clone()));
        let abort = task.abort_handle();
        match tokio::time::timeout(OPERATION_TIMEOUT, task).await {
            Ok(joined) => joined.map_err(|e| StoreError::Join(e.to_string()))?,
            Err(_) => {
                abort.abort();
                Err(StoreError::Timeout)
            }
        }
    }

    /// [`PgStore::run`] for a caller with no executor (CLI commands, the audit writer's
    /// thread). Never call it from async code.
    pub(super) fn blocking<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let work = work(self.pool.clone());
        self.rt.get().block_on(async {
            tokio::time::timeout(OPERATION_TIMEOUT, work)
                .await
                .unwrap_or(Err(StoreError::Timeout))
        })
    }

    /// True when the database answers a trivial query.
    /// Ready when the database answers (within the health bound) and has every migration.
    pub async fn readiness(&self) -> super::Readiness {
        let probe = self.run(|pool| async move {
            let client = pool.get().await?;
            schema::applied_all(&client).await
        });
        match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
            Ok(Ok(true)) => super::Readiness::Ready,
            Ok(Ok(false)) => super::Readiness::SchemaBehind,
            _ => super::Readiness::Unavailable,
        }
    }

    pub async fn healthy(&self) -> bool {
        let probe = self.run(|pool| async move {
            let client = pool.get().await?;
            client.query_one("SELECT 1", &[]).await?;
            Ok(())
        });
        // A health check answers soon: a database silent for this long is not healthy.
        matches!(
            tokio::time::timeout(HEALTH_TIMEOUT, probe).await,
            Ok(Ok(()))
        )
    }

    /// True when no account exists yet.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            let row = client
                .query_one("SELECT NOT EXISTS (SELECT 1 FROM accounts)", &[])
                .await?;
            Ok(row.get(0))
        })
    }
}

impl PgStore {
    pub async fn email_key_of(
        &self,
        account_key: String,
        user_id: String,
    ) -> Result<Option<String>, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            directory::email_key_of(&client, &account_key, &user_id).await
        })
        .await
    }

    pub async fn find_target(
        &self,
        account_id: i64,
        caller_id: i64,
        target_ext_id: String,
        history: u32,
    ) -> Result<Option<TargetRecord>, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            directory::find_target(&client, account_id, caller_id, &target_ext_id, history).await
        })
        .await
    }

    pub async fn apply_change(
        &self,
        change: ChangeRecord,
        now_ms: i64,
    ) -> Result<Applied, StoreError> {
        self.run(|pool| async move {
            let change = &change;
            retrying(|| {
                let pool = pool.clone();
                async move {
                    let mut client = pool.get().await?;
                    directory::apply_change(&mut client, change, now_ms).await
                }
            })
            .await
        })
        .await
    }

    pub async fn locked_until(
        &self,
        key: ThrottleKey,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            throttle::locked_until(&client, &key, now_ms).await
        })
        .await
    }

    pub async fn any_locked(
        &self,
        keys: Vec<ThrottleKey>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            throttle::any_locked(&client, &keys, now_ms).await
        })
        .await
    }

    /// As `sqlite`'s: the reservation and the caller lookup in one transaction.
    pub async fn reserve_sign_in(
        &self,
        sign_in: SignIn,
        now_ms: i64,
    ) -> Result<SignInGate, StoreError> {
        self.run(|pool| async move {
            let sign_in = &sign_in;
            retrying(|| {
                let pool = pool.clone();
                async move {
                    let mut client = pool.get().await?;
                    let tx = client.transaction().await?;
                    let gate = throttle::reserve(
                        &tx,
                        &sign_in.pair,
                        sign_in.address.as_ref(),
                        sign_in.id,
                        &sign_in.policy,
                        now_ms,
                    )
                    .await?;
                    let gate = match gate {
                        Ok(()) => SignInGate::Open(
                            directory::find_caller(&tx, &sign_in.account_key, &sign_in.email_key)
                                .await?,
                        ),
                        Err(throttle::Closed::Locked) => SignInGate::Locked,
                        Err(throttle::Closed::Full) => SignInGate::Full,
                    };
                    tx.commit().await?;
                    Ok(gate)
                }
            })
            .await
        })
        .await
    }

    pub async fn settle_sign_in(
        &self,
        sign_in: SignIn,
        outcome: Settlement,
        now_ms: i64,
    ) -> Result<Vec<LockStarted>, StoreError> {
        self.run(|pool| async move {
            let sign_in = &sign_in;
            retrying(|| {
                let pool = pool.clone();
                async move {
                    let mut client = pool.get().await?;
                    let tx = client.transaction().await?;
                    let started = throttle::settle(
                        &tx,
                        &sign_in.pair,
                        sign_in.address.as_ref(),
                        sign_in.id,
                        outcome,
                        &sign_in.policy,
                        now_ms,
                    )
                    .await?;
                    if rand::random::<u8>() == 0 {
                        throttle::forget_quiet(&tx, &sign_in.policy, now_ms).await?;
                    }
                    tx.commit().await?;
                    Ok(started)
                }
            })
            .await
        })
        .await
    }

    /// An operator's unlock of `keys`, with an audit row for each, in one transaction.
    pub fn unlock_blocking(
        &self,
        keys: &[ThrottleKey],
        audit: &AuditRecord,
        now_ms: i64,
    ) -> Result<Vec<(bool, Option<i64>)>, StoreError> {
        let (keys, audit) = (keys.to_vec(), audit.clone());
        self.blocking(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let mut out = Vec::new();
            for key in &keys {
                out.push(throttle::unlock(&tx, key, now_ms).await?);
            }
            directory::insert_audit(&tx, &audit).await?;
            tx.commit().await?;
            Ok(out)
        })
    }

    pub async fn issue_resets(&self, resets: Vec<ResetRecord>) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let resets = &resets;
            retrying(|| {
                let pool = pool.clone();
                async move {
                    let mut client = pool.get().await?;
                    resets::issue(&mut client, resets).await
                }
            })
            .await
        })
        .await
    }

    pub async fn find_link(
        &self,
        token_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Option<LinkOwner>, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            resets::find_link(&client, &token_hash, now_ms).await
        })
        .await
    }

    pub async fn outstanding_resets(&self, now_ms: i64) -> Result<i64, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT count(*) FROM reset_tokens WHERE expires_at > $1")
                .await?;
            Ok(client.query_one(&stmt, &[&now_ms]).await?.try_get(0)?)
        })
        .await
    }

    pub async fn reset_pending(&self, user_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            resets::pending(&client, user_id, now_ms).await
        })
        .await
    }

    pub async fn reach_page(
        &self,
        account_id: i64,
        caller_id: i64,
        caller_role: crate::domain::Role,
        after: ReachCursor,
        limit: usize,
    ) -> Result<Vec<ReachedUser>, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            resets::reach_page(&client, account_id, caller_id, caller_role, after, limit).await
        })
        .await
    }

    /// How many stored hashes cost more to verify than `configured`.
    pub fn count_costlier_hashes(
        &self,
        configured: crate::crypto::HashParams,
    ) -> Result<u64, StoreError> {
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            let rows = client.query("SELECT password_hash FROM users", &[]).await?;
            let mut n = 0;
            for row in rows {
                let phc: String = row.try_get(0)?;
                if crate::crypto::validate_hash(&phc).is_ok_and(|p| p.cost() > configured.cost()) {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    pub fn audit_trail(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let filter = filter.clone();
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            trail::audit(&client, &filter).await
        })
    }

    pub fn events_after(&self, after: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            trail::events_after(&client, after).await
        })
    }

    pub fn ack_events(&self, id: i64) -> Result<usize, StoreError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            let n = trail::ack(&client, id, &now).await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    pub fn ack_listed(&self, ids: &[i64]) -> Result<usize, StoreError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let ids = ids.to_vec();
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            let n = trail::ack_listed(&client, &ids, &now).await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    pub async fn claim_mail(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            trail::claim_due(&mut client, now_ms, lease_until_ms, limit).await
        })
        .await
    }

    pub async fn ack_mailed(&self, id: i64) -> Result<bool, StoreError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.run(|pool| async move {
            let client = pool.get().await?;
            trail::ack_one(&client, id, &now).await
        })
        .await
    }

    pub async fn defer_mail(&self, id: i64, next_ms: i64) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            trail::defer(&client, id, next_ms).await
        })
        .await
    }

    pub async fn upgrade_hash(
        &self,
        user_id: i64,
        old_hash: String,
        new_hash: String,
    ) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            directory::upgrade_hash(&client, user_id, &old_hash, &new_hash).await
        })
        .await
    }
}

impl PgStore {
    /// Ids already stored for the account with this URL key.
    pub fn existing_ids(
        &self,
        account_key: &str,
    ) -> Result<crate::domain::records::ExistingIds, StoreError> {
        let account_key = account_key.to_string();
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            import::existing_ids(&client, &account_key).await
        })
    }

    /// Applies a validated provisioning plan in one transaction.
    pub fn import(
        &self,
        accounts: &[crate::domain::records::AccountPlan],
        users: &mut dyn FnMut() -> Result<Option<crate::domain::records::UserBatch>, StoreError>,
        progress: &dyn Fn(u64),
    ) -> Result<crate::domain::records::ImportSummary, StoreError> {
        // block_on runs the future on this thread: it may borrow the plans and the source.
        self.rt.get().block_on(async {
            let mut client = self.pool.get().await?;
            import::import(&mut client, accounts, users, progress).await
        })
    }

    /// The audit writer's batch of rows, in one transaction.
    pub(crate) fn write_audit_rows(&self, batch: &[AuditRecord]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.blocking(|pool| async move {
            let mut client = pool.get().await?;
            writer::write_rows(&mut client, &batch).await
        })
    }

    /// The audit writer's refused calls, counted (see `store::audit`).
    pub(crate) fn write_refusals(
        &self,
        tally: &crate::store::audit::Tally,
        policy: &crate::domain::lockout::ThrottlePolicy,
        now_ms: i64,
    ) -> Result<Vec<crate::store::audit::Counted>, StoreError> {
        // block_on runs the future on this thread: it may borrow.
        self.rt.get().block_on(async {
            let write = retrying(|| async {
                let mut client = self.pool.get().await?;
                writer::write_refusals(&mut client, tally, policy, now_ms).await
            });
            tokio::time::timeout(OPERATION_TIMEOUT, write)
                .await
                .unwrap_or(Err(StoreError::Timeout))
        })
    }

    /// One batch of retention's deletions; returns how many rows went.
    pub(crate) fn prune_batch(
        &self,
        what: crate::store::audit::Pruned,
        cutoff: &str,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let cutoff = cutoff.to_string();
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            writer::prune_batch(&client, what, &cutoff, batch).await
        })
    }

    /// Forgets throttle counters that can no longer matter.
    pub(crate) fn forget_quiet_counters(
        &self,
        policy: &crate::domain::lockout::ThrottlePolicy,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let policy = policy.clone();
        self.blocking(|pool| async move {
            let client = pool.get().await?;
            throttle::forget_quiet(&client, &policy, now_ms)
                .await
                .map(|_| ())
        })
    }
}

/// Whether `e` is a transaction that failed to serialize or deadlocked (worth retrying).
pub(super) fn retryable(e: &StoreError) -> bool {
    use tokio_postgres::error::SqlState;
    match e {
        StoreError::Postgres(e) => e.code().is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        }),
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, fails for another reason, or has failed to
/// serialize [`SERIALIZATION_ATTEMPTS`] times.
pub(super) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(e) if tries < SERIALIZATION_ATTEMPTS && retryable(&e) => {
                crate::metrics::database_retry("serialization");
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
            }
            other => return other,
        }
    }
}
