//! One module per operation: each takes its domain request, runs the shared steps
//! (`sign_in`, `change`) and answers its reply. Adding an operation is a module here,
//! a variant of [`Call`] and [`Reply`], and its decoding and writing in each front door.

mod update_password;

use super::{Attempt, Service};
use crate::domain::{Call, RequestContext};

/// Runs `call`.
pub(super) async fn run(service: &Service, call: Call, ctx: &RequestContext) -> Attempt {
    match call {
        Call::UpdatePassword(request) => update_password::run(service, request, ctx).await,
    }
}
