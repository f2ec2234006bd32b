//! Where log records go: env_logger formats them, and a background thread writes them
//! to stderr in batches.
//!
//! Every call leaves an access line, so under a flood of refused calls the log is on the
//! hot path: writing each line with its own `write(2)` on the executor thread cost about
//! a fifth of the light path's throughput. Here a record is only copied into a shared
//! buffer; the writer thread takes whatever has gathered and writes it at once, in
//! order. The buffer is bounded: past [`MAX_BUFFERED`] the logging thread writes the
//! backlog itself (slower, never lost, never reordered). [`flush`] writes what is left;
//! the binary calls it before it exits. A SIGKILL loses at most the lines of the last
//! moment, which a plain stderr write could lose as well.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

/// Bytes buffered before a logging thread writes the backlog itself.
const MAX_BUFFERED: usize = 1 << 20;
/// How long the writer lets records gather once woken: at most one write and one
/// wake-up per this interval, however many lines a flood produces.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Records not yet written, and whether the writer thread is parked waiting for some.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    parked: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
    /// Held while bytes go to stderr, taken while `pending` is held: whoever takes bytes
    /// out of `pending` writes them before anyone who takes bytes later.
    output: Mutex<()>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these leaves bytes, never a broken invariant.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_out(bytes: &[u8]) {
    // Nowhere to report a failed log write; the service goes on.
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// The `io::Write` env_logger writes each formatted record to.
struct Pipe(&'static Shared);

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut pending = lock(&self.0.pending);
        if pending.bytes.len() + data.len() > MAX_BUFFERED {
            let _out = lock(&self.0.output);
            write_out(&pending.bytes);
            pending.bytes.clear();
            drop(pending);
            write_out(data);
            return Ok(data.len());
        }
        pending.bytes.extend_from_slice(data);
        // Wake the writer only when it sleeps: one wake-up per batch, not per line.
        if pending.parked {
            pending.parked = false;
            self.0.ready.notify_one();
        }
        Ok(data.len())
    }

    /// Called after every record: the writer thread is already told.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the logger (`RUST_LOG`, default `default_filter`) and starts the writer.
pub fn init(default_filter: &str) {
    let shared = SHARED.get_or_init(|| Shared {
        pending: Mutex::new(Pending::default()),
        ready: Condvar::new(),
        output: Mutex::new(()),
    });
    let started = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(64 * 1024);
            loop {
                let mut pending = lock(&shared.pending);
                while pending.bytes.is_empty() {
                    pending.parked = true;
                    pending = shared
                        .ready
                        .wait(pending)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                drop(pending);
                std::thread::sleep(LINGER);
                let mut pending = lock(&shared.pending);
                std::mem::swap(&mut pending.bytes, &mut batch);
                let _out = lock(&shared.output);
                drop(pending);
                write_out(&batch);
                batch.clear();
            }
        });
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    if started.is_ok() {
        builder.target(env_logger::Target::Pipe(Box::new(Pipe(shared))));
    }
    let logger = Guarded(builder.build());
    let max = logger.0.filter();
    // Only the first call installs a logger; a second is ignored, as env_logger's own
    // `init` would panic on it.
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

/// Libraries that log what they send to the database below INFO, whatever `RUST_LOG`
/// asks: tokio-postgres logs each statement with its parameters at DEBUG, and those are
/// password hashes and reset links (found by the log test run on PostgreSQL).
const CAPPED_AT_INFO: &[&str] = &["tokio_postgres", "postgres_protocol"];

fn capped(target: &str, level: log::Level) -> bool {
    level > log::Level::Info
        && CAPPED_AT_INFO.iter().any(|capped| {
            target
                .strip_prefix(capped)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// env_logger's logger with [`CAPPED_AT_INFO`] applied before its own filter.
struct Guarded(env_logger::Logger);

impl log::Log for Guarded {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        !capped(metadata.target(), metadata.level()) && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !capped(record.target(), record.level()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Writes every buffered record now. Call before the process exits.
pub fn flush() {
    if let Some(shared) = SHARED.get() {
        let mut pending = lock(&shared.pending);
        let _out = lock(&shared.output);
        write_out(&pending.bytes);
        pending.bytes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::capped;
    use log::Level;

    #[test]
    fn database_drivers_are_capped_at_info_and_nothing_else_is() {
        assert!(capped("tokio_postgres::query", Level::Debug));
        assert!(capped("tokio_postgres", Level::Trace));
        assert!(capped("postgres_protocol::message", Level::Debug));
        assert!(!capped("tokio_postgres::query", Level::Info));
        assert!(!capped("tokio_postgres_x", Level::Debug));
        assert!(!capped("soap_passwd::store", Level::Trace));
    }
}
