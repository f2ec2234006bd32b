//! `ResetUserPasswordsRequest` (contract §11.4) as sent, and its result.

use super::super::envelope::Element;
use super::super::wire::{CallerWire, RequestOrigin, take_all, take_bool, take_text};
use super::update_passwords::item_fault;
use super::{Field, Limits};
use crate::domain::{
    Call, ParameterError, Reply, ResetRequest, ServiceError, delivery, reset_targets,
};

/// Every field is taken first, then the caller's parameters, then the targets and
/// `delivery`; an unverifiable token fails authentication last.
pub(super) fn decode(
    mut op: Element,
    security: Option<Element>,
    origin: &RequestOrigin,
    limits: &Limits,
) -> Result<Call, ServiceError> {
    let caller = CallerWire::take(&mut op, security)?;
    let mut users = Vec::new();
    for mut user in take_all(&mut op, "userId") {
        if !user.children.is_empty() {
            return Err(
                ParameterError::new("userId", "userId holds elements instead of text").into(),
            );
        }
        users.push(std::mem::take(&mut user.text));
    }
    let all_in_scope = take_bool(&mut op, "allInScope", "allInScope")?;
    let sent_delivery = take_text(&mut op, "delivery", "delivery")?;
    let caller = caller.into_domain(origin)?;
    let users = (!users.is_empty()).then_some(users);
    let targets = reset_targets(
        users,
        all_in_scope.unwrap_or(false),
        limits.batch_max,
        "userId",
    )?;
    let delivery = delivery(sent_delivery.as_deref(), &targets, "delivery")?;
    let link_base = origin.link_base.clone().ok_or_else(|| {
        ParameterError::new(
            "credentials",
            "the request names no host to build the reset link from",
        )
    })?;
    Ok(Call::ResetPasswords(ResetRequest {
        credentials: caller.into_credentials()?,
        targets,
        delivery,
        link_base,
    }))
}

/// One `item` per named user (with `allInScope`, per skipped user), then the counts.
pub(super) fn encode(reply: &Reply) -> Vec<Field> {
    let Reply::ResetsIssued(outcome) = reply else {
        return Vec::new();
    };
    let mut fields: Vec<Field> = outcome
        .items
        .iter()
        .map(|item| {
            let mut children = vec![
                Field::text("userId", item.user_id.as_str()),
                Field::text(
                    "success",
                    if item.result.is_ok() { "true" } else { "false" },
                ),
            ];
            match &item.result {
                Ok(issued) => {
                    children.push(Field::text("expiresAt", issued.expires_at.as_str()));
                    if let Some(link) = &issued.link {
                        children.push(Field::text("link", link.as_str()));
                    }
                }
                Err(error) => children.push(Field::Group("fault", item_fault(error))),
            }
            Field::Group("item", children)
        })
        .collect();
    fields.push(Field::text("reset", outcome.reset.to_string()));
    fields.push(Field::text("skipped", outcome.skipped.to_string()));
    fields
}
