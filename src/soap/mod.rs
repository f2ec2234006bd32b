//! The SOAP front door: SOAP 1.1/1.2 messages in, result and fault envelopes out — the
//! pipeline (`endpoint`), the envelope pre-pass, the operation table and each operation's
//! decoding (`ops`), faults, and the WSDL and schema documents.
//!
//! Architecture invariant: this is the only module that knows XML. It turns bytes into a
//! domain request (or an [`EnvelopeError`]) and domain outcomes into envelopes; nothing
//! it hands to the service is XML-shaped.

mod endpoint;
mod envelope;
mod fault;
pub mod ops;
mod wire;
mod writer;
pub mod wsdl;

pub use endpoint::{SoapCall, Unread, answer, answer_unread, handle, read_call, refuse_transport};
pub use envelope::WSSE_NS;
pub use envelope::{
    DEFAULT_BATCH_MAX, Element, EnvelopeError, Limits, Operation, ParsedEnvelope, QualifiedName,
    Refused, decode_body, parse_envelope,
};
pub use fault::{Fault, FaultCode, FaultDetail};
pub use ops::REQUEST_FIELDS;
pub use wire::RequestOrigin;
pub use writer::{write_fault, write_result};

/// Namespace of every message element (contract §1).
pub const API_NS: &str = "http://ispringlearn.com/go/services/api/soap";
pub const SOAP11_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_ENV_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The SOAP version of a request, which its answer always uses too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    V11,
    V12,
}

impl SoapVersion {
    pub fn envelope_ns(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_ENV_NS,
            SoapVersion::V12 => SOAP12_ENV_NS,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    /// The version to answer in when the body could not be parsed: `application/soap+xml`
    /// means 1.2, anything else 1.1 (contract §4).
    pub fn from_content_type(content_type: Option<&str>) -> SoapVersion {
        match content_type {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/soap+xml") =>
            {
                SoapVersion::V12
            }
            _ => SoapVersion::V11,
        }
    }
}
