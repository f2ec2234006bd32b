//! Contract §5, rule by rule: who may change whose password. Most cases run against the
//! demo directory; the few it cannot show use `tests/fixtures/ranks-in-scope.json` or a
//! directory generated in the test.

use serde_json::json;

use crate::helpers::*;
use crate::policy::with_policy;

/// `tests/fixtures/ranks-in-scope.json`: the owner and an account admin sit inside the
/// sales subtree, and `u-emea-admin` belongs to d-sales but manages only d-emea.
const RANKS_IN_SCOPE: &str = include_str!("../fixtures/ranks-in-scope.json");
const R_OWNER: (&str, &str, &str) = ("u-owner", "owner@example.com", "Owner-Ranks-Pass-4417");
const R_ADMIN: (&str, &str, &str) = ("u-admin", "admin@example.com", "Admin-Ranks-Pass-8203");
const R_SALES_ADMIN: (&str, &str, &str) = (
    "u-sales-admin",
    "sales.admin@example.com",
    "Sales-Ranks-Pass-5531",
);
const R_EMEA_ADMIN: (&str, &str, &str) = (
    "u-emea-admin",
    "emea.admin@example.com",
    "Emea-Ranks-Pass-7760",
);
const R_PEER: (&str, &str, &str) = ("u-peer", "peer@example.com", "Peer-Ranks-Pass-2094");
const R_REP: (&str, &str, &str) = ("u-rep", "rep@example.com", "Rep-Ranks-Pass-6638");

/// True when `email` / `password` sign in to the demo account. The probe names no user,
/// so a caller who authenticates gets `UnknownUserFault` (target lookup comes after
/// authentication) and nothing changes.
pub fn authenticates(app: &TestApp, email: &str, password: &str) -> bool {
    let reply = app.call(
        Soap::V11,
        &request(ACCOUNT, email, password, "u-nobody", STRONG),
    );
    match reply.detail_element().as_deref() {
        Some("UnknownUserFault") => true,
        Some("AuthenticationFailedFault") => false,
        _ => panic!("unexpected answer to the sign-in probe: {}", reply.body),
    }
}

#[track_caller]
fn assert_changed(reply: &Reply) {
    assert!(reply.is_success(), "{}", reply.body);
}

fn version_of(i: usize) -> Soap {
    BOTH[i % 2]
}

#[test]
fn owner_may_change_anyone_including_account_admins_and_self() {
    let app = spawn_app();
    for (i, target) in [ADMIN, ADMIN2, SALES_ADMIN, HELP, LEARNER, ENGINEER, OWNER]
        .iter()
        .enumerate()
    {
        assert_changed(&app.change(version_of(i), OWNER, target.0, &format!("{STRONG}-{i}")));
    }
    assert!(authenticates(&app, ADMIN.1, &format!("{STRONG}-0")));
    assert!(authenticates(&app, OWNER.1, &format!("{STRONG}-6")));
}

#[test]
fn account_admin_may_change_other_admins_users_and_self() {
    let app = spawn_app();
    for (i, target) in [ADMIN2, SALES_ADMIN, LEARNER, ENGINEER].iter().enumerate() {
        assert_changed(&app.change(version_of(i), ADMIN, target.0, &format!("{STRONG}-{i}")));
    }
    assert_changed(&app.change(Soap::V12, ADMIN, ADMIN.0, STRONG));
    assert!(authenticates(&app, ADMIN.1, STRONG));
}

#[test]
fn account_admin_cannot_change_the_owner() {
    let app = spawn_app();
    for version in BOTH {
        assert_denied(
            &app.change(version, ADMIN, OWNER.0, STRONG),
            version,
            "OUTRANKS_CALLER",
        );
        assert_denied(
            &app.change(version, ADMIN2, OWNER.0, STRONG),
            version,
            "OUTRANKS_CALLER",
        );
    }
    assert!(authenticates(&app, OWNER.1, OWNER.2));
}

#[test]
fn department_admin_may_change_users_anywhere_in_their_subtree() {
    let app = spawn_app();
    // d-emea is a sub-department of d-sales.
    assert_changed(&app.change(Soap::V11, SALES_ADMIN, LEARNER.0, STRONG));
    assert_changed(&app.change(Soap::V12, SALES_ADMIN, LEARNER2.0, STRONG));
    assert_changed(&app.change(Soap::V12, EMEA_ADMIN, LEARNER.0, &format!("{STRONG}-2")));
    assert!(authenticates(&app, LEARNER.1, &format!("{STRONG}-2")));
    // A department admin whose reach (d-emea) lies inside the caller's.
    assert_changed(&app.change(Soap::V11, SALES_ADMIN, EMEA_ADMIN.0, STRONG));
    assert!(authenticates(&app, EMEA_ADMIN.1, STRONG));
}

#[test]
fn department_admin_cannot_change_user_outside_their_subtree() {
    let app = spawn_app();
    for version in BOTH {
        assert_denied(
            &app.change(version, SALES_ADMIN, ENGINEER.0, STRONG),
            version,
            "NOT_IN_SCOPE",
        );
    }
    // A sibling department and the parent department are outside d-emea's subtree.
    assert_denied(
        &app.change(Soap::V11, EMEA_ADMIN, LEARNER2.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
    assert_denied(
        &app.change(Soap::V11, EMEA_ADMIN, SALES_ADMIN.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
    assert_denied(
        &app.change(Soap::V11, ENG_ADMIN, LEARNER.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
    // Users in d-root (the parent of everything a department admin manages) are out of reach too.
    assert_denied(
        &app.change(Soap::V11, SALES_ADMIN, HELP.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
    assert_denied(
        &app.change(Soap::V11, SALES_ADMIN, OWNER.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
}

#[test]
fn department_admin_cannot_change_owner_or_account_admin_in_their_subtree() {
    let app = spawn_app_with(RANKS_IN_SCOPE, |_| {});
    for version in BOTH {
        assert_denied(
            &app.change(version, R_SALES_ADMIN, R_OWNER.0, STRONG),
            version,
            "OUTRANKS_CALLER",
        );
        assert_denied(
            &app.change(version, R_SALES_ADMIN, R_ADMIN.0, STRONG),
            version,
            "OUTRANKS_CALLER",
        );
    }
    assert_denied(
        &app.change(Soap::V11, R_EMEA_ADMIN, R_ADMIN.0, STRONG),
        Soap::V11,
        "OUTRANKS_CALLER",
    );
    // The same callers may change the ordinary users beside them.
    assert_changed(&app.change(Soap::V11, R_SALES_ADMIN, R_PEER.0, STRONG));
    assert_changed(&app.change(Soap::V12, R_EMEA_ADMIN, R_REP.0, STRONG));
}

#[test]
fn department_admin_cannot_reset_user_with_wider_reach() {
    let app = spawn_app();
    // u-trainer sits in d-emea but holds a custom role (without change_password) over d-sales.
    for version in BOTH {
        assert_denied(
            &app.change(version, EMEA_ADMIN, TRAINER.0, STRONG),
            version,
            "OUTRANKS_CALLER",
        );
    }
    // The help desk's change_password over d-emea does not cover d-sales either.
    assert_denied(
        &app.change(Soap::V11, HELP, TRAINER.0, STRONG),
        Soap::V11,
        "OUTRANKS_CALLER",
    );
    // The sales admin's scope contains the trainer's whole reach.
    assert_changed(&app.change(Soap::V11, SALES_ADMIN, TRAINER.0, STRONG));
}

#[test]
fn department_admins_own_department_is_not_in_scope_by_itself() {
    let app = spawn_app_with(RANKS_IN_SCOPE, |_| {});
    // u-emea-admin belongs to d-sales but manages only d-emea.
    for version in BOTH {
        assert_denied(
            &app.change(version, R_EMEA_ADMIN, R_PEER.0, STRONG),
            version,
            "NOT_IN_SCOPE",
        );
    }
    assert_denied(
        &app.change(Soap::V11, R_EMEA_ADMIN, R_SALES_ADMIN.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
}

#[test]
fn custom_role_with_change_password_grants_its_subtree_only() {
    let app = spawn_app();
    assert_changed(&app.change(Soap::V11, HELP, LEARNER.0, STRONG));
    assert!(authenticates(&app, LEARNER.1, STRONG));
    for version in BOTH {
        assert_denied(
            &app.change(version, HELP, LEARNER2.0, STRONG),
            version,
            "NOT_IN_SCOPE",
        );
    }
    assert_denied(
        &app.change(Soap::V11, HELP, ENGINEER.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
}

#[test]
fn custom_role_without_change_password_grants_nothing() {
    let app = spawn_app();
    // u-trainer holds r-trainer (no permissions) over d-sales, which contains d-emea.
    for version in BOTH {
        assert_denied(
            &app.change(version, TRAINER, LEARNER.0, STRONG),
            version,
            "NOT_IN_SCOPE",
        );
    }
    assert!(authenticates(&app, LEARNER.1, LEARNER.2));
}

#[test]
fn learner_cannot_change_another_learner() {
    let app = spawn_app();
    for version in BOTH {
        assert_denied(
            &app.change(version, LEARNER, LEARNER2.0, STRONG),
            version,
            "NOT_IN_SCOPE",
        );
    }
    assert_denied(
        &app.change(Soap::V11, LEARNER2, LEARNER.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
    // A learner in the same department is no closer.
    assert_denied(
        &app.change(Soap::V11, LEARNER, TRAINER.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
}

#[test]
fn learner_changes_own_password_and_signs_in_with_it() {
    let app = spawn_app();
    assert_changed(&app.change(Soap::V11, LEARNER, LEARNER.0, STRONG));
    assert!(authenticates(&app, LEARNER.1, STRONG));
    assert!(!authenticates(&app, LEARNER.1, LEARNER.2));
    let signed_in = (LEARNER.0, LEARNER.1, STRONG);
    assert_changed(&app.change(Soap::V12, signed_in, LEARNER.0, &format!("{STRONG}-2")));
    assert!(authenticates(&app, LEARNER.1, &format!("{STRONG}-2")));
}

#[test]
fn self_service_off_refuses_a_users_own_change() {
    let app = spawn_app_with(
        &with_policy(demo_json(), "self_service", json!(false)),
        |_| {},
    );
    for version in BOTH {
        assert_denied(
            &app.change(version, LEARNER, LEARNER.0, STRONG),
            version,
            "SELF_SERVICE_DISABLED",
        );
    }
    // A help-desk role over d-emea does not reach the holder's own d-root.
    assert_denied(
        &app.change(Soap::V11, HELP, HELP.0, STRONG),
        Soap::V11,
        "SELF_SERVICE_DISABLED",
    );
    assert!(authenticates(&app, LEARNER.1, LEARNER.2));
    // Changing someone else is unaffected.
    assert_changed(&app.change(Soap::V11, SALES_ADMIN, LEARNER.0, STRONG));
}

#[test]
fn self_service_off_still_allows_a_self_change_the_rank_rules_allow() {
    let app = spawn_app_with(
        &with_policy(demo_json(), "self_service", json!(false)),
        |_| {},
    );
    // u-sales-admin belongs to d-sales and manages it.
    assert_changed(&app.change(Soap::V11, SALES_ADMIN, SALES_ADMIN.0, STRONG));
    assert!(authenticates(&app, SALES_ADMIN.1, STRONG));
    assert_changed(&app.change(Soap::V12, ADMIN, ADMIN.0, STRONG));
    assert_changed(&app.change(Soap::V11, OWNER, OWNER.0, STRONG));

    // A department admin whose own department is outside what they manage may not.
    let app = spawn_app_with(
        &with_policy(RANKS_IN_SCOPE, "self_service", json!(false)),
        |_| {},
    );
    assert_denied(
        &app.change(Soap::V12, R_EMEA_ADMIN, R_EMEA_ADMIN.0, STRONG),
        Soap::V12,
        "SELF_SERVICE_DISABLED",
    );
    assert_changed(&app.change(Soap::V11, R_SALES_ADMIN, R_SALES_ADMIN.0, STRONG));
}

#[test]
fn deactivated_target_is_refused_as_deactivated() {
    let app = spawn_app();
    for version in BOTH {
        assert_denied(
            &app.change(version, OWNER, FORMER.0, STRONG),
            version,
            "USER_DEACTIVATED",
        );
    }
    assert_denied(
        &app.change(Soap::V11, SALES_ADMIN, FORMER.0, STRONG),
        Soap::V11,
        "USER_DEACTIVATED",
    );
    assert_denied(
        &app.change(Soap::V11, HELP, FORMER.0, STRONG),
        Soap::V11,
        "USER_DEACTIVATED",
    );
}

#[test]
fn externally_managed_target_is_refused_as_externally_managed() {
    let app = spawn_app();
    for version in BOTH {
        assert_denied(
            &app.change(version, OWNER, SSO.0, STRONG),
            version,
            "EXTERNALLY_MANAGED",
        );
    }
    assert_denied(
        &app.change(Soap::V11, ADMIN, SSO.0, STRONG),
        Soap::V11,
        "EXTERNALLY_MANAGED",
    );
    assert_denied(
        &app.change(Soap::V11, EMEA_ADMIN, SSO.0, STRONG),
        Soap::V11,
        "EXTERNALLY_MANAGED",
    );
}

/// Contract §5 states its rules for an active, locally managed target: any other target
/// gives its own reason whoever asks, even a caller who could not reach it otherwise
/// (here a department admin and a learner of another department), in both versions.
#[test]
fn a_deactivated_or_external_target_gives_its_reason_to_callers_out_of_reach_too() {
    let app = spawn_app();
    assert_denied(
        &app.change(Soap::V11, ENG_ADMIN, LEARNER.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
    for (target, reason) in [
        (FORMER.0, "USER_DEACTIVATED"),
        (SSO.0, "EXTERNALLY_MANAGED"),
    ] {
        for version in BOTH {
            assert_denied(
                &app.change(version, ENG_ADMIN, target, STRONG),
                version,
                reason,
            );
            assert_denied(
                &app.change(version, LEARNER2, target, STRONG),
                version,
                reason,
            );
        }
    }
}

#[test]
fn a_refusal_is_audited_with_its_reason() {
    let app = spawn_app();
    assert_denied(
        &app.change(Soap::V11, LEARNER, LEARNER2.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
    assert_eq!(app.audit_rows("PERMISSION_DENIED", 1), 1);
    let (caller, target, detail): (String, String, String) = app
        .db()
        .query_row(
            "SELECT c.ext_id, a.target_ext_id, a.detail FROM audit_log a JOIN users c ON c.id = a.caller_id
              WHERE a.outcome = 'PERMISSION_DENIED'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (caller.as_str(), target.as_str(), detail.as_str()),
        (LEARNER.0, LEARNER2.0, "NOT_IN_SCOPE")
    );
}

/// An account whose department tree is a single chain d-0 ⊃ d-1 ⊃ … ⊃ d-{levels-1}.
fn chain_of_departments(levels: usize) -> String {
    let mut tree = json!({ "id": format!("d-{}", levels - 1), "name": "Bottom", "children": [] });
    for level in (0..levels - 1).rev() {
        tree = json!({ "id": format!("d-{level}"), "name": format!("Level {level}"), "children": [tree] });
    }
    let user = |id: &str, role: &str, department: String, manages: Vec<String>| {
        json!({
            "id": id, "email": format!("{id}@example.com"), "password": format!("{id}-Chain-Pass-9315"),
            "role": role, "department": department, "manages": manages,
        })
    };
    let middle = format!("d-{}", levels / 2);
    json!({ "accounts": [{
        "url": ACCOUNT, "name": "Deep", "departments": [tree],
        "users": [
            user("u-top", "department_admin", "d-0".into(), vec!["d-0".into()]),
            user("u-middle", "department_admin", middle.clone(), vec![middle]),
            user("u-upper", "user", "d-5".into(), vec![]),
            user("u-bottom", "user", format!("d-{}", levels - 1), vec![]),
        ],
    }]})
    .to_string()
}

fn chain_user(id: &str) -> (&str, String, String) {
    (
        id,
        format!("{id}@example.com"),
        format!("{id}-Chain-Pass-9315"),
    )
}

#[test]
fn deep_tree_top_admin_reaches_the_bottom_but_middle_admin_cannot_reach_up() {
    let app = spawn_app_with(&chain_of_departments(25), |_| {});
    let (top, middle) = (chain_user("u-top"), chain_user("u-middle"));
    let top = (top.0, top.1.as_str(), top.2.as_str());
    let middle = (middle.0, middle.1.as_str(), middle.2.as_str());
    for version in BOTH {
        let new = format!("{STRONG}-{version:?}");
        assert_changed(&app.change(version, top, "u-bottom", &new));
        assert_denied(
            &app.change(version, middle, "u-upper", STRONG),
            version,
            "NOT_IN_SCOPE",
        );
    }
    assert_changed(&app.change(Soap::V11, middle, "u-bottom", STRONG));
    assert_changed(&app.change(Soap::V11, top, "u-middle", STRONG));
    assert_denied(
        &app.change(Soap::V11, (middle.0, middle.1, STRONG), "u-top", STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
}

fn demo_json() -> &'static str {
    soap_passwd::demo::DEMO_JSON
}

/// The import cannot make a department its own ancestor, but a database edited by hand
/// (or by a future sync) could. The upward walk of the scope query is a recursive CTE
/// with `UNION`, so a cycle ends the walk instead of looping: the decision still comes,
/// and is still right, for callers whose scope is on the cycle and off it.
#[test]
fn a_cycle_in_the_department_tree_cannot_hang_a_decision() {
    let app = spawn_app();
    // d-root becomes a child of d-emea: d-emea → d-sales → d-root → d-emea → …
    let changed = app
        .db()
        .execute(
            "UPDATE departments SET parent_id = (SELECT id FROM departments WHERE ext_id = 'd-emea')
              WHERE ext_id = 'd-root'",
            [],
        )
        .expect("make a cycle");
    assert_eq!(changed, 1);
    for version in BOTH {
        let started = std::time::Instant::now();
        assert_denied(
            &app.change(version, ENG_ADMIN, LEARNER.0, STRONG),
            version,
            "NOT_IN_SCOPE",
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
    assert_changed(&app.change(Soap::V11, SALES_ADMIN, LEARNER.0, STRONG));
}
