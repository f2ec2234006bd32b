//! `GetUserPasswordStatusRequest` (contract §11.3) as sent, and its result.

use super::super::envelope::Element;
use super::super::wire::{CallerWire, RequestOrigin, take_text};
use super::{Field, Limits};
use crate::domain::{Call, ParameterError, PasswordStatusRequest, Reply, ServiceError, UserId};

pub(super) fn decode(
    mut op: Element,
    security: Option<Element>,
    origin: &RequestOrigin,
    _limits: &Limits,
) -> Result<Call, ServiceError> {
    let caller = CallerWire::take(&mut op, security)?;
    let user_id = take_text(&mut op, "userId", "userId")?;
    let caller = caller.into_domain(origin)?;
    let user_id = UserId::parse(
        "userId",
        &user_id.ok_or_else(|| ParameterError::missing("userId"))?,
    )?;
    Ok(Call::PasswordStatus(PasswordStatusRequest {
        credentials: caller.into_credentials()?,
        user_id,
    }))
}

/// The status's fields in the XSD's order; `lockedUntil` only while locked.
pub(super) fn encode(reply: &Reply) -> Vec<Field> {
    let Reply::Status(s) = reply else {
        return Vec::new();
    };
    let flag = |b: bool| if b { "true" } else { "false" };
    let mut fields = vec![
        Field::text("userId", s.user_id.as_str()),
        Field::text("status", s.status.as_str()),
        Field::text("externallyManaged", flag(s.externally_managed)),
        Field::text("passwordChangedAt", s.password_changed_at.as_str()),
        Field::text("temporary", flag(s.temporary)),
        Field::text("credentialVersion", s.credential_version.to_string()),
        Field::text("resetPending", flag(s.reset_pending)),
    ];
    if let Some(until) = &s.locked_until {
        fields.push(Field::text("lockedUntil", until.as_str()));
    }
    fields
}
