//! Arbitrary strings in a fault, written and read back; see
//! `glue::fault_writer`, which `tests/fuzz_corpus.rs` also replays.
//!
//! An input in the text form of `FaultCase` (the seed corpus and the regressions) is read
//! as such, so that mutations of a seed stay meaningful; any other input is decoded with
//! `arbitrary`.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use glue::{DetailCase, FAULT_CODES, FaultCase, fault_writer};
use soap_passwd::soap::{QualifiedName, SoapVersion};

#[allow(dead_code)]
#[path = "../glue.rs"]
mod glue;

#[derive(Arbitrary)]
struct Input {
    soap12: bool,
    code: u8,
    reason: String,
    detail: Option<Detail>,
    not_understood: Vec<(Option<String>, String)>,
}

#[derive(Arbitrary)]
struct Detail {
    kind: u8,
    message: String,
    /// (which extra: parameter, violation or reason; its value)
    extras: Vec<(u8, String)>,
}

impl From<Input> for FaultCase {
    fn from(input: Input) -> Self {
        FaultCase {
            version: if input.soap12 {
                SoapVersion::V12
            } else {
                SoapVersion::V11
            },
            code: FAULT_CODES[usize::from(input.code) % FAULT_CODES.len()],
            reason: input.reason,
            detail: input.detail.map(|d| DetailCase {
                kind: usize::from(d.kind),
                message: d.message,
                extras: d
                    .extras
                    .into_iter()
                    .map(|(name, value)| (usize::from(name), value))
                    .collect(),
            }),
            not_understood: input
                .not_understood
                .into_iter()
                .map(|(ns, local)| QualifiedName { ns, local })
                .collect(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let case = match FaultCase::from_text(data) {
        Some(case) => case,
        None => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => FaultCase::from(input),
            Err(_) => return,
        },
    };
    fault_writer(&case);
});
