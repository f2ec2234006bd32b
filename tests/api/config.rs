//! Contract §16: `serve --config FILE` (TOML), every flag a key, with flags over
//! `SOAP_PASSWD_*` variables over the file over the defaults; an unknown key or a bad
//! value is one line naming it and a non-zero exit. Runs the real binary.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Log, Served, binary};
use crate::helpers::*;

/// `soap-passwd serve --bind 127.0.0.1:0 --db DB ARGS…` with exactly the `SOAP_PASSWD_*`
/// variables in `env`.
fn serve_command(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--db"])
        .arg(db.arg())
        .args(args)
        .env("RUST_LOG", "info");
    for (key, _) in std::env::vars() {
        if key.starts_with("SOAP_PASSWD_") {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

fn write_config(db: &TestDb, name: &str, toml: &str) -> String {
    let path = db.dir().join(name);
    std::fs::write(&path, toml).expect("write config");
    path.to_string_lossy().into_owned()
}

/// The endpoint the served WSDL publishes.
fn published_address(served: &Served) -> String {
    let wsdl = reqwest::blocking::get(format!("{}?wsdl", served.endpoint()))
        .and_then(|r| r.text())
        .expect("WSDL");
    let at = wsdl.find("location=\"").expect("soap:address") + "location=\"".len();
    wsdl[at..at + wsdl[at..].find('"').expect("closing quote")].to_string()
}

const FILE: &str = r#"
# Every kind of value: a string, a number, a boolean, a list, a global flag.
public_url = "https://file.example/soap"
lockout-threshold = 3
demo = true
trusted_proxy = ["10.0.0.0/8", "192.0.2.0/24"]
log_format = "json"
"#;

#[test]
fn the_file_is_under_the_environment_which_is_under_the_flags() {
    let db = TestDb::fresh();
    let config = write_config(&db, "soap-passwd.toml", FILE);
    let start = |args: &[&str], env: &[(&str, &str)]| {
        Served::spawn(serve_command(&db, args, env), Log::Captured, "config")
            .unwrap_or_else(|e| panic!("{e}"))
    };

    // The file alone: its values are taken.
    let mut served = start(&["--config", &config], &[]);
    assert_eq!(published_address(&served), "https://file.example/soap");
    // lockout_threshold = 3: the third failure locks the pair (the demo was loaded).
    let http = reqwest::blocking::Client::new();
    let sign_in = |password: &str| {
        let body = Soap::V11.envelope(&request(ACCOUNT, OWNER.1, password, LEARNER.0, STRONG));
        http.post(served.endpoint())
            .header("Content-Type", Soap::V11.content_type())
            .body(body)
            .send()
            .and_then(|r| r.text())
            .expect("answer")
    };
    for _ in 0..3 {
        assert!(sign_in("Wrong-Password-123").contains("AuthenticationFailedFault"));
    }
    assert!(
        sign_in(OWNER.2).contains("AuthenticationFailedFault"),
        "not locked after 3 failures: the file's lockout_threshold was not taken"
    );
    let printed = served.kill();
    // log_format = "json": the log is JSON, and says where the settings came from.
    let first = printed.stderr.lines().next().unwrap_or_default();
    let line: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {}", printed.stderr));
    assert!(
        printed.stderr.contains("settings read from"),
        "{}",
        printed.stderr
    );
    assert!(line["msg"].is_string());

    // A variable beats the file.
    let mut served = start(
        &["--config", &config],
        &[("SOAP_PASSWD_PUBLIC_URL", "https://env.example/soap")],
    );
    assert_eq!(published_address(&served), "https://env.example/soap");
    served.kill();

    // A flag beats both; the file is also found through SOAP_PASSWD_CONFIG.
    let mut served = start(
        &["--public-url", "https://flag.example/soap"],
        &[
            ("SOAP_PASSWD_PUBLIC_URL", "https://env.example/soap"),
            ("SOAP_PASSWD_CONFIG", &config),
        ],
    );
    assert_eq!(published_address(&served), "https://flag.example/soap");
    served.kill();
}

#[test]
fn an_unknown_key_or_a_bad_value_is_one_line_naming_it() {
    let db = TestDb::fresh();
    for (toml, expected) in [
        ("lockout_treshold = 3", "unknown key \"lockout_treshold\""),
        ("config = \"other.toml\"", "unknown key \"config\""),
        (
            "lockout_threshold = 0",
            "lockout_threshold: invalid value '0'",
        ),
        (
            "lockout_threshold = \"many\"",
            "lockout_threshold: invalid value 'many'",
        ),
        (
            "public_url = \"ftp://x\"",
            "public_url: invalid value 'ftp://x'",
        ),
        ("demo = \"yes\"", "demo: expected true or false"),
        (
            "hash_wait = { ms = 3 }",
            "hash_wait: expected a string, a number or a boolean",
        ),
        (
            "trusted_proxy = [\"not a network\"]",
            "trusted_proxy: invalid value",
        ),
        ("log_format = \"yaml\"", "log_format: invalid value 'yaml'"),
        ("bind = ", "config "),
    ] {
        let config = write_config(&db, "bad.toml", toml);
        let out = serve_command(&db, &["--config", &config], &[])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}: started");
        assert_eq!(stderr.lines().count(), 1, "{toml}: {stderr}");
        assert!(stderr.contains(expected), "{toml}: {stderr}");
        assert!(stderr.contains("bad.toml"), "{toml}: {stderr}");
    }
    let out = serve_command(&db, &["--config", "/no/such/file.toml"], &[])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot read config /no/such/file.toml"),
        "{stderr}"
    );
}

/// The commented example in the repository parses and starts a service (its database
/// path and address overridden by flags, which win).
#[test]
fn the_example_config_starts_the_service() {
    let db = TestDb::fresh();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/soap-passwd.toml");
    let mut served = Served::spawn(
        serve_command(&db, &["--config", example, "--demo"], &[]),
        Log::Captured,
        "example",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let health =
        reqwest::blocking::get(format!("http://{}/health/ready", served.addr)).expect("ready");
    assert_eq!(health.status(), 200);
    served.signal("TERM").expect("signal");
    let printed = served.wait_for_exit(Duration::from_secs(30));
    assert!(
        printed.status.is_some_and(|s| s.success()),
        "{}",
        printed.stderr
    );
    assert!(
        printed.stderr.contains("settings read from"),
        "{}",
        printed.stderr
    );
}
