//! The command line (contract §9): `serve`, `import`, `audit`, `events` and `unlock`.
//! Every failure is one line on stderr and a non-zero exit, never a panic.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::{DEFAULT_BODY_LIMIT, Database, Settings};
use crate::crypto::HashParams;
use crate::domain::Outcome;
use crate::provision;
use crate::service::Defences;
use crate::soap::{DEFAULT_BATCH_MAX, Limits};
use crate::startup::{self, Application};
use crate::store::ThrottlePolicy;

#[derive(Parser)]
#[command(
    name = "soap-passwd",
    version,
    about = "SOAP UpdateUserPassword service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written: text, or one JSON object per line.
    #[arg(long, global = true, env = "SOAP_PASSWD_LOG_FORMAT", value_enum, default_value_t = crate::logging::Format::Text)]
    log_format: crate::logging::Format,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the SOAP endpoint.
    Serve(Box<ServeArgs>),
    /// Load a provisioning file (JSON) into the database, all or nothing.
    Import(ImportArgs),
    /// Print the audit trail: every attempt, successful or not.
    Audit(AuditArgs),
    /// Print (and acknowledge) the outbox for a notifier: `password_changed` and
    /// `password_reset_requested` events (with --smtp-url, `serve` mails them itself).
    Events(EventsArgs),
    /// Lift a lockout: an (account, e-mail) pair's, or a client address's (audited).
    Unlock(UnlockArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["email", "address"])))]
struct UnlockArgs {
    #[command(flatten)]
    db: DbArg,
    /// The account of the pair (URL; scheme, case and a trailing slash are ignored).
    #[arg(long, requires = "email")]
    account: Option<String>,
    /// The e-mail of the pair (with --account).
    #[arg(long, requires = "account")]
    email: Option<String>,
    /// A client address whose throttle to lift (an IPv6 address lifts its /64).
    #[arg(long)]
    address: Option<std::net::IpAddr>,
}

/// argon2id parameters, shared by `serve` and `import`: one verification cost per
/// deployment (a hash costlier than these is refused at import).
#[derive(Args)]
struct HashArgs {
    /// argon2id memory in KiB (at least OWASP's: 19456 with 2 iterations, …).
    #[arg(long, env = "SOAP_PASSWD_ARGON2_MEMORY", default_value_t = 19_456)]
    argon2_memory: u32,
    /// argon2id iterations.
    #[arg(long, env = "SOAP_PASSWD_ARGON2_ITERATIONS", default_value_t = 2)]
    argon2_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "SOAP_PASSWD_ARGON2_PARALLELISM", default_value_t = 1)]
    argon2_parallelism: u32,
}

impl HashArgs {
    fn params(&self) -> Result<HashParams, String> {
        let params = HashParams {
            m_cost: self.argon2_memory,
            t_cost: self.argon2_iterations,
            p_cost: self.argon2_parallelism,
        };
        params.check_configured().map_err(|e| e.to_string())?;
        Ok(params)
    }
}

/// A reset link's lifetime: a duration from 1 s to 7 days.
fn parse_reset_ttl(text: &str) -> Result<std::time::Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| format!("{text}: {e}"))?;
    if ttl < std::time::Duration::from_secs(1) || ttl > crate::service::MAX_RESET_TTL {
        return Err(format!("{text}: a reset link lives from 1s to 7d"));
    }
    Ok(ttl)
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (a duration such as 90s, 30m, 12h or 400d)"))
}

/// `--audit-retention`: how long rows are kept, `None` for ever.
#[derive(Debug, Clone, Copy)]
struct Retention(Option<std::time::Duration>);

/// A duration of at least a second, or `forever`.
fn parse_retention(s: &str) -> Result<Retention, String> {
    if s.eq_ignore_ascii_case("forever") {
        return Ok(Retention(None));
    }
    let d = parse_duration(s)?;
    if d < std::time::Duration::from_secs(1) {
        return Err("must be at least 1s, or forever".into());
    }
    Ok(Retention(Some(d)))
}

#[derive(Args)]
struct AuditArgs {
    #[command(flatten)]
    db: DbArg,
    /// Only this account (URL; scheme, case and a trailing slash are ignored).
    #[arg(long)]
    account: Option<String>,
    /// Only rows where this user id is the caller or the target.
    #[arg(long)]
    user: Option<String>,
    /// Only rows at or after this time (RFC 3339, or a date: 2026-11-25).
    #[arg(long, value_parser = parse_since)]
    since: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EventsArgs {
    #[command(flatten)]
    db: DbArg,
    /// Only events with an id above this one.
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// Acknowledge every event up to and including this id (they are not listed again).
    /// SQLite only: on PostgreSQL a lower id may commit after a higher one was listed,
    /// so acknowledge the ids you read with --ack-only.
    #[arg(long, value_name = "ID", conflicts_with = "ack_only")]
    ack: Option<i64>,
    /// Acknowledge exactly these events (comma-separated ids, as listed).
    #[arg(long, value_name = "ID,ID,...", value_delimiter = ',', num_args = 1..)]
    ack_only: Vec<i64>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// Normalises `--since` to the stored timestamp format, so rows compare as text.
fn parse_since(s: &str) -> Result<String, String> {
    let at = chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| "expected an RFC 3339 time or a date such as 2026-11-25".to_string())?;
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

#[derive(Args)]
struct DbArg {
    /// The database: an SQLite file (created and migrated on open), or a PostgreSQL URL,
    /// postgres://USER:PASSWORD@HOST:PORT/DB, shared by any number of instances.
    #[arg(long, env = "SOAP_PASSWD_DB", default_value = "./soap-passwd.db", value_parser = parse_database, hide_env_values = true)]
    db: Database,
}

/// Upper bounds of the lockout flags: far beyond any sensible setting, and small enough
/// that a lock's end time in milliseconds stays far from overflowing.
const MAX_WINDOW_SECS: u64 = 30 * 24 * 3600;
const MAX_LOCK_SECS: u64 = 365 * 24 * 3600;

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "SOAP_PASSWD_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    #[command(flatten)]
    db: DbArg,
    /// The endpoint URL published in the WSDL, e.g. https://passwd.example.com/soap.
    #[arg(long, env = "SOAP_PASSWD_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// Trust X-Forwarded-Host/-Proto (only behind a proxy that sets them): they then name
    /// the account of WS-Security callers and the address in the WSDL.
    #[arg(long, env = "SOAP_PASSWD_TRUST_FORWARDED_HOST")]
    trust_forwarded_host: bool,
    /// Load fixtures/demo.json into an empty database and print a request to try.
    #[arg(long, env = "SOAP_PASSWD_DEMO")]
    demo: bool,
    /// Largest request body in bytes; larger bodies get a SOAP fault with HTTP 413.
    #[arg(long, env = "SOAP_PASSWD_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT as u64, value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024))]
    body_limit: u64,
    /// Most items one UpdateUserPasswords call may hold (a full batch of short
    /// passwords is ~180 KB: raise --body-limit with it).
    #[arg(long, env = "SOAP_PASSWD_BATCH_MAX", default_value_t = DEFAULT_BATCH_MAX as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch_max: u64,
    /// Failed sign-ins of one (account, e-mail) pair within the window that lock it.
    #[arg(long, env = "SOAP_PASSWD_LOCKOUT_THRESHOLD", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    lockout_threshold: u32,
    /// Failed sign-ins from one client address within the window that throttle it.
    #[arg(long, env = "SOAP_PASSWD_ADDRESS_THRESHOLD", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    address_threshold: u32,
    /// The counting window, in seconds (at most 30 days).
    #[arg(long, env = "SOAP_PASSWD_LOCKOUT_WINDOW", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=MAX_WINDOW_SECS))]
    lockout_window: u64,
    /// The first lock's length in seconds; each repeat doubles it (at most a year).
    #[arg(long, env = "SOAP_PASSWD_LOCKOUT_DURATION", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=MAX_LOCK_SECS))]
    lockout_duration: u64,
    /// The longest lock, in seconds (at most a year).
    #[arg(long, env = "SOAP_PASSWD_LOCKOUT_MAX", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=MAX_LOCK_SECS))]
    lockout_max: u64,
    /// A client address or network (CIDR) exempt from the address throttle
    /// (repeatable): an LMS or middleware relaying many users' calls. Pair lockouts
    /// still apply.
    #[arg(long = "allow-address", env = "SOAP_PASSWD_ALLOW_ADDRESS", value_delimiter = ',', value_name = "IP|CIDR", value_parser = parse_network)]
    allow_addresses: Vec<ipnet::IpNet>,
    /// A proxy network (CIDR or address; repeatable) whose X-Forwarded-For is believed:
    /// the client is then the right-most hop not in these networks. Without it the
    /// header is ignored.
    #[arg(long = "trusted-proxy", env = "SOAP_PASSWD_TRUSTED_PROXY", value_delimiter = ',', value_name = "CIDR", value_parser = parse_network)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Open connections one client address (an IPv6 client: its /64) may hold; more are
    /// closed at once. Trusted proxies and allowlisted addresses are exempt.
    #[arg(long, env = "SOAP_PASSWD_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_connections_per_address: u64,
    /// How long audit rows and acknowledged events are kept (e.g. 400d, 90d, 12h), or
    /// `forever`; older ones are deleted in the background.
    #[arg(long, env = "SOAP_PASSWD_AUDIT_RETENTION", default_value = "400d", value_parser = parse_retention)]
    audit_retention: Retention,
    /// The longest a request may expect to wait for a hashing slot; beyond it the
    /// request is refused at once with ServerBusyFault (e.g. 1500ms, 3s). A request let
    /// into the queue is served.
    #[arg(long, env = "SOAP_PASSWD_HASH_WAIT", default_value = "1500ms", value_parser = parse_duration)]
    hash_wait: std::time::Duration,
    /// How long a reset link lives (e.g. 90s, 30m, 1h, 7d; at most 7 days).
    #[arg(long, env = "SOAP_PASSWD_RESET_TTL", default_value = "1h", value_parser = parse_reset_ttl)]
    reset_ttl: std::time::Duration,
    /// Mail each event to its user through this SMTP server (contract §14):
    /// smtp://HOST[:PORT] (plain, or with ?tls=required for STARTTLS), smtps://HOST[:PORT]
    /// (TLS), optionally with USER:PASSWORD@ before the host. Without it, events wait for
    /// `soap-passwd events`.
    #[arg(
        long,
        env = "SOAP_PASSWD_SMTP_URL",
        value_name = "URL",
        requires = "smtp_from",
        hide_env_values = true
    )]
    smtp_url: Option<String>,
    /// The sender of those mails, e.g. 'soap-passwd <noreply@example.com>'.
    #[arg(
        long,
        env = "SOAP_PASSWD_SMTP_FROM",
        value_name = "ADDRESS",
        requires = "smtp_url"
    )]
    smtp_from: Option<String>,
    /// The longest wait between retries while the SMTP server is unreachable (the first
    /// is 1 s, doubling), e.g. 30s, 5m.
    #[arg(long, env = "SOAP_PASSWD_SMTP_RETRY_MAX", default_value = "5m", value_parser = parse_duration)]
    smtp_retry_max: std::time::Duration,
    /// Serve HTTPS on --bind with this PEM certificate chain (leaf first); needs
    /// --tls-key. Without both, plain HTTP (for use behind a TLS-terminating proxy).
    #[arg(
        long,
        env = "SOAP_PASSWD_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// Serve GET /metrics on this address (e.g. 127.0.0.1:9090) instead of with the API,
    /// so that it need not be exposed where the API is; port 0 picks a free port.
    #[arg(long, env = "SOAP_PASSWD_METRICS_BIND", value_name = "ADDR")]
    metrics_bind: Option<String>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert's certificate.
    #[arg(
        long,
        env = "SOAP_PASSWD_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    hash: HashArgs,
    /// Longest time, in seconds, to receive a request body (slower: a fault, HTTP 408).
    #[arg(long, env = "SOAP_PASSWD_BODY_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    body_timeout: u64,
    /// Concurrent connections per worker; more wait in the listen backlog.
    #[arg(long, env = "SOAP_PASSWD_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_connections: u64,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "SOAP_PASSWD_WORKERS", value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: Option<u64>,
    /// A TOML file of settings: every flag above as a key (its name with - or _, e.g.
    /// lockout_threshold = 5, trusted_proxy = ["10.0.0.0/8"]). Flags win over SOAP_PASSWD_*
    /// variables, which win over the file, which wins over the defaults.
    #[arg(long, env = "SOAP_PASSWD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ImportArgs {
    /// The provisioning file.
    file: PathBuf,
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    hash: HashArgs,
}

/// An address or a network in CIDR notation.
fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "expected an IP address or a network such as 10.0.0.0/8".to_string())
}

fn parse_public_url(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if (lower.starts_with("http://") || lower.starts_with("https://"))
        && !s.contains(char::is_whitespace)
    {
        Ok(s.trim_end_matches('/').to_string())
    } else {
        Err("must be an http:// or https:// URL".into())
    }
}

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let code = run();
    crate::logging::flush();
    code
}

/// The default log filter (`RUST_LOG` replaces it).
const DEFAULT_LOG_FILTER: &str = "info,rusqlite_migration=warn,tokio_postgres=warn";

fn run() -> ExitCode {
    let argv = match with_config_file(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(message) => {
            eprintln!("soap-passwd: {message}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's first paragraph is the error ("… not provided:" plus the missing
            // arguments); the usage that follows is what --help is for.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("soap-passwd: {message} (see --help)");
            return ExitCode::from(2);
        }
    };
    let log_format = cli.log_format;
    crate::logging::init(DEFAULT_LOG_FILTER, log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(*args).map_err(Stop::Failed),
        Command::Import(args) => import(args),
        Command::Audit(args) => audit(args),
        Command::Events(args) => events(args),
        Command::Unlock(args) => unlock(args),
    };
    match result {
        // `soap-passwd audit | head`: the reader has what it wanted.
        Ok(()) | Err(Stop::ReaderGone) => ExitCode::SUCCESS,
        Err(Stop::Failed(message)) => {
            let line = format!("soap-passwd: {message}");
            match log_format {
                crate::logging::Format::Text => eprintln!("{line}"),
                // A log shipper reading JSON gets the reason a start failed as JSON too.
                crate::logging::Format::Json => {
                    crate::logging::flush();
                    eprintln!("{}", crate::logging::json_failure(&line));
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// `serve --config FILE`: the file's settings, added to `argv` as the flags they stand
/// for wherever neither a flag nor a `SOAP_PASSWD_*` variable set that setting, so that
/// clap parses and checks them as it does everything else. Any other command, or none
/// given, is `argv` unchanged; so is an `argv` clap refuses (it says why, next).
fn with_config_file(argv: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>, String> {
    let Ok(matches) = Cli::command().try_get_matches_from(argv.clone()) else {
        return Ok(argv);
    };
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(argv);
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Ok(argv);
    };
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read config {shown}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        format!(
            "config {shown}: {}",
            e.message().lines().next().unwrap_or("not TOML")
        )
    })?;
    let command = Cli::command();
    let serve_command = command.find_subcommand("serve").ok_or("no serve command")?;
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        // The serve command's own flags, and the global ones (--log-format).
        let arg = serve_command
            .get_arguments()
            .chain(command.get_arguments().filter(|a| a.is_global_set()))
            .find(|a| a.get_long() == Some(flag.as_str()) && flag != "config")
            .ok_or_else(|| format!("config {shown}: unknown key \"{key}\""))?;
        let id = arg.get_id().as_str();
        let source = if arg.is_global_set() {
            matches.value_source(id)
        } else {
            serve.value_source(id)
        };
        let set_elsewhere = matches!(
            source,
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        );
        let takes_value = arg.get_action().takes_values();
        let mut args = Vec::new();
        let scalar = |v: &toml::Value| -> Result<String, String> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                toml::Value::Boolean(b) => Ok(b.to_string()),
                _ => Err(format!(
                    "config {shown}: {key}: expected a string, a number or a boolean"
                )),
            }
        };
        match (value, takes_value) {
            (toml::Value::Boolean(on), false) => {
                if *on {
                    args.push(format!("--{flag}"));
                }
            }
            (_, false) => {
                return Err(format!("config {shown}: {key}: expected true or false"));
            }
            (toml::Value::Array(items), true) => {
                for item in items {
                    args.push(format!("--{flag}={}", scalar(item)?));
                }
            }
            (value, true) => args.push(format!("--{flag}={}", scalar(value)?)),
        }
        // Each value is checked on its own, so that a bad one is reported by its key.
        let mut alone: Vec<String> = vec!["soap-passwd".into(), "serve".into()];
        alone.extend(args.iter().cloned());
        if let Err(e) = Cli::command().try_get_matches_from(alone) {
            if matches!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation
                    | clap::error::ErrorKind::InvalidValue
                    | clap::error::ErrorKind::UnknownArgument
                    | clap::error::ErrorKind::TooManyValues
                    | clap::error::ErrorKind::ArgumentConflict
            ) {
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                let first = first.strip_prefix("error: ").unwrap_or(first);
                return Err(format!("config {shown}: {key}: {first}"));
            }
        }
        if !set_elsewhere {
            extra.extend(args.into_iter().map(Into::into));
        }
    }
    let mut argv = argv;
    argv.extend(extra);
    Ok(argv)
}

/// Why a command ended before its work was done.
enum Stop {
    /// Reported as one line on stderr, exit 1.
    Failed(String),
    /// Standard output was closed by its reader: stop printing, exit 0.
    ReaderGone,
}

impl From<String> for Stop {
    fn from(message: String) -> Self {
        Stop::Failed(message)
    }
}

/// Prints one line on standard output (`println!` would panic on a closed pipe).
fn say(line: std::fmt::Arguments<'_>) -> Result<(), Stop> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Stop::ReaderGone),
        Err(e) => Err(Stop::Failed(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    if let Some(path) = &args.config {
        log::info!(
            "settings read from {} (under flags and SOAP_PASSWD_* variables)",
            path.display()
        );
    }
    let mut settings = Settings::new(args.bind, args.db.db);
    // Before the database is opened: a bad certificate stops the start with nothing done.
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = crate::http::Tls::load(cert, key).map_err(|e| e.to_string())?;
        log::info!("TLS: serving HTTPS with {}", tls.cert_path().display());
        settings.tls = Some(tls);
    }
    settings.public_url = args.public_url;
    settings.metrics_bind = args.metrics_bind;
    settings.trust_forwarded_host = args.trust_forwarded_host;
    settings.body_timeout = std::time::Duration::from_secs(args.body_timeout);
    settings.max_connections = usize::try_from(args.max_connections).map_err(|e| e.to_string())?;
    let secs = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    settings.defences = Defences {
        policy: ThrottlePolicy {
            pair_threshold: args.lockout_threshold,
            address_threshold: args.address_threshold,
            window_ms: secs(args.lockout_window),
            lock_ms: secs(args.lockout_duration),
            max_lock_ms: secs(args.lockout_max),
        },
        allowlist: args.allow_addresses,
    };
    settings.trusted_proxies = args.trusted_proxies;
    settings.max_connections_per_address =
        usize::try_from(args.max_connections_per_address).map_err(|e| e.to_string())?;
    settings.audit_retention = args.audit_retention.0;
    settings.hash_wait = args.hash_wait;
    settings.reset_ttl = args.reset_ttl;
    if let (Some(url), Some(from)) = (&args.smtp_url, &args.smtp_from) {
        settings.mail = Some(
            crate::notify::MailSettings::new(url, from, args.smtp_retry_max)
                .map_err(|e| e.to_string())?,
        );
    }
    settings.hash = args.hash.params()?;
    settings.body_limit = usize::try_from(args.body_limit).map_err(|e| e.to_string())?;
    settings.limits =
        Limits::for_batch(usize::try_from(args.batch_max).map_err(|e| e.to_string())?);
    if let Some(workers) = args.workers {
        settings.workers = usize::try_from(workers).map_err(|e| e.to_string())?;
    }
    let store = startup::open_store(&settings).map_err(|e| e.to_string())?;
    if args.demo {
        if store.is_empty().map_err(|e| e.to_string())? {
            let summary = provision::import_json(&store, crate::demo::DEMO_JSON, settings.hash)
                .map_err(|e| format!("demo import failed: {e}"))?;
            log::info!("demo directory loaded: {} users", summary.users_created);
        } else {
            log::warn!(
                "database is not empty; the demo directory was not loaded (the request printed \
                 below works only on a database that holds it)"
            );
        }
    }
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build_with_store(&settings, store).map_err(|e| e.to_string())?;
        let host = shown_host(&settings.bind);
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let endpoint = format!("{scheme}://{host}:{}/soap", app.port());
        // Nobody reading standard output is no reason to stop serving.
        let _ = say(format_args!(
            "soap-passwd listening on {endpoint} (WSDL: {endpoint}?wsdl)"
        ));
        if let Some(port) = app.metrics_port() {
            let host = shown_host(settings.metrics_bind.as_deref().unwrap_or_default());
            let _ = say(format_args!("metrics on http://{host}:{port}/metrics"));
        }
        if args.demo {
            let _ = say(format_args!(
                "\nTry it:\n\n{}\n",
                crate::demo::ready_request(&endpoint)
            ));
        }
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

/// The host of a bind address as a client on this machine reaches it.
fn shown_host(bind: &str) -> &str {
    match bind.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h) {
        "0.0.0.0" | "[::]" => "127.0.0.1",
        host => host,
    }
}

fn import(args: ImportArgs) -> Result<(), Stop> {
    // Opened here first so that a missing file is told before the database is opened;
    // the import reads it twice (all but the users, then the users as a stream).
    std::fs::File::open(&args.file)
        .and_then(|f| f.metadata())
        .and_then(|m| {
            if m.is_dir() {
                Err(std::io::Error::other("it is a directory"))
            } else {
                Ok(())
            }
        })
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let settings = Settings::new("127.0.0.1:0", args.db.db);
    let params = args.hash.params()?;
    let store = startup::open_store(&settings).map_err(|e| e.to_string())?;
    let summary = provision::import_file(&store, &args.file, params)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    say(format_args!(
        "imported {}: {} accounts, {} departments, {} roles, {} users created, {} updated",
        args.file.display(),
        summary.accounts,
        summary.departments,
        summary.roles,
        summary.users_created,
        summary.users_updated
    ))
}

/// Opens an existing database for the read-mostly commands.
fn parse_database(s: &str) -> Result<Database, String> {
    Ok(Database::parse(s))
}

fn open_for_reading(db: Database) -> Result<crate::store::Store, String> {
    if let Some(path) = db.sqlite_path().filter(|p| !p.exists()) {
        return Err(format!("no database at {}", path.display()));
    }
    startup::open_store(&Settings::new("127.0.0.1:0", db)).map_err(|e| e.to_string())
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Stop> {
    let line = serde_json::to_string(value).map_err(|e| e.to_string())?;
    say(format_args!("{line}"))
}

fn audit(args: AuditArgs) -> Result<(), Stop> {
    let store = open_for_reading(args.db.db)?;
    let filter = crate::domain::records::AuditFilter {
        account_key: args
            .account
            .as_deref()
            .map(crate::domain::AccountUrl::key_of),
        user: args.user,
        since: args.since,
    };
    let rows = store.audit_trail(&filter).map_err(|e| e.to_string())?;
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for r in &rows {
        if args.json {
            print_json(r)?;
        } else {
            let count = if r.count > 1 {
                format!(" count={}", r.count)
            } else {
                String::new()
            };
            say(format_args!(
                "{} {:<22} {:<28} account={} caller={} ({}) target={} client={} request={}{count}",
                r.at,
                r.outcome,
                dash(&r.detail),
                dash(&r.account),
                dash(&r.caller_id),
                dash(&r.caller_email),
                dash(&r.target_id),
                r.client_addr,
                r.request_id
            ))?;
        }
    }
    Ok(())
}

fn events(args: EventsArgs) -> Result<(), Stop> {
    let store = open_for_reading(args.db.db)?;
    if let Some(id) = args.ack {
        if store.commits_out_of_id_order() {
            return Err(Stop::from(format!(
                "--ack {id}: on PostgreSQL an event with a lower id can commit after {id} \
                 was listed and would be acknowledged unseen; acknowledge the ids you read \
                 with --ack-only ID,ID,..."
            )));
        }
        let n = store.ack_events(id).map_err(|e| e.to_string())?;
        eprintln!("acknowledged {n} events up to {id}");
        return Ok(());
    }
    if !args.ack_only.is_empty() {
        let n = store
            .ack_listed(&args.ack_only)
            .map_err(|e| e.to_string())?;
        eprintln!(
            "acknowledged {n} of the {} events named",
            args.ack_only.len()
        );
        return Ok(());
    }
    for e in store.events_after(args.after).map_err(|e| e.to_string())? {
        if args.json {
            print_json(&e)?;
        } else {
            say(format_args!(
                "{} {} {} account={} user={} email={} credential_version={} request={} via={} temporary={}",
                e.id,
                e.at,
                e.kind,
                e.account,
                e.user_id,
                e.email,
                e.credential_version,
                e.request_id,
                e.via.as_deref().unwrap_or("-"),
                e.temporary
            ))?;
            if let (Some(link), Some(expires)) = (&e.link, &e.link_expires_at) {
                say(format_args!("  link={link} expires={expires}"))?;
            }
        }
    }
    Ok(())
}

fn unlock(args: UnlockArgs) -> Result<(), Stop> {
    use crate::domain::records::ThrottleKey;
    use crate::domain::{AccountUrl, ClientAddress, Email};
    let store = open_for_reading(args.db.db)?;
    let mut keys = Vec::new();
    if let (Some(account), Some(email)) = (&args.account, &args.email) {
        keys.push((
            format!("pair {account} / {email}"),
            ThrottleKey::pair(&AccountUrl::key_of(account), &Email::key_of(email)),
        ));
    }
    if let Some(address) = args.address {
        let client = ClientAddress::new(address);
        keys.push((
            format!("address {}", client.key()),
            ThrottleKey::address(client.key()),
        ));
    }
    let now = chrono::Utc::now();
    let what: Vec<&str> = keys.iter().map(|(what, _)| what.as_str()).collect();
    let audit = crate::domain::records::AuditRecord::new("cli-unlock", "cli", Outcome::Unlocked)
        .account(None, args.account.as_deref())
        .caller(None, args.email.as_deref())
        .detail(Some(what.join("; ")));
    let only_keys: Vec<ThrottleKey> = keys.iter().map(|(_, k)| k.clone()).collect();
    let results = store
        .unlock_blocking(&only_keys, &audit, now.timestamp_millis())
        .map_err(|e| e.to_string())?;
    for ((what, _), (existed, was)) in keys.iter().zip(results) {
        match (existed, was) {
            (_, Some(until)) => {
                let until = chrono::DateTime::from_timestamp_millis(until)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                say(format_args!("unlocked {what} (was locked until {until})"))?;
            }
            (true, None) => say(format_args!(
                "{what} was not locked; its failures are forgotten"
            ))?,
            (false, None) => say(format_args!("{what} had no failures and no lock"))?,
        }
    }
    Ok(())
}
