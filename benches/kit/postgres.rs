//! The PostgreSQL rows (issue 12), measured in the same run as the SQLite ones: the heavy
//! path with its data on PostgreSQL; scale-out, two instances on one database each
//! pinned to a core of its own against one instance pinned to one core; and the
//! directory at full size imported into PostgreSQL, with the permission decision timed
//! at depth on it. The cluster is a throwaway one the kit starts with
//! `tests/pg/cluster.sh` (Debian's `postgresql`), with its default durability: every
//! commit is flushed, as in production.

#[allow(unused_imports)]
use super::*;

/// Concurrency of the PostgreSQL heavy rows and of the scale-out rows.
const PG_CONCURRENCY: usize = 8;

/// A PostgreSQL cluster in a temp dir, stopped and removed when dropped.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    admin: String,
}

impl Cluster {
    pub(crate) fn start() -> Result<Cluster, String> {
        // Directly under /tmp: when the kit runs as root, the cluster runs as `postgres`,
        // which must reach its directory (the kit's own work dir is private).
        let dir = tempfile::Builder::new()
            .prefix("soap-passwd-kit-pg-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let out = Command::new("sh")
            .arg(cluster_script())
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .env(
                "PGCLUSTER_OPTS",
                "-c max_connections=200 -c shared_buffers=256MB",
            )
            .output()
            .map_err(|e| format!("tests/pg/cluster.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "no PostgreSQL cluster (apt-get install postgresql): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let admin = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        if !admin.starts_with("postgres://") {
            return Err(format!("tests/pg/cluster.sh printed {admin:?}"));
        }
        Ok(Cluster { dir, admin })
    }

    /// The URL of database `name` on this cluster.
    pub(crate) fn url(&self, name: &str) -> String {
        let base = self.admin.strip_suffix("/postgres").unwrap_or(&self.admin);
        format!("{base}/{name}")
    }

    /// Runs `sql` on the cluster's `postgres` database.
    pub(crate) fn sql(&self, runtime: &tokio::runtime::Runtime, sql: &str) -> Result<(), String> {
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.admin, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("{}: {e}", self.admin))?;
            let driver = tokio::spawn(connection);
            let result = client
                .batch_execute(sql)
                .await
                .map_err(|e| format!("{sql}: {e}"));
            drop(client);
            let _ = driver.await;
            result
        })
    }

    /// A new database `name`, a copy of `template` if given; returns its URL.
    pub(crate) fn create(
        &self,
        runtime: &tokio::runtime::Runtime,
        name: &str,
        template: Option<&str>,
    ) -> Result<String, String> {
        let from = template.map_or(String::new(), |t| format!(" TEMPLATE {t}"));
        self.sql(runtime, &format!("CREATE DATABASE {name}{from}"))?;
        Ok(self.url(name))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(cluster_script())
            .arg("stop")
            .arg(self.dir.path())
            .arg("immediate")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn cluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg/cluster.sh")
}

impl Kit<'_> {
    pub(crate) fn postgres(
        &self,
        fixture: &BenchFixture,
        floor: &Floor,
        report: &mut Report,
    ) -> Result<(), String> {
        let cluster = Cluster::start()?;
        let runtime = self.runtime;
        cluster.create(runtime, "bench_template", None)?;
        self.import(&fixture.json, cluster.url("bench_template"))?;
        let mut runs = 0usize;
        let mut fresh = || -> Result<String, String> {
            runs += 1;
            cluster.create(runtime, &format!("run_{runs}"), Some("bench_template"))
        };

        // The heavy path, its data on PostgreSQL: every slot busy.
        for kind in [ChangeKind::Admin, ChangeKind::OwnPassword] {
            let url = fresh()?;
            let (row, _) = self.heavy_row(
                "postgres",
                std::ffi::OsStr::new(&url),
                kind,
                PG_CONCURRENCY,
                floor,
            )?;
            report.add(row.others_are_database());
        }

        // Scale-out: the same load on one instance with one core, then spread over two
        // instances with a core each, on one database.
        let one = self.pinned_changes(&[fresh()?], &["0"])?;
        let url = fresh()?;
        let two = self.pinned_changes(&[url.clone(), url], &["0", "1"])?;
        let ratio = two.0 / one.0.max(f64::MIN_POSITIVE);
        report.add(
            Row::new(
                "postgres",
                format!(
                    "scale-out: admin→users c={PG_CONCURRENCY}, 2 instances × 1 core \
                     (taskset) vs 1 instance × 1 core, one database"
                ),
                format!(
                    "{:.1}/s vs {:.1}/s = ×{ratio:.2}{}{}",
                    two.0, one.0, two.1, one.1
                ),
            )
            .target("× ≥ 1.8")
            .verdict(ratio >= 1.8 && two.1.is_empty() && one.1.is_empty())
            .cpu(two.2)
            .others_are_database(),
        );

        self.postgres_directory(&cluster, report)
    }

    /// Admin changes at [`PG_CONCURRENCY`] spread evenly over one instance per entry of
    /// `cores`, each pinned to that core and serving `dbs[i]`; returns changes/s in all,
    /// the problems seen (empty when clean) and the CPU used.
    fn pinned_changes(
        &self,
        dbs: &[String],
        cores: &[&str],
    ) -> Result<(f64, String, Option<CpuUse>), String> {
        let mut servers = Vec::new();
        for (i, (db, core)) in dbs.iter().zip(cores).enumerate() {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", core])
                .arg(service_bin())
                .args(["serve", "--bind", "127.0.0.1:0", "--db"])
                .arg(db);
            let name = format!("scale-out-{}-{i}", cores.len());
            servers.push(Served::spawn(
                cmd,
                Log::File(self.work.join(format!("{name}.log"))),
                &name,
            )?);
        }
        let n = servers.len();
        let c = PG_CONCURRENCY;
        settle(self.plan, &self.quiet_left);
        let meter = CpuMeter::start_many(servers.iter().map(|s| s.child.id()).collect());
        let loads: Vec<_> = servers
            .iter()
            .enumerate()
            .map(|(i, served)| {
                let host = served.host();
                // Connection k of c goes to instance k mod n: disjoint users, even load.
                let workloads: Vec<Box<dyn Workload>> = (0..c)
                    .filter(|k| k % n == i)
                    .map(|k| ChangeKind::Admin.workload(&host, k, c, k as u64 + 1))
                    .collect();
                (served.addr, workloads)
            })
            .collect();
        let timing = self.timing(self.plan.run);
        let all = self.drive(async move {
            // Every instance's load starts at once; then each is awaited.
            let handles: Vec<_> = loads
                .into_iter()
                .map(|(addr, workloads)| {
                    spawn_local(closed_loop(addr, None, workloads, timing, true))
                })
                .collect();
            let mut all = Vec::new();
            for handle in handles {
                all.push(handle.await.map_err(|e| format!("load task: {e}"))?);
            }
            Ok::<_, String>(all)
        })?;
        let cpu = meter.finish();
        drop(servers);
        let mut rps = 0.0;
        let mut problems = String::new();
        for mut stats in all {
            stats.finish();
            rps += stats.ok_rate();
            if !stats.clean() {
                problems.push_str(&stats.problems());
            }
        }
        Ok((rps, problems, cpu))
    }

    /// The full directory imported into PostgreSQL, and the decision timed on it.
    fn postgres_directory(&self, cluster: &Cluster, report: &mut Report) -> Result<(), String> {
        let plan = self.plan;
        let hash = hash_blocking(
            HashParams::default(),
            &Password::normalise(BENCH_USER_PASSWORD),
        )
        .map_err(|e| e.to_string())?;
        let json = self.work.join("pg-scale.json");
        write_directory(&json, plan.departments, plan.users, &hash)
            .map_err(|e| format!("{}: {e}", json.display()))?;
        let url = cluster.create(self.runtime, "scale", None)?;
        settle(self.plan, &self.quiet_left);
        let imported = self.import(&json, &url);
        let _ = fs::remove_file(&json);
        let imported = imported?;
        let what = format!(
            "soap-passwd import of {} departments, {} users into PostgreSQL",
            thousands(plan.departments),
            thousands(plan.users)
        );
        report.add(import_row("postgres", what, &imported, plan.users).others_are_database());
        let decisions = time_decisions(
            &soap_passwd::config::Database::parse(&url),
            plan.decision_samples,
        )?;
        for row in decision_rows("postgres", &decisions) {
            report.add(row);
        }
        Ok(())
    }
}
