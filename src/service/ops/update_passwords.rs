//! `UpdateUserPasswords` (contract §11.2): one sign-in, then each item decided and
//! applied on its own — its own hashing slot, transaction and audit row — in order.
//!
//! Items run one after another: a batch costs one sign-in verify plus, per item, the
//! same-as-current verify and the hash, on one core at a time, so that a big batch
//! shares the cores with other callers like any other request (admission gives each
//! item's slot to whoever holds the fewest, and an item takes it only for its argon2
//! work, after its lookup, permission and text checks). Concurrent batches fill the
//! cores.

use super::super::change::{Changer, Hashing};
use super::super::{Attempt, Service};
use crate::domain::{ItemResult, Reply, RequestContext, ServiceError, UpdatePasswordsRequest};

pub(super) const NAME: &str = "UpdateUserPasswords";

pub(super) async fn run(
    service: &Service,
    req: UpdatePasswordsRequest,
    ctx: &RequestContext,
) -> Attempt {
    let mut caller = None;
    let result = async {
        let signed = service.sign_in(&req.credentials, None, ctx).await?;
        caller = Some(signed.caller.ext_id.clone());
        let by = Changer {
            account: &signed.account,
            caller: &signed.caller,
            credentials: &req.credentials,
        };
        let mut slot = Some(signed.slot);
        let mut results = Vec::with_capacity(req.items.len());
        for item in &req.items {
            // The sign-in's slot serves the first item; each next one takes its own once
            // its checks without argon2 have passed.
            let hashing = slot.take().map_or(Hashing::Admit, Hashing::Held);
            let result = service.change_password(&by, hashing, item, true, ctx).await;
            if let Err(ServiceError::Internal(source)) = &result {
                log::error!("request_id={} internal error: {source}", ctx.request_id);
            }
            results.push(ItemResult {
                user_id: item.user_id.as_str().to_string(),
                result,
            });
        }
        Ok::<_, ServiceError>(results)
    }
    .await;
    Attempt {
        operation: NAME,
        account: Some(req.credentials.account_url.as_str().to_string()),
        caller,
        target: None,
        result: result.map(Reply::PasswordsUpdated),
    }
}
