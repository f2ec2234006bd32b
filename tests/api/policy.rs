//! Contract §6, rule by rule: each violation alone, several listed together in the
//! documented order, history, NFKC and untrimmed passwords, and that a refusal writes
//! nothing.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::permissions::authenticates;

/// `json` with `policy.<key>` of every account set to `value`.
pub fn with_policy(json: &str, key: &str, value: Value) -> String {
    let mut doc: Value = serde_json::from_str(json).expect("fixture is JSON");
    for account in doc["accounts"].as_array_mut().expect("accounts") {
        account["policy"][key] = value.clone();
    }
    doc.to_string()
}

fn demo_with(settings: &[(&str, Value)]) -> String {
    settings.iter().fold(
        soap_passwd::demo::DEMO_JSON.to_string(),
        |json, (key, value)| with_policy(&json, key, value.clone()),
    )
}

/// The demo with two more users whose e-mail local parts are 2 and 3 characters long.
fn demo_with_short_local_parts() -> String {
    let mut doc: Value = serde_json::from_str(soap_passwd::demo::DEMO_JSON).unwrap();
    let users = doc["accounts"][0]["users"].as_array_mut().unwrap();
    for id in ["jo", "bob"] {
        users.push(json!({
            "id": format!("u-{id}"), "email": format!("{id}@example.com"),
            "password": "Short-Local-Pass-5150", "role": "user", "department": "d-emea",
        }));
    }
    doc.to_string()
}

#[track_caller]
fn assert_violations(reply: &Reply, version: Soap, violations: &[&str]) {
    assert_wrong_parameters(reply, version, "password", violations);
}

#[track_caller]
fn assert_changed(reply: &Reply) {
    assert!(reply.is_success(), "{}", reply.body);
}

/// What a change would touch for one user: hash, change time, credential version, and
/// the number of history, event and successful audit rows.
fn footprint(app: &TestApp, user_id: &str) -> (String, String, i64, i64, i64, i64) {
    app.db()
        .query_row(
            "SELECT u.password_hash, u.password_changed_at, u.credential_version,
                    (SELECT count(*) FROM password_history h WHERE h.user_id = u.id),
                    (SELECT count(*) FROM events e WHERE e.user_id = u.id),
                    (SELECT count(*) FROM audit_log a WHERE a.target_id = u.id AND a.outcome = 'OK')
               FROM users u WHERE u.ext_id = ?1",
            [user_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .expect("user row")
}

#[test]
fn too_short_is_refused() {
    let app = spawn_app();
    for version in BOTH {
        assert_violations(
            &app.change(version, OWNER, LEARNER.0, "Zq7#Lw2!x"),
            version,
            &["TOO_SHORT"],
        );
    }
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, "Zq7#Lw2!xe"));
}

#[test]
fn too_long_is_refused_above_a_custom_maximum() {
    let app = spawn_app_with(&demo_with(&[("max_length", json!(20))]), |_| {});
    for version in BOTH {
        let reply = app.change(version, OWNER, LEARNER.0, "Mk8%Tz3^Qw6*Yp1@Ld5&A");
        assert_violations(&reply, version, &["TOO_LONG"]);
    }
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, "Mk8%Tz3^Qw6*Yp1@Ld5&"));
}

#[test]
fn same_as_current_is_refused_when_an_admin_sets_the_users_current_password() {
    let app = spawn_app();
    // The imported password.
    for version in BOTH {
        let reply = app.change(version, ADMIN, SALES_ADMIN.0, SALES_ADMIN.2);
        assert_violations(&reply, version, &["SAME_AS_CURRENT"]);
    }
    // A password set through the service.
    assert_changed(&app.change(Soap::V11, ADMIN, SALES_ADMIN.0, STRONG));
    assert_violations(
        &app.change(Soap::V11, ADMIN, SALES_ADMIN.0, STRONG),
        Soap::V11,
        &["SAME_AS_CURRENT"],
    );
}

#[test]
fn same_as_current_is_refused_when_a_user_sets_their_own_current_password() {
    let app = spawn_app();
    for version in BOTH {
        let reply = app.change(version, EMEA_ADMIN, EMEA_ADMIN.0, EMEA_ADMIN.2);
        assert_violations(&reply, version, &["SAME_AS_CURRENT"]);
    }
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, STRONG));
    let learner = (LEARNER.0, LEARNER.1, STRONG);
    assert_violations(
        &app.change(Soap::V12, learner, LEARNER.0, STRONG),
        Soap::V12,
        &["SAME_AS_CURRENT"],
    );
}

#[test]
fn contains_email_is_refused_case_insensitively_for_whole_address_and_local_part() {
    let app = spawn_app();
    for version in BOTH {
        let whole = app.change(version, OWNER, LEARNER.0, "xX-LEARNER@Example.COM-9z");
        assert_violations(&whole, version, &["CONTAINS_EMAIL"]);
        let local = app.change(version, OWNER, LEARNER.0, "Zq7!LeArNeR#x9w");
        assert_violations(&local, version, &["CONTAINS_EMAIL"]);
    }
    // The local part of sales.admin@ includes its dot.
    let reply = app.change(Soap::V11, OWNER, SALES_ADMIN.0, "Zq7!SALES.ADMIN#x9w");
    assert_violations(&reply, Soap::V11, &["CONTAINS_EMAIL"]);
}

#[test]
fn contains_email_ignores_local_parts_shorter_than_three_characters() {
    let app = spawn_app_with(&demo_with_short_local_parts(), |_| {});
    assert_changed(&app.change(Soap::V11, OWNER, "u-jo", "Zq7!jo#x9wLp2k"));
    assert!(authenticates(&app, "jo@example.com", "Zq7!jo#x9wLp2k"));
    let reply = app.change(Soap::V12, OWNER, "u-bob", "Zq7!bob#x9wLp2k");
    assert_violations(&reply, Soap::V12, &["CONTAINS_EMAIL"]);
    // The whole address still counts, however short its local part.
    let reply = app.change(Soap::V11, OWNER, "u-jo", "Zq7!JO@example.com");
    assert_violations(&reply, Soap::V11, &["CONTAINS_EMAIL"]);
}

#[test]
fn common_passwords_are_refused() {
    let app = spawn_app();
    for (i, password) in [
        "password1234",
        "qwertyuiop123",
        "iloveyou2024",
        "Password123!",
    ]
    .iter()
    .enumerate()
    {
        let version = BOTH[i % 2];
        assert_violations(
            &app.change(version, OWNER, LEARNER.0, password),
            version,
            &["TOO_COMMON"],
        );
    }
}

#[test]
fn every_violation_is_listed_in_the_documented_order() {
    let app = spawn_app();
    for version in BOTH {
        let reply = app.change(version, OWNER, LEARNER.0, "learner");
        assert_violations(
            &reply,
            version,
            &["TOO_SHORT", "CONTAINS_EMAIL", "TOO_COMMON"],
        );
    }
    // The imported password is current, contains the local part.
    let reply = app.change(Soap::V11, OWNER, LEARNER.0, LEARNER.2);
    assert_violations(&reply, Soap::V11, &["SAME_AS_CURRENT", "CONTAINS_EMAIL"]);
    // Once replaced, it is a recent one (the demo keeps 3).
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, STRONG));
    let reply = app.change(Soap::V12, OWNER, LEARNER.0, LEARNER.2);
    assert_violations(&reply, Soap::V12, &["CONTAINS_EMAIL", "REUSED"]);

    let app = spawn_app_with(
        &demo_with(&[("min_length", json!(30)), ("max_length", json!(40))]),
        |_| {},
    );
    let reply = app.change(Soap::V11, OWNER, LEARNER.0, LEARNER.2);
    assert_violations(
        &reply,
        Soap::V11,
        &["TOO_SHORT", "SAME_AS_CURRENT", "CONTAINS_EMAIL"],
    );
    let long = "Vq7#Lp2!xZr9Mw4kVq7#Lp2!xZr9Mw4k";
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, long));
    let reply = app.change(Soap::V11, OWNER, LEARNER.0, LEARNER.2);
    assert_violations(
        &reply,
        Soap::V11,
        &["TOO_SHORT", "CONTAINS_EMAIL", "REUSED"],
    );
    let reply = app.change(Soap::V12, OWNER, LEARNER.0, &"learner1".repeat(6));
    assert_violations(
        &reply,
        Soap::V12,
        &["TOO_LONG", "CONTAINS_EMAIL", "TOO_COMMON"],
    );
}

#[test]
fn history_refuses_the_last_n_passwords_and_accepts_older_ones() {
    let app = spawn_app();
    // The demo's policy keeps 3: after four changes the imported password has dropped out.
    let passwords: Vec<String> = (1..=4).map(|i| format!("{STRONG}-{i}")).collect();
    for (i, password) in passwords.iter().enumerate() {
        assert_changed(&app.change(BOTH[i % 2], ADMIN, SALES_ADMIN.0, password));
    }
    assert_violations(
        &app.change(Soap::V11, ADMIN, SALES_ADMIN.0, &passwords[3]),
        Soap::V11,
        &["SAME_AS_CURRENT"],
    );
    for (i, password) in passwords[..3].iter().enumerate() {
        let version = BOTH[i % 2];
        assert_violations(
            &app.change(version, ADMIN, SALES_ADMIN.0, password),
            version,
            &["REUSED"],
        );
    }
    assert_changed(&app.change(Soap::V12, ADMIN, SALES_ADMIN.0, SALES_ADMIN.2));
    assert!(authenticates(&app, SALES_ADMIN.1, SALES_ADMIN.2));
}

#[test]
fn the_imported_password_counts_as_one_the_user_had() {
    let app = spawn_app();
    assert_changed(&app.change(Soap::V11, ADMIN, EMEA_ADMIN.0, STRONG));
    let reply = app.change(Soap::V11, ADMIN, EMEA_ADMIN.0, EMEA_ADMIN.2);
    assert_violations(&reply, Soap::V11, &["REUSED"]);
    // The user's own change goes through the same check.
    let emea = (EMEA_ADMIN.0, EMEA_ADMIN.1, STRONG);
    let reply = app.change(Soap::V12, emea, EMEA_ADMIN.0, EMEA_ADMIN.2);
    assert_violations(&reply, Soap::V12, &["REUSED"]);
}

#[test]
fn without_history_a_previous_password_may_be_set_again() {
    let app = spawn_app_with(&demo_with(&[("history", json!(0))]), |_| {});
    assert_changed(&app.change(Soap::V11, ADMIN, EMEA_ADMIN.0, STRONG));
    assert_changed(&app.change(Soap::V11, ADMIN, EMEA_ADMIN.0, EMEA_ADMIN.2));
}

#[test]
fn lengths_are_counted_in_code_points_after_nfkc() {
    let app = spawn_app();
    // Nine fullwidth characters are 27 bytes but nine code points, fullwidth or not.
    let reply = app.change(Soap::V11, OWNER, LEARNER.0, "Ｚｑ７＃Ｌｗ２！ｘ");
    assert_violations(&reply, Soap::V11, &["TOO_SHORT"]);
    assert_changed(&app.change(Soap::V12, OWNER, LEARNER.0, "Ｚｑ７＃Ｌｗ２！ｘｅ"));
    // Three decomposed é are six code points as sent, three after NFKC: 9 in all.
    let reply = app.change(
        Soap::V12,
        OWNER,
        LEARNER.0,
        "Zq7#Lwe\u{301}e\u{301}e\u{301}",
    );
    assert_violations(&reply, Soap::V12, &["TOO_SHORT"]);
    // The "ﬁ" ligature is one code point as sent, two after NFKC: 10 in all.
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, "Vq7#Lp2!\u{FB01}"));

    let app = spawn_app_with(&demo_with(&[("max_length", json!(20))]), |_| {});
    let reply = app.change(Soap::V11, OWNER, LEARNER.0, "Mk8%Tz3^Qw6*Yp1@Ld5\u{FB01}");
    assert_violations(&reply, Soap::V11, &["TOO_LONG"]);
}

#[test]
fn a_password_set_in_one_unicode_form_authenticates_in_another() {
    let app = spawn_app();
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, "Vq7#Lp2!\u{FB01}-Caf\u{E9}"));
    assert!(authenticates(&app, LEARNER.1, "Vq7#Lp2!fi-Cafe\u{301}"));
    assert!(authenticates(&app, LEARNER.1, "Vq7#Lp2!\u{FB01}-Caf\u{E9}"));
    let reply = app.change(Soap::V12, OWNER, LEARNER.0, "Vq7#Lp2!fi-Cafe\u{301}");
    assert_violations(&reply, Soap::V12, &["SAME_AS_CURRENT"]);

    assert_changed(&app.change(Soap::V12, OWNER, LEARNER.0, "Ｚｑ７＃Ｌｗ２！ｘｅ"));
    assert!(authenticates(&app, LEARNER.1, "Zq7#Lw2!xe"));
}

#[test]
fn passwords_are_not_trimmed() {
    let app = spawn_app();
    let padded = format!("  {STRONG} ");
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, &padded));
    assert!(authenticates(&app, LEARNER.1, &padded));
    assert!(!authenticates(&app, LEARNER.1, STRONG));
    // The spaces count towards the length: nine characters plus one space are enough.
    assert_violations(
        &app.change(Soap::V12, OWNER, LEARNER.0, "Zq7#Lw2!x"),
        Soap::V12,
        &["TOO_SHORT"],
    );
    assert_changed(&app.change(Soap::V12, OWNER, LEARNER.0, "Zq7#Lw2!x "));
    assert!(authenticates(&app, LEARNER.1, "Zq7#Lw2!x "));
}

#[test]
fn email_and_common_checks_can_be_turned_off() {
    let json = demo_with(&[
        ("forbid_email", json!(false)),
        ("forbid_common", json!(false)),
    ]);
    let app = spawn_app_with(&json, |_| {});
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, "password1234"));
    assert_changed(&app.change(Soap::V12, OWNER, LEARNER.0, "learner@example.com!"));
    assert!(authenticates(&app, LEARNER.1, "learner@example.com!"));
    assert_violations(
        &app.change(Soap::V11, OWNER, LEARNER.0, "learner"),
        Soap::V11,
        &["TOO_SHORT"],
    );
}

#[test]
fn a_policy_refusal_changes_nothing() {
    let app = spawn_app();
    assert_changed(&app.change(Soap::V11, OWNER, LEARNER.0, STRONG));
    let before = footprint(&app, LEARNER.0);
    assert_eq!(before.2, 2);
    for (i, password) in ["learner", LEARNER.2, STRONG, "password1234"]
        .iter()
        .enumerate()
    {
        let reply = app.change(BOTH[i % 2], OWNER, LEARNER.0, password);
        assert_client_fault(
            &reply,
            BOTH[i % 2],
            "Wrong parameters",
            "WrongParametersFault",
        );
    }
    let learner = (LEARNER.0, LEARNER.1, STRONG);
    assert_violations(
        &app.change(Soap::V11, learner, LEARNER.0, "learner"),
        Soap::V11,
        &["TOO_SHORT", "CONTAINS_EMAIL", "TOO_COMMON"],
    );
    assert_eq!(footprint(&app, LEARNER.0), before);
    assert!(authenticates(&app, LEARNER.1, STRONG));
    // Each refusal is audited, with the rules it broke.
    assert_eq!(app.audit_rows("WRONG_PARAMETERS", 5), 5);
    let detail: String = app
        .db()
        .query_row(
            "SELECT detail FROM audit_log WHERE outcome = 'WRONG_PARAMETERS' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(detail, "password:TOO_SHORT,CONTAINS_EMAIL,TOO_COMMON");
}
