//! Arbitrary bytes as a request body (the first byte selects Content-Type and Host),
//! through the whole request path up to the domain request; see
//! `soap_passwd::soap::fuzz::request_path`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    soap_passwd::soap::fuzz::request_path(data);
});
