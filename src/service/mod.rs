//! The `UpdateUserPassword` operation: authenticate → find target → authorise →
//! policy → change, with an audit row for every attempt.
//!
//! Architecture invariant: the service knows neither XML nor SQL. It receives domain
//! requests from `soap`, talks to `store` through named methods and to `crypto` through
//! the bounded hasher, and answers with a [`ServiceError`] variant that `soap::fault`
//! turns into exactly one fault.

mod pace;
pub mod permission;
mod turns;

use std::sync::Arc;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};

use crate::crypto::{PasswordHasher, Slot};
use crate::domain::{
    Credentials, ParameterError, Password, RequestContext, ServiceError, UpdatePasswordRequest,
    UserStatus, Violation,
};
use crate::store::{
    AccountRecord, AuditRecord, AuditSink, ChangeRecord, LockCache, LockStarted, RefusedCall,
    Settlement, SignIn, SignInGate, Store, ThrottleKey, ThrottlePolicy, UserRecord,
};
use pace::FailurePace;
use turns::PairTurns;

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
    turns: Arc<PairTurns>,
    /// Address locks known to this process, to pace refused calls from them.
    locks: Arc<LockCache>,
}

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

/// A reserved sign-in that has not been settled yet. Dropped unsettled (the request was
/// cancelled, or failed before its verification), it frees its place in the background.
struct Reservation {
    store: Store,
    turns: Arc<PairTurns>,
    sign_in: Option<SignIn>,
}

impl Reservation {
    async fn settle(mut self, outcome: Settlement) -> Result<Vec<LockStarted>, ServiceError> {
        let Some(sign_in) = self.sign_in.take() else {
            return Ok(Vec::new());
        };
        let pair = sign_in.pair.clone();
        let settled = self
            .store
            .settle_sign_in(sign_in, outcome, now_ms())
            .await
            .map_err(ServiceError::internal);
        self.turns.wake_one(pair.as_str());
        settled
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(sign_in) = self.sign_in.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // shutting down: the reservation expires by itself
        };
        let (store, turns) = (self.store.clone(), self.turns.clone());
        runtime.spawn(async move {
            let pair = sign_in.pair.clone();
            if let Err(e) = store
                .settle_sign_in(sign_in, Settlement::Abandoned, now_ms())
                .await
            {
                log::warn!("could not settle a sign-in's reservation: {e}");
            }
            turns.wake_one(pair.as_str());
        });
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
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
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records a call refused while its message was converted into a request (wrong
    /// parameters, an unsupported token type): see [`Service::refuse`].
    pub async fn reject(&self, error: ServiceError, ctx: &RequestContext) -> Attempt {
        self.refuse(error.outcome_code(), error.audit_detail(), ctx)
            .await;
        Attempt {
            account: None,
            caller: None,
            target: None,
            result: Err(error),
        }
    }

    /// Records a call refused before its message could be read as a request (not XML,
    /// not an envelope, too large…): see [`Service::refuse`].
    pub async fn refuse_envelope(&self, outcome: &'static str, ctx: &RequestContext) {
        self.refuse(outcome, None, ctx).await;
    }

    /// A call refused before authentication, by the caller's fault: audited in
    /// aggregate and counted against the client address (contract §10). From an address
    /// that is throttled its answer — still the precise fault — comes after as long as a
    /// failed sign-in of that client takes, as a locked-out call's does: a flood of cheap
    /// refusals cannot take the cores that hashing for everyone else needs (a junk flood
    /// cut an admin's change rate to 40 %), and with the per-address connection limit it
    /// runs at a bounded rate.
    async fn refuse(&self, outcome: &'static str, detail: Option<String>, ctx: &RequestContext) {
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

    /// Runs `UpdateUserPassword`. Failures are audited here; a success is audited in the
    /// change's own transaction.
    pub async fn update_password(
        &self,
        req: UpdatePasswordRequest,
        ctx: &RequestContext,
    ) -> Attempt {
        let mut known = Known::default();
        let result = self.run(&req, ctx, &mut known).await;
        if let Err(error @ (ServiceError::ServerBusy | ServiceError::LockedOut)) = &result {
            // Decided before any password was checked: audited in aggregate, so a flood
            // of them costs a counter, not a row each.
            self.audit
                .refused(RefusedCall {
                    at_ms: now_ms(),
                    request_id: ctx.request_id.clone(),
                    client_addr: ctx.client_addr.clone(),
                    outcome: error.outcome_code(),
                    detail: error.audit_detail(),
                    counts_against: None,
                })
                .await;
        } else if let Err(error) = &result {
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
        // zxcvbn costs ~0.5 ms on an ordinary password and at most ~4 ms on a crafted
        // one (its input is bounded, `domain::policy::MAX_SCORED_CHARS`): it runs on a
        // blocking thread inside this request's slot, never on the executor where it
        // would stall every other connection of the worker. Not at the compute gate:
        // a gate pass per request for a sub-millisecond check left cores idle in the
        // hand-offs (the kit's heavy rows at c=8: 82–86 % of the limit instead of
        // 88–96 %), and bounded, it cannot take the cores from argon2.
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
    /// locked the call is refused before any hashing, with the same fault, after as long
    /// as a failure of this client takes. The verification is reserved against the pair
    /// first, so that no burst gets more verifications than the pair's threshold.
    async fn authenticate(
        &self,
        credentials: &Credentials,
        ctx: &RequestContext,
        known: &mut Known,
    ) -> Result<(AccountRecord, UserRecord, Slot), ServiceError> {
        let started = Instant::now();
        let client = ctx.client_key.as_str();
        let sign_in = SignIn {
            account_key: credentials.account_url.key().to_string(),
            email_key: credentials.email.key().to_string(),
            pair: ThrottleKey::pair(credentials.account_url.key(), credentials.email.key()),
            address: self.defences.address_key(ctx),
            id: rand::random(),
            policy: self.defences.policy.clone(),
        };
        // Overloaded: shed now, before the lookup costs a blocking-pool hop and a query,
        // so a shed answer stays fast however busy the cores are.
        if !self.hasher.has_room(client) {
            return Err(ServiceError::ServerBusy);
        }
        let keys: Vec<ThrottleKey> = std::iter::once(sign_in.pair.clone())
            .chain(sign_in.address.clone())
            .collect();
        // A read first: a flood against a lock takes no place in the hashing queue.
        if self
            .store
            .any_locked(keys, now_ms())
            .await
            .map_err(ServiceError::internal)?
        {
            return Err(self.locked_out(client, started).await);
        }
        // How long to wait, at most, for a place of the pair before shedding.
        let deadline = started + self.hasher.max_wait();
        let pair = sign_in.pair.as_str();
        // Behind sign-ins of this pair already waiting here, in arrival order.
        let mut turn = self
            .turns
            .has_line(pair)
            .then(|| self.turns.join(pair, false));
        let (lookup, reservation, slot, queued) = loop {
            let woken = match turn.as_mut() {
                Some(turn) => turn.wait().await,
                None => false,
            };
            // One hashing slot for all of this request's argon2 work: a request is
            // admitted or shed as a whole, never halfway through. The reservation is
            // taken with the slot held, so that it spans the verification only — not
            // the wait in the queue, which would keep a busy admin account's places
            // taken for seconds under load.
            let admitting = Instant::now();
            let slot = self.hasher.admit(client).await?;
            let queued = admitting.elapsed();
            match self
                .store
                .reserve_sign_in(sign_in.clone(), now_ms())
                .await
                .map_err(ServiceError::internal)?
            {
                SignInGate::Open(lookup) => {
                    let reservation = Reservation {
                        store: self.store.clone(),
                        turns: self.turns.clone(),
                        sign_in: Some(sign_in.clone()),
                    };
                    break (lookup, reservation, slot, queued);
                }
                SignInGate::Locked => {
                    drop(slot);
                    return Err(self.locked_out(client, started).await);
                }
                SignInGate::Full => {
                    // Others' verifications of this pair are under way: give the slot to
                    // someone else and wait in line for one of them to settle (a success
                    // frees its place; failures may lock the pair).
                    drop(slot);
                    if Instant::now() >= deadline {
                        return Err(ServiceError::ServerBusy);
                    }
                    if turn.is_none() || woken {
                        turn = Some(self.turns.join(pair, woken));
                    }
                }
            }
        };
        drop(turn);
        known.account_id = lookup.account.as_ref().map(|a| a.id);

        let stored = lookup.user.as_ref().map(|u| u.password_hash.clone());
        let verification = self
            .hasher
            .verify(&slot, stored, &credentials.password)
            .await?;
        match (lookup.account, lookup.user) {
            (Some(account), Some(user))
                if verification.matches && user.status == UserStatus::Active =>
            {
                // Settled in the background: the request goes on with its slot, and
                // until the settlement lands the place counts as taken (never as free).
                tokio::spawn(async move {
                    if let Err(e) = reservation.settle(Settlement::Success).await {
                        log::error!("could not settle a successful sign-in: {e}");
                    }
                });
                if verification.needs_rehash {
                    self.rehash(&slot, &user, &credentials.password).await;
                }
                Ok((account, user, slot))
            }
            _ => {
                drop(slot);
                let locks = reservation.settle(Settlement::Failure).await;
                match locks {
                    Ok(locks) => self.audit_locks(locks, credentials, ctx, known).await,
                    Err(e) => log::error!(
                        "request_id={} could not count a failure: {e}",
                        ctx.request_id
                    ),
                }
                self.pace.observe(client, started.elapsed(), queued);
                Err(ServiceError::AuthenticationFailed)
            }
        }
    }

    /// Answers a locked-out call after as long as a failure of this client takes.
    async fn locked_out(&self, client: &str, started: Instant) -> ServiceError {
        let pace = self.pace.for_client(client);
        tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
        ServiceError::LockedOut
    }

    /// Logs and audits the locks a failure started.
    async fn audit_locks(
        &self,
        locks: Vec<LockStarted>,
        credentials: &Credentials,
        ctx: &RequestContext,
        known: &Known,
    ) {
        for (key, until) in locks {
            if let ThrottleKey::Address(_) = key {
                self.locks.note(&key, until, now_ms());
            }
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

    /// Re-hashes a password stored with parameters other than the configured ones
    /// (weaker or stronger: one verification cost per deployment). Best effort: a
    /// failure here must not fail the caller's request.
    async fn rehash(&self, slot: &Slot, user: &UserRecord, password: &Password) {
        let result = match self.hasher.hash(slot, password).await {
            Ok(new_hash) => self
                .store
                .upgrade_hash(user.id, user.password_hash.clone(), new_hash)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => log::info!(
                "re-hashed user {} with the configured parameters",
                user.ext_id
            ),
            Err(e) => log::warn!("could not re-hash user {}: {e}", user.ext_id),
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
