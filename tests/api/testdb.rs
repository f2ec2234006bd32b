//! The database under a test, whichever backend the suite runs on (issue 12): an SQLite
//! file in a temp dir by default, or — when `SOAP_PASSWD_TEST_PG` holds the URL of a
//! PostgreSQL server the test may create databases on — a database of its own there,
//! created for the test and dropped after it. Every test reads and writes what the
//! service stored through this one handle, in SQL both backends run, so the same tests
//! check both (`.ci/test` runs the suite once per backend).
//!
//! SQL is sent with its parameters written in as literals (`?1`, `?2`, … replaced),
//! and every value comes back as text (PostgreSQL's simple query protocol answers text;
//! SQLite's values are formatted alike), read into the type a test asks for. Booleans
//! read as `true`/`false` from either backend's spelling (1/0, t/f); write them in SQL
//! as `NOT x` or `x` rather than `x = 0`, which PostgreSQL refuses for a BOOLEAN.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use soap_passwd::config::Database;

/// The environment variable naming the PostgreSQL server to run the suite on, as a URL
/// of a database to connect to for creating and dropping the tests' databases, e.g.
/// `postgres://postgres@127.0.0.1:5433/postgres`.
pub const PG_ENV: &str = "SOAP_PASSWD_TEST_PG";

/// The PostgreSQL server the suite runs on, if it runs on one.
pub fn postgres_server() -> Option<String> {
    std::env::var(PG_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// A value written into SQL as a literal.
pub trait Lit {
    fn lit(&self) -> String;
}

impl Lit for &str {
    fn lit(&self) -> String {
        format!("'{}'", self.replace('\'', "''"))
    }
}
impl Lit for String {
    fn lit(&self) -> String {
        self.as_str().lit()
    }
}
impl Lit for &String {
    fn lit(&self) -> String {
        self.as_str().lit()
    }
}
macro_rules! int_lit {
    ($($t:ty),*) => {$(
        impl Lit for $t {
            fn lit(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
int_lit!(i64, i32, u64, u32, usize);

/// Parameters of [`TestDb::query_row`] and [`TestDb::execute`], as rusqlite takes them:
/// `[]`, `[a]`, `[a, b]`, …
pub trait Params {
    fn lits(&self) -> Vec<&dyn Lit>;
}
impl Params for [&dyn Lit; 0] {
    fn lits(&self) -> Vec<&dyn Lit> {
        Vec::new()
    }
}
macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: Lit> Params for [T; $n] {
            fn lits(&self) -> Vec<&dyn Lit> {
                self.iter().map(|p| p as &dyn Lit).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4);

/// What a query can fail with.
#[derive(Debug, PartialEq, Eq)]
pub enum DbError {
    /// `query_row` found no row.
    NoRows,
    /// The database refused the SQL, or a value was not of the type asked for.
    Sql(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::NoRows => f.write_str("no row"),
            DbError::Sql(e) => f.write_str(e),
        }
    }
}

/// A column's value read as a Rust type.
pub trait FromCol: Sized {
    fn from_col(value: Option<&str>) -> Result<Self, String>;
}

impl FromCol for String {
    fn from_col(value: Option<&str>) -> Result<Self, String> {
        value
            .map(str::to_string)
            .ok_or_else(|| "NULL where text was expected".to_string())
    }
}
impl FromCol for i64 {
    fn from_col(value: Option<&str>) -> Result<Self, String> {
        match value {
            Some("t") => Ok(1),
            Some("f") => Ok(0),
            Some(v) => v.parse().map_err(|_| format!("{v:?} is not an integer")),
            None => Err("NULL where an integer was expected".to_string()),
        }
    }
}
impl FromCol for bool {
    fn from_col(value: Option<&str>) -> Result<Self, String> {
        match value {
            Some("t" | "1" | "true") => Ok(true),
            Some("f" | "0" | "false") => Ok(false),
            other => Err(format!("{other:?} is not a boolean")),
        }
    }
}
impl<T: FromCol> FromCol for Option<T> {
    fn from_col(value: Option<&str>) -> Result<Self, String> {
        value.map(|v| T::from_col(Some(v))).transpose()
    }
}

/// A row of text values.
pub struct Row {
    values: Vec<Option<String>>,
    sql: String,
}

impl Row {
    /// Column `i` (from 0) as a `T`.
    pub fn get<T: FromCol>(&self, i: usize) -> Result<T, DbError> {
        let value = self
            .values
            .get(i)
            .ok_or_else(|| DbError::Sql(format!("no column {i}: {}", self.sql)))?;
        T::from_col(value.as_deref()).map_err(|e| DbError::Sql(format!("{e}: {}", self.sql)))
    }

    /// Column `i` as a `T`; panics if it is not one.
    pub fn at<T: FromCol>(&self, i: usize) -> T {
        self.get(i).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every column, NULL as `None`.
    pub fn values(&self) -> &[Option<String>] {
        &self.values
    }
}

enum Target {
    Sqlite(PathBuf),
    Postgres {
        /// The server's URL for creating and dropping databases.
        admin: String,
        name: String,
        url: String,
    },
}

/// One PostgreSQL connection, used from blocking test code.
struct PgConn {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl PgConn {
    fn connect(url: &str) -> Result<PgConn, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            tokio::spawn(connection);
            Ok::<_, String>(client)
        })?;
        Ok(PgConn { rt, client })
    }

    fn simple(&self, sql: &str) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, String> {
        self.rt
            .block_on(self.client.simple_query(sql))
            .map_err(|e| match e.as_db_error() {
                Some(db) => format!("{}: {}", db.code().code(), db.message()),
                None => e.to_string(),
            })
    }
}

/// A test's own database, and a temp dir for its other files.
pub struct TestDb {
    target: Target,
    pg: Mutex<Option<PgConn>>,
    dir: tempfile::TempDir,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A new, empty database of the backend the suite runs on.
    pub fn fresh() -> TestDb {
        match postgres_server() {
            Some(server) => TestDb::fresh_postgres(&server),
            None => TestDb::fresh_sqlite(),
        }
    }

    /// A new SQLite file, whichever backend the suite runs on (for what only SQLite
    /// has: its file, its locks, its journal).
    pub fn fresh_sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.db");
        TestDb {
            target: Target::Sqlite(path),
            pg: Mutex::new(None),
            dir,
        }
    }

    /// The SQLite file at `path` (one a test placed somewhere of its own).
    pub fn sqlite_file(path: PathBuf) -> TestDb {
        TestDb {
            target: Target::Sqlite(path),
            pg: Mutex::new(None),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn fresh_postgres(server: &str) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let admin = PgConn::connect(server).unwrap_or_else(|e| panic!("{PG_ENV}: {e}"));
        admin
            .simple(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = match server.rfind('/') {
            Some(slash) if slash > "postgres://".len() => {
                let (base, rest) = server.split_at(slash);
                let query = rest.find('?').map_or("", |q| &rest[q..]);
                format!("{base}/{name}{query}")
            }
            _ => panic!("{PG_ENV} must name a database: {server}"),
        };
        TestDb {
            target: Target::Postgres {
                admin: server.to_string(),
                name,
                url,
            },
            pg: Mutex::new(None),
            dir,
        }
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self.target, Target::Postgres { .. })
    }

    /// The SQLite file, if that is the backend.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.target {
            Target::Sqlite(path) => Some(path),
            Target::Postgres { .. } => None,
        }
    }

    /// What `--db` takes: the SQLite path or the PostgreSQL URL.
    pub fn arg(&self) -> OsString {
        match &self.target {
            Target::Sqlite(path) => path.clone().into_os_string(),
            Target::Postgres { url, .. } => url.into(),
        }
    }

    /// The same, as text.
    pub fn arg_str(&self) -> String {
        self.arg().to_string_lossy().into_owned()
    }

    /// The database, as the service's settings name it.
    pub fn database(&self) -> Database {
        match &self.target {
            Target::Sqlite(path) => Database::Sqlite(path.clone()),
            Target::Postgres { url, .. } => Database::parse(url),
        }
    }

    /// A temp dir of the test's, removed with the database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `sql` (with `?N` replaced by `params[N-1]`); returns its rows.
    pub fn try_rows(&self, sql: &str, params: &[&dyn Lit]) -> Result<Vec<Row>, String> {
        let sql = bind(sql, params);
        match &self.target {
            Target::Sqlite(path) => {
                let conn = sqlite(path).map_err(|e| e.to_string())?;
                let mut stmt = conn.prepare(&sql).map_err(|e| format!("{sql}: {e}"))?;
                let columns = stmt.column_count();
                let mut rows = stmt.query([]).map_err(|e| format!("{sql}: {e}"))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(|e| format!("{sql}: {e}"))? {
                    let values = (0..columns)
                        .map(|i| row.get_ref(i).map(text_of))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("{sql}: {e}"))?;
                    out.push(Row {
                        values,
                        sql: sql.clone(),
                    });
                }
                Ok(out)
            }
            Target::Postgres { .. } => {
                let messages = self.with_pg(|conn| conn.simple(&sql))?;
                Ok(messages
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(Row {
                            values: (0..row.len())
                                .map(|i| row.get(i).map(str::to_string))
                                .collect(),
                            sql: sql.clone(),
                        }),
                        _ => None,
                    })
                    .collect())
            }
        }
    }

    /// The rows of `sql`; panics on an error.
    pub fn rows(&self, sql: &str, params: &[&dyn Lit]) -> Vec<Row> {
        self.try_rows(sql, params).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The first row of `sql`, if any.
    pub fn row(&self, sql: &str, params: &[&dyn Lit]) -> Option<Row> {
        self.rows(sql, params).into_iter().next()
    }

    /// The first column of the first row; panics if there is no row.
    pub fn one<T: FromCol>(&self, sql: &str, params: &[&dyn Lit]) -> T {
        self.row(sql, params)
            .unwrap_or_else(|| panic!("no row: {sql}"))
            .at(0)
    }

    /// The first column of each row.
    pub fn column<T: FromCol>(&self, sql: &str, params: &[&dyn Lit]) -> Vec<T> {
        self.rows(sql, params).iter().map(|r| r.at(0)).collect()
    }

    /// rusqlite's `query_row`: `f` of the first row, or [`DbError::NoRows`].
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let rows = self.try_rows(sql, &params.lits()).map_err(DbError::Sql)?;
        rows.first().map_or(Err(DbError::NoRows), f)
    }

    /// rusqlite's `execute`: how many rows the statement changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<u64, DbError> {
        self.try_exec(sql, &params.lits()).map_err(DbError::Sql)
    }

    /// A count (or any integer) `sql` answers.
    pub fn count(&self, sql: &str) -> i64 {
        self.one(sql, &[])
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn try_exec(&self, sql: &str, params: &[&dyn Lit]) -> Result<u64, String> {
        let sql = bind(sql, params);
        match &self.target {
            Target::Sqlite(path) => {
                let conn = sqlite(path).map_err(|e| e.to_string())?;
                conn.execute(&sql, [])
                    .map(|n| n as u64)
                    .map_err(|e| format!("{sql}: {e}"))
            }
            Target::Postgres { .. } => Ok(self
                .with_pg(|conn| conn.simple(&sql))
                .map_err(|e| format!("{sql}: {e}"))?
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(n),
                    _ => None,
                })
                .sum()),
        }
    }

    /// The same; panics on an error.
    pub fn exec(&self, sql: &str, params: &[&dyn Lit]) -> u64 {
        self.try_exec(sql, params).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until the count `sql` answers reaches `at_least`, or `within` passes;
    /// returns the last count (rows written in batches land within milliseconds).
    pub fn wait_for_count(&self, sql: &str, at_least: i64, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        loop {
            let n = self.count(sql);
            if n >= at_least || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the database holds, to search for what must never be stored: on
    /// SQLite the raw bytes of its file, write-ahead log, shared memory and journal (old
    /// page versions included); on PostgreSQL every value of every table, as text.
    pub fn everything_stored(&self) -> Vec<u8> {
        match &self.target {
            Target::Sqlite(path) => {
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    all.extend(read_in_a_child(&format!("{}{suffix}", path.display())));
                }
                all
            }
            Target::Postgres { .. } => {
                let tables: Vec<String> = self.column(
                    "SELECT table_name FROM information_schema.tables
                      WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                    &[],
                );
                let mut all = Vec::new();
                for table in tables {
                    for row in self.rows(&format!("SELECT * FROM \"{table}\""), &[]) {
                        for value in row.values().iter().flatten() {
                            all.extend_from_slice(value.as_bytes());
                            all.push(b'\n');
                        }
                    }
                }
                all
            }
        }
    }

    /// Holds the write locks every change and sign-in needs until the hold is dropped
    /// (reads go on): SQLite's write lock (`BEGIN IMMEDIATE`); on PostgreSQL, the tables
    /// they write locked `IN EXCLUSIVE MODE` in an open transaction.
    pub fn hold_writes(&self) -> WriteHold {
        match &self.target {
            Target::Sqlite(path) => {
                let conn = sqlite(path).expect("open db");
                conn.execute_batch("BEGIN IMMEDIATE")
                    .expect("take the write lock");
                WriteHold::Sqlite(conn)
            }
            Target::Postgres { url, .. } => {
                let conn = PgConn::connect(url).unwrap_or_else(|e| panic!("{e}"));
                conn.simple(
                    "BEGIN; LOCK TABLE auth_throttle, users, audit_log, events IN EXCLUSIVE MODE",
                )
                .unwrap_or_else(|e| panic!("lock the tables: {e}"));
                WriteHold::Postgres(conn)
            }
        }
    }

    fn with_pg<T>(&self, work: impl FnOnce(&PgConn) -> Result<T, String>) -> Result<T, String> {
        let Target::Postgres { url, .. } = &self.target else {
            return Err("not PostgreSQL".into());
        };
        let mut guard = self.pg.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(PgConn::connect(url)?);
        }
        let conn = guard.as_ref().ok_or("no connection")?;
        let result = work(conn);
        if result.is_err() && conn.client.is_closed() {
            *guard = None;
        }
        result
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Target::Postgres { admin, name, .. } = &self.target {
            if let Ok(mut guard) = self.pg.lock() {
                guard.take();
            }
            // The service may still hold connections for a moment: FORCE ends them.
            if let Ok(conn) = PgConn::connect(admin) {
                let _ = conn.simple(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// Write locks held by [`TestDb::hold_writes`], released when dropped.
pub enum WriteHold {
    Sqlite(rusqlite::Connection),
    #[allow(private_interfaces)]
    Postgres(PgConn),
}

impl Drop for WriteHold {
    fn drop(&mut self) {
        match self {
            WriteHold::Sqlite(conn) => {
                let _ = conn.execute_batch("ROLLBACK");
            }
            WriteHold::Postgres(conn) => {
                let _ = conn.simple("ROLLBACK");
            }
        }
    }
}

/// The bytes of `path`, read by another process (`cat`), or nothing if it is not there.
///
/// Not `std::fs::read`: closing any descriptor of a file drops every POSIX lock this
/// process holds on it, and an in-process server's SQLite connections hold theirs on
/// the database and its shared memory. With those gone, a CLI command run next believes
/// it is the database's only user, and its close checkpoints and resets the write-ahead
/// log under the server: a write the command had committed was lost (4 runs in 15
/// under load, `reset::no_raw_token_is_stored…`; SQLite's "How To Corrupt" §2.2).
fn read_in_a_child(path: &str) -> Vec<u8> {
    if !Path::new(path).exists() {
        return Vec::new();
    }
    let out = std::process::Command::new("cat")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cat {path}: {e}"));
    out.stdout
}

fn sqlite(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

fn text_of(value: rusqlite::types::ValueRef<'_>) -> Option<String> {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// `sql` with each `?N` outside a quoted string replaced by `params[N-1]`'s literal.
fn bind(sql: &str, params: &[&dyn Lit]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
            out.push(c);
        } else if c == '?' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                n.push(d);
                chars.next();
            }
            let i: usize = n.parse().unwrap_or(0);
            let param = params
                .get(i.wrapping_sub(1))
                .unwrap_or_else(|| panic!("no parameter ?{i} for {sql}"));
            out.push_str(&param.lit());
        } else {
            out.push(c);
        }
    }
    out
}
