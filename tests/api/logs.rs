//! Contract §7: no password, hash or request body reaches the output at any log level,
//! and every call leaves exactly one access line with its identifiers. Runs the real
//! binary (`serve --demo`) with `RUST_LOG=trace` and reads what it printed.

use std::time::Duration;

use crate::helpers::*;

/// stdout without the ready-to-paste demo request, which shows the demo's published
/// sales-admin password and an envelope on purpose (contract §9).
fn without_demo_banner(stdout: &str) -> String {
    let mut kept = String::new();
    let mut in_banner = false;
    for line in stdout.lines() {
        if line == "Try it:" {
            in_banner = true;
        } else if in_banner && line == "XML" {
            in_banner = false;
            continue;
        }
        if !in_banner {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

const NEW_OK: &str = "Log-Check-New-7#Qz";
const NEW_SHORT: &str = "Sh0rt!Qz";
const WRONG_CALLER: &str = "Wrong-Caller-Pass-3#k";
const MALFORMED_NEW: &str = "Malformed-New-Pass-5%x";
const TRUNCATED_SECRET: &str = "Truncated-Secret-6y";

#[test]
fn no_secret_reaches_the_output_at_trace_level_and_each_call_has_one_access_line() {
    check_the_log(false);
}

/// Contract §16: `--log-format json` writes one JSON object per line, with the text
/// line's fields (and an access line's pairs as fields of their own), and holds no more
/// than the text line: the same secrets are looked for.
#[test]
fn json_log_lines_parse_carry_the_same_fields_and_hold_no_secret() {
    check_the_log(true);
}

fn check_the_log(json: bool) {
    let db = TestDb::fresh();
    let args: &[&str] = if json {
        &["--demo", "--log-format", "json"]
    } else {
        &["--demo"]
    };
    let mut served = Served::start(db.arg(), args, "trace");
    let endpoint = format!("http://127.0.0.1:{}/soap", served.port);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let post = |version: Soap, body: String| -> (String, u16) {
        let resp = client
            .post(&endpoint)
            .header("Content-Type", version.content_type())
            .body(body)
            .send()
            .expect("request sent");
        let id = resp
            .headers()
            .get("x-request-id")
            .expect("X-Request-Id")
            .to_str()
            .unwrap()
            .to_string();
        (id, resp.status().as_u16())
    };

    let calls = [
        (
            post(Soap::V11, Soap::V11.envelope(&request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, NEW_OK))),
            "op=UpdateUserPassword outcome=OK",
            r#"caller="u-admin" target="u-learner""#,
        ),
        (
            post(Soap::V12, Soap::V12.envelope(&request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, NEW_SHORT))),
            "op=UpdateUserPassword outcome=WRONG_PARAMETERS",
            r#"caller="u-admin" target="u-learner""#,
        ),
        (
            post(Soap::V11, Soap::V11.envelope(&request(ACCOUNT, ADMIN.1, WRONG_CALLER, LEARNER.0, NEW_OK))),
            "op=UpdateUserPassword outcome=AUTHENTICATION_FAILED",
            r#"caller="-" target="u-learner""#,
        ),
        (
            // No userId.
            post(
                Soap::V11,
                Soap::V11.envelope(&format!(
                    r#"<UpdateUserPasswordRequest xmlns="{API_NS}"><credentials><accountUrl>{ACCOUNT}</accountUrl><email>{}</email><password>{}</password></credentials><password>{MALFORMED_NEW}</password></UpdateUserPasswordRequest>"#,
                    ADMIN.1, ADMIN.2
                )),
            ),
            "op=UpdateUserPassword outcome=WRONG_PARAMETERS",
            r#"account="-" caller="-" target="-""#,
        ),
        (
            // Not well-formed: cut off inside the caller's password.
            post(
                Soap::V11,
                format!(
                    r#"<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><UpdateUserPasswordRequest xmlns="{API_NS}"><credentials><email>{}</email><password>{TRUNCATED_SECRET}"#,
                    ADMIN.1
                ),
            ),
            "op=- outcome=",
            r#"account="-" caller="-" target="-""#,
        ),
    ];
    assert_eq!(calls[0].0.1, 200, "the change succeeded");
    assert!(calls[1..].iter().all(|((_, status), _, _)| *status >= 400));

    served.signal("TERM").expect("signal");
    let Printed { stdout, stderr, .. } = served.wait_for_exit(Duration::from_secs(30));
    assert!(
        stdout.contains("Try it:"),
        "the demo banner is printed: {stdout}"
    );
    let output = format!("{}\n{stderr}", without_demo_banner(&stdout));

    for secret in [
        ADMIN.2,
        NEW_OK,
        NEW_SHORT,
        WRONG_CALLER,
        MALFORMED_NEW,
        TRUNCATED_SECRET,
    ] {
        assert!(
            !output.contains(secret),
            "{secret:?} appears in the output:\n{output}"
        );
    }
    for fragment in [
        "$argon2",
        "<credentials",
        "credentials>",
        "<password",
        "accountUrl>",
        "Envelope",
    ] {
        assert!(
            !output.contains(fragment),
            "{fragment:?} appears in the output:\n{output}"
        );
    }

    // In JSON, every line is an object whose `msg` is the text line's message.
    let parsed: Vec<serde_json::Value> = if json {
        stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}"));
                for field in ["ts", "level", "target", "msg"] {
                    assert!(v[field].is_string(), "{field} missing: {l}");
                }
                v
            })
            .collect()
    } else {
        Vec::new()
    };
    let access_json: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|v| v["target"] == "soap_passwd::access")
        .collect();
    let access: Vec<&str> = if json {
        access_json
            .iter()
            .map(|v| v["msg"].as_str().unwrap_or_default())
            .collect()
    } else {
        stderr
            .lines()
            .filter(|l| l.contains("soap_passwd::access"))
            .collect()
    };
    if json {
        assert!(
            parsed.len() > access.len(),
            "only access lines were written"
        );
        for ((request_id, status), _, _) in &calls {
            let object = access_json
                .iter()
                .find(|v| v["fields"]["request_id"] == request_id.as_str())
                .unwrap_or_else(|| panic!("no access object for {request_id}"));
            assert_eq!(object["fields"]["status"], f64::from(*status), "{object}");
            assert_eq!(object["level"], "INFO", "{object}");
            assert!(object["fields"]["duration_ms"].is_number(), "{object}");
            for field in ["op", "outcome", "account", "caller", "target"] {
                assert!(
                    object["fields"].get(field).is_some(),
                    "{field} missing: {object}"
                );
            }
        }
        let success = access_json
            .iter()
            .find(|v| v["fields"]["request_id"] == calls[0].0.0.as_str())
            .unwrap();
        assert_eq!(
            (
                &success["fields"]["outcome"],
                &success["fields"]["caller"],
                &success["fields"]["target"],
                &success["fields"]["account"]
            ),
            (
                &serde_json::json!("OK"),
                &serde_json::json!("u-admin"),
                &serde_json::json!("u-learner"),
                &serde_json::json!(ACCOUNT)
            )
        );
    }
    assert_eq!(
        access.len(),
        calls.len(),
        "one access line per call:\n{}",
        access.join("\n")
    );
    for ((request_id, status), op_outcome, identities) in &calls {
        let lines: Vec<&&str> = access
            .iter()
            .filter(|l| l.contains(&format!("request_id={request_id} ")))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one access line for {request_id}:\n{}",
            access.join("\n")
        );
        let line = lines[0];
        for field in [
            "request_id=",
            "op=",
            "outcome=",
            "account=",
            "caller=",
            "target=",
            "duration_ms=",
        ] {
            assert!(line.contains(field), "{field} missing: {line}");
        }
        assert!(line.contains(op_outcome), "{op_outcome}: {line}");
        assert!(line.contains(identities), "{identities}: {line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
        let duration = line
            .split("duration_ms=")
            .nth(1)
            .and_then(|d| d.split_whitespace().next());
        assert!(
            duration.and_then(|d| d.parse::<f64>().ok()).is_some(),
            "{line}"
        );
    }
    let success = access.iter().find(|l| l.contains(&calls[0].0.0)).unwrap();
    assert!(
        success.contains(&format!("account={ACCOUNT:?}")),
        "{success}"
    );
}

/// With `--log-format json`, a command that fails ends with its one line as a JSON
/// object too (`SOAP_PASSWD_LOG_FORMAT` says the same); a bad format is refused by name.
#[test]
fn a_failure_in_json_format_is_one_json_object() {
    let out = std::process::Command::new(crate::harness::binary())
        .args([
            "import",
            "/no/such/file.json",
            "--log-format",
            "json",
            "--db",
        ])
        .arg(TestDb::fresh().arg())
        .env_remove("SOAP_PASSWD_LOG_FORMAT")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");
    assert_eq!(v["level"], "ERROR");
    assert!(
        v["msg"]
            .as_str()
            .is_some_and(|m| m.contains("cannot read /no/such/file.json")),
        "{v}"
    );
    let out = std::process::Command::new(crate::harness::binary())
        .args(["audit", "--db", "/no/such/dir/x.db"])
        .env("SOAP_PASSWD_LOG_FORMAT", "json")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        serde_json::from_str::<serde_json::Value>(stderr.trim()).is_ok(),
        "{stderr}"
    );
    let out = std::process::Command::new(crate::harness::binary())
        .args(["audit", "--log-format", "yaml"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--log-format"),
        "{stderr}"
    );
}
