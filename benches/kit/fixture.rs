//! The benchmark directory, its requests, and the workloads that send them.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// Fixtures and requests
// ---------------------------------------------------------------------------------------

pub(crate) const API_NS: &str = "http://ispringlearn.com/go/services/api/soap";
pub(crate) const BENCH_URL: &str = "http://bench.example.com";
pub(crate) const BENCH_ADMIN_EMAIL: &str = "admin@bench.example.com";
pub(crate) const BENCH_ADMIN_PASSWORD: &str = "Bench-Admin-Pass-5820";
pub(crate) const BENCH_USER_PASSWORD: &str = "Bench-User-Pass-1234";
pub(crate) const SCALE_URL: &str = "http://scale.example.com";
pub(crate) const SCALE_ADMIN: &str = "root.admin@scale.example.com";
/// Depth of the deepest department; the root is depth 1.
pub(crate) const SPINE: usize = 20;
pub(crate) const TARGET_DEPTHS: [usize; 3] = [1, 10, 20];

pub(crate) fn bench_user_id(i: usize) -> String {
    format!("u-{i:04}")
}

pub(crate) fn bench_user_email(i: usize) -> String {
    format!("user{i}@bench.example.com")
}

/// The imported load-test database; every measurement gets its own copy.
pub(crate) struct BenchFixture {
    pub(crate) template: PathBuf,
    /// The provisioning file it was imported from (the PostgreSQL rows import it too).
    pub(crate) json: PathBuf,
    pub(crate) dir: PathBuf,
}

impl BenchFixture {
    pub(crate) fn fresh_db(&self) -> Result<PathBuf, String> {
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

/// An `UpdateUserPasswordRequest` envelope. Every value here is plain ASCII without
/// markup characters, so nothing needs escaping.
pub(crate) fn bench_request(
    email: &str,
    password: &str,
    user_id: &str,
    new_password: &str,
) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns="{API_NS}"><SOAP-ENV:Body><UpdateUserPasswordRequest><credentials><accountUrl>{BENCH_URL}</accountUrl><email>{email}</email><password>{password}</password></credentials><userId>{user_id}</userId><password>{new_password}</password></UpdateUserPasswordRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// The bytes of `POST /soap` carrying `body`.
pub(crate) fn post(host: &str, body: &str) -> Vec<u8> {
    let mut request = format!(
        "POST /soap HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml; charset=utf-8\r\n\
         SOAPAction: \"UpdateUserPassword\"\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// `PATCH /api/users/u-0001/password` with `body` as JSON, by the bench admin (HTTP
/// Basic, the account in `X-Account-Url`).
pub(crate) fn rest_patch(host: &str, body: &str) -> Vec<u8> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{BENCH_ADMIN_EMAIL}:{BENCH_ADMIN_PASSWORD}"));
    let mut request = format!(
        "PATCH /api/users/{}/password HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Authorization: Basic {basic}\r\nX-Account-Url: {BENCH_URL}\r\nContent-Length: {}\r\n\r\n",
        bench_user_id(1),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// What the light-path requests look like on the wire, sent to the baseline as well so
/// both servers read the same bytes.
pub(crate) const BASELINE_REQUEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns="http://ispringlearn.com/go/services/api/soap"><SOAP-ENV:Body><UpdateUserPasswordRequest><credentials><accountUrl>http://bench.example.com</accountUrl><email>admin@bench.example.com</email><password>Bench-Admin-Pass-5820</password></credentials><password>Kit-Light-Path-Pass-77!</password></UpdateUserPasswordRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

pub(crate) fn client_fault(reply: &Reply, detail: Option<&str>) -> Outcome {
    let detail_ok = detail.is_none_or(|d| contains(&reply.body, d.as_bytes()));
    if reply.status == 500 && contains(&reply.body, b"SOAP-ENV:Client") && detail_ok {
        Outcome::Ok
    } else {
        Outcome::Other
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// Workloads: what one connection sends next and how it judges the answer
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The answer the scenario expects (a success, or the expected fault).
    Ok,
    /// 503 `ServerBusyFault`.
    Shed,
    Other,
}

/// How a scenario judges an answer.
pub(crate) type Judge = fn(&Reply) -> Outcome;

pub(crate) trait Workload {
    fn request(&mut self) -> Vec<u8>;
    /// Judges an answer to the last request (and remembers a changed password).
    fn judge(&mut self, reply: &Reply) -> Outcome;
}

pub(crate) fn judge_change(reply: &Reply) -> Outcome {
    if reply.status == 200 && contains(&reply.body, b"<success>true</success>") {
        Outcome::Ok
    } else if reply.status == 503 && contains(&reply.body, b"ServerBusyFault") {
        Outcome::Shed
    } else {
        Outcome::Other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// The account admin sets a different user's password on every request.
    Admin,
    /// Each user changes their own password, authenticating with the current one.
    OwnPassword,
}

impl ChangeKind {
    /// The workload of connection `k` of `of`: it owns the users `k`, `k + of`, … so no
    /// two connections ever change the same user's password.
    pub(crate) fn workload(self, host: &str, k: usize, of: usize, seed: u64) -> Box<dyn Workload> {
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

pub(crate) struct AdminChanges {
    pub(crate) host: String,
    pub(crate) users: Vec<usize>,
    pub(crate) next: usize,
    pub(crate) rng: Rng,
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

pub(crate) struct OwnChanges {
    pub(crate) host: String,
    /// (user index, current password).
    pub(crate) users: Vec<(usize, String)>,
    pub(crate) next: usize,
    /// The slot in `users` and the password the last request set.
    pub(crate) pending: Option<(usize, String)>,
    pub(crate) rng: Rng,
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
pub(crate) struct Fixed {
    pub(crate) requests: Rc<Vec<Vec<u8>>>,
    pub(crate) next: usize,
    pub(crate) expect: Judge,
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

pub(crate) fn fixed_workloads(
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
