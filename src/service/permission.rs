//! The permission rules of contract §5, as a pure function of facts the store gathered.

use crate::domain::records::{TargetRecord, UserRecord};
use crate::domain::{DenyReason, Role, UserStatus};

/// Decides whether `caller` may set `target`'s password.
///
/// The rules of §5 are stated for an active, locally managed target; any other target is
/// refused for what it is (`USER_DEACTIVATED`, `EXTERNALLY_MANAGED`), whoever asks, as the
/// contract says. It tells an authenticated caller of the same account no more than
/// `UnknownUserFault` already does (that the id exists).
pub fn authorise(
    caller: &UserRecord,
    target: &TargetRecord,
    self_service: bool,
) -> Result<(), DenyReason> {
    if target.user.status == UserStatus::Deactivated {
        return Err(DenyReason::UserDeactivated);
    }
    if target.user.externally_managed {
        return Err(DenyReason::ExternallyManaged);
    }
    if caller.id == target.user.id {
        if !self_service {
            by_rank(caller, target).map_err(|_| DenyReason::SelfServiceDisabled)?;
        }
    } else {
        by_rank(caller, target)?;
    }
    Ok(())
}

/// Decides whether `caller` may read `target`'s password status (contract §11.3): as
/// for a change, except that a deactivated or externally managed target is readable
/// (its status says so), and a user may always read their own.
pub fn authorise_read(caller: &UserRecord, target: &TargetRecord) -> Result<(), DenyReason> {
    if caller.id == target.user.id {
        return Ok(());
    }
    by_rank(caller, target)
}

/// Rules 2–4: owner, account admin, then department scope with the no-wider-reach rule.
fn by_rank(caller: &UserRecord, target: &TargetRecord) -> Result<(), DenyReason> {
    match caller.role {
        Role::Owner => Ok(()),
        Role::AccountAdmin if target.user.role == Role::Owner => Err(DenyReason::OutranksCaller),
        Role::AccountAdmin => Ok(()),
        Role::DepartmentAdmin | Role::User => {
            if !target.in_scope {
                Err(DenyReason::NotInScope)
            } else if matches!(target.user.role, Role::Owner | Role::AccountAdmin)
                || !target.reach_in_scope
            {
                Err(DenyReason::OutranksCaller)
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, role: Role) -> UserRecord {
        UserRecord {
            id,
            ext_id: format!("u{id}"),
            email: format!("u{id}@example.com"),
            role,
            status: UserStatus::Active,
            externally_managed: false,
            password_hash: String::new(),
            temporary: false,
            password_changed_at: String::new(),
            credential_version: 1,
        }
    }

    fn target(user: UserRecord, in_scope: bool, reach_in_scope: bool) -> TargetRecord {
        TargetRecord {
            user,
            in_scope,
            reach_in_scope,
            history: Vec::new(),
        }
    }

    #[test]
    fn owner_and_account_admins() {
        let owner = user(1, Role::Owner);
        let admin = user(2, Role::AccountAdmin);
        assert_eq!(
            authorise(
                &owner,
                &target(user(2, Role::AccountAdmin), false, false),
                true
            ),
            Ok(())
        );
        assert_eq!(
            authorise(
                &admin,
                &target(user(3, Role::AccountAdmin), false, false),
                true
            ),
            Ok(())
        );
        assert_eq!(
            authorise(&admin, &target(user(1, Role::Owner), false, false), true),
            Err(DenyReason::OutranksCaller)
        );
    }

    #[test]
    fn scoped_callers() {
        let dept_admin = user(5, Role::DepartmentAdmin);
        assert_eq!(
            authorise(&dept_admin, &target(user(6, Role::User), true, true), true),
            Ok(())
        );
        assert_eq!(
            authorise(&dept_admin, &target(user(6, Role::User), false, true), true),
            Err(DenyReason::NotInScope)
        );
        assert_eq!(
            authorise(&dept_admin, &target(user(6, Role::User), true, false), true),
            Err(DenyReason::OutranksCaller)
        );
        assert_eq!(
            authorise(
                &dept_admin,
                &target(user(6, Role::AccountAdmin), true, true),
                true
            ),
            Err(DenyReason::OutranksCaller)
        );
    }

    #[test]
    fn self_service() {
        let learner = user(7, Role::User);
        assert_eq!(
            authorise(&learner, &target(learner.clone(), false, true), true),
            Ok(())
        );
        assert_eq!(
            authorise(&learner, &target(learner.clone(), false, true), false),
            Err(DenyReason::SelfServiceDisabled)
        );
        let owner = user(1, Role::Owner);
        assert_eq!(
            authorise(&owner, &target(owner.clone(), false, true), false),
            Ok(())
        );
    }

    /// Contract §5: a deactivated or externally managed target is refused for that,
    /// whoever asks, in or out of reach.
    #[test]
    fn a_deactivated_or_external_target_is_refused_for_what_it_is() {
        let owner = user(1, Role::Owner);
        let learner = user(7, Role::User);
        let mut gone = user(8, Role::User);
        gone.status = UserStatus::Deactivated;
        let mut sso = user(9, Role::User);
        sso.externally_managed = true;
        for caller in [&owner, &learner] {
            assert_eq!(
                authorise(caller, &target(gone.clone(), false, true), true),
                Err(DenyReason::UserDeactivated)
            );
            assert_eq!(
                authorise(caller, &target(sso.clone(), false, true), true),
                Err(DenyReason::ExternallyManaged)
            );
        }
    }
}
