//! The overload and fairness rows: what a flood does to everyone else's changes.

#[allow(unused_imports)]
use super::*;

impl Kit<'_> {
    pub(crate) fn overload(
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
    pub(crate) fn fairness(
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
}
