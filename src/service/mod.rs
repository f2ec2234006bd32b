//! The operations: each call a front door decoded runs here — sign in, find the target,
//! authorise, check the policy, change — with an audit row for every attempt.
//!
//! `ops` holds one module per operation; the steps they share live beside it:
//! `sign_in` (authentication under the §10 limits), `change` (target → permission →
//! policy → apply).
//!
//! Architecture invariant: the service knows neither XML, JSON nor SQL. It receives
//! domain calls from the front doors (`soap`, `rest`), talks to `store` through named
//! methods and to `crypto` through the bounded hasher, and answers with a domain reply
//! or a [`ServiceError`] that each front door turns into exactly one answer.

mod change;
mod ops;
mod pace;
pub mod permission;
mod sign_in;
mod turns;

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use crate::crypto::PasswordHasher;
use crate::domain::records::{AuditRecord, RefusedCall, ThrottleKey};
use crate::domain::{Call, Outcome, Reply, RequestContext, ServiceError};
use crate::store::{AuditSink, LockCache, Store, ThrottlePolicy};
use pace::FailurePace;
use turns::PairTurns;

/// What one call did, for the log line.
#[derive(Debug)]
pub struct Attempt {
    /// The operation's name, as the log line shows it.
    pub operation: &'static str,
    /// The account URL as sent, when it parsed.
    pub account: Option<String>,
    /// The authenticated caller's user id.
    pub caller: Option<String>,
    /// The target's user id as sent, when it parsed.
    pub target: Option<String>,
    pub result: Result<Reply, ServiceError>,
}

impl Attempt {
    /// The outcome the log line shows.
    pub fn outcome(&self) -> Outcome {
        match &self.result {
            Ok(_) => Outcome::Ok,
            Err(e) => e.outcome(),
        }
    }
}

/// The operations, with the store, the hasher and the audit writer they need.
#[derive(Clone)]
pub struct Service {
    store: Store,
    hasher: PasswordHasher,
    audit: AuditSink,
    defences: Defences,
    pace: Arc<FailurePace>,
    turns: Arc<PairTurns>,
    /// Address locks known to this process, to pace refused calls from them.
    locks: Arc<LockCache>,
    /// How long a reset link lives (`--reset-ttl`).
    reset_ttl: std::time::Duration,
}

/// The default `--reset-ttl`.
pub const DEFAULT_RESET_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
/// The longest `--reset-ttl` (contract §11.4: at most 7 days).
pub const MAX_RESET_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Brute-force defence settings (contract §10).
#[derive(Debug, Clone, Default)]
pub struct Defences {
    pub policy: ThrottlePolicy,
    /// Client networks exempt from the address throttle (never from the pair lockout):
    /// an LMS or middleware relaying many users' calls from one host.
    pub allowlist: Vec<ipnet::IpNet>,
}

impl Defences {
    /// The address counter a call from `ctx` counts against: none when allowlisted.
    fn address_key(&self, ctx: &RequestContext) -> Option<ThrottleKey> {
        let allowed = ctx
            .client_ip
            .is_some_and(|ip| self.allowlist.iter().any(|net| net.contains(&ip)));
        (!allowed).then(|| ThrottleKey::address(&ctx.client_key))
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Service {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        audit: AuditSink,
        defences: Defences,
        locks: Arc<LockCache>,
    ) -> Self {
        let pace = Arc::new(FailurePace::new(hasher.one_operation()));
        Service {
            store,
            hasher,
            audit,
            defences,
            pace,
            turns: Arc::default(),
            locks,
            reset_ttl: DEFAULT_RESET_TTL,
        }
    }

    /// The same service with reset links living `ttl` (at most [`MAX_RESET_TTL`]).
    pub fn with_reset_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.reset_ttl = ttl.min(MAX_RESET_TTL);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// (slots, slots held, waiting requests) of the argon2 pool, for `/metrics`.
    pub fn hashing_occupancy(&self) -> (usize, usize, usize) {
        self.hasher.occupancy()
    }

    /// Runs a call a front door decoded. Every attempt is audited here or in its
    /// change's own transaction.
    pub async fn handle(&self, call: Call, ctx: &RequestContext) -> Attempt {
        let mut attempt = ops::run(self, call, ctx).await;
        if let Err(ServiceError::Internal(source)) = &mut attempt.result {
            // A database that cannot be reached is answered as such (REST 503).
            let unavailable = source
                .downcast_ref::<crate::store::StoreError>()
                .is_some_and(crate::store::StoreError::is_unavailable);
            if unavailable {
                let source = std::mem::replace(source, "moved".into());
                attempt.result = Err(ServiceError::Unavailable(source));
            }
        }
        match &attempt.result {
            // The caller is told nothing of it; the log keeps the cause.
            Err(ServiceError::Internal(source)) => {
                if source.is::<crate::store::StoreError>() {
                    crate::metrics::database_error("error");
                }
                log::error!("request_id={} internal error: {source}", ctx.request_id);
            }
            Err(ServiceError::Unavailable(source)) => {
                crate::metrics::database_error("unavailable");
                log::error!(
                    "request_id={} database unavailable: {source}",
                    ctx.request_id
                );
            }
            _ => {}
        }
        attempt
    }

    /// Records a call refused while its message was converted into a call (wrong
    /// parameters, an unsupported token type): see [`Service::refuse`].
    pub async fn reject(
        &self,
        operation: &'static str,
        error: ServiceError,
        ctx: &RequestContext,
    ) -> Attempt {
        self.refuse(error.outcome(), error.audit_detail(), ctx)
            .await;
        Attempt {
            operation,
            account: None,
            caller: None,
            target: None,
            result: Err(error),
        }
    }

    /// Records a call refused before its message could be read as a call (not XML,
    /// not an envelope, too large…, named by `code`): see [`Service::refuse`].
    pub async fn refuse_unread(&self, code: &'static str, ctx: &RequestContext) {
        self.refuse(Outcome::Refused(code), None, ctx).await;
    }

    /// A call refused before authentication, by the caller's fault: audited in
    /// aggregate and counted against the client address (contract §10). From an address
    /// that is throttled its answer — still the precise fault — comes after as long as a
    /// failed sign-in of that client takes, as a locked-out call's does: a flood of cheap
    /// refusals cannot take the cores that hashing for everyone else needs (a junk flood
    /// cut an admin's change rate to 40 %), and with the per-address connection limit it
    /// runs at a bounded rate.
    async fn refuse(&self, outcome: Outcome, detail: Option<String>, ctx: &RequestContext) {
        let started = Instant::now();
        let counter = self.defences.address_key(ctx);
        let throttled = counter
            .as_ref()
            .is_some_and(|key| self.locks.is_locked(key, now_ms()));
        self.audit
            .refused(RefusedCall {
                at_ms: now_ms(),
                request_id: ctx.request_id.clone(),
                client_addr: ctx.client_addr.clone(),
                outcome,
                detail,
                counts_against: counter,
            })
            .await;
        if throttled {
            let pace = self.pace.for_client(&ctx.client_key);
            tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
        }
    }

    /// Audits a failed attempt: a row, or — when it was decided before any password
    /// was checked (shed, locked) — a count in its minute's aggregate row.
    async fn audit_failure(&self, error: &ServiceError, row: AuditRecord, ctx: &RequestContext) {
        if error.is_cheap_refusal() {
            self.audit
                .refused(RefusedCall {
                    at_ms: now_ms(),
                    request_id: ctx.request_id.clone(),
                    client_addr: ctx.client_addr.clone(),
                    outcome: error.outcome(),
                    detail: error.audit_detail(),
                    counts_against: None,
                })
                .await;
        } else {
            self.audit.record(row.detail(error.audit_detail())).await;
        }
    }
}
