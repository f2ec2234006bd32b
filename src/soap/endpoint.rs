//! The SOAP front door's pipeline: body → decoded text → envelope pre-pass → the
//! operation's decoding → the service → the result or fault envelope. The server, the
//! fuzz targets and the benchmarks all run these same functions.

use std::borrow::Cow;

use super::SoapVersion;
use super::envelope::{EnvelopeError, Limits, decode_body, parse_envelope};
use super::fault::Fault;
use super::ops::OperationSpec;
use super::wire::RequestOrigin;
use super::writer::{write_fault, write_result};
use crate::domain::{Call, RequestContext, ServiceError};
use crate::front::{Answer, CallLog, Incoming, TransportError};
use crate::service::{Attempt, Service};

/// A message read as far as an operation: its version, which operation, and the call
/// — or why its fields do not make one.
#[derive(Debug)]
pub struct SoapCall {
    pub version: SoapVersion,
    pub spec: &'static OperationSpec,
    pub call: Result<Call, ServiceError>,
}

/// A message that could not be read as far as an operation, and the version to answer
/// it in.
#[derive(Debug)]
pub struct Unread {
    pub version: SoapVersion,
    pub error: EnvelopeError,
}

/// The first half of the pipeline: everything up to the domain call.
pub fn read_call(
    body: &[u8],
    incoming: &Incoming<'_>,
    limits: &Limits,
) -> Result<SoapCall, Unread> {
    let fallback = SoapVersion::from_content_type(incoming.content_type);
    let text = decode_body(body, incoming.content_type).map_err(|error| Unread {
        version: fallback,
        error,
    })?;
    let parsed = parse_envelope(&text, limits);
    if let Cow::Owned(mut decoded) = text {
        // The text held passwords: wipe it rather than leave it to the allocator.
        zeroize::Zeroize::zeroize(&mut decoded);
    }
    let envelope = parsed.map_err(|refused| Unread {
        version: refused.version.unwrap_or(fallback),
        error: refused.error,
    })?;
    let origin = RequestOrigin {
        host: incoming.host.clone(),
        link_base: incoming.link_base.clone(),
    };
    let spec = envelope.operation.spec;
    Ok(SoapCall {
        version: envelope.version,
        spec,
        call: (spec.decode)(
            envelope.operation.element,
            envelope.security,
            &origin,
            limits,
        ),
    })
}

/// The whole pipeline for a body the transport read.
pub async fn handle(
    service: &Service,
    body: &[u8],
    incoming: &Incoming<'_>,
    limits: &Limits,
    ctx: &RequestContext,
) -> Answer {
    match read_call(body, incoming, limits) {
        Err(unread) => {
            service.refuse_unread(unread.error.code(), ctx).await;
            answer_unread(&unread)
        }
        Ok(SoapCall {
            version,
            spec,
            call,
        }) => {
            let attempt = match call {
                Ok(call) => service.handle(call, ctx).await,
                Err(error) => service.reject(spec.name, error, ctx).await,
            };
            answer(version, spec, attempt)
        }
    }
}

/// A request the transport refused, audited and answered as a fault in the version the
/// Content-Type names.
pub async fn refuse_transport(
    service: &Service,
    error: TransportError,
    incoming: &Incoming<'_>,
    ctx: &RequestContext,
) -> Answer {
    service.refuse_unread(error.code(), ctx).await;
    let version = SoapVersion::from_content_type(incoming.content_type);
    fault_answer(version, &Fault::from_transport_error(error)).refusing(error)
}

/// The answer to an attempt: its result element, or its fault.
pub fn answer(version: SoapVersion, spec: &OperationSpec, attempt: Attempt) -> Answer {
    let outcome = attempt.outcome();
    let mut answer = match &attempt.result {
        Ok(reply) => Answer {
            status: 200,
            content_type: version.content_type(),
            body: write_result(version, spec.result, &(spec.encode)(reply)),
            headers: Vec::new(),
            close: false,
            log: CallLog::default(),
        },
        Err(error) => fault_answer(version, &Fault::from_service_error(error)),
    };
    answer.log = CallLog {
        operation: spec.name,
        outcome: Some(outcome),
        account: attempt.account,
        caller: attempt.caller,
        target: attempt.target,
    };
    answer
}

/// The answer to a message that named no operation it could run.
pub fn answer_unread(unread: &Unread) -> Answer {
    let mut answer = fault_answer(unread.version, &Fault::from_envelope_error(&unread.error));
    answer.log = CallLog::refused(unread.error.code());
    answer
}

fn fault_answer(version: SoapVersion, fault: &Fault) -> Answer {
    let version = fault.answer_version(version);
    Answer {
        status: fault.http_status(version),
        content_type: version.content_type(),
        body: write_fault(version, fault),
        headers: fault
            .retry_after
            .map(|s| ("Retry-After", s.to_string()))
            .into_iter()
            .collect(),
        close: false,
        log: CallLog::default(),
    }
}
