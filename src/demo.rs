//! `serve --demo`: the demo directory and the ready-to-paste request printed at start.

/// `fixtures/demo.json`, embedded so `--demo` works from any directory.
pub const DEMO_JSON: &str = include_str!("../fixtures/demo.json");

/// A curl command that changes the demo learner's password as the sales department's
/// admin. The new password is random, so the command succeeds each time the server starts.
pub fn ready_request(endpoint: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let suffix: String = (0..12)
        .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
        .collect();
    let new_password = format!("Demo-{suffix}-9!");
    format!(
        r#"curl -s {endpoint} -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "UpdateUserPassword"' --data-binary @- <<'XML'
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
                   xmlns="http://ispringlearn.com/go/services/api/soap">
  <SOAP-ENV:Body>
    <UpdateUserPasswordRequest>
      <credentials>
        <accountUrl>http://myaccount.ispringlearn.com</accountUrl>
        <email>sales.admin@example.com</email>
        <password>Sales-Demo-Pass-2468</password>
      </credentials>
      <userId>u-learner</userId>
      <password>{new_password}</password>
    </UpdateUserPasswordRequest>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
XML"#
    )
}
