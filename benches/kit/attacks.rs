//! The attack rows: the findings of issue 9, measured as load.

#[allow(unused_imports)]
use super::*;

impl Kit<'_> {
    /// Two attacks of issue 9 against an admin's changes (2 connections from 127.0.0.1),
    /// each set against the admin's rate alone on a fresh server in the same run:
    /// - a learner on 127.0.0.2 changing their own password, 8 connections, to a crafted
    ///   password (100 characters of repeated l33t substitutions, the e-mail's local part
    ///   at its end so the change is refused and the credentials stay valid): before the
    ///   strength check was bounded, 1.2 s of CPU each;
    /// - anonymous junk (WrongParameters) from 127.0.0.2, 32 connections: before refusals
    ///   were audited in aggregate, a row each (81 MB in 10 s).
    pub(crate) fn attacks(
        &self,
        fixture: &BenchFixture,
        report: &mut Report,
    ) -> Result<(), String> {
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
}
