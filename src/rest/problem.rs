//! RFC 9457 problems: what every refusal of the JSON front door looks like.
//! [`Problem::from_service_error`] is the one mapping from domain errors (contract §13),
//! [`Problem::from_transport_error`] the one from the transport's refusals.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::ServiceError;
use crate::front::TransportError;

/// The media type of a problem.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An `application/problem+json` body (RFC 9457) with the SOAP fault's code and extras.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI per fault type.
    #[serde(rename = "type")]
    #[schema(example = "urn:soap-passwd:problem:wrong-parameters")]
    pub kind: String,
    /// The SOAP faultstring legacy clients match on (`Wrong parameters`, …).
    pub title: String,
    pub status: u16,
    /// For humans; never a secret.
    pub detail: String,
    /// `WRONG_PARAMETERS`, `AUTHENTICATION_FAILED`, `UNKNOWN_USER`, `PERMISSION_DENIED`,
    /// `SERVER_BUSY`, …
    pub code: String,
    /// The offending field (`password`, `userId`, `items/userId`, `Authorization`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Password-policy rule ids; codes may be added over time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    /// Why permission was denied; reasons may be added over time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn kind(slug: &str) -> String {
    format!("urn:soap-passwd:problem:{slug}")
}

impl Problem {
    fn new(slug: &str, title: &str, status: u16, code: &str, detail: String) -> Self {
        Problem {
            kind: kind(slug),
            title: title.to_string(),
            status,
            detail,
            code: code.to_string(),
            parameter: None,
            violations: Vec::new(),
            reason: None,
        }
    }

    /// The one mapping from domain errors to problems: the SOAP fault's title, code,
    /// message and extras, with its HTTP status.
    pub fn from_service_error(error: &ServiceError) -> Problem {
        let detail = error.message().into_owned();
        match error {
            ServiceError::WrongParameters(p) => Problem {
                parameter: Some(p.parameter.to_string()),
                violations: p.violations.iter().map(|v| v.id().to_string()).collect(),
                ..Problem::new(
                    "wrong-parameters",
                    "Wrong parameters",
                    400,
                    "WRONG_PARAMETERS",
                    detail,
                )
            },
            ServiceError::AuthenticationFailed(_) => Problem::new(
                "authentication-failed",
                "Authorization failed",
                401,
                "AUTHENTICATION_FAILED",
                detail,
            ),
            ServiceError::UnknownUser => {
                Problem::new("unknown-user", "Unknown user", 404, "UNKNOWN_USER", detail)
            }
            ServiceError::PermissionDenied(reason) => Problem {
                reason: Some(reason.id().to_string()),
                ..Problem::new(
                    "permission-denied",
                    "Permission denied",
                    403,
                    "PERMISSION_DENIED",
                    detail,
                )
            },
            ServiceError::ServerBusy => {
                Problem::new("server-busy", "Server busy", 503, "SERVER_BUSY", detail)
            }
            ServiceError::LinkInvalid => Problem::new(
                "link-invalid",
                "Link no longer valid",
                410,
                "LINK_INVALID",
                detail,
            ),
            ServiceError::Internal(_) => {
                Problem::new("internal", "Internal error", 500, "INTERNAL", detail)
            }
            ServiceError::Unavailable(_) => Problem::new(
                "unavailable",
                "Service unavailable",
                503,
                "UNAVAILABLE",
                detail,
            ),
        }
    }

    /// The one mapping from the transport's refusals.
    pub fn from_transport_error(error: TransportError) -> Problem {
        match error {
            TransportError::TooLarge => Problem::new(
                "too-large",
                "Payload too large",
                413,
                "TOO_LARGE",
                error.to_string(),
            ),
            TransportError::BodyTimeout => Problem::new(
                "body-timeout",
                "Request timeout",
                408,
                "BODY_TIMEOUT",
                error.to_string(),
            ),
            TransportError::UnsupportedEncoding => Problem::new(
                "unsupported-encoding",
                "Unsupported media type",
                415,
                "UNSUPPORTED_ENCODING",
                error.to_string(),
            ),
            TransportError::AmbiguousLength | TransportError::Broken => Problem::new(
                "bad-request",
                "Bad request",
                400,
                error.code(),
                error.to_string(),
            ),
        }
    }

    /// A body sent as anything but JSON.
    pub fn unsupported_media_type() -> Problem {
        Problem::new(
            "unsupported-media-type",
            "Unsupported media type",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send the body as application/json.".into(),
        )
    }

    /// The headers that go with this problem's status.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self.status {
            401 => vec![(
                "WWW-Authenticate",
                r#"Basic realm="soap-passwd", charset="UTF-8""#.to_string(),
            )],
            503 => vec![("Retry-After", "1".to_string())],
            _ => Vec::new(),
        }
    }
}
