//! The seam between the transport (`http`) and the front doors (`soap`, `rest`):
//! what a front door is handed besides the body, what it answers, and the refusals the
//! transport makes before any front door has read a byte — which each front door words
//! in its own format.

use crate::domain::Outcome;

/// What the HTTP layer knows about a request that its body does not. Its `Debug` leaves
/// `Authorization` out: it holds a password.
#[derive(Clone, Default)]
pub struct Incoming<'a> {
    pub content_type: Option<&'a str>,
    /// The `Host` header (or `X-Forwarded-Host` behind a trusted proxy), for the account
    /// of a caller who names none (WS-Security, REST).
    pub host: Option<String>,
    /// `Authorization` (REST: HTTP Basic).
    pub authorization: Option<&'a str>,
    /// `X-Account-Url` (REST: the caller's account).
    pub account_url: Option<&'a str>,
    /// The origin reset links start with: `--public-url`'s, else the request's scheme
    /// and host.
    pub link_base: Option<String>,
    /// `Cookie` (the reset form's anti-forgery token).
    pub cookie: Option<&'a str>,
    /// `Origin` (a browser's form submission).
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site` (a browser's word on where a request comes from).
    pub fetch_site: Option<&'a str>,
}

impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("content_type", &self.content_type)
            .field("host", &self.host)
            .field("authorization", &self.authorization.map(|_| "[redacted]"))
            .field("account_url", &self.account_url)
            .field("link_base", &self.link_base)
            .field("cookie", &self.cookie.map(|_| "[redacted]"))
            .field("origin", &self.origin)
            .field("fetch_site", &self.fetch_site)
            .finish()
    }
}

/// Why the transport refused a request before its body was read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("The request body is too large")]
    TooLarge,
    #[error("The request body was not received in time")]
    BodyTimeout,
    #[error("Content-Length and Transfer-Encoding together are not accepted")]
    AmbiguousLength,
    /// The body's stream broke (a malformed chunk, a dropped connection), or its
    /// `Content-Encoding` does not decode.
    #[error("The request body could not be read")]
    Broken,
    /// A `Content-Encoding` other than gzip, deflate or identity.
    #[error("The request body's Content-Encoding is not supported (send gzip, deflate or none)")]
    UnsupportedEncoding,
}

impl TransportError {
    /// The outcome code of the log line and the aggregated audit row.
    pub fn code(self) -> &'static str {
        match self {
            TransportError::TooLarge => "TOO_LARGE",
            TransportError::BodyTimeout => "BODY_TIMEOUT",
            TransportError::AmbiguousLength => "AMBIGUOUS_LENGTH",
            TransportError::Broken => "NOT_XML",
            TransportError::UnsupportedEncoding => "UNSUPPORTED_ENCODING",
        }
    }

    /// The HTTP status it is answered with, when it has its own (a broken body is
    /// answered as the front door answers a malformed one).
    pub fn status(self) -> Option<u16> {
        match self {
            TransportError::TooLarge => Some(413),
            TransportError::BodyTimeout => Some(408),
            TransportError::AmbiguousLength => Some(400),
            TransportError::UnsupportedEncoding => Some(415),
            TransportError::Broken => None,
        }
    }

    /// Whether the connection must close after the answer: the rest of the body is
    /// unread, or where it ends is unknown.
    pub fn closes(self) -> bool {
        !matches!(
            self,
            TransportError::Broken | TransportError::UnsupportedEncoding
        )
    }
}

/// A front door's answer, which the transport sends as it is.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra headers (`Retry-After`, `WWW-Authenticate`…).
    pub headers: Vec<(&'static str, String)>,
    /// Close the connection after this answer.
    pub close: bool,
    /// The access log line's fields.
    pub log: CallLog,
}

impl Answer {
    /// This answer (a front door's wording of `error`) as the transport's refusal: the
    /// connection closed when the body is unread, the encodings that are read named.
    pub fn refusing(mut self, error: TransportError) -> Answer {
        self.close = error.closes();
        if error == TransportError::UnsupportedEncoding {
            self.headers
                .push(("Accept-Encoding", "gzip, deflate".to_string()));
        }
        self.log = CallLog::refused(error.code());
        self
    }
}

/// The fields of the one log line per call. Identifiers only: never a password, a hash
/// or the body.
#[derive(Debug, Default)]
pub struct CallLog {
    pub operation: &'static str,
    pub outcome: Option<Outcome>,
    pub account: Option<String>,
    pub caller: Option<String>,
    pub target: Option<String>,
}

impl CallLog {
    /// A call refused before it named an operation.
    pub fn refused(code: &'static str) -> Self {
        CallLog {
            operation: "-",
            outcome: Some(Outcome::Refused(code)),
            ..CallLog::default()
        }
    }
}
