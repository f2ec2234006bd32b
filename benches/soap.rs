//! Envelope pre-pass + decode, and fault writing: the cost of everything in the SOAP
//! layer that is not argon2 (`cargo bench --bench soap`).

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use soap_passwd::domain::{DenyReason, ParameterError, ServiceError, Violation};
use soap_passwd::front::Incoming;
use soap_passwd::soap::{Fault, Limits, SoapVersion, read_call, write_fault};

const SUCCESS: &str = include_str!("../fixtures/requests/success.xml");

/// The server's own first half of the pipeline (`soap::read_call`): decode, pre-pass,
/// the operation's decoding into a domain call.
fn parse_and_decode(c: &mut Criterion) {
    let limits = Limits::default();
    let incoming = Incoming {
        content_type: Some("text/xml; charset=utf-8"),
        ..Incoming::default()
    };
    c.bench_function("envelope: parse + decode success.xml", |b| {
        b.iter(|| {
            read_call(black_box(SUCCESS.as_bytes()), &incoming, &limits)
                .is_ok_and(|call| call.call.is_ok())
        })
    });
    let malformed = SUCCESS.replace("</SOAP-ENV:Body>", "");
    c.bench_function("envelope: refuse malformed", |b| {
        b.iter(|| read_call(black_box(malformed.as_bytes()), &incoming, &limits).is_err())
    });
}

fn faults(c: &mut Criterion) {
    let wrong = ServiceError::WrongParameters(ParameterError {
        parameter: "password",
        message: "The new password is too short.".into(),
        violations: vec![Violation::TooShort, Violation::TooCommon],
    });
    let denied = ServiceError::PermissionDenied(DenyReason::NotInScope);
    c.bench_function("fault: map + write WrongParameters (1.1)", |b| {
        b.iter(|| {
            write_fault(
                SoapVersion::V11,
                &Fault::from_service_error(black_box(&wrong)),
            )
        })
    });
    c.bench_function("fault: map + write PermissionDenied (1.2)", |b| {
        b.iter(|| {
            write_fault(
                SoapVersion::V12,
                &Fault::from_service_error(black_box(&denied)),
            )
        })
    });
}

criterion_group!(benches, parse_and_decode, faults);
criterion_main!(benches);
