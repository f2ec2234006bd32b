//! The JSON shape of the provisioning file. Unknown keys are refused, so a typo such as
//! `pasword` is an error instead of a silently ignored field.
//!
//! [`FileDoc`] is the first pass's view: everything but the users, whom it only counts
//! (checking that `users` is an array of JSON values). The users are read one at a time
//! as [`UserDoc`]s in the second pass (`super::stream`).

use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{IgnoredAny, SeqAccess, Visitor};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDoc {
    pub accounts: Vec<AccountDoc>,
}

/// The number of elements of the `users` array, each skipped unread.
#[derive(Default)]
pub struct UserCount(pub u64);

impl<'de> Deserialize<'de> for UserCount {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Counting;
        impl<'de> Visitor<'de> for Counting {
            type Value = UserCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UserCount, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(UserCount(n))
            }
        }
        de.deserialize_seq(Counting)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountDoc {
    pub url: String,
    pub name: String,
    #[serde(default)]
    pub policy: PolicyDoc,
    #[serde(default)]
    pub departments: Vec<DepartmentDoc>,
    #[serde(default)]
    pub roles: Vec<RoleDoc>,
    #[serde(default)]
    pub users: UserCount,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub forbid_email: Option<bool>,
    pub forbid_common: Option<bool>,
    pub history: Option<u32>,
    pub self_service: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentDoc {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub children: Vec<DepartmentDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDoc {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDoc {
    pub id: String,
    pub email: String,
    pub password: Option<SecretString>,
    pub password_hash: Option<String>,
    pub role: String,
    pub department: String,
    pub status: Option<String>,
    #[serde(default)]
    pub externally_managed: bool,
    #[serde(default)]
    pub manages: Vec<String>,
    #[serde(default)]
    pub custom_roles: Vec<CustomRoleDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRoleDoc {
    pub role: String,
    pub departments: Vec<String>,
}
