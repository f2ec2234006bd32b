//! CPU accounting: the machine is shared, so every load row says who used the cores.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// CPU accounting: the machine is shared, so every load row says who used the cores
// ---------------------------------------------------------------------------------------

/// Busy and total clock ticks of the whole machine (`/proc/stat`).
pub(crate) fn machine_ticks() -> Option<(u64, u64)> {
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
pub(crate) fn process_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it start at the state (field 3).
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU used while a measurement ran, in cores.
#[derive(Clone, Copy)]
pub(crate) struct CpuUse {
    pub(crate) server: f64,
    pub(crate) generator: f64,
    pub(crate) others: f64,
}

impl CpuUse {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2}",
            self.server, self.generator, self.others
        )
    }
}

/// Starts counting CPU ticks of the machine, the server and this process.
pub(crate) struct CpuMeter {
    pub(crate) machine: Option<(u64, u64)>,
    /// The server's processes (several instances count as one server).
    pub(crate) server_pids: Vec<u32>,
    pub(crate) server: u64,
    /// The server's ticks when last observed, for a process that exits before `finish`.
    pub(crate) server_seen: std::cell::Cell<u64>,
    pub(crate) generator: u64,
}

impl CpuMeter {
    pub(crate) fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter::start_many(server_pid.into_iter().collect())
    }

    /// The same, the server being every process of `server_pids`.
    pub(crate) fn start_many(server_pids: Vec<u32>) -> CpuMeter {
        let server = server_ticks(&server_pids).unwrap_or(0);
        CpuMeter {
            machine: machine_ticks(),
            server_pids,
            server,
            server_seen: std::cell::Cell::new(server),
            generator: process_ticks(std::process::id()).unwrap_or(0),
        }
    }

    /// Notes the server's ticks now (call it while a short-lived process runs).
    pub(crate) fn observe(&self) {
        if let Some(ticks) = server_ticks(&self.server_pids) {
            self.server_seen.set(ticks);
        }
    }

    /// CPU used since `start`; call it while the server still runs.
    pub(crate) fn finish(&self) -> Option<CpuUse> {
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

/// The ticks of every process in `pids`, if any of them is still there.
fn server_ticks(pids: &[u32]) -> Option<u64> {
    let ticks: Vec<u64> = pids.iter().filter_map(|p| process_ticks(*p)).collect();
    (!ticks.is_empty()).then(|| ticks.iter().sum())
}

/// Waits, up to `max`, until other processes leave the machine nearly idle, so the next
/// measurement is not shared with someone else's test run. Returns what they still used.
pub(crate) fn wait_for_quiet(max: Duration) -> Option<f64> {
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
pub(crate) fn settle(plan: &Plan, budget: &std::cell::Cell<Duration>) {
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
pub(crate) const NOISY_CORES: f64 = 0.3;

/// Cores other processes may use for the machine to count as quiet.
pub(crate) const QUIET_CORES: f64 = 0.15;
