//! `UpdateUserPasswords` (contract §11.2): one sign-in, each item decided and applied on
//! its own, results in order, whole-call faults before any item is applied.

use soap_passwd::demo::DEMO_JSON;
use soap_passwd::soap::Limits;

use crate::helpers::*;

/// One `<item>` of a batch request.
pub fn item(user_id: &str, password: &str, extra: &str) -> String {
    format!(
        "<item><userId>{}</userId><password>{}</password>{extra}</item>",
        esc(user_id),
        esc(password)
    )
}

/// An `UpdateUserPasswordsRequest` by `caller` holding `items`.
pub fn batch(caller: (&str, &str, &str), items: &[String]) -> String {
    format!(
        r#"<UpdateUserPasswordsRequest xmlns="{API_NS}"><credentials><accountUrl>{ACCOUNT}</accountUrl><email>{}</email><password>{}</password></credentials>{}</UpdateUserPasswordsRequest>"#,
        esc(caller.1),
        esc(caller.2),
        items.concat()
    )
}

/// A result item as read back: userId, success, and the fault's type, code, parameter,
/// violations and reason.
#[derive(Debug, PartialEq, Eq)]
pub struct ItemOutcome {
    pub user_id: String,
    pub success: bool,
    pub fault_type: Option<String>,
    pub code: Option<String>,
    pub parameter: Option<String>,
    pub violations: Vec<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// The items of an `UpdateUserPasswordsResult`, in order.
pub fn outcomes(reply: &Reply) -> Vec<ItemOutcome> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("UpdateUserPasswordsResult"),
        "{}",
        reply.body
    );
    reply
        .body
        .split("<item>")
        .skip(1)
        .map(|chunk| {
            let chunk = chunk.split("</item>").next().unwrap_or_default();
            let one = |local: &str| element_texts(chunk, local).into_iter().next();
            ItemOutcome {
                user_id: one("userId").unwrap_or_default(),
                success: one("success").as_deref() == Some("true"),
                fault_type: one("type"),
                code: one("code"),
                parameter: one("parameter"),
                violations: element_texts(chunk, "violation"),
                reason: one("reason"),
                message: one("message"),
            }
        })
        .collect()
}

pub fn credential_version(app: &TestApp, user_id: &str) -> i64 {
    app.db()
        .query_row(
            "SELECT credential_version FROM users WHERE ext_id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .expect("user exists")
}

#[test]
fn a_mixed_batch_answers_each_item_in_order_and_applies_only_the_allowed_ones() {
    for v in BOTH {
        let app = spawn_app();
        let items = [
            item(LEARNER.0, &format!("{STRONG}-a"), ""),
            item(TRAINER.0, &format!("{STRONG}-b"), ""),
            item("u-nobody", &format!("{STRONG}-c"), ""),
            item(ENGINEER.0, &format!("{STRONG}-d"), ""),
            item(FORMER.0, &format!("{STRONG}-e"), ""),
            item(EMEA_ADMIN.0, "short", ""),
            item(SSO.0, &format!("{STRONG}-g"), ""),
            item(LEARNER2.0, &format!("{STRONG}-h"), ""),
        ];
        let reply = app.call(v, &batch(EMEA_ADMIN, &items));
        let got = outcomes(&reply);
        let summary: Vec<(&str, bool, Option<&str>, Option<&str>)> = got
            .iter()
            .map(|o| {
                (
                    o.user_id.as_str(),
                    o.success,
                    o.fault_type.as_deref(),
                    o.reason.as_deref().or(o.parameter.as_deref()),
                )
            })
            .collect();
        let denied = Some("PermissionDeniedFault");
        assert_eq!(
            summary,
            [
                (LEARNER.0, true, None, None),
                (TRAINER.0, false, denied, Some("OUTRANKS_CALLER")),
                ("u-nobody", false, Some("UnknownUserFault"), None),
                (ENGINEER.0, false, denied, Some("NOT_IN_SCOPE")),
                (FORMER.0, false, denied, Some("USER_DEACTIVATED")),
                (
                    EMEA_ADMIN.0,
                    false,
                    Some("WrongParametersFault"),
                    Some("password")
                ),
                (SSO.0, false, denied, Some("EXTERNALLY_MANAGED")),
                (LEARNER2.0, false, denied, Some("NOT_IN_SCOPE")),
            ],
            "{v:?}: {}",
            reply.body
        );
        // The item's fault carries the single call's detail: code, message, extras.
        assert_eq!(got[1].code.as_deref(), Some("PERMISSION_DENIED"));
        assert!(got[1].message.as_deref().is_some_and(|m| !m.is_empty()));
        assert_eq!(got[2].code.as_deref(), Some("UNKNOWN_USER"));
        assert!(
            got[5].violations.contains(&"TOO_SHORT".to_string()),
            "{:?}",
            got[5]
        );
        // Only the allowed items changed anything; each new password works.
        for (user, changed) in [
            (LEARNER.0, true),
            (TRAINER.0, false),
            (ENGINEER.0, false),
            (EMEA_ADMIN.0, false),
            (LEARNER2.0, false),
        ] {
            assert_eq!(
                credential_version(&app, user),
                if changed { 2 } else { 1 },
                "{v:?} {user}"
            );
        }
        let again = app.change(
            v,
            (LEARNER.0, LEARNER.1, &format!("{STRONG}-a")),
            LEARNER.0,
            &format!("{STRONG}-a2"),
        );
        assert!(again.is_success(), "{}", again.body);
        // One audit row per item, each naming its target as sent.
        for (user, outcome) in [
            (LEARNER.0, "OK"),
            (TRAINER.0, "PERMISSION_DENIED"),
            ("u-nobody", "UNKNOWN_USER"),
            (ENGINEER.0, "PERMISSION_DENIED"),
            (FORMER.0, "PERMISSION_DENIED"),
            (EMEA_ADMIN.0, "WRONG_PARAMETERS"),
            (SSO.0, "PERMISSION_DENIED"),
            (LEARNER2.0, "PERMISSION_DENIED"),
        ] {
            let condition = format!(
                "target_ext_id = '{user}' AND outcome = '{outcome}' AND caller_email = '{}'",
                EMEA_ADMIN.1
            );
            assert_eq!(app.audit_rows_where(&condition, 1), 1, "{v:?} {user}");
        }
        // Events say the changes came in a batch.
        let batch_events: i64 = app
            .db()
            .query_row(
                "SELECT count(*) FROM events WHERE via = 'batch' AND NOT temporary",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(batch_events, 1);
    }
}

#[test]
fn whole_call_faults_apply_no_item() {
    let app = spawn_app_with(DEMO_JSON, |s| s.limits = Limits::for_batch(3));
    for v in BOTH {
        let ok = item(LEARNER.0, &format!("{STRONG}-{v:?}"), "");
        let cases = [
            (batch(ADMIN, &[]), "item"),
            (
                batch(
                    ADMIN,
                    &[
                        ok.clone(),
                        item(TRAINER.0, STRONG, ""),
                        item(LEARNER2.0, STRONG, ""),
                        item(HELP.0, STRONG, ""),
                    ],
                ),
                "item",
            ),
            (
                batch(
                    ADMIN,
                    &[ok.clone(), item(LEARNER.0, &format!("{STRONG}-x"), "")],
                ),
                "item/userId",
            ),
            (
                batch(
                    ADMIN,
                    &[
                        ok.clone(),
                        format!("<item><password>{STRONG}</password></item>"),
                    ],
                ),
                "item/userId",
            ),
            (
                batch(
                    ADMIN,
                    &[
                        ok.clone(),
                        format!("<item><userId>{}</userId></item>", TRAINER.0),
                    ],
                ),
                "item/password",
            ),
            (
                batch(
                    ADMIN,
                    &[
                        ok.clone(),
                        item(TRAINER.0, STRONG, "<temporary>maybe</temporary>"),
                    ],
                ),
                "item/temporary",
            ),
            (
                batch(
                    ADMIN,
                    &[
                        ok.clone(),
                        item(
                            TRAINER.0,
                            STRONG,
                            &format!("<passwordConfirm>{STRONG}!</passwordConfirm>"),
                        ),
                    ],
                ),
                "item/passwordConfirm",
            ),
            (
                batch(ADMIN, &[ok.clone(), item(&"u".repeat(129), STRONG, "")]),
                "item/userId",
            ),
        ];
        for (body, parameter) in cases {
            let reply = app.call(v, &body);
            let violations: &[&str] = if parameter == "item/passwordConfirm" {
                &["CONFIRM_MISMATCH"]
            } else {
                &[]
            };
            assert_wrong_parameters(&reply, v, parameter, violations);
        }
        // A userId twice from a caller whose token cannot be checked (PasswordDigest): the
        // parameters are wrong first, then the sign-in.
        let digest = format!(
            r#"<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken><wsse:Username>{}</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">x</wsse:Password></wsse:UsernameToken></wsse:Security>"#,
            ADMIN.1
        );
        let items = [ok.clone(), item(LEARNER.0, &format!("{STRONG}-y"), "")].concat();
        let doc = format!(
            r#"<soap:Envelope xmlns:soap="{}"><soap:Header>{digest}</soap:Header><soap:Body><UpdateUserPasswordsRequest xmlns="{API_NS}">{items}</UpdateUserPasswordsRequest></soap:Body></soap:Envelope>"#,
            v.ns()
        );
        let reply = app.post_raw(
            doc,
            &[
                ("Content-Type", v.content_type()),
                ("Host", "myaccount.ispringlearn.com"),
            ],
        );
        assert_wrong_parameters(&reply, v, "item/userId", &[]);
        // A wrong caller password: the call fails as a whole.
        let reply = app.call(
            v,
            &batch(
                (ADMIN.0, ADMIN.1, "wrong-password"),
                std::slice::from_ref(&ok),
            ),
        );
        assert_client_fault(
            &reply,
            v,
            "Authorization failed",
            "AuthenticationFailedFault",
        );
    }
    for user in [LEARNER.0, TRAINER.0, LEARNER2.0, HELP.0] {
        assert_eq!(credential_version(&app, user), 1, "{user} untouched");
    }
    // At the limit it is accepted.
    let reply = app.call(
        Soap::V11,
        &batch(
            ADMIN,
            &[
                item(LEARNER.0, &format!("{STRONG}-1"), ""),
                item(TRAINER.0, &format!("{STRONG}-2"), ""),
                item(LEARNER2.0, &format!("{STRONG}-3"), ""),
            ],
        ),
    );
    assert!(outcomes(&reply).iter().all(|o| o.success), "{}", reply.body);
}

#[test]
fn batch_items_may_be_temporary_and_a_temporary_caller_only_changes_their_own() {
    let app = spawn_app();
    let reply = app.call(
        Soap::V12,
        &batch(
            ADMIN,
            &[
                item(
                    SALES_ADMIN.0,
                    &format!("{STRONG}-t"),
                    "<temporary>true</temporary>",
                ),
                item(
                    LEARNER.0,
                    &format!("{STRONG}-n"),
                    "<temporary>0</temporary>",
                ),
            ],
        ),
    );
    assert!(outcomes(&reply).iter().all(|o| o.success), "{}", reply.body);
    let temporary = |user: &str| -> bool {
        app.db()
            .query_row(
                "SELECT password_temporary FROM users WHERE ext_id = ?1",
                [user],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(temporary(SALES_ADMIN.0));
    assert!(!temporary(LEARNER.0));
    // The temporary caller's batch: other users' items are refused, their own applies.
    let me = (SALES_ADMIN.0, SALES_ADMIN.1, &*format!("{STRONG}-t"));
    let reply = app.call(
        Soap::V12,
        &batch(
            me,
            &[
                item(LEARNER2.0, &format!("{STRONG}-x"), ""),
                item(
                    SALES_ADMIN.0,
                    &format!("{STRONG}-own"),
                    "<temporary>true</temporary>",
                ),
            ],
        ),
    );
    let got = outcomes(&reply);
    assert_eq!(got[0].reason.as_deref(), Some("PASSWORD_CHANGE_REQUIRED"));
    assert!(got[1].success, "{}", reply.body);
    // A self-change is never temporary, and clears the flag.
    assert!(!temporary(SALES_ADMIN.0));
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

/// An item that cannot get a hashing slot in time is that item's `ServerBusyFault`; the
/// call and the other items go on.
#[test]
fn an_item_shed_for_load_is_that_items_fault() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let app = Arc::new(spawn_app_with(DEMO_JSON, |s| {
        s.hash_slots = 1;
        s.hash_wait = std::time::Duration::from_millis(5);
    }));
    let mut seen = Vec::new();
    for round in 0..20 {
        let items: Vec<String> = [LEARNER.0, LEARNER2.0, TRAINER.0, EMEA_ADMIN.0]
            .iter()
            .map(|u| item(u, &format!("{STRONG}-{round}"), ""))
            .collect();
        let batch_app = app.clone();
        let batch_call =
            std::thread::spawn(move || batch_app.call(Soap::V11, &batch(ADMIN, &items)));
        // Once the batch has signed in, others take the slot: each next item asks anew.
        std::thread::sleep(std::time::Duration::from_millis(8));
        let stop = Arc::new(AtomicBool::new(false));
        let load: Vec<_> = [ENGINEER.0, HELP.0, ENG_ADMIN.0, SALES_ADMIN.0]
            .into_iter()
            .map(|target| {
                let (app, stop) = (app.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        app.change(
                            Soap::V11,
                            ADMIN,
                            target,
                            &format!("{STRONG}-load-{round}-{n}"),
                        );
                    }
                })
            })
            .collect();
        let reply = batch_call.join().expect("batch");
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.join().expect("load thread");
        }
        if reply.status != 200 {
            seen.push(format!("{}", reply.status));
            continue; // shed as a whole, at sign-in
        }
        let got = outcomes(&reply);
        if let Some(shed) = got
            .iter()
            .find(|o| o.code.as_deref() == Some("SERVER_BUSY"))
        {
            assert_eq!(shed.fault_type.as_deref(), Some("ServerBusyFault"));
            assert!(!shed.success);
            // The sign-in's slot served the first item.
            assert!(got[0].success, "{got:?}");
            return;
        }
        seen.push(format!(
            "{:?}",
            got.iter().map(|o| o.success).collect::<Vec<_>>()
        ));
    }
    panic!("no item was shed: {seen:?}");
}
