//! What legacy and enterprise clients send besides the contract's example: WS-Security
//! UsernameToken instead of body credentials (the account taken from the HTTP host),
//! bodies in ISO-8859-1, windows-1252 or UTF-16, and HTTP/1.x framing that reqwest
//! never produces (chunked uploads, `Expect: 100-continue`, HTTP/1.0, keep-alive).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use encoding_rs::WINDOWS_1252;
use quick_xml::events::Event;
use soap_passwd::demo::DEMO_JSON;

use crate::helpers::*;

// --------------------------------------------------------------------------- WS-Security

const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const TOKEN_PROFILE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";
/// The host of the demo account, as a client addressing it sends it.
const ACCOUNT_HOST: &str = "myaccount.ispringlearn.com";

/// The envelope prefix real stacks use: `SOAP-ENV` (1.1) and `env` (1.2).
fn prefix(v: Soap) -> &'static str {
    match v {
        Soap::V11 => "SOAP-ENV",
        Soap::V12 => "env",
    }
}

/// An envelope of `v` with a Header holding `header`.
fn envelope(v: Soap, header: &str, body: &str) -> String {
    let p = prefix(v);
    format!(
        r#"<{p}:Envelope xmlns:{p}="{}"><{p}:Header>{header}</{p}:Header><{p}:Body>{body}</{p}:Body></{p}:Envelope>"#,
        v.ns()
    )
}

/// A `wsse:Security` header block around `content`, mandatory (`mustUnderstand`) or not.
fn security(v: Soap, mandatory: bool, content: &str) -> String {
    let must = match (mandatory, v) {
        (false, _) => String::new(),
        (true, Soap::V11) => r#" SOAP-ENV:mustUnderstand="1""#.to_string(),
        (true, Soap::V12) => r#" env:mustUnderstand="true""#.to_string(),
    };
    format!(r#"<wsse:Security xmlns:wsse="{WSSE_NS}"{must}>{content}</wsse:Security>"#)
}

/// A `wsse:UsernameToken`; `None` leaves the element out. `password_type` is the
/// fragment of the Password's `Type` (`"#PasswordText"`), or `None` for no `Type`.
fn username_token(
    username: Option<&str>,
    password: Option<&str>,
    password_type: Option<&str>,
) -> String {
    let username = username
        .map(|u| format!("<wsse:Username>{}</wsse:Username>", esc(u)))
        .unwrap_or_default();
    let type_attr = password_type
        .map(|t| format!(r#" Type="{TOKEN_PROFILE}{t}""#))
        .unwrap_or_default();
    let password = password
        .map(|p| format!("<wsse:Password{type_attr}>{}</wsse:Password>", esc(p)))
        .unwrap_or_default();
    format!("<wsse:UsernameToken>{username}{password}</wsse:UsernameToken>")
}

/// A `PasswordText` token for `caller`'s e-mail with `password`.
fn text_token(caller: (&str, &str, &str), password: &str) -> String {
    username_token(Some(caller.1), Some(password), Some("#PasswordText"))
}

/// A PasswordDigest token as WSS4J, WCF or SoapUI send it (digest, nonce, created).
fn digest_token(caller: (&str, &str, &str)) -> String {
    format!(
        r#"<wsse:UsernameToken xmlns:wsu="{WSU_NS}" wsu:Id="UsernameToken-1"><wsse:Username>{}</wsse:Username><wsse:Password Type="{TOKEN_PROFILE}#PasswordDigest">kYnOvQ0tEJ0ZtYcO3ZUv4dZ1UpE=</wsse:Password><wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">fa8aGTb0G2Xfz7MZSRM1Hw==</wsse:Nonce><wsu:Created>2024-05-01T10:00:00.000Z</wsu:Created></wsse:UsernameToken>"#,
        caller.1
    )
}

/// An `UpdateUserPasswordRequest` without `credentials`: the caller is in the header.
fn operation(user_id: &str, new_password: &str) -> String {
    format!(
        r#"<UpdateUserPasswordRequest xmlns="{API_NS}"><userId>{}</userId><password>{}</password></UpdateUserPasswordRequest>"#,
        esc(user_id),
        esc(new_password)
    )
}

/// POSTs `xml` in `v`'s Content-Type with a `Host` header, plus `extra` headers.
fn post_to(app: &TestApp, v: Soap, host: &str, xml: &str, extra: &[(&str, &str)]) -> Reply {
    let mut headers = vec![("Content-Type", v.content_type()), ("Host", host)];
    headers.extend_from_slice(extra);
    app.post_raw(xml.to_string(), &headers)
}

/// POSTs a token-authenticated call addressed to the demo account's host.
fn post_token(app: &TestApp, v: Soap, header: &str, body: &str) -> Reply {
    post_to(app, v, ACCOUNT_HOST, &envelope(v, header, body), &[])
}

#[track_caller]
fn assert_authentication_failed(reply: &Reply, v: Soap) {
    assert_client_fault(
        reply,
        v,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
    assert_eq!(
        reply.text("code").as_deref(),
        Some("AUTHENTICATION_FAILED"),
        "{}",
        reply.body
    );
}

/// Asserts `user` can sign in with `password` sent in UTF-8 body credentials, by changing
/// their own password to `next` (so the stored hash really is of `password`).
#[track_caller]
fn assert_signs_in(app: &TestApp, v: Soap, user: (&str, &str, &str), password: &str, next: &str) {
    let reply = app.change(v, (user.0, user.1, password), user.0, next);
    assert!(
        reply.is_success(),
        "{} cannot sign in with {password:?}: {}",
        user.0,
        reply.body
    );
}

fn request_id(reply: &Reply) -> String {
    reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Request-Id header")
        .to_string()
}

/// One audit row, by request id.
#[derive(Debug, PartialEq, Eq)]
struct AuditRow {
    outcome: String,
    detail: Option<String>,
    account_known: bool,
    account_url: Option<String>,
    caller: Option<String>,
    caller_email: Option<String>,
    target: Option<String>,
    client_addr: String,
}

/// The audit row of the request that got `reply`, waiting for the batch writer.
fn audit_row(app: &TestApp, reply: &Reply) -> AuditRow {
    let request_id = request_id(reply);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = app.db().query_row(
            "SELECT a.outcome, a.detail, a.account_id IS NOT NULL, a.account_url, c.ext_id,
                    a.caller_email, a.target_ext_id, a.client_addr
             FROM audit_log a LEFT JOIN users c ON c.id = a.caller_id WHERE a.request_id = ?1",
            [&request_id],
            |r| {
                Ok(AuditRow {
                    outcome: r.get(0)?,
                    detail: r.get(1)?,
                    account_known: r.get(2)?,
                    account_url: r.get(3)?,
                    caller: r.get(4)?,
                    caller_email: r.get(5)?,
                    target: r.get(6)?,
                    client_addr: r.get(7)?,
                })
            },
        );
        match row {
            Ok(row) => return row,
            Err(crate::testdb::DbError::NoRows) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("audit row of {request_id}: {e}"),
        }
    }
}

#[test]
fn a_username_token_authenticates_a_call_without_body_credentials_by_the_host() {
    let app = spawn_app();
    // SoapUI and WSS4J add a Nonce and Created to PasswordText tokens too, and a Timestamp.
    let with_nonce = |token: String| {
        format!(
            r#"<wsu:Timestamp xmlns:wsu="{WSU_NS}"><wsu:Created>2024-05-01T10:00:00Z</wsu:Created></wsu:Timestamp>{}"#,
            token.replace(
                "</wsse:UsernameToken>",
                &format!(
                    r#"<wsse:Nonce>fa8aGTb0G2Xfz7MZSRM1Hw==</wsse:Nonce><wsu:Created xmlns:wsu="{WSU_NS}">2024-05-01T10:00:00Z</wsu:Created></wsse:UsernameToken>"#
                ),
            )
        )
    };
    // (version, mustUnderstand, Password Type, Nonce and Timestamp, Host as the client spells it)
    let cases = [
        (Soap::V11, false, None, false, ACCOUNT_HOST),
        (
            Soap::V11,
            true,
            Some("#PasswordText"),
            true,
            "MyAccount.iSpringLearn.COM",
        ),
        (Soap::V12, false, Some("#PasswordText"), false, ACCOUNT_HOST),
        (Soap::V12, true, None, true, ACCOUNT_HOST),
    ];
    for (i, (v, mandatory, password_type, nonce, host)) in cases.into_iter().enumerate() {
        let new_password = format!("{STRONG}-token-{i}");
        let mut token = username_token(Some(OWNER.1), Some(OWNER.2), password_type);
        if nonce {
            token = with_nonce(token);
        }
        let xml = envelope(
            v,
            &security(v, mandatory, &token),
            &operation(LEARNER.0, &new_password),
        );
        let reply = post_to(&app, v, host, &xml, &[]);
        assert!(reply.is_success(), "case {i}: {}", reply.body);
        assert!(
            reply
                .content_type
                .starts_with(v.content_type().split(';').next().unwrap_or_default())
        );
        // The password really changed: the learner signs in with it.
        assert_signs_in(
            &app,
            v,
            LEARNER,
            &new_password,
            &format!("{STRONG}-self-{i}"),
        );
    }
}

#[test]
fn a_wrong_token_password_fails_authentication() {
    let app = spawn_app();
    for v in BOTH {
        let reply = post_token(
            &app,
            v,
            &security(v, true, &text_token(OWNER, "Owner-Demo-Pass-0000")),
            &operation(LEARNER.0, STRONG),
        );
        assert_authentication_failed(&reply, v);
    }
    // Nothing changed: the learner still signs in with the demo password.
    assert_signs_in(&app, Soap::V11, LEARNER, LEARNER.2, STRONG);
}

#[test]
fn a_token_for_a_host_that_names_another_or_no_account_fails_authentication() {
    let app = spawn_app();
    for v in BOTH {
        let xml = envelope(
            v,
            &security(v, false, &text_token(OWNER, OWNER.2)),
            &operation(LEARNER.0, STRONG),
        );
        for host in [
            "other.ispringlearn.com",
            "myaccount.ispringlearn.com.evil.example",
        ] {
            let reply = post_to(&app, v, host, &xml, &[]);
            assert_authentication_failed(&reply, v);
        }
        // reqwest's own Host: 127.0.0.1:PORT names no account either.
        let reply = app.post(v, xml.clone());
        assert_authentication_failed(&reply, v);
    }
    // Without any Host (HTTP/1.0) there is no account to authenticate against: the
    // credentials are missing.
    let v = Soap::V11;
    let xml = envelope(
        v,
        &security(v, false, &text_token(OWNER, OWNER.2)),
        &operation(LEARNER.0, STRONG),
    );
    let mut conn = RawConnection::open(&app);
    conn.send(&http_request(
        "HTTP/1.0",
        None,
        &[("Content-Type", v.content_type())],
        xml.as_bytes(),
    ));
    let reply = conn.read_response().reply();
    assert_wrong_parameters(&reply, v, "credentials", &[]);
}

#[test]
fn a_token_without_username_or_password_names_the_missing_field() {
    let app = spawn_app();
    for v in BOTH {
        let cases = [
            (
                username_token(None, Some(OWNER.2), Some("#PasswordText")),
                "Security/UsernameToken/Username",
            ),
            (
                username_token(Some(""), Some(OWNER.2), None),
                "Security/UsernameToken/Username",
            ),
            (
                username_token(Some(OWNER.1), None, None),
                "Security/UsernameToken/Password",
            ),
            (
                username_token(Some(OWNER.1), Some(""), Some("#PasswordText")),
                "Security/UsernameToken/Password",
            ),
        ];
        for (token, parameter) in cases {
            let reply = post_token(
                &app,
                v,
                &security(v, true, &token),
                &operation(LEARNER.0, STRONG),
            );
            assert_wrong_parameters(&reply, v, parameter, &[]);
        }
    }
}

#[test]
fn no_credentials_and_no_usable_token_is_wrong_parameters_naming_credentials() {
    let app = spawn_app();
    let timestamp_only = format!(
        r#"<wsu:Timestamp xmlns:wsu="{WSU_NS}"><wsu:Created>2024-05-01T10:00:00Z</wsu:Created></wsu:Timestamp>"#
    );
    // WSE 2.0's pre-OASIS namespace is not WS-Security 1.0: an optional block in it is ignored.
    let draft_token = format!(
        r#"<wsse:Security xmlns:wsse="http://schemas.xmlsoap.org/ws/2002/07/secext"><wsse:UsernameToken><wsse:Username>{}</wsse:Username><wsse:Password>{}</wsse:Password></wsse:UsernameToken></wsse:Security>"#,
        OWNER.1, OWNER.2
    );
    for v in BOTH {
        for header in [
            String::new(),
            security(v, true, &timestamp_only),
            draft_token.clone(),
        ] {
            let reply = post_token(&app, v, &header, &operation(LEARNER.0, STRONG));
            assert_wrong_parameters(&reply, v, "credentials", &[]);
        }
        // …and a mandatory one is a MustUnderstand fault, as for any unknown block.
        let mandatory = draft_token.replace(
            "<wsse:Security ",
            &format!(
                r#"<wsse:Security {}:mustUnderstand="{}" "#,
                prefix(v),
                if v == Soap::V11 { "1" } else { "true" }
            ),
        );
        let reply = post_token(&app, v, &mandatory, &operation(LEARNER.0, STRONG));
        assert_bare_fault(&reply, v, 500, "MustUnderstand");
    }
}

#[test]
fn a_password_digest_token_fails_authentication_saying_digests_are_unsupported() {
    let app = spawn_app();
    for v in BOTH {
        let header = security(v, true, &digest_token(OWNER));
        let reply = post_token(&app, v, &header, &operation(LEARNER.0, STRONG));
        assert_authentication_failed(&reply, v);
        let message = reply.text("message").unwrap_or_default();
        assert!(
            message.contains("PasswordDigest") && message.contains("not supported"),
            "{message}"
        );
        // Parameters are still checked first: a missing userId is reported as such.
        let no_user_id = format!(
            r#"<UpdateUserPasswordRequest xmlns="{API_NS}"><password>{STRONG}</password></UpdateUserPasswordRequest>"#
        );
        let reply = post_token(&app, v, &header, &no_user_id);
        assert_wrong_parameters(&reply, v, "userId", &[]);
    }
}

#[test]
fn body_credentials_take_precedence_over_a_token() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        // Right body credentials, wrong token: the token is not looked at.
        let new_password = format!("{STRONG}-precedence-{i}");
        let reply = post_token(
            &app,
            v,
            &security(v, true, &text_token(OWNER, "not-the-password")),
            &request(ACCOUNT, OWNER.1, OWNER.2, LEARNER.0, &new_password),
        );
        assert!(reply.is_success(), "{}", reply.body);
        assert_signs_in(
            &app,
            v,
            LEARNER,
            &new_password,
            &format!("{new_password}-x"),
        );

        // Body credentials and a token the middleware got wrong (a digest, two
        // Usernames, elements in the Password): the token is not read, the call succeeds.
        let garbled = [
            digest_token(OWNER),
            format!(
                "<wsse:UsernameToken><wsse:Username>{0}</wsse:Username><wsse:Username>{0}</wsse:Username></wsse:UsernameToken>",
                OWNER.1
            ),
            "<wsse:UsernameToken><wsse:Password><x/></wsse:Password></wsse:UsernameToken>".into(),
        ];
        for (j, token) in garbled.iter().enumerate() {
            let new_password = format!("{STRONG}-garbled-{i}-{j}");
            let reply = post_token(
                &app,
                v,
                &security(v, true, token),
                &request(ACCOUNT, OWNER.1, OWNER.2, LEARNER.0, &new_password),
            );
            assert!(reply.is_success(), "{token}: {}", reply.body);
        }

        // Wrong body credentials, right token: the body decides, and fails.
        let reply = post_token(
            &app,
            v,
            &security(v, true, &text_token(OWNER, OWNER.2)),
            &request(ACCOUNT, OWNER.1, "Owner-Demo-Pass-0000", LEARNER.0, STRONG),
        );
        assert_authentication_failed(&reply, v);
    }
}

/// The same through the real command line: the binary started without and with
/// `--trust-forwarded-host`, a token call whose `Host` names no account and whose
/// `X-Forwarded-Host` names the demo account.
#[test]
fn the_binary_trusts_x_forwarded_host_only_with_its_flag() {
    for (flag, trusted) in [(None, false), (Some("--trust-forwarded-host"), true)] {
        let db = TestDb::fresh();
        let mut args = vec!["--demo"];
        args.extend(flag);
        let server = Served::start(db.arg(), &args, "warn");
        let mut conn = RawConnection::to_port(server.port);
        let v = Soap::V11;
        let xml = envelope(
            v,
            &security(v, true, &text_token(OWNER, OWNER.2)),
            &operation(LEARNER.0, &format!("{STRONG}-flag")),
        );
        conn.send(&http_request(
            "HTTP/1.1",
            Some("127.0.0.1"),
            &[
                ("Content-Type", v.content_type()),
                ("X-Forwarded-Host", ACCOUNT_HOST),
                ("Connection", "close"),
            ],
            xml.as_bytes(),
        ));
        let reply = conn.read_response().reply();
        if trusted {
            assert!(reply.is_success(), "{}", reply.body);
        } else {
            assert_authentication_failed(&reply, v);
        }
    }
}

#[test]
fn x_forwarded_host_is_ignored_unless_the_proxy_is_trusted() {
    let default = spawn_app();
    let trusting = spawn_app_with(DEMO_JSON, |s| s.trust_forwarded_host = true);
    for (i, v) in BOTH.into_iter().enumerate() {
        let call = |app: &TestApp, host: &str, forwarded: &str, tag: &str| {
            let xml = envelope(
                v,
                &security(v, false, &text_token(OWNER, OWNER.2)),
                &operation(LEARNER.0, &format!("{STRONG}-fwd-{tag}-{i}")),
            );
            post_to(
                app,
                v,
                host,
                &xml,
                &[
                    ("X-Forwarded-Host", forwarded),
                    ("X-Forwarded-Proto", "https"),
                ],
            )
        };
        // By default the Host decides, whatever a client claims in X-Forwarded-Host.
        let reply = call(&default, "internal:8080", ACCOUNT_HOST, "a");
        assert_authentication_failed(&reply, v);
        let reply = call(&default, ACCOUNT_HOST, "other.ispringlearn.com", "b");
        assert!(reply.is_success(), "{}", reply.body);

        // Behind a trusted proxy, X-Forwarded-Host decides (its first value).
        let reply = call(
            &trusting,
            "internal:8080",
            &format!("{ACCOUNT_HOST}, proxy.internal"),
            "c",
        );
        assert!(reply.is_success(), "{}", reply.body);
        let reply = call(&trusting, ACCOUNT_HOST, "other.ispringlearn.com", "d");
        assert_authentication_failed(&reply, v);
    }
}

/// The `location` of every `soap:address` / `soap12:address` in a WSDL.
fn address_locations(wsdl: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(wsdl);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) if e.local_name().as_ref() == b"address" => {
                if let Ok(Some(a)) = e.try_get_attribute("location") {
                    out.push(a.unescape_value().expect("attribute").into_owned());
                }
            }
            Ok(Event::Eof) => return out,
            Err(e) => panic!("WSDL not well-formed: {e}"),
            _ => {}
        }
    }
}

#[test]
fn the_wsdl_address_follows_forwarded_headers_only_when_trusted() {
    let wsdl = |app: &TestApp| {
        let resp = app
            .client
            .get(format!("{}?wsdl", app.endpoint))
            .header("Host", "internal:8080")
            .header("X-Forwarded-Host", "passwd.example.com")
            .header("X-Forwarded-Proto", "https")
            .send()
            .expect("WSDL request");
        assert_eq!(resp.status().as_u16(), 200);
        address_locations(&resp.text().expect("WSDL body"))
    };
    assert_eq!(wsdl(&spawn_app()), ["http://internal:8080/soap"; 2]);
    let trusting = spawn_app_with(DEMO_JSON, |s| s.trust_forwarded_host = true);
    assert_eq!(wsdl(&trusting), ["https://passwd.example.com/soap"; 2]);
}

#[test]
fn token_authenticated_attempts_are_audited_like_body_credential_ones() {
    let app = spawn_app();
    let v = Soap::V12;
    let failed = post_token(
        &app,
        v,
        &security(v, true, &text_token(OWNER, "Owner-Demo-Pass-0000")),
        &operation(LEARNER.0, STRONG),
    );
    assert_authentication_failed(&failed, v);
    assert_eq!(
        audit_row(&app, &failed),
        AuditRow {
            outcome: "AUTHENTICATION_FAILED".into(),
            detail: None,
            account_known: true,
            account_url: Some(ACCOUNT_HOST.into()),
            caller: None,
            caller_email: Some(OWNER.1.into()),
            target: Some(LEARNER.0.into()),
            client_addr: "127.0.0.1".into(),
        }
    );

    let ok = post_token(
        &app,
        v,
        &security(v, true, &text_token(OWNER, OWNER.2)),
        &operation(LEARNER.0, STRONG),
    );
    assert!(ok.is_success(), "{}", ok.body);
    assert_eq!(
        audit_row(&app, &ok),
        AuditRow {
            outcome: "OK".into(),
            detail: None,
            account_known: true,
            account_url: Some(ACCOUNT_HOST.into()),
            caller: Some(OWNER.0.into()),
            caller_email: Some(OWNER.1.into()),
            target: Some(LEARNER.0.into()),
            client_addr: "127.0.0.1".into(),
        }
    );

    // A digest token is refused before any lookup, and audited as such.
    let digest = post_token(
        &app,
        v,
        &security(v, true, &digest_token(OWNER)),
        &operation(LEARNER.0, STRONG),
    );
    assert_authentication_failed(&digest, v);
    let row = audit_row(&app, &digest);
    assert_eq!(
        (row.outcome.as_str(), row.detail.as_deref()),
        ("AUTHENTICATION_FAILED", Some("UNSUPPORTED_TOKEN"))
    );
}

// ---------------------------------------------------------------------- legacy encodings

/// The Content-Type of `v` without parameters.
fn media_type(v: Soap) -> &'static str {
    match v {
        Soap::V11 => "text/xml",
        Soap::V12 => "application/soap+xml",
    }
}

/// The owner sets the learner's password to `new_password`.
fn owner_sets_learner(new_password: &str) -> String {
    request(ACCOUNT, OWNER.1, OWNER.2, LEARNER.0, new_password)
}

/// `text` in windows-1252 (what encoding_rs, like browsers, means by ISO-8859-1).
fn windows_1252(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = WINDOWS_1252.encode(text);
    assert!(!unmappable, "not representable in windows-1252: {text}");
    bytes.into_owned()
}

#[test]
fn an_iso_8859_1_request_sets_a_password_the_user_then_signs_in_with_in_utf8() {
    let app = spawn_app();
    for (v, new_password) in [
        (Soap::V11, "Passwört-Ünïcode-1"),
        (Soap::V12, "Passwört-Ünïcode-2"),
    ] {
        let xml = format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1"?>{}"#,
            envelope(v, "", &owner_sets_learner(new_password))
        );
        let body = windows_1252(&xml);
        assert!(body.contains(&0xF6), "ö is one Latin-1 byte");
        let reply = app.post_raw(body, &[("Content-Type", media_type(v))]);
        assert!(reply.is_success(), "{}", reply.body);
        assert_signs_in(&app, v, LEARNER, new_password, &format!("{STRONG}-{v:?}"));
    }
}

#[test]
fn a_content_type_charset_decodes_a_body_without_xml_declaration() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let new_password = format!("Grüße-aus-Köln-{i}");
        let body = windows_1252(&envelope(v, "", &owner_sets_learner(&new_password)));
        let content_type = format!("{}; charset=ISO-8859-1", media_type(v));
        let reply = app.post_raw(body, &[("Content-Type", &content_type)]);
        assert!(reply.is_success(), "{}", reply.body);
        assert_signs_in(&app, v, LEARNER, &new_password, &format!("{STRONG}-{i}"));
    }
}

#[test]
fn windows_1252_bytes_0x80_to_0x9f_decode_as_windows_1252() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let new_password = format!("Preis-€-Ünïcode-{i}");
        let xml = format!(
            r#"<?xml version="1.0" encoding="windows-1252"?>{}"#,
            envelope(v, "", &owner_sets_learner(&new_password))
        );
        let body = windows_1252(&xml);
        assert!(body.contains(&0x80), "€ is 0x80 in windows-1252");
        let reply = app.post_raw(body, &[("Content-Type", media_type(v))]);
        assert!(reply.is_success(), "{}", reply.body);
        assert_signs_in(&app, v, LEARNER, &new_password, &format!("{STRONG}-{i}"));
    }
}

#[test]
fn utf16_bodies_with_a_byte_order_mark_are_decoded() {
    let app = spawn_app();
    let mut n = 0;
    for v in BOTH {
        for big_endian in [false, true] {
            n += 1;
            let new_password = format!("Passwört-Ünïcode-16-{n}-€");
            let xml = format!(
                r#"<?xml version="1.0" encoding="UTF-16"?>{}"#,
                envelope(v, "", &owner_sets_learner(&new_password))
            );
            let mut body = if big_endian {
                vec![0xFE, 0xFF]
            } else {
                vec![0xFF, 0xFE]
            };
            for unit in xml.encode_utf16() {
                body.extend(if big_endian {
                    unit.to_be_bytes()
                } else {
                    unit.to_le_bytes()
                });
            }
            // The byte-order mark outranks any charset, even a wrong one.
            let content_type = if big_endian {
                media_type(v).to_string()
            } else {
                format!("{}; charset=utf-8", media_type(v))
            };
            let reply = app.post_raw(body, &[("Content-Type", &content_type)]);
            assert!(reply.is_success(), "{v:?} BE={big_endian}: {}", reply.body);
            assert_signs_in(&app, v, LEARNER, &new_password, &format!("{STRONG}-{n}"));
        }
    }
}

#[test]
fn the_http_charset_wins_over_a_conflicting_xml_declaration() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        // UTF-8 bytes declared ISO-8859-1 but sent as charset=utf-8: read as UTF-8
        // (were the declaration believed, ö would be stored as Ã¶).
        let new_password = format!("Passwört-Ünïcode-utf8-{i}");
        let body = format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1"?>{}"#,
            envelope(v, "", &owner_sets_learner(&new_password))
        );
        let content_type = format!("{}; charset=utf-8", media_type(v));
        let reply = app.post_raw(body, &[("Content-Type", &content_type)]);
        assert!(reply.is_success(), "{}", reply.body);
        assert_signs_in(&app, v, LEARNER, &new_password, &format!("{STRONG}-a{i}"));

        // Latin-1 bytes declared UTF-8 but sent as charset=ISO-8859-1: read as Latin-1
        // (were the declaration believed, the body would not decode at all).
        let new_password = format!("Passwört-Ünïcode-latin-{i}");
        let body = windows_1252(&format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>{}"#,
            envelope(v, "", &owner_sets_learner(&new_password))
        ));
        let content_type = format!("{}; charset=\"ISO-8859-1\"", media_type(v));
        let reply = app.post_raw(body, &[("Content-Type", &content_type)]);
        assert!(reply.is_success(), "{}", reply.body);
        assert_signs_in(&app, v, LEARNER, &new_password, &format!("{STRONG}-b{i}"));
    }
}

#[test]
fn a_utf8_body_declared_utf16_without_bom_is_read_as_utf8() {
    // .NET's XmlSerializer writing to a StringWriter declares encoding="utf-16", and the
    // string is then posted as UTF-8 without a charset: only UTF-8 can be meant.
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let new_password = format!("Passwört-Ünïcode-dotnet-{i}");
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-16"?>{}"#,
            envelope(v, "", &owner_sets_learner(&new_password))
        );
        let reply = app.post_raw(body, &[("Content-Type", media_type(v))]);
        assert!(reply.is_success(), "{}", reply.body);
        assert_signs_in(&app, v, LEARNER, &new_password, &format!("{STRONG}-{i}"));
    }
}

#[test]
fn an_undecodable_body_is_a_client_fault_and_the_service_keeps_serving() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let xml = envelope(v, "", &owner_sets_learner(STRONG));
        // 0x81 0x20 is a Shift_JIS lead byte followed by an impossible trail byte.
        let shift_jis = {
            let mut b = format!(r#"<?xml version="1.0" encoding="shift_jis"?>{xml}"#)
                .replace(STRONG, "\u{1}")
                .into_bytes();
            let at = b.iter().position(|c| *c == 1).expect("marker");
            b.splice(at..=at, [0x81, 0x20]);
            b
        };
        let cases: [(Vec<u8>, String); 4] = [
            (shift_jis, media_type(v).to_string()),
            (
                xml.clone().into_bytes(),
                format!("{}; charset=klingon", media_type(v)),
            ),
            (
                format!(r#"<?xml version="1.0" encoding="x-no-such-charset"?>{xml}"#).into_bytes(),
                media_type(v).to_string(),
            ),
            // A WHATWG "replacement" label: decoding it would only yield U+FFFD.
            (
                xml.clone().into_bytes(),
                format!("{}; charset=iso-2022-kr", media_type(v)),
            ),
        ];
        for (body, content_type) in cases {
            let reply = app.post_raw(body, &[("Content-Type", &content_type)]);
            assert_bare_fault(
                &reply,
                v,
                v.client_fault_status(),
                if v == Soap::V11 { "Client" } else { "Sender" },
            );
            assert_eq!(
                reply.fault_string().as_deref(),
                Some("The request could not be decoded as text"),
                "{content_type}: {}",
                reply.body
            );
        }
        let reply = app.change(v, OWNER, LEARNER.0, &format!("{STRONG}-after-{i}"));
        assert!(reply.is_success(), "{}", reply.body);
    }
}

// --------------------------------------------------------------------------- HTTP quirks

#[test]
fn content_types_with_or_without_charset_and_action_are_accepted() {
    let app = spawn_app();
    let cases = [
        (Soap::V11, "text/xml"),
        (Soap::V11, "text/xml; charset=utf-8"),
        (Soap::V11, "text/xml;charset=\"UTF-8\""),
        (Soap::V12, "application/soap+xml"),
        (Soap::V12, "application/soap+xml; charset=utf-8"),
        (
            Soap::V12,
            "application/soap+xml; charset=utf-8; action=\"UpdateUserPassword\"",
        ),
        (
            Soap::V12,
            "application/soap+xml;action=\"http://ispringlearn.com/go/services/api/soap/UpdateUserPassword\";charset=UTF-8",
        ),
    ];
    for (i, (v, content_type)) in cases.into_iter().enumerate() {
        let xml = v.envelope(&owner_sets_learner(&format!("{STRONG}-ct-{i}")));
        let reply = app.post_raw(xml, &[("Content-Type", content_type)]);
        assert!(reply.is_success(), "{content_type}: {}", reply.body);
        assert!(reply.content_type.starts_with(media_type(v)));
    }
}

/// An HTTP response as read off the socket.
#[derive(Debug)]
struct RawResponse {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {:?}", self.status_line))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// As a [`Reply`], for the shared assertions.
    fn reply(&self) -> Reply {
        Reply {
            status: self.status(),
            content_type: self.header("content-type").unwrap_or_default().to_string(),
            headers: reqwest::header::HeaderMap::new(),
            body: String::from_utf8(self.body.clone()).expect("UTF-8 response"),
        }
    }
}

/// A `POST /soap` in HTTP `version` with Content-Length and, when given, a Host.
fn http_request(
    version: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("POST /soap {version}\r\n");
    if let Some(host) = host {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A plain TCP connection to the service, for framing reqwest cannot produce.
struct RawConnection {
    reader: BufReader<TcpStream>,
}

impl RawConnection {
    fn open(app: &TestApp) -> Self {
        Self::to_port(app.port)
    }

    fn to_port(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConnection {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).expect("send");
        stream.flush().expect("flush");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        assert!(line.ends_with("\r\n"), "truncated line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// Reads one response: by Content-Length, chunked, or (HTTP/1.0) until close.
    fn read_response(&mut self) -> RawResponse {
        let status_line = self.line();
        assert!(status_line.starts_with("HTTP/1."), "{status_line:?}");
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let mut response = RawResponse {
            status_line,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&response.status()) {
            return response;
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let size = self.line();
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .expect("chunk size");
                if size == 0 {
                    while !self.line().is_empty() {}
                    break;
                }
                let mut chunk = vec![0; size];
                self.reader.read_exact(&mut chunk).expect("chunk");
                response.body.extend(chunk);
                assert_eq!(self.line(), "", "chunk terminator");
            }
        } else if let Some(len) = response.header("content-length") {
            let mut body = vec![0; len.parse().expect("content length")];
            self.reader.read_exact(&mut body).expect("body");
            response.body = body;
        } else {
            self.reader
                .read_to_end(&mut response.body)
                .expect("body until close");
        }
        response
    }

    /// True when the server has closed the connection (EOF or reset) and sent nothing more.
    fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        }
    }
}

/// A body-credentials request of the owner setting the learner's password.
fn change_body(v: Soap, new_password: &str) -> Vec<u8> {
    v.envelope(&owner_sets_learner(new_password)).into_bytes()
}

#[test]
fn a_chunked_request_body_is_read_whole() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let new_password = format!("Passwört-Ünïcode-chunked-{i}");
        let body = change_body(v, &new_password);
        let mut conn = RawConnection::open(&app);
        conn.send(
            format!(
                "POST /soap HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {}\r\n\
                 Transfer-Encoding: chunked\r\n\r\n",
                v.content_type()
            )
            .as_bytes(),
        );
        // Uneven chunks, sent apart; one boundary falls inside the two bytes of "ö".
        let split = body
            .windows(2)
            .position(|w| w == "ö".as_bytes())
            .expect("ö in body")
            + 1;
        let mut rest = &body[..];
        let mut cuts = vec![1, 10, split - 11, 1];
        cuts.push(body.len() - cuts.iter().sum::<usize>());
        for cut in cuts {
            let (chunk, tail) = rest.split_at(cut);
            rest = tail;
            let mut framed = format!("{:X}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(chunk);
            framed.extend_from_slice(b"\r\n");
            conn.send(&framed);
            std::thread::sleep(Duration::from_millis(20));
        }
        conn.send(b"0\r\n\r\n");
        let reply = conn.read_response().reply();
        assert!(reply.is_success(), "{}", reply.body);
        assert_signs_in(&app, v, LEARNER, &new_password, &format!("{STRONG}-{i}"));
    }
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let body = change_body(v, &format!("{STRONG}-expect-{i}"));
        let mut conn = RawConnection::open(&app);
        conn.send(
            format!(
                "POST /soap HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {}\r\n\
                 Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
                v.content_type(),
                body.len()
            )
            .as_bytes(),
        );
        let interim = conn.read_response();
        assert_eq!(interim.status(), 100, "{interim:?}");
        conn.send(&body);
        let reply = conn.read_response().reply();
        assert!(reply.is_success(), "{}", reply.body);
    }
}

#[test]
fn an_http_1_0_request_without_host_is_answered_and_the_connection_closed() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let mut conn = RawConnection::open(&app);
        conn.send(&http_request(
            "HTTP/1.0",
            None,
            &[("Content-Type", v.content_type())],
            &change_body(v, &format!("{STRONG}-http10-{i}")),
        ));
        let response = conn.read_response();
        assert!(response.reply().is_success(), "{response:?}");
        assert!(
            conn.closed_by_server(),
            "HTTP/1.0 without keep-alive closes"
        );
    }
}

/// Old HTTP/1.0 clients that ask for `Connection: keep-alive` keep their connection:
/// both calls are answered on it, each answer says keep-alive and has a length.
#[test]
fn an_http_1_0_keep_alive_connection_serves_two_requests() {
    let app = spawn_app();
    let mut conn = RawConnection::open(&app);
    for (i, v) in BOTH.into_iter().enumerate() {
        conn.send(&http_request(
            "HTTP/1.0",
            Some("127.0.0.1"),
            &[
                ("Content-Type", v.content_type()),
                ("Connection", "keep-alive"),
            ],
            &change_body(v, &format!("{STRONG}-http10-keepalive-{i}")),
        ));
        let response = conn.read_response();
        assert!(response.reply().is_success(), "{response:?}");
        assert!(
            response
                .header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("keep-alive")),
            "{response:?}"
        );
        assert!(response.header("content-length").is_some(), "{response:?}");
    }
}

#[test]
fn two_requests_on_one_keep_alive_connection_are_both_answered() {
    let app = spawn_app();
    let mut conn = RawConnection::open(&app);
    for (i, v) in BOTH.into_iter().enumerate() {
        conn.send(&http_request(
            "HTTP/1.1",
            Some("127.0.0.1"),
            &[("Content-Type", v.content_type())],
            &change_body(v, &format!("{STRONG}-keepalive-{i}")),
        ));
        let response = conn.read_response();
        assert!(response.reply().is_success(), "{response:?}");
        assert!(
            !response
                .header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close")),
            "{response:?}"
        );
    }
    // A fault does not end the connection either.
    conn.send(&http_request(
        "HTTP/1.1",
        Some("127.0.0.1"),
        &[("Content-Type", Soap::V11.content_type())],
        b"not xml",
    ));
    assert_eq!(conn.read_response().status(), 500);
    conn.send(&http_request(
        "HTTP/1.1",
        Some("127.0.0.1"),
        &[("Content-Type", Soap::V11.content_type())],
        &change_body(Soap::V11, &format!("{STRONG}-keepalive-last")),
    ));
    assert!(conn.read_response().reply().is_success());
}

#[test]
fn connection_close_is_honoured() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let mut conn = RawConnection::open(&app);
        conn.send(&http_request(
            "HTTP/1.1",
            Some("127.0.0.1"),
            &[("Content-Type", v.content_type()), ("Connection", "close")],
            &change_body(v, &format!("{STRONG}-close-{i}")),
        ));
        let response = conn.read_response();
        assert!(response.reply().is_success(), "{response:?}");
        assert_eq!(
            response.header("connection").map(str::to_ascii_lowercase),
            Some("close".to_string()),
            "{response:?}"
        );
        assert!(conn.closed_by_server());
    }
}
