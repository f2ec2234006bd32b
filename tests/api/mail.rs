//! The mail sender (contract §14) against an SMTP server started by the test: a small
//! one speaking the protocol over loopback (greeting, EHLO, MAIL, RCPT, DATA, QUIT), which
//! can accept, refuse recipients with 550, or not listen at all. (The interop stage runs
//! the same flow against Python's aiosmtpd and a real browser.)

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use soap_passwd::notify::MailSettings;

use crate::helpers::*;
use crate::rest::{Call, send};

/// One mail the sink accepted: the envelope's recipient and the message as sent.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    to: String,
    data: String,
}

/// An SMTP server on a loopback port, accepting every mail, or refusing every recipient.
pub(crate) struct Sink {
    pub(crate) port: u16,
    mails: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    pub(crate) fn start(port: u16, refuse: bool) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let mails: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = mails.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let _ = session(conn, refuse, &kept);
                });
            }
        });
        Sink { port, mails }
    }

    fn mails(&self) -> Vec<Received> {
        self.mails.lock().unwrap().clone()
    }

    /// Waits until `n` mails arrived (or 20 s passed); returns them.
    pub(crate) fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.mails().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.mails()
    }
}

fn session(conn: TcpStream, refuse: bool, mails: &Mutex<Vec<Received>>) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut lines = BufReader::new(conn);
    out.write_all(b"220 sink.test ESMTP\r\n")?;
    let mut to = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => out.write_all(b"250-sink.test\r\n250 8BITMIME\r\n")?,
            "HELO" | "MAIL" | "RSET" | "NOOP" => out.write_all(b"250 OK\r\n")?,
            "RCPT" if refuse => out.write_all(b"550 5.1.1 No such mailbox\r\n")?,
            "RCPT" => {
                to = line.trim_end().to_string();
                out.write_all(b"250 OK\r\n")?
            }
            "DATA" => {
                out.write_all(b"354 Go ahead\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(&line);
                }
                mails.lock().unwrap().push(Received {
                    to: to.clone(),
                    data,
                });
                out.write_all(b"250 2.0.0 Queued\r\n")?
            }
            "QUIT" => {
                out.write_all(b"221 Bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"502 Not implemented\r\n")?,
        }
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn mailing_app(port: u16) -> TestApp {
    spawn_app_with(soap_passwd::demo::DEMO_JSON, |s| {
        s.mail = Some(
            MailSettings::new(
                &format!("smtp://127.0.0.1:{port}"),
                "soap-passwd <noreply@example.test>",
                Duration::from_secs(1),
            )
            .expect("mail settings"),
        );
    })
}

fn notify_reset(app: &TestApp, user: &str) {
    let reply = send(
        app,
        Call {
            method: reqwest::Method::POST,
            path: "/api/password-resets".into(),
            basic: Some((ADMIN.1, ADMIN.2)),
            account: Some(ACCOUNT),
            body: Some(json!({"userIds": [user]})),
        },
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
}

fn unacknowledged(app: &TestApp) -> i64 {
    app.db()
        .query_row(
            "SELECT count(*) FROM events WHERE acked_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn each_event_is_mailed_to_its_user_and_acknowledged_once_accepted() {
    let sink = Sink::start(0, false);
    let app = mailing_app(sink.port);
    notify_reset(&app, LEARNER.0);
    assert!(app.change(Soap::V11, ADMIN, TRAINER.0, STRONG).is_success());
    let mails = sink.wait_for(2);
    assert_eq!(mails.len(), 2, "{mails:?}");
    let reset = mails
        .iter()
        .find(|m| m.to.contains(LEARNER.1))
        .expect("a mail to the learner");
    let link = reset
        .data
        .lines()
        .find(|l| l.starts_with(&format!("http://127.0.0.1:{}/reset/", app.port)))
        .expect("the link on a line of its own");
    assert!(reset.data.contains("Subject: Reset your password"));
    let changed = mails
        .iter()
        .find(|m| m.to.contains(TRAINER.1))
        .expect("a mail to the trainer");
    assert!(changed.data.contains("Subject: Your password was changed"));
    assert!(changed.data.contains("through the SOAP API"));
    for m in &mails {
        for secret in [STRONG, ADMIN.2, LEARNER.2, TRAINER.2] {
            assert!(!m.data.contains(secret), "a password in a mail: {}", m.data);
        }
    }
    app.db().wait_for_count(
        "SELECT count(*) FROM events WHERE acked_at IS NOT NULL",
        2,
        Duration::from_secs(10),
    );
    assert_eq!(unacknowledged(&app), 0);
    // Acknowledged, the event no longer holds the link; the link itself still works.
    let held: i64 = app
        .db()
        .query_row(
            "SELECT count(*) FROM events WHERE link IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(held, 0);
    assert_eq!(
        app.get(&format!("/reset/{}", link.rsplit('/').next().unwrap()))
            .status,
        200
    );
    // Sent once: nothing more arrives.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.mails().len(), 2);
}

#[test]
fn with_the_smtp_server_away_events_wait_and_are_sent_once_it_is_back() {
    let port = free_port();
    let mut app = mailing_app(port);
    notify_reset(&app, LEARNER.0);
    assert!(app.change(Soap::V11, ADMIN, TRAINER.0, STRONG).is_success());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(unacknowledged(&app), 2, "acknowledged without a server");
    let tried: i64 = app
        .db()
        .query_row("SELECT max(mail_attempts) FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(tried >= 1, "no attempt was made");
    // A restart while it is away loses nothing.
    app.restart();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(unacknowledged(&app), 2);
    let sink = Sink::start(port, false);
    let mails = sink.wait_for(2);
    assert_eq!(mails.len(), 2, "{mails:?}");
    app.db().wait_for_count(
        "SELECT count(*) FROM events WHERE acked_at IS NOT NULL",
        2,
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.mails().len(), 2, "a mail was sent twice");
}

#[test]
fn a_refused_mail_stays_unacknowledged_and_is_retried_later() {
    let sink = Sink::start(0, true);
    let app = mailing_app(sink.port);
    notify_reset(&app, LEARNER.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (attempts, next_at) = loop {
        let (attempts, next_at): (i64, Option<i64>) = app
            .db()
            .query_row(
                "SELECT mail_attempts, mail_next_at FROM events WHERE kind = 'password_reset_requested'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        if attempts > 0 || Instant::now() > deadline {
            break (attempts, next_at);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(attempts, 1, "refused once, then left for later");
    assert_eq!(unacknowledged(&app), 1);
    // Not hammered: the next attempt is a minute away (a refusal is not an outage).
    let wait = next_at.unwrap() - chrono::Utc::now().timestamp_millis();
    assert!(wait > 50_000, "retried in {wait} ms");
    assert!(sink.mails().is_empty());
}
