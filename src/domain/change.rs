//! A password change as every front door builds it: its fields parsed in the contract's
//! order, and a batch's whole-call rules (§11.2). The front doors name the fields as
//! their clients know them; the rules are here, once.

use std::collections::HashSet;

use super::{Credentials, ParameterError, Password, UserId, Violation};

/// One password to set.
#[derive(Debug)]
pub struct PasswordChange {
    pub user_id: UserId,
    pub new_password: Password,
    /// Set by an administrator: the user must change it (ignored on a self-change).
    pub temporary: bool,
}

/// What a front door calls a change's fields, for its faults (`userId`, `item/userId`,
/// `items/userId`…).
#[derive(Debug, Clone, Copy)]
pub struct ChangeFields {
    pub user_id: &'static str,
    pub password: &'static str,
    pub confirm: &'static str,
}

impl PasswordChange {
    /// Parses a change: `userId`, then the password, then its confirmation (compared
    /// after NFKC normalisation, like every password comparison).
    pub fn parse(
        fields: &ChangeFields,
        user_id: Option<&str>,
        password: Option<&str>,
        confirm: Option<&str>,
        temporary: Option<bool>,
    ) -> Result<Self, ParameterError> {
        let user_id = user_id.ok_or_else(|| ParameterError::missing(fields.user_id))?;
        let user_id = UserId::parse(fields.user_id, user_id)?;
        let new_password = confirmed_password(fields, password, confirm)?;
        Ok(PasswordChange {
            user_id,
            new_password,
            temporary: temporary.unwrap_or(false),
        })
    }
}

/// A new password as every front door reads it: parsed, and its confirmation, when sent,
/// equal to it after NFKC normalisation (like every password comparison). Only the
/// `password` and `confirm` names of `fields` are used.
pub fn confirmed_password(
    fields: &ChangeFields,
    password: Option<&str>,
    confirm: Option<&str>,
) -> Result<Password, ParameterError> {
    let password = password.ok_or_else(|| ParameterError::missing(fields.password))?;
    let new_password = Password::parse(fields.password, password)?;
    if let Some(confirm) = confirm {
        if !Password::normalise(confirm).matches(&new_password) {
            return Err(ParameterError {
                parameter: fields.confirm,
                message: format!("{} does not match password", fields.confirm),
                violations: vec![Violation::ConfirmMismatch],
            });
        }
    }
    Ok(new_password)
}

/// `UpdateUserPasswords` (contract §11.2): one sign-in, then each item on its own.
#[derive(Debug)]
pub struct UpdatePasswordsRequest {
    pub credentials: Credentials,
    /// At least one, at most the batch limit, no `userId` twice ([`batch_items`]).
    pub items: Vec<PasswordChange>,
}

/// The names a front door gives a batch's fields: its list of items and their `userId`.
#[derive(Debug, Clone, Copy)]
pub struct BatchFields {
    pub items: &'static str,
    pub user_id: &'static str,
}

/// A batch's items (contract §11.2): from 1 to `batch_max`, each parsed by `parse` (its
/// fault's message says which item), no `userId` in two items — every whole-call rule,
/// decided before the caller signs in.
pub fn batch_items<T>(
    wires: Vec<T>,
    batch_max: usize,
    fields: &BatchFields,
    parse: impl Fn(T) -> Result<PasswordChange, ParameterError>,
) -> Result<Vec<PasswordChange>, ParameterError> {
    let count = wires.len();
    if !(1..=batch_max).contains(&count) {
        return Err(ParameterError::new(
            fields.items,
            format!("a batch holds from 1 to {batch_max} items; this one holds {count}"),
        ));
    }
    let mut seen = HashSet::with_capacity(count);
    let mut items = Vec::with_capacity(count);
    for (index, wire) in wires.into_iter().enumerate() {
        let numbered = |e: ParameterError| ParameterError {
            message: format!("item {}: {}", index + 1, e.message),
            ..e
        };
        let item = parse(wire).map_err(numbered)?;
        if !seen.insert(item.user_id.as_str().to_string()) {
            return Err(numbered(ParameterError::new(
                fields.user_id,
                "this userId is in an earlier item too",
            )));
        }
        items.push(item);
    }
    Ok(items)
}
