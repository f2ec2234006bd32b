//! Signing the caller in: the §10 lockout gate, the per-pair reservation, one argon2
//! verify (against a dummy hash when there is no such user), and the hashing slot the
//! rest of the call's argon2 work runs in.

use std::sync::Arc;
use std::time::Instant;

use chrono::SecondsFormat;

use super::turns::PairTurns;
use super::{Service, now_ms};
use crate::crypto::Slot;
use crate::domain::records::{
    AccountRecord, AuditRecord, LockStarted, Settlement, SignIn, SignInGate, ThrottleKey,
    UserRecord,
};
use crate::domain::{
    AuthFailure, Credentials, Login, Outcome, Password, RequestContext, ServiceError, UserStatus,
};
use crate::store::Store;

/// A verified caller, their account, and the hashing slot their call holds.
pub(super) struct SignedIn {
    pub account: AccountRecord,
    pub caller: UserRecord,
    pub slot: Slot,
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

impl Service {
    /// Signs the caller of a call about `target` (as named, for the audit row) in; a
    /// failure is audited here.
    pub(super) async fn sign_in(
        &self,
        credentials: &Credentials,
        target: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<SignedIn, ServiceError> {
        let mut account_id = None;
        let result = self.authenticate(credentials, ctx, &mut account_id).await;
        if let Err(error) = &result {
            let row = AuditRecord::of(ctx, error.outcome())
                .account(account_id, Some(credentials.account_url.as_str()))
                .caller(None, Some(credentials.login.as_str()))
                .target(None, target);
            self.audit_failure(error, row, ctx).await;
        }
        result
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
        account_id: &mut Option<i64>,
    ) -> Result<SignedIn, ServiceError> {
        let started = Instant::now();
        let client = ctx.client_key.as_str();
        // Overloaded: shed now, before the lookup costs a blocking-pool hop and a query,
        // so a shed answer stays fast however busy the cores are.
        if !self.hasher.has_room(client) {
            return Err(ServiceError::ServerBusy);
        }
        let account_key = credentials.account_url.key();
        // A sign-in by user id counts against the user's own (account, e-mail) pair, so
        // that both ways in share one budget of failures; an id no user has, against a
        // key no e-mail can have (e-mails hold no white space), which finds no user.
        let email_key = match &credentials.login {
            Login::Email(email) => email.key().to_string(),
            Login::UserId(id) => self
                .store
                .email_key_of(account_key.to_string(), id.as_str().to_string())
                .await
                .map_err(ServiceError::internal)?
                .unwrap_or_else(|| format!("user id {}", id.as_str())),
        };
        let sign_in = SignIn {
            account_key: account_key.to_string(),
            pair: ThrottleKey::pair(account_key, &email_key),
            email_key,
            address: self.defences.address_key(ctx),
            id: rand::random(),
            policy: self.defences.policy.clone(),
        };
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
        *account_id = lookup.account.as_ref().map(|a| a.id);

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
                Ok(SignedIn {
                    account,
                    caller: user,
                    slot,
                })
            }
            _ => {
                drop(slot);
                let locks = reservation.settle(Settlement::Failure).await;
                match locks {
                    Ok(locks) => self.audit_locks(locks, credentials, ctx, *account_id).await,
                    Err(e) => log::error!(
                        "request_id={} could not count a failure: {e}",
                        ctx.request_id
                    ),
                }
                self.pace.observe(client, started.elapsed(), queued);
                Err(ServiceError::AuthenticationFailed(AuthFailure::Credentials))
            }
        }
    }

    /// Answers a locked-out call after as long as a failure of this client takes.
    async fn locked_out(&self, client: &str, started: Instant) -> ServiceError {
        let pace = self.pace.for_client(client);
        tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
        ServiceError::AuthenticationFailed(AuthFailure::LockedOut)
    }

    /// Logs and audits the locks a failure started.
    async fn audit_locks(
        &self,
        locks: Vec<LockStarted>,
        credentials: &Credentials,
        ctx: &RequestContext,
        account_id: Option<i64>,
    ) {
        for (key, until) in locks {
            if let ThrottleKey::Address(_) = key {
                self.locks.note(&key, until, now_ms());
            }
            let (what, detail) = match key {
                ThrottleKey::Pair(_) => ("pair", "PAIR_LOCKED"),
                ThrottleKey::Address(_) => ("address", "ADDRESS_THROTTLED"),
            };
            crate::metrics::lockout(what);
            let until = chrono::DateTime::from_timestamp_millis(until)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default();
            log::warn!(
                "request_id={} lockout: {what} locked until {until} after repeated failures",
                ctx.request_id
            );
            self.audit
                .record(
                    AuditRecord::of(ctx, Outcome::Lockout)
                        .account(account_id, Some(credentials.account_url.as_str()))
                        .caller(None, Some(credentials.login.as_str()))
                        .detail(Some(format!("{detail} until {until}"))),
                )
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
