//! SOAP and REST are two front doors of one service: the same (caller, target,
//! password) gives the same outcome, code, reason and violations through either.

use serde_json::json;

use crate::helpers::*;
use crate::rest::{Call, send};

/// What a client learns from an answer, whichever the front door.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    success: bool,
    title: Option<String>,
    code: Option<String>,
    parameter: Option<String>,
    reason: Option<String>,
    violations: Vec<String>,
}

fn over_soap(app: &TestApp, caller: (&str, &str, &str), target: &str, password: &str) -> Seen {
    let reply = app.change(Soap::V12, caller, target, password);
    Seen {
        success: reply.is_success(),
        title: reply.fault_string(),
        code: reply.text("code"),
        parameter: reply.text("parameter"),
        reason: reply.text("reason"),
        violations: reply.texts("violation"),
    }
}

fn over_rest(app: &TestApp, caller: (&str, &str, &str), target: &str, password: &str) -> Seen {
    let reply = send(
        app,
        Call::patch(target, json!({ "password": password })).by(caller),
    );
    let text = |key: &str| reply.json[key].as_str().map(str::to_string);
    Seen {
        success: reply.status == 200 && reply.json["success"] == true,
        title: text("title"),
        code: text("code"),
        parameter: text("parameter"),
        reason: text("reason"),
        violations: reply.json["violations"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[test]
fn soap_and_rest_give_the_same_outcome_for_every_case() {
    let strong = |n: u32| format!("{STRONG}-{n}");
    let cases: Vec<((&str, &str, &str), &str, String)> = vec![
        (ADMIN, LEARNER.0, strong(1)),
        (EMEA_ADMIN, TRAINER.0, strong(2)),
        (EMEA_ADMIN, ENGINEER.0, strong(3)),
        (ADMIN, FORMER.0, strong(4)),
        (ADMIN, SSO.0, strong(5)),
        (ADMIN, "u-nobody", strong(6)),
        (ADMIN, LEARNER2.0, "learner2".into()),
        (
            (ADMIN.0, ADMIN.1, "not-the-password"),
            LEARNER2.0,
            strong(7),
        ),
        (ADMIN, OWNER.0, strong(8)),
        (LEARNER2, LEARNER2.0, LEARNER2.2.into()),
        (ADMIN, ADMIN2.0, strong(9)),
        (HELP, LEARNER.0, strong(10)),
        (HELP, LEARNER.0, strong(10)),
        (ADMIN, LEARNER.0, String::new()),
        (ADMIN, LEARNER.0, "x".repeat(200)),
        (SALES_ADMIN, EMEA_ADMIN.0, strong(11)),
        (ENG_ADMIN, ENGINEER.0, "engineer@example.com-Zq9".into()),
    ];
    let (soap, rest) = (spawn_app(), spawn_app());
    let mut outcomes = Vec::new();
    for (caller, target, password) in &cases {
        let a = over_soap(&soap, *caller, target, password);
        let b = over_rest(&rest, *caller, target, password);
        assert_eq!(a, b, "{} → {target}", caller.1);
        outcomes.push(a.code.unwrap_or_else(|| "OK".into()));
    }
    // The table covers every outcome.
    for code in [
        "OK",
        "WRONG_PARAMETERS",
        "AUTHENTICATION_FAILED",
        "UNKNOWN_USER",
        "PERMISSION_DENIED",
    ] {
        assert!(outcomes.iter().any(|o| o == code), "{code}: {outcomes:?}");
    }
}
