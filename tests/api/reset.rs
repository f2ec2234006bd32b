//! Reset by link (contract §11.4, §12 without the page): links for named users or a
//! caller's whole reach, returned or notified, single use, dying by expiry, by a newer
//! link and by any password change, spent at most once.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use soap_passwd::demo::DEMO_JSON;

use crate::batch::credential_version;
use crate::helpers::*;
use crate::rest::{Call, assert_problem, send};
use crate::status::status_request;

fn resets(caller: (&str, &str, &str), body: Value) -> Call<'static> {
    let caller: (&'static str, &'static str, &'static str) = (
        Box::leak(caller.0.to_string().into_boxed_str()),
        Box::leak(caller.1.to_string().into_boxed_str()),
        Box::leak(caller.2.to_string().into_boxed_str()),
    );
    Call {
        method: reqwest::Method::POST,
        path: "/api/password-resets".into(),
        basic: Some((caller.1, caller.2)),
        account: Some(ACCOUNT),
        body: Some(body),
    }
}

/// `POST /api/password-resets/{token}` with `body`.
fn spend(app: &TestApp, link: &str, body: Value) -> crate::rest::JsonReply {
    let token = link.rsplit('/').next().unwrap_or_default();
    send(
        app,
        Call {
            method: reqwest::Method::POST,
            path: format!("/api/password-resets/{token}"),
            basic: None,
            account: None,
            body: Some(body),
        },
    )
}

fn link_of(reply: &crate::rest::JsonReply, user: &str) -> String {
    reply.json["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["userId"] == user))
        .and_then(|i| i["link"].as_str())
        .unwrap_or_else(|| panic!("no link for {user}: {}", reply.json))
        .to_string()
}

#[test]
fn named_users_get_links_returned_and_the_others_their_reasons() {
    let app = spawn_app();
    let reply = send(
        &app,
        resets(
            ADMIN,
            json!({"userIds": [LEARNER.0, OWNER.0, FORMER.0, SSO.0, "u-nobody", ENGINEER.0], "delivery": "return"}),
        ),
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(
        (reply.json["reset"].clone(), reply.json["skipped"].clone()),
        (json!(2), json!(4))
    );
    let items = reply.json["items"].as_array().unwrap();
    let reasons: Vec<(String, Option<String>)> = items
        .iter()
        .map(|i| {
            (
                i["userId"].as_str().unwrap().to_string(),
                i["problem"]["reason"]
                    .as_str()
                    .or(i["problem"]["code"].as_str())
                    .map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (LEARNER.0.to_string(), None),
            (OWNER.0.to_string(), Some("OUTRANKS_CALLER".into())),
            (FORMER.0.to_string(), Some("USER_DEACTIVATED".into())),
            (SSO.0.to_string(), Some("EXTERNALLY_MANAGED".into())),
            ("u-nobody".to_string(), Some("UNKNOWN_USER".into())),
            (ENGINEER.0.to_string(), None),
        ]
    );
    let link = link_of(&reply, LEARNER.0);
    let base = format!("http://127.0.0.1:{}/reset/", app.port);
    assert!(link.starts_with(&base), "{link}");
    let token = &link[base.len()..];
    assert!(
        token.len() >= 22
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{token}"
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(items[0]["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((3500..=3600).contains(&left), "{left}");

    // The old password keeps working until the link is used; the status says one is pending.
    let reply = app.call(Soap::V11, &status_request(LEARNER, LEARNER.0));
    assert_eq!(
        reply.text("resetPending").as_deref(),
        Some("true"),
        "{}",
        reply.body
    );

    // The policy applies, as to a self-change; the link survives a refused submission.
    let refused = spend(&app, &link, json!({"password": "short"}));
    let p = assert_problem(&refused, 400, "WRONG_PARAMETERS");
    assert!(
        p["violations"]
            .as_array()
            .unwrap()
            .contains(&json!("TOO_SHORT"))
    );
    let refused = spend(&app, &link, json!({"password": LEARNER.2}));
    // Its current password (which also holds the e-mail's local part).
    assert_eq!(
        assert_problem(&refused, 400, "WRONG_PARAMETERS")["violations"],
        json!(["SAME_AS_CURRENT", "CONTAINS_EMAIL"])
    );
    let ok = spend(
        &app,
        &link,
        json!({"password": STRONG, "passwordConfirm": STRONG}),
    );
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(credential_version(&app, LEARNER.0), 2);
    // Used once: gone. The old password is gone too; the new one works.
    assert_problem(
        &spend(&app, &link, json!({"password": format!("{STRONG}-2")})),
        410,
        "LINK_INVALID",
    );
    let reply = app.call(Soap::V11, &status_request(LEARNER, LEARNER.0));
    assert_client_fault(
        &reply,
        Soap::V11,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
    let reply = app.call(
        Soap::V11,
        &status_request((LEARNER.0, LEARNER.1, STRONG), LEARNER.0),
    );
    assert_eq!(
        reply.text("resetPending").as_deref(),
        Some("false"),
        "{}",
        reply.body
    );
    assert_eq!(reply.text("temporary").as_deref(), Some("false"));
    let via: String = app
        .db()
        .query_row(
            "SELECT via FROM events WHERE kind = 'password_changed' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(via, "reset_link");
}

#[test]
fn a_newer_link_or_any_password_change_kills_a_link_and_links_expire() {
    let app = spawn_app_with(DEMO_JSON, |s| s.reset_ttl = Duration::from_secs(2));
    let returned = |user: &str| {
        let reply = send(
            &app,
            resets(ADMIN, json!({"userIds": [user], "delivery": "return"})),
        );
        link_of(&reply, user)
    };
    let first = returned(LEARNER.0);
    let second = returned(LEARNER.0);
    assert_problem(
        &spend(&app, &first, json!({"password": STRONG})),
        410,
        "LINK_INVALID",
    );
    // A change by another path kills the newer one too.
    assert!(
        app.change(Soap::V11, ADMIN, LEARNER.0, &format!("{STRONG}-admin"))
            .is_success()
    );
    assert_problem(
        &spend(&app, &second, json!({"password": STRONG})),
        410,
        "LINK_INVALID",
    );
    // Expired: the same page (410) as unknown or used.
    let third = returned(TRAINER.0);
    std::thread::sleep(Duration::from_millis(2200));
    assert_problem(
        &spend(&app, &third, json!({"password": STRONG})),
        410,
        "LINK_INVALID",
    );
    assert_problem(
        &spend(
            &app,
            "http://x/reset/not-a-token",
            json!({"password": STRONG}),
        ),
        410,
        "LINK_INVALID",
    );
    assert_eq!(credential_version(&app, TRAINER.0), 1);
}

#[test]
fn two_submissions_of_one_link_set_the_password_at_most_once() {
    let app = std::sync::Arc::new(spawn_app());
    for round in 0..3 {
        let reply = send(
            &app,
            resets(
                ADMIN,
                json!({"userIds": [ENGINEER.0], "delivery": "return"}),
            ),
        );
        let link = link_of(&reply, ENGINEER.0);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|k| {
                let (app, link, barrier) = (app.clone(), link.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    spend(
                        &app,
                        &link,
                        json!({"password": format!("{STRONG}-{round}-{k}")}),
                    )
                    .status
                })
            })
            .collect();
        let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 410], "round {round}");
        assert_eq!(credential_version(&app, ENGINEER.0), 2 + round);
    }
}

#[test]
fn no_raw_token_is_stored_and_a_notified_link_is_erased_once_acknowledged() {
    let app = spawn_app();
    let reply = send(
        &app,
        resets(ADMIN, json!({"userIds": [TRAINER.0], "delivery": "return"})),
    );
    let link = link_of(&reply, TRAINER.0);
    let token = link.rsplit('/').next().unwrap().to_string();
    // Notified: the event holds the link (and no link is returned).
    let reply = send(&app, resets(ADMIN, json!({"userIds": [HELP.0]})));
    assert_eq!(reply.json["items"][0]["success"], true, "{}", reply.json);
    assert!(
        reply.json["items"][0].get("link").is_none(),
        "{}",
        reply.json
    );
    let (id, event_link): (i64, String) = app
        .db()
        .query_row(
            "SELECT e.id, e.link FROM events e JOIN users u ON u.id = e.user_id
              WHERE e.kind = 'password_reset_requested' AND u.ext_id = ?1",
            [HELP.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(event_link.contains("/reset/"));
    // Nowhere in the database (on SQLite, its files) is the returned token itself.
    let stored = app.db().everything_stored();
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the database holds the token"
    );
    // Acknowledged: the link is erased from the event.
    let out = std::process::Command::new(binary())
        .args(["events", "--ack-only", &id.to_string(), "--db"])
        .arg(app.db_arg())
        .env_remove("SOAP_PASSWD_DB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (link, acked): (Option<String>, Option<String>) = app
        .db()
        .query_row(
            "SELECT link, acked_at FROM events WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        link,
        None,
        "acked_at {acked:?}; events --ack said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The users §5 lets `caller` change, computed here from the demo directory alone: the
/// independent model `allInScope` is checked against.
fn allowed_by_the_rules(caller: &str) -> BTreeSet<String> {
    let demo: Value = serde_json::from_str(DEMO_JSON).unwrap();
    let account = &demo["accounts"][0];
    let mut parent = std::collections::HashMap::new();
    fn walk(
        d: &Value,
        up: Option<String>,
        parent: &mut std::collections::HashMap<String, Option<String>>,
    ) {
        let id = d["id"].as_str().unwrap().to_string();
        parent.insert(id.clone(), up);
        for c in d["children"].as_array().into_iter().flatten() {
            walk(c, Some(id.clone()), parent);
        }
    }
    for d in account["departments"].as_array().unwrap() {
        walk(d, None, &mut parent);
    }
    let under = |dept: &str, root: &str| {
        let mut at = Some(dept.to_string());
        while let Some(d) = at {
            if d == root {
                return true;
            }
            at = parent.get(&d).cloned().flatten();
        }
        false
    };
    let changers: BTreeSet<&str> = account["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "change_password")
        })
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let users = account["users"].as_array().unwrap();
    let me = users.iter().find(|u| u["id"] == caller).unwrap();
    let role = |u: &Value| u["role"].as_str().unwrap().to_string();
    let reach = |u: &Value, only_changers: bool| -> Vec<String> {
        let mut out: Vec<String> = u["manages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        for cr in u["custom_roles"].as_array().into_iter().flatten() {
            if !only_changers || changers.contains(cr["role"].as_str().unwrap()) {
                out.extend(
                    cr["departments"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_str().unwrap().to_string()),
                );
            }
        }
        out
    };
    let scope = reach(me, true);
    let in_scope = |d: &str| scope.iter().any(|root| under(d, root));
    users
        .iter()
        .filter(|u| u["id"] != caller)
        .filter(|u| u["status"].as_str().unwrap_or("active") == "active")
        .filter(|u| !u["externally_managed"].as_bool().unwrap_or(false))
        .filter(|u| match role(me).as_str() {
            "owner" => true,
            "account_admin" => role(u) != "owner",
            _ => {
                in_scope(u["department"].as_str().unwrap())
                    && !matches!(role(u).as_str(), "owner" | "account_admin")
                    && reach(u, false).iter().all(|d| in_scope(d))
            }
        })
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn all_in_scope_resets_exactly_the_users_the_rules_allow() {
    for caller in [
        OWNER,
        ADMIN,
        SALES_ADMIN,
        EMEA_ADMIN,
        ENG_ADMIN,
        HELP,
        TRAINER,
        LEARNER,
    ] {
        let app = spawn_app();
        let reply = send(&app, resets(caller, json!({"allInScope": true})));
        assert_eq!(reply.status, 200, "{}: {}", caller.0, reply.json);
        let issued: BTreeSet<String> = app
            .db()
            .column::<String>(
                "SELECT u.ext_id FROM events e JOIN users u ON u.id = e.user_id
                  WHERE e.kind = 'password_reset_requested'",
                &[],
            )
            .into_iter()
            .collect();
        assert_eq!(issued, allowed_by_the_rules(caller.0), "{}", caller.0);
        assert_eq!(reply.json["reset"], issued.len(), "{}", caller.0);
        // The skipped are listed (and only they), each with its reason.
        let skipped = reply.json["items"].as_array().unwrap();
        assert_eq!(reply.json["skipped"], skipped.len());
        assert!(
            skipped
                .iter()
                .all(|i| i["success"] == false && i["problem"]["reason"].is_string()),
            "{}",
            reply.json
        );
        assert!(
            skipped
                .iter()
                .all(|i| !issued.contains(i["userId"].as_str().unwrap()))
        );
        assert!(!issued.contains(caller.0));
    }
}

#[test]
fn reset_parameters_are_checked_before_the_sign_in() {
    let app = spawn_app();
    for (body, parameter) in [
        (json!({}), "userIds"),
        (json!({"userIds": []}), "userIds"),
        (
            json!({"userIds": [LEARNER.0], "allInScope": true}),
            "userIds",
        ),
        (json!({"userIds": [LEARNER.0, LEARNER.0]}), "userIds"),
        (
            json!({"allInScope": true, "delivery": "return"}),
            "delivery",
        ),
        (
            json!({"userIds": [LEARNER.0], "delivery": "fax"}),
            "delivery",
        ),
        (json!({"userIds": "u-learner"}), "userIds"),
        (json!({"allInScope": false}), "userIds"),
    ] {
        let reply = send(&app, resets((ADMIN.0, ADMIN.1, "not-the-password"), body));
        assert_eq!(
            assert_problem(&reply, 400, "WRONG_PARAMETERS")["parameter"],
            parameter
        );
    }
}

#[test]
fn a_caller_whose_password_is_temporary_resets_no_one() {
    let app = spawn_app();
    let temp = "Temporary-Pass-4471";
    let set = send(
        &app,
        Call {
            method: reqwest::Method::PATCH,
            path: format!("/api/users/{}/password", SALES_ADMIN.0),
            basic: Some((ADMIN.1, ADMIN.2)),
            account: Some(ACCOUNT),
            body: Some(json!({"password": temp, "temporary": true})),
        },
    );
    assert_eq!(set.status, 200, "{}", set.json);
    // Whoever the call names, itself included, the whole call is refused (§11.1).
    for body in [
        json!({"userIds": [LEARNER.0], "delivery": "return"}),
        json!({"userIds": [SALES_ADMIN.0], "delivery": "return"}),
        json!({"allInScope": true}),
    ] {
        let reply = send(&app, resets((SALES_ADMIN.0, SALES_ADMIN.1, temp), body));
        assert_eq!(
            assert_problem(&reply, 403, "PERMISSION_DENIED")["reason"],
            "PASSWORD_CHANGE_REQUIRED"
        );
    }
    assert_eq!(
        app.db()
            .query_row("SELECT count(*) FROM reset_tokens", [], |r| r.get::<i64>(0))
            .unwrap(),
        0,
        "no link was issued"
    );
}

#[test]
fn invalid_links_count_against_the_client_address() {
    let app = spawn_app_with(DEMO_JSON, |s| s.defences.policy.address_threshold = 3);
    for n in 0..3 {
        assert_problem(
            &spend(
                &app,
                &format!("http://x/reset/guess-{n}"),
                json!({"password": STRONG}),
            ),
            410,
            "LINK_INVALID",
        );
    }
    // Counted with the other refusals (written in batches), the address is throttled:
    // even the right password fails to sign in now.
    assert_eq!(app.audit_calls_where("outcome = 'LINK_INVALID'", 3), 3);
    let reply = app.change(Soap::V11, ADMIN, LEARNER.0, STRONG);
    assert_client_fault(
        &reply,
        Soap::V11,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
}

fn soap_reset(caller: (&str, &str, &str), inner: &str) -> String {
    format!(
        r#"<ResetUserPasswordsRequest xmlns="{API_NS}"><credentials><accountUrl>{ACCOUNT}</accountUrl><email>{}</email><password>{}</password></credentials>{inner}</ResetUserPasswordsRequest>"#,
        esc(caller.1),
        esc(caller.2)
    )
}

#[test]
fn reset_user_passwords_over_soap_1_1_and_1_2() {
    for v in BOTH {
        let app = spawn_app();
        let reply = app.call(
            v,
            &soap_reset(
                SALES_ADMIN,
                &format!(
                    "<userId>{}</userId><userId>{}</userId><delivery>return</delivery>",
                    LEARNER.0, ENGINEER.0
                ),
            ),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.contains("<ResetUserPasswordsResult"),
            "{}",
            reply.body
        );
        assert_eq!(reply.texts("success"), ["true", "false"], "{}", reply.body);
        assert_eq!(reply.text("reason").as_deref(), Some("NOT_IN_SCOPE"));
        assert_eq!(
            (
                reply.text("reset").as_deref(),
                reply.text("skipped").as_deref()
            ),
            (Some("1"), Some("1"))
        );
        let link = reply
            .text("link")
            .unwrap_or_else(|| panic!("{}", reply.body));
        assert!(link.contains("/reset/"), "{link}");
        assert!(chrono::DateTime::parse_from_rfc3339(&reply.text("expiresAt").unwrap()).is_ok());
        // The link works over the JSON completion.
        assert_eq!(spend(&app, &link, json!({"password": STRONG})).status, 200);

        // allInScope, notified: only the skipped are listed.
        let reply = app.call(v, &soap_reset(SALES_ADMIN, "<allInScope>true</allInScope>"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let skipped: Vec<String> = reply.texts("userId");
        assert_eq!(skipped, [FORMER.0, SSO.0], "{}", reply.body);
        assert_eq!(reply.text("reset").as_deref(), Some("4"), "{}", reply.body);
        assert_eq!(reply.text("link"), None);
        // Whole-call faults.
        let both = soap_reset(
            SALES_ADMIN,
            &format!("<userId>{}</userId><allInScope>1</allInScope>", LEARNER.0),
        );
        assert_wrong_parameters(&app.call(v, &both), v, "userId", &[]);
        let returned_to_all = soap_reset(
            SALES_ADMIN,
            "<allInScope>true</allInScope><delivery>return</delivery>",
        );
        assert_wrong_parameters(&app.call(v, &returned_to_all), v, "delivery", &[]);
        let nothing = soap_reset(SALES_ADMIN, "");
        assert_wrong_parameters(&app.call(v, &nothing), v, "userId", &[]);
        let wrong = soap_reset((ADMIN.0, ADMIN.1, "wrong"), "<allInScope>true</allInScope>");
        assert_client_fault(
            &app.call(v, &wrong),
            v,
            "Authorization failed",
            "AuthenticationFailedFault",
        );
    }
}
