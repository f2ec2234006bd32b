//! Runtime settings of the server, gathered from the command line in one struct so that
//! tests build exactly what the binary builds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::HashParams;
use crate::service::Defences;
use crate::soap::Limits;

/// Default request body limit: 256 KiB, room for a full batch of 1000 items
/// (`UpdateUserPasswords`, ~180 KB with short passwords) and 500 times a single call.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Where the data lives (`--db`, contract §15): a PostgreSQL URL, else an SQLite file.
#[derive(Clone)]
pub enum Database {
    Sqlite(PathBuf),
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` (or `postgresql://`); it may hold a
    /// password, so it is never shown whole.
    Postgres(SecretString),
}

impl Database {
    /// `postgres://…` and `postgresql://…` (any case) are PostgreSQL; anything else is
    /// an SQLite path.
    pub fn parse(s: &str) -> Database {
        let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Database::Postgres(SecretString::from(s.to_string()))
        } else {
            Database::Sqlite(PathBuf::from(s))
        }
    }

    /// The SQLite file, if that is the backend.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// The URL, for connecting (never for showing).
    pub fn postgres_url(&self) -> Option<&str> {
        match self {
            Database::Postgres(url) => Some(url.expose_secret()),
            Database::Sqlite(_) => None,
        }
    }
}

/// The path, or the URL without its password.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => {
                let url = url.expose_secret();
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                let host = host.split('?').next().unwrap_or(host);
                write!(f, "{scheme}://{host}")
            }
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Self {
        Database::Sqlite(path)
    }
}

impl From<&Path> for Database {
    fn from(path: &Path) -> Self {
        Database::Sqlite(path.to_path_buf())
    }
}

impl From<&PathBuf> for Database {
    fn from(path: &PathBuf) -> Self {
        Database::Sqlite(path.clone())
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    pub db: Database,
    /// The endpoint URL published in the WSDL (`soap:address`).
    pub public_url: Option<String>,
    /// Take the client's host from `X-Forwarded-Host` (a trusted proxy sets it).
    pub trust_forwarded_host: bool,
    pub body_limit: usize,
    /// Longest time to receive a request body; a slower one gets a fault with HTTP 408.
    pub body_timeout: Duration,
    /// Longest time to receive a request's head (actix's client request timeout).
    pub head_timeout: Duration,
    /// Idle time after which a keep-alive connection is closed.
    pub keep_alive: Duration,
    /// Concurrent connections per worker; beyond, new connections wait in the backlog.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads.
    pub workers: usize,
    pub hash: HashParams,
    /// argon2 operations that may run at once.
    pub hash_slots: usize,
    /// Requests that may wait for a hashing slot; beyond, `ServerBusyFault` at once.
    pub hash_queue: usize,
    /// The longest a request may expect to wait for a hashing slot: a request whose
    /// estimated wait is longer gets `ServerBusyFault` at once; one let in is served.
    pub hash_wait: Duration,
    pub limits: Limits,
    /// Brute-force defence: lockout thresholds, windows and the address allowlist.
    pub defences: Defences,
    /// Proxies whose `X-Forwarded-For` names the client (none: the header is ignored).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Open connections one client address (an IPv6 client's /64) may hold.
    pub max_connections_per_address: usize,
    /// Audit rows and acknowledged events older than this are deleted (`None`: kept).
    pub audit_retention: Option<Duration>,
    /// How long a reset link lives.
    pub reset_ttl: Duration,
    /// Where the outbox is mailed (`None`: events wait for the `events` command).
    pub mail: Option<crate::notify::MailSettings>,
    /// HTTPS on `bind` with this certificate and key (`None`: plain HTTP).
    pub tls: Option<crate::http::Tls>,
    /// Serve `/metrics` on this address instead of with the API (`None`: with the API).
    pub metrics_bind: Option<String>,
}

/// The number of cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Settings {
    /// Defaults for a database at `db`, listening on `bind`.
    pub fn new(bind: impl Into<String>, db: impl Into<Database>) -> Self {
        Settings {
            bind: bind.into(),
            db: db.into(),
            public_url: None,
            trust_forwarded_host: false,
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(5),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(10),
            workers: cores(),
            hash: HashParams::default(),
            hash_slots: cores(),
            // The estimated wait (`hash_wait`) is what bounds the queue; this only caps
            // its memory.
            hash_queue: 64 * cores(),
            hash_wait: Duration::from_millis(1500),
            limits: Limits::default(),
            defences: Defences::default(),
            trusted_proxies: Vec::new(),
            max_connections_per_address: 256,
            audit_retention: Some(crate::store::DEFAULT_RETENTION),
            reset_ttl: crate::service::DEFAULT_RESET_TTL,
            mail: None,
            tls: None,
            metrics_bind: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Database;

    #[test]
    fn a_postgres_url_is_told_from_a_path_and_never_shown_with_its_password() {
        for url in [
            "postgres://app:pw-1@db:5432/passwd",
            "PostgreSQL://app:pw-1@db/passwd?sslmode=require",
        ] {
            let db = Database::parse(url);
            assert_eq!(db.postgres_url(), Some(url));
            let shown = format!("{db} {db:?}");
            assert!(!shown.contains("pw-1"), "{shown}");
        }
        let file = Database::parse("./postgres.db");
        assert_eq!(
            file.sqlite_path().map(|p| p.to_str()),
            Some(Some("./postgres.db"))
        );
    }
}
