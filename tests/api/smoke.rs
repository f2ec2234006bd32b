//! The demo's request works over both SOAP versions.

use crate::helpers::*;

#[test]
fn sales_admin_sets_learner_password_over_soap_11_and_12() {
    let app = spawn_app();
    let reply = app.change(Soap::V11, SALES_ADMIN, LEARNER.0, STRONG);
    assert!(reply.is_success(), "{}", reply.body);
    assert!(reply.content_type.starts_with("text/xml"));
    let reply = app.change(Soap::V12, SALES_ADMIN, LEARNER.0, &format!("{STRONG}-2"));
    assert!(reply.is_success(), "{}", reply.body);
    assert!(reply.content_type.starts_with("application/soap+xml"));
    let version: i64 = app
        .db()
        .query_row(
            "SELECT credential_version FROM users WHERE ext_id = 'u-learner'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 3);
}
