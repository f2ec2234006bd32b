//! `GetUserPasswordStatus` (contract §11.3).

use soap_passwd::demo::DEMO_JSON;

use crate::batch::credential_version;
use crate::helpers::*;

/// A `GetUserPasswordStatusRequest` by `caller` about `user_id`.
pub fn status_request(caller: (&str, &str, &str), user_id: &str) -> String {
    format!(
        r#"<GetUserPasswordStatusRequest xmlns="{API_NS}"><credentials><accountUrl>{ACCOUNT}</accountUrl><email>{}</email><password>{}</password></credentials><userId>{}</userId></GetUserPasswordStatusRequest>"#,
        esc(caller.1),
        esc(caller.2),
        esc(user_id)
    )
}

/// An `xs:dateTime` in UTC to the second: `YYYY-MM-DDThh:mm:ssZ`.
fn is_utc_seconds(t: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.len() == 20 && t.ends_with('Z')
}

#[test]
fn an_admin_reads_a_status_whose_fields_follow_a_change() {
    for v in BOTH {
        let app = spawn_app();
        let reply = app.call(v, &status_request(ADMIN, LEARNER.0));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.contains("GetUserPasswordStatusResult"),
            "{}",
            reply.body
        );
        assert_eq!(reply.text("userId").as_deref(), Some(LEARNER.0));
        assert_eq!(reply.text("status").as_deref(), Some("active"));
        assert_eq!(reply.text("externallyManaged").as_deref(), Some("false"));
        assert_eq!(reply.text("temporary").as_deref(), Some("false"));
        assert_eq!(reply.text("credentialVersion").as_deref(), Some("1"));
        assert_eq!(reply.text("resetPending").as_deref(), Some("false"));
        assert_eq!(reply.text("lockedUntil"), None);
        let before = reply.text("passwordChangedAt").unwrap_or_default();
        assert!(is_utc_seconds(&before), "{before}");

        std::thread::sleep(std::time::Duration::from_millis(1100));
        let changed = app.change(v, ADMIN, LEARNER.0, &format!("{STRONG}-{v:?}"));
        assert!(changed.is_success(), "{}", changed.body);
        let reply = app.call(v, &status_request(ADMIN, LEARNER.0));
        assert_eq!(reply.text("credentialVersion").as_deref(), Some("2"));
        let after = reply.text("passwordChangedAt").unwrap_or_default();
        assert!(
            is_utc_seconds(&after) && after > before,
            "{before} then {after}"
        );
        // Reading is audited, and changes nothing.
        assert_eq!(credential_version(&app, LEARNER.0), 2);
        let condition = format!(
            "outcome = 'OK' AND detail = 'STATUS_READ' AND target_ext_id = '{}'",
            LEARNER.0
        );
        assert_eq!(app.audit_rows_where(&condition, 2), 2);
    }
}

#[test]
fn deactivated_and_externally_managed_users_are_readable_and_say_so() {
    let app = spawn_app();
    let reply = app.call(Soap::V11, &status_request(ADMIN, FORMER.0));
    assert_eq!(
        reply.text("status").as_deref(),
        Some("deactivated"),
        "{}",
        reply.body
    );
    let reply = app.call(Soap::V12, &status_request(EMEA_ADMIN, SSO.0));
    assert_eq!(
        reply.text("externallyManaged").as_deref(),
        Some("true"),
        "{}",
        reply.body
    );
    // Readable by whoever could otherwise change them; still refused outside the scope.
    let reply = app.call(Soap::V12, &status_request(ENG_ADMIN, FORMER.0));
    assert_denied(&reply, Soap::V12, "NOT_IN_SCOPE");
}

#[test]
fn a_user_reads_their_own_status_but_not_anyone_elses() {
    for v in BOTH {
        let app = spawn_app();
        let reply = app.call(v, &status_request(LEARNER, LEARNER.0));
        assert_eq!(
            reply.text("userId").as_deref(),
            Some(LEARNER.0),
            "{}",
            reply.body
        );
        let reply = app.call(v, &status_request(LEARNER, ENGINEER.0));
        assert_denied(&reply, v, "NOT_IN_SCOPE");
        let reply = app.call(v, &status_request(EMEA_ADMIN, TRAINER.0));
        assert_denied(&reply, v, "OUTRANKS_CALLER");
        let reply = app.call(v, &status_request(ADMIN, "u-nobody"));
        assert_client_fault(&reply, v, "Unknown user", "UnknownUserFault");
        let reply = app.call(v, &status_request((ADMIN.0, ADMIN.1, "wrong"), LEARNER.0));
        assert_client_fault(
            &reply,
            v,
            "Authorization failed",
            "AuthenticationFailedFault",
        );
        let no_user = status_request(ADMIN, LEARNER.0)
            .replace(&format!("<userId>{}</userId>", LEARNER.0), "");
        assert_wrong_parameters(&app.call(v, &no_user), v, "userId", &[]);
    }
}

#[test]
fn a_locked_pair_shows_locked_until() {
    let app = spawn_app_with(DEMO_JSON, |s| s.defences.policy.pair_threshold = 3);
    for _ in 0..3 {
        let reply = app.change(
            Soap::V11,
            (LEARNER.0, LEARNER.1, "not-the-password"),
            LEARNER.0,
            STRONG,
        );
        assert_client_fault(
            &reply,
            Soap::V11,
            "Authorization failed",
            "AuthenticationFailedFault",
        );
    }
    let reply = app.call(Soap::V11, &status_request(ADMIN, LEARNER.0));
    let until = reply
        .text("lockedUntil")
        .unwrap_or_else(|| panic!("{}", reply.body));
    let until = chrono::DateTime::parse_from_rfc3339(&until).expect("xs:dateTime");
    let left = until.signed_duration_since(chrono::Utc::now());
    assert!(
        left.num_seconds() > 60 && left.num_minutes() <= 15,
        "{left}"
    );
    // Another user's status shows no lock.
    let reply = app.call(Soap::V11, &status_request(ADMIN, TRAINER.0));
    assert_eq!(reply.text("lockedUntil"), None, "{}", reply.body);
}
