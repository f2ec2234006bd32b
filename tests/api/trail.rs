//! `soap-passwd audit` and `soap-passwd events` on a database the service wrote.

use std::process::Command;

use crate::helpers::*;

fn run(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_soap-passwd"))
        .args(args)
        .arg("--db")
        .arg(app.db_arg())
        .output()
        .expect("run soap-passwd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect()
}

#[test]
fn audit_prints_every_attempt_in_text_and_json_with_filters() {
    let app = spawn_app();
    assert!(
        app.change(Soap::V11, SALES_ADMIN, LEARNER.0, STRONG)
            .is_success()
    );
    app.change(Soap::V11, SALES_ADMIN, ENGINEER.0, STRONG);
    app.change(
        Soap::V11,
        (OWNER.0, OWNER.1, "Wrong-Pass-0000-x"),
        LEARNER.0,
        STRONG,
    );
    assert_eq!(app.audit_rows_where("outcome <> 'OK'", 2), 2);

    let (ok, text, _) = run(&app, &["audit"]);
    assert!(ok);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("OK")
            && text.contains("PERMISSION_DENIED")
            && text.contains("AUTHENTICATION_FAILED")
    );

    let (ok, json, _) = run(&app, &["audit", "--json"]);
    assert!(ok);
    let rows = json_lines(&json);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["outcome"], "OK");
    assert_eq!(rows[0]["caller_id"], "u-sales-admin");
    assert_eq!(rows[0]["target_id"], "u-learner");
    assert_eq!(rows[0]["account"], ACCOUNT);
    assert_eq!(rows[1]["detail"], "NOT_IN_SCOPE");

    let (_, by_user, _) = run(&app, &["audit", "--json", "--user", "u-engineer"]);
    assert_eq!(json_lines(&by_user).len(), 1);
    let (_, by_account, _) = run(
        &app,
        &[
            "audit",
            "--json",
            "--account",
            "HTTPS://MyAccount.ispringlearn.com/",
        ],
    );
    assert_eq!(json_lines(&by_account).len(), 3);
    let (_, other_account, _) = run(
        &app,
        &["audit", "--json", "--account", "http://other.example.com"],
    );
    assert_eq!(json_lines(&other_account).len(), 0);
    let (_, future, _) = run(&app, &["audit", "--json", "--since", "2999-01-01"]);
    assert_eq!(json_lines(&future).len(), 0);
    let (_, past, _) = run(
        &app,
        &["audit", "--json", "--since", "2000-01-01T00:00:00Z"],
    );
    assert_eq!(json_lines(&past).len(), 3);
    let (ok, _, err) = run(&app, &["audit", "--since", "yesterday"]);
    assert!(!ok && err.lines().count() == 1, "{err}");
    // The trail holds no secret.
    for secret in [STRONG, SALES_ADMIN.2, "Wrong-Pass-0000-x", "$argon2"] {
        assert!(!json.contains(secret) && !text.contains(secret));
    }
}

#[test]
fn events_lists_password_changes_for_a_notifier_until_acknowledged() {
    let app = spawn_app();
    assert!(
        app.change(Soap::V11, SALES_ADMIN, LEARNER.0, STRONG)
            .is_success()
    );
    assert!(
        app.change(Soap::V12, ADMIN, LEARNER2.0, STRONG)
            .is_success()
    );
    app.change(Soap::V11, SALES_ADMIN, ENGINEER.0, STRONG); // refused: no event

    let (ok, json, _) = run(&app, &["events", "--json"]);
    assert!(ok);
    let events = json_lines(&json);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "password_changed");
    assert_eq!(events[0]["user_id"], "u-learner");
    assert_eq!(events[0]["email"], "learner@example.com");
    assert_eq!(events[0]["credential_version"], 2);
    assert_eq!(events[0]["account"], ACCOUNT);
    let first = events[0]["id"].as_i64().expect("id");

    let (_, text, _) = run(&app, &["events"]);
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("user=u-learner2"));

    let (_, after, _) = run(&app, &["events", "--json", "--after", &first.to_string()]);
    assert_eq!(json_lines(&after).len(), 1);

    // `--ack ID` (every event up to ID) only where ids commit in order: on PostgreSQL a
    // lower id can commit after a higher one was listed, so it is refused there.
    let (ok, _, err) = run(&app, &["events", "--ack", &first.to_string()]);
    if app.db().is_postgres() {
        assert!(!ok);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("--ack-only"), "{err}");
        let (_, left, _) = run(&app, &["events", "--json"]);
        assert_eq!(json_lines(&left).len(), 2, "--ack acknowledged something");
        let (ok, _, err) = run(&app, &["events", "--ack-only", &first.to_string()]);
        assert!(ok, "{err}");
    } else {
        assert!(ok, "{err}");
    }
    let (_, left, _) = run(&app, &["events", "--json"]);
    let left = json_lines(&left);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["user_id"], "u-learner2");
}

/// `--ack-only` acknowledges exactly the events named, whatever lies between them, on
/// either backend; one already acknowledged or unknown counts as nothing.
#[test]
fn ack_only_acknowledges_exactly_the_events_named() {
    let app = spawn_app();
    for user in [LEARNER.0, LEARNER2.0, ENGINEER.0] {
        assert!(app.change(Soap::V11, ADMIN, user, STRONG).is_success());
    }
    let (_, json, _) = run(&app, &["events", "--json"]);
    let ids: Vec<i64> = json_lines(&json)
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3);
    let named = format!("{},{},999999", ids[0], ids[2]);
    let (ok, _, err) = run(&app, &["events", "--ack-only", &named]);
    assert!(ok, "{err}");
    assert!(
        err.contains("acknowledged 2 of the 3 events named"),
        "{err}"
    );
    let (_, left, _) = run(&app, &["events", "--json"]);
    let left = json_lines(&left);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], ids[1]);
    let (ok, _, err) = run(&app, &["events", "--ack-only", &ids[0].to_string()]);
    assert!(ok && err.contains("acknowledged 0 of the 1"), "{err}");
    let (ok, _, err) = run(&app, &["events", "--ack-only", "x"]);
    assert!(!ok && err.lines().count() == 1, "{err}");
}

#[test]
fn the_trail_commands_refuse_a_missing_database_in_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_soap-passwd"))
        .args(["events", "--db", "/nonexistent/soap-passwd.db"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `soap-passwd audit | head -1`: a reader that closes the pipe early ends the listing
/// quietly with exit 0 (a plain `println!` panics on the closed pipe, exit 101 and a
/// panic message on stderr).
#[test]
fn a_reader_closing_the_pipe_early_is_no_error() {
    let app = spawn_app();
    assert!(
        app.change(Soap::V11, SALES_ADMIN, LEARNER.0, STRONG)
            .is_success()
    );
    for _ in 0..3 {
        app.change(Soap::V11, SALES_ADMIN, ENGINEER.0, STRONG);
    }
    assert_eq!(app.audit_rows("PERMISSION_DENIED", 3), 3);
    for command in ["audit", "events"] {
        for format in [None, Some("--json")] {
            let mut child = Command::new(env!("CARGO_BIN_EXE_soap-passwd"))
                .arg(command)
                .args(format)
                .arg("--db")
                .arg(app.db_arg())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run soap-passwd");
            // Close the reading end before the command has written anything.
            drop(child.stdout.take());
            let out = child.wait_with_output().expect("wait");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !stderr.contains("panicked"),
                "{command} {format:?}: {:?}\n{stderr}",
                out.status
            );
        }
    }
}
