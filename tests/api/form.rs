//! The reset form (contract §12): the page, its security headers, its anti-forgery
//! check, the violations in words, the one page of an invalid link.

use serde_json::json;

use crate::batch::credential_version;
use crate::helpers::*;
use crate::rest::{Call, send};

/// A link for `user`, returned to the admin.
fn link_for(app: &TestApp, user: &str) -> String {
    let reply = send(
        app,
        Call {
            method: reqwest::Method::POST,
            path: "/api/password-resets".into(),
            basic: Some((ADMIN.1, ADMIN.2)),
            account: Some(ACCOUNT),
            body: Some(json!({"userIds": [user], "delivery": "return"})),
        },
    );
    reply.json["items"][0]["link"].as_str().unwrap().to_string()
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Page {
    let resp = client.get(url).send().unwrap();
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().unwrap(),
    }
}

fn post(
    client: &reqwest::blocking::Client,
    url: &str,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> Page {
    post_with(client, url, &[("Origin", origin)], form)
}

/// POSTs the form with each header whose value is given.
fn post_with(
    client: &reqwest::blocking::Client,
    url: &str,
    headers: &[(&str, Option<&str>)],
    form: &[(&str, &str)],
) -> Page {
    let mut req = client.post(url).form(form);
    for (name, value) in headers {
        if let Some(value) = value {
            req = req.header(*name, *value);
        }
    }
    let resp = req.send().unwrap();
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().unwrap(),
    }
}

#[track_caller]
fn assert_secure_headers(page: &Page) {
    let h = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(h("cache-control"), "no-store");
    assert_eq!(h("referrer-policy"), "no-referrer");
    assert_eq!(h("x-content-type-options"), "nosniff");
    let csp = h("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(h("content-type").starts_with("text/html"));
    assert!(!page.body.contains("<script"), "{}", page.body);
}

fn csrf_of(page: &Page) -> String {
    let at = page
        .body
        .find(r#"name="csrf" value=""#)
        .expect("a csrf field")
        + r#"name="csrf" value=""#.len();
    page.body[at..].split('"').next().unwrap().to_string()
}

fn browser() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

#[test]
fn the_form_states_the_policy_explains_violations_and_sets_the_password() {
    let app = spawn_app();
    let link = link_for(&app, LEARNER.0);
    let origin = format!("http://127.0.0.1:{}", app.port);
    let client = browser();
    let form = get(&client, &link);
    assert_eq!(form.status, 200);
    assert_secure_headers(&form);
    for stated in [
        "at least 10",
        "at most 128",
        "e-mail address",
        "common or easily guessed",
        "last 3",
    ] {
        assert!(form.body.contains(stated), "{stated}: {}", form.body);
    }
    assert!(
        form.body.contains(r#"<label for="password">"#)
            && form.body.contains(r#"<label for="passwordConfirm">"#)
    );
    let cookie = form
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let csrf = csrf_of(&form);

    // Refused, in words, with the form again.
    let refused = post(
        &client,
        &link,
        Some(&origin),
        &[
            ("csrf", &csrf),
            ("password", "learner"),
            ("passwordConfirm", "learner"),
        ],
    );
    assert_eq!(refused.status, 400);
    assert_secure_headers(&refused);
    for words in [
        "shorter than 10 characters",
        "contains your e-mail address",
        "common or easily guessed",
    ] {
        assert!(refused.body.contains(words), "{words}: {}", refused.body);
    }
    let differ = post(
        &client,
        &link,
        Some(&origin),
        &[
            ("csrf", &csrf),
            ("password", STRONG),
            ("passwordConfirm", "other"),
        ],
    );
    assert!(
        differ.body.contains("The two passwords you typed differ"),
        "{}",
        differ.body
    );
    assert_eq!(credential_version(&app, LEARNER.0), 1);

    // Set.
    let done = post(
        &client,
        &link,
        Some(&origin),
        &[
            ("csrf", &csrf),
            ("password", STRONG),
            ("passwordConfirm", STRONG),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_secure_headers(&done);
    assert!(done.body.contains("Your password is changed"));
    assert_eq!(credential_version(&app, LEARNER.0), 2);
    assert!(
        app.change(
            Soap::V11,
            (LEARNER.0, LEARNER.1, STRONG),
            LEARNER.0,
            &format!("{STRONG}-2")
        )
        .is_success()
    );

    // Used: the one page of an invalid link, for GET and POST alike.
    let gone = get(&client, &link);
    assert_eq!(gone.status, 410);
    assert_secure_headers(&gone);
    assert!(gone.body.contains("no longer valid"));
    let unknown = get(&client, &format!("{origin}/reset/not-a-link"));
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (410, gone.body.clone())
    );
    let stylesheet = client
        .get(format!("{origin}/assets/reset.css"))
        .send()
        .unwrap();
    assert_eq!(stylesheet.status().as_u16(), 200);
    assert!(
        stylesheet.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

#[test]
fn a_forged_submission_is_refused() {
    let app = spawn_app();
    let link = link_for(&app, TRAINER.0);
    let origin = format!("http://127.0.0.1:{}", app.port);
    let client = browser();
    let csrf = csrf_of(&get(&client, &link));
    let good = [
        ("csrf", csrf.as_str()),
        ("password", STRONG),
        ("passwordConfirm", STRONG),
    ];
    // Another site's form (its Origin), a client without the cookie, a wrong token.
    let elsewhere = post(&client, &link, Some("https://evil.example"), &good);
    assert_eq!(elsewhere.status, 403);
    assert_secure_headers(&elsewhere);
    let no_cookie = post(
        &reqwest::blocking::Client::new(),
        &link,
        Some(&origin),
        &good,
    );
    assert_eq!(no_cookie.status, 403);
    let wrong = post(
        &client,
        &link,
        Some(&origin),
        &[
            ("csrf", "guessed"),
            ("password", STRONG),
            ("passwordConfirm", STRONG),
        ],
    );
    assert_eq!(wrong.status, 403);
    // A browser that says the form comes from another site.
    for site in ["cross-site", "same-site", "none"] {
        let other = post_with(
            &client,
            &link,
            &[("Origin", Some("null")), ("Sec-Fetch-Site", Some(site))],
            &good,
        );
        assert_eq!(other.status, 403, "Sec-Fetch-Site: {site}");
    }
    assert_eq!(credential_version(&app, TRAINER.0), 1);
    // The link is still good for the real form, sent as Chromium sends it from a page
    // with `Referrer-Policy: no-referrer`: `Origin: null`, `Sec-Fetch-Site: same-origin`.
    let done = post_with(
        &client,
        &link,
        &[
            ("Origin", Some("null")),
            ("Sec-Fetch-Site", Some("same-origin")),
        ],
        &good,
    );
    assert_eq!(done.status, 200, "{}", done.body);
}

#[test]
fn the_form_works_whatever_self_service_says() {
    let json =
        soap_passwd::demo::DEMO_JSON.replace(r#""self_service": true"#, r#""self_service": false"#);
    assert!(json.contains(r#""self_service": false"#));
    let app = spawn_app_with(&json, |_| {});
    let link = link_for(&app, LEARNER.0);
    let origin = format!("http://127.0.0.1:{}", app.port);
    let client = browser();
    let csrf = csrf_of(&get(&client, &link));
    let done = post(
        &client,
        &link,
        Some(&origin),
        &[
            ("csrf", &csrf),
            ("password", STRONG),
            ("passwordConfirm", STRONG),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.body);
}
