//! Leniency for older stacks (contract §11.5): the operation's name for its request
//! element, `xsi:nil` for absence, the schema inlined in `?singleWsdl`.

use crate::helpers::*;
use crate::status::status_request;

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

#[test]
fn the_operation_name_is_accepted_for_its_request_element() {
    for v in BOTH {
        let app = spawn_app();
        // Perl SOAP::Lite's WSDL mode: <UpdateUserPassword> with the request's children.
        let body = request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, STRONG)
            .replace("UpdateUserPasswordRequest", "UpdateUserPassword");
        let reply = app.call(v, &body);
        assert!(reply.is_success(), "{}", reply.body);
        assert!(
            reply.body.contains("<UpdateUserPasswordResult"),
            "{}",
            reply.body
        );
        let body = status_request(ADMIN, LEARNER.0)
            .replace("GetUserPasswordStatusRequest", "GetUserPasswordStatus");
        let reply = app.call(v, &body);
        assert_eq!(
            reply.text("credentialVersion").as_deref(),
            Some("2"),
            "{}",
            reply.body
        );
        // Its faults are the usual ones.
        let body = request(ACCOUNT, ADMIN.1, ADMIN.2, "u-nobody", STRONG)
            .replace("UpdateUserPasswordRequest", "UpdateUserPassword");
        assert_client_fault(&app.call(v, &body), v, "Unknown user", "UnknownUserFault");
        // Other names in api are still unknown operations.
        let body = request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, STRONG)
            .replace("UpdateUserPasswordRequest", "UpdateUserPasswordResult");
        let client = if v == Soap::V11 { "Client" } else { "Sender" };
        assert_bare_fault(&app.call(v, &body), v, v.client_fault_status(), client);
    }
}

#[test]
fn a_nil_optional_element_is_absent_not_empty() {
    for v in BOTH {
        let app = spawn_app();
        let body = request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, STRONG).replace(
            "</password></UpdateUserPasswordRequest>",
            &format!(
                r#"</password><passwordConfirm xmlns:xsi="{XSI}" xsi:nil="true"/><temporary xmlns:i="{XSI}" i:nil="1"/></UpdateUserPasswordRequest>"#
            ),
        );
        let reply = app.call(v, &body);
        assert!(reply.is_success(), "{v:?}: {}", reply.body);
        // Without the nil, an empty passwordConfirm is a mismatch, as before.
        let body = request(ACCOUNT, ADMIN.1, ADMIN.2, TRAINER.0, STRONG).replace(
            "</password></UpdateUserPasswordRequest>",
            "</password><passwordConfirm/></UpdateUserPasswordRequest>",
        );
        assert_wrong_parameters(
            &app.call(v, &body),
            v,
            "passwordConfirm",
            &["CONFIRM_MISMATCH"],
        );
        // xsi:nil="false" is not absence.
        let body = request(ACCOUNT, ADMIN.1, ADMIN.2, TRAINER.0, STRONG).replace(
            "</password></UpdateUserPasswordRequest>",
            &format!(r#"</password><passwordConfirm xmlns:xsi="{XSI}" xsi:nil="false"/></UpdateUserPasswordRequest>"#),
        );
        assert_wrong_parameters(
            &app.call(v, &body),
            v,
            "passwordConfirm",
            &["CONFIRM_MISMATCH"],
        );
        // A nil required element is missing.
        let body = request(ACCOUNT, ADMIN.1, ADMIN.2, TRAINER.0, STRONG).replace(
            &format!("<userId>{}</userId>", TRAINER.0),
            &format!(r#"<userId xmlns:xsi="{XSI}" xsi:nil="true"/>"#),
        );
        assert_wrong_parameters(&app.call(v, &body), v, "userId", &[]);
    }
}

#[test]
fn single_wsdl_inlines_the_schema() {
    let app = spawn_app();
    let reply = app.get("/soap?singleWsdl");
    assert_eq!(reply.status, 200);
    assert!(!reply.body.contains("<xs:import"), "{}", reply.body);
    assert_eq!(
        reply.body.matches("<?xml").count(),
        1,
        "one XML declaration"
    );
    for declared in [
        r#"<xs:element name="UpdateUserPasswordsRequest">"#,
        r#"<xs:element name="GetUserPasswordStatusResult">"#,
        r#"<wsdl:operation name="UpdateUserPasswords">"#,
    ] {
        assert!(reply.body.contains(declared), "{declared}");
    }
    let here = format!("http://127.0.0.1:{}/soap", app.port);
    assert!(reply.body.contains(&format!(r#"location="{here}""#)));
    // Well-formed: one document, parsed whole.
    let mut reader = quick_xml::Reader::from_str(&reply.body);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed: {e}"),
        }
    }
}

fn compressed(encoding: &str, body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
    }
}

/// PHP's SoapClient with `compression` (and .NET with decompression on) send gzip or
/// deflate bodies.
#[test]
fn compressed_request_bodies_are_read_within_the_body_limit() {
    let app = spawn_app();
    for (n, (v, encoding, header)) in [
        (Soap::V11, "gzip", "gzip"),
        (Soap::V12, "gzip", "x-gzip"),
        (Soap::V11, "deflate", "deflate"),
        (Soap::V12, "raw-deflate", "deflate"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = v.envelope(&request(
            ACCOUNT,
            ADMIN.1,
            ADMIN.2,
            LEARNER.0,
            &format!("{STRONG}-z{n}"),
        ));
        let reply = app.post_raw(
            compressed(encoding, body.as_bytes()),
            &[
                ("Content-Type", v.content_type()),
                ("Content-Encoding", header),
            ],
        );
        assert!(reply.is_success(), "{encoding}: {}", reply.body);
    }
    // REST too.
    let url = format!(
        "http://127.0.0.1:{}/api/users/{}/password",
        app.port, TRAINER.0
    );
    let resp = app
        .client
        .patch(&url)
        .basic_auth(ADMIN.1, Some(ADMIN.2))
        .header("X-Account-Url", ACCOUNT)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(compressed(
            "gzip",
            format!(r#"{{"password": "{STRONG}"}}"#).as_bytes(),
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // A bomb: 200 KB that decompress to 100 MB are refused as too large, not read.
    let bomb = compressed("gzip", &vec![b' '; 100 * 1024 * 1024]);
    assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
    let reply = app.post_raw(
        bomb,
        &[
            ("Content-Type", Soap::V11.content_type()),
            ("Content-Encoding", "gzip"),
        ],
    );
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.fault_code().as_deref(), Some("SOAP-ENV:Client"));
    // Not gzip at all: a Client fault without detail.
    let reply = app.post_raw(
        b"this is not gzip".to_vec(),
        &[
            ("Content-Type", Soap::V12.content_type()),
            ("Content-Encoding", "gzip"),
        ],
    );
    assert_bare_fault(&reply, Soap::V12, 400, "Sender");
    // An encoding the service does not read: 415, saying which it does.
    let resp = app
        .client
        .post(format!("http://127.0.0.1:{}/soap", app.port))
        .header("Content-Type", Soap::V11.content_type())
        .header("Content-Encoding", "br")
        .body("whatever")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert_eq!(
        resp.headers()
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip, deflate")
    );
    let text = resp.text().unwrap();
    assert!(
        text.contains("<faultcode>SOAP-ENV:Client</faultcode>"),
        "{text}"
    );
    // And the service still serves.
    let reply = app.change(Soap::V11, ADMIN, LEARNER2.0, STRONG);
    assert!(reply.is_success(), "{}", reply.body);
}
