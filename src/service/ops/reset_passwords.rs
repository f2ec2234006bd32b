//! `ResetUserPasswords` (contract §11.4): sign in, then a one-time link for each user
//! the caller may change — named, or every one of their reach (`allInScope`, read page
//! by page from the store so that a subtree of 100,000 users is never in memory at once).

use chrono::SecondsFormat;

use super::super::change::{Changer, required_change_first};
use super::super::permission;
use super::super::{Attempt, Service, now_ms};
use crate::domain::records::{ResetRecord, TargetRecord, UserRecord};
use crate::domain::{
    Delivery, IssuedLink, Outcome, Reply, RequestContext, ResetItem, ResetOutcome, ResetRequest,
    ResetTargets, ResetToken, ServiceError,
};

pub(super) const NAME: &str = "ResetUserPasswords";

/// Users read, and links issued in one transaction, per page of `allInScope`.
const PAGE: usize = 1000;

pub(super) async fn run(service: &Service, req: ResetRequest, ctx: &RequestContext) -> Attempt {
    let mut caller = None;
    let result = async {
        let signed = service.sign_in(&req.credentials, None, ctx).await?;
        // A reset costs no argon2 work beyond the sign-in.
        drop(signed.slot);
        caller = Some(signed.caller.ext_id.clone());
        let by = Changer {
            account: &signed.account,
            caller: &signed.caller,
            credentials: &req.credentials,
        };
        // A caller who must change their own password first may do nothing else (§11.1):
        // the whole call is refused, whoever it names.
        required_change_first(&by, false)?;
        match &req.targets {
            ResetTargets::Users(users) => named(service, &by, &req, users, ctx).await,
            ResetTargets::AllInScope => all_in_scope(service, &by, &req, ctx).await,
        }
    }
    .await;
    Attempt {
        operation: NAME,
        account: Some(req.credentials.account_url.as_str().to_string()),
        caller,
        target: None,
        result: result.map(Reply::ResetsIssued),
    }
}

/// Named users, in order: each decided by §5 (deactivated and externally managed users
/// are refused, as for a change), then the links issued in one transaction.
async fn named(
    service: &Service,
    by: &Changer<'_>,
    req: &ResetRequest,
    users: &[crate::domain::UserId],
    ctx: &RequestContext,
) -> Result<ResetOutcome, ServiceError> {
    let mut items = Vec::with_capacity(users.len());
    let mut records = Vec::new();
    for user_id in users {
        let decided = match service.find_target(by, user_id.as_str()).await {
            Ok(target) => permission::authorise(by.caller, &target, by.account.policy.self_service)
                .map(|()| target)
                .map_err(ServiceError::PermissionDenied),
            Err(e) => Err(e),
        };
        let result = match decided {
            Ok(target) => {
                let (record, link) = issue(service, by, req, &target.user, ctx);
                records.push(record);
                Ok(link)
            }
            Err(error) => {
                let row = by.audit(ctx, error.outcome(), (None, Some(user_id.as_str())));
                service.audit_failure(&error, row, ctx).await;
                Err(error)
            }
        };
        items.push(ResetItem {
            user_id: user_id.as_str().to_string(),
            result,
        });
    }
    let reset = records.len();
    service
        .store
        .issue_resets(records)
        .await
        .map_err(ServiceError::internal)?;
    let skipped = items.len() - reset;
    Ok(ResetOutcome {
        items,
        reset,
        skipped,
    })
}

/// Every user of the caller's reach, page by page: those §5 allows get a link, the
/// others (deactivated, externally managed, outranking the caller) are listed as skipped.
async fn all_in_scope(
    service: &Service,
    by: &Changer<'_>,
    req: &ResetRequest,
    ctx: &RequestContext,
) -> Result<ResetOutcome, ServiceError> {
    let mut outcome = ResetOutcome {
        items: Vec::new(),
        reset: 0,
        skipped: 0,
    };
    let mut after = (0, 0);
    loop {
        let page = service
            .store
            .reach_page(by.account.id, by.caller.id, by.caller.role, after, PAGE)
            .await
            .map_err(ServiceError::internal)?;
        let Some(last) = page.last() else {
            break;
        };
        after = (last.department_id, last.user.id);
        let full = page.len() == PAGE;
        let mut records = Vec::with_capacity(page.len());
        for reached in page {
            let target = TargetRecord {
                user: reached.user,
                in_scope: true,
                reach_in_scope: reached.reach_in_scope,
                history: Vec::new(),
            };
            match permission::authorise(by.caller, &target, by.account.policy.self_service) {
                Ok(()) => {
                    records.push(issue(service, by, req, &target.user, ctx).0);
                }
                Err(reason) => {
                    let error = ServiceError::PermissionDenied(reason);
                    let row = by.audit(
                        ctx,
                        Outcome::PermissionDenied,
                        (Some(target.user.id), Some(&target.user.ext_id)),
                    );
                    service.audit_failure(&error, row, ctx).await;
                    outcome.items.push(ResetItem {
                        user_id: target.user.ext_id,
                        result: Err(error),
                    });
                    outcome.skipped += 1;
                }
            }
        }
        outcome.reset += records.len();
        service
            .store
            .issue_resets(records)
            .await
            .map_err(ServiceError::internal)?;
        if !full {
            break;
        }
    }
    Ok(outcome)
}

/// A link for `user`: the record to store (only the token's hash; the link in the event
/// with `delivery=notify`) and what the caller is told.
fn issue(
    service: &Service,
    by: &Changer<'_>,
    req: &ResetRequest,
    user: &UserRecord,
    ctx: &RequestContext,
) -> (ResetRecord, IssuedLink) {
    let token = ResetToken::generate();
    let ttl_ms = i64::try_from(service.reset_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_ms = now_ms().saturating_add(ttl_ms);
    let expires_at = chrono::DateTime::from_timestamp_millis(expires_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default();
    let link = format!("{}/reset/{}", req.link_base, token.as_str());
    let record = ResetRecord {
        account_id: by.account.id,
        user_id: user.id,
        token_hash: token.hash(),
        expires_ms,
        notify: (req.delivery == Delivery::Notify).then(|| (link.clone(), expires_at.clone())),
        audit: by
            .audit(ctx, Outcome::Ok, (Some(user.id), Some(&user.ext_id)))
            .detail(Some("RESET_LINK_ISSUED".into())),
    };
    let told = IssuedLink {
        expires_at,
        link: (req.delivery == Delivery::Return).then_some(link),
    };
    (record, told)
}
