//! The JSON shape of the provisioning file. Unknown keys are refused, so a typo such as
//! `pasword` is an error instead of a silently ignored field.

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDoc {
    pub accounts: Vec<AccountDoc>,
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
    pub users: Vec<UserDoc>,
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
