//! argon2 timed in process: the floor every load row is judged against.

#[allow(unused_imports)]
use super::*;

/// Raw times of one argon2 thread: (hashes, verifies).
pub(crate) type Timings = Result<(Vec<Duration>, Vec<Duration>), String>;

/// Threads that time argon2 in process, kept for the whole run: a fresh thread's first
/// dozen operations fault their 19 MiB of argon2 memory in (up to half again as slow),
/// while the server's long-lived blocking threads reuse theirs.
pub(crate) struct Argon2Timer {
    pub(crate) workers: Vec<(mpsc::Sender<usize>, mpsc::Receiver<Timings>)>,
}

impl Argon2Timer {
    /// Starts `threads` timing threads and warms them up.
    pub(crate) fn start(threads: usize) -> Result<Argon2Timer, String> {
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
    pub(crate) fn time(&self, threads: usize, samples: usize) -> Result<OpTimes, String> {
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
pub(crate) fn measure_argon2(
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
