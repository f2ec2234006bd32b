//! Wire structs of `UpdateUserPasswordRequest` and their decoding from the operation's
//! element subtree, then conversion into the domain request.
//!
//! Decoding is hand-written rather than serde-derived because the contract needs what
//! serde's XML mapping cannot say precisely: a field given twice or holding elements is a
//! `WrongParametersFault` naming that field, and children count only in the `api`
//! namespace or in none (unqualified JAX-WS stubs), while unknown elements are ignored.

use secrecy::{ExposeSecret, SecretString};

use super::API_NS;
use super::envelope::Element;
use crate::domain::{
    AccountUrl, Credentials, Email, ParameterError, Password, UpdatePasswordRequest, UserId,
    Violation,
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
];

/// `<credentials>` as sent.
#[derive(Debug)]
pub struct CredentialsWire {
    pub account_url: Option<String>,
    pub email: Option<String>,
    pub password: Option<SecretString>,
}

/// `<UpdateUserPasswordRequest>` as sent: each field present at most once, as text.
#[derive(Debug)]
pub struct UpdateUserPasswordWire {
    pub credentials: Option<CredentialsWire>,
    pub user_id: Option<String>,
    pub password: Option<SecretString>,
    pub password_confirm: Option<SecretString>,
}

/// True for children that count as fields: in `api` or in no namespace.
fn ours(e: &Element) -> bool {
    matches!(e.ns.as_deref(), None | Some(API_NS))
}

/// Takes the single child named `local`, refusing duplicates.
fn take_one(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
) -> Result<Option<Element>, ParameterError> {
    let mut found = None;
    let mut i = 0;
    while i < parent.children.len() {
        if ours(&parent.children[i]) && parent.children[i].local == local {
            let e = parent.children.swap_remove(i);
            if found.is_some() {
                return Err(ParameterError::new(
                    parameter,
                    format!("{parameter} is given more than once"),
                ));
            }
            found = Some(e);
        } else {
            i += 1;
        }
    }
    Ok(found)
}

/// Takes a text field: present at most once, holding no elements.
fn take_text(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
) -> Result<Option<String>, ParameterError> {
    match take_one(parent, local, parameter)? {
        None => Ok(None),
        Some(e) if !e.children.is_empty() => Err(ParameterError::new(
            parameter,
            format!("{parameter} holds elements instead of text"),
        )),
        Some(e) => Ok(Some(e.text)),
    }
}

impl UpdateUserPasswordWire {
    /// Decodes the operation element's subtree.
    pub fn decode(mut op: Element) -> Result<Self, ParameterError> {
        let credentials = match take_one(&mut op, "credentials", "credentials")? {
            None => None,
            Some(mut c) => {
                if c.has_text() {
                    return Err(ParameterError::new(
                        "credentials",
                        "credentials holds text instead of elements",
                    ));
                }
                Some(CredentialsWire {
                    account_url: take_text(&mut c, "accountUrl", "credentials/accountUrl")?,
                    email: take_text(&mut c, "email", "credentials/email")?,
                    password: take_text(&mut c, "password", "credentials/password")?
                        .map(SecretString::from),
                })
            }
        };
        Ok(UpdateUserPasswordWire {
            credentials,
            user_id: take_text(&mut op, "userId", "userId")?,
            password: take_text(&mut op, "password", "password")?.map(SecretString::from),
            password_confirm: take_text(&mut op, "passwordConfirm", "passwordConfirm")?
                .map(SecretString::from),
        })
    }

    /// Converts into the domain request, checking presence and bounds in the order of
    /// the contract's parameter list, then `passwordConfirm`.
    pub fn into_domain(self) -> Result<UpdatePasswordRequest, ParameterError> {
        fn missing(parameter: &'static str) -> ParameterError {
            ParameterError::new(parameter, format!("{parameter} is missing"))
        }
        let c = self.credentials.ok_or_else(|| missing("credentials"))?;
        let account_url = c
            .account_url
            .ok_or_else(|| missing("credentials/accountUrl"))?;
        let account_url = AccountUrl::parse("credentials/accountUrl", &account_url)?;
        let email = c.email.ok_or_else(|| missing("credentials/email"))?;
        let email = Email::parse("credentials/email", &email)?;
        let caller_password = c.password.ok_or_else(|| missing("credentials/password"))?;
        let caller_password =
            Password::parse("credentials/password", caller_password.expose_secret())?;
        let user_id = self.user_id.ok_or_else(|| missing("userId"))?;
        let user_id = UserId::parse("userId", &user_id)?;
        let new_password = self.password.ok_or_else(|| missing("password"))?;
        let new_password = Password::parse("password", new_password.expose_secret())?;
        if let Some(confirm) = self.password_confirm {
            // Compared after NFKC normalisation, like every password comparison.
            let confirm = Password::normalise(confirm.expose_secret());
            if !confirm.matches(&new_password) {
                return Err(ParameterError {
                    parameter: "passwordConfirm",
                    message: "passwordConfirm does not match password".into(),
                    violations: vec![Violation::ConfirmMismatch],
                });
            }
        }
        Ok(UpdatePasswordRequest {
            credentials: Credentials {
                account_url,
                email,
                password: caller_password,
            },
            user_id,
            new_password,
        })
    }
}

/// Decodes and converts the operation element in one step.
pub fn decode_update_password(op: Element) -> Result<UpdatePasswordRequest, ParameterError> {
    UpdateUserPasswordWire::decode(op)?.into_domain()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{Limits, Operation, parse_envelope};

    fn decode(body: &str) -> Result<UpdatePasswordRequest, ParameterError> {
        let doc = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>
               <a:UpdateUserPasswordRequest xmlns:a="{API_NS}">{body}</a:UpdateUserPasswordRequest>
               </e:Body></e:Envelope>"#
        );
        let Operation::UpdateUserPassword(op) =
            parse_envelope(&doc, &Limits::default()).unwrap().operation;
        decode_update_password(op)
    }

    const CREDS: &str = "<credentials><accountUrl>http://a</accountUrl><email>a@b.c</email><password>pw</password></credentials>";

    #[test]
    fn unqualified_children_are_fields_foreign_ones_are_ignored() {
        let r = decode(&format!("{CREDS}<userId>u</userId><password>new</password><x:password xmlns:x='urn:x'>other</x:password><extra/>")).unwrap();
        assert_eq!(r.user_id.as_str(), "u");
        assert_eq!(r.new_password.expose(), "new");
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
