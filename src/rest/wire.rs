//! The JSON bodies of the REST twin (contract §13), as sent and as answered. Members are
//! camelCase as in the SOAP messages; unknown members are ignored, `null` is absent, and
//! passwords are `SecretString`s from the moment they are read.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::Problem;
use crate::domain::PasswordStatus;

/// `PATCH /api/users/{userId}/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChangeBody {
    /// The new password, taken exactly as sent.
    #[schema(value_type = String, min_length = 1)]
    pub password: Option<SecretString>,
    /// When sent, must equal `password`.
    #[schema(value_type = Option<String>)]
    pub password_confirm: Option<SecretString>,
    /// A self-change without `Authorization`: the user in the path signs in with it.
    #[schema(value_type = Option<String>)]
    pub current_password: Option<SecretString>,
    /// The user must change this password (ignored on a self-change).
    pub temporary: Option<bool>,
}

/// One item of `POST /api/passwords`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordItemBody {
    pub user_id: Option<String>,
    #[schema(value_type = String, min_length = 1)]
    pub password: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    pub password_confirm: Option<SecretString>,
    pub temporary: Option<bool>,
}

/// `POST /api/passwords`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordsBody {
    /// 1 to `--batch-max` items, no `userId` twice.
    #[schema(value_type = Option<Vec<PasswordItemBody>>)]
    pub items: Option<Bounded<PasswordItemBody>>,
}

/// The most items a JSON list is read into memory for, whatever the batch limit (the
/// largest `--batch-max`): `[{},{},…]` costs 3 bytes an item on the wire and ~64 in
/// memory, so an unbounded list in a large body would cost hundreds of MB.
pub const MAX_LIST_ITEMS: usize = 100_000;

/// What the error of a list over [`MAX_LIST_ITEMS`] says (matched to name the member).
pub const TOO_MANY_ITEMS: &str = "more items than any batch may hold";

/// A list read into memory only up to [`MAX_LIST_ITEMS`].
#[derive(Debug)]
pub struct Bounded<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Bounded<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Bounded<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX_LIST_ITEMS {
                        return Err(serde::de::Error::custom(TOO_MANY_ITEMS));
                    }
                    items.push(item);
                }
                Ok(Bounded(items))
            }
        }
        deserializer.deserialize_seq(Visitor(std::marker::PhantomData))
    }
}

/// A change's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Success {
    pub success: bool,
}

/// One item's result, in the request's order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemResultBody {
    pub user_id: String,
    pub success: bool,
    /// Why the item failed: the problem its single call would get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// `POST /api/passwords`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResultsBody {
    pub items: Vec<ItemResultBody>,
}

/// `GET /api/users/{userId}/password` (contract §11.3).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordStatusBody {
    pub user_id: String,
    /// `active` or `deactivated`.
    #[schema(example = "active")]
    pub status: String,
    pub externally_managed: bool,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub password_changed_at: String,
    pub temporary: bool,
    pub credential_version: i64,
    /// An unused, unexpired reset link exists.
    pub reset_pending: bool,
    /// Only while the user's (account, e-mail) pair is locked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub locked_until: Option<String>,
}

impl From<&PasswordStatus> for PasswordStatusBody {
    fn from(s: &PasswordStatus) -> Self {
        PasswordStatusBody {
            user_id: s.user_id.clone(),
            status: s.status.as_str().to_string(),
            externally_managed: s.externally_managed,
            password_changed_at: s.password_changed_at.clone(),
            temporary: s.temporary,
            credential_version: s.credential_version,
            reset_pending: s.reset_pending,
            locked_until: s.locked_until.clone(),
        }
    }
}

/// `POST /api/password-resets`: named users or `allInScope`, and where the links go.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetsBody {
    /// The users to reset (exactly one of `userIds` and `allInScope`).
    #[schema(value_type = Option<Vec<String>>)]
    pub user_ids: Option<Bounded<String>>,
    /// Every user the caller may change, the caller excepted.
    pub all_in_scope: Option<bool>,
    /// `notify` (default: the link goes to the user only) or `return` (to the caller;
    /// not with `allInScope`).
    #[schema(example = "notify")]
    pub delivery: Option<String>,
}

/// One user's reset.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetItemBody {
    pub user_id: String,
    pub success: bool,
    /// When the link stops working (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The link itself, only with `delivery=return`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// `POST /api/password-resets`'s answer: the items (with `allInScope`, only the skipped
/// users) and the counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetsResultBody {
    pub items: Vec<ResetItemBody>,
    pub reset: usize,
    pub skipped: usize,
}

/// `POST /api/password-resets/{token}`: the new password, for an LMS hosting its own form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkChangeBody {
    #[schema(value_type = String, min_length = 1)]
    pub password: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    pub password_confirm: Option<SecretString>,
}
