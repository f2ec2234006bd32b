//! The reset form (contract §12): the HTML front door. `GET /reset/{token}` states the
//! account's policy and asks for the new password twice; `POST /reset/{token}` sets it
//! through the service exactly as `POST /api/password-resets/{token}` does, and answers
//! a page: done, the form again with every violation in words, or the one page of an
//! invalid link (410). No JavaScript; templates (askama) escape by default.
//!
//! Every page carries `Cache-Control: no-store`, `Referrer-Policy: no-referrer`, a CSP
//! that allows no script and no framing, and `X-Content-Type-Options: nosniff`. The form
//! is protected against cross-site submission without JavaScript: a random token in a
//! `SameSite=Strict`, `HttpOnly` cookie and the same in a hidden field, compared in
//! constant time; and what the browser says of the submission's source — `Sec-Fetch-Site`
//! `same-origin`, an `Origin` that is ours (or `null`, which no-referrer pages send) —
//! must not name another site.

use askama::Template;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::{
    Call, ChangeFields, LinkChangeRequest, ParameterError, Password, PasswordPolicy, Reply,
    RequestContext, ResetToken, ServiceError, Violation, confirmed_password,
};
use crate::front::{Answer, CallLog, Incoming};
use crate::service::Service;

/// The one stylesheet of the pages (`GET /assets/reset.css`).
pub const STYLESHEET: &str = include_str!("../../assets/reset.css");

const HTML: &str = "text/html; charset=utf-8";
const CSRF_COOKIE: &str = "soap_passwd_csrf";
const OPERATION: &str = "ResetForm";
/// The form's fields as its refusals name them (`userId` is the link's, never asked).
const FIELDS: ChangeFields = ChangeFields {
    user_id: "userId",
    password: "password",
    confirm: "passwordConfirm",
};

#[derive(Template)]
#[template(path = "reset_form.html")]
struct FormPage<'a> {
    token: &'a str,
    csrf: &'a str,
    min_length: u32,
    max_length: u32,
    forbid_email: bool,
    forbid_common: bool,
    history: u32,
    problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "reset_done.html")]
struct DonePage;

#[derive(Template)]
#[template(path = "reset_invalid.html")]
struct InvalidPage;

#[derive(Template)]
#[template(path = "reset_message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// The form's fields as posted.
#[derive(Deserialize)]
struct Posted {
    password: Option<SecretString>,
    #[serde(rename = "passwordConfirm")]
    password_confirm: Option<SecretString>,
    csrf: Option<String>,
}

/// The headers of every page.
fn page_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Cache-Control", "no-store".into()),
        ("Referrer-Policy", "no-referrer".into()),
        (
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
                .into(),
        ),
        ("X-Content-Type-Options", "nosniff".into()),
        ("X-Frame-Options", "DENY".into()),
    ]
}

fn page(status: u16, html: String, operation: &'static str) -> Answer {
    Answer {
        status,
        content_type: HTML,
        body: html,
        headers: page_headers(),
        close: false,
        log: CallLog {
            operation,
            ..CallLog::default()
        },
    }
}

fn render(template: &impl Template) -> String {
    template
        .render()
        .unwrap_or_else(|_| "<!DOCTYPE html><title>Error</title><p>Something went wrong.".into())
}

fn invalid() -> Answer {
    page(410, render(&InvalidPage), OPERATION)
}

fn message(status: u16, title: &str, text: &str) -> Answer {
    page(
        status,
        render(&MessagePage {
            title,
            message: text,
        }),
        OPERATION,
    )
}

/// A fresh anti-forgery token for a form and its cookie.
fn new_csrf() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn csrf_cookie(value: &str, secure: bool) -> String {
    format!(
        "{CSRF_COOKIE}={value}; Path=/reset/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The anti-forgery token the browser's cookie holds, if any.
fn cookie_csrf<'a>(incoming: &'a Incoming<'_>) -> Option<&'a str> {
    incoming.cookie?.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == CSRF_COOKIE).then_some(value)
    })
}

fn form(
    token: &str,
    csrf: &str,
    policy: &PasswordPolicy,
    problems: Vec<String>,
    status: u16,
    secure: bool,
) -> Answer {
    let html = render(&FormPage {
        token,
        csrf,
        min_length: policy.min_length,
        max_length: policy.max_length,
        forbid_email: policy.forbid_email,
        forbid_common: policy.forbid_common,
        history: policy.history,
        problems,
    });
    let mut answer = page(status, html, OPERATION);
    answer
        .headers
        .push(("Set-Cookie", csrf_cookie(csrf, secure)));
    answer
}

/// Whether pages are served over HTTPS (then the cookie is `Secure`).
fn secure(incoming: &Incoming<'_>) -> bool {
    incoming
        .link_base
        .as_deref()
        .is_some_and(|b| b.starts_with("https://"))
}

/// `GET /reset/{token}`: the form, or the page of an invalid link.
pub async fn show(
    service: &Service,
    token: &str,
    incoming: &Incoming<'_>,
    ctx: &RequestContext,
) -> Answer {
    let link = ResetToken::from_link(token);
    match service.inspect_link(&link, ctx).await {
        Ok(policy) => form(
            token,
            &new_csrf(),
            &policy,
            Vec::new(),
            200,
            secure(incoming),
        ),
        Err(ServiceError::LinkInvalid) => invalid(),
        Err(error) => failure(&error),
    }
}

/// `POST /reset/{token}`: the password set, or the form again saying why not.
pub async fn submit(
    service: &Service,
    token: &str,
    body: &[u8],
    incoming: &Incoming<'_>,
    ctx: &RequestContext,
) -> Answer {
    let posted: Posted = match serde_urlencoded::from_bytes(body) {
        Ok(posted) => posted,
        Err(_) => {
            return message(
                400,
                "Something went wrong",
                "The form could not be read. Open the link again.",
            );
        }
    };
    // Cross-site forgery: the hidden field must match the cookie, and the browser must say
    // the form came from here.
    let from_here = same_origin(incoming);
    let matches = match (posted.csrf.as_deref(), cookie_csrf(incoming)) {
        (Some(field), Some(cookie)) => constant_time_eq(field.as_bytes(), cookie.as_bytes()),
        _ => false,
    };
    if !from_here || !matches {
        return message(
            403,
            "This form has expired",
            "For your safety the form must be sent from the page the link opened. Open the link again.",
        );
    }
    let csrf = posted.csrf.unwrap_or_default();
    let link = ResetToken::from_link(token);
    let attempt = match parse(&posted.password, &posted.password_confirm) {
        // The service finds the link itself (once): only a refused password needs its
        // policy to state again.
        Ok(new_password) => {
            let call = Call::ChangeByLink(LinkChangeRequest {
                token: link,
                new_password,
            });
            service.handle(call, ctx).await
        }
        Err(error) => {
            // A dead link is said before an incomplete form.
            if let Err(e) = service.inspect_link(&link, ctx).await {
                return link_failure(&e);
            }
            service.reject(OPERATION, error.into(), ctx).await
        }
    };
    let outcome = attempt.outcome();
    let mut answer = match &attempt.result {
        Ok(Reply::PasswordUpdated) => page(200, render(&DonePage), OPERATION),
        Ok(_) => failure(&ServiceError::internal("unexpected reply")),
        Err(ServiceError::WrongParameters(p)) => {
            let link = ResetToken::from_link(token);
            match service.inspect_link(&link, ctx).await {
                Ok(policy) => form(
                    token,
                    &csrf,
                    &policy,
                    in_words(p, &policy),
                    400,
                    secure(incoming),
                ),
                Err(e) => link_failure(&e),
            }
        }
        Err(error) => link_failure(error),
    };
    answer.log = CallLog {
        operation: OPERATION,
        outcome: Some(outcome),
        account: None,
        caller: attempt.caller,
        target: attempt.target,
    };
    answer
}

fn parse(
    password: &Option<SecretString>,
    confirm: &Option<SecretString>,
) -> Result<Password, ParameterError> {
    // A browser sends empty fields: an empty password is a missing one, and the
    // confirmation is always there (empty, it differs).
    let password = password
        .as_ref()
        .map(ExposeSecret::expose_secret)
        .filter(|p| !p.is_empty());
    let confirm = confirm
        .as_ref()
        .map(ExposeSecret::expose_secret)
        .unwrap_or_default();
    confirmed_password(&FIELDS, password, Some(confirm))
}

/// Every reason a password was refused, in words (contract §12: not codes only).
fn in_words(p: &ParameterError, policy: &PasswordPolicy) -> Vec<String> {
    if p.violations.is_empty() {
        return vec![match p.parameter {
            "password" => "Type a new password.".to_string(),
            _ => "The form was incomplete; type the new password twice.".to_string(),
        }];
    }
    p.violations
        .iter()
        .map(|v| match v {
            Violation::TooShort => {
                format!("It is shorter than {} characters.", policy.min_length)
            }
            Violation::TooLong => format!("It is longer than {} characters.", policy.max_length),
            Violation::SameAsCurrent => "It is your current password.".into(),
            Violation::ContainsEmail => {
                "It contains your e-mail address, or its part before the @.".into()
            }
            Violation::TooCommon => "It is a common or easily guessed password.".into(),
            Violation::Reused => "You have used it recently.".into(),
            Violation::ConfirmMismatch => "The two passwords you typed differ.".into(),
        })
        .collect()
}

/// The page of an invalid link, or of another failure.
fn link_failure(error: &ServiceError) -> Answer {
    match error {
        ServiceError::LinkInvalid => invalid(),
        error => failure(error),
    }
}

fn failure(error: &ServiceError) -> Answer {
    match error {
        ServiceError::ServerBusy => {
            let mut answer = message(
                503,
                "Please try again",
                "The service is busy right now. Send the form again in a moment.",
            );
            answer.headers.push(("Retry-After", "1".into()));
            answer
        }
        _ => message(
            500,
            "Something went wrong",
            "The password was not changed. Try again later.",
        ),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The stylesheet, with the pages' headers (cacheable: it holds nothing secret).
pub fn stylesheet() -> Answer {
    let mut answer = page(200, STYLESHEET.to_string(), "-");
    answer.content_type = "text/css; charset=utf-8";
    answer.headers.retain(|(name, _)| *name != "Cache-Control");
    answer
        .headers
        .push(("Cache-Control", "public, max-age=3600".into()));
    answer
}

/// Whether a form submission comes from this service's own page, as far as the browser
/// says. `Sec-Fetch-Site`, when sent, must be `same-origin`. The `Origin` header, when it
/// names an origin, must be ours; `Origin: null` says nothing: browsers send it for
/// every form of a page served with `Referrer-Policy: no-referrer`, as ours are (a
/// cross-site `null` is stopped by the `SameSite=Strict` cookie the token is checked
/// against).
fn same_origin(incoming: &Incoming<'_>) -> bool {
    if incoming
        .fetch_site
        .is_some_and(|site| !site.eq_ignore_ascii_case("same-origin"))
    {
        return false;
    }
    match (incoming.origin, incoming.link_base.as_deref()) {
        (None | Some("null"), _) => true,
        (Some(origin), Some(base)) => origin.eq_ignore_ascii_case(base),
        (Some(_), None) => false,
    }
}
