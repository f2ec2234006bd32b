//! The mails (contract §14): one plain-text template per event kind, in
//! `templates/mail/`. A mail holds the user's own address and account, when and how the
//! password changed, or the reset link and its expiry; never a password or a hash (the
//! events hold none).

use askama::Template;
use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox};

use crate::domain::records::OutboxEvent;

/// Why an event cannot become a mail.
#[derive(Debug, thiserror::Error)]
pub enum Unmailable {
    /// The user's address is not one SMTP can carry.
    #[error("the user's e-mail address cannot be mailed to: {0}")]
    Address(lettre::address::AddressError),
    /// A reset event whose link is no longer usable (or was already erased).
    #[error("{0}")]
    Stale(&'static str),
    #[error("no mail is defined for events of kind {0:?}")]
    Kind(String),
    #[error("the mail could not be rendered: {0}")]
    Render(String),
}

#[derive(Template)]
#[template(path = "mail/password_reset_requested.txt")]
struct ResetRequested<'a> {
    email: &'a str,
    account: &'a str,
    link: &'a str,
    expires: String,
}

#[derive(Template)]
#[template(path = "mail/password_changed.txt")]
struct Changed<'a> {
    email: &'a str,
    account: &'a str,
    at: String,
    /// `" through the SOAP API"`, … (empty for events that do not say).
    how: &'static str,
    temporary: bool,
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no vacation replies to these mails.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_string())
    }
}

/// A stored time (RFC 3339) as a mail says it, to the second: `2026-12-02 14:05:09 UTC`.
fn readable(at: &str) -> String {
    DateTime::parse_from_rfc3339(at).map_or_else(
        |_| at.to_string(),
        |t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        },
    )
}

/// How the password was changed, in words, after "was changed on {at}".
fn how(via: Option<&str>) -> &'static str {
    match via {
        Some("soap") => " through the SOAP API",
        Some("rest") => " through the REST API",
        Some("batch") => " in a batch change",
        Some("reset_link") => " with a reset link",
        _ => "",
    }
}

/// The mail for `event`, from `from`, at `now`.
pub fn compose(
    event: &OutboxEvent,
    from: &Mailbox,
    now: DateTime<Utc>,
) -> Result<Message, Unmailable> {
    let to = Mailbox::new(None, event.email.parse().map_err(Unmailable::Address)?);
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .header(ContentType::TEXT_PLAIN)
        .header(AutoSubmitted)
        .message_id(None);
    let (subject, text) = match event.kind.as_str() {
        "password_reset_requested" => {
            let (Some(link), Some(expires)) = (&event.link, &event.link_expires_at) else {
                return Err(Unmailable::Stale("the event no longer holds its link"));
            };
            let expired = DateTime::parse_from_rfc3339(expires).is_ok_and(|t| t <= now);
            if expired {
                return Err(Unmailable::Stale(
                    "its link expired before the mail could be sent",
                ));
            }
            let text = ResetRequested {
                email: &event.email,
                account: &event.account,
                link,
                expires: readable(expires),
            }
            .render();
            ("Reset your password", text)
        }
        "password_changed" => {
            let text = Changed {
                email: &event.email,
                account: &event.account,
                at: readable(&event.at),
                how: how(event.via.as_deref()),
                temporary: event.temporary,
            }
            .render();
            ("Your password was changed", text)
        }
        other => return Err(Unmailable::Kind(other.to_string())),
    };
    let text = text.map_err(|e| Unmailable::Render(e.to_string()))?;
    builder
        .subject(subject)
        .body(body(text))
        .map_err(|e| Unmailable::Render(e.to_string()))
}

/// The body as 7bit when it is ASCII with lines within RFC 5322's 998, whatever their
/// length (lettre would quote-print any line past 76, breaking a long link in two for
/// anyone who reads the mail's source); quoted-printable otherwise.
fn body(text: String) -> Body {
    if text.is_ascii() && text.lines().all(|l| l.len() <= 998) {
        let crlf = text.lines().collect::<Vec<_>>().join("\r\n") + "\r\n";
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str) -> OutboxEvent {
        OutboxEvent {
            id: 7,
            at: "2026-12-02T10:15:30.123456Z".into(),
            kind: kind.into(),
            account: "https://acme.example.com".into(),
            user_id: "u-1".into(),
            email: "ann@acme.example.com".into(),
            credential_version: 3,
            request_id: "r-1".into(),
            via: Some("reset_link".into()),
            temporary: false,
            link: Some(format!(
                "https://passwd.example.com/reset/{}",
                "abc_DEF-123".repeat(4)
            )),
            link_expires_at: Some("2026-12-02T11:15:30Z".into()),
        }
    }

    fn text(m: &Message) -> String {
        String::from_utf8_lossy(&m.formatted()).into_owned()
    }

    fn from() -> Mailbox {
        "soap-passwd <noreply@example.com>".parse().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_reset_mail_holds_the_link_on_its_own_line_and_its_expiry() {
        let m = compose(
            &event("password_reset_requested"),
            &from(),
            at("2026-12-02T10:16:00Z"),
        )
        .unwrap();
        let t = text(&m);
        assert!(t.contains("Subject: Reset your password"), "{t}");
        assert!(t.contains("To: ann@acme.example.com"), "{t}");
        assert!(t.contains("Auto-Submitted: auto-generated"), "{t}");
        assert!(t.contains("Content-Type: text/plain; charset=utf-8"), "{t}");
        assert!(
            t.lines().any(|l| l
                == format!(
                    "https://passwd.example.com/reset/{}",
                    "abc_DEF-123".repeat(4)
                )),
            "{t}"
        );
        assert!(t.contains("only until 2026-12-02 11:15:30 UTC"), "{t}");
        // A long link stays whole: 7bit, not quoted-printable.
        assert!(t.contains("Content-Transfer-Encoding: 7bit"), "{t}");
    }

    #[test]
    fn a_reset_mail_is_not_sent_once_its_link_expired() {
        let e = event("password_reset_requested");
        let late = compose(&e, &from(), at("2026-12-02T11:15:30Z"));
        assert!(matches!(late, Err(Unmailable::Stale(_))));
        let erased = OutboxEvent { link: None, ..e };
        let gone = compose(&erased, &from(), at("2026-12-02T10:16:00Z"));
        assert!(matches!(gone, Err(Unmailable::Stale(_))));
    }

    #[test]
    fn a_change_mail_says_when_how_and_whether_temporary() {
        let e = OutboxEvent {
            via: Some("batch".into()),
            temporary: true,
            link: None,
            link_expires_at: None,
            ..event("password_changed")
        };
        let t = text(&compose(&e, &from(), at("2026-12-02T10:16:00Z")).unwrap());
        assert!(t.contains("Subject: Your password was changed"), "{t}");
        assert!(
            t.contains("was changed on 2026-12-02 10:15:30 UTC in a batch change."),
            "{t}"
        );
        assert!(t.contains("Content-Transfer-Encoding: 7bit"), "{t}");
        assert!(t.contains("The new password is temporary"), "{t}");
        let plain = OutboxEvent {
            via: None,
            temporary: false,
            ..e
        };
        let t = text(&compose(&plain, &from(), at("2026-12-02T10:16:00Z")).unwrap());
        assert!(t.contains("on 2026-12-02 10:15:30 UTC."), "{t}");
        assert!(!t.contains("temporary"), "{t}");
    }

    #[test]
    fn an_address_smtp_cannot_carry_is_unmailable() {
        let e = OutboxEvent {
            email: "not an address".into(),
            ..event("password_changed")
        };
        let r = compose(&e, &from(), at("2026-12-02T10:16:00Z"));
        assert!(matches!(r, Err(Unmailable::Address(_))));
    }
}
