//! `UpdateUserPassword` (contract §3): sign in, then one change.

use crate::domain::{Reply, RequestContext, UpdatePasswordRequest};
use crate::service::change::{Changer, Hashing};
use crate::service::{Attempt, Service};

pub(super) const NAME: &str = "UpdateUserPassword";

pub(super) async fn run(
    service: &Service,
    req: UpdatePasswordRequest,
    ctx: &RequestContext,
) -> Attempt {
    let mut caller = None;
    let result = async {
        let signed = service
            .sign_in(&req.credentials, Some(req.change.user_id.as_str()), ctx)
            .await?;
        caller = Some(signed.caller.ext_id.clone());
        let by = Changer {
            account: &signed.account,
            caller: &signed.caller,
            credentials: &req.credentials,
        };
        service
            .change_password(&by, Hashing::Held(signed.slot), &req.change, false, ctx)
            .await
    }
    .await;
    Attempt {
        operation: NAME,
        account: Some(req.credentials.account_url.as_str().to_string()),
        caller,
        target: Some(req.change.user_id.as_str().to_string()),
        result: result.map(|()| Reply::PasswordUpdated),
    }
}
