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
    let db = TestDb::fresh();
    let mut served = Served::start(db.arg(), &["--demo"], "trace");
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

    let access: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("soap_passwd::access"))
        .collect();
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
