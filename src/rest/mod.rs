//! The REST/JSON front door (contract §13): the same operations as the SOAP endpoint,
//! decoded from JSON and HTTP Basic into the same domain calls, answered as JSON or as
//! RFC 9457 problems (`problem`). The OpenAPI document (`openapi`) is generated from the
//! types and handlers here.
//!
//! Architecture invariant: like `soap`, this module decides nothing: it reads a request
//! into a `domain::Call`, hands it to the service, and writes the answer.

pub mod openapi;
pub mod problem;
pub mod wire;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::domain::{
    AccountUrl, AuthFailure, BatchFields, Call, ChangeFields, Credentials, Email, ItemResult,
    LinkChangeRequest, Login, ParameterError, Password, PasswordChange, PasswordStatusRequest,
    Reply, RequestContext, ResetRequest, ResetToken, ServiceError, UpdatePasswordRequest,
    UpdatePasswordsRequest, UserId, batch_items, confirmed_password, delivery, reset_targets,
};
use crate::front::{Answer, CallLog, Incoming, TransportError};
use crate::service::{Attempt, Service};
use problem::{PROBLEM_JSON, Problem};
use wire::{
    ItemResultBody, ItemResultsBody, LinkChangeBody, PasswordChangeBody, PasswordStatusBody,
    PasswordsBody, ResetItemBody, ResetsBody, ResetsResultBody, Success,
};

const JSON: &str = "application/json";

/// Which operation a request's method and path ask for.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// `PATCH /api/users/{userId}/password`
    ChangePassword { user_id: &'a str },
    /// `GET /api/users/{userId}/password`
    ReadStatus { user_id: &'a str },
    /// `POST /api/passwords`
    UpdatePasswords,
    /// `POST /api/password-resets`
    ResetPasswords,
    /// `POST /api/password-resets/{token}`
    ChangeByLink { token: &'a str },
}

impl Route<'_> {
    /// The operation's name, as the SOAP endpoint and the log line call it.
    fn operation(self) -> &'static str {
        match self {
            Route::ChangePassword { .. } => "UpdateUserPassword",
            Route::ReadStatus { .. } => "GetUserPasswordStatus",
            Route::UpdatePasswords => "UpdateUserPasswords",
            Route::ResetPasswords => "ResetUserPasswords",
            Route::ChangeByLink { .. } => "ResetLink",
        }
    }

    fn has_body(self) -> bool {
        !matches!(self, Route::ReadStatus { .. })
    }
}

/// The whole pipeline for a request the transport read: decode, run, answer.
pub async fn handle(
    service: &Service,
    route: Route<'_>,
    body: &[u8],
    incoming: &Incoming<'_>,
    batch_max: usize,
    ctx: &RequestContext,
) -> Answer {
    if route.has_body() && !is_json(incoming.content_type) {
        const CODE: &str = "UNSUPPORTED_MEDIA_TYPE";
        service.refuse_unread(CODE, ctx).await;
        let mut answer = problem_answer(&Problem::unsupported_media_type());
        answer.log = CallLog::refused(CODE);
        return answer;
    }
    let attempt = match decode(route, body, incoming, batch_max) {
        Ok(call) => service.handle(call, ctx).await,
        Err(error) => service.reject(route.operation(), error, ctx).await,
    };
    answer(attempt)
}

/// A request the transport refused, audited and answered as a problem.
pub async fn refuse_transport(
    service: &Service,
    error: TransportError,
    ctx: &RequestContext,
) -> Answer {
    service.refuse_unread(error.code(), ctx).await;
    problem_answer(&Problem::from_transport_error(error)).refusing(error)
}

/// The first half of the pipeline: the request as a domain call.
pub fn decode(
    route: Route<'_>,
    body: &[u8],
    incoming: &Incoming<'_>,
    batch_max: usize,
) -> Result<Call, ServiceError> {
    match route {
        Route::ChangePassword { user_id } => change_password(user_id, body, incoming),
        Route::ReadStatus { user_id } => read_status(user_id, incoming),
        Route::UpdatePasswords => update_passwords(body, incoming, batch_max),
        Route::ResetPasswords => reset_passwords(body, incoming, batch_max),
        Route::ChangeByLink { token } => change_by_link(token, body),
    }
}

/// Sets one user's password: an administrator's change (HTTP Basic), or a self-change
/// by the user in the path with `currentPassword` (Fusion's `PATCH /users/{id}`).
#[utoipa::path(
    patch,
    path = "/api/users/{userId}/password",
    operation_id = "UpdateUserPassword",
    tag = "passwords",
    params(
        ("userId" = String, Path, description = "The user whose password is set"),
        ("X-Account-Url" = Option<String>, Header, description = "The caller's account; else the request's host"),
    ),
    request_body(content = PasswordChangeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The password was set", body = Success),
        (status = 400, description = "Wrong parameters (a field, the policy)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Authorization failed", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Permission denied", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Server busy", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("basic" = []))
)]
fn change_password(
    user_id: &str,
    body: &[u8],
    incoming: &Incoming<'_>,
) -> Result<Call, ServiceError> {
    let body: PasswordChangeBody = json(body)?;
    let authorization = basic_credentials(incoming)?;
    let change = PasswordChange::parse(
        &CHANGE_FIELDS,
        Some(user_id),
        body.password.as_ref().map(ExposeSecret::expose_secret),
        body.password_confirm
            .as_ref()
            .map(ExposeSecret::expose_secret),
        body.temporary,
    )?;
    let credentials = match (authorization, body.current_password) {
        (Some(credentials), _) => credentials,
        (None, Some(current)) => Credentials {
            account_url: account(incoming)?,
            login: Login::UserId(change.user_id.clone()),
            password: Password::parse("currentPassword", current.expose_secret())?,
        },
        (None, None) => signed(None)?,
    };
    Ok(Call::UpdatePassword(UpdatePasswordRequest {
        credentials,
        change,
    }))
}

/// Reads a user's password status (contract §11.3).
#[utoipa::path(
    get,
    path = "/api/users/{userId}/password",
    operation_id = "GetUserPasswordStatus",
    tag = "passwords",
    params(
        ("userId" = String, Path, description = "The user whose status is read"),
        ("X-Account-Url" = Option<String>, Header, description = "The caller's account; else the request's host"),
    ),
    responses(
        (status = 200, description = "The status", body = PasswordStatusBody),
        (status = 400, description = "Wrong parameters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Authorization failed", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Permission denied", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Server busy", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []))
)]
fn read_status(user_id: &str, incoming: &Incoming<'_>) -> Result<Call, ServiceError> {
    let authorization = basic_credentials(incoming)?;
    let user_id = UserId::parse("userId", user_id)?;
    Ok(Call::PasswordStatus(PasswordStatusRequest {
        credentials: signed(authorization)?,
        user_id,
    }))
}

/// Sets many passwords with one authentication (contract §11.2).
#[utoipa::path(
    post,
    path = "/api/passwords",
    operation_id = "UpdateUserPasswords",
    tag = "passwords",
    request_body(content = PasswordsBody, content_type = "application/json"),
    params(("X-Account-Url" = Option<String>, Header, description = "The caller's account; else the request's host")),
    responses(
        (status = 200, description = "One result per item, in order", body = ItemResultsBody),
        (status = 400, description = "Wrong parameters (no item, too many, a malformed item, a userId twice)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Authorization failed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Server busy", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []))
)]
fn update_passwords(
    body: &[u8],
    incoming: &Incoming<'_>,
    batch_max: usize,
) -> Result<Call, ServiceError> {
    let body: PasswordsBody = json(body)?;
    let authorization = basic_credentials(incoming)?;
    let wires = body.items.ok_or_else(|| ParameterError::missing("items"))?;
    let items = batch_items(wires.0, batch_max, &BATCH, |item| {
        PasswordChange::parse(
            &ITEM_FIELDS,
            item.user_id.as_deref(),
            item.password.as_ref().map(ExposeSecret::expose_secret),
            item.password_confirm
                .as_ref()
                .map(ExposeSecret::expose_secret),
            item.temporary,
        )
    })?;
    Ok(Call::UpdatePasswords(UpdatePasswordsRequest {
        credentials: signed(authorization)?,
        items,
    }))
}

/// Sends one-time reset links (contract §11.4): named users or every user the caller
/// may change; to the users (`notify`) or back to the caller (`return`).
#[utoipa::path(
    post,
    path = "/api/password-resets",
    operation_id = "ResetUserPasswords",
    tag = "passwords",
    request_body(content = ResetsBody, content_type = "application/json"),
    params(("X-Account-Url" = Option<String>, Header, description = "The caller's account; else the request's host")),
    responses(
        (status = 200, description = "Per user: the link's expiry (and the link with delivery=return), or why not; the counts", body = ResetsResultBody),
        (status = 400, description = "Wrong parameters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Authorization failed", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Permission denied (a caller who must change their own password first)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Server busy", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []))
)]
fn reset_passwords(
    body: &[u8],
    incoming: &Incoming<'_>,
    batch_max: usize,
) -> Result<Call, ServiceError> {
    let body: ResetsBody = json(body)?;
    let authorization = basic_credentials(incoming)?;
    let targets = reset_targets(
        body.user_ids.map(|ids| ids.0),
        body.all_in_scope.unwrap_or(false),
        batch_max,
        "userIds",
    )?;
    let delivery = delivery(body.delivery.as_deref(), &targets, "delivery")?;
    let link_base = link_base(incoming)?;
    Ok(Call::ResetPasswords(ResetRequest {
        credentials: signed(authorization)?,
        targets,
        delivery,
        link_base,
    }))
}

/// Sets a password with a reset link, for an LMS that hosts its own form (contract §12
/// without the page). No `Authorization`: the link is the authority.
#[utoipa::path(
    post,
    path = "/api/password-resets/{token}",
    operation_id = "ResetLink",
    tag = "passwords",
    params(("token" = String, Path, description = "The token of the link, its last segment")),
    request_body(content = LinkChangeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The password was set and the link spent", body = Success),
        (status = 400, description = "Wrong parameters (the policy, the confirmation)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The link is unknown, expired, used or replaced", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Server busy", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
fn change_by_link(token: &str, body: &[u8]) -> Result<Call, ServiceError> {
    let body: LinkChangeBody = json(body)?;
    let new_password = confirmed_password(
        &CHANGE_FIELDS,
        body.password.as_ref().map(ExposeSecret::expose_secret),
        body.password_confirm
            .as_ref()
            .map(ExposeSecret::expose_secret),
    )?;
    Ok(Call::ChangeByLink(LinkChangeRequest {
        token: ResetToken::from_link(token),
        new_password,
    }))
}

/// The origin links start with: `--public-url`'s, else the request's scheme and host.
fn link_base(incoming: &Incoming<'_>) -> Result<String, ParameterError> {
    incoming.link_base.clone().ok_or_else(|| {
        ParameterError::new(
            "X-Account-Url",
            "the request names no host to build the reset link from",
        )
    })
}

const BATCH: BatchFields = BatchFields {
    items: "items",
    user_id: "items/userId",
};

const CHANGE_FIELDS: ChangeFields = ChangeFields {
    user_id: "userId",
    password: "password",
    confirm: "passwordConfirm",
};

const ITEM_FIELDS: ChangeFields = ChangeFields {
    user_id: "items/userId",
    password: "items/password",
    confirm: "items/passwordConfirm",
};

/// `application/json`, or any `application/…+json`, with or without parameters.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(JSON)
        || essence
            .get(..12)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/"))
            && essence.to_ascii_lowercase().ends_with("+json")
}

/// The members a body may hold, as their faults name them.
const MEMBERS: &[&str] = &[
    "password",
    "passwordConfirm",
    "currentPassword",
    "temporary",
    "items",
    "items/userId",
    "items/password",
    "items/passwordConfirm",
    "items/temporary",
    "userIds",
    "allInScope",
    "delivery",
];

/// Reads a JSON body. Unknown members are ignored and `null` is absent; a member of
/// the wrong type is a wrong parameter naming it (never echoing what was sent).
fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParameterError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() || e.inner().is_io() {
            return ParameterError::new("body", "The body is not well-formed JSON.");
        }
        // `items[2].userId` → `items/userId`.
        let mut path: Vec<&str> = e
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        // serde's own message may quote what was sent: only its kind is used.
        let message = e.inner().to_string();
        let duplicate = message
            .strip_prefix("duplicate field `")
            .and_then(|rest| rest.split('`').next());
        if let Some(field) = duplicate {
            path.push(field);
        }
        let path = path.join("/");
        match MEMBERS.iter().find(|m| **m == path) {
            Some(member) if duplicate.is_some() => {
                ParameterError::new(member, format!("{member} is given more than once"))
            }
            Some(member) if message.contains(wire::TOO_MANY_ITEMS) => {
                ParameterError::new(member, format!("{member} holds {}", wire::TOO_MANY_ITEMS))
            }
            Some(member) => ParameterError::new(member, format!("{member} has the wrong type")),
            None => ParameterError::new("body", "The body must be a JSON object."),
        }
    })?;
    de.end()
        .map_err(|_| ParameterError::new("body", "The body holds more than one JSON value."))?;
    Ok(value)
}

/// The caller's account: `X-Account-Url`, else the request's host.
fn account(incoming: &Incoming<'_>) -> Result<AccountUrl, ParameterError> {
    if let Some(url) = incoming.account_url {
        return AccountUrl::parse("X-Account-Url", url);
    }
    let host = incoming.host.as_deref().ok_or_else(|| {
        ParameterError::new(
            "X-Account-Url",
            "X-Account-Url is missing and the request names no host",
        )
    })?;
    AccountUrl::from_host("X-Account-Url", host)
}

/// HTTP Basic credentials (`e-mail:password`, UTF-8) with their account, if sent.
fn basic_credentials(incoming: &Incoming<'_>) -> Result<Option<Credentials>, ParameterError> {
    const PARAMETER: &str = "Authorization";
    let Some(header) = incoming.authorization else {
        return Ok(None);
    };
    let malformed = || {
        ParameterError::new(
            PARAMETER,
            "Authorization must be Basic with base64 of e-mail:password in UTF-8",
        )
    };
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    // Held as a secret from here on: it holds the password.
    let decoded = SecretString::from(String::from_utf8(decoded).map_err(|e| {
        zeroize::Zeroize::zeroize(&mut e.into_bytes());
        malformed()
    })?);
    let (email, password) = decoded
        .expose_secret()
        .split_once(':')
        .ok_or_else(malformed)?;
    let email = Email::parse(PARAMETER, email)?;
    let password = Password::parse(PARAMETER, password)?;
    Ok(Some(Credentials {
        account_url: account(incoming)?,
        login: Login::Email(email),
        password,
    }))
}

/// The caller's credentials, or — none sent — the failed sign-in that is (a 401 with the
/// Basic challenge), decided once every parameter has been checked.
fn signed(credentials: Option<Credentials>) -> Result<Credentials, ServiceError> {
    credentials.ok_or(ServiceError::AuthenticationFailed(AuthFailure::Credentials))
}

/// The answer to an attempt: its JSON, or its problem.
fn answer(attempt: Attempt) -> Answer {
    let outcome = attempt.outcome();
    let mut answer = match &attempt.result {
        Ok(reply) => json_answer(200, reply_body(reply)),
        Err(error) => problem_answer(&Problem::from_service_error(error)),
    };
    answer.log = CallLog {
        operation: attempt.operation,
        outcome: Some(outcome),
        account: attempt.account,
        caller: attempt.caller,
        target: attempt.target,
    };
    answer
}

/// A reply's JSON, members in their declared order.
fn reply_body(reply: &Reply) -> String {
    let body = match reply {
        Reply::PasswordUpdated => serde_json::to_string(&Success { success: true }),
        Reply::Status(status) => serde_json::to_string(&PasswordStatusBody::from(status)),
        Reply::PasswordsUpdated(items) => serde_json::to_string(&ItemResultsBody {
            items: items.iter().map(item_body).collect(),
        }),
        Reply::ResetsIssued(outcome) => serde_json::to_string(&ResetsResultBody {
            items: outcome
                .items
                .iter()
                .map(|item| {
                    let issued = item.result.as_ref().ok();
                    ResetItemBody {
                        user_id: item.user_id.clone(),
                        success: issued.is_some(),
                        expires_at: issued.map(|i| i.expires_at.clone()),
                        link: issued.and_then(|i| i.link.clone()),
                        problem: item.result.as_ref().err().map(Problem::from_service_error),
                    }
                })
                .collect(),
            reset: outcome.reset,
            skipped: outcome.skipped,
        }),
    };
    body.unwrap_or_default()
}

fn item_body(item: &ItemResult) -> ItemResultBody {
    ItemResultBody {
        user_id: item.user_id.clone(),
        success: item.result.is_ok(),
        problem: item.result.as_ref().err().map(Problem::from_service_error),
    }
}

fn json_answer(status: u16, body: String) -> Answer {
    Answer {
        status,
        content_type: JSON,
        body,
        headers: Vec::new(),
        close: false,
        log: CallLog::default(),
    }
}

fn problem_answer(problem: &Problem) -> Answer {
    Answer {
        status: problem.status,
        content_type: PROBLEM_JSON,
        body: serde_json::to_string(problem).unwrap_or_default(),
        headers: problem.headers(),
        close: false,
        log: CallLog::default(),
    }
}
