//! `GetUserPasswordStatus` (contract §11.3): sign in, then read the target's status.

use chrono::SecondsFormat;

use super::super::change::{Changer, required_change_first};
use super::super::permission;
use super::super::{Attempt, Service, now_ms};
use crate::domain::records::{AuditRecord, ThrottleKey};
use crate::domain::{
    Email, Outcome, PasswordStatus, PasswordStatusRequest, Reply, RequestContext, ServiceError,
};

pub(super) const NAME: &str = "GetUserPasswordStatus";

pub(super) async fn run(
    service: &Service,
    req: PasswordStatusRequest,
    ctx: &RequestContext,
) -> Attempt {
    let mut caller = None;
    let result = async {
        let signed = service
            .sign_in(&req.credentials, Some(req.user_id.as_str()), ctx)
            .await?;
        // Reading costs no argon2 work beyond the sign-in.
        drop(signed.slot);
        caller = Some(signed.caller.ext_id.clone());
        let by = Changer {
            account: &signed.account,
            caller: &signed.caller,
            credentials: &req.credentials,
        };
        let mut target_id = None;
        let status = read(service, &by, &req, &mut target_id).await;
        let outcome = match &status {
            Ok(_) => Outcome::Ok,
            Err(e) => e.outcome(),
        };
        let row = AuditRecord::of(ctx, outcome)
            .account(
                Some(signed.account.id),
                Some(req.credentials.account_url.as_str()),
            )
            .caller(Some(signed.caller.id), Some(signed.caller.email.as_str()))
            .target(target_id, Some(req.user_id.as_str()));
        match &status {
            // Who looked at whose status is part of the trail too.
            Ok(_) => {
                service
                    .audit
                    .record(row.detail(Some("STATUS_READ".into())))
                    .await
            }
            Err(error) => service.audit_failure(error, row, ctx).await,
        }
        status
    }
    .await;
    Attempt {
        operation: NAME,
        account: Some(req.credentials.account_url.as_str().to_string()),
        caller,
        target: Some(req.user_id.as_str().to_string()),
        result: result.map(Reply::Status),
    }
}

async fn read(
    service: &Service,
    by: &Changer<'_>,
    req: &PasswordStatusRequest,
    target_id: &mut Option<i64>,
) -> Result<PasswordStatus, ServiceError> {
    required_change_first(by, req.user_id.as_str() == by.caller.ext_id)?;
    let target = service.find_target(by, req.user_id.as_str()).await?;
    *target_id = Some(target.user.id);
    permission::authorise_read(by.caller, &target).map_err(ServiceError::PermissionDenied)?;
    let pair = ThrottleKey::pair(
        req.credentials.account_url.key(),
        &Email::key_of(&target.user.email),
    );
    let locked_until = service
        .store
        .locked_until(pair, now_ms())
        .await
        .map_err(ServiceError::internal)?;
    let reset_pending = service
        .store
        .reset_pending(target.user.id, now_ms())
        .await
        .map_err(ServiceError::internal)?;
    let user = target.user;
    Ok(PasswordStatus {
        user_id: user.ext_id,
        status: user.status,
        externally_managed: user.externally_managed,
        password_changed_at: in_seconds(&user.password_changed_at),
        temporary: user.temporary,
        credential_version: user.credential_version,
        reset_pending,
        locked_until: locked_until.and_then(|ms| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        }),
    })
}

/// A stored RFC 3339 time as `xs:dateTime` in UTC, to the second.
fn in_seconds(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored).map_or_else(
        |_| stored.to_string(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        },
    )
}
