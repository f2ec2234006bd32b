//! Envelope pre-pass + decode, and fault writing: the cost of everything in the SOAP
//! layer that is not argon2 (`cargo bench --bench soap`).

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use soap_passwd::domain::{DenyReason, ParameterError, ServiceError, Violation};
use soap_passwd::soap::{
    Fault, Limits, Operation, RequestOrigin, SoapVersion, decode_body, decode_update_password,
    parse_envelope, write_fault,
};

const SUCCESS: &str = include_str!("../fixtures/requests/success.xml");

fn parse_and_decode(c: &mut Criterion) {
    let limits = Limits::default();
    c.bench_function("envelope: parse + decode success.xml", |b| {
        let origin = RequestOrigin::default();
        b.iter(|| {
            let text = decode_body(
                black_box(SUCCESS.as_bytes()),
                Some("text/xml; charset=utf-8"),
            )
            .ok();
            let parsed = text.and_then(|t| parse_envelope(&t, &limits).ok());
            match parsed {
                Some(p) => match p.operation {
                    Operation::UpdateUserPassword(op) => {
                        decode_update_password(op, p.security, &origin).is_ok()
                    }
                },
                None => false,
            }
        })
    });
    let malformed = SUCCESS.replace("</SOAP-ENV:Body>", "");
    c.bench_function("envelope: refuse malformed", |b| {
        b.iter(|| parse_envelope(black_box(&malformed), &limits).is_err())
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
