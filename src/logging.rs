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

/// How a record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// `[TIME LEVEL target] message`, env_logger's line.
    #[default]
    Text,
    /// One JSON object per line with the same fields: `ts`, `level`, `target`, `msg`;
    /// an access line's `key=value` pairs also as an object, `fields`.
    Json,
}

/// Installs the logger (`RUST_LOG`, default `default_filter`) in `format` and starts the
/// writer.
pub fn init(default_filter: &str, format: Format) {
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
    if format == Format::Json {
        builder.format(|buf, record| {
            let line = json_line(&buf.timestamp().to_string(), record);
            writeln!(buf, "{line}")
        });
    }
    let logger = Guarded(builder.build());
    let max = logger.0.filter();
    // Only the first call installs a logger; a second is ignored, as env_logger's own
    // `init` would panic on it.
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

/// A record as one JSON object: the text line's fields, and an access line's pairs.
fn json_line(ts: &str, record: &log::Record<'_>) -> String {
    let msg = record.args().to_string();
    let mut object = serde_json::Map::new();
    object.insert("ts".into(), ts.into());
    object.insert("level".into(), record.level().as_str().into());
    object.insert("target".into(), record.target().into());
    if record.target() == ACCESS_TARGET {
        // Nested: the call's `target` (the user) is not the record's `target` (the module).
        let fields: serde_json::Map<String, serde_json::Value> =
            access_fields(&msg).into_iter().collect();
        object.insert("fields".into(), fields.into());
    }
    object.insert("msg".into(), msg.into());
    serde_json::Value::Object(object).to_string()
}

/// The one line a failed command ends with, as a JSON log object.
pub fn json_failure(line: &str) -> String {
    serde_json::json!({
        "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "level": "ERROR",
        "target": "soap_passwd",
        "msg": line,
    })
    .to_string()
}

/// The access line's target (`http::routes::log_call`).
const ACCESS_TARGET: &str = "soap_passwd::access";

/// The `key=value` pairs of an access line: a value is a bare word (a number when it
/// reads as one) or a Rust-quoted string (`{:?}`), unquoted here; `-` is null.
fn access_fields(msg: &str) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut rest = msg.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = &rest[..eq];
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            break;
        }
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match unquote(quoted) {
                Some((text, tail)) => (text_or_null(text), tail),
                None => break,
            }
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            let word = &after[..end];
            let value = match word.parse::<f64>() {
                Ok(n) if word.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
                    serde_json::Number::from_f64(n).map_or_else(|| word.into(), Into::into)
                }
                _ => text_or_null(word.to_string()),
            };
            (value, &after[end..])
        };
        out.push((key.to_string(), value));
        rest = tail.trim_start();
    }
    out
}

fn text_or_null(text: String) -> serde_json::Value {
    if text == "-" {
        serde_json::Value::Null
    } else {
        text.into()
    }
}

/// The text of a `{:?}`-quoted string whose opening quote is already consumed, and what
/// follows its closing quote.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut text = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((text, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => text.push('\n'),
                'r' => text.push('\r'),
                't' => text.push('\t'),
                '0' => text.push('\0'),
                'u' => {
                    // \u{XXXX}
                    let (_, open) = chars.next()?;
                    if open != '{' {
                        return None;
                    }
                    let mut hex = String::new();
                    loop {
                        let (_, h) = chars.next()?;
                        if h == '}' {
                            break;
                        }
                        hex.push(h);
                    }
                    text.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => text.push(other),
            },
            c => text.push(c),
        }
    }
    None
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
    fn an_access_line_becomes_fields_and_a_quoted_value_is_unquoted() {
        let fields = super::access_fields(
            r#"request_id=00ab op=UpdateUserPassword outcome=OK account="http://a.example" caller="a\"b\\c\u{7}" target="-" status=200 duration_ms=12.5"#,
        );
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("request_id"), Some("00ab".into()));
        assert_eq!(get("op"), Some("UpdateUserPassword".into()));
        assert_eq!(get("account"), Some("http://a.example".into()));
        assert_eq!(get("caller"), Some("a\"b\\c\u{7}".into()));
        assert_eq!(get("target"), Some(serde_json::Value::Null));
        assert_eq!(get("status"), Some(200.0.into()));
        assert_eq!(get("duration_ms"), Some(12.5.into()));
        assert_eq!(fields.len(), 8);
        // Not an access line's shape: nothing is made of it.
        assert!(super::access_fields("listening on http://x").is_empty());
        assert!(super::unquote("no closing quote").is_none());
    }

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
