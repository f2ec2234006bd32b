//! Starting the real binary and watching it: the one harness the integration tests
//! (`tests/api`) and the benchmark kit (`benches/kit`) share, each including this file.
//!
//! A server is a child process that prints `… listening on http://HOST:PORT/…` once it
//! is bound; its stdout is drained all along by a thread (so a chatty server never
//! fills a pipe and stalls), its stderr captured in memory or written to a file.

// Each includer uses part of it.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test: this build's, or the one `SOAP_PASSWD_TEST_BIN` (tests) or
/// `KIT_SERVICE_BIN` (the kit) names — an older build, to see which tests it fails or
/// to measure before and after in one sitting.
pub fn binary() -> PathBuf {
    std::env::var_os("SOAP_PASSWD_TEST_BIN")
        .or_else(|| std::env::var_os("KIT_SERVICE_BIN"))
        .map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_soap-passwd")),
            PathBuf::from,
        )
}

/// How long a server may take to print its listening line.
const START_WITHIN: Duration = Duration::from_secs(60);

/// Where a server's stderr (its log) goes.
pub enum Log {
    /// Kept in memory, returned by [`Served::wait_for_exit`].
    Captured,
    /// Written to this file (long benchmark runs).
    File(PathBuf),
}

/// A running server, killed when dropped.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub port: u16,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    log: Option<PathBuf>,
}

/// What a stopped server printed.
pub struct Printed {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// The address in a `… listening on http://HOST:PORT/…` (or `https://`) line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let scheme = ["http://", "https://"]
        .into_iter()
        .find(|s| line.contains(&format!("listening on {s}")))?;
    let rest = &line[line.find(scheme)? + scheme.len()..];
    rest[..rest.find('/')?].parse().ok()
}

/// VmHWM: a process's peak resident set, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Served {
    /// `soap-passwd serve` on a free loopback port over `db` (what `--db` takes: an
    /// SQLite path or a PostgreSQL URL), with the flags in `extra` and the log level in
    /// `rust_log`, its log captured. Panics if it does not start (for tests).
    pub fn start(db: impl AsRef<std::ffi::OsStr>, extra: &[&str], rust_log: &str) -> Served {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env("RUST_LOG", rust_log)
            .env_remove("SOAP_PASSWD_DB");
        Served::spawn(cmd, Log::Captured, "soap-passwd").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `cmd` and waits for its listening line; `name` is for messages.
    pub fn spawn(mut cmd: Command, log: Log, name: &str) -> Result<Served, String> {
        let log_path = match &log {
            Log::File(path) => Some(path.clone()),
            Log::Captured => None,
        };
        let stderr_to = match &log {
            Log::File(path) => {
                Stdio::from(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            Log::Captured => Stdio::piped(),
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr_to)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let (addr_tx, addr_rx) = mpsc::channel();
        let out = child.stdout.take().ok_or("no stdout")?;
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            let mut told = false;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if !told {
                    if let Some(addr) = listening_addr(&line) {
                        told = addr_tx.send(addr).is_ok();
                    }
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut all = Vec::new();
                let _ = err.read_to_end(&mut all);
                String::from_utf8_lossy(&all).into_owned()
            })
        });
        let mut served = Served {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            port: 0,
            stdout: Some(stdout),
            stderr,
            log: log_path,
        };
        match addr_rx.recv_timeout(START_WITHIN) {
            Ok(addr) => {
                served.addr = addr;
                served.port = addr.port();
                Ok(served)
            }
            Err(_) => {
                let printed = served.kill();
                let tail = if printed.stderr.is_empty() {
                    served.log_tail()
                } else {
                    printed.stderr
                };
                let tail: Vec<&str> = tail.lines().rev().take(3).collect();
                Err(format!(
                    "{name} exited or hung before listening: {}",
                    tail.join(" | ")
                ))
            }
        }
    }

    /// `HOST:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}/soap", self.addr)
    }

    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.child.id())
    }

    fn log_tail(&self) -> String {
        self.log
            .as_deref()
            .and_then(|p: &Path| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -s {name} failed"))
        }
    }

    /// Waits up to `within` for the process to exit (killing it past that), then
    /// returns its exit status (`None` if it had to be killed) and output.
    pub fn wait_for_exit(&mut self, within: Duration) -> Printed {
        let deadline = Instant::now() + within;
        let mut status = None;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let join =
            |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Printed {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }

    /// SIGKILL: no handler runs, nothing is flushed.
    pub fn kill(&mut self) -> Printed {
        let _ = self.child.kill();
        self.wait_for_exit(Duration::from_secs(10))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How a generated user's password is given: in plain (the import hashes it) or as a
/// PHC hash (no argon2 work at import).
pub enum Secret<'a> {
    Password(&'a str),
    Hash(&'a str),
}

/// A user of a generated directory.
pub struct Person<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub secret: Secret<'a>,
    pub role: &'a str,
}

/// The provisioning file of one account at `url` whose users all sit in one root
/// department, with password history 0: the directory of the load tests and the kit's
/// change rows (the kit's deep tree is `benches/kit/directory.rs`).
pub fn flat_directory<'a>(url: &str, people: impl IntoIterator<Item = Person<'a>>) -> String {
    let users: Vec<serde_json::Value> = people
        .into_iter()
        .map(|p| {
            let mut user = serde_json::json!({
                "id": p.id, "email": p.email, "role": p.role, "department": "d-root",
            });
            let (key, value) = match p.secret {
                Secret::Password(v) => ("password", v),
                Secret::Hash(v) => ("password_hash", v),
            };
            user[key] = value.into();
            user
        })
        .collect();
    serde_json::json!({"accounts": [{
        "url": url,
        "name": "Generated",
        "policy": {"history": 0},
        "departments": [{"id": "d-root", "name": "Company", "children": []}],
        "users": users,
    }]})
    .to_string()
}
