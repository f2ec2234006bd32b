//! `UpdateUserPasswordRequest` (contract §3, §11.1) as sent, and its result.

use secrecy::{ExposeSecret, SecretString};

use super::super::envelope::Element;
use super::super::wire::{CallerWire, RequestOrigin, take_bool, take_text};
use super::{Field, Limits};
use crate::domain::{
    Call, ChangeFields, PasswordChange, Reply, ServiceError, UpdatePasswordRequest,
};

/// The request's fields, by parameter path, in document order. A test checks the
/// published XSD declares exactly these.
pub const REQUEST_FIELDS: &[&str] = &[
    "credentials",
    "credentials/accountUrl",
    "credentials/email",
    "credentials/password",
    "userId",
    "password",
    "passwordConfirm",
    "temporary",
];

/// Decodes the operation element (and the WS-Security header, if any) into a call.
pub(super) fn decode(
    op: Element,
    security: Option<Element>,
    origin: &RequestOrigin,
    _limits: &Limits,
) -> Result<Call, ServiceError> {
    decode_request(op, security, origin).map(Call::UpdatePassword)
}

/// Every field is taken (a duplicate anywhere is reported first), then converted in
/// the order of the contract's parameter list, then `passwordConfirm` compared; a token
/// that cannot be verified fails authentication only once all of that passed.
pub(super) fn decode_request(
    mut op: Element,
    security: Option<Element>,
    origin: &RequestOrigin,
) -> Result<UpdatePasswordRequest, ServiceError> {
    let caller = CallerWire::take(&mut op, security)?;
    let user_id = take_text(&mut op, "userId", "userId")?;
    let password = take_text(&mut op, "password", "password")?.map(SecretString::from);
    let confirm = take_text(&mut op, "passwordConfirm", "passwordConfirm")?.map(SecretString::from);
    let temporary = take_bool(&mut op, "temporary", "temporary")?;

    let caller = caller.into_domain(origin)?;
    let change = PasswordChange::parse(
        &FIELDS,
        user_id.as_deref(),
        password.as_ref().map(ExposeSecret::expose_secret),
        confirm.as_ref().map(ExposeSecret::expose_secret),
        temporary,
    )?;
    Ok(UpdatePasswordRequest {
        credentials: caller.into_credentials()?,
        change,
    })
}

/// The request's fields as its faults name them.
const FIELDS: ChangeFields = ChangeFields {
    user_id: "userId",
    password: "password",
    confirm: "passwordConfirm",
};

/// The result's children.
pub(super) fn encode(_reply: &Reply) -> Vec<Field> {
    vec![Field::text("success", "true")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ParameterError, ServiceError, Violation};
    use crate::soap::envelope::WSSE_NS;
    use crate::soap::{API_NS, Limits, parse_envelope};

    fn decode_with(header: &str, body: &str) -> Result<UpdatePasswordRequest, ServiceError> {
        let doc = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header>{header}</e:Header><e:Body>
               <a:UpdateUserPasswordRequest xmlns:a="{API_NS}">{body}</a:UpdateUserPasswordRequest>
               </e:Body></e:Envelope>"#
        );
        let env = parse_envelope(&doc, &Limits::default()).unwrap();
        let origin = RequestOrigin {
            host: Some("Tenant.Example.com".into()),
            ..RequestOrigin::default()
        };
        decode_request(env.operation.element, env.security, &origin)
    }

    fn decode(body: &str) -> Result<UpdatePasswordRequest, ParameterError> {
        decode_with("", body).map_err(|e| match e {
            ServiceError::WrongParameters(p) => p,
            other => panic!("{other:?}"),
        })
    }

    fn token(password_type: &str) -> String {
        format!(
            r#"<wsse:Security xmlns:wsse="{WSSE_NS}" e:mustUnderstand="1"><wsse:UsernameToken>
                 <wsse:Username>caller@example.com</wsse:Username>
                 <wsse:Password{password_type}>token-pw</wsse:Password>
               </wsse:UsernameToken></wsse:Security>"#
        )
    }

    #[test]
    fn a_username_token_authenticates_when_the_body_has_no_credentials() {
        let r = decode_with(&token(""), "<userId>u</userId><password>new</password>").unwrap();
        assert_eq!(r.credentials.login.as_str(), "caller@example.com");
        assert_eq!(r.credentials.password.expose(), "token-pw");
        assert_eq!(r.credentials.account_url.key(), "tenant.example.com");
        let text = format!(
            r#" Type="{}#PasswordText""#,
            "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
        );
        assert!(decode_with(&token(&text), "<userId>u</userId><password>new</password>").is_ok());
    }

    #[test]
    fn body_credentials_take_precedence_over_a_token() {
        let r = decode_with(
            &token(""),
            &format!("{CREDS}<userId>u</userId><password>new</password>"),
        )
        .unwrap();
        assert_eq!(r.credentials.login.as_str(), "a@b.c");
    }

    #[test]
    fn a_password_digest_token_is_unsupported_after_parameters_are_checked() {
        let digest = r#" Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest""#;
        let e =
            decode_with(&token(digest), "<userId>u</userId><password>new</password>").unwrap_err();
        assert!(
            matches!(
                e,
                ServiceError::AuthenticationFailed(crate::domain::AuthFailure::UnsupportedToken)
            ),
            "{e:?}"
        );
        let e = decode_with(&token(digest), "<password>new</password>").unwrap_err();
        assert!(
            matches!(e, ServiceError::WrongParameters(ref p) if p.parameter == "userId"),
            "{e:?}"
        );
    }

    const CREDS: &str = "<credentials><accountUrl>http://a</accountUrl><email>a@b.c</email><password>pw</password></credentials>";

    #[test]
    fn unqualified_children_are_fields_foreign_ones_are_ignored() {
        let r = decode(&format!("{CREDS}<userId>u</userId><password>new</password><x:password xmlns:x='urn:x'>other</x:password><extra/>")).unwrap();
        assert_eq!(r.change.user_id.as_str(), "u");
        assert_eq!(r.change.new_password.expose(), "new");
    }

    #[test]
    fn duplicates_and_child_elements_name_the_field() {
        let e = decode(&format!(
            "{CREDS}<userId>u</userId><password>a</password><password>b</password>"
        ))
        .unwrap_err();
        assert_eq!(e.parameter, "password");
        let e = decode(&format!(
            "{CREDS}<userId><b>u</b></userId><password>a</password>"
        ))
        .unwrap_err();
        assert_eq!(e.parameter, "userId");
        let e = decode(
            "<credentials><accountUrl>x</accountUrl><accountUrl>y</accountUrl></credentials>",
        )
        .unwrap_err();
        assert_eq!(e.parameter, "credentials/accountUrl");
    }

    #[test]
    fn missing_fields_and_confirmation() {
        assert_eq!(
            decode(&format!("{CREDS}<password>a</password>"))
                .unwrap_err()
                .parameter,
            "userId"
        );
        let e = decode(&format!(
            "{CREDS}<userId>u</userId><password>a</password><passwordConfirm>b</passwordConfirm>"
        ))
        .unwrap_err();
        assert_eq!(
            (e.parameter, e.violations),
            ("passwordConfirm", vec![Violation::ConfirmMismatch])
        );
    }
}
