//! What every operation's decoding shares: taking fields from the operation element's
//! subtree, the `credentials` block and the WS-Security UsernameToken, and their
//! conversion into domain [`Credentials`].
//!
//! Decoding is hand-written rather than serde-derived because the contract needs what
//! serde's XML mapping cannot say precisely: a field given twice or holding elements is a
//! `WrongParametersFault` naming that field, and children count only in the `api`
//! namespace or in none (unqualified JAX-WS stubs), while unknown elements are ignored.

use secrecy::{ExposeSecret, SecretString};

use super::API_NS;
use super::envelope::{Element, WSSE_NS};
use crate::domain::{
    AccountUrl, AuthFailure, Credentials, Email, Login, ParameterError, Password, ServiceError,
};

/// `<credentials>` as sent.
#[derive(Debug)]
pub struct CredentialsWire {
    pub account_url: Option<String>,
    pub email: Option<String>,
    pub password: Option<SecretString>,
}

/// How a WS-Security UsernameToken carries the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPasswordType {
    /// `#PasswordText` (or no `Type`): the password itself.
    Text,
    /// `#PasswordDigest` or anything else: cannot be checked against an argon2id hash.
    Unsupported,
}

/// `wsse:Security/wsse:UsernameToken` as sent.
#[derive(Debug)]
pub struct UsernameTokenWire {
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub password_type: TokenPasswordType,
}

/// What the HTTP layer knows that the message does not: the account a WS-Security
/// caller addresses is the one whose URL is the request's host.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    /// The `Host` header (or `X-Forwarded-Host` behind a trusted proxy).
    pub host: Option<String>,
    /// The origin reset links start with.
    pub link_base: Option<String>,
}

/// True for children that count as fields: in `api` or in no namespace.
fn ours(e: &Element) -> bool {
    matches!(e.ns.as_deref(), None | Some(API_NS))
}

/// True for WS-Security elements.
fn wsse(e: &Element) -> bool {
    e.ns.as_deref() == Some(WSSE_NS)
}

/// Takes the single child named `local` that `accept` admits, refusing duplicates. The
/// other children keep their order (a batch's items are answered in it).
fn take_one_where(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
    accept: fn(&Element) -> bool,
) -> Result<Option<Element>, ParameterError> {
    let mut found = None;
    let mut i = 0;
    while i < parent.children.len() {
        if accept(&parent.children[i]) && parent.children[i].local == local {
            let e = parent.children.remove(i);
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
    // `xsi:nil="true"` (.NET proxies send it for an unset optional) is an absent
    // element, not an empty one (contract §11.5).
    Ok(found.filter(|e| !is_nil(e)))
}

const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

fn is_nil(e: &Element) -> bool {
    e.attributes.iter().any(|(ns, local, value)| {
        ns.as_deref() == Some(XSI_NS) && local == "nil" && matches!(value.trim(), "true" | "1")
    })
}

/// Takes every field named `local` (in `api` or no namespace), in document order; a
/// nil one is left out.
pub fn take_all(parent: &mut Element, local: &str) -> Vec<Element> {
    let (taken, kept): (Vec<Element>, Vec<Element>) = std::mem::take(&mut parent.children)
        .into_iter()
        .partition(|e| ours(e) && e.local == local);
    parent.children = kept;
    taken.into_iter().filter(|e| !is_nil(e)).collect()
}

/// Takes an `xs:boolean` field: `true`, `false`, `1` or `0` (surrounding white space
/// aside); anything else is a wrong parameter.
pub fn take_bool(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
) -> Result<Option<bool>, ParameterError> {
    match take_text(parent, local, parameter)?
        .as_deref()
        .map(str::trim)
    {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(_) => Err(ParameterError::new(
            parameter,
            format!("{parameter} must be true, false, 1 or 0"),
        )),
    }
}

/// Whether an element holds child elements only (white space aside), as a group such as
/// `credentials` or `item` must.
pub fn check_group(e: &Element, parameter: &'static str) -> Result<(), ParameterError> {
    if e.has_text() {
        return Err(ParameterError::new(
            parameter,
            format!("{parameter} holds text instead of elements"),
        ));
    }
    Ok(())
}

/// Takes the single field named `local` (in `api` or no namespace), refusing duplicates.
fn take_one(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
) -> Result<Option<Element>, ParameterError> {
    take_one_where(parent, local, parameter, ours)
}

/// Takes a text field: present at most once, holding no elements.
pub fn take_text(
    parent: &mut Element,
    local: &str,
    parameter: &'static str,
) -> Result<Option<String>, ParameterError> {
    text_of(take_one(parent, local, parameter)?, parameter)
}

fn text_of(
    element: Option<Element>,
    parameter: &'static str,
) -> Result<Option<String>, ParameterError> {
    match element {
        None => Ok(None),
        Some(e) if !e.children.is_empty() => Err(ParameterError::new(
            parameter,
            format!("{parameter} holds elements instead of text"),
        )),
        Some(mut e) => Ok(Some(std::mem::take(&mut e.text))),
    }
}

impl CredentialsWire {
    /// Takes `<credentials>` from the operation element, if there.
    pub fn take(op: &mut Element) -> Result<Option<Self>, ParameterError> {
        let Some(mut c) = take_one(op, "credentials", "credentials")? else {
            return Ok(None);
        };
        check_group(&c, "credentials")?;
        Ok(Some(CredentialsWire {
            account_url: take_text(&mut c, "accountUrl", "credentials/accountUrl")?,
            email: take_text(&mut c, "email", "credentials/email")?,
            password: take_text(&mut c, "password", "credentials/password")?
                .map(SecretString::from),
        }))
    }
}

/// How the caller signs in: body `credentials`, else a WS-Security token.
#[derive(Debug)]
pub struct CallerWire {
    credentials: Option<CredentialsWire>,
    token: Option<UsernameTokenWire>,
}

/// The caller's credentials, and whether they came in a token whose password type
/// cannot be checked (failed as authentication once every parameter is checked).
pub struct Caller {
    pub credentials: Credentials,
    pub unsupported_token: bool,
}

impl Caller {
    /// The credentials, or the authentication failure an unsupported token is.
    pub fn into_credentials(self) -> Result<Credentials, ServiceError> {
        if self.unsupported_token {
            return Err(ServiceError::AuthenticationFailed(
                AuthFailure::UnsupportedToken,
            ));
        }
        Ok(self.credentials)
    }
}

impl CallerWire {
    /// Takes `<credentials>` from `op`, and reads the token only when they are absent:
    /// body credentials take precedence, so a token the middleware got wrong cannot fail
    /// a call that authenticates in the Body.
    pub fn take(op: &mut Element, security: Option<Element>) -> Result<Self, ParameterError> {
        let credentials = CredentialsWire::take(op)?;
        let token = match security {
            Some(s) if credentials.is_none() => UsernameTokenWire::decode(s)?,
            _ => None,
        };
        Ok(CallerWire { credentials, token })
    }

    /// Converts into domain credentials, checking presence and bounds in the order of
    /// the contract's parameter list. A token's account is the request's host.
    pub fn into_domain(self, origin: &RequestOrigin) -> Result<Caller, ParameterError> {
        match (self.credentials, self.token) {
            (Some(c), _) => {
                let account_url = c
                    .account_url
                    .ok_or_else(|| ParameterError::missing("credentials/accountUrl"))?;
                let account_url = AccountUrl::parse("credentials/accountUrl", &account_url)?;
                let email = c
                    .email
                    .ok_or_else(|| ParameterError::missing("credentials/email"))?;
                let email = Email::parse("credentials/email", &email)?;
                let password = c
                    .password
                    .ok_or_else(|| ParameterError::missing("credentials/password"))?;
                let password = Password::parse("credentials/password", password.expose_secret())?;
                Ok(Caller {
                    credentials: Credentials {
                        account_url,
                        login: Login::Email(email),
                        password,
                    },
                    unsupported_token: false,
                })
            }
            (None, Some(t)) => {
                let email = t
                    .username
                    .ok_or_else(|| ParameterError::missing(TOKEN_USERNAME))?;
                let email = Email::parse(TOKEN_USERNAME, &email)?;
                let password = t
                    .password
                    .ok_or_else(|| ParameterError::missing(TOKEN_PASSWORD))?;
                let password = Password::parse(TOKEN_PASSWORD, password.expose_secret())?;
                let host = origin.host.as_deref().ok_or_else(|| {
                    ParameterError::new(
                        "credentials",
                        "credentials are missing and the request names no host",
                    )
                })?;
                let account_url = AccountUrl::from_host("credentials", host)?;
                Ok(Caller {
                    credentials: Credentials {
                        account_url,
                        login: Login::Email(email),
                        password,
                    },
                    unsupported_token: t.password_type == TokenPasswordType::Unsupported,
                })
            }
            (None, None) => Err(ParameterError::missing("credentials")),
        }
    }
}

const TOKEN_USERNAME: &str = "Security/UsernameToken/Username";
const TOKEN_PASSWORD: &str = "Security/UsernameToken/Password";
const PASSWORD_TEXT: &str = "#PasswordText";

impl UsernameTokenWire {
    /// Decodes the `wsse:Security` header block; `None` when it holds no UsernameToken
    /// (a Timestamp-only header, say).
    pub fn decode(mut security: Element) -> Result<Option<Self>, ParameterError> {
        let Some(mut token) = take_one_where(
            &mut security,
            "UsernameToken",
            "Security/UsernameToken",
            wsse,
        )?
        else {
            return Ok(None);
        };
        let username = text_of(
            take_one_where(&mut token, "Username", TOKEN_USERNAME, wsse)?,
            TOKEN_USERNAME,
        )?;
        let password = take_one_where(&mut token, "Password", TOKEN_PASSWORD, wsse)?;
        let password_type = match password.as_ref().and_then(|p| p.attribute("Type")) {
            None => TokenPasswordType::Text,
            Some(t) if t.trim().ends_with(PASSWORD_TEXT) => TokenPasswordType::Text,
            Some(_) => TokenPasswordType::Unsupported,
        };
        let password = text_of(password, TOKEN_PASSWORD)?.map(SecretString::from);
        Ok(Some(UsernameTokenWire {
            username,
            password,
            password_type,
        }))
    }
}
