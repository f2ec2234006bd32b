//! The directory rows: a generated 100,000-user tree imported, and the permission
//! decision timed at depth.

#[allow(unused_imports)]
use super::*;

impl Kit<'_> {
    pub(crate) fn directory(&self, report: &mut Report) -> Result<(), String> {
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
        report.add(import_row(
            "directory",
            "soap-passwd import".into(),
            &imported,
            plan.users,
        ));
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

        let big = time_decisions(&db.as_path().into(), plan.decision_samples)?;
        let small = time_decisions(&spine_db.as_path().into(), plan.decision_samples)?;
        let p50_of = |runs: &[(usize, Vec<u64>)], depth: usize| {
            runs.iter()
                .find(|(d, _)| *d == depth)
                .and_then(|(_, t)| percentile(t, 50.0))
        };
        for row in decision_rows("directory", &big) {
            report.add(row);
        }
        self.all_in_scope(&db, report)?;
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

/// The department admin of the subtree that holds a tenth of the users.
pub(crate) const SUB_ADMIN: &str = "sub.admin@scale.example.com";

impl Kit<'_> {
    /// `allInScope` for the department admin of a subtree with a tenth of the directory's
    /// users: one reset of every one of them (a link each, notified), its time and the
    /// server's peak RSS.
    fn all_in_scope(&self, db: &Path, report: &mut Report) -> Result<(), String> {
        use std::io::{Read, Write};
        let served = self.start_service(db, "all-in-scope", &[])?;
        let body = r#"{"allInScope": true}"#;
        let basic = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .encode(format!("{SUB_ADMIN}:{BENCH_USER_PASSWORD}"))
        };
        let request = format!(
            "POST /api/password-resets HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Authorization: Basic {basic}\r\nX-Account-Url: {SCALE_URL}\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            served.host(),
            body.len()
        );
        settle(self.plan, &self.quiet_left);
        let meter = CpuMeter::start(Some(served.child.id()));
        let started = std::time::Instant::now();
        let mut stream = std::net::TcpStream::connect(served.addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(600)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        let cpu = meter.finish();
        let rss = served.peak_rss_kib();
        let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            format!(
                "allInScope answered {e}: {}",
                &answer[..answer.len().min(300)]
            )
        })?;
        let reset = value["reset"].as_u64().unwrap_or(0);
        let mib = rss.map_or(f64::NAN, |k| k as f64 / 1024.0);
        report.add(
            Row::new(
                "directory",
                format!(
                    "allInScope reset by a department admin ({} users in the subtree)",
                    thousands(reset as usize)
                ),
                format!(
                    "{:.1} s = {} links/s, server peak RSS {mib:.0} MiB",
                    took.as_secs_f64(),
                    thousands((reset as f64 / took.as_secs_f64()) as usize)
                ),
            )
            .target("< 10 s, < 200 MiB")
            .verdict(took < Duration::from_secs(10) && mib < 200.0 && reset > 0)
            .cpu(cpu),
        );
        Ok(())
    }
}

/// The row of an import of `users` users: its time, rate and importer peak RSS, held
/// to the issue's 1M users in 60 s (a quick run's smaller directory to the same rate).
pub(crate) fn import_row(
    section: &'static str,
    what: String,
    imported: &Imported,
    users: usize,
) -> Row {
    let rate = users as f64 / imported.elapsed.as_secs_f64();
    // Issue 13: a million users in under 15 s, the importer's peak under 256 MiB.
    let bound = Duration::from_secs_f64(15.0 * users as f64 / 1e6);
    let within_memory = imported.peak_kib.is_some_and(|k| k < 256 * 1024);
    Row::new(
        section,
        what,
        format!(
            "{:.1} s = {} users/s, importer peak RSS {}",
            imported.elapsed.as_secs_f64(),
            thousands(rate as usize),
            imported
                .peak_kib
                .map_or("?".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
        ),
    )
    .target(format!("< {:.0} s, < 256 MiB", bound.as_secs_f64()))
    .verdict(imported.elapsed < bound && within_memory)
    .cpu(imported.cpu)
}

/// A row per depth of [`time_decisions`]' times; the deepest is held to p99 < 1 ms.
pub(crate) fn decision_rows(section: &'static str, runs: &[(usize, Vec<u64>)]) -> Vec<Row> {
    runs.iter()
        .map(|(depth, times)| {
            let p99 = percentile(times, 99.0);
            let row = Row::new(
                section,
                format!("permission decision at depth {depth} (find_target + authorise)"),
                format!(
                    "p50 {}, p99 {}",
                    opt_duration(percentile(times, 50.0)),
                    opt_duration(p99)
                ),
            );
            if *depth == SPINE {
                row.target("p99 < 1 ms")
                    .verdict(p99.is_some_and(|p| p < Duration::from_millis(1)))
            } else {
                row
            }
        })
        .collect()
}

pub(crate) struct Imported {
    pub(crate) elapsed: Duration,
    pub(crate) peak_kib: Option<u64>,
    /// The importer counts as the server.
    pub(crate) cpu: Option<CpuUse>,
}

/// Times the decision the service makes once per change, in process on `db`: the target
/// lookup with its scope facts, then the rules. The caller administers the root.
pub(crate) fn time_decisions(
    db: &soap_passwd::config::Database,
    samples: usize,
) -> Result<Vec<(usize, Vec<u64>)>, String> {
    let store = Store::open(db, 2).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The caller as the service finds it: a sign-in's reservation (abandoned at once,
    // so it counts as nothing) with the lookup it returns.
    let sign_in = SignIn {
        account_key: AccountUrl::key_of(SCALE_URL),
        email_key: Email::key_of(SCALE_ADMIN),
        pair: ThrottleKey::pair(&AccountUrl::key_of(SCALE_URL), &Email::key_of(SCALE_ADMIN)),
        address: None,
        id: 1,
        policy: ThrottlePolicy::default(),
    };
    let now = || chrono::Utc::now().timestamp_millis();
    let gate = runtime
        .block_on(store.reserve_sign_in(sign_in.clone(), now()))
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(store.settle_sign_in(sign_in, Settlement::Abandoned, now()))
        .map_err(|e| e.to_string())?;
    let SignInGate::Open(lookup) = gate else {
        return Err("the directory's root admin is locked out".into());
    };
    let (Some(account), Some(caller)) = (lookup.account, lookup.user) else {
        return Err("the directory's root admin is missing".into());
    };
    let mut out = Vec::new();
    for depth in TARGET_DEPTHS {
        let target_id = format!("t-depth-{depth}");
        let decide = || -> Result<(), String> {
            // The service's own query, with the blocking-pool hop it pays too.
            let target = runtime
                .block_on(store.find_target(
                    account.id,
                    caller.id,
                    target_id.clone(),
                    account.policy.history,
                ))
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

/// The bytes of an SQLite database and its write-ahead log.
pub(crate) fn database_bytes(db: &Path) -> u64 {
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
pub(crate) fn write_directory(
    path: &Path,
    departments: usize,
    users: usize,
    hash: &str,
) -> io::Result<u64> {
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
    // A department admin of the deepest spine department, where a tenth of the users
    // are: the subtree an `allInScope` reset walks.
    write!(
        w,
        r#",{{"id":"u-sub-admin","email":"{SUB_ADMIN}","password_hash":"{hash}","role":"department_admin","department":"d{}","manages":["d{}"]}}"#,
        SPINE - 2,
        SPINE - 1
    )?;
    for i in 0..users.saturating_sub(2 + TARGET_DEPTHS.len()) {
        let department = if i % 10 == 0 {
            SPINE - 1
        } else {
            rng.below(departments)
        };
        write!(
            w,
            r#",{{"id":"u{i}","email":"u{i}@scale.example.com","password_hash":"{hash}","role":"user","department":"d{department}"}}"#
        )?;
    }
    w.write_all(b"]}]}")?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    file.metadata().map(|m| m.len())
}

pub(crate) fn write_department(
    w: &mut impl Write,
    id: usize,
    children: &[Vec<u32>],
) -> io::Result<()> {
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
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A fresh password the policy accepts: long, random, no e-mail in it.
    pub(crate) fn password(&mut self) -> String {
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
