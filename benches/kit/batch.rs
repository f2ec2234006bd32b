//! The batch row (issue 10): `UpdateUserPasswords` of 100 items, as changes per second
//! against the batch limit — cores ÷ (hash + verify), an item's argon2 work — and
//! against the single-call rate measured beside it.

#[allow(unused_imports)]
use super::*;

/// Items per batch.
pub(crate) const BATCH_ITEMS: usize = 100;
/// Concurrent batches (`KIT_BATCH_C` to change): a batch runs its items one after
/// another, so it takes one core at a time, and between two items (their lookup, text
/// checks and commit) it holds no slot; on 2 cores 4 of them reached 90 % of the limit,
/// 8 reached 94 %.
pub(crate) const BATCH_CONNECTIONS: usize = 8;

/// An `UpdateUserPasswordsRequest` by the bench admin setting `users` to fresh passwords.
pub(crate) fn batch_request(users: &[usize], rng: &mut Rng) -> String {
    let items: String = users
        .iter()
        .map(|u| {
            format!(
                "<item><userId>{}</userId><password>{}</password></item>",
                bench_user_id(*u),
                rng.password()
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns="{API_NS}"><SOAP-ENV:Body><UpdateUserPasswordsRequest><credentials><accountUrl>{BENCH_URL}</accountUrl><email>{BENCH_ADMIN_EMAIL}</email><password>{BENCH_ADMIN_PASSWORD}</password></credentials>{items}</UpdateUserPasswordsRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// Connection `k` of `of` sends batches of its own users (`k`, `k + of`, …), round
/// and round.
pub(crate) struct BatchChanges {
    pub(crate) host: String,
    pub(crate) users: Vec<usize>,
    pub(crate) next: usize,
    pub(crate) rng: Rng,
}

impl Workload for BatchChanges {
    fn request(&mut self) -> Vec<u8> {
        let batch: Vec<usize> = (0..BATCH_ITEMS)
            .map(|i| self.users[(self.next + i) % self.users.len()])
            .collect();
        self.next += BATCH_ITEMS;
        post(&self.host, &batch_request(&batch, &mut self.rng))
    }

    /// A batch counts when every item succeeded.
    fn judge(&mut self, reply: &Reply) -> Outcome {
        let ok = reply.status == 200
            && reply
                .body
                .windows(b"<success>true</success>".len())
                .filter(|w| *w == b"<success>true</success>")
                .count()
                == BATCH_ITEMS;
        match judge_change(reply) {
            Outcome::Shed => Outcome::Shed,
            _ if ok => Outcome::Ok,
            _ => Outcome::Other,
        }
    }
}

/// Password changes committed in `db` from `from` to `to` (by their events' times).
fn changes_between(
    db: &Path,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<u64, String> {
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    conn.query_row(
        "SELECT count(*) FROM events WHERE kind = 'password_changed' AND at >= ?1 AND at < ?2",
        [at(from), at(to)],
        |r| r.get(0),
    )
    .map_err(|e| e.to_string())
}

impl Kit<'_> {
    pub(crate) fn batch(
        &self,
        fixture: &BenchFixture,
        floor: &Floor,
        report: &mut Report,
    ) -> Result<(), String> {
        let c = std::env::var("KIT_BATCH_C")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(BATCH_CONNECTIONS);
        // Long enough for a few dozen batches (each takes seconds): the rate is counted
        // in whole batches.
        let timing = Timing {
            warmup: self.plan.warmup + Duration::from_secs(4),
            run: self.plan.run * 3,
        };
        let db = fixture.fresh_db()?;
        let served = self.start_service(&db, "batch", &[])?;
        let host = served.host();
        let workloads: Vec<Box<dyn Workload>> = (0..c)
            .map(|k| -> Box<dyn Workload> {
                Box::new(BatchChanges {
                    host: host.clone(),
                    users: (k..BENCH_USERS).step_by(c).collect(),
                    next: 0,
                    rng: Rng(0x2545_f491_4f6c_dd1d ^ (k as u64 + 1)),
                })
            })
            .collect();
        settle(self.plan, &self.quiet_left);
        let before = self.yardstick(floor.cores)?;
        let meter = CpuMeter::start(Some(served.child.id()));
        let started = chrono::Utc::now();
        let mut stats = self.drive(closed_loop(served.addr, None, workloads, timing, true));
        let cpu = meter.finish();
        drop(served);
        // A batch answers after seconds, so counting answered batches would measure in
        // steps of 100 changes: the changes themselves are counted instead, by the time
        // each committed (its event row), inside the measured window.
        let changes = changes_between(
            &db,
            started + timing.warmup,
            started + timing.warmup + timing.run,
        )? as f64
            / timing.run.as_secs_f64();

        // The single call, same run, same load: the admin's changes at c = 8.
        let served = self.start_service(&fixture.fresh_db()?, "batch-single", &[])?;
        let host = served.host();
        let single: Vec<Box<dyn Workload>> = (0..8)
            .map(|k| ChangeKind::Admin.workload(&host, k, 8, k as u64 + 11))
            .collect();
        settle(self.plan, &self.quiet_left);
        let single_meter = CpuMeter::start(Some(served.child.id()));
        let mut single_stats = self.drive(closed_loop(
            served.addr,
            None,
            single,
            self.timing(self.plan.run),
            true,
        ));
        let single_cpu = single_meter.finish();
        drop(served);
        let after = self.yardstick(floor.cores)?;
        let times = match (before, after) {
            (Some(b), Some(a)) => b.mean(&a),
            _ => floor.loaded,
        };
        stats.finish();
        single_stats.finish();

        let item = times.hash + times.verify;
        let limit = floor.cores as f64 / item.as_secs_f64();
        let share = 100.0 * changes / limit;
        let single_rate = single_stats.ok_rate();
        let single_limit = floor.cores as f64 / times.change(ChangeKind::Admin).as_secs_f64();
        let ratio = changes / single_rate.max(f64::MIN_POSITIVE);
        report.add(
            Row::new(
                "batch",
                format!("UpdateUserPasswords, {BATCH_ITEMS} items, c={c}"),
                format!(
                    "{changes:.1} changes/s = {share:.0} % of {limit:.1}/s (cores / (hash + verify)), \
                     p50 {} per batch{}",
                    opt_duration(stats.ok_percentile(50.0)),
                    stats.problems()
                ),
            )
            .target("≥ 90 % of limit")
            .verdict(share >= 90.0 && stats.clean())
            .cpu(cpu),
        );
        report.add(
            Row::new(
                "batch",
                "same run: single UpdateUserPassword calls, admin→users c=8",
                format!(
                    "{single_rate:.1}/s ({:.0} % of {single_limit:.1}/s); the batch is ×{ratio:.2} of it{}",
                    100.0 * single_rate / single_limit,
                    single_stats.problems()
                ),
            )
            .target("batch ≥ 1.4 × single")
            .verdict(ratio >= 1.4 && stats.clean() && single_stats.clean())
            .cpu(single_cpu),
        );
        Ok(())
    }
}
