//! Faults: what every refusal looks like on the wire. [`Fault::from_service_error`],
//! [`Fault::from_envelope_error`] and [`Fault::from_transport_error`] are the only places
//! errors become faults.

use std::borrow::Cow;

use super::SoapVersion;
use super::envelope::{EnvelopeError, QualifiedName};
use crate::domain::ServiceError;
use crate::front::TransportError;

/// The fault's code, named as in SOAP 1.1; [`FaultCode::local_name`] gives the 1.2 name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    Client,
    Server,
    VersionMismatch,
    MustUnderstand,
}

impl FaultCode {
    pub fn local_name(self, version: SoapVersion) -> &'static str {
        match (self, version) {
            (FaultCode::Client, SoapVersion::V11) => "Client",
            (FaultCode::Client, SoapVersion::V12) => "Sender",
            (FaultCode::Server, SoapVersion::V11) => "Server",
            (FaultCode::Server, SoapVersion::V12) => "Receiver",
            (FaultCode::VersionMismatch, _) => "VersionMismatch",
            (FaultCode::MustUnderstand, _) => "MustUnderstand",
        }
    }
}

/// The typed part of a fault: one element in `api` named for the fault type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultDetail {
    /// Local name of the detail element, e.g. `WrongParametersFault`.
    pub element: &'static str,
    /// Stable machine-readable code, e.g. `WRONG_PARAMETERS`.
    pub code: &'static str,
    pub message: String,
    /// Extra children in order, e.g. `("parameter", "password")`, `("violation", "TOO_SHORT")`.
    pub extras: Vec<(&'static str, String)>,
}

/// A SOAP fault, independent of version until written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: FaultCode,
    pub reason: Cow<'static, str>,
    pub detail: Option<FaultDetail>,
    /// Set for 413 and 503; otherwise the status follows from code and version.
    pub status_override: Option<u16>,
    /// Header blocks named in a SOAP 1.2 `NotUnderstood` header.
    pub not_understood: Vec<QualifiedName>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
}

impl Fault {
    fn new(code: FaultCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Fault {
            code,
            reason: reason.into(),
            detail: None,
            status_override: None,
            not_understood: Vec::new(),
            retry_after: None,
        }
    }

    fn typed(
        reason: &'static str,
        element: &'static str,
        code: &'static str,
        message: String,
        extras: Vec<(&'static str, String)>,
    ) -> Self {
        Fault {
            detail: Some(FaultDetail {
                element,
                code,
                message,
                extras,
            }),
            ..Fault::new(FaultCode::Client, reason)
        }
    }

    /// The one mapping from domain errors to faults (contract §4). The messages are the
    /// domain's, shared with every front door.
    pub fn from_service_error(error: &ServiceError) -> Fault {
        let message = error.message().into_owned();
        match error {
            ServiceError::WrongParameters(p) => {
                let mut extras = vec![("parameter", p.parameter.to_string())];
                extras.extend(
                    p.violations
                        .iter()
                        .map(|v| ("violation", v.id().to_string())),
                );
                Fault::typed(
                    "Wrong parameters",
                    "WrongParametersFault",
                    "WRONG_PARAMETERS",
                    message,
                    extras,
                )
            }
            ServiceError::AuthenticationFailed(_) => Fault::typed(
                "Authorization failed",
                "AuthenticationFailedFault",
                "AUTHENTICATION_FAILED",
                message,
                Vec::new(),
            ),
            ServiceError::UnknownUser => Fault::typed(
                "Unknown user",
                "UnknownUserFault",
                "UNKNOWN_USER",
                message,
                Vec::new(),
            ),
            ServiceError::PermissionDenied(reason) => Fault::typed(
                "Permission denied",
                "PermissionDeniedFault",
                "PERMISSION_DENIED",
                message,
                vec![("reason", reason.id().to_string())],
            ),
            ServiceError::ServerBusy => Fault {
                code: FaultCode::Server,
                status_override: Some(503),
                retry_after: Some(1),
                detail: Some(FaultDetail {
                    element: "ServerBusyFault",
                    code: "SERVER_BUSY",
                    message,
                    extras: Vec::new(),
                }),
                ..Fault::new(FaultCode::Server, "Server busy")
            },
            // Links are spent over REST and the form only; a SOAP client never gets it.
            ServiceError::LinkInvalid => Fault::new(FaultCode::Client, message),
            ServiceError::Internal(_) | ServiceError::Unavailable(_) => Fault::internal(),
        }
    }

    /// The one mapping from envelope errors to faults (no detail: the Body was not processed).
    pub fn from_envelope_error(error: &EnvelopeError) -> Fault {
        let reason = error.to_string();
        match error {
            EnvelopeError::VersionMismatch => Fault::new(FaultCode::VersionMismatch, reason),
            EnvelopeError::MustUnderstand(names) => Fault {
                not_understood: names.clone(),
                ..Fault::new(FaultCode::MustUnderstand, reason)
            },
            _ => Fault::new(FaultCode::Client, reason),
        }
    }

    /// The one mapping from the transport's refusals to faults: a Client fault without
    /// detail, with the transport's status.
    pub fn from_transport_error(error: TransportError) -> Fault {
        if error == TransportError::Broken {
            return Fault::from_envelope_error(&EnvelopeError::NotXml);
        }
        Fault {
            status_override: error.status(),
            ..Fault::new(FaultCode::Client, error.to_string())
        }
    }

    /// Anything unexpected: says nothing internal.
    pub fn internal() -> Fault {
        Fault::new(FaultCode::Server, "Internal error")
    }

    /// The HTTP status for this fault in `version` (contract §2, §4).
    pub fn http_status(&self, version: SoapVersion) -> u16 {
        if let Some(status) = self.status_override {
            return status;
        }
        match (version, self.code) {
            (SoapVersion::V12, FaultCode::Client) => 400,
            _ => 500,
        }
    }

    /// The version to answer in: VersionMismatch is always answered as SOAP 1.1.
    pub fn answer_version(&self, request: SoapVersion) -> SoapVersion {
        if self.code == FaultCode::VersionMismatch {
            SoapVersion::V11
        } else {
            request
        }
    }
}
