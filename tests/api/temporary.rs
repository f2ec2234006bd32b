//! Temporary passwords (contract §11.1): set by an administrator; until its user changes
//! it, they may only change their own password or read their own status.

use crate::batch::credential_version;
use crate::helpers::*;
use crate::status::status_request;

/// `UpdateUserPasswordRequest` with `<temporary>` (and whatever else) after `password`.
fn with_extra(caller: (&str, &str, &str), user_id: &str, password: &str, extra: &str) -> String {
    request(ACCOUNT, caller.1, caller.2, user_id, password).replace(
        "</password></UpdateUserPasswordRequest>",
        &format!("</password>{extra}</UpdateUserPasswordRequest>"),
    )
}

fn is_temporary(app: &TestApp, user: &str) -> bool {
    app.db()
        .query_row(
            "SELECT password_temporary FROM users WHERE ext_id = ?1",
            [user],
            |r| r.get(0),
        )
        .expect("user")
}

#[test]
fn a_temporary_password_must_be_changed_before_anything_else() {
    for v in BOTH {
        let app = spawn_app();
        let temp = format!("{STRONG}-temp-{v:?}");
        let reply = app.call(
            v,
            &with_extra(ADMIN, SALES_ADMIN.0, &temp, "<temporary>true</temporary>"),
        );
        assert!(reply.is_success(), "{}", reply.body);
        assert!(is_temporary(&app, SALES_ADMIN.0));
        let me = (SALES_ADMIN.0, SALES_ADMIN.1, temp.as_str());

        // Changing someone else's password, or reading their status: refused.
        let reply = app.change(v, me, LEARNER.0, &format!("{STRONG}-x"));
        assert_denied(&reply, v, "PASSWORD_CHANGE_REQUIRED");
        let reply = app.call(v, &status_request(me, LEARNER.0));
        assert_denied(&reply, v, "PASSWORD_CHANGE_REQUIRED");
        // Unknown users too: the rule comes before the lookup and says nothing about them.
        let reply = app.change(v, me, "u-nobody", &format!("{STRONG}-x"));
        assert_denied(&reply, v, "PASSWORD_CHANGE_REQUIRED");
        assert_eq!(credential_version(&app, LEARNER.0), 1);

        // Their own status says so.
        let reply = app.call(v, &status_request(me, SALES_ADMIN.0));
        assert_eq!(
            reply.text("temporary").as_deref(),
            Some("true"),
            "{}",
            reply.body
        );

        // A self-change, even one asking for `temporary`, clears it.
        let own = format!("{STRONG}-own-{v:?}");
        let reply = app.call(
            v,
            &with_extra(me, SALES_ADMIN.0, &own, "<temporary>1</temporary>"),
        );
        assert!(reply.is_success(), "{}", reply.body);
        assert!(!is_temporary(&app, SALES_ADMIN.0));
        let me = (SALES_ADMIN.0, SALES_ADMIN.1, own.as_str());
        let reply = app.change(v, me, LEARNER.0, &format!("{STRONG}-y"));
        assert!(reply.is_success(), "{}", reply.body);

        // The events tell temporary and self-chosen passwords apart.
        let events: Vec<(String, bool)> = app
            .db()
            .rows(
                "SELECT u.ext_id, e.temporary FROM events e JOIN users u ON u.id = e.user_id
                  WHERE e.via = 'soap' ORDER BY e.id",
                &[],
            )
            .iter()
            .map(|r| (r.at(0), r.at(1)))
            .collect();
        assert_eq!(
            events,
            [
                (SALES_ADMIN.0.to_string(), true),
                (SALES_ADMIN.0.to_string(), false),
                (LEARNER.0.to_string(), false),
            ]
        );
    }
}

#[test]
fn temporary_is_an_xs_boolean() {
    let app = spawn_app();
    for v in BOTH {
        for bad in ["yes", "TRUE", "", "<b>1</b>"] {
            let body = with_extra(
                ADMIN,
                LEARNER.0,
                STRONG,
                &format!("<temporary>{bad}</temporary>"),
            );
            assert_wrong_parameters(&app.call(v, &body), v, "temporary", &[]);
        }
    }
    let body = with_extra(ADMIN, LEARNER.0, STRONG, "<temporary> false </temporary>");
    assert!(app.call(Soap::V11, &body).is_success());
    assert!(!is_temporary(&app, LEARNER.0));
    let body = with_extra(ADMIN, TRAINER.0, STRONG, "<temporary>0</temporary>");
    assert!(app.call(Soap::V11, &body).is_success());
    assert!(!is_temporary(&app, TRAINER.0));
}
