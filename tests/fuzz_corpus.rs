//! Replays the fuzz corpus and every input that ever crashed or hung a fuzzer
//! (`fuzz/corpus/<target>`, `fuzz/regressions/<target>`) through the very functions the
//! cargo-fuzz targets call, so `cargo test` needs no libFuzzer and no nightly.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../fuzz/glue.rs"]
mod glue;

use glue::{FaultCase, fault_writer, request_path, selector};

/// Each input must finish in this time, even in a debug build.
const PER_INPUT: Duration = Duration::from_secs(1);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The input files of `dirs` (relative to the crate root), dot files and READMEs aside.
fn inputs(dirs: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_file() && !name.starts_with('.') && !name.starts_with("README") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `run` on each input; fails listing every one that panicked or took too long.
fn replay(files: &[PathBuf], run: impl Fn(&Path, &[u8])) {
    let mut failures = Vec::new();
    for path in files {
        let data = std::fs::read(path).expect("a readable input");
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| run(path, &data)));
        let took = started.elapsed();
        let shown = path.strip_prefix(root()).unwrap_or(path).display();
        match outcome {
            Err(_) => failures.push(format!("{shown}: panicked (message above)")),
            Ok(()) if took > PER_INPUT => failures.push(format!("{shown}: took {took:?}")),
            Ok(()) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn request_path_corpus_and_regressions_neither_panic_nor_hang() {
    let files = inputs(&["fuzz/corpus/request_path", "fuzz/regressions/request_path"]);
    assert!(files.len() > 100, "the seed corpus is missing");
    replay(&files, |_, data| {
        request_path(data);
    });
}

#[test]
fn fault_writer_corpus_and_regressions_write_well_formed_faults() {
    let files = inputs(&["fuzz/corpus/fault_writer", "fuzz/regressions/fault_writer"]);
    assert!(files.len() > 5, "the seed corpus is missing");
    replay(&files, |path, data| {
        let case = FaultCase::from_text(data).unwrap_or_else(|| {
            panic!(
                "{} is not in the text form of FaultCase (first line `{}`)",
                path.display(),
                FaultCase::MAGIC
            )
        });
        fault_writer(&case);
    });
}

/// The fixtures themselves, so the seed copies in the corpus may drift without losing them:
/// each decodes to a domain request, as SOAP 1.1 and 1.2 clients send it.
#[test]
fn every_fixture_request_reaches_the_domain_request() {
    let files = inputs(&["fixtures/requests"]);
    assert!(!files.is_empty());
    for path in files {
        let body = std::fs::read(&path).unwrap();
        let soap12 = body.windows(6).any(|w| w == b"2003/0");
        let mut data = vec![selector(usize::from(soap12), 1)];
        data.extend_from_slice(&body);
        let outcome = request_path(&data);
        // These are refused while decoding, by design.
        let name = path.file_name().unwrap().to_string_lossy();
        let refused = [
            "wrong-parameters",
            "confirm-mismatch",
            "reset-all-in-scope-return",
        ];
        let want = if refused.iter().any(|r| name.starts_with(r)) {
            "WRONG_PARAMETERS"
        } else {
            "DECODED"
        };
        assert_eq!(outcome, want, "{}", path.display());
    }
}
