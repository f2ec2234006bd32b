//! One module per operation: each takes its domain request, runs the shared steps
//! (`sign_in`, `change`) and answers its reply. Adding an operation is a module here,
//! a variant of [`Call`] and [`Reply`], and its decoding and writing in each front door.

mod change_by_link;
mod password_status;
mod reset_passwords;
mod update_password;
mod update_passwords;

use super::{Attempt, Service};
use crate::domain::{Call, RequestContext};

/// Runs `call`.
pub(super) async fn run(service: &Service, call: Call, ctx: &RequestContext) -> Attempt {
    match call {
        Call::UpdatePassword(request) => update_password::run(service, request, ctx).await,
        Call::UpdatePasswords(request) => update_passwords::run(service, request, ctx).await,
        Call::PasswordStatus(request) => password_status::run(service, request, ctx).await,
        Call::ResetPasswords(request) => reset_passwords::run(service, request, ctx).await,
        Call::ChangeByLink(request) => change_by_link::run(service, request, ctx).await,
    }
}
