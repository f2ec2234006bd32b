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
//! - `KIT_ONLY=argon2,heavy,light,overload,fairness,attacks,directory` (or those names as
//!   arguments): run only these sections (argon2 always runs: the others are judged by it);
//! - `KIT_SECS=N`: seconds of each heavy and light measurement (default 10, quick 2);
//! - `KIT_SERVICE_BIN=PATH`: measure another build of the service (an older commit's,
//!   for a before/after comparison in one sitting);
//! - `KIT_QUIET=N`: before each measurement, wait up to N seconds (default 20, quick 0)
//!   for other processes to leave the machine idle. Every load row also shows the CPU the
//!   server, the generator and everything else used while it was measured.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use soap_passwd::crypto::{HashParams, hash_blocking, verify_blocking};
use soap_passwd::domain::{AccountUrl, Email, Password};
use soap_passwd::service::permission::authorise;
use soap_passwd::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{LocalSet, spawn_local};
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

/// The service under test, built by `cargo bench` in the release profile (or the one
/// `KIT_SERVICE_BIN` names).
fn service_bin() -> PathBuf {
    std::env::var_os("KIT_SERVICE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_soap-passwd")),
        PathBuf::from,
    )
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
    Light,
    Overload,
    Fairness,
    Attacks,
    Directory,
}

const SECTIONS: [(&str, Section); 7] = [
    ("argon2", Section::Argon2),
    ("heavy", Section::Heavy),
    ("light", Section::Light),
    ("overload", Section::Overload),
    ("fairness", Section::Fairness),
    ("attacks", Section::Attacks),
    ("directory", Section::Directory),
];

/// Concurrencies of the heavy path (the issue's 1, 2, 8, 32).
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
                | Section::Light
                | Section::Overload
                | Section::Fairness
                | Section::Attacks
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

    fn start_service(&self, db: &Path, name: &str, extra: &[&str]) -> Result<Served, String> {
        let mut cmd = self.pinning.server_command(&service_bin());
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra);
        Served::start(cmd, &self.work.join(format!("{name}.log")), name)
    }

    fn start_baseline(&self) -> Result<Served, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
        let mut cmd = self.pinning.server_command(&exe);
        cmd.env(BASELINE_ENV, "1");
        Served::start(cmd, &self.work.join("baseline.log"), "baseline")
    }

    /// The load-test directory, imported once; each measurement runs on a copy.
    fn bench_fixture(&self) -> Result<BenchFixture, String> {
        let params = HashParams::default();
        let admin_hash = hash_blocking(params, &Password::normalise(BENCH_ADMIN_PASSWORD))
            .map_err(|e| e.to_string())?;
        let user_hash = hash_blocking(params, &Password::normalise(BENCH_USER_PASSWORD))
            .map_err(|e| e.to_string())?;
        let json = self.work.join("bench.json");
        let mut users = vec![serde_json::json!({
            "id": "u-admin", "email": BENCH_ADMIN_EMAIL, "password_hash": admin_hash,
            "role": "account_admin", "department": "d-root",
        })];
        users.extend((0..BENCH_USERS).map(|i| {
            serde_json::json!({
                "id": bench_user_id(i), "email": bench_user_email(i),
                "password_hash": user_hash, "role": "user", "department": "d-root",
            })
        }));
        let doc = serde_json::json!({"accounts": [{
            "url": BENCH_URL, "name": "Bench", "policy": {"history": 0},
            "departments": [{"id": "d-root", "name": "Root", "children": []}],
            "users": users,
        }]});
        fs::write(&json, doc.to_string()).map_err(|e| format!("{}: {e}", json.display()))?;
        let db = self.work.join("bench-template.db");
        self.import(&json, &db)?;
        Ok(BenchFixture {
            template: db,
            dir: self.work.to_path_buf(),
        })
    }

    /// `soap-passwd import`, timed, with the importer's peak RSS.
    fn import(&self, json: &Path, db: &Path) -> Result<Imported, String> {
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
            if let Some(kib) = peak_rss_kib(child.id()) {
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

    fn heavy(
        &self,
        fixture: &BenchFixture,
        floor: &Floor,
        report: &mut Report,
    ) -> Result<Option<f64>, String> {
        let mut capacity: Option<f64> = None;
        for kind in [ChangeKind::Admin, ChangeKind::OwnPassword] {
            let label = match kind {
                ChangeKind::Admin => "admin→users",
                ChangeKind::OwnPassword => "users→themselves",
            };
            for c in HEAVY_CONCURRENCY {
                let served = self.start_service(&fixture.fresh_db()?, "heavy", &[])?;
                let host = served.host();
                let workloads: Vec<Box<dyn Workload>> = (0..c)
                    .map(|k| kind.workload(&host, k, c, k as u64 + 1))
                    .collect();
                // At c=1 one operation runs at a time; above, every slot is busy.
                let threads = if c == 1 { 1 } else { floor.cores };
                settle(self.plan, &self.quiet_left);
                let before = self.yardstick(threads)?;
                let meter = CpuMeter::start(Some(served.child.id()));
                let mut stats = self.drive(closed_loop(
                    served.addr,
                    None,
                    workloads,
                    self.timing(self.plan.run),
                    true,
                ));
                let cpu = meter.finish();
                drop(served);
                let after = self.yardstick(threads)?;
                let times = match (before, after) {
                    (Some(b), Some(a)) => b.mean(&a),
                    _ if c == 1 => floor.alone,
                    _ => floor.loaded,
                };
                stats.finish();
                let ops = times.change(kind);
                let rps = stats.ok_rate();
                let p50 = stats.ok_percentile(50.0);
                let p99 = opt_duration(stats.ok_percentile(99.0));
                let problems = stats.problems();
                let row = if c == 1 {
                    let bound = ops.mul_f64(1.10);
                    let ratio = p50.map_or(f64::NAN, |p| p.as_secs_f64() / ops.as_secs_f64());
                    Row::new(
                        "heavy",
                        format!("{label} c=1"),
                        format!(
                            "{rps:.1}/s, p50 {} = ops ×{ratio:.2} (ops {}), p99 {p99}{problems}",
                            opt_duration(p50),
                            fmt_duration(ops)
                        ),
                    )
                    .target("p50 ≤ ops +10 %")
                    .verdict(p50.is_some_and(|p| p <= bound) && stats.clean())
                } else {
                    let limit = floor.cores as f64 / ops.as_secs_f64();
                    let share = 100.0 * rps / limit;
                    if kind == ChangeKind::Admin {
                        capacity = Some(capacity.map_or(rps, |best| best.max(rps)));
                    }
                    Row::new(
                        "heavy",
                        format!("{label} c={c}"),
                        format!(
                            "{rps:.1}/s = {share:.0} % of {limit:.1}/s, p50 {}, p99 {p99}{problems}",
                            opt_duration(p50)
                        ),
                    )
                    .target("≥ 90 % of limit")
                    .verdict(share >= 90.0 && stats.clean())
                };
                report.add(row.cpu(cpu));
            }
        }
        Ok(capacity)
    }

    fn light(&self, fixture: &BenchFixture, report: &mut Report) -> Result<(), String> {
        let c = LIGHT_CONCURRENCY;
        let baseline = self.start_baseline()?;
        let (mut base, cpu) = self.measure(
            &baseline,
            closed_loop(
                baseline.addr,
                None,
                fixed_workloads(c, &[post(&baseline.host(), BASELINE_REQUEST)], |r| {
                    if r.status == 200 {
                        Outcome::Ok
                    } else {
                        Outcome::Other
                    }
                }),
                self.timing(self.plan.run),
                false,
            ),
        );
        drop(baseline);
        base.finish();
        let base_rps = base.ok_rate();
        report.add(
            Row::new(
                "light",
                format!("baseline: minimal actix handler, c={c}"),
                format!(
                    "{base_rps:.0}/s, p50 {}, p99 {}{}",
                    opt_duration(base.ok_percentile(50.0)),
                    opt_duration(base.ok_percentile(99.0)),
                    base.problems()
                ),
            )
            .cpu(cpu),
        );

        // The generator's address is allowlisted (a relay): these rows measure what
        // refusing costs, not the defence, which after 100 refusals from one address
        // paces the rest (the "attacks" section measures that).
        let served = self.start_service(
            &fixture.fresh_db()?,
            "light",
            &["--allow-address", "127.0.0.1"],
        )?;
        let host = served.host();
        let malformed = bench_request(BENCH_ADMIN_EMAIL, BENCH_ADMIN_PASSWORD, "u-0001", "x")
            .replace("</SOAP-ENV:Body>", "");
        let unknown_operation = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns="{API_NS}"><SOAP-ENV:Body><GetUsersRequest><credentials><accountUrl>{BENCH_URL}</accountUrl><email>{BENCH_ADMIN_EMAIL}</email><password>{BENCH_ADMIN_PASSWORD}</password></credentials></GetUsersRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
        );
        let cases: [(&str, String, Judge); 3] = [
            ("malformed XML", malformed, |r| client_fault(r, None)),
            (
                "WrongParameters (userId missing)",
                BASELINE_REQUEST.to_string(),
                |r| client_fault(r, Some("WrongParametersFault")),
            ),
            ("unknown operation", unknown_operation, |r| {
                client_fault(r, None)
            }),
        ];
        for (name, body, expect) in cases {
            let (mut stats, cpu) = self.measure(
                &served,
                closed_loop(
                    served.addr,
                    None,
                    fixed_workloads(c, &[post(&host, &body)], expect),
                    self.timing(self.plan.run),
                    false,
                ),
            );
            stats.finish();
            let rps = stats.ok_rate();
            let share = 100.0 * rps / base_rps.max(f64::MIN_POSITIVE);
            report.add(
                Row::new(
                    "light",
                    format!("{name}, c={c}"),
                    format!(
                        "{rps:.0}/s = {share:.0} % of baseline, p50 {}, p99 {}{}",
                        opt_duration(stats.ok_percentile(50.0)),
                        opt_duration(stats.ok_percentile(99.0)),
                        stats.problems()
                    ),
                )
                .target("≥ 50 % of baseline")
                .verdict(share >= 50.0 && stats.clean())
                .cpu(cpu),
            );
        }
        Ok(())
    }

    fn overload(
        &self,
        fixture: &BenchFixture,
        floor: &Floor,
        capacity: Capacity,
        report: &mut Report,
    ) -> Result<(), String> {
        let rate = 4.0 * capacity.rps;
        let served = self.start_service(&fixture.fresh_db()?, "overload", &[])?;
        let workload = ChangeKind::Admin.workload(&served.host(), 0, 1, 99);
        let (mut stats, cpu) = self.measure(
            &served,
            open_loop(
                served.addr,
                rate,
                self.timing(self.plan.overload),
                workload,
                Duration::from_secs(10),
            ),
        );
        stats.finish();
        let rss_kib = served.peak_rss_kib();
        drop(served);
        let secs = self.plan.overload.as_secs_f64();
        report.add(
            Row::new(
                "overload",
                format!(
                    "offered 4 × capacity ({}) for {secs:.0} s",
                    capacity.describe()
                ),
                format!("{rate:.1}/s open loop, {} sent", stats.sent()),
            )
            .cpu(cpu),
        );
        let admitted_p99 = stats.ok_percentile(99.0);
        report.add(
            Row::new(
                "overload",
                "admitted changes",
                format!(
                    "{:.1}/s = {:.0} % of limit, p50 {}, p99 {}",
                    stats.ok_rate(),
                    100.0 * stats.ok_rate() / floor.limit(ChangeKind::Admin),
                    opt_duration(stats.ok_percentile(50.0)),
                    opt_duration(admitted_p99)
                ),
            )
            .target("p99 < 2 s")
            .verdict(admitted_p99.is_some_and(|p| p < Duration::from_secs(2))),
        );
        let shed_p99 = stats.shed_percentile(99.0);
        let shed_fast = stats.shed.iter().filter(|ns| **ns < 10_000_000).count();
        report.add(
            Row::new(
                "overload",
                "shed (503 ServerBusyFault)",
                format!(
                    "{} ({:.1}/s, {shed_fast} of them in < 10 ms), p50 {}, p99 {}",
                    stats.shed.len(),
                    stats.shed.len() as f64 / secs,
                    opt_duration(stats.shed_percentile(50.0)),
                    opt_duration(shed_p99)
                ),
            )
            .target("p99 < 10 ms")
            .verdict(shed_p99.is_some_and(|p| p < Duration::from_millis(10))),
        );
        let budget_mib = floor.cores as f64 * 20.0 + 64.0;
        report.add(match rss_kib {
            Some(kib) => {
                let mib = kib as f64 / 1024.0;
                Row::new(
                    "overload",
                    "server peak RSS (VmHWM)",
                    format!("{mib:.1} MiB"),
                )
                .target(format!("< {budget_mib:.0} MiB"))
                .verdict(mib < budget_mib)
            }
            None => Row::new("overload", "server peak RSS (VmHWM)", "unavailable")
                .target(format!("< {budget_mib:.0} MiB"))
                .verdict(false),
        });
        let mut errors = stats.problems();
        if let Some(rest) = errors.strip_prefix(&format!("; {} shed (503)", stats.shed.len())) {
            errors = rest.to_string();
        }
        report.add(
            Row::new(
                "overload",
                "other errors (neither success nor 503)",
                format!(
                    "{}{errors}",
                    stats.other + stats.io_errors + stats.unanswered
                ),
            )
            .target("0")
            .verdict(stats.clean()),
        );
        Ok(())
    }

    /// One client floods wrong passwords from 127.0.0.2 while an admin on 127.0.0.1
    /// makes changes: once with the default brute-force defence (the flooding address
    /// is throttled after 100 failures and then refused without argon2), once with the
    /// flooder on the address allowlist (a relay), where only fair admission to the
    /// hashing slots protects the admin.
    fn fairness(
        &self,
        fixture: &BenchFixture,
        capacity: Capacity,
        report: &mut Report,
    ) -> Result<(), String> {
        let flooder = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let flooder_text = flooder.to_string();
        let variants: [(&str, Vec<&str>); 2] = [
            ("default defence", Vec::new()),
            (
                "flooder allowlisted",
                vec!["--allow-address", flooder_text.as_str()],
            ),
        ];
        for (variant, extra) in variants {
            let served = self.start_service(&fixture.fresh_db()?, "fairness", &extra)?;
            let host = served.host();
            // Wrong passwords for many different users: no single e-mail gets locked
            // out within the run.
            let flood_requests: Vec<Vec<u8>> = (0..BENCH_USERS)
                .map(|i| {
                    post(
                        &host,
                        &bench_request(
                            &bench_user_email(i),
                            "Wrong-Flood-Pass-0000",
                            &bench_user_id(i),
                            "Kit-Flood-New-Pass-31!",
                        ),
                    )
                })
                .collect();
            let flood = fixed_workloads(FLOOD_CONNECTIONS, &flood_requests, |r| {
                if r.status == 503 {
                    Outcome::Shed
                } else if r.status == 500 && contains(&r.body, b"AuthenticationFailedFault") {
                    Outcome::Ok
                } else {
                    Outcome::Other
                }
            });
            let legit: Vec<Box<dyn Workload>> = (0..LEGIT_CONNECTIONS)
                .map(|k| ChangeKind::Admin.workload(&host, k, LEGIT_CONNECTIONS, 7_000 + k as u64))
                .collect();
            let timing = self.timing(self.plan.fairness);
            let addr = served.addr;
            let ((mut flood, mut legit), cpu) = self.measure(&served, async {
                tokio::join!(
                    closed_loop(addr, Some(flooder), flood, timing, false),
                    closed_loop(addr, None, legit, timing, true),
                )
            });
            drop(served);
            flood.finish();
            legit.finish();
            let share = 100.0 * legit.ok_rate() / capacity.rps;
            report.add(
                Row::new(
                    "fairness",
                    format!("{variant}: admin on 127.0.0.1, {LEGIT_CONNECTIONS} conn."),
                    format!(
                        "{:.1} changes/s = {share:.0} % of capacity ({}), p50 {}, p99 {}{}",
                        legit.ok_rate(),
                        capacity.describe(),
                        opt_duration(legit.ok_percentile(50.0)),
                        opt_duration(legit.ok_percentile(99.0)),
                        legit.problems()
                    ),
                )
                .target("≥ 40 % of capacity")
                .verdict(share >= 40.0 && legit.clean())
                .cpu(cpu),
            );
            report.add(Row::new(
                "fairness",
                format!(
                    "{variant}: flood of wrong passwords from {flooder}, {FLOOD_CONNECTIONS} conn."
                ),
                format!(
                    "{:.0} refused/s, p50 {}{}",
                    flood.ok_rate(),
                    opt_duration(flood.ok_percentile(50.0)),
                    flood.problems()
                ),
            ));
        }
        Ok(())
    }

    /// Two attacks of issue 9 against an admin's changes (2 connections from 127.0.0.1),
    /// each set against the admin's rate alone on a fresh server in the same run:
    /// - a learner on 127.0.0.2 changing their own password, 8 connections, to a crafted
    ///   password (100 characters of repeated l33t substitutions, the e-mail's local part
    ///   at its end so the change is refused and the credentials stay valid): before the
    ///   strength check was bounded, 1.2 s of CPU each;
    /// - anonymous junk (WrongParameters) from 127.0.0.2, 32 connections: before refusals
    ///   were audited in aggregate, a row each (81 MB in 10 s).
    fn attacks(&self, fixture: &BenchFixture, report: &mut Report) -> Result<(), String> {
        let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let run = Duration::from_secs(if self.plan.quick { 4 } else { 10 });
        let timing = self.timing(run);
        // The admin changes users 1, 2, 4, 5, …: never user 0, the attacking learner.
        let admin = |host: &str| -> Vec<Box<dyn Workload>> {
            (1..=LEGIT_CONNECTIONS)
                .map(|k| {
                    ChangeKind::Admin.workload(host, k, LEGIT_CONNECTIONS + 1, 9_000 + k as u64)
                })
                .collect()
        };

        let served = self.start_service(&fixture.fresh_db()?, "attacks-idle", &[])?;
        let (mut idle, cpu) = self.measure(
            &served,
            closed_loop(served.addr, None, admin(&served.host()), timing, true),
        );
        drop(served);
        idle.finish();
        let idle_rate = idle.ok_rate();
        report.add(
            Row::new(
                "attacks",
                format!(
                    "admin alone, {LEGIT_CONNECTIONS} conn., {:.0} s",
                    run.as_secs_f64()
                ),
                format!(
                    "{idle_rate:.1} changes/s, p50 {}, p99 {}{}",
                    opt_duration(idle.ok_percentile(50.0)),
                    opt_duration(idle.ok_percentile(99.0)),
                    idle.problems()
                ),
            )
            .cpu(cpu),
        );

        // The crafted self-change: the learner u-0000, 8 connections.
        let l33t = "4@8({[<3!1|70$5%2+69";
        let crafted: String = l33t.chars().cycle().take(95).collect::<String>() + "user0";
        let crafted = crafted.replace('&', "&amp;").replace('<', "&lt;");
        let served = self.start_service(&fixture.fresh_db()?, "attacks-zxcvbn", &[])?;
        let host = served.host();
        let attack_request = post(
            &host,
            &bench_request(
                &bench_user_email(0),
                BENCH_USER_PASSWORD,
                &bench_user_id(0),
                &crafted,
            ),
        );
        let attack = fixed_workloads(8, &[attack_request], |r| {
            client_fault(r, Some("CONTAINS_EMAIL"))
        });
        let addr = served.addr;
        let ((mut attack, mut legit), cpu) = self.measure(&served, async {
            tokio::join!(
                closed_loop(addr, Some(attacker), attack, timing, false),
                closed_loop(addr, None, admin(&host), timing, true),
            )
        });
        drop(served);
        attack.finish();
        legit.finish();
        let share = 100.0 * legit.ok_rate() / idle_rate.max(f64::MIN_POSITIVE);
        report.add(
            Row::new(
                "attacks",
                "admin while a learner sends crafted self-changes (8 conn.)",
                format!(
                    "{:.1} changes/s = {share:.0} % of alone, p99 {}{}; attacker {:.1} refused/s, p50 {}{}",
                    legit.ok_rate(),
                    opt_duration(legit.ok_percentile(99.0)),
                    legit.problems(),
                    attack.ok_rate(),
                    opt_duration(attack.ok_percentile(50.0)),
                    attack.problems()
                ),
            )
            .target("≥ 50 % of alone")
            .verdict(share >= 50.0 && legit.clean())
            .cpu(cpu),
        );

        // The junk flood: what the database grows by, and the admin's rate meanwhile.
        let db = fixture.fresh_db()?;
        let served = self.start_service(&db, "attacks-junk", &[])?;
        let host = served.host();
        let before = database_bytes(&db);
        let junk = fixed_workloads(LIGHT_CONCURRENCY, &[post(&host, BASELINE_REQUEST)], |r| {
            client_fault(r, Some("WrongParametersFault"))
        });
        let addr = served.addr;
        let ((mut junk, mut legit), cpu) = self.measure(&served, async {
            tokio::join!(
                closed_loop(addr, Some(attacker), junk, timing, false),
                closed_loop(addr, None, admin(&host), timing, true),
            )
        });
        // Let the background writer write what it gathered before the size is read.
        std::thread::sleep(Duration::from_secs(2));
        let grown = database_bytes(&db).saturating_sub(before);
        drop(served);
        junk.finish();
        legit.finish();
        let share = 100.0 * legit.ok_rate() / idle_rate.max(f64::MIN_POSITIVE);
        let mib = grown as f64 / (1024.0 * 1024.0);
        report.add(
            Row::new(
                "attacks",
                format!("anonymous junk flood, {LIGHT_CONCURRENCY} conn.: database growth"),
                format!(
                    "{mib:.2} MiB for {} refused calls ({:.0}/s){}",
                    junk.ok.len(),
                    junk.ok_rate(),
                    junk.problems()
                ),
            )
            .target("< 5 MiB")
            .verdict(mib < 5.0),
        );
        report.add(
            Row::new(
                "attacks",
                "admin during the junk flood",
                format!(
                    "{:.1} changes/s = {share:.0} % of alone, p99 {}{}",
                    legit.ok_rate(),
                    opt_duration(legit.ok_percentile(99.0)),
                    legit.problems()
                ),
            )
            .target("≥ 70 % of alone")
            .verdict(share >= 70.0 && legit.clean())
            .cpu(cpu),
        );
        Ok(())
    }

    fn directory(&self, report: &mut Report) -> Result<(), String> {
        let plan = self.plan;
        let dir = tempfile::Builder::new()
            .prefix("directory-")
            .tempdir_in(self.work)
            .map_err(|e| e.to_string())?;
        let hash = hash_blocking(
            HashParams::default(),
            &Password::normalise(BENCH_USER_PASSWORD),
        )
        .map_err(|e| e.to_string())?;

        // The full directory, and a tree that is only the 20-department spine: the same
        // decisions on both show whether the cost follows depth or size.
        let json = dir.path().join("scale.json");
        let started = std::time::Instant::now();
        let json_bytes = write_directory(&json, plan.departments, plan.users, &hash)
            .map_err(|e| format!("{}: {e}", json.display()))?;
        report.add(Row::new(
            "directory",
            format!(
                "generate {} departments (depth ≤ {SPINE}), {} users",
                thousands(plan.departments),
                thousands(plan.users)
            ),
            format!(
                "{:.1} s, {:.0} MB of JSON",
                started.elapsed().as_secs_f64(),
                json_bytes as f64 / 1e6
            ),
        ));
        let db = dir.path().join("scale.db");
        settle(self.plan, &self.quiet_left);
        let imported = self.import(&json, &db);
        // Gone before anything else runs: it is hundreds of megabytes.
        let _ = fs::remove_file(&json);
        let imported = imported?;
        let rate = plan.users as f64 / imported.elapsed.as_secs_f64();
        // The issue's target is 1M users in 60 s; a quick run's smaller directory is held
        // to the same rate.
        let bound = Duration::from_secs_f64(60.0 * plan.users as f64 / 1e6);
        report.add(
            Row::new(
                "directory",
                "soap-passwd import",
                format!(
                    "{:.1} s = {} users/s, importer peak RSS {}",
                    imported.elapsed.as_secs_f64(),
                    thousands(rate as usize),
                    imported
                        .peak_kib
                        .map_or("?".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
                ),
            )
            .target(format!("< {:.0} s", bound.as_secs_f64()))
            .verdict(imported.elapsed < bound)
            .cpu(imported.cpu),
        );
        let size: u64 = ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| {
                fs::metadata(format!("{}{suffix}", db.display()))
                    .ok()
                    .map(|m| m.len())
            })
            .sum();
        report.add(Row::new(
            "directory",
            "database size",
            format!(
                "{:.0} MB ({:.0} B per user)",
                size as f64 / 1e6,
                size as f64 / plan.users as f64
            ),
        ));

        let spine_json = dir.path().join("spine.json");
        let spine_db = dir.path().join("spine.db");
        write_directory(&spine_json, SPINE, 0, &hash).map_err(|e| e.to_string())?;
        self.import(&spine_json, &spine_db)?;

        let big = time_decisions(&db, plan.decision_samples)?;
        let small = time_decisions(&spine_db, plan.decision_samples)?;
        let p50_of = |runs: &[(usize, Vec<u64>)], depth: usize| {
            runs.iter()
                .find(|(d, _)| *d == depth)
                .and_then(|(_, t)| percentile(t, 50.0))
        };
        for (depth, times) in &big {
            let p99 = percentile(times, 99.0);
            let row = Row::new(
                "directory",
                format!("permission decision at depth {depth} (find_target + authorise)"),
                format!(
                    "p50 {}, p99 {}",
                    opt_duration(percentile(times, 50.0)),
                    opt_duration(p99)
                ),
            );
            report.add(if *depth == SPINE {
                let bound = Duration::from_millis(1);
                row.target("p99 < 1 ms")
                    .verdict(p99.is_some_and(|p| p < bound))
            } else {
                row
            });
        }
        if let Some((_, times)) = small.iter().find(|(d, _)| *d == SPINE) {
            let ratio = match (p50_of(&small, SPINE), p50_of(&big, SPINE)) {
                (Some(s), Some(b)) if !s.is_zero() => b.as_secs_f64() / s.as_secs_f64(),
                _ => f64::NAN,
            };
            report.add(
                Row::new(
                    "directory",
                    format!("same decision at depth {SPINE} in a {SPINE}-department directory"),
                    format!(
                        "p50 {}, p99 {}: the full directory's p50 is ×{ratio:.2} of it",
                        opt_duration(percentile(times, 50.0)),
                        opt_duration(percentile(times, 99.0))
                    ),
                )
                .target("× < 2 (size-independent)")
                .verdict(ratio < 2.0),
            );
        }
        Ok(())
    }
}

/// Raw times of one argon2 thread: (hashes, verifies).
type Timings = Result<(Vec<Duration>, Vec<Duration>), String>;

/// Threads that time argon2 in process, kept for the whole run: a fresh thread's first
/// dozen operations fault their 19 MiB of argon2 memory in (up to half again as slow),
/// while the server's long-lived blocking threads reuse theirs.
struct Argon2Timer {
    workers: Vec<(mpsc::Sender<usize>, mpsc::Receiver<Timings>)>,
}

impl Argon2Timer {
    /// Starts `threads` timing threads and warms them up.
    fn start(threads: usize) -> Result<Argon2Timer, String> {
        let params = HashParams::default();
        let password = Password::normalise("Kit-Argon2-Sample-4821!");
        let phc = hash_blocking(params, &password).map_err(|e| e.to_string())?;
        let workers = (0..threads.max(1))
            .map(|_| {
                let (ask, asked) = mpsc::channel::<usize>();
                let (tell, told) = mpsc::channel::<Timings>();
                let (password, phc) = (password.clone(), phc.clone());
                std::thread::spawn(move || {
                    for samples in asked {
                        let mut timings = (Vec::new(), Vec::new());
                        for _ in 0..samples {
                            let t = std::time::Instant::now();
                            if let Err(e) = hash_blocking(params, &password) {
                                let _ = tell.send(Err(e.to_string()));
                                return;
                            }
                            timings.0.push(t.elapsed());
                            let t = std::time::Instant::now();
                            let ok = verify_blocking(&phc, &password);
                            timings.1.push(t.elapsed());
                            if !ok {
                                let _ = tell.send(Err("argon2 verify failed".into()));
                                return;
                            }
                        }
                        if tell.send(Ok(timings)).is_err() {
                            return;
                        }
                    }
                });
                (ask, told)
            })
            .collect();
        let timer = Argon2Timer { workers };
        timer.time(threads, ARGON2_WARMUP)?;
        Ok(timer)
    }

    /// Medians of `samples` hashes and verifies on each of `threads` threads at once.
    fn time(&self, threads: usize, samples: usize) -> Result<OpTimes, String> {
        let busy = &self.workers[..threads.clamp(1, self.workers.len())];
        for (ask, _) in busy {
            ask.send(samples)
                .map_err(|_| "an argon2 timing thread stopped".to_string())?;
        }
        let (mut hashes, mut verifies) = (Vec::new(), Vec::new());
        for (_, told) in busy {
            let (h, v) = told
                .recv()
                .map_err(|_| "an argon2 timing thread stopped".to_string())??;
            hashes.extend(h);
            verifies.extend(v);
        }
        Ok(OpTimes {
            hash: median(&mut hashes),
            verify: median(&mut verifies),
        })
    }
}

/// Times argon2id hash and verify in process: one at a time, then on `cores` threads at
/// once. Runs before the load generator pins itself to one core.
fn measure_argon2(
    timer: &Argon2Timer,
    samples: usize,
    cores: usize,
    report: &mut Report,
) -> Result<Floor, String> {
    let params = HashParams::default();
    let meter = CpuMeter::start(None);
    let alone = timer.time(1, samples)?;
    let alone_cpu = meter.finish();
    let meter = CpuMeter::start(None);
    let loaded = timer.time(cores, samples)?;
    let loaded_cpu = meter.finish();
    let floor = Floor {
        alone,
        loaded,
        cores,
    };
    let p = params;
    report.add(
        Row::new(
            "argon2",
            format!(
                "hash / verify, one at a time (m={} t={} p={}, median of {samples})",
                p.m_cost, p.t_cost, p.p_cost
            ),
            format!(
                "{} / {}",
                fmt_duration(alone.hash),
                fmt_duration(alone.verify)
            ),
        )
        .cpu(alone_cpu),
    );
    report.add(
        Row::new(
            "argon2",
            format!(
                "hash / verify, {cores} at once (median of {})",
                cores * samples
            ),
            format!(
                "{} / {}",
                fmt_duration(loaded.hash),
                fmt_duration(loaded.verify)
            ),
        )
        .cpu(loaded_cpu),
    );
    for (kind, what) in [
        (
            ChangeKind::Admin,
            "limit, admin change = cores / (2 verify + hash) (heavy rows re-time it)",
        ),
        (
            ChangeKind::OwnPassword,
            "limit, self change = cores / (verify + hash) (heavy rows re-time it)",
        ),
    ] {
        report.add(Row::new(
            "argon2",
            what,
            format!(
                "{:.1} changes/s ({cores} / {})",
                floor.limit(kind),
                fmt_duration(loaded.change(kind))
            ),
        ));
    }
    Ok(floor)
}

struct Imported {
    elapsed: Duration,
    peak_kib: Option<u64>,
    /// The importer counts as the server.
    cpu: Option<CpuUse>,
}

/// Times the decision the service makes once per change, in process on `db`: the target
/// lookup with its scope facts, then the rules. The caller administers the root.
fn time_decisions(db: &Path, samples: usize) -> Result<Vec<(usize, Vec<u64>)>, String> {
    let store = Store::open(db, 2).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let lookup = runtime
        .block_on(store.find_caller(AccountUrl::key_of(SCALE_URL), Email::key_of(SCALE_ADMIN)))
        .map_err(|e| e.to_string())?;
    let (Some(account), Some(caller)) = (lookup.account, lookup.user) else {
        return Err("the directory's root admin is missing".into());
    };
    let mut out = Vec::new();
    for depth in TARGET_DEPTHS {
        let target_id = format!("t-depth-{depth}");
        let decide = || -> Result<(), String> {
            let target = store
                .find_target_blocking(account.id, caller.id, &target_id, account.policy.history)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{target_id} not found"))?;
            authorise(&caller, &target, account.policy.self_service)
                .map_err(|reason| format!("{target_id}: denied ({reason:?})"))
        };
        for _ in 0..samples / 10 {
            decide()?;
        }
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = std::time::Instant::now();
            decide()?;
            times.push(t.elapsed().as_nanos() as u64);
        }
        times.sort_unstable();
        out.push((depth, times));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Fixtures and requests
// ---------------------------------------------------------------------------------------

const API_NS: &str = "http://ispringlearn.com/go/services/api/soap";
const BENCH_URL: &str = "http://bench.example.com";
const BENCH_ADMIN_EMAIL: &str = "admin@bench.example.com";
const BENCH_ADMIN_PASSWORD: &str = "Bench-Admin-Pass-5820";
const BENCH_USER_PASSWORD: &str = "Bench-User-Pass-1234";
const SCALE_URL: &str = "http://scale.example.com";
const SCALE_ADMIN: &str = "root.admin@scale.example.com";
/// Depth of the deepest department; the root is depth 1.
const SPINE: usize = 20;
const TARGET_DEPTHS: [usize; 3] = [1, 10, 20];

fn bench_user_id(i: usize) -> String {
    format!("u-{i:04}")
}

fn bench_user_email(i: usize) -> String {
    format!("user{i}@bench.example.com")
}

/// The imported load-test database; every measurement gets its own copy.
struct BenchFixture {
    template: PathBuf,
    dir: PathBuf,
}

impl BenchFixture {
    fn fresh_db(&self) -> Result<PathBuf, String> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let db = self.dir.join(format!("run-{n}.db"));
        fs::copy(&self.template, &db).map_err(|e| format!("copy fixture: {e}"))?;
        let wal = PathBuf::from(format!("{}-wal", self.template.display()));
        if wal.exists() {
            fs::copy(&wal, format!("{}-wal", db.display()))
                .map_err(|e| format!("copy fixture: {e}"))?;
        }
        Ok(db)
    }
}

/// The bytes of an SQLite database and its write-ahead log.
fn database_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| fs::metadata(format!("{}{suffix}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// Writes a provisioning file of `departments` departments and `users` users (at least
/// the root admin and one target per depth of [`TARGET_DEPTHS`]) straight to disk.
///
/// Departments `d0`…`d19` form a chain from the root down to depth [`SPINE`]; the others
/// hang under a random earlier department, never below depth [`SPINE`]. Every user has
/// the same `password_hash`, so the import does no argon2 work. Returns the file's size.
fn write_directory(path: &Path, departments: usize, users: usize, hash: &str) -> io::Result<u64> {
    let departments = departments.max(SPINE);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parent = vec![0u32; departments];
    let mut depth = vec![1u8; departments];
    for i in 1..departments {
        let p = if i < SPINE {
            i - 1
        } else {
            let mut j = rng.below(i);
            while usize::from(depth[j]) >= SPINE {
                j = parent[j] as usize;
            }
            j
        };
        parent[i] = p as u32;
        depth[i] = depth[p] + 1;
    }
    let mut children = vec![Vec::new(); departments];
    for (i, p) in parent.iter().enumerate().skip(1) {
        children[*p as usize].push(i as u32);
    }

    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    write!(
        w,
        r#"{{"accounts":[{{"url":"{SCALE_URL}","name":"Scale","policy":{{"history":0}},"departments":["#
    )?;
    write_department(&mut w, 0, &children)?;
    write!(
        w,
        r#"],"users":[{{"id":"u-root-admin","email":"{SCALE_ADMIN}","password_hash":"{hash}","role":"department_admin","department":"d0","manages":["d0"]}}"#
    )?;
    for depth in TARGET_DEPTHS {
        write!(
            w,
            r#",{{"id":"t-depth-{depth}","email":"t-depth-{depth}@scale.example.com","password_hash":"{hash}","role":"user","department":"d{}"}}"#,
            depth - 1
        )?;
    }
    for i in 0..users.saturating_sub(1 + TARGET_DEPTHS.len()) {
        write!(
            w,
            r#",{{"id":"u{i}","email":"u{i}@scale.example.com","password_hash":"{hash}","role":"user","department":"d{}"}}"#,
            rng.below(departments)
        )?;
    }
    w.write_all(b"]}]}")?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    file.metadata().map(|m| m.len())
}

fn write_department(w: &mut impl Write, id: usize, children: &[Vec<u32>]) -> io::Result<()> {
    write!(w, r#"{{"id":"d{id}","name":"Department {id}","children":["#)?;
    for (n, child) in children[id].iter().enumerate() {
        if n > 0 {
            w.write_all(b",")?;
        }
        write_department(w, *child as usize, children)?;
    }
    w.write_all(b"]}")
}

/// xorshift64*: reproducible directories without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A fresh password the policy accepts: long, random, no e-mail in it.
    fn password(&mut self) -> String {
        const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let mut s = String::with_capacity(24);
        s.push_str("Kt-");
        for _ in 0..16 {
            s.push(CHARS[self.below(CHARS.len())] as char);
        }
        s.push_str("-7!");
        s
    }
}

/// An `UpdateUserPasswordRequest` envelope. Every value here is plain ASCII without
/// markup characters, so nothing needs escaping.
fn bench_request(email: &str, password: &str, user_id: &str, new_password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns="{API_NS}"><SOAP-ENV:Body><UpdateUserPasswordRequest><credentials><accountUrl>{BENCH_URL}</accountUrl><email>{email}</email><password>{password}</password></credentials><userId>{user_id}</userId><password>{new_password}</password></UpdateUserPasswordRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// The bytes of `POST /soap` carrying `body`.
fn post(host: &str, body: &str) -> Vec<u8> {
    let mut request = format!(
        "POST /soap HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml; charset=utf-8\r\n\
         SOAPAction: \"UpdateUserPassword\"\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// What the light-path requests look like on the wire, sent to the baseline as well so
/// both servers read the same bytes.
const BASELINE_REQUEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns="http://ispringlearn.com/go/services/api/soap"><SOAP-ENV:Body><UpdateUserPasswordRequest><credentials><accountUrl>http://bench.example.com</accountUrl><email>admin@bench.example.com</email><password>Bench-Admin-Pass-5820</password></credentials><password>Kit-Light-Path-Pass-77!</password></UpdateUserPasswordRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

fn client_fault(reply: &Reply, detail: Option<&str>) -> Outcome {
    let detail_ok = detail.is_none_or(|d| contains(&reply.body, d.as_bytes()));
    if reply.status == 500 && contains(&reply.body, b"SOAP-ENV:Client") && detail_ok {
        Outcome::Ok
    } else {
        Outcome::Other
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// Workloads: what one connection sends next and how it judges the answer
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The answer the scenario expects (a success, or the expected fault).
    Ok,
    /// 503 `ServerBusyFault`.
    Shed,
    Other,
}

/// How a scenario judges an answer.
type Judge = fn(&Reply) -> Outcome;

trait Workload {
    fn request(&mut self) -> Vec<u8>;
    /// Judges an answer to the last request (and remembers a changed password).
    fn judge(&mut self, reply: &Reply) -> Outcome;
}

fn judge_change(reply: &Reply) -> Outcome {
    if reply.status == 200 && contains(&reply.body, b"<success>true</success>") {
        Outcome::Ok
    } else if reply.status == 503 && contains(&reply.body, b"ServerBusyFault") {
        Outcome::Shed
    } else {
        Outcome::Other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    /// The account admin sets a different user's password on every request.
    Admin,
    /// Each user changes their own password, authenticating with the current one.
    OwnPassword,
}

impl ChangeKind {
    /// The workload of connection `k` of `of`: it owns the users `k`, `k + of`, … so no
    /// two connections ever change the same user's password.
    fn workload(self, host: &str, k: usize, of: usize, seed: u64) -> Box<dyn Workload> {
        let users: Vec<usize> = (k..BENCH_USERS).step_by(of.max(1)).collect();
        let rng = Rng(0x5851_f42d_4c95_7f2d ^ seed.wrapping_mul(0x9e37_79b9));
        match self {
            ChangeKind::Admin => Box::new(AdminChanges {
                host: host.to_string(),
                users,
                next: 0,
                rng,
            }),
            ChangeKind::OwnPassword => Box::new(OwnChanges {
                host: host.to_string(),
                users: users
                    .into_iter()
                    .map(|i| (i, BENCH_USER_PASSWORD.to_string()))
                    .collect(),
                next: 0,
                pending: None,
                rng,
            }),
        }
    }
}

struct AdminChanges {
    host: String,
    users: Vec<usize>,
    next: usize,
    rng: Rng,
}

impl Workload for AdminChanges {
    fn request(&mut self) -> Vec<u8> {
        let user = self.users[self.next % self.users.len()];
        self.next += 1;
        let body = bench_request(
            BENCH_ADMIN_EMAIL,
            BENCH_ADMIN_PASSWORD,
            &bench_user_id(user),
            &self.rng.password(),
        );
        post(&self.host, &body)
    }

    fn judge(&mut self, reply: &Reply) -> Outcome {
        judge_change(reply)
    }
}

struct OwnChanges {
    host: String,
    /// (user index, current password).
    users: Vec<(usize, String)>,
    next: usize,
    /// The slot in `users` and the password the last request set.
    pending: Option<(usize, String)>,
    rng: Rng,
}

impl Workload for OwnChanges {
    fn request(&mut self) -> Vec<u8> {
        let slot = self.next % self.users.len();
        self.next += 1;
        let (user, current) = &self.users[slot];
        let new = self.rng.password();
        let body = bench_request(
            &bench_user_email(*user),
            current,
            &bench_user_id(*user),
            &new,
        );
        self.pending = Some((slot, new));
        post(&self.host, &body)
    }

    fn judge(&mut self, reply: &Reply) -> Outcome {
        let outcome = judge_change(reply);
        if let (Outcome::Ok, Some((slot, new))) = (outcome, self.pending.take()) {
            self.users[slot].1 = new;
        }
        outcome
    }
}

/// The same requests over and over, judged by `expect`.
struct Fixed {
    requests: Rc<Vec<Vec<u8>>>,
    next: usize,
    expect: Judge,
}

impl Workload for Fixed {
    fn request(&mut self) -> Vec<u8> {
        let request = self.requests[self.next % self.requests.len()].clone();
        self.next += 1;
        request
    }

    fn judge(&mut self, reply: &Reply) -> Outcome {
        (self.expect)(reply)
    }
}

fn fixed_workloads(
    connections: usize,
    requests: &[Vec<u8>],
    expect: Judge,
) -> Vec<Box<dyn Workload>> {
    let requests = Rc::new(requests.to_vec());
    (0..connections)
        .map(|k| {
            Box::new(Fixed {
                requests: requests.clone(),
                next: k * 7,
                expect,
            }) as Box<dyn Workload>
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The load generator: HTTP/1.1 with keep-alive, closed and open loop, on one thread
// ---------------------------------------------------------------------------------------

/// One answer, read whole.
struct Reply {
    status: u16,
    body: Vec<u8>,
    /// The server will close the connection after this answer.
    close: bool,
}

/// A keep-alive connection to the server.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// An answer has come back on it: the server may have closed it while it was idle.
    used: bool,
}

impl Conn {
    async fn open(server: SocketAddr, from: Option<IpAddr>) -> io::Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = from {
            // Every 127/8 address is local on Linux: the server sees a second client.
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            used: false,
        })
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<Reply> {
        self.buf.clear();
        self.stream.write_all(request).await?;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = parse_head(&self.buf[..end])?;
                let total = end + 4 + head.content_length;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                self.used = true;
                return Ok(Reply {
                    status: head.status,
                    body: self.buf[end + 4..total].to_vec(),
                    close: head.close,
                });
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// Sends `request` on `conn` (or a new connection), retrying once on a fresh connection
/// when a reused one turns out to be closed: an idle keep-alive connection the server
/// timed out is the client's business, not an error of the service.
async fn send(
    conn: Option<Conn>,
    server: SocketAddr,
    from: Option<IpAddr>,
    request: &[u8],
) -> io::Result<(Conn, Reply)> {
    if let Some(mut conn) = conn {
        match conn.exchange(request).await {
            Ok(reply) => return Ok((conn, reply)),
            Err(_) if conn.used && conn.buf.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    let mut conn = Conn::open(server, from).await?;
    let reply = conn.exchange(request).await?;
    Ok((conn, reply))
}

struct Head {
    status: u16,
    content_length: usize,
    close: bool,
}

fn parse_head(head: &[u8]) -> io::Result<Head> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let text = std::str::from_utf8(head).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked answers are not expected"));
        }
    }
    Ok(Head {
        status,
        content_length: content_length.ok_or_else(|| bad("no Content-Length"))?,
        close,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Clone, Copy)]
struct Timing {
    /// Sent but not counted, so the server's pools and caches are warm.
    warmup: Duration,
    run: Duration,
}

/// Latencies (ns) and counts of one measurement.
#[derive(Default)]
struct Stats {
    ok: Vec<u64>,
    shed: Vec<u64>,
    other: u64,
    io_errors: u64,
    /// Requests still unanswered when an open-loop run gave up on them.
    unanswered: u64,
    first_other: Option<String>,
    seconds: f64,
}

impl Stats {
    fn record(&mut self, outcome: Outcome, latency: Duration, reply: &Reply) {
        let ns = latency.as_nanos() as u64;
        match outcome {
            Outcome::Ok => self.ok.push(ns),
            Outcome::Shed => self.shed.push(ns),
            Outcome::Other => {
                self.other += 1;
                if self.first_other.is_none() {
                    self.first_other = Some(describe_reply(reply));
                }
            }
        }
    }

    fn merge(&mut self, other: Stats) {
        self.ok.extend(other.ok);
        self.shed.extend(other.shed);
        self.other += other.other;
        self.io_errors += other.io_errors;
        self.unanswered += other.unanswered;
        if self.first_other.is_none() {
            self.first_other = other.first_other;
        }
        self.seconds = self.seconds.max(other.seconds);
    }

    fn finish(&mut self) {
        self.ok.sort_unstable();
        self.shed.sort_unstable();
    }

    fn ok_rate(&self) -> f64 {
        self.ok.len() as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }

    fn sent(&self) -> usize {
        self.ok.len() + self.shed.len() + (self.other + self.io_errors + self.unanswered) as usize
    }

    fn ok_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.ok, p)
    }

    fn shed_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.shed, p)
    }

    /// No answer other than the expected one or a 503.
    fn clean(&self) -> bool {
        self.other + self.io_errors + self.unanswered == 0
    }

    /// Sheds and errors, as a suffix for a result cell.
    fn problems(&self) -> String {
        let mut s = String::new();
        if !self.shed.is_empty() {
            s.push_str(&format!("; {} shed (503)", self.shed.len()));
        }
        if self.other > 0 {
            s.push_str(&format!(
                "; {} unexpected, first: {}",
                self.other,
                self.first_other.as_deref().unwrap_or("?")
            ));
        }
        if self.io_errors > 0 {
            s.push_str(&format!("; {} connection errors", self.io_errors));
        }
        if self.unanswered > 0 {
            s.push_str(&format!("; {} unanswered", self.unanswered));
        }
        s
    }
}

fn describe_reply(reply: &Reply) -> String {
    let body = String::from_utf8_lossy(&reply.body);
    let between = |open: &str, close: &str| {
        let start = body.find(open)? + open.len();
        let end = body[start..].find(close)? + start;
        Some(body[start..end].to_string())
    };
    let fault = between("<faultstring>", "</faultstring>")
        .or_else(|| between("<code>", "</code>"))
        .unwrap_or_else(|| body.chars().take(80).collect());
    format!("HTTP {} {fault}", reply.status)
}

/// Closed loop: each workload drives one connection, sending its next request as soon as
/// the last is answered (after `Retry-After` on a 503 when `honour_retry_after`, as a
/// well-behaved client does). Counts the answers that arrive between the end of the
/// warm-up and the end of the run.
async fn closed_loop(
    server: SocketAddr,
    from: Option<IpAddr>,
    workloads: Vec<Box<dyn Workload>>,
    timing: Timing,
    honour_retry_after: bool,
) -> Stats {
    let start = Instant::now();
    let counted_from = start + timing.warmup;
    let end = counted_from + timing.run;
    let tasks: Vec<_> = workloads
        .into_iter()
        .map(|mut workload| {
            spawn_local(async move {
                let mut stats = Stats::default();
                let mut conn: Option<Conn> = None;
                while Instant::now() < end {
                    let request = workload.request();
                    let sent = Instant::now();
                    let answer = timeout_at(end, send(conn.take(), server, from, &request)).await;
                    // Counted by when the answer came: throughput is what the server
                    // completes inside the window, whenever the request was sent.
                    let counted = Instant::now() >= counted_from;
                    match answer {
                        Err(_) => break,
                        Ok(Err(_)) => {
                            if counted {
                                stats.io_errors += 1;
                            }
                            sleep(Duration::from_millis(10)).await;
                        }
                        Ok(Ok((c, reply))) => {
                            let outcome = workload.judge(&reply);
                            if counted {
                                stats.record(outcome, sent.elapsed(), &reply);
                            }
                            if !reply.close {
                                conn = Some(c);
                            }
                            if outcome == Outcome::Shed && honour_retry_after {
                                let wait = retry_after(&reply);
                                sleep_until((Instant::now() + wait).min(end)).await;
                            }
                        }
                    }
                }
                stats
            })
        })
        .collect();
    let mut total = Stats {
        seconds: timing.run.as_secs_f64(),
        ..Stats::default()
    };
    for task in tasks {
        if let Ok(stats) = task.await {
            total.merge(stats);
        }
    }
    total
}

/// `Retry-After` is always 1 s in this service; the body does not carry it, so use that.
fn retry_after(_reply: &Reply) -> Duration {
    Duration::from_secs(1)
}

/// Open loop: requests at a fixed rate whatever the answers, each on an idle connection
/// or a new one. Latency runs from when the request was due, so a slow server cannot
/// hide behind a slowed-down generator. Waits up to `grace` for the last answers.
async fn open_loop(
    server: SocketAddr,
    rate: f64,
    timing: Timing,
    workload: Box<dyn Workload>,
    grace: Duration,
) -> Stats {
    struct Shared {
        workload: Box<dyn Workload>,
        idle: Vec<Conn>,
        stats: Stats,
    }
    let shared = Rc::new(RefCell::new(Shared {
        workload,
        idle: Vec::new(),
        stats: Stats {
            seconds: timing.run.as_secs_f64(),
            ..Stats::default()
        },
    }));
    let start = Instant::now();
    let counted_from = start + timing.warmup;
    let end = counted_from + timing.run;
    let period = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut tasks = Vec::new();
    for k in 0u32.. {
        let due = start + period * k;
        if due >= end {
            break;
        }
        sleep_until(due).await;
        let (request, conn) = {
            let mut s = shared.borrow_mut();
            (s.workload.request(), s.idle.pop())
        };
        let shared = shared.clone();
        tasks.push(spawn_local(async move {
            let answer = send(conn, server, None, &request).await;
            let latency = due.elapsed();
            let mut s = shared.borrow_mut();
            match answer {
                Ok((conn, reply)) => {
                    let outcome = s.workload.judge(&reply);
                    if due >= counted_from {
                        s.stats.record(outcome, latency, &reply);
                    }
                    if !reply.close {
                        s.idle.push(conn);
                    }
                }
                Err(_) if due >= counted_from => s.stats.io_errors += 1,
                Err(_) => {}
            }
        }));
    }
    let give_up = Instant::now() + grace;
    let mut unanswered = 0;
    for task in tasks {
        let abort = task.abort_handle();
        if timeout_at(give_up, task).await.is_err() {
            abort.abort();
            unanswered += 1;
        }
    }
    let mut s = shared.borrow_mut();
    s.stats.unanswered += unanswered;
    std::mem::take(&mut s.stats)
}

// ---------------------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------------------

/// A server subprocess, killed when dropped.
struct Served {
    child: Child,
    addr: SocketAddr,
    /// Kept open: the server may still write to its stdout.
    _stdout: BufReader<ChildStdout>,
}

impl Served {
    /// Starts `cmd` and waits for its "… listening on http://HOST:PORT/soap" line.
    fn start(mut cmd: Command, log: &Path, name: &str) -> Result<Served, String> {
        let log_file = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        let addr = loop {
            line.clear();
            let n = stdout.read_line(&mut line).unwrap_or(0);
            if n == 0 {
                let _ = child.kill();
                let _ = child.wait();
                let tail = fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(3).collect();
                return Err(format!(
                    "{name} exited before listening: {}",
                    tail.join(" | ")
                ));
            }
            if let Some(addr) = listening_addr(&line) {
                break addr;
            }
        };
        Ok(Served {
            child,
            addr,
            _stdout: stdout,
        })
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.child.id())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening on http://") {
        return None;
    }
    let rest = &line[line.find("http://")? + "http://".len()..];
    rest[..rest.find('/')?].parse().ok()
}

/// VmHWM: the process's peak resident set.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The minimal actix-web handler the light path is compared with.
mod baseline {
    use std::io::Write;

    use actix_web::{App, HttpResponse, HttpServer, web};

    /// About the size of the service's fault answers.
    const BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>Wrong parameters</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

    async fn fixed() -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/xml; charset=utf-8")
            .body(BODY)
    }

    /// Serves `POST /soap` with as many workers as the service would use.
    pub fn serve() {
        let workers = soap_passwd::config::cores();
        let result = actix_web::rt::System::new().block_on(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            let server = HttpServer::new(|| App::new().route("/soap", web::post().to(fixed)))
                .workers(workers)
                .listen(listener)?
                .run();
            println!("kit baseline listening on http://127.0.0.1:{port}/soap");
            std::io::stdout().flush()?;
            server.await
        });
        if let Err(e) = result {
            eprintln!("kit baseline: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// CPU accounting: the machine is shared, so every load row says who used the cores
// ---------------------------------------------------------------------------------------

/// Busy and total clock ticks of the whole machine (`/proc/stat`).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    let total: u64 = fields.iter().take(8).sum();
    Some((total - idle, total))
}

/// User + system ticks of a process, all its threads (`/proc/PID/stat`).
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it start at the state (field 3).
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU used while a measurement ran, in cores.
#[derive(Clone, Copy)]
struct CpuUse {
    server: f64,
    generator: f64,
    others: f64,
}

impl CpuUse {
    fn describe(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2}",
            self.server, self.generator, self.others
        )
    }
}

/// Starts counting CPU ticks of the machine, the server and this process.
struct CpuMeter {
    machine: Option<(u64, u64)>,
    server_pid: Option<u32>,
    server: u64,
    /// The server's ticks when last observed, for a process that exits before `finish`.
    server_seen: std::cell::Cell<u64>,
    generator: u64,
}

impl CpuMeter {
    fn start(server_pid: Option<u32>) -> CpuMeter {
        let server = server_pid.and_then(process_ticks).unwrap_or(0);
        CpuMeter {
            machine: machine_ticks(),
            server_pid,
            server,
            server_seen: std::cell::Cell::new(server),
            generator: process_ticks(std::process::id()).unwrap_or(0),
        }
    }

    /// Notes the server's ticks now (call it while a short-lived process runs).
    fn observe(&self) {
        if let Some(ticks) = self.server_pid.and_then(process_ticks) {
            self.server_seen.set(ticks);
        }
    }

    /// CPU used since `start`; call it while the server still runs.
    fn finish(&self) -> Option<CpuUse> {
        let (busy0, total0) = self.machine?;
        let (busy1, total1) = machine_ticks()?;
        let total = total1.saturating_sub(total0) as f64;
        if total <= 0.0 {
            return None;
        }
        let cores = soap_passwd::config::cores().max(1) as f64;
        // Ticks of /proc/stat are summed over cores; a process's are too.
        let share = |ticks: u64| cores * ticks as f64 / total;
        self.observe();
        let server = self.server_seen.get().saturating_sub(self.server);
        let generator = process_ticks(std::process::id())
            .unwrap_or(0)
            .saturating_sub(self.generator);
        let busy = busy1.saturating_sub(busy0);
        Some(CpuUse {
            server: share(server),
            generator: share(generator),
            others: share(busy.saturating_sub(server + generator)),
        })
    }
}

/// Waits, up to `max`, until other processes leave the machine nearly idle, so the next
/// measurement is not shared with someone else's test run. Returns what they still used.
fn wait_for_quiet(max: Duration) -> Option<f64> {
    let deadline = std::time::Instant::now() + max;
    loop {
        let meter = CpuMeter::start(None);
        std::thread::sleep(Duration::from_millis(500));
        let used = meter.finish()?;
        let others = used.others + used.generator;
        if others < QUIET_CORES || std::time::Instant::now() >= deadline {
            return Some(others);
        }
    }
}

/// Waits for the machine to quieten, within the plan's per-measurement wait and what is
/// left of its budget.
fn settle(plan: &Plan, budget: &std::cell::Cell<Duration>) {
    let left = budget.get();
    if left.is_zero() {
        return;
    }
    let started = std::time::Instant::now();
    let others = wait_for_quiet(plan.quiet_wait.min(left));
    let waited = started.elapsed();
    budget.set(left.saturating_sub(waited));
    if waited > Duration::from_secs(1) {
        eprintln!(
            "  (waited {:.0} s for other processes to quieten; they still use {:.2} cores)",
            waited.as_secs_f64(),
            others.unwrap_or(f64::NAN)
        );
    }
}

/// Cores other processes may use during a measurement before its row is flagged.
const NOISY_CORES: f64 = 0.3;

/// Cores other processes may use for the machine to count as quiet.
const QUIET_CORES: f64 = 0.15;

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

struct Row {
    section: &'static str,
    what: String,
    result: String,
    target: String,
    verdict: Option<bool>,
    /// CPU while it was measured: server / load generator / other processes, in cores.
    cpu: Option<CpuUse>,
}

impl Row {
    fn new(section: &'static str, what: impl Into<String>, result: impl Into<String>) -> Row {
        Row {
            section,
            what: what.into(),
            result: result.into(),
            target: String::new(),
            verdict: None,
            cpu: None,
        }
    }

    /// Other processes took enough CPU while this was measured to skew it.
    fn noisy(&self) -> bool {
        self.cpu.is_some_and(|c| c.others > NOISY_CORES)
    }

    fn cpu(mut self, cpu: Option<CpuUse>) -> Row {
        self.cpu = cpu;
        self
    }

    fn target(mut self, target: impl Into<String>) -> Row {
        self.target = target.into();
        self
    }

    fn verdict(mut self, pass: bool) -> Row {
        self.verdict = Some(pass);
        self
    }
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Adds a row, echoing it on stderr so a long run shows progress.
    fn add(&mut self, row: Row) {
        eprintln!(
            "  [{}] {}: {}{}{}",
            row.section,
            row.what,
            row.result,
            match row.verdict {
                Some(true) => "  PASS",
                Some(false) => "  MISS",
                None => "",
            },
            row.cpu
                .map(|c| format!("  (cpu {})", c.describe()))
                .unwrap_or_default()
        );
        self.rows.push(row);
    }

    fn print(&self, header: &[String]) {
        let cells = |r: &Row| -> [String; 6] {
            [
                r.section.to_string(),
                r.what.clone(),
                r.result.clone(),
                r.target.clone(),
                match r.verdict {
                    Some(true) => "PASS",
                    Some(false) => "MISS",
                    None => "",
                }
                .to_string()
                    + if r.noisy() { "*" } else { "" },
                r.cpu.map(|c| c.describe()).unwrap_or_default(),
            ]
        };
        let titles = [
            "section",
            "measurement",
            "result",
            "target",
            "",
            "cpu cores: server / kit / others",
        ]
        .map(String::from);
        let rows: Vec<[String; 6]> = self.rows.iter().map(cells).collect();
        let mut widths = titles.clone().map(|t| t.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        widths[4] = 5;
        let line = |cells: &[String; 6]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                out.push_str(cell);
                if i < 5 {
                    out.push_str(&" ".repeat(w - cell.chars().count()));
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = String::new();
        for h in header {
            out.push_str(h);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&line(&titles));
        out.push_str(&line(&widths.map(|w| "-".repeat(w))));
        for row in &rows {
            out.push_str(&line(row));
        }
        let missed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Some(false))
            .count();
        let judged = self.rows.iter().filter(|r| r.verdict.is_some()).count();
        out.push_str(&format!("\n{} of {judged} targets met", judged - missed));
        let noisy = self.rows.iter().filter(|r| r.noisy()).count();
        if noisy > 0 {
            out.push_str(&format!(
                "; * {noisy} rows were measured while other processes used more than \
                 {NOISY_CORES} cores: rerun them on a quiet machine"
            ));
        }
        out.push('\n');
        print!("{out}");
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The nearest-rank percentile of sorted nanoseconds.
fn percentile(sorted: &[u64], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(Duration::from_nanos(sorted[index]))
}

fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn opt_duration(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".to_string(), fmt_duration)
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
