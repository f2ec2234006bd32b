//! The published response fixtures are exactly what the service answers to the request
//! fixtures (compared as XML: prefixes, comments and indentation aside).

use quick_xml::events::Event;
use quick_xml::reader::NsReader;
use soap_passwd::domain::ServiceError;
use soap_passwd::soap::{Fault, SoapVersion, write_fault};

use crate::helpers::*;

/// The document as a list of (namespace, local name, attributes, text) per element, in
/// document order; namespace declarations, comments and whitespace-only text ignored.
fn canonical(xml: &str) -> Vec<String> {
    let mut reader = NsReader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_resolved_event().expect("well-formed XML") {
            (ns, Event::Start(e)) | (ns, Event::Empty(e)) => {
                let ns = format!("{ns:?}");
                let mut attrs: Vec<String> = e
                    .attributes()
                    .map(|a| a.expect("attribute"))
                    .filter(|a| !a.key.as_ref().starts_with(b"xmlns"))
                    .map(|a| {
                        let value = String::from_utf8_lossy(&a.value).into_owned();
                        // A qualified name in a value depends on the prefix: keep the local part.
                        let value = value.rsplit(':').next().unwrap_or_default().to_string();
                        format!(
                            "{}={value}",
                            String::from_utf8_lossy(a.key.local_name().as_ref())
                        )
                    })
                    .collect();
                attrs.sort();
                out.push(format!(
                    "<{ns}{}{attrs:?}",
                    String::from_utf8_lossy(e.local_name().as_ref())
                ));
            }
            (_, Event::Text(t)) => {
                let text = t.xml10_content().expect("text");
                if !text.trim().is_empty() {
                    // Fault codes are QNames: compare their local part.
                    out.push(format!(
                        "text:{}",
                        text.trim().rsplit(':').next().unwrap_or_default()
                    ));
                }
            }
            (_, Event::GeneralRef(r)) => out.push(format!("ref:{}", String::from_utf8_lossy(&r))),
            (_, Event::End(_)) => out.push(">".into()),
            (_, Event::Eof) => return merge_text(out),
            _ => {}
        }
    }
}

/// Joins adjacent text and reference pieces so `it's` and `it&apos;s` compare equal.
fn merge_text(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let piece = if let Some(t) = item.strip_prefix("text:") {
            Some(t.to_string())
        } else {
            item.strip_prefix("ref:").map(|r| match r {
                "apos" => "'".to_string(),
                "quot" => "\"".to_string(),
                "amp" => "&".to_string(),
                "lt" => "<".to_string(),
                "gt" => ">".to_string(),
                other => format!("&{other};"),
            })
        };
        match (piece, out.last_mut()) {
            (Some(p), Some(last)) if last.starts_with("text:") => last.push_str(&p),
            (Some(p), _) => out.push(format!("text:{p}")),
            (None, _) => out.push(item),
        }
    }
    out
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR")))
        .expect("fixture")
}

#[test]
fn request_fixtures_get_exactly_the_response_fixtures() {
    let cases = [
        ("success.xml", "success-soap11.xml", 200),
        ("success-soap12.xml", "success-soap12.xml", 200),
        ("policy-violation.xml", "wrong-parameters.xml", 500),
        (
            "authentication-failed.xml",
            "authentication-failed.xml",
            500,
        ),
        ("unknown-user.xml", "unknown-user.xml", 500),
        (
            "permission-denied-not-in-scope.xml",
            "permission-denied.xml",
            500,
        ),
        ("batch-mixed.xml", "batch-mixed.xml", 200),
        ("status-soap12.xml", "status-soap12.xml", 200),
        ("temporary.xml", "success-soap11.xml", 200),
        ("operation-name-alias.xml", "success-soap11.xml", 200),
        ("passwordconfirm-nil.xml", "success-soap11.xml", 200),
        ("reset-return.xml", "reset-return.xml", 200),
        ("reset-all-in-scope.xml", "reset-all-in-scope.xml", 200),
        (
            "reset-all-in-scope-return-soap12.xml",
            "reset-all-in-scope-return-soap12.xml",
            400,
        ),
    ];
    let app = spawn_app();
    for (request, response, status) in cases {
        let body = fixture(&format!("requests/{request}"));
        let version = if body.contains(SOAP12) {
            Soap::V12
        } else {
            Soap::V11
        };
        let reply = app.post(version, body);
        assert_eq!(reply.status, status, "{request}: {}", reply.body);
        // The volatile fields: when the demo directory was imported, when a link expires
        // and the link itself (its shape checked here, its value a placeholder).
        let mut answered = match reply.text("passwordChangedAt") {
            Some(at) => reply.body.replace(&at, "2026-12-01T10:00:00Z"),
            None => reply.body.clone(),
        };
        for at in reply.texts("expiresAt") {
            answered = answered.replace(&at, "2026-12-01T11:00:00Z");
        }
        for link in reply.texts("link") {
            let token = link
                .strip_prefix(&format!("http://127.0.0.1:{}/reset/", app.port))
                .unwrap_or_else(|| panic!("{request}: a link elsewhere: {link}"));
            assert!(
                token.len() == 43
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{request}: not a 256-bit base64url token: {token}"
            );
            answered = answered.replace(
                &link,
                "http://localhost:8080/reset/0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
            );
        }
        assert_eq!(
            canonical(&answered),
            canonical(&fixture(&format!("responses/{response}"))),
            "{request} → {response}"
        );
    }
}

#[test]
fn a_policy_violation_over_soap_12_gets_the_soap_12_response_fixture() {
    let app = spawn_app();
    let body = fixture("requests/policy-violation.xml").replace(SOAP11, SOAP12);
    let reply = app.post(Soap::V12, body);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        canonical(&reply.body),
        canonical(&fixture("responses/wrong-parameters-soap12.xml"))
    );
}

#[test]
fn the_server_busy_fixture_is_what_the_fault_writer_produces() {
    let written = write_fault(
        SoapVersion::V11,
        &Fault::from_service_error(&ServiceError::ServerBusy),
    );
    assert_eq!(
        canonical(&written),
        canonical(&fixture("responses/server-busy.xml"))
    );
}
