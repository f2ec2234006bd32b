//! The `UpdateUserPassword` operation: authenticate → find target → authorise →
//! policy → change, with an audit row for every attempt.
//!
//! Architecture invariant: the service knows neither XML nor SQL. It receives domain
//! requests from `soap`, talks to `store` through named methods and to `crypto` through
//! the bounded hasher, and answers with a [`ServiceError`] variant that `soap::fault`
//! turns into exactly one fault.

pub mod permission;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};

use crate::crypto::{PasswordHasher, Slot};
use crate::domain::{
    Credentials, ParameterError, Password, RequestContext, ServiceError, UpdatePasswordRequest,
    UserStatus, Violation,
};
use crate::store::{
    AccountRecord, AuditRecord, AuditSink, ChangeRecord, Store, ThrottleKey, ThrottlePolicy,
    UserRecord,
};

/// What one call did, for the log line and the audit trail.
#[derive(Debug)]
pub struct Attempt {
    /// The account URL as sent, when it parsed.
    pub account: Option<String>,
    /// The authenticated caller's user id.
    pub caller: Option<String>,
    /// The target's user id as sent, when it parsed.
    pub target: Option<String>,
    pub result: Result<(), ServiceError>,
}

/// Ids gathered while the operation runs, so a failure can be audited with what is known.
#[derive(Default)]
struct Known {
    account_id: Option<i64>,
    caller: Option<(i64, String)>,
    target_id: Option<i64>,
}

/// The operation, with the store, the hasher and the audit writer it needs.
#[derive(Clone)]
pub struct Service {
    store: Store,
    hasher: PasswordHasher,
    audit: AuditSink,
    defences: Defences,
    pace: Arc<FailurePace>,
}

/// How long a failed authentication takes (lookup, wait for a slot, verify, count),
/// smoothed over recent failures. A call refused by a lockout is answered after the same
/// time: without it, a locked answer came back in a millisecond instead of tens, which
/// tells a client it is locked out (contract §10: the same fault, and so the same look),
/// and a client hammering a lock got answers as fast as it could send — a flood of cheap
/// refusals eating the CPU that hashing for everyone else needs. The wait is a timer,
/// not work: it holds no slot, no thread and no connection from the pool.
struct FailurePace {
    micros: AtomicU64,
}

impl FailurePace {
    /// Never longer than this, whatever was measured.
    const MAX: Duration = Duration::from_secs(2);

    fn new(first: Duration) -> Self {
        FailurePace {
            micros: AtomicU64::new(first.as_micros() as u64),
        }
    }

    /// Folds one failure's duration in (exponential moving average, weight 1/8).
    fn observe(&self, took: Duration) {
        let took = took.min(Self::MAX).as_micros() as u64;
        let _ = self
            .micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(old - old / 8 + took / 8)
            });
    }

    fn current(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed)).min(Self::MAX)
    }
}

/// Brute-force defence settings (contract §10).
#[derive(Debug, Clone, Default)]
pub struct Defences {
    pub policy: ThrottlePolicy,
    /// Client addresses exempt from the address throttle (never from the pair lockout):
    /// an LMS or middleware relaying many users' calls from one host.
    pub allowlist: Vec<String>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Service {
    pub fn new(store: Store, hasher: PasswordHasher, audit: AuditSink, defences: Defences) -> Self {
        let pace = Arc::new(FailurePace::new(hasher.one_operation()));
        Service {
            store,
            hasher,
            audit,
            defences,
            pace,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records a call refused while its message was converted into a request (wrong
    /// parameters, an unsupported token type): audited with no identifiers.
    pub async fn reject(&self, error: ServiceError, ctx: &RequestContext) -> Attempt {
        self.audit
            .record(AuditRecord {
                at: now(),
                request_id: ctx.request_id.clone(),
                account_id: None,
                account_url: None,
                caller_id: None,
                caller_email: None,
                target_id: None,
                target_ext_id: None,
                outcome: error.outcome_code(),
                detail: error.audit_detail(),
                client_addr: ctx.client_addr.clone(),
            })
            .await;
        Attempt {
            account: None,
            caller: None,
            target: None,
            result: Err(error),
        }
    }

    /// Runs `UpdateUserPassword`. Failures are audited here; a success is audited in the
    /// change's own transaction.
    pub async fn update_password(
        &self,
        req: UpdatePasswordRequest,
        ctx: &RequestContext,
    ) -> Attempt {
        let mut known = Known::default();
        let result = self.run(&req, ctx, &mut known).await;
        if let Err(error) = &result {
            self.audit
                .record(AuditRecord {
                    at: now(),
                    request_id: ctx.request_id.clone(),
                    account_id: known.account_id,
                    account_url: Some(req.credentials.account_url.as_str().to_string()),
                    caller_id: known.caller.as_ref().map(|(id, _)| *id),
                    caller_email: Some(req.credentials.email.as_str().to_string()),
                    target_id: known.target_id,
                    target_ext_id: Some(req.user_id.as_str().to_string()),
                    outcome: error.outcome_code(),
                    detail: error.audit_detail(),
                    client_addr: ctx.client_addr.clone(),
                })
                .await;
        }
        Attempt {
            account: Some(req.credentials.account_url.as_str().to_string()),
            caller: known.caller.map(|(_, ext)| ext),
            target: Some(req.user_id.as_str().to_string()),
            result,
        }
    }

    async fn run(
        &self,
        req: &UpdatePasswordRequest,
        ctx: &RequestContext,
        known: &mut Known,
    ) -> Result<(), ServiceError> {
        let (account, caller, slot) = self.authenticate(&req.credentials, ctx, known).await?;
        known.caller = Some((caller.id, caller.ext_id.clone()));

        let target = self
            .store
            .find_target(
                account.id,
                caller.id,
                req.user_id.as_str().to_string(),
                account.policy.history,
            )
            .await
            .map_err(ServiceError::internal)?
            .ok_or(ServiceError::UnknownUser)?;
        known.target_id = Some(target.user.id);

        permission::authorise(&caller, &target, account.policy.self_service)
            .map_err(ServiceError::PermissionDenied)?;

        let new = &req.new_password;
        // zxcvbn costs ~0.5 ms on an ordinary password and hundreds of ms on a crafted
        // one: it runs on a blocking thread, inside this request's slot, never on the
        // executor where it would stall every other connection of the worker.
        let mut violations = {
            let (policy, password, email) = (
                account.policy.clone(),
                new.clone(),
                target.user.email.clone(),
            );
            tokio::task::spawn_blocking(move || policy.check_text(&password, &email))
                .await
                .map_err(ServiceError::internal)?
        };
        // The current password: for a self-change the caller just proved it, so compare
        // plaintexts instead of paying for another argon2 verify.
        let mut to_verify = target.history.clone();
        if caller.id == target.user.id {
            if req.credentials.password.matches(new) {
                violations.push(Violation::SameAsCurrent);
            }
        } else {
            to_verify.insert(0, target.user.password_hash.clone());
        }
        let matched = self.hasher.matches_any(&slot, to_verify, new).await?;
        let (current, history) = if caller.id == target.user.id {
            (&[][..], &matched[..])
        } else {
            matched.split_at(1.min(matched.len()))
        };
        if current.iter().any(|m| *m) {
            violations.push(Violation::SameAsCurrent);
        }
        if history.iter().any(|m| *m) {
            violations.push(Violation::Reused);
        }
        if !violations.is_empty() {
            violations.sort();
            return Err(ServiceError::WrongParameters(policy_error(violations)));
        }

        let new_hash = self.hasher.hash(&slot, new).await?;
        drop(slot);
        self.store
            .apply_change(ChangeRecord {
                account_id: account.id,
                target_id: target.user.id,
                new_hash,
                history_keep: account.policy.history,
                audit: AuditRecord {
                    at: now(),
                    request_id: ctx.request_id.clone(),
                    account_id: Some(account.id),
                    account_url: Some(req.credentials.account_url.as_str().to_string()),
                    caller_id: Some(caller.id),
                    caller_email: Some(req.credentials.email.as_str().to_string()),
                    target_id: Some(target.user.id),
                    target_ext_id: Some(target.user.ext_id.clone()),
                    outcome: "OK",
                    detail: None,
                    client_addr: ctx.client_addr.clone(),
                },
            })
            .await
            .map_err(ServiceError::internal)?;
        Ok(())
    }

    /// Finds and verifies the caller, and takes the request's hashing slot.
    ///
    /// Every failure — unknown account, unknown e-mail, wrong password, deactivated
    /// caller — costs one argon2 verify and gives the same error, and counts against the
    /// (account, e-mail) pair and the client address (contract §10). While either is
    /// locked the call is refused before any hashing, with the same fault.
    async fn authenticate(
        &self,
        credentials: &Credentials,
        ctx: &RequestContext,
        known: &mut Known,
    ) -> Result<(AccountRecord, UserRecord, Slot), ServiceError> {
        let pair = ThrottleKey::pair(credentials.account_url.key(), credentials.email.key());
        let mut keys = vec![pair.clone()];
        if !self
            .defences
            .allowlist
            .iter()
            .any(|a| a == &ctx.client_addr)
        {
            keys.push(ThrottleKey::address(&ctx.client_addr));
        }
        // Overloaded: shed now, before the lookup costs a blocking-pool hop and a query,
        // so a shed answer stays fast however busy the cores are.
        if !self.hasher.has_room(&ctx.client_addr) {
            return Err(ServiceError::ServerBusy);
        }
        let started = Instant::now();
        let Some((lookup, pair_counted)) = self
            .store
            .find_caller_unless_locked(
                credentials.account_url.key().to_string(),
                credentials.email.key().to_string(),
                keys.clone(),
                now_ms(),
            )
            .await
            .map_err(ServiceError::internal)?
        else {
            tokio::time::sleep(self.pace.current().saturating_sub(started.elapsed())).await;
            return Err(ServiceError::LockedOut);
        };
        known.account_id = lookup.account.as_ref().map(|a| a.id);

        // One hashing slot for all of this request's argon2 work: a request is admitted
        // or shed as a whole, never halfway through.
        let slot = self.hasher.admit(&ctx.client_addr).await?;
        let stored = lookup.user.as_ref().map(|u| u.password_hash.clone());
        let verification = self
            .hasher
            .verify(&slot, stored, &credentials.password)
            .await?;
        match (lookup.account, lookup.user) {
            (Some(account), Some(user))
                if verification.matches && user.status == UserStatus::Active =>
            {
                // A write only when there is a count to reset: most successes have none.
                if pair_counted {
                    self.store
                        .reset_auth_failures(pair)
                        .await
                        .map_err(ServiceError::internal)?;
                }
                if verification.needs_upgrade {
                    self.upgrade(&slot, &user, &credentials.password).await;
                }
                Ok((account, user, slot))
            }
            _ => {
                drop(slot);
                self.count_failure(keys, credentials, ctx, known).await;
                self.pace.observe(started.elapsed());
                Err(ServiceError::AuthenticationFailed)
            }
        }
    }

    /// Counts a failed authentication; audits any lock it starts.
    async fn count_failure(
        &self,
        keys: Vec<ThrottleKey>,
        credentials: &Credentials,
        ctx: &RequestContext,
        known: &Known,
    ) {
        let started = self
            .store
            .record_auth_failure(keys, self.defences.policy.clone(), now_ms())
            .await;
        match started {
            Ok(locks) => {
                for (key, until) in locks {
                    let (what, detail) = match key {
                        ThrottleKey::Pair(_) => ("pair", "PAIR_LOCKED"),
                        ThrottleKey::Address(_) => ("address", "ADDRESS_THROTTLED"),
                    };
                    let until = chrono::DateTime::from_timestamp_millis(until)
                        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                        .unwrap_or_default();
                    log::warn!(
                        "request_id={} lockout: {what} locked until {until} after repeated failures",
                        ctx.request_id
                    );
                    self.audit
                        .record(AuditRecord {
                            at: now(),
                            request_id: ctx.request_id.clone(),
                            account_id: known.account_id,
                            account_url: Some(credentials.account_url.as_str().to_string()),
                            caller_id: None,
                            caller_email: Some(credentials.email.as_str().to_string()),
                            target_id: None,
                            target_ext_id: None,
                            outcome: "LOCKOUT",
                            detail: Some(format!("{detail} until {until}")),
                            client_addr: ctx.client_addr.clone(),
                        })
                        .await;
                }
            }
            Err(e) => log::error!(
                "request_id={} could not count a failure: {e}",
                ctx.request_id
            ),
        }
    }

    /// Re-hashes a password stored with weaker parameters. Best effort: a failure here
    /// must not fail the caller's request.
    async fn upgrade(&self, slot: &Slot, user: &UserRecord, password: &Password) {
        let result = match self.hasher.hash(slot, password).await {
            Ok(new_hash) => self
                .store
                .upgrade_hash(user.id, user.password_hash.clone(), new_hash)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => log::info!("upgraded the hash parameters of user {}", user.ext_id),
            Err(e) => log::warn!("could not upgrade the hash of user {}: {e}", user.ext_id),
        }
    }
}

fn policy_error(violations: Vec<Violation>) -> ParameterError {
    let reasons: Vec<&str> = violations.iter().map(|v| v.describe()).collect();
    ParameterError {
        parameter: "password",
        message: format!("The new password {}.", reasons.join("; it ")),
        violations,
    }
}
