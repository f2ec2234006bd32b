//! Setting a password with a reset link (contract §12; the form and
//! `POST /api/password-resets/{token}`): no sign-in — the link is the authority.

use super::super::{Attempt, Service, now_ms};
use crate::domain::{LinkChangeRequest, Outcome, Reply, RequestContext, ServiceError};

pub(super) const NAME: &str = "ResetLink";

pub(super) async fn run(
    service: &Service,
    req: LinkChangeRequest,
    ctx: &RequestContext,
) -> Attempt {
    let token_hash = req.token.hash();
    let result = async {
        let owner = service
            .store
            .find_link(token_hash, now_ms())
            .await
            .map_err(ServiceError::internal)?;
        let Some(owner) = owner else {
            // Unknown, expired, spent or dead: one answer, counted against the client's
            // address like a failed sign-in (contract §12, §10).
            service.refuse(Outcome::LinkInvalid, None, ctx).await;
            return Err(ServiceError::LinkInvalid);
        };
        let target = owner.user.ext_id.clone();
        service
            .change_by_link(owner, token_hash, &req.new_password, ctx)
            .await
            .map(|()| target)
    }
    .await;
    let target = result.as_ref().ok().cloned();
    Attempt {
        operation: NAME,
        account: None,
        caller: target.clone(),
        target,
        result: result.map(|_| Reply::PasswordUpdated),
    }
}

impl Service {
    /// The policy the form of a live link states; an unknown, expired, used or dead
    /// link is refused, and counted against the client's address, like its submission.
    pub async fn inspect_link(
        &self,
        token: &crate::domain::ResetToken,
        ctx: &RequestContext,
    ) -> Result<crate::domain::PasswordPolicy, ServiceError> {
        let owner = self
            .store
            .find_link(token.hash(), now_ms())
            .await
            .map_err(ServiceError::internal)?;
        match owner {
            Some(owner) => Ok(owner.policy),
            None => {
                self.refuse(Outcome::LinkInvalid, None, ctx).await;
                Err(ServiceError::LinkInvalid)
            }
        }
    }
}
