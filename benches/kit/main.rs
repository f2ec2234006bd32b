//! The benchmark kit of issue 4: one command, one table (`cargo bench --bench kit`).
//!
//! Argon2 is meant to be expensive, so every figure is set against the floor it sets:
//! hash and verify are timed in process, and the heavy path's throughput is reported as a
//! share of what the cores could do if a change cost nothing but its argon2 operations.
//! The service is the release binary, started as a subprocess per measurement on a fresh
//! copy of a generated database and driven over loopback by a load generator that runs on
//! one thread of this process (raw HTTP/1.1 with keep-alive, so it costs the server as
//! little CPU as possible). The "minimal actix-web handler" the light path is compared
//! with is this same binary re-executed in baseline mode, so both are measured the same
//! way in the same run.
//!
//! Environment (or arguments after `--`):
//! - `KIT_QUICK=1`: a smoke run (short runs, a 10,000-department / 100,000-user directory);
//! - `KIT_ONLY=argon2,heavy,batch,light,overload,fairness,attacks,directory,postgres` (or those names as
//!   arguments): run only these sections (argon2 always runs: the others are judged by it);
//! - `KIT_SECS=N`: seconds of each heavy and light measurement (default 10, quick 2; the
//!   batch row runs three times as long);
//! - `KIT_BATCH_C=N`: concurrent batches of the batch row (default 8);
//! - `KIT_SERVICE_BIN=PATH`: measure another build of the service (an older commit's,
//!   for a before/after comparison in one sitting);
//! - `KIT_QUIET=N`: before each measurement, wait up to N seconds (default 20, quick 0)
//!   for other processes to leave the machine idle. Every load row also shows the CPU the
//!   server, the generator and everything else used while it was measured.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use soap_passwd::crypto::{HashParams, hash_blocking, verify_blocking};
use soap_passwd::domain::lockout::ThrottlePolicy;
use soap_passwd::domain::records::{Settlement, SignIn, SignInGate, ThrottleKey};
use soap_passwd::domain::{AccountUrl, Email, Password};
use soap_passwd::service::permission::authorise;
use soap_passwd::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{LocalSet, spawn_local};
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

mod attacks;
mod baseline;
mod batch;
mod cpu;
mod directory;
mod fixture;
#[path = "../../tests/harness/mod.rs"]
mod harness;
mod hashing;
mod heavy;
mod load;
mod overload;
mod postgres;
mod report;

use cpu::*;
use directory::*;
use fixture::*;
use harness::{Log, Served};
use hashing::*;
use load::*;
use report::*;

/// The service under test, built by `cargo bench` in the release profile (or the one
/// `KIT_SERVICE_BIN` names).
fn service_bin() -> PathBuf {
    harness::binary()
}
/// Set when this binary is re-executed to serve the baseline handler.
const BASELINE_ENV: &str = "SOAP_PASSWD_KIT_BASELINE";

fn main() {
    if std::env::var_os(BASELINE_ENV).is_some() {
        baseline::serve();
        return;
    }
    // `cargo test --benches` runs bench targets without `--bench`: a ten-minute benchmark
    // has no place in a test run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark kit: run it with `cargo bench --bench kit`");
        return;
    }
    let plan = match Plan::from_env() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("kit: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&plan) {
        eprintln!("kit: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------
// What to run
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Argon2,
    Heavy,
    Batch,
    Light,
    Overload,
    Fairness,
    Attacks,
    Directory,
    Postgres,
}

const SECTIONS: [(&str, Section); 9] = [
    ("argon2", Section::Argon2),
    ("heavy", Section::Heavy),
    ("batch", Section::Batch),
    ("light", Section::Light),
    ("overload", Section::Overload),
    ("fairness", Section::Fairness),
    ("attacks", Section::Attacks),
    ("directory", Section::Directory),
    ("postgres", Section::Postgres),
];

/// Concurrencies of the heavy path (the 1, 2, 8, 32).
const HEAVY_CONCURRENCY: [usize; 4] = [1, 2, 8, 32];
/// Connections of the light path, the baseline and the fairness flood.
const LIGHT_CONCURRENCY: usize = 32;
const FLOOD_CONNECTIONS: usize = 64;
/// Connections of the legitimate client in the fairness run.
const LEGIT_CONNECTIONS: usize = 2;
/// Untimed hashes and verifies per timing thread before the first measurement.
const ARGON2_WARMUP: usize = 12;
/// Hashes and verifies per thread in the argon2 yardstick around each heavy run.
const YARDSTICK_SAMPLES: usize = 4;
/// Users in the load-test directory.
const BENCH_USERS: usize = 1000;

/// Durations and sizes of one run, from the environment.
struct Plan {
    quick: bool,
    sections: Vec<Section>,
    warmup: Duration,
    run: Duration,
    overload: Duration,
    fairness: Duration,
    argon2_samples: usize,
    decision_samples: usize,
    departments: usize,
    users: usize,
    /// Longest wait for the machine to quieten before one measurement, and in all.
    quiet_wait: Duration,
    quiet_budget: Duration,
}

impl Plan {
    fn from_env() -> Result<Plan, String> {
        let quick = std::env::var("KIT_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut names: Vec<String> = std::env::var("KIT_ONLY")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        names.extend(
            std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .map(|a| a.to_ascii_lowercase()),
        );
        let mut sections = vec![Section::Argon2];
        for name in &names {
            let Some((_, section)) = SECTIONS.iter().find(|(n, _)| n == name) else {
                let known: Vec<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown section \"{name}\" (known: {})",
                    known.join(", ")
                ));
            };
            if !sections.contains(section) {
                sections.push(*section);
            }
        }
        if names.is_empty() {
            sections = SECTIONS.iter().map(|(_, s)| *s).collect();
        }
        let secs = match std::env::var("KIT_SECS") {
            Ok(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.5)
                .ok_or_else(|| format!("KIT_SECS={v}: give a number of seconds ≥ 0.5"))?,
            Err(_) if quick => 2.0,
            Err(_) => 10.0,
        };
        let quiet = match std::env::var("KIT_QUIET") {
            Ok(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| format!("KIT_QUIET={v}: give a number of seconds ≥ 0"))?,
            Err(_) if quick => 0.0,
            Err(_) => 20.0,
        };
        Ok(Plan {
            quick,
            sections,
            warmup: Duration::from_secs_f64(if quick { 0.5 } else { 1.0 }),
            run: Duration::from_secs_f64(secs),
            overload: Duration::from_secs(if quick { 4 } else { 20 }),
            fairness: Duration::from_secs(if quick { 4 } else { 15 }),
            argon2_samples: if quick { 5 } else { 20 },
            decision_samples: if quick { 300 } else { 3000 },
            departments: if quick { 10_000 } else { 100_000 },
            users: if quick { 100_000 } else { 1_000_000 },
            quiet_wait: Duration::from_secs_f64(quiet),
            quiet_budget: Duration::from_secs_f64(quiet * 12.0),
        })
    }

    fn has(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }
}

/// Where the server and the load generator run. Pinning them apart only pays when the
/// server keeps enough cores: on two, it would halve the server's argon2 capacity.
enum Pinning {
    Shared { cores: usize },
    Split { server: String, generator: usize },
}

impl Pinning {
    fn choose(cores: usize) -> Pinning {
        let taskset = Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if cores >= 4 && taskset {
            Pinning::Split {
                server: format!("0-{}", cores - 2),
                generator: cores - 1,
            }
        } else {
            Pinning::Shared { cores }
        }
    }

    /// Cores the server may use: its hashing slots and HTTP workers.
    fn server_cores(&self) -> usize {
        match self {
            Pinning::Shared { cores } => *cores,
            Pinning::Split { generator, .. } => *generator,
        }
    }

    fn describe(&self) -> String {
        match self {
            Pinning::Shared { cores } if *cores >= 4 => {
                format!("unpinned: server and generator share {cores} cores (no taskset)")
            }
            Pinning::Shared { cores } => format!(
                "unpinned: server and generator share {cores} cores (pinning the generator \
                 apart would leave the server {} core(s))",
                cores.saturating_sub(1).max(1)
            ),
            Pinning::Split { server, generator } => {
                format!("pinned: server on cores {server}, load generator on core {generator}")
            }
        }
    }

    /// Pins this process (the load generator) before it starts any thread.
    fn pin_generator(&self) -> Result<(), String> {
        if let Pinning::Split { generator, .. } = self {
            let status = Command::new("taskset")
                .args(["-a", "-p", "-c", &generator.to_string()])
                .arg(std::process::id().to_string())
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("taskset: {e}"))?;
            if !status.success() {
                return Err("taskset could not pin the load generator".into());
            }
        }
        Ok(())
    }

    /// A command running `program` on the server's cores.
    fn server_command(&self, program: &Path) -> Command {
        match self {
            Pinning::Split { server, .. } => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(server).arg(program);
                cmd
            }
            Pinning::Shared { .. } => Command::new(program),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

/// argon2 operation times.
#[derive(Clone, Copy)]
struct OpTimes {
    hash: Duration,
    verify: Duration,
}

impl OpTimes {
    fn mean(&self, other: &OpTimes) -> OpTimes {
        OpTimes {
            hash: (self.hash + other.hash) / 2,
            verify: (self.verify + other.verify) / 2,
        }
    }

    /// argon2 time of one change. An admin change verifies the caller, verifies the
    /// target's current password (`SAME_AS_CURRENT`) and hashes the new one; a
    /// self-change verifies the caller and hashes (its current-password check compares
    /// plaintexts).
    fn change(&self, kind: ChangeKind) -> Duration {
        match kind {
            ChangeKind::Admin => self.verify * 2 + self.hash,
            ChangeKind::OwnPassword => self.verify + self.hash,
        }
    }
}

/// Figures later sections are judged by.
struct Floor {
    /// One operation at a time: what a change pays at concurrency 1.
    alone: OpTimes,
    /// Every server core hashing at once (they share caches and memory bandwidth):
    /// what the limit is made of.
    loaded: OpTimes,
    /// The server's cores, one hashing slot each.
    cores: usize,
}

impl Floor {
    /// The argon2 limit: cores ÷ the argon2 time of one change with every core busy.
    fn limit(&self, kind: ChangeKind) -> f64 {
        self.cores as f64 / self.loaded.change(kind).as_secs_f64()
    }
}

fn run(plan: &Plan) -> Result<(), String> {
    let started = std::time::Instant::now();
    let pinning = Pinning::choose(soap_passwd::config::cores());
    let mut report = Report::default();
    eprintln!(
        "kit: {} run; {}",
        if plan.quick { "quick (smoke)" } else { "full" },
        pinning.describe()
    );
    let quiet_left = std::cell::Cell::new(plan.quiet_budget);
    settle(plan, &quiet_left);
    let timer = Argon2Timer::start(pinning.server_cores())?;
    let floor = measure_argon2(
        &timer,
        plan.argon2_samples,
        pinning.server_cores(),
        &mut report,
    )?;
    pinning.pin_generator()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let work = tempfile::Builder::new()
        .prefix("soap-passwd-kit-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let ctx = Kit {
        plan,
        pinning: &pinning,
        runtime: &runtime,
        work: work.path(),
        argon2: &timer,
        quiet_left,
    };

    let fixture = if plan.sections.iter().any(|s| {
        matches!(
            s,
            Section::Heavy
                | Section::Batch
                | Section::Light
                | Section::Overload
                | Section::Fairness
                | Section::Attacks
                | Section::Postgres
        )
    }) {
        Some(ctx.bench_fixture()?)
    } else {
        None
    };
    let mut capacity = None;
    if let (true, Some(fixture)) = (plan.has(Section::Heavy), &fixture) {
        let result = ctx.heavy(fixture, &floor, &mut report);
        capacity = section(&mut report, "heavy", result).flatten();
    }
    // Without a heavy run in this invocation, estimate the capacity from argon2 alone.
    let capacity = match capacity {
        Some(rps) => Capacity {
            rps,
            measured: true,
        },
        None => Capacity {
            rps: 0.9 * floor.limit(ChangeKind::Admin),
            measured: false,
        },
    };
    if let (true, Some(fixture)) = (plan.has(Section::Batch), &fixture) {
        let result = ctx.batch(fixture, &floor, &mut report);
        section(&mut report, "batch", result);
    }
    if let (true, Some(fixture)) = (plan.has(Section::Light), &fixture) {
        let result = ctx.light(fixture, &mut report);
        section(&mut report, "light", result);
    }
    if let (true, Some(fixture)) = (plan.has(Section::Overload), &fixture) {
        let result = ctx.overload(fixture, &floor, capacity, &mut report);
        section(&mut report, "overload", result);
    }
    if let (true, Some(fixture)) = (plan.has(Section::Fairness), &fixture) {
        let result = ctx.fairness(fixture, capacity, &mut report);
        section(&mut report, "fairness", result);
    }
    if let (true, Some(fixture)) = (plan.has(Section::Attacks), &fixture) {
        let result = ctx.attacks(fixture, &mut report);
        section(&mut report, "attacks", result);
    }
    if plan.has(Section::Directory) {
        let result = ctx.directory(&mut report);
        section(&mut report, "directory", result);
    }
    if let (true, Some(fixture)) = (plan.has(Section::Postgres), &fixture) {
        let result = ctx.postgres(fixture, &floor, &mut report);
        section(&mut report, "postgres", result);
    }

    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "unset (info)".into());
    let header = [
        format!(
            "soap-passwd benchmark kit ({} run, {:.0} s): {} cores, {}",
            if plan.quick { "quick smoke" } else { "full" },
            started.elapsed().as_secs_f64(),
            soap_passwd::config::cores(),
            pinning.describe()
        ),
        format!(
            "service: release binary, {} HTTP workers and {} hashing slots (defaults), RUST_LOG {log}; \
             heavy/light runs {:.0} s after {:.1} s warm-up; every heavy run and section on a fresh server and database",
            pinning.server_cores(),
            pinning.server_cores(),
            plan.run.as_secs_f64(),
            plan.warmup.as_secs_f64()
        ),
    ];
    report.print(&header);
    Ok(())
}

/// Records a section's failure as a row, so one broken section does not hide the others.
fn section<T>(report: &mut Report, name: &'static str, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            report.add(Row::new(name, "section failed", e).verdict(false));
            None
        }
    }
}

#[derive(Clone, Copy)]
struct Capacity {
    rps: f64,
    measured: bool,
}

impl Capacity {
    fn describe(&self) -> String {
        if self.measured {
            format!("{:.1}/s measured", self.rps)
        } else {
            format!(
                "{:.1}/s = 90 % of the argon2 limit, heavy not run",
                self.rps
            )
        }
    }
}

/// What every section needs.
struct Kit<'a> {
    plan: &'a Plan,
    pinning: &'a Pinning,
    runtime: &'a tokio::runtime::Runtime,
    work: &'a Path,
    /// The warm argon2 timing threads.
    argon2: &'a Argon2Timer,
    /// What is left of the plan's quiet-wait budget.
    quiet_left: std::cell::Cell<Duration>,
}

impl Kit<'_> {
    fn timing(&self, run: Duration) -> Timing {
        Timing {
            warmup: self.plan.warmup,
            run,
        }
    }

    /// Runs a load-generator future on this thread.
    fn drive<F: std::future::Future>(&self, future: F) -> F::Output {
        LocalSet::new().block_on(self.runtime, future)
    }

    /// Waits for the machine to quieten, then runs `load` against `served`, counting the
    /// CPU each side used.
    fn measure<F: std::future::Future>(
        &self,
        served: &Served,
        load: F,
    ) -> (F::Output, Option<CpuUse>) {
        settle(self.plan, &self.quiet_left);
        let meter = CpuMeter::start(Some(served.child.id()));
        let output = self.drive(load);
        (output, meter.finish())
    }

    /// The service over `db` (an SQLite path or a PostgreSQL URL) on the server's cores.
    fn start_service(
        &self,
        db: impl AsRef<std::ffi::OsStr>,
        name: &str,
        extra: &[&str],
    ) -> Result<Served, String> {
        let mut cmd = self.pinning.server_command(&service_bin());
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra);
        Served::spawn(cmd, Log::File(self.work.join(format!("{name}.log"))), name)
    }

    fn start_baseline(&self) -> Result<Served, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
        let mut cmd = self.pinning.server_command(&exe);
        cmd.env(BASELINE_ENV, "1");
        Served::spawn(cmd, Log::File(self.work.join("baseline.log")), "baseline")
    }

    /// The load-test directory, imported once; each measurement runs on a copy.
    fn bench_fixture(&self) -> Result<BenchFixture, String> {
        let params = HashParams::default();
        let admin_hash = hash_blocking(params, &Password::normalise(BENCH_ADMIN_PASSWORD))
            .map_err(|e| e.to_string())?;
        let user_hash = hash_blocking(params, &Password::normalise(BENCH_USER_PASSWORD))
            .map_err(|e| e.to_string())?;
        let json = self.work.join("bench.json");
        let ids: Vec<(String, String)> = (0..BENCH_USERS)
            .map(|i| (bench_user_id(i), bench_user_email(i)))
            .collect();
        let admin = harness::Person {
            id: "u-admin",
            email: BENCH_ADMIN_EMAIL,
            secret: harness::Secret::Hash(&admin_hash),
            role: "account_admin",
        };
        let doc = harness::flat_directory(
            BENCH_URL,
            std::iter::once(admin).chain(ids.iter().map(|(id, email)| harness::Person {
                id,
                email,
                secret: harness::Secret::Hash(&user_hash),
                role: "user",
            })),
        );
        fs::write(&json, doc).map_err(|e| format!("{}: {e}", json.display()))?;
        let db = self.work.join("bench-template.db");
        self.import(&json, &db)?;
        Ok(BenchFixture {
            template: db,
            json,
            dir: self.work.to_path_buf(),
        })
    }

    /// `soap-passwd import` into `db` (an SQLite path or a PostgreSQL URL), timed, with
    /// the importer's peak RSS.
    fn import(&self, json: &Path, db: impl AsRef<std::ffi::OsStr>) -> Result<Imported, String> {
        let mut cmd = self.pinning.server_command(&service_bin());
        cmd.arg("import")
            .arg(json)
            .arg("--db")
            .arg(db)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = std::time::Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("import: {e}"))?;
        let meter = CpuMeter::start(Some(child.id()));
        let mut peak_kib = None;
        loop {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                break;
            }
            if let Some(kib) = harness::peak_rss_kib(child.id()) {
                peak_kib = Some(kib);
            }
            meter.observe();
            std::thread::sleep(Duration::from_millis(50));
        }
        let elapsed = started.elapsed();
        let cpu = meter.finish();
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!(
                "import failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Imported {
            elapsed,
            peak_kib,
            cpu,
        })
    }

    /// argon2 times taken right before or after one heavy run, with as many threads as
    /// the run keeps hashing: a shared VM's CPU speed drifts by tens of percent within
    /// minutes, and the share of the limit must compare like with like. `None` when the
    /// generator is pinned to one core (its threads could not load the server's cores).
    fn yardstick(&self, threads: usize) -> Result<Option<OpTimes>, String> {
        match self.pinning {
            Pinning::Shared { .. } => self.argon2.time(threads, YARDSTICK_SAMPLES).map(Some),
            Pinning::Split { .. } => Ok(None),
        }
    }
}
