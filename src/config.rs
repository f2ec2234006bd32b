//! Runtime settings of the server, gathered from the command line in one struct so that
//! tests build exactly what the binary builds.

use std::path::PathBuf;
use std::time::Duration;

use crate::crypto::HashParams;
use crate::service::Defences;
use crate::soap::Limits;

/// Default request body limit: 256 KiB, room for a full batch of 1000 items
/// (`UpdateUserPasswords`, ~180 KB with short passwords) and 500 times a single call.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    pub db: PathBuf,
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
}

/// The number of cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Settings {
    /// Defaults for a database at `db`, listening on `bind`.
    pub fn new(bind: impl Into<String>, db: impl Into<PathBuf>) -> Self {
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
        }
    }
}
