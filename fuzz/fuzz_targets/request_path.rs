//! Arbitrary bytes as a request body (the first byte selects Content-Type and Host),
//! through the server's own pipeline up to the domain call; see `glue::request_path`,
//! which `tests/fuzz_corpus.rs` also replays.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../glue.rs"]
mod glue;

fuzz_target!(|data: &[u8]| {
    glue::request_path(data);
});
