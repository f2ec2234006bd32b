//! The heavy rows (changes under argon2 at several concurrencies) and the light rows
//! (calls refused before any hashing, against the bare handler).

#[allow(unused_imports)]
use super::*;

impl Kit<'_> {
    pub(crate) fn heavy(
        &self,
        fixture: &BenchFixture,
        floor: &Floor,
        report: &mut Report,
    ) -> Result<Option<f64>, String> {
        let mut capacity: Option<f64> = None;
        for kind in [ChangeKind::Admin, ChangeKind::OwnPassword] {
            for c in HEAVY_CONCURRENCY {
                let (row, rps) =
                    self.heavy_row("heavy", fixture.fresh_db()?.as_os_str(), kind, c, floor)?;
                if kind == ChangeKind::Admin && c > 1 {
                    capacity = Some(capacity.map_or(rps, |best| best.max(rps)));
                }
                report.add(row);
            }
        }
        Ok(capacity)
    }

    /// One heavy measurement: `c` connections making `kind` changes on a fresh server over
    /// `db` (an SQLite copy or a PostgreSQL database); its row and changes/s.
    pub(crate) fn heavy_row(
        &self,
        section: &'static str,
        db: &std::ffi::OsStr,
        kind: ChangeKind,
        c: usize,
        floor: &Floor,
    ) -> Result<(Row, f64), String> {
        let label = match kind {
            ChangeKind::Admin => "admin→users",
            ChangeKind::OwnPassword => "users→themselves",
        };
        let served = self.start_service(db, section, &[])?;
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
                section,
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
            Row::new(
                section,
                format!("{label} c={c}"),
                format!(
                    "{rps:.1}/s = {share:.0} % of {limit:.1}/s, p50 {}, p99 {p99}{problems}",
                    opt_duration(p50)
                ),
            )
            .target("≥ 90 % of limit")
            .verdict(share >= 90.0 && stats.clean())
        };
        Ok((row.cpu(cpu), rps))
    }

    pub(crate) fn light(&self, fixture: &BenchFixture, report: &mut Report) -> Result<(), String> {
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
        let cases: [(&str, Vec<u8>, Judge); 4] = [
            ("malformed XML", post(&host, &malformed), |r| {
                client_fault(r, None)
            }),
            (
                "WrongParameters (userId missing)",
                post(&host, BASELINE_REQUEST),
                |r| client_fault(r, Some("WrongParametersFault")),
            ),
            ("unknown operation", post(&host, &unknown_operation), |r| {
                client_fault(r, None)
            }),
            (
                "REST: malformed JSON (PATCH, Basic)",
                rest_patch(&host, r#"{"password": "Kit-Light-Path-Pass-77!""#),
                |r| {
                    if r.status == 400 && contains(&r.body, b"WRONG_PARAMETERS") {
                        Outcome::Ok
                    } else {
                        Outcome::Other
                    }
                },
            ),
        ];
        for (name, request, expect) in cases {
            let (mut stats, cpu) = self.measure(
                &served,
                closed_loop(
                    served.addr,
                    None,
                    fixed_workloads(c, &[request], expect),
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
}
