//! The REST/JSON twin (contract §13): HTTP Basic with `X-Account-Url` or the host,
//! `currentPassword` self-changes, RFC 9457 problems, the OpenAPI document.

use serde_json::{Value, json};
use soap_passwd::demo::DEMO_JSON;

use crate::batch::credential_version;
use crate::helpers::*;

/// A REST call as a client sends it.
pub struct Call<'a> {
    pub method: reqwest::Method,
    pub path: String,
    pub basic: Option<(&'a str, &'a str)>,
    pub account: Option<&'a str>,
    pub body: Option<Value>,
}

impl Call<'_> {
    pub fn patch(user_id: &str, body: Value) -> Call<'static> {
        Call {
            method: reqwest::Method::PATCH,
            path: format!("/api/users/{user_id}/password"),
            basic: None,
            account: Some(ACCOUNT),
            body: Some(body),
        }
    }
}

impl<'a> Call<'a> {
    pub fn by(mut self, caller: (&'a str, &'a str, &'a str)) -> Self {
        self.basic = Some((caller.1, caller.2));
        self
    }
}

/// The status and parsed JSON of a REST answer; the problem's media type checked.
pub struct JsonReply {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub json: Value,
}

pub fn send(app: &TestApp, call: Call<'_>) -> JsonReply {
    let url = format!("http://127.0.0.1:{}{}", app.port, call.path);
    let mut req = app.client.request(call.method, url);
    if let Some((email, password)) = call.basic {
        req = req.basic_auth(email, Some(password));
    }
    if let Some(account) = call.account {
        req = req.header("X-Account-Url", account);
    }
    if let Some(body) = call.body {
        req = req
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().expect("request sent");
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    let text = resp.text().expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    JsonReply {
        status,
        content_type,
        www_authenticate,
        json,
    }
}

/// Asserts `reply` is the problem of `status` with `code`; returns its JSON.
#[track_caller]
pub fn assert_problem(reply: &JsonReply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status, status, "{}", reply.json);
    assert_eq!(
        reply.content_type, "application/problem+json",
        "{}",
        reply.json
    );
    assert_eq!(reply.json["code"], code, "{}", reply.json);
    assert_eq!(reply.json["status"], status, "{}", reply.json);
    let kind = reply.json["type"].as_str().unwrap_or_default();
    assert!(kind.starts_with("urn:soap-passwd:problem:"), "{kind}");
    assert!(reply.json["detail"].as_str().is_some_and(|d| !d.is_empty()));
    reply.json.clone()
}

#[test]
fn an_administrator_sets_a_password_with_basic_auth() {
    let app = spawn_app();
    let reply = send(
        &app,
        Call::patch(LEARNER.0, json!({"password": STRONG})).by(ADMIN),
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json, json!({"success": true}));
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(credential_version(&app, LEARNER.0), 2);
    let via: String = app
        .db()
        .query_row("SELECT via FROM events ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(via, "rest");
    // The new password signs in, over SOAP too: one implementation of every rule.
    let soap = app.change(
        Soap::V11,
        (LEARNER.0, LEARNER.1, STRONG),
        LEARNER.0,
        &format!("{STRONG}-2"),
    );
    assert!(soap.is_success(), "{}", soap.body);
    // The audit row is the SOAP call's.
    let condition = format!(
        "outcome = 'OK' AND target_ext_id = '{}' AND caller_email = '{}'",
        LEARNER.0, ADMIN.1
    );
    assert_eq!(app.audit_rows_where(&condition, 1), 1);
}

#[test]
fn the_account_is_the_header_else_the_host() {
    let app = spawn_app();
    let url = format!(
        "http://127.0.0.1:{}/api/users/{}/password",
        app.port, LEARNER.0
    );
    let resp = app
        .client
        .patch(&url)
        .basic_auth(ADMIN.1, Some(ADMIN.2))
        .header("Host", "myaccount.ispringlearn.com:8443")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(json!({"password": STRONG}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Another host names another (unknown) account: authentication fails.
    let resp = app
        .client
        .patch(&url)
        .basic_auth(ADMIN.1, Some(ADMIN.2))
        .header("Host", "other.example.com")
        .header("Content-Type", "application/json")
        .body(json!({"password": format!("{STRONG}-x")}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[test]
fn a_self_change_with_current_password_needs_no_authorization() {
    let app = spawn_app();
    let reply = send(
        &app,
        Call::patch(
            LEARNER.0,
            json!({"password": STRONG, "currentPassword": LEARNER.2}),
        ),
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    let reply = send(
        &app,
        Call::patch(
            LEARNER.0,
            json!({"password": format!("{STRONG}-x"), "currentPassword": "wrong-one"}),
        ),
    );
    let problem = assert_problem(&reply, 401, "AUTHENTICATION_FAILED");
    assert_eq!(problem["title"], "Authorization failed");
    assert!(
        reply
            .www_authenticate
            .as_deref()
            .is_some_and(|h| h.starts_with("Basic realm=\"soap-passwd\""))
    );
    // An unknown user id fails the same way.
    let reply = send(
        &app,
        Call::patch(
            "u-nobody",
            json!({"password": STRONG, "currentPassword": "whatever-1"}),
        ),
    );
    assert_problem(&reply, 401, "AUTHENTICATION_FAILED");
    // Neither Authorization nor currentPassword: 401 with the challenge.
    let reply = send(&app, Call::patch(LEARNER.0, json!({"password": STRONG})));
    assert_problem(&reply, 401, "AUTHENTICATION_FAILED");
    assert!(reply.www_authenticate.is_some());
}

#[test]
fn a_user_id_sign_in_shares_the_e_mails_lockout() {
    let app = spawn_app_with(DEMO_JSON, |s| s.defences.policy.pair_threshold = 3);
    for _ in 0..2 {
        let reply = send(
            &app,
            Call::patch(
                LEARNER.0,
                json!({"password": STRONG, "currentPassword": "wrong-pass-1"}),
            ),
        );
        assert_problem(&reply, 401, "AUTHENTICATION_FAILED");
    }
    let reply = send(
        &app,
        Call::patch(LEARNER.0, json!({"password": STRONG})).by((
            LEARNER.0,
            LEARNER.1,
            "wrong-pass-2",
        )),
    );
    assert_problem(&reply, 401, "AUTHENTICATION_FAILED");
    // The pair is locked: the right password fails by e-mail and by id alike.
    let reply = send(
        &app,
        Call::patch(LEARNER.0, json!({"password": STRONG})).by(LEARNER),
    );
    assert_problem(&reply, 401, "AUTHENTICATION_FAILED");
    let reply = send(
        &app,
        Call::patch(
            LEARNER.0,
            json!({"password": STRONG, "currentPassword": LEARNER.2}),
        ),
    );
    assert_problem(&reply, 401, "AUTHENTICATION_FAILED");
    assert_eq!(credential_version(&app, LEARNER.0), 1);
}

#[test]
fn every_problem_has_its_status_code_and_extras() {
    let app = spawn_app();
    // 400: the policy, with every violation.
    let reply = send(
        &app,
        Call::patch(LEARNER.0, json!({"password": "learner"})).by(ADMIN),
    );
    let p = assert_problem(&reply, 400, "WRONG_PARAMETERS");
    assert_eq!(p["title"], "Wrong parameters");
    assert_eq!(p["parameter"], "password");
    assert_eq!(
        p["violations"],
        json!(["TOO_SHORT", "CONTAINS_EMAIL", "TOO_COMMON"])
    );
    // 400: confirmation.
    let reply = send(
        &app,
        Call::patch(
            LEARNER.0,
            json!({"password": STRONG, "passwordConfirm": "other"}),
        )
        .by(ADMIN),
    );
    let p = assert_problem(&reply, 400, "WRONG_PARAMETERS");
    assert_eq!(
        (p["parameter"].clone(), p["violations"].clone()),
        (json!("passwordConfirm"), json!(["CONFIRM_MISMATCH"]))
    );
    // 400: a member of the wrong type is named, and nothing sent is echoed.
    let reply = send(
        &app,
        Call::patch(LEARNER.0, json!({"password": 4242424242u64})).by(ADMIN),
    );
    let p = assert_problem(&reply, 400, "WRONG_PARAMETERS");
    assert_eq!(p["parameter"], "password");
    assert!(!p.to_string().contains("4242424242"), "{p}");
    let reply = send(
        &app,
        Call::patch(LEARNER.0, json!({"password": STRONG, "temporary": "yes"})).by(ADMIN),
    );
    assert_eq!(
        assert_problem(&reply, 400, "WRONG_PARAMETERS")["parameter"],
        "temporary"
    );
    // 400: missing password; a body that is not an object.
    let reply = send(&app, Call::patch(LEARNER.0, json!({})).by(ADMIN));
    assert_eq!(
        assert_problem(&reply, 400, "WRONG_PARAMETERS")["parameter"],
        "password"
    );
    let reply = send(&app, Call::patch(LEARNER.0, json!([1, 2])).by(ADMIN));
    assert_eq!(
        assert_problem(&reply, 400, "WRONG_PARAMETERS")["parameter"],
        "body"
    );
    // 403 with the reason; 404.
    let reply = send(
        &app,
        Call::patch(ENGINEER.0, json!({"password": STRONG})).by(EMEA_ADMIN),
    );
    let p = assert_problem(&reply, 403, "PERMISSION_DENIED");
    assert_eq!(
        (p["title"].clone(), p["reason"].clone()),
        (json!("Permission denied"), json!("NOT_IN_SCOPE"))
    );
    let reply = send(
        &app,
        Call::patch("u-nobody", json!({"password": STRONG})).by(ADMIN),
    );
    assert_eq!(
        assert_problem(&reply, 404, "UNKNOWN_USER")["title"],
        "Unknown user"
    );
    // A malformed Authorization header is a wrong parameter naming it.
    let url = format!(
        "http://127.0.0.1:{}/api/users/{}/password",
        app.port, LEARNER.0
    );
    for bad in ["Bearer abc", "Basic !!!", "Basic bm9jb2xvbg=="] {
        let resp = app
            .client
            .patch(&url)
            .header("Authorization", bad)
            .header("X-Account-Url", ACCOUNT)
            .header("Content-Type", "application/json")
            .body(json!({"password": STRONG}).to_string())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
        let p: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
        assert_eq!(p["parameter"], "Authorization", "{bad}");
    }
    assert_eq!(credential_version(&app, LEARNER.0), 1);
    assert_eq!(credential_version(&app, ENGINEER.0), 1);
}

#[test]
fn bodies_that_are_not_json_are_refused_precisely_and_the_service_stays_up() {
    let app = spawn_app();
    let url = format!(
        "http://127.0.0.1:{}/api/users/{}/password",
        app.port, LEARNER.0
    );
    let raw = |content_type: &str, body: Vec<u8>| {
        let resp = app
            .client
            .patch(&url)
            .basic_auth(ADMIN.1, Some(ADMIN.2))
            .header("X-Account-Url", ACCOUNT)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let json: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
        (status, ct, json)
    };
    let (status, ct, p) = raw("text/plain", b"{}".to_vec());
    assert_eq!(
        (status, ct.as_str(), p["code"].as_str()),
        (
            415,
            "application/problem+json",
            Some("UNSUPPORTED_MEDIA_TYPE")
        )
    );
    for body in [
        &b"{not json"[..],
        b"",
        b"\xff\xfe",
        b"{\"password\": \"a\"} trailing",
        b"nul\x00",
    ] {
        let (status, _, p) = raw("application/json", body.to_vec());
        assert_eq!(
            (status, p["parameter"].as_str()),
            (400, Some("body")),
            "{body:?}"
        );
    }
    let (status, _, p) = raw("application/json", vec![b' '; 300 * 1024]);
    assert_eq!((status, p["code"].as_str()), (413, Some("TOO_LARGE")));
    // Deeply nested JSON is refused, not a crash.
    let deep = format!(
        "{{\"password\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (status, _, p) = raw("application/json", deep.into_bytes());
    assert_eq!(status, 400, "{p}");
    // Unknown members are ignored; null is absent; +json media types are JSON.
    let (status, _, p) = raw(
        "application/merge-patch+json",
        json!({"password": STRONG, "passwordConfirm": null, "colour": "blue"})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(credential_version(&app, LEARNER.0), 2);
    // Other methods are not routes.
    let resp = app.client.delete(&url).send().unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[test]
fn the_status_reads_as_json() {
    let app = spawn_app();
    let reply = send(
        &app,
        Call {
            method: reqwest::Method::GET,
            path: format!("/api/users/{}/password", FORMER.0),
            basic: Some((ADMIN.1, ADMIN.2)),
            account: Some(ACCOUNT),
            body: None,
        },
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    let mut keys: Vec<&str> = reply
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    // No lockedUntil: the pair is not locked.
    assert_eq!(
        keys,
        [
            "credentialVersion",
            "externallyManaged",
            "passwordChangedAt",
            "resetPending",
            "status",
            "temporary",
            "userId"
        ]
    );
    assert_eq!(reply.json["status"], "deactivated");
    assert_eq!(reply.json["credentialVersion"], 1);
    // Without Basic: 401.
    let reply = send(
        &app,
        Call {
            method: reqwest::Method::GET,
            path: format!("/api/users/{}/password", FORMER.0),
            basic: None,
            account: Some(ACCOUNT),
            body: None,
        },
    );
    assert_problem(&reply, 401, "AUTHENTICATION_FAILED");
}

#[test]
fn a_batch_over_rest_answers_each_item() {
    let app = spawn_app_with(DEMO_JSON, |s| {
        s.limits = soap_passwd::soap::Limits::for_batch(3)
    });
    let batch = |items: Value| Call {
        method: reqwest::Method::POST,
        path: "/api/passwords".into(),
        basic: Some((EMEA_ADMIN.1, EMEA_ADMIN.2)),
        account: Some(ACCOUNT),
        body: Some(json!({ "items": items })),
    };
    let reply = send(
        &app,
        batch(json!([
            {"userId": LEARNER.0, "password": STRONG},
            {"userId": TRAINER.0, "password": STRONG},
            {"userId": "u-nobody", "password": STRONG, "temporary": true},
        ])),
    );
    assert_eq!(reply.status, 200, "{}", reply.json);
    let items = reply.json["items"].as_array().unwrap();
    assert_eq!(items[0], json!({"userId": LEARNER.0, "success": true}));
    assert_eq!(items[1]["problem"]["reason"], "OUTRANKS_CALLER");
    assert_eq!(items[1]["problem"]["status"], 403);
    assert_eq!(items[2]["problem"]["code"], "UNKNOWN_USER");
    // Whole-call problems apply nothing.
    for (items, parameter) in [
        (json!([]), "items"),
        (
            json!([{"userId": "a", "password": STRONG}, {"userId": "b", "password": STRONG}, {"userId": "c", "password": STRONG}, {"userId": "d", "password": STRONG}]),
            "items",
        ),
        (
            json!([{"userId": TRAINER.0, "password": STRONG}, {"userId": TRAINER.0, "password": STRONG}]),
            "items/userId",
        ),
        (json!([{"userId": TRAINER.0}]), "items/password"),
        (json!([{"password": STRONG}]), "items/userId"),
        (json!([{"userId": 7, "password": STRONG}]), "items/userId"),
        (json!({"userId": TRAINER.0}), "items"),
    ] {
        let reply = send(&app, batch(items));
        assert_eq!(
            assert_problem(&reply, 400, "WRONG_PARAMETERS")["parameter"],
            parameter
        );
    }
    let mut no_items = batch(json!([]));
    no_items.body = Some(json!({}));
    assert_eq!(
        assert_problem(&send(&app, no_items), 400, "WRONG_PARAMETERS")["parameter"],
        "items"
    );
    assert_eq!(credential_version(&app, TRAINER.0), 1);
    assert_eq!(credential_version(&app, LEARNER.0), 2);
}

#[test]
fn the_openapi_document_describes_every_route() {
    let app = spawn_app();
    let reply = app.get("/api/openapi.json");
    assert_eq!(reply.status, 200);
    let doc: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method, operation) in [
        (
            "/api/users/{userId}/password",
            "patch",
            "UpdateUserPassword",
        ),
        (
            "/api/users/{userId}/password",
            "get",
            "GetUserPasswordStatus",
        ),
        ("/api/passwords", "post", "UpdateUserPasswords"),
    ] {
        assert_eq!(
            doc["paths"][path][method]["operationId"], operation,
            "{path} {method}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["basic"]["scheme"],
        "basic"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[test]
fn load_beyond_the_hashing_slots_is_a_503_problem_with_retry_after() {
    use std::sync::{Arc, Barrier};
    let app = Arc::new(spawn_app_with(DEMO_JSON, |s| {
        s.hash_slots = 1;
        s.hash_wait = std::time::Duration::from_millis(5);
    }));
    let targets = [
        LEARNER.0,
        LEARNER2.0,
        ENGINEER.0,
        TRAINER.0,
        HELP.0,
        SALES_ADMIN.0,
        EMEA_ADMIN.0,
        ENG_ADMIN.0,
    ];
    let mut busy = Vec::new();
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(targets.len()));
        let threads: Vec<_> = targets
            .iter()
            .map(|&target| {
                let (app, barrier) = (app.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    send(
                        &app,
                        Call::patch(
                            target,
                            json!({"password": format!("{STRONG}-busy-{round}")}),
                        )
                        .by(ADMIN),
                    )
                })
            })
            .collect();
        busy.extend(
            threads
                .into_iter()
                .map(|t| t.join().expect("client"))
                .filter(|r| r.status != 200),
        );
        if !busy.is_empty() {
            break;
        }
    }
    assert!(!busy.is_empty(), "nothing was shed");
    for reply in &busy {
        let p = assert_problem(reply, 503, "SERVER_BUSY");
        assert_eq!(p["title"], "Server busy");
    }
    let url = format!(
        "http://127.0.0.1:{}/api/users/{}/password",
        app.port, LEARNER.0
    );
    // The header, checked on a fresh shed answer.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (client, url) = (app.client.clone(), url.clone());
            std::thread::spawn(move || {
                client
                    .patch(&url)
                    .basic_auth(ADMIN.1, Some(ADMIN.2))
                    .header("X-Account-Url", ACCOUNT)
                    .header("Content-Type", "application/json")
                    .body(json!({"password": format!("{STRONG}-again-{i}")}).to_string())
                    .send()
                    .expect("sent")
            })
        })
        .collect();
    for resp in threads.into_iter().map(|t| t.join().expect("client")) {
        if resp.status().as_u16() == 503 {
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            assert!(retry.is_some_and(|s| s >= 1));
        }
    }
}

#[test]
fn a_member_given_twice_is_named_and_the_batch_rules_come_before_sign_in() {
    let app = spawn_app_with(DEMO_JSON, |s| s.body_limit = 1 << 20);
    let url = format!(
        "http://127.0.0.1:{}/api/users/{}/password",
        app.port, LEARNER.0
    );
    let resp = app
        .client
        .patch(&url)
        .basic_auth(ADMIN.1, Some(ADMIN.2))
        .header("X-Account-Url", ACCOUNT)
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"password": "{STRONG}", "password": "{STRONG}-2"}}"#
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let p: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
    assert_eq!(p["parameter"], "password", "{p}");
    assert!(!p.to_string().contains(STRONG), "{p}");
    // A userId twice with no credentials at all: the parameters are wrong first (400),
    // as over SOAP, not a 401.
    let reply = send(
        &app,
        Call {
            method: reqwest::Method::POST,
            path: "/api/passwords".into(),
            basic: None,
            account: Some(ACCOUNT),
            body: Some(json!({"items": [
                {"userId": TRAINER.0, "password": STRONG},
                {"userId": TRAINER.0, "password": STRONG}
            ]})),
        },
    );
    assert_eq!(
        assert_problem(&reply, 400, "WRONG_PARAMETERS")["parameter"],
        "items/userId"
    );
    // A list longer than any batch is not read into memory: refused, naming it.
    let items = format!("[{}{{}}]", "{},".repeat(100_000));
    let resp = app
        .client
        .post(format!("http://127.0.0.1:{}/api/passwords", app.port))
        .basic_auth(ADMIN.1, Some(ADMIN.2))
        .header("X-Account-Url", ACCOUNT)
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"items": {items}}}"#))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let p: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
    assert_eq!(p["parameter"], "items", "{p}");
}
