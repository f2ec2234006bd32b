//! The operations the SOAP front door knows: the table the envelope pre-pass
//! dispatches on, and per operation (one module each) its decoding into a domain
//! [`Call`] and its result's children. Adding an operation is a module here and a row of
//! [`OPERATIONS`].

mod password_status;
mod reset_passwords;
mod update_password;
mod update_passwords;

use super::envelope::{Element, Limits};
use super::wire::RequestOrigin;
use crate::domain::{Call, Reply, ServiceError};

pub use update_password::REQUEST_FIELDS;

/// One operation of the port type (contract §3, §11).
#[derive(Debug)]
pub struct OperationSpec {
    /// The operation's name (the WSDL's `wsdl:operation`, the log line's `op`).
    pub name: &'static str,
    /// The Body's element that asks for it, in `api`.
    pub request: &'static str,
    /// The Body's element that answers it, in `api`.
    pub result: &'static str,
    /// Its request element (and the WS-Security header) into a call.
    pub decode: fn(Element, Option<Element>, &RequestOrigin, &Limits) -> Result<Call, ServiceError>,
    /// A successful reply into the result element's children.
    pub encode: fn(&Reply) -> Vec<Field>,
}

/// Every operation, by the QName of its request element.
pub static OPERATIONS: &[OperationSpec] = &[
    OperationSpec {
        name: "UpdateUserPassword",
        request: "UpdateUserPasswordRequest",
        result: "UpdateUserPasswordResult",
        decode: update_password::decode,
        encode: update_password::encode,
    },
    OperationSpec {
        name: "UpdateUserPasswords",
        request: "UpdateUserPasswordsRequest",
        result: "UpdateUserPasswordsResult",
        decode: update_passwords::decode,
        encode: update_passwords::encode,
    },
    OperationSpec {
        name: "ResetUserPasswords",
        request: "ResetUserPasswordsRequest",
        result: "ResetUserPasswordsResult",
        decode: reset_passwords::decode,
        encode: reset_passwords::encode,
    },
    OperationSpec {
        name: "GetUserPasswordStatus",
        request: "GetUserPasswordStatusRequest",
        result: "GetUserPasswordStatusResult",
        decode: password_status::decode,
        encode: password_status::encode,
    },
];

/// The operation a Body element in `api` named `local` asks for: its request element,
/// or — for RPC-minded stacks such as Perl SOAP::Lite's WSDL mode — the operation's own
/// name, with the same children (contract §11.5).
pub fn find(local: &str) -> Option<&'static OperationSpec> {
    OPERATIONS
        .iter()
        .find(|op| op.request == local || op.name == local)
}

/// A child of a result element: text, or a group of children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Text(&'static str, String),
    Group(&'static str, Vec<Field>),
}

impl Field {
    pub fn text(name: &'static str, value: impl Into<String>) -> Field {
        Field::Text(name, value.into())
    }
}
