//! One password change by a signed-in caller: find the target → authorise (§5) →
//! check the policy (§6) → hash and apply (§7). Every operation that sets a password
//! runs these steps; none copies them.

use super::permission;
use super::{Service, now_ms};
use crate::crypto::Slot;
use crate::domain::PasswordPolicy;
use crate::domain::records::{
    AccountRecord, Applied, AuditRecord, ChangeRecord, LinkOwner, TargetRecord, UserRecord,
};
use crate::domain::{
    Credentials, DenyReason, FrontDoor, ParameterError, Password, PasswordChange, RequestContext,
    ServiceError, Violation,
};

/// How many times a change overtaken by another change of its user is checked and tried
/// again before the client is told to retry (`ServerBusyFault`): each round, one of the
/// racing changes commits.
const OVERTAKEN_ATTEMPTS: usize = 32;

/// The hashing slot a change's argon2 work runs in.
pub(super) enum Hashing {
    /// Already held (the sign-in's, for the call's one change).
    Held(Slot),
    /// Taken once the checks that need no argon2 have passed (a batch's later items):
    /// the slot is held for argon2 only, and an item refused before it needs none.
    Admit,
}

/// Who changes a password: the signed-in caller and what they signed in with.
pub(super) struct Changer<'a> {
    pub account: &'a AccountRecord,
    pub caller: &'a UserRecord,
    pub credentials: &'a Credentials,
}

impl Changer<'_> {
    /// An audit row of this caller's call, about `target` (as resolved, as named).
    pub(super) fn audit(
        &self,
        ctx: &RequestContext,
        outcome: crate::domain::Outcome,
        target: (Option<i64>, Option<&str>),
    ) -> AuditRecord {
        AuditRecord::of(ctx, outcome)
            .account(
                Some(self.account.id),
                Some(self.credentials.account_url.as_str()),
            )
            .caller(Some(self.caller.id), Some(self.caller.email.as_str()))
            .target(target.0, target.1)
    }
}

impl Service {
    /// Sets `change.user_id`'s password, if `by` may and the policy allows it; `batch`
    /// says it is an item of `UpdateUserPasswords` (for the event's `via`). The argon2
    /// work runs in `slot`, given back before the database write. A failure is audited
    /// here; a success in the change's own transaction.
    pub(super) async fn change_password(
        &self,
        by: &Changer<'_>,
        slot: Hashing,
        change: &PasswordChange,
        batch: bool,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        let mut target_id = None;
        let result = self
            .try_change(by, slot, change, batch, ctx, &mut target_id)
            .await;
        if let Err(error) = &result {
            let row = by.audit(
                ctx,
                error.outcome(),
                (target_id, Some(change.user_id.as_str())),
            );
            self.audit_failure(error, row, ctx).await;
        }
        result
    }

    async fn try_change(
        &self,
        by: &Changer<'_>,
        slot: Hashing,
        change: &PasswordChange,
        batch: bool,
        ctx: &RequestContext,
        target_id: &mut Option<i64>,
    ) -> Result<(), ServiceError> {
        let own = change.user_id.as_str() == by.caller.ext_id;
        required_change_first(by, own)?;
        let target = self.find_target(by, change.user_id.as_str()).await?;
        *target_id = Some(target.user.id);

        permission::authorise(by.caller, &target, by.account.policy.self_service)
            .map_err(ServiceError::PermissionDenied)?;

        let new = &change.new_password;
        let violations = self
            .check_text(&by.account.policy, &target.user.email, new)
            .await?;
        let slot = match slot {
            Hashing::Held(slot) => slot,
            Hashing::Admit => self.hasher.admit(&ctx.client_key).await?,
        };
        // For a self-change the caller just proved the current password.
        let proved = (by.caller.id == target.user.id).then_some(&by.credentials.password);
        self.check_hashes(&slot, &target, proved, new, violations)
            .await?;

        let new_hash = self.hasher.hash(&slot, new).await?;
        drop(slot);
        let via = match (batch, ctx.front) {
            (true, _) => "batch",
            (false, FrontDoor::Soap) => "soap",
            (false, FrontDoor::Rest) => "rest",
            (false, FrontDoor::Page) => "reset_link",
        };
        // The change commits only over the credential version it was checked against. If
        // another change of the user (through this instance or another) committed first,
        // the user is read again and the new password checked against what that change
        // stored — the hash is kept: it does not depend on the stored state — then tried
        // again.
        let mut target = target;
        for _ in 0..OVERTAKEN_ATTEMPTS {
            let applied = self
                .store
                .apply_change(
                    ChangeRecord {
                        account_id: by.account.id,
                        target_id: target.user.id,
                        new_hash: new_hash.clone(),
                        // A self-change is never temporary, and clears the flag (§11.1).
                        temporary: change.temporary && by.caller.id != target.user.id,
                        via,
                        history_keep: by.account.policy.history,
                        spends_link: None,
                        read_version: target.user.credential_version,
                        audit: by.audit(
                            ctx,
                            crate::domain::Outcome::Ok,
                            (Some(target.user.id), Some(&target.user.ext_id)),
                        ),
                    },
                    now_ms(),
                )
                .await
                .map_err(ServiceError::internal)?;
            match applied {
                Applied::Changed(_) => return Ok(()),
                Applied::LinkDead => break,
                Applied::Overtaken => {
                    target = self.find_target(by, change.user_id.as_str()).await?;
                    permission::authorise(by.caller, &target, by.account.policy.self_service)
                        .map_err(ServiceError::PermissionDenied)?;
                    let slot = self.hasher.admit(&ctx.client_key).await?;
                    // What the caller proved is no longer the current password.
                    self.check_hashes(&slot, &target, None, new, Vec::new())
                        .await?;
                }
            }
        }
        // Overtaken again and again (a storm of changes of one user): try again later.
        Err(ServiceError::ServerBusy)
    }

    /// Sets the password of a reset link's owner, exactly as a self-change would be
    /// checked (the policy, the current password and the history; whatever the
    /// account's self-service setting: whoever requested the reset authorised it), and
    /// spends the link in the change's own transaction: of two submissions of one link,
    /// at most one sets the password.
    pub(super) async fn change_by_link(
        &self,
        owner: LinkOwner,
        token_hash: [u8; 32],
        new: &Password,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        let target = TargetRecord {
            user: owner.user,
            in_scope: true,
            reach_in_scope: true,
            history: owner.history,
        };
        let audit = |outcome| {
            AuditRecord::of(ctx, outcome)
                .account(Some(owner.account_id), None)
                .caller(Some(target.user.id), Some(&target.user.email))
                .target(Some(target.user.id), Some(&target.user.ext_id))
                .detail(Some("RESET_LINK".into()))
        };
        let result = async {
            let violations = self
                .check_text(&owner.policy, &target.user.email, new)
                .await?;
            let slot = self.hasher.admit(&ctx.client_key).await?;
            self.check_hashes(&slot, &target, None, new, violations)
                .await?;
            let new_hash = self.hasher.hash(&slot, new).await?;
            drop(slot);
            let applied = self
                .store
                .apply_change(
                    ChangeRecord {
                        account_id: owner.account_id,
                        target_id: target.user.id,
                        new_hash,
                        temporary: false,
                        via: "reset_link",
                        history_keep: owner.policy.history,
                        spends_link: Some(token_hash),
                        read_version: target.user.credential_version,
                        audit: audit(crate::domain::Outcome::Ok),
                    },
                    now_ms(),
                )
                .await
                .map_err(ServiceError::internal)?;
            // Overtaken: another change committed first, and any change kills the link.
            match applied {
                Applied::Changed(_) => Ok(()),
                Applied::LinkDead | Applied::Overtaken => Err(ServiceError::LinkInvalid),
            }
        }
        .await;
        if let Err(error) = &result {
            self.audit_failure(error, audit(error.outcome()), ctx).await;
        }
        result
    }

    /// The target within the caller's account, with the facts §5 and the history
    /// check need.
    pub(super) async fn find_target(
        &self,
        by: &Changer<'_>,
        user_id: &str,
    ) -> Result<TargetRecord, ServiceError> {
        self.store
            .find_target(
                by.account.id,
                by.caller.id,
                user_id.to_string(),
                by.account.policy.history,
            )
            .await
            .map_err(ServiceError::internal)?
            .ok_or(ServiceError::UnknownUser)
    }

    /// The rules of §6 that need no argon2 (length, e-mail, zxcvbn) the new password
    /// breaks.
    async fn check_text(
        &self,
        policy: &PasswordPolicy,
        email: &str,
        new: &Password,
    ) -> Result<Vec<Violation>, ServiceError> {
        // zxcvbn costs ~0.5 ms on an ordinary password and at most ~4 ms on a crafted
        // one (its input is bounded, `domain::policy::MAX_SCORED_CHARS`): it runs on a
        // blocking thread (inside the call's slot for a single change, before a batch
        // item takes its own), never on the executor where it would stall every other
        // connection of the worker. Not at the compute gate:
        // a gate pass per request for a sub-millisecond check left cores idle in the
        // hand-offs (the kit's heavy rows at c=8: 82–86 % of the limit instead of
        // 88–96 %), and bounded, it cannot take the cores from argon2.
        let (policy, password, email) = (policy.clone(), new.clone(), email.to_string());
        tokio::task::spawn_blocking(move || policy.check_text(&password, &email))
            .await
            .map_err(ServiceError::internal)
    }

    /// With the text rules' `violations`, every rule of §6 the new password breaks, or
    /// none: the current password and the history, verified in `slot`. `proved` is the
    /// current password when the caller just proved it (a self-change): the plaintexts
    /// are compared instead of paying for another argon2 verify.
    async fn check_hashes(
        &self,
        slot: &Slot,
        target: &TargetRecord,
        proved: Option<&Password>,
        new: &Password,
        mut violations: Vec<Violation>,
    ) -> Result<(), ServiceError> {
        let own = proved.is_some();
        let mut to_verify = target.history.clone();
        match proved {
            Some(current) => {
                if current.matches(new) {
                    violations.push(Violation::SameAsCurrent);
                }
            }
            None => to_verify.insert(0, target.user.password_hash.clone()),
        }
        let matched = self.hasher.matches_any(slot, to_verify, new).await?;
        let (current, history) = if own {
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
        if violations.is_empty() {
            return Ok(());
        }
        violations.sort();
        Err(ServiceError::WrongParameters(policy_error(violations)))
    }
}

/// A caller whose own password is temporary may only act on themself (§11.1): decided
/// before the target is looked up, so it says nothing about other users.
pub(super) fn required_change_first(by: &Changer<'_>, own: bool) -> Result<(), ServiceError> {
    if by.caller.temporary && !own {
        return Err(ServiceError::PermissionDenied(
            DenyReason::PasswordChangeRequired,
        ));
    }
    Ok(())
}

fn policy_error(violations: Vec<Violation>) -> ParameterError {
    let reasons: Vec<&str> = violations.iter().map(|v| v.describe()).collect();
    ParameterError {
        parameter: "password",
        message: format!("The new password {}.", reasons.join("; it ")),
        violations,
    }
}
