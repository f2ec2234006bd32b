//! Test harness: a real service on 127.0.0.1:0 over a real database of its own (an
//! SQLite file in a temp dir, or a PostgreSQL database: [`TestDb`]), and a blocking HTTP
//! client that talks to it over loopback.

use std::io::BufRead;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::harness::Printed;
pub use crate::testdb::{Params, TestDb};

use quick_xml::events::Event;
use quick_xml::reader::NsReader;
use soap_passwd::config::Settings;
use soap_passwd::startup::{Application, open_store};
use soap_passwd::{demo, provision};

pub const ACCOUNT: &str = "http://myaccount.ispringlearn.com";
pub const API_NS: &str = "http://ispringlearn.com/go/services/api/soap";
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

/// Demo users: (id, e-mail, password) as in fixtures/demo.json.
pub const OWNER: (&str, &str, &str) = ("u-owner", "owner@example.com", "Owner-Demo-Pass-7341");
pub const ADMIN: (&str, &str, &str) = ("u-admin", "admin@example.com", "Admin-Demo-Pass-5820");
pub const ADMIN2: (&str, &str, &str) = ("u-admin2", "admin2@example.com", "Admin2-Demo-Pass-9154");
pub const SALES_ADMIN: (&str, &str, &str) = (
    "u-sales-admin",
    "sales.admin@example.com",
    "Sales-Demo-Pass-2468",
);
pub const EMEA_ADMIN: (&str, &str, &str) = (
    "u-emea-admin",
    "emea.admin@example.com",
    "Emea-Demo-Pass-1357",
);
pub const ENG_ADMIN: (&str, &str, &str) =
    ("u-eng-admin", "eng.admin@example.com", "Eng-Demo-Pass-8642");
pub const HELP: (&str, &str, &str) = ("u-help", "help@example.com", "Help-Demo-Pass-3690");
pub const LEARNER: (&str, &str, &str) =
    ("u-learner", "learner@example.com", "Learner-Demo-Pass-4826");
pub const LEARNER2: (&str, &str, &str) = (
    "u-learner2",
    "learner2@example.com",
    "Learner2-Demo-Pass-7193",
);
pub const ENGINEER: (&str, &str, &str) = (
    "u-engineer",
    "engineer@example.com",
    "Engineer-Demo-Pass-6071",
);
pub const TRAINER: (&str, &str, &str) =
    ("u-trainer", "trainer@example.com", "Trainer-Demo-Pass-2580");
pub const FORMER: (&str, &str, &str) = ("u-former", "former@example.com", "Former-Demo-Pass-1122");
pub const SSO: (&str, &str, &str) = ("u-sso", "sso.user@example.com", "Sso-Demo-Pass-3344");

/// A strong password no demo user has; add a suffix for more.
pub const STRONG: &str = "Vq7#Lp2!xZr9Mw4k";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Soap {
    V11,
    V12,
}

impl Soap {
    pub fn ns(self) -> &'static str {
        match self {
            Soap::V11 => SOAP11,
            Soap::V12 => SOAP12,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Soap::V11 => "text/xml; charset=utf-8",
            Soap::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    /// Wraps an operation element in an envelope of this version.
    pub fn envelope(self, body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="{}"><soap:Body>{body}</soap:Body></soap:Envelope>"#,
            self.ns()
        )
    }

    /// The HTTP status of a client fault in this version.
    pub fn client_fault_status(self) -> u16 {
        match self {
            Soap::V11 => 500,
            Soap::V12 => 400,
        }
    }
}

pub const BOTH: [Soap; 2] = [Soap::V11, Soap::V12];

/// An `UpdateUserPasswordRequest` element.
pub fn request(
    account: &str,
    email: &str,
    password: &str,
    user_id: &str,
    new_password: &str,
) -> String {
    format!(
        r#"<UpdateUserPasswordRequest xmlns="{API_NS}"><credentials><accountUrl>{}</accountUrl><email>{}</email><password>{}</password></credentials><userId>{}</userId><password>{}</password></UpdateUserPasswordRequest>"#,
        esc(account),
        esc(email),
        esc(password),
        esc(user_id),
        esc(new_password)
    )
}

pub fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    /// Text of every element with this local name, in document order.
    pub fn texts(&self, local: &str) -> Vec<String> {
        element_texts(&self.body, local)
    }

    pub fn text(&self, local: &str) -> Option<String> {
        self.texts(local).into_iter().next()
    }

    pub fn is_success(&self) -> bool {
        self.status == 200 && self.text("success").as_deref() == Some("true")
    }

    /// The fault code's value (`SOAP-ENV:Client`, `env:Sender`, …).
    pub fn fault_code(&self) -> Option<String> {
        self.text("faultcode").or_else(|| self.text("Value"))
    }

    pub fn fault_string(&self) -> Option<String> {
        self.text("faultstring").or_else(|| self.text("Text"))
    }

    /// Local name of the element inside detail / env:Detail.
    pub fn detail_element(&self) -> Option<String> {
        let mut reader = NsReader::from_str(&self.body);
        let mut in_detail = false;
        loop {
            match reader.read_resolved_event() {
                Ok((_, Event::Start(e))) | Ok((_, Event::Empty(e))) => {
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    if in_detail {
                        return Some(local);
                    }
                    if local == "detail" || local == "Detail" {
                        in_detail = true;
                    }
                }
                Ok((_, Event::Eof)) | Err(_) => return None,
                _ => {}
            }
        }
    }
}

/// Texts of elements named `local` in `xml` (any namespace).
pub fn element_texts(xml: &str, local: &str) -> Vec<String> {
    let mut reader = NsReader::from_str(xml);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                current = (e.local_name().as_ref() == local.as_bytes()).then(String::new);
            }
            Ok(Event::Text(t)) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t.xml10_content().unwrap_or_default());
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(c) = current.as_mut() {
                    let s = match &*r {
                        b"lt" => "<".to_string(),
                        b"gt" => ">".to_string(),
                        b"amp" => "&".to_string(),
                        b"apos" => "'".to_string(),
                        b"quot" => "\"".to_string(),
                        _ => r
                            .resolve_char_ref()
                            .ok()
                            .flatten()
                            .map(String::from)
                            .unwrap_or_default(),
                    };
                    c.push_str(&s);
                }
            }
            Ok(Event::End(_)) => {
                if let Some(c) = current.take() {
                    out.push(c);
                }
            }
            Ok(Event::Eof) | Err(_) => return out,
            _ => {}
        }
    }
}

/// A running service with its own database.
pub struct TestApp {
    pub port: u16,
    pub endpoint: String,
    pub client: reqwest::blocking::Client,
    settings: Settings,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
    /// Last, so that it is dropped after the server has stopped.
    db: TestDb,
}

/// Starts the server over `store` on its own thread; returns its port and handles.
fn start_server(
    settings: &Settings,
    store: soap_passwd::store::Store,
) -> (u16, actix_web::dev::ServerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let settings = settings.clone();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build_with_store(&settings, store).expect("build app");
            tx.send((app.port(), app.handle())).expect("report port");
            app.run_until_stopped().await.expect("server ran");
        })
    });
    let (port, handle) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server started");
    (port, handle, thread)
}

/// The demo directory, served with default settings.
pub fn spawn_app() -> TestApp {
    spawn_app_with(demo::DEMO_JSON, |_| {})
}

/// A service over a database provisioned from `json`, with settings adjusted by `tweak`.
pub fn spawn_app_with(json: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::fresh();
    let mut settings = Settings::new("127.0.0.1:0", db.database());
    settings.workers = 2;
    tweak(&mut settings);
    let store = open_store(&settings).expect("open store");
    provision::import_json(&store, json, settings.hash).expect("import fixture");
    let (port, handle, thread) = start_server(&settings, store);
    TestApp {
        port,
        endpoint: format!("http://127.0.0.1:{port}/soap"),
        client: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        settings,
        handle,
        thread: Some(thread),
        db,
    }
}

impl TestApp {
    /// POSTs raw bytes to /soap.
    pub fn post_raw(&self, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.client.post(&self.endpoint).body(body.into());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_reply(req.send().expect("request sent"))
    }

    /// POSTs `body` with the content type of `version`.
    pub fn post(&self, version: Soap, body: impl Into<Vec<u8>>) -> Reply {
        self.post_raw(body, &[("Content-Type", version.content_type())])
    }

    /// Sends an operation element wrapped in an envelope of `version`.
    pub fn call(&self, version: Soap, operation: &str) -> Reply {
        self.post(version, version.envelope(operation))
    }

    /// `caller` sets `user_id`'s password to `new_password` in the demo account.
    /// Sends `op` over SOAP 1.1, asserts it failed authentication, and returns how long
    /// the answer took (the timing-sameness tests compare these).
    pub fn time_failed_sign_in(&self, op: &str) -> Duration {
        let started = Instant::now();
        let reply = self.call(Soap::V11, op);
        let took = started.elapsed();
        assert_client_fault(
            &reply,
            Soap::V11,
            "Authorization failed",
            "AuthenticationFailedFault",
        );
        took
    }

    pub fn change(
        &self,
        version: Soap,
        caller: (&str, &str, &str),
        user_id: &str,
        new_password: &str,
    ) -> Reply {
        self.call(
            version,
            &request(ACCOUNT, caller.1, caller.2, user_id, new_password),
        )
    }

    pub fn get(&self, path_and_query: &str) -> Reply {
        let url = format!("http://127.0.0.1:{}{path_and_query}", self.port);
        into_reply(self.client.get(url).send().expect("request sent"))
    }

    /// The service's database, for checking what was stored.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// What `--db` takes to reach the service's database (for the CLI's commands).
    pub fn db_arg(&self) -> std::ffi::OsString {
        self.db.arg()
    }

    /// Waits until at least `at_least` audit rows match the SQL condition `condition`
    /// (failed attempts are written in batches); returns how many match.
    pub fn audit_rows_where(&self, condition: &str, at_least: i64) -> i64 {
        let sql = format!("SELECT count(*) FROM audit_log WHERE {condition}");
        self.db
            .wait_for_count(&sql, at_least, Duration::from_secs(10))
    }

    /// Waits until the audit rows matching `condition` stand for at least `at_least`
    /// calls (calls refused before authentication are counted into one row per client
    /// address, outcome and minute); returns how many they stand for.
    pub fn audit_calls_where(&self, condition: &str, at_least: i64) -> i64 {
        let sql = format!("SELECT COALESCE(sum(count), 0) FROM audit_log WHERE {condition}");
        self.db
            .wait_for_count(&sql, at_least, Duration::from_secs(10))
    }

    /// Waits until the failed-attempt audit rows (written in batches) have landed.
    pub fn audit_rows(&self, outcome: &str, at_least: i64) -> i64 {
        let outcome = outcome.replace('\'', "''");
        self.audit_rows_where(&format!("outcome = '{outcome}'"), at_least)
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same database (and settings).
    pub fn restart(&mut self) {
        self.stop();
        let store = open_store(&self.settings).expect("reopen store");
        let (port, handle, thread) = start_server(&self.settings, store);
        self.port = port;
        self.endpoint = format!("http://127.0.0.1:{port}/soap");
        self.handle = handle;
        self.thread = Some(thread);
    }

    fn stop(&mut self) {
        // Close our keep-alive connections first so the graceful stop has nothing to wait for.
        self.client = reqwest::blocking::Client::new();
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(true));
        })
        .join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn into_reply(resp: reqwest::blocking::Response) -> Reply {
    try_into_reply(resp).expect("body")
}

/// A response as a [`Reply`], or the error reading its body (a connection cut short).
pub fn try_into_reply(resp: reqwest::blocking::Response) -> reqwest::Result<Reply> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.text()?;
    Ok(Reply {
        status,
        content_type,
        headers,
        body,
    })
}

/// Asserts `reply` is a typed client fault of `version` with the given faultstring and
/// detail element; returns the reply for further checks.
#[track_caller]
pub fn assert_client_fault(reply: &Reply, version: Soap, faultstring: &str, detail: &str) {
    assert_eq!(
        reply.status,
        version.client_fault_status(),
        "status; body: {}",
        reply.body
    );
    let expected_code = match version {
        Soap::V11 => "SOAP-ENV:Client",
        Soap::V12 => "env:Sender",
    };
    assert_eq!(
        reply.fault_code().as_deref(),
        Some(expected_code),
        "{}",
        reply.body
    );
    assert_eq!(
        reply.fault_string().as_deref(),
        Some(faultstring),
        "{}",
        reply.body
    );
    assert_eq!(
        reply.detail_element().as_deref(),
        Some(detail),
        "{}",
        reply.body
    );
    assert!(
        reply
            .content_type
            .starts_with(version.content_type().split(';').next().unwrap_or_default()),
        "content type {}",
        reply.content_type
    );
}

#[track_caller]
pub fn assert_wrong_parameters(reply: &Reply, version: Soap, parameter: &str, violations: &[&str]) {
    assert_client_fault(reply, version, "Wrong parameters", "WrongParametersFault");
    assert_eq!(reply.text("code").as_deref(), Some("WRONG_PARAMETERS"));
    assert_eq!(
        reply.text("parameter").as_deref(),
        Some(parameter),
        "{}",
        reply.body
    );
    assert_eq!(reply.texts("violation"), violations, "{}", reply.body);
}

#[track_caller]
pub fn assert_denied(reply: &Reply, version: Soap, reason: &str) {
    assert_client_fault(reply, version, "Permission denied", "PermissionDeniedFault");
    assert_eq!(reply.text("code").as_deref(), Some("PERMISSION_DENIED"));
    assert_eq!(
        reply.text("reason").as_deref(),
        Some(reason),
        "{}",
        reply.body
    );
}

/// Asserts a fault without detail (envelope-level) with the given code local name.
#[track_caller]
pub fn assert_bare_fault(reply: &Reply, version: Soap, status: u16, code_local: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let prefix = match version {
        Soap::V11 => "SOAP-ENV",
        Soap::V12 => "env",
    };
    assert_eq!(
        reply.fault_code(),
        Some(format!("{prefix}:{code_local}")),
        "{}",
        reply.body
    );
    assert_eq!(reply.detail_element(), None, "{}", reply.body);
    assert!(
        reply
            .content_type
            .starts_with(version.content_type().split(';').next().unwrap_or_default())
    );
}

// ------------------------------------------------------------------------ raw HTTP

/// An HTTP response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (head, then a `Content-Length` body) from `reader`.
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<RawResponse> {
    let mut status_line = String::new();
    if reader.read_line(&mut status_line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// ------------------------------------------------------------------------ the binary

pub use crate::harness::binary;

pub use crate::harness::Served;
