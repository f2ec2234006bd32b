//! `UpdateUserPasswordsRequest` (contract §11.2) as sent, and its result.

use secrecy::{ExposeSecret, SecretString};

use super::super::envelope::Element;
use super::super::fault::Fault;
use super::super::wire::{CallerWire, RequestOrigin, check_group, take_all, take_bool, take_text};
use super::{Field, Limits};
use crate::domain::{
    BatchFields, Call, ChangeFields, ParameterError, PasswordChange, Reply, ServiceError,
    UpdatePasswordsRequest, batch_items,
};

/// Decodes the operation element into a call. Every whole-call fault (a malformed or
/// missing field of any item, no item or too many, a `userId` twice) is decided here,
/// before the caller signs in and before any item is applied.
pub(super) fn decode(
    mut op: Element,
    security: Option<Element>,
    origin: &RequestOrigin,
    limits: &Limits,
) -> Result<Call, ServiceError> {
    let caller = CallerWire::take(&mut op, security)?;
    let wires = take_all(&mut op, "item");
    let caller = caller.into_domain(origin)?;
    let items = batch_items(wires, limits.batch_max, &BATCH, decode_item)?;
    Ok(Call::UpdatePasswords(UpdatePasswordsRequest {
        credentials: caller.into_credentials()?,
        items,
    }))
}

const BATCH: BatchFields = BatchFields {
    items: "item",
    user_id: "item/userId",
};

const FIELDS: ChangeFields = ChangeFields {
    user_id: "item/userId",
    password: "item/password",
    confirm: "item/passwordConfirm",
};

fn decode_item(mut item: Element) -> Result<PasswordChange, ParameterError> {
    check_group(&item, "item")?;
    let user_id = take_text(&mut item, "userId", "item/userId")?;
    let password = take_text(&mut item, "password", "item/password")?.map(SecretString::from);
    let confirm =
        take_text(&mut item, "passwordConfirm", "item/passwordConfirm")?.map(SecretString::from);
    let temporary = take_bool(&mut item, "temporary", "item/temporary")?;
    PasswordChange::parse(
        &FIELDS,
        user_id.as_deref(),
        password.as_ref().map(ExposeSecret::expose_secret),
        confirm.as_ref().map(ExposeSecret::expose_secret),
        temporary,
    )
}

/// One `item` per request item, in order: `userId`, `success`, and for a failure its
/// `fault` — the detail of the single call's fault, with its `type` first.
pub(super) fn encode(reply: &Reply) -> Vec<Field> {
    let Reply::PasswordsUpdated(items) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| {
            let mut fields = vec![
                Field::text("userId", item.user_id.as_str()),
                Field::text(
                    "success",
                    if item.result.is_ok() { "true" } else { "false" },
                ),
            ];
            if let Err(error) = &item.result {
                fields.push(Field::Group("fault", item_fault(error)));
            }
            Field::Group("item", fields)
        })
        .collect()
}

/// An item's fault: the typed detail its single call would carry.
pub(super) fn item_fault(error: &ServiceError) -> Vec<Field> {
    let fault = Fault::from_service_error(error);
    let Some(detail) = fault.detail else {
        // An internal error has no typed detail: it says nothing more here either.
        return vec![
            Field::text("type", "ServerFault"),
            Field::text("code", "INTERNAL"),
            Field::text("message", error.message()),
        ];
    };
    let mut fields = vec![
        Field::text("type", detail.element),
        Field::text("code", detail.code),
        Field::text("message", detail.message),
    ];
    fields.extend(
        detail
            .extras
            .into_iter()
            .map(|(name, value)| Field::Text(name, value)),
    );
    fields
}
