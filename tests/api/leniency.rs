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
