//! Contract §2–§4: the envelope pre-pass. Ordinary XML in any spelling works; anything
//! that is not one well-formed SOAP envelope naming a known operation is refused with a
//! fault without detail, in the right version, and never hurts the service; the WSDL and
//! its schema load from the service's own URL.

use std::io::Cursor;
use std::time::{Duration, Instant};

use quick_xml::events::Event;
use soap_passwd::config::DEFAULT_BODY_LIMIT;
use soap_passwd::demo::DEMO_JSON;

use crate::helpers::*;

/// The children of an `UpdateUserPasswordRequest` in which the account admin sets the
/// second learner's password, each element written with `prefix` (`""` for none).
fn fields(prefix: &str, new_password: &str) -> String {
    let p = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}:")
    };
    format!(
        "<{p}credentials><{p}accountUrl>{ACCOUNT}</{p}accountUrl><{p}email>{}</{p}email>\
         <{p}password>{}</{p}password></{p}credentials><{p}userId>{}</{p}userId>\
         <{p}password>{}</{p}password>",
        ADMIN.1,
        esc(ADMIN.2),
        LEARNER2.0,
        esc(new_password)
    )
}

/// A valid operation element for [`fields`].
fn operation(new_password: &str) -> String {
    format!(
        r#"<UpdateUserPasswordRequest xmlns="{API_NS}">{}</UpdateUserPasswordRequest>"#,
        fields("", new_password)
    )
}

/// An envelope of `v` without XML declaration, with an optional Header's content.
fn envelope(v: Soap, header: Option<&str>, body: &str) -> String {
    let header = header
        .map(|h| format!("<soap:Header>{h}</soap:Header>"))
        .unwrap_or_default();
    format!(
        r#"<soap:Envelope xmlns:soap="{}">{header}<soap:Body>{body}</soap:Body></soap:Envelope>"#,
        v.ns()
    )
}

fn client_code(v: Soap) -> &'static str {
    match v {
        Soap::V11 => "Client",
        Soap::V12 => "Sender",
    }
}

/// A fault without detail for a refused envelope: Client/Sender with its HTTP status,
/// the version's Content-Type and exactly `faultstring`.
#[track_caller]
fn assert_refused(reply: &Reply, v: Soap, faultstring: &str) {
    assert_bare_fault(reply, v, v.client_fault_status(), client_code(v));
    assert_eq!(
        reply.fault_string().as_deref(),
        Some(faultstring),
        "{}",
        reply.body
    );
    assert_well_formed(&reply.body);
}

/// The whole document parses, with matching end tags.
#[track_caller]
fn assert_well_formed(xml: &str) {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut depth = 0i32;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => depth += 1,
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed ({e}): {xml}"),
        }
    }
    assert_eq!(depth, 0, "unclosed elements: {xml}");
}

/// The target's credential version: 1 until its password is first changed.
fn credential_version(app: &TestApp, user_id: &str) -> i64 {
    app.db()
        .query_row(
            "SELECT credential_version FROM users WHERE ext_id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .expect("user exists")
}

fn send(request: reqwest::blocking::RequestBuilder) -> Reply {
    let resp = request.send().expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.text().expect("body");
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

/// Asserts a normal call still succeeds (the service survived what came before).
#[track_caller]
fn assert_still_serving(app: &TestApp, v: Soap, tag: &str) {
    let reply = app.call(v, &operation(&format!("{STRONG}-{tag}")));
    assert!(reply.is_success(), "{}", reply.body);
}

// ------------------------------------------------------------------ what must succeed

#[test]
fn ordinary_xml_spellings_of_the_envelope_all_succeed() {
    let app = spawn_app();
    for v in BOTH {
        let ns = v.ns();
        let mut n = 0;
        let mut pw = || {
            n += 1;
            format!("{STRONG}-{v:?}-{n}")
        };
        let variants: Vec<(&str, Vec<u8>)> = vec![
            (
                "arbitrary prefixes on envelope, operation and fields",
                format!(
                    r#"<zz:Envelope xmlns:zz="{ns}"><zz:Body><q1:UpdateUserPasswordRequest xmlns:q1="{API_NS}">{}</q1:UpdateUserPasswordRequest></zz:Body></zz:Envelope>"#,
                    fields("q1", &pw())
                )
                .into(),
            ),
            (
                "default namespace on the Envelope (contract §3 example)",
                format!(
                    r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="{ns}"
                   xmlns="{API_NS}">
  <SOAP-ENV:Body>
    <UpdateUserPasswordRequest>{}</UpdateUserPasswordRequest>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#,
                    fields("", &pw())
                )
                .into(),
            ),
            (
                "envelope itself in the default namespace",
                format!(
                    r#"<Envelope xmlns="{ns}"><Body><UpdateUserPasswordRequest xmlns="{API_NS}">{}</UpdateUserPasswordRequest></Body></Envelope>"#,
                    fields("", &pw())
                )
                .into(),
            ),
            (
                "no XML declaration",
                envelope(v, None, &operation(&pw())).into(),
            ),
            (
                "XML declaration with standalone",
                format!(
                    r#"<?xml version="1.0" encoding="utf-8" standalone="yes"?>{}"#,
                    envelope(v, None, &operation(&pw()))
                )
                .into(),
            ),
            ("UTF-8 byte-order mark and declaration", {
                let mut b = b"\xEF\xBB\xBF".to_vec();
                b.extend(v.envelope(&operation(&pw())).into_bytes());
                b
            }),
            ("UTF-8 byte-order mark without declaration", {
                let mut b = b"\xEF\xBB\xBF".to_vec();
                b.extend(envelope(v, None, &operation(&pw())).into_bytes());
                b
            }),
            (
                "comments everywhere",
                format!(
                    r#"<?xml version="1.0"?><!-- before --><soap:Envelope xmlns:soap="{ns}"><!-- in envelope --><soap:Header><!-- in header --></soap:Header><soap:Body><!-- in body --><UpdateUserPasswordRequest xmlns="{API_NS}"><!-- in op --><credentials><!-- in creds --><accountUrl>{ACCOUNT}<!-- in text --></accountUrl><email><!-- lead -->{}</email><password>{}</password></credentials><userId>{}</userId><password>{STRONG}<!-- split -->-{v:?}-comments</password><!-- end op --></UpdateUserPasswordRequest><!-- after op --></soap:Body><!-- after body --></soap:Envelope><!-- after root -->
"#,
                    ADMIN.1,
                    esc(ADMIN.2),
                    LEARNER2.0,
                )
                .into(),
            ),
            (
                "pretty-printed with CRLF and tabs",
                format!(
                    "<?xml version=\"1.0\"?>\r\n<soap:Envelope\r\n\txmlns:soap=\"{ns}\">\r\n\t<soap:Body>\r\n\t\t<UpdateUserPasswordRequest xmlns=\"{API_NS}\">\r\n\t\t\t<credentials>\r\n\t\t\t\t<accountUrl>{ACCOUNT}</accountUrl>\r\n\t\t\t\t<email>{}</email>\r\n\t\t\t\t<password>{}</password>\r\n\t\t\t</credentials>\r\n\t\t\t<userId>{}</userId>\r\n\t\t\t<password>{}</password>\r\n\t\t</UpdateUserPasswordRequest>\r\n\t</soap:Body>\r\n</soap:Envelope>\r\n",
                    ADMIN.1,
                    esc(ADMIN.2),
                    LEARNER2.0,
                    esc(&pw())
                )
                .into(),
            ),
            (
                "unqualified children under a qualified operation (JAX-WS)",
                format!(
                    r#"<S:Envelope xmlns:S="{ns}"><S:Body><ns2:UpdateUserPasswordRequest xmlns:ns2="{API_NS}">{}</ns2:UpdateUserPasswordRequest></S:Body></S:Envelope>"#,
                    fields("", &pw())
                )
                .into(),
            ),
            (
                "qualified and unqualified children mixed",
                format!(
                    r#"<S:Envelope xmlns:S="{ns}"><S:Body><a:UpdateUserPasswordRequest xmlns:a="{API_NS}"><a:credentials><accountUrl>{ACCOUNT}</accountUrl><a:email>{}</a:email><password>{}</password></a:credentials><userId>{}</userId><a:password>{}</a:password></a:UpdateUserPasswordRequest></S:Body></S:Envelope>"#,
                    ADMIN.1,
                    esc(ADMIN.2),
                    LEARNER2.0,
                    esc(&pw())
                )
                .into(),
            ),
            (
                "unknown extra elements ignored, including a foreign `password`",
                envelope(
                    v,
                    None,
                    &format!(
                        r#"<UpdateUserPasswordRequest xmlns="{API_NS}"><credentials><accountUrl>{ACCOUNT}</accountUrl><tenant>x</tenant><email>{}</email><password>{}</password><x:otp xmlns:x="urn:x">123</x:otp></credentials><locale>en</locale><userId>{}</userId><password>{}</password><x:password xmlns:x="urn:x">ignored</x:password><future><nested/></future></UpdateUserPasswordRequest>"#,
                        ADMIN.1,
                        esc(ADMIN.2),
                        LEARNER2.0,
                        esc(&pw())
                    ),
                )
                .into(),
            ),
            (
                "xsi:type attributes as SOAP-encoding stubs send them",
                envelope(
                    v,
                    None,
                    &format!(
                        r#"<UpdateUserPasswordRequest xmlns="{API_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><credentials><accountUrl xsi:type="xsd:string">{ACCOUNT}</accountUrl><email xsi:type="xsd:string">{}</email><password xsi:type="xsd:string">{}</password></credentials><userId xsi:type="xsd:string">{}</userId><password xsi:type="xsd:string">{}</password></UpdateUserPasswordRequest>"#,
                        ADMIN.1,
                        esc(ADMIN.2),
                        LEARNER2.0,
                        esc(&pw())
                    ),
                )
                .into(),
            ),
            (
                "a Header without mustUnderstand is ignored",
                envelope(
                    v,
                    Some(r#"<t:Trace xmlns:t="urn:trace"><t:id>42</t:id></t:Trace>"#),
                    &operation(&pw()),
                )
                .into(),
            ),
            (
                "mustUnderstand=\"0\" is ignored",
                envelope(
                    v,
                    Some(&format!(
                        r#"<t:Trace xmlns:t="urn:trace" xmlns:e="{ns}" e:mustUnderstand="0">42</t:Trace>"#
                    )),
                    &operation(&pw()),
                )
                .into(),
            ),
            (
                "an unqualified mustUnderstand attribute is not SOAP's",
                envelope(
                    v,
                    Some(r#"<t:Trace xmlns:t="urn:trace" mustUnderstand="1">42</t:Trace>"#),
                    &operation(&pw()),
                )
                .into(),
            ),
            (
                "an empty Header",
                envelope(v, Some(""), &operation(&pw())).into(),
            ),
        ];
        for (what, body) in variants {
            let reply = app.post(v, body);
            assert!(reply.is_success(), "{v:?} {what}: {}", reply.body);
            assert!(
                reply
                    .content_type
                    .starts_with(v.content_type().split(';').next().unwrap()),
                "{v:?} {what}: {}",
                reply.content_type
            );
            assert_well_formed(&reply.body);
        }
    }
}

#[test]
fn the_envelope_namespace_decides_the_version_not_the_content_type() {
    let app = spawn_app();
    for (i, (v, sent_as)) in [(Soap::V11, Soap::V12), (Soap::V12, Soap::V11)]
        .into_iter()
        .enumerate()
    {
        let reply = app.post(sent_as, v.envelope(&operation(&format!("{STRONG}-ns{i}"))));
        assert!(reply.is_success(), "{}", reply.body);
        assert!(
            reply
                .content_type
                .starts_with(v.content_type().split(';').next().unwrap())
        );
        assert!(reply.body.contains(v.ns()), "{}", reply.body);
        // A fault follows the envelope too.
        let reply = app.post(
            sent_as,
            v.envelope("<UpdateUserPasswordRequest xmlns=\"urn:x\"/>"),
        );
        assert_refused(&reply, v, "Unknown operation");
    }
}

#[test]
fn soap_action_may_be_empty_quoted_named_or_absent() {
    let app = spawn_app();
    let actions: [Option<&str>; 5] = [
        None,
        Some(""),
        Some("\"\""),
        Some("\"UpdateUserPassword\""),
        Some("UpdateUserPassword"),
    ];
    for v in BOTH {
        for (i, action) in actions.iter().enumerate() {
            let body = v.envelope(&operation(&format!("{STRONG}-action-{v:?}-{i}")));
            let mut headers = vec![("Content-Type", v.content_type())];
            if let Some(a) = action {
                headers.push(("SOAPAction", a));
            }
            let reply = app.post_raw(body, &headers);
            assert!(reply.is_success(), "{action:?}: {}", reply.body);
        }
    }
    // SOAP 1.2 carries the action as a Content-Type parameter.
    for (i, ct) in [
        r#"application/soap+xml; charset=utf-8; action="UpdateUserPassword""#,
        r#"application/soap+xml;action="http://ispringlearn.com/go/services/api/soap/UpdateUserPassword""#,
        "application/soap+xml; action=\"\"",
    ]
    .into_iter()
    .enumerate()
    {
        let body = Soap::V12.envelope(&operation(&format!("{STRONG}-ct-{i}")));
        let reply = app.post_raw(body, &[("Content-Type", ct)]);
        assert!(reply.is_success(), "{ct}: {}", reply.body);
    }
}

/// `s` written entirely as numeric character references.
fn as_char_refs(s: &str) -> String {
    s.chars().map(|c| format!("&#{};", c as u32)).collect()
}

#[test]
fn cdata_character_references_and_entities_set_the_decoded_password() {
    let app = spawn_app();
    // (what the new password element holds, the password it means)
    let cases = [
        (
            "<![CDATA[Vq7#<Lp2>&]]>xZr9<![CDATA[Mw4k]]>",
            "Vq7#<Lp2>&xZr9Mw4k",
        ),
        (
            "&#x41;&#65;q7#Lp2!xZr9Mw4k&#x20AC;&#8364;",
            "AAq7#Lp2!xZr9Mw4k€€",
        ),
        (
            "Vq7&lt;Lp2&gt;&amp;xZ&apos;r9&quot;Mw4k",
            "Vq7<Lp2>&xZ'r9\"Mw4k",
        ),
        // XML normalises line ends (§2.11), in text and CDATA alike; a referenced CR stays.
        ("Vq7#Lp2!\r\nxZr9\rMw4k", "Vq7#Lp2!\nxZr9\nMw4k"),
        ("<![CDATA[Vq7#Lp2!\r\nxZr9\rMw4k]]>", "Vq7#Lp2!\nxZr9\nMw4k"),
        ("Vq7#Lp2!&#13;&#10;xZr9&#xD;Mw4k", "Vq7#Lp2!\r\nxZr9\rMw4k"),
    ];
    let mut round = 0;
    for v in BOTH {
        for (sent, meant) in cases {
            round += 1;
            let meant = format!("{meant}{round}");
            let op = format!(
                r#"<UpdateUserPasswordRequest xmlns="{API_NS}"><credentials><accountUrl>{ACCOUNT}</accountUrl><email>{}</email><password>{}</password></credentials><userId>{}</userId><password>{sent}{round}</password></UpdateUserPasswordRequest>"#,
                ADMIN.1, ADMIN.2, LEARNER.0
            );
            let reply = app.call(v, &op);
            assert!(reply.is_success(), "{sent}: {}", reply.body);

            // The stored hash is of the decoded text…
            let hash: String = app
                .db()
                .query_row(
                    "SELECT password_hash FROM users WHERE ext_id = ?1",
                    [LEARNER.0],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(
                soap_passwd::crypto::verify_blocking(
                    &hash,
                    &soap_passwd::domain::Password::normalise(&meant)
                ),
                "{v:?}: {sent:?} was not stored as {meant:?}"
            );
            // …and the learner signs in with it, sent in another spelling.
            let self_change = format!(
                r#"<UpdateUserPasswordRequest xmlns="{API_NS}"><credentials><accountUrl>{ACCOUNT}</accountUrl><email>{}</email><password>{}</password></credentials><userId>{}</userId><password>{STRONG}-self{round}</password></UpdateUserPasswordRequest>"#,
                LEARNER.1,
                as_char_refs(&meant),
                LEARNER.0
            );
            let reply = app.call(v, &self_change);
            assert!(reply.is_success(), "{sent}: {}", reply.body);
        }
    }
}

// ------------------------------------------------------------------------ refusals

#[test]
fn a_body_that_is_not_xml_is_a_client_fault() {
    let app = spawn_app();
    for v in BOTH {
        for body in [
            "hello",
            "{\"userId\": \"u-learner\"}",
            "<",
            "userId=u-learner&password=x",
        ] {
            let reply = app.post(v, body);
            assert_refused(&reply, v, "The request is not well-formed XML");
        }
        let reply = app.post(v, "");
        assert_refused(&reply, v, "The request is not well-formed XML");
        let reply = app.post(v, "  \n ");
        assert_refused(&reply, v, "The request is not well-formed XML");
    }
}

#[test]
fn truncated_or_mismatched_xml_is_a_client_fault() {
    let app = spawn_app();
    for v in BOTH {
        let full = v.envelope(&operation(STRONG));
        let cases = [
            full[..full.len() / 2].to_string(),
            full[..full.len() - 1].to_string(),
            full.replace("</soap:Envelope>", ""),
            full.replace("</userId>", "</password>"),
            full.replace(
                "</soap:Body></soap:Envelope>",
                "</soap:Envelope></soap:Body>",
            ),
            // an undeclared prefix
            full.replace("<userId>", "<x:userId>")
                .replace("</userId>", "</x:userId>"),
            // a duplicate attribute
            full.replace("<userId>", r#"<userId a="1" a="2">"#),
            // an unescaped ampersand
            full.replace(STRONG, "a & b"),
            // a second XML declaration
            full.replace("<soap:Body>", r#"<soap:Body><?xml version="1.0"?>"#),
            // a character that XML forbids, raw and as a reference
            full.replace(STRONG, "Vq7#Lp2!\u{1}xZr9Mw4k"),
            full.replace(STRONG, "Vq7#Lp2!&#0;xZr9Mw4k"),
            full.replace(STRONG, "Vq7#Lp2!&#xFFFF;xZr9Mw4k"),
        ];
        for body in cases {
            let reply = app.post(v, body.clone());
            assert_refused(&reply, v, "The request is not well-formed XML");
        }
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn a_document_that_is_not_a_soap_envelope_is_a_client_fault() {
    let app = spawn_app();
    for v in BOTH {
        let ns = v.ns();
        let cases = [
            (
                operation(STRONG),
                "The request is not a SOAP envelope: the root element is not Envelope",
            ),
            (
                format!(
                    r#"<soap:Body xmlns:soap="{ns}">{}</soap:Body>"#,
                    operation(STRONG)
                ),
                "The request is not a SOAP envelope: the root element is not Envelope",
            ),
            (
                format!(r#"<soap:Envelope xmlns:soap="{ns}"/>"#),
                "The request is not a SOAP envelope: no Body",
            ),
            (
                format!(
                    r#"<soap:Envelope xmlns:soap="{ns}"><soap:Header><t:T xmlns:t="urn:t"/></soap:Header></soap:Envelope>"#
                ),
                "The request is not a SOAP envelope: no Body",
            ),
            (
                envelope(v, None, ""),
                "The request is not a SOAP envelope: empty Body",
            ),
            (
                envelope(v, None, "\n  <!-- nothing -->\n"),
                "The request is not a SOAP envelope: empty Body",
            ),
            (
                format!(
                    r#"<soap:Envelope xmlns:soap="{ns}"><soap:Body>{}</soap:Body><soap:Body/></soap:Envelope>"#,
                    operation(STRONG)
                ),
                "The request is not a SOAP envelope: unexpected element in Envelope",
            ),
            (
                format!(
                    r#"<soap:Envelope xmlns:soap="{ns}"><soap:Body>{}</soap:Body><soap:Header/></soap:Envelope>"#,
                    operation(STRONG)
                ),
                "The request is not a SOAP envelope: unexpected element in Envelope",
            ),
            (
                format!(
                    r#"<soap:Envelope xmlns:soap="{ns}"><Body>{}</Body></soap:Envelope>"#,
                    operation(STRONG)
                ),
                "The request is not a SOAP envelope: unexpected element in Envelope",
            ),
            (
                format!(
                    r#"<soap:Envelope xmlns:soap="{ns}">text<soap:Body>{}</soap:Body></soap:Envelope>"#,
                    operation(STRONG)
                ),
                "The request is not a SOAP envelope: text where elements belong",
            ),
            (
                envelope(
                    v,
                    None,
                    &format!("{}{}", operation(STRONG), operation(STRONG)),
                ),
                "The request is not a SOAP envelope: Body holds more than one element",
            ),
        ];
        for (body, faultstring) in cases {
            let reply = app.post(v, body.clone());
            assert_refused(&reply, v, faultstring);
        }
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn an_unknown_operation_is_a_client_fault() {
    let app = spawn_app();
    for v in BOTH {
        let cases = [
            // another name in the api namespace
            format!(r#"<DeleteUser xmlns="{API_NS}"><userId>u-learner</userId></DeleteUser>"#),
            format!(
                r#"<UpdateUserPasswordResult xmlns="{API_NS}"><success>true</success></UpdateUserPasswordResult>"#
            ),
            // the right name in another namespace, or in none
            format!(
                r#"<UpdateUserPasswordRequest xmlns="urn:other">{}</UpdateUserPasswordRequest>"#,
                fields("", STRONG)
            ),
            format!(
                "<UpdateUserPasswordRequest>{}</UpdateUserPasswordRequest>",
                fields("", STRONG)
            ),
            // the name with different case
            format!(
                r#"<updateUserPasswordRequest xmlns="{API_NS}">{}</updateUserPasswordRequest>"#,
                fields("", STRONG)
            ),
        ];
        for op in cases {
            let reply = app.call(v, &op);
            assert_refused(&reply, v, "Unknown operation");
        }
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn a_doctype_is_refused() {
    let app = spawn_app();
    for v in BOTH {
        let valid = envelope(v, None, &operation(STRONG));
        let cases = [
            format!("<!DOCTYPE Envelope>{valid}"),
            format!(
                r#"<?xml version="1.0"?><!DOCTYPE Envelope SYSTEM "file:///etc/passwd">{valid}"#
            ),
            format!(
                r#"<!DOCTYPE Envelope [<!ENTITY pw "{STRONG}">]>{}"#,
                envelope(v, None, &operation("&pw;").replace("&amp;pw;", "&pw;"))
            ),
        ];
        for body in cases {
            let reply = app.post(v, body);
            assert_refused(&reply, v, "DOCTYPE declarations are not allowed");
        }
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn doctype_with_entity_bomb_is_refused_quickly_and_service_keeps_serving() {
    let app = spawn_app();
    let mut bomb = String::from(r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">"#);
    for i in 1..=10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        bomb.push_str(&format!(
            r#"<!ENTITY lol{i} "{}">"#,
            format!("&{prev};").repeat(10)
        ));
    }
    bomb.push_str("]>");
    for v in BOTH {
        let body = format!(
            "{bomb}{}",
            envelope(v, None, &operation("x").replace(">x<", ">&lol10;<"))
        );
        let started = Instant::now();
        let reply = app.post(v, body);
        let took = started.elapsed();
        assert_refused(&reply, v, "DOCTYPE declarations are not allowed");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert_still_serving(&app, v, &format!("bomb-{v:?}"));
    }
}

#[test]
fn a_processing_instruction_is_refused() {
    let app = spawn_app();
    for v in BOTH {
        let valid = envelope(v, None, &operation(STRONG));
        let cases = [
            format!(
                r#"<?xml-stylesheet type="text/xsl" href="http://evil.example/x.xsl"?>{valid}"#
            ),
            valid.replace("<soap:Body>", "<soap:Body><?php echo 1; ?>"),
            valid.replace("</userId>", "<?pi data?></userId>"),
            format!("{valid}<?trailing?>"),
        ];
        for body in cases {
            let reply = app.post(v, body);
            assert_refused(&reply, v, "Processing instructions are not allowed");
        }
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn content_after_the_root_element_is_refused() {
    let app = spawn_app();
    for v in BOTH {
        let valid = envelope(v, None, &operation(STRONG));
        for trailer in ["<x/>", "junk", "\n<!-- ok -->\n<extra>1</extra>", &valid] {
            let reply = app.post(v, format!("{valid}{trailer}"));
            assert_refused(&reply, v, "The request has content after the envelope");
        }
        // Trailing white space and comments are not content.
        let valid = envelope(v, None, &operation(&format!("{STRONG}-trailing-{v:?}")));
        let reply = app.post(v, format!("{valid}\n<!-- done -->\r\n"));
        assert!(reply.is_success(), "{}", reply.body);
    }
}

#[test]
fn an_undefined_entity_reference_is_refused() {
    let app = spawn_app();
    for v in BOTH {
        let valid = envelope(v, None, &operation(STRONG));
        let cases = [
            valid.replace(STRONG, "Vq7#Lp2!&nbsp;xZr9Mw4k"),
            valid.replace(STRONG, "&xxe;"),
            valid.replace("<userId>", r#"<userId note="&bogus;">"#),
        ];
        for body in cases {
            let reply = app.post(v, body);
            assert_refused(&reply, v, "The request is not well-formed XML");
        }
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn ten_thousand_nested_elements_are_refused_as_too_deep() {
    // A body limit large enough that the pre-pass, not the limit, answers.
    let app = spawn_app_with(DEMO_JSON, |s| s.body_limit = 1 << 20);
    let nested = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    for v in BOTH {
        let op = operation(STRONG).replace("<userId>", &format!("{nested}<userId>"));
        let reply = app.call(v, &op);
        assert_refused(&reply, v, "The request is nested too deeply");
        // Unclosed nesting is refused the same way, before the end is reached.
        let op = format!(
            r#"<UpdateUserPasswordRequest xmlns="{API_NS}">{}"#,
            "<a>".repeat(10_000)
        );
        let reply = app.post(
            v,
            format!(r#"<soap:Envelope xmlns:soap="{}"><soap:Body>{op}"#, v.ns()),
        );
        assert_refused(&reply, v, "The request is nested too deeply");
        // Deep nesting in a header block counts as well.
        let reply = app.post(v, envelope(v, Some(&nested), &operation(STRONG)));
        assert_refused(&reply, v, "The request is nested too deeply");
        assert_still_serving(&app, v, &format!("deep-{v:?}"));
    }
}

#[test]
fn too_many_elements_or_attributes_are_refused() {
    let app = spawn_app();
    for v in BOTH {
        // More than a full batch's allowance (256 + 8 per item of --batch-max).
        let op = operation(STRONG).replace("<userId>", &format!("{}<userId>", "<x/>".repeat(9000)));
        let reply = app.call(v, &op);
        assert_refused(&reply, v, "The request has too many elements");
        let attributes: String = (0..100).map(|i| format!(r#" a{i}="{i}""#)).collect();
        let op = operation(STRONG).replace("<userId>", &format!("<userId{attributes}>"));
        let reply = app.call(v, &op);
        assert_refused(&reply, v, "An element has too many attributes");
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn an_unknown_envelope_namespace_is_a_soap_11_version_mismatch() {
    let app = spawn_app();
    for sent_as in BOTH {
        for ns in [
            Some("http://example.com/soap/envelope/"),
            Some("http://www.w3.org/2001/12/soap-envelope"),
            None,
        ] {
            let decl = ns
                .map(|n| format!(r#" xmlns:soap="{n}""#))
                .unwrap_or_default();
            let body = match ns {
                Some(_) => format!(
                    "<soap:Envelope{decl}><soap:Body>{}</soap:Body></soap:Envelope>",
                    operation(STRONG)
                ),
                None => format!("<Envelope><Body>{}</Body></Envelope>", operation(STRONG)),
            };
            let reply = app.post(sent_as, body);
            assert_bare_fault(&reply, Soap::V11, 500, "VersionMismatch");
            assert_eq!(
                reply.fault_string().as_deref(),
                Some("The envelope namespace is neither SOAP 1.1 nor SOAP 1.2")
            );
            assert!(reply.body.contains(SOAP11), "{}", reply.body);
            assert_well_formed(&reply.body);
        }
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

/// The `qname` of each `env:NotUnderstood` header block, resolved to (namespace, local).
fn not_understood(reply: &Reply) -> Vec<(Option<String>, String)> {
    let mut reader = quick_xml::NsReader::from_str(&reply.body);
    let mut out = Vec::new();
    loop {
        match reader.read_resolved_event() {
            Ok((ns, Event::Start(e) | Event::Empty(e)))
                if e.local_name().as_ref() == b"NotUnderstood" =>
            {
                assert_eq!(
                    ns,
                    quick_xml::name::ResolveResult::Bound(quick_xml::name::Namespace(
                        SOAP12.as_bytes()
                    ))
                );
                let qname = e
                    .try_get_attribute("qname")
                    .unwrap()
                    .expect("qname attribute")
                    .unescape_value()
                    .unwrap()
                    .into_owned();
                let (prefix, local) = match qname.split_once(':') {
                    Some((p, l)) => (Some(p.to_string()), l.to_string()),
                    None => (None, qname.clone()),
                };
                let declared = |key: &str| {
                    e.try_get_attribute(key)
                        .unwrap()
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                let ns = match prefix {
                    Some(p) => declared(&format!("xmlns:{p}")),
                    None => declared("xmlns"),
                };
                out.push((ns, local));
            }
            Ok((_, Event::Eof)) => return out,
            Err(e) => panic!("{e}: {}", reply.body),
            _ => {}
        }
    }
}

#[test]
fn a_mandatory_header_block_addressed_to_us_is_a_must_understand_fault() {
    let app = spawn_app();
    for v in BOTH {
        let ns = v.ns();
        for value in ["1", "true", " 1 "] {
            let header = format!(
                r#"<sec:Security xmlns:sec="urn:example:security" xmlns:e="{ns}" e:mustUnderstand="{value}"><sec:Token>t</sec:Token></sec:Security>"#
            );
            let reply = app.post(v, envelope(v, Some(&header), &operation(STRONG)));
            assert_bare_fault(&reply, v, 500, "MustUnderstand");
            assert_eq!(
                reply.fault_string().as_deref(),
                Some("A mandatory header block was not understood")
            );
            assert_well_formed(&reply.body);
            let expected = match v {
                Soap::V11 => vec![],
                Soap::V12 => vec![(
                    Some("urn:example:security".to_string()),
                    "Security".to_string(),
                )],
            };
            assert_eq!(not_understood(&reply), expected, "{}", reply.body);
        }
        // A block addressed to the next node or the ultimate receiver (that is us) must
        // be understood too.
        let roles: &[&str] = match v {
            Soap::V11 => &[r#"soap:actor="http://schemas.xmlsoap.org/soap/actor/next""#],
            Soap::V12 => &[
                r#"soap:role="http://www.w3.org/2003/05/soap-envelope/role/next""#,
                r#"soap:role="http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver""#,
            ],
        };
        for role in roles {
            let header = format!(
                r#"<t:Tx xmlns:t="urn:tx" soap:mustUnderstand="1" {role}/><t:Other xmlns:t="urn:tx"/>"#
            );
            let reply = app.post(v, envelope(v, Some(&header), &operation(STRONG)));
            assert_bare_fault(&reply, v, 500, "MustUnderstand");
            if v == Soap::V12 {
                assert_eq!(
                    not_understood(&reply),
                    [(Some("urn:tx".to_string()), "Tx".to_string())]
                );
            }
        }
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn a_mandatory_header_block_for_another_actor_or_role_is_ignored() {
    let app = spawn_app();
    for v in BOTH {
        let targets: &[&str] = match v {
            Soap::V11 => &[r#"soap:actor="http://example.com/gateway""#],
            Soap::V12 => &[
                r#"soap:role="http://example.com/gateway""#,
                r#"soap:role="http://www.w3.org/2003/05/soap-envelope/role/none""#,
            ],
        };
        for (i, target) in targets.iter().enumerate() {
            let header =
                format!(r#"<t:Tx xmlns:t="urn:tx" soap:mustUnderstand="1" {target}>x</t:Tx>"#);
            let body = envelope(
                v,
                Some(&header),
                &operation(&format!("{STRONG}-role-{v:?}-{i}")),
            );
            let reply = app.post(v, body);
            assert!(reply.is_success(), "{target}: {}", reply.body);
        }
    }
}

#[test]
fn invalid_utf8_is_a_client_fault_in_the_content_types_version() {
    let app = spawn_app();
    for v in BOTH {
        let valid = v.envelope(&operation(STRONG)).into_bytes();
        let at = valid
            .windows(STRONG.len())
            .position(|w| w == STRONG.as_bytes())
            .unwrap();
        for bad in [
            &b"\xFF"[..],
            b"\xC3\x28",
            b"\xED\xA0\x80",
            b"\xF4\x90\x80\x80",
        ] {
            let mut body = valid.clone();
            body.splice(at..at, bad.iter().copied());
            let reply = app.post(v, body);
            assert_refused(&reply, v, "The request could not be decoded as text");
        }
        // Declared UTF-8 but not UTF-8: refused even with a charset parameter saying so.
        let mut body = valid.clone();
        body.splice(at..at, b"\xFF".iter().copied());
        let reply = app.post_raw(
            body,
            &[(
                "Content-Type",
                &format!(
                    "{}; charset=utf-8",
                    v.content_type().split(';').next().unwrap()
                ),
            )],
        );
        assert_refused(&reply, v, "The request could not be decoded as text");
        // An unknown charset is refused too.
        let reply = app.post_raw(
            valid.clone(),
            &[(
                "Content-Type",
                &format!(
                    "{}; charset=x-klingon",
                    v.content_type().split(';').next().unwrap()
                ),
            )],
        );
        assert_refused(&reply, v, "The request could not be decoded as text");
        // UTF-16 without a byte-order mark or charset reads as UTF-8 full of NULs: not XML.
        let utf16: Vec<u8> = envelope(v, None, &operation(STRONG))
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let reply = app.post(v, utf16);
        assert_refused(&reply, v, "The request is not well-formed XML");
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 1);
}

#[test]
fn an_unparseable_body_is_answered_in_the_version_of_its_content_type() {
    let app = spawn_app();
    let cases = [
        (Some("application/soap+xml"), Soap::V12),
        (
            Some("application/soap+xml; charset=utf-8; action=\"x\""),
            Soap::V12,
        ),
        (Some("Application/SOAP+XML;charset=UTF-8"), Soap::V12),
        (Some("text/xml; charset=utf-8"), Soap::V11),
        (Some("text/xml"), Soap::V11),
        (Some("application/xml"), Soap::V11),
        (Some("text/plain"), Soap::V11),
        (None, Soap::V11),
    ];
    for (content_type, version) in cases {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .collect();
        let reply = app.post_raw("not xml", &headers);
        assert_refused(&reply, version, "The request is not well-formed XML");
        let reply = app.post_raw(b"<a>\xFF</a>".to_vec(), &headers);
        assert_refused(&reply, version, "The request could not be decoded as text");
        let reply = app.post_raw(format!("<!DOCTYPE x>{}", version.envelope("")), &headers);
        assert_refused(&reply, version, "DOCTYPE declarations are not allowed");
    }
}

/// A valid request for `v` padded with white space inside the Body to exactly `len` bytes.
fn padded_request(v: Soap, len: usize, new_password: &str) -> Vec<u8> {
    let bare = envelope(v, None, &operation(new_password));
    let pad = len.checked_sub(bare.len()).expect("room to pad");
    envelope(
        v,
        None,
        &format!("{}{}", " ".repeat(pad), operation(new_password)),
    )
    .into_bytes()
}

#[test]
fn a_body_exactly_at_the_limit_is_processed_and_one_byte_more_is_413() {
    let app = spawn_app();
    for v in BOTH {
        let at_limit = padded_request(v, DEFAULT_BODY_LIMIT, &format!("{STRONG}-limit-{v:?}"));
        assert_eq!(at_limit.len(), DEFAULT_BODY_LIMIT);
        let reply = app.post(v, at_limit);
        assert!(reply.is_success(), "{}", reply.body);
        let over = padded_request(v, DEFAULT_BODY_LIMIT + 1, &format!("{STRONG}-over-{v:?}"));
        let reply = app.post(v, over);
        assert_bare_fault(&reply, v, 413, client_code(v));
        assert_eq!(
            reply.fault_string().as_deref(),
            Some("The request body is too large")
        );
    }
}

#[test]
fn a_body_over_the_limit_is_413_with_a_client_fault_and_the_service_keeps_serving() {
    let app = spawn_app();
    let two_mib = 2 << 20;
    for v in BOTH {
        let big = padded_request(v, two_mib, STRONG);
        // With Content-Length, and with chunked transfer (a reader of unknown length).
        let with_length = send(
            app.client
                .post(&app.endpoint)
                .header("Content-Type", v.content_type())
                .body(big.clone()),
        );
        let chunked = send(
            app.client
                .post(&app.endpoint)
                .header("Content-Type", v.content_type())
                .body(reqwest::blocking::Body::new(Cursor::new(big))),
        );
        for (how, reply) in [("content-length", with_length), ("chunked", chunked)] {
            assert_bare_fault(&reply, v, 413, client_code(v));
            assert_eq!(
                reply.fault_string().as_deref(),
                Some("The request body is too large"),
                "{how}"
            );
            assert_well_formed(&reply.body);
        }
        assert_still_serving(&app, v, &format!("big-{v:?}"));
    }
    assert_eq!(credential_version(&app, LEARNER2.0), 3);
}

// ------------------------------------------------------------------ documents, health

/// The values of attribute `attr` on every element named `local` (any namespace).
fn attribute_values(xml: &str, local: &str, attr: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e))
                if e.local_name().as_ref() == local.as_bytes() =>
            {
                if let Some(a) = e.try_get_attribute(attr).unwrap() {
                    out.push(a.unescape_value().unwrap().into_owned());
                }
            }
            Ok(Event::Eof) => return out,
            Err(e) => panic!("{e}: {xml}"),
            _ => {}
        }
    }
}

#[test]
fn the_wsdl_address_and_schema_location_follow_the_host_header() {
    let app = spawn_app();
    let reply = send(
        app.client
            .get(format!("{}?wsdl", app.endpoint))
            .header("Host", "passwd.example.com:8443"),
    );
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("text/xml"),
        "{}",
        reply.content_type
    );
    assert_eq!(
        attribute_values(&reply.body, "address", "location"),
        ["http://passwd.example.com:8443/soap"; 2]
    );
    assert_eq!(
        attribute_values(&reply.body, "import", "schemaLocation"),
        ["http://passwd.example.com:8443/soap?xsd=soap-passwd"]
    );

    // Without a Host override, the document's own URLs load: the WSDL from the URL alone.
    let reply = app.get("/soap?wsdl");
    assert_eq!(reply.status, 200);
    let here = format!("http://127.0.0.1:{}/soap", app.port);
    assert_eq!(
        attribute_values(&reply.body, "address", "location"),
        [here.clone(), here.clone()]
    );
    let schema_url = attribute_values(&reply.body, "import", "schemaLocation");
    assert_eq!(schema_url, [format!("{here}?xsd=soap-passwd")]);
    // .NET clients ask in capitals.
    let upper = app.get("/soap?WSDL");
    assert_eq!((upper.status, &upper.body), (200, &reply.body));
    let schema = send(app.client.get(&schema_url[0]));
    assert_eq!(schema.status, 200);
    assert!(schema.content_type.starts_with("text/xml"));
    assert_eq!(
        attribute_values(&schema.body, "schema", "targetNamespace"),
        [API_NS]
    );
    assert_eq!(schema.body, soap_passwd::soap::wsdl::XSD);
}

#[test]
fn a_hostile_host_header_never_reaches_the_wsdl() {
    let app = spawn_app();
    let reply = send(
        app.client
            .get(format!("{}?wsdl", app.endpoint))
            .header("Host", r#"evil.example"/><x y=""#),
    );
    assert_eq!(reply.status, 200);
    assert_well_formed(&reply.body);
    let addresses = attribute_values(&reply.body, "address", "location");
    assert_eq!(addresses.len(), 2);
    assert!(
        addresses.iter().all(|a| !a.contains("evil")),
        "{addresses:?}"
    );
}

#[test]
fn the_wsdl_publishes_the_configured_public_url() {
    let url = "https://passwd.example.com/lms/soap";
    let app = spawn_app_with(DEMO_JSON, |s| s.public_url = Some(url.to_string()));
    let reply = send(
        app.client
            .get(format!("{}?wsdl", app.endpoint))
            .header("Host", "internal-host:9999"),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        attribute_values(&reply.body, "address", "location"),
        [url; 2]
    );
    assert_eq!(
        attribute_values(&reply.body, "import", "schemaLocation"),
        [format!("{url}?xsd=soap-passwd")]
    );
    // The schema is served under the name the WSDL imports it by.
    let schema = app.get("/soap?xsd=soap-passwd");
    assert_eq!(schema.status, 200);
    assert_eq!(schema.body, soap_passwd::soap::wsdl::XSD);
    assert_eq!(app.get("/soap?xsd=no-such-schema").status, 404);
}

#[test]
fn health_answers_200_when_the_database_answers() {
    let app = spawn_app();
    let reply = app.get("/health");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok\n");
}

/// Contract §16: `/health/live` while the process runs, `/health/ready` while the
/// database answers with every migration applied; `/health` as in §2. (An unreachable
/// or frozen PostgreSQL is `tests/pg/multi_instance.py`'s.)
#[test]
fn live_and_ready_tell_the_process_from_its_database() {
    let app = spawn_app();
    for (path, body) in [("/health/live", "live\n"), ("/health/ready", "ready\n")] {
        let reply = app.get(path);
        assert_eq!((reply.status, reply.body.as_str()), (200, body), "{path}");
        assert_eq!(
            reply
                .headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{path}"
        );
    }
    // The schema loses its last migration (another process reset it).
    if app.db().is_postgres() {
        app.db().exec("DELETE FROM schema_migrations", &[]);
    } else {
        app.db().rows("PRAGMA user_version = 6", &[]);
    }
    let reply = app.get("/health/ready");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "database schema behind this build\n")
    );
    assert_eq!(app.get("/health/live").status, 200);
    assert_eq!(
        app.get("/health").status,
        200,
        "/health asks only that it answers"
    );
}
