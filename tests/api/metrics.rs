//! Contract §16: `GET /metrics` in the Prometheus text format. The real binary is run
//! (the counters are the process's), calls of every kind are made, and the scrape must
//! show each of them moving — calls by front door, operation and outcome, their latency,
//! lockouts, mails, outstanding reset links, the argon2 pool — with no label that holds
//! a user id, an e-mail or anything else a call sent. Where `SOAP_PASSWD_TEST_PYTHON`
//! names a Python with prometheus_client (`.ci/test` sets it), its OpenMetrics and classic
//! parsers read the text too and must find exactly the samples read here.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Log, Served, binary};
use crate::helpers::*;
use crate::mail::Sink;

/// A sample: its name and sorted labels.
type Key = (String, Vec<(String, String)>);

/// Reads the samples of an OpenMetrics/Prometheus text: `name{l="v",…} value`.
fn parse(text: &str) -> BTreeMap<Key, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let mut labels = Vec::new();
                let mut rest = rest.strip_suffix('}').expect("closing brace");
                while !rest.is_empty() {
                    let (label, after) = rest.split_once("=\"").expect("label=\"");
                    let end = after.find('"').expect("closing quote (no escapes here)");
                    labels.push((label.to_string(), after[..end].to_string()));
                    rest = after[end + 1..].trim_start_matches(',');
                }
                labels.sort();
                (name.to_string(), labels)
            }
        };
        assert!(
            samples.insert((name, labels), value).is_none(),
            "a sample twice: {line}"
        );
    }
    samples
}

/// The same samples as read by prometheus_client, when a Python with it is named.
fn python_parse(text: &str) -> Option<BTreeMap<Key, f64>> {
    let python = std::env::var("SOAP_PASSWD_TEST_PYTHON").ok()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/metrics_parse.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run metrics_parse.py");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the text");
    let out = child.wait_with_output().expect("metrics_parse.py");
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let mut labels: Vec<(String, String)> = v["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        labels.sort();
        let name = v["name"].as_str().expect("name").to_string();
        let value = v["value"].as_str().expect("value");
        samples.insert((name, labels), value.parse().expect("a number"));
    }
    Some(samples)
}

fn scrape(client: &reqwest::blocking::Client, url: &str) -> BTreeMap<Key, f64> {
    let reply = client.get(url).send().expect("scrape");
    assert_eq!(reply.status(), 200);
    let content_type = reply
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = reply.text().expect("text");
    assert!(text.ends_with("# EOF\n"));
    let samples = parse(&text);
    if let Some(theirs) = python_parse(&text) {
        assert_eq!(theirs, samples, "prometheus_client reads other samples");
    }
    samples
}

fn value(samples: &BTreeMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    samples
        .get(&(name.to_string(), labels.clone()))
        .copied()
        .unwrap_or(0.0)
}

fn soap_change(caller: (&str, &str, &str), target: &str, password: &str) -> String {
    Soap::V11.envelope(&format!(
        "<UpdateUserPasswordRequest xmlns=\"{API_NS}\"><credentials><accountUrl>{ACCOUNT}</accountUrl>\
         <email>{}</email><password>{}</password></credentials>\
         <userId>{target}</userId><password>{password}</password></UpdateUserPasswordRequest>",
        caller.1,
        esc(caller.2)
    ))
}

#[test]
fn the_counters_move_with_the_calls_and_no_label_names_a_user() {
    let db = TestDb::fresh();
    let sink = Sink::start(0, false);
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--demo", "--bind", "127.0.0.1:0", "--db"])
        .arg(db.arg())
        .args(["--lockout-threshold", "2"])
        .args(["--smtp-url", &format!("smtp://127.0.0.1:{}", sink.port)])
        .args(["--smtp-from", "noreply@example.test"])
        .env("RUST_LOG", "warn");
    let served = Served::spawn(cmd, Log::Captured, "metrics").unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{}", served.addr);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let before = scrape(&client, &format!("{base}/metrics"));
    let calls = "soap_passwd_calls_total";
    let ok = [
        ("front_door", "soap"),
        ("operation", "UpdateUserPassword"),
        ("outcome", "OK"),
    ];
    assert_eq!(value(&before, calls, &ok), 0.0);
    assert!(value(&before, "soap_passwd_hash_slots", &[]) >= 2.0);
    assert_eq!(value(&before, "soap_passwd_hash_slots_in_use", &[]), 0.0);
    assert_eq!(
        value(&before, "soap_passwd_reset_links_outstanding", &[]),
        0.0
    );
    assert_eq!(
        value(
            &before,
            "soap_passwd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let post_soap = |body: String| {
        client
            .post(format!("{base}/soap"))
            .header("Content-Type", Soap::V11.content_type())
            .body(body)
            .send()
            .expect("SOAP call")
            .status()
            .as_u16()
    };
    // One change, two wrong passwords of one pair (the second starts its lock), one
    // message that is not XML.
    assert_eq!(
        post_soap(soap_change(SALES_ADMIN, LEARNER.0, "Metrics-Pass-8831")),
        200
    );
    let wrong = (SALES_ADMIN.0, SALES_ADMIN.1, "not-the-password");
    for _ in 0..2 {
        assert_eq!(
            post_soap(soap_change(wrong, LEARNER.0, "Metrics-Pass-8832")),
            500
        );
    }
    assert_eq!(post_soap("this is not xml".into()), 500);
    // REST: two links returned, one mailed.
    let resets = |body: serde_json::Value| {
        client
            .post(format!("{base}/api/password-resets"))
            .basic_auth(ADMIN.1, Some(ADMIN.2))
            .header("X-Account-Url", ACCOUNT)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .expect("REST call")
            .status()
            .as_u16()
    };
    assert_eq!(
        resets(json!({"userIds": [ENGINEER.0, LEARNER2.0], "delivery": "return"})),
        200
    );
    assert_eq!(resets(json!({"userIds": [TRAINER.0]})), 200);
    // Mailed: the change's notice to u-learner and the link to u-trainer (links
    // returned are not mailed).
    assert_eq!(sink.wait_for(2).len(), 2, "the two events were not mailed");

    // The mail counter moves once the server has answered 250 (just after the sink
    // kept the mail).
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = scrape(&client, &format!("{base}/metrics"));
        if value(&after, "soap_passwd_mails_sent_total", &[]) >= 2.0 || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(value(&after, calls, &ok), 1.0);
    let failed = [
        ("front_door", "soap"),
        ("operation", "UpdateUserPassword"),
        ("outcome", "AUTHENTICATION_FAILED"),
    ];
    assert_eq!(value(&after, calls, &failed), 2.0);
    assert_eq!(
        value(
            &after,
            calls,
            &[
                ("front_door", "soap"),
                ("operation", "-"),
                ("outcome", "NOT_XML")
            ]
        ),
        1.0
    );
    let rest_ok = [
        ("front_door", "rest"),
        ("operation", "ResetUserPasswords"),
        ("outcome", "OK"),
    ];
    assert_eq!(value(&after, calls, &rest_ok), 2.0, "{after:?}");
    // The histogram saw each SOAP change, and its +Inf bucket is its count.
    let door = [("front_door", "soap"), ("operation", "UpdateUserPassword")];
    let count = value(&after, "soap_passwd_call_duration_seconds_count", &door);
    assert_eq!(count, 3.0);
    let mut inf = door.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(&after, "soap_passwd_call_duration_seconds_bucket", &inf),
        count
    );
    assert!(value(&after, "soap_passwd_call_duration_seconds_sum", &door) > 0.0);
    assert_eq!(
        value(&after, "soap_passwd_lockouts_total", &[("kind", "pair")]),
        1.0
    );
    assert_eq!(value(&after, "soap_passwd_mails_sent_total", &[]), 2.0);
    assert_eq!(sink.wait_for(2).len(), 2);
    // Two returned and one mailed link, none used.
    assert_eq!(
        value(&after, "soap_passwd_reset_links_outstanding", &[]),
        3.0
    );
    assert_eq!(value(&after, "soap_passwd_shed_calls_total", &[]), 0.0);
    assert_eq!(value(&after, "soap_passwd_hash_waiting", &[]), 0.0);

    // No label holds anything of a user or of what a call sent: every label is one of
    // the fixed names, and every value one the code writes.
    let users = soap_passwd::demo::DEMO_JSON;
    for (name, labels) in after.keys() {
        for (label, v) in labels {
            assert!(
                [
                    "front_door",
                    "operation",
                    "outcome",
                    "kind",
                    "le",
                    "version"
                ]
                .contains(&label.as_str()),
                "{name}: label {label}"
            );
            assert!(!v.contains('@'), "{name}: {label}={v}");
            if label != "le" && label != "version" && v != "-" {
                assert!(
                    v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{name}: {label}={v}"
                );
                assert!(!users.contains(&format!("\"{v}\"")), "{name}: {label}={v}");
            }
        }
    }
}

#[test]
fn metrics_bind_moves_metrics_off_the_api_listener() {
    let db = TestDb::fresh();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--db"])
        .arg(db.arg())
        .args(["--metrics-bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn");
    let mut served =
        Served::spawn(cmd, Log::Captured, "metrics-bind").unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::blocking::Client::new();
    let api = client
        .get(format!("http://{}/metrics", served.addr))
        .send()
        .expect("API listener");
    assert_eq!(api.status(), 404);
    // The health endpoints stay on the API's listener.
    let ready = client
        .get(format!("http://{}/health/ready", served.addr))
        .send()
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let samples = scrape(&client, &format!("http://127.0.0.1:{port}/metrics"));
    assert!(value(&samples, "soap_passwd_hash_slots", &[]) >= 1.0);
    // Only /metrics there.
    let other = client
        .get(format!("http://127.0.0.1:{port}/soap?wsdl"))
        .send()
        .expect("metrics listener");
    assert_eq!(other.status(), 404);
    let printed = served.kill();
    assert!(
        printed
            .stdout
            .contains(&format!("metrics on http://127.0.0.1:{port}/metrics")),
        "{}",
        printed.stdout
    );
}
