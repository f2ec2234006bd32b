//! The provisioning file (contract §8): parsing the JSON, validating every reference with
//! an error that names its JSON path, hashing plain passwords on all cores, and handing
//! the store a plan it applies in one transaction.

mod file;

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use secrecy::ExposeSecret;

use crate::crypto::{self, HashParams};
use crate::domain::records::{
    AccountPlan, CustomRolePlan, DepartmentPlan, DirectoryPlan, ExistingIds, ImportSummary,
    RolePlan, UserPlan,
};
use crate::domain::{AccountUrl, Email, Password, PasswordPolicy, Role, UserStatus};
use crate::store::{Store, StoreError};
use file::{AccountDoc, DepartmentDoc, FileDoc, UserDoc};

/// Permissions a custom role may grant.
const KNOWN_PERMISSIONS: &[&str] = &["change_password"];
/// Longest password history a policy may ask for.
const MAX_HISTORY: u32 = 24;

/// Why an import was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not valid JSON of the expected shape, or a value is wrong.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("hashing: {0}")]
    Hash(#[from] crypto::CryptoError),
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// Parses, validates, hashes and imports `json` into `store`.
pub fn import_json(
    store: &Store,
    json: &str,
    params: HashParams,
) -> Result<ImportSummary, ImportError> {
    let doc = parse(json)?;
    let progress = Progress::on_terminal();
    let mut plan = DirectoryPlan::default();
    let mut urls = HashSet::new();
    for (i, account) in doc.accounts.into_iter().enumerate() {
        let path = format!("accounts[{i}]");
        let existing = store.existing_ids(&AccountUrl::key_of(&account.url))?;
        let planned = plan_account(&path, account, &existing, params, &progress)?;
        if !urls.insert(planned.url_key.clone()) {
            return Err(invalid(
                format!("{path}.url"),
                "the same account appears twice",
            ));
        }
        plan.accounts.push(planned);
    }
    let total: u64 = plan.accounts.iter().map(|a| a.users.len() as u64).sum();
    let writing = progress.bar("writing users", total);
    let summary = store.import(&plan, &|n| {
        if let Some(bar) = &writing {
            bar.set_position(n);
        }
    })?;
    if let Some(bar) = writing {
        bar.finish_and_clear();
    }
    Ok(summary)
}

/// Progress bars on stderr with rate and ETA, only when stderr is a terminal (never in
/// logs, tests or CI).
struct Progress {
    visible: bool,
}

impl Progress {
    fn on_terminal() -> Self {
        Progress {
            visible: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    fn bar(&self, what: &str, len: u64) -> Option<indicatif::ProgressBar> {
        if !self.visible || len == 0 {
            return None;
        }
        let bar = indicatif::ProgressBar::new(len);
        let style = indicatif::ProgressStyle::with_template(
            "{msg:>14} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
        )
        .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        Some(bar)
    }
}

/// Parses the JSON; errors name the path where parsing stopped.
fn parse(json: &str) -> Result<FileDoc, ImportError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "$".to_string() } else { path };
        invalid(path, e.inner().to_string())
    })
}

fn plan_account(
    path: &str,
    a: AccountDoc,
    existing: &ExistingIds,
    params: HashParams,
    progress: &Progress,
) -> Result<AccountPlan, ImportError> {
    let url =
        AccountUrl::parse("url", &a.url).map_err(|e| invalid(format!("{path}.url"), e.message))?;
    if a.name.trim().is_empty() {
        return Err(invalid(format!("{path}.name"), "name is empty"));
    }
    let policy = plan_policy(path, &a)?;

    let mut departments = Vec::new();
    let mut seen = HashSet::new();
    for (i, d) in a.departments.iter().enumerate() {
        flatten(
            &format!("{path}.departments[{i}]"),
            d,
            None,
            &mut departments,
            &mut seen,
        )?;
    }

    let mut roles = Vec::new();
    let mut role_ids = HashSet::new();
    for (i, r) in a.roles.into_iter().enumerate() {
        let rpath = format!("{path}.roles[{i}]");
        non_empty(&format!("{rpath}.id"), &r.id)?;
        if !role_ids.insert(r.id.clone()) {
            return Err(invalid(
                format!("{rpath}.id"),
                format!("role \"{}\" appears twice", r.id),
            ));
        }
        for (j, p) in r.permissions.iter().enumerate() {
            if !KNOWN_PERMISSIONS.contains(&p.as_str()) {
                return Err(invalid(
                    format!("{rpath}.permissions[{j}]"),
                    format!(
                        "unknown permission \"{p}\" (known: {})",
                        KNOWN_PERMISSIONS.join(", ")
                    ),
                ));
            }
        }
        roles.push(RolePlan {
            ext_id: r.id,
            name: r.name,
            permissions: r.permissions,
        });
    }

    let mut users = Vec::new();
    let mut user_ids = HashSet::new();
    let mut emails: HashMap<String, usize> = HashMap::new();
    let mut owners = 0;
    let mut to_hash = Vec::new();
    for (i, u) in a.users.into_iter().enumerate() {
        let upath = format!("{path}.users[{i}]");
        let is_new = !existing.users.contains(&u.id);
        let known = Known {
            departments: &seen,
            roles: &role_ids,
            existing,
        };
        let (plan, plain) = plan_user(&upath, u, &known, is_new, params)?;
        if !user_ids.insert(plan.ext_id.clone()) {
            return Err(invalid(
                format!("{upath}.id"),
                format!("user \"{}\" appears twice", plan.ext_id),
            ));
        }
        if let Some(first) = emails.insert(plan.email_key.clone(), i) {
            return Err(invalid(
                format!("{upath}.email"),
                format!("e-mail already used by {path}.users[{first}]"),
            ));
        }
        if plan.role == Role::Owner {
            owners += 1;
            if owners > 1 {
                return Err(invalid(format!("{upath}.role"), "an account has one owner"));
            }
        }
        if let Some(plain) = plain {
            to_hash.push((users.len(), plain));
        }
        users.push(plan);
    }
    clashes_with_stored_users(path, &users, &user_ids, existing)?;

    // Plain passwords of new users, hashed on every core.
    let hashing = progress.bar("hashing", to_hash.len() as u64);
    let hashed: Vec<(usize, Result<String, crypto::CryptoError>)> = to_hash
        .into_par_iter()
        .map(|(index, plain)| {
            let hash = crypto::hash_blocking(params, &plain);
            if let Some(bar) = &hashing {
                bar.inc(1);
            }
            (index, hash)
        })
        .collect();
    if let Some(bar) = hashing {
        bar.finish_and_clear();
    }
    for (index, hash) in hashed {
        users[index].password_hash = Some(hash.map_err(ImportError::Hash)?);
    }

    Ok(AccountPlan {
        url: url.as_str().to_string(),
        url_key: url.key().to_string(),
        name: a.name,
        policy,
        departments,
        roles,
        users,
    })
}

/// An e-mail or the owner role held by a stored user whom the file does not mention
/// (and so does not move away) cannot be taken: refused here, with the taker's path,
/// rather than as a constraint failure inside the import transaction.
fn clashes_with_stored_users(
    path: &str,
    users: &[UserPlan],
    in_file: &HashSet<String>,
    existing: &ExistingIds,
) -> Result<(), ImportError> {
    let kept_by_other = |holder: &String, taker: &str| holder != taker && !in_file.contains(holder);
    for (i, u) in users.iter().enumerate() {
        if let Some(holder) = existing.emails.get(&u.email_key) {
            if kept_by_other(holder, &u.ext_id) {
                return Err(invalid(
                    format!("{path}.users[{i}].email"),
                    format!("e-mail already used by stored user \"{holder}\""),
                ));
            }
        }
        if let (Role::Owner, Some(owner)) = (u.role, &existing.owner) {
            if kept_by_other(owner, &u.ext_id) {
                return Err(invalid(
                    format!("{path}.users[{i}].role"),
                    format!("an account has one owner, and stored user \"{owner}\" is it"),
                ));
            }
        }
    }
    Ok(())
}

fn plan_policy(path: &str, a: &AccountDoc) -> Result<PasswordPolicy, ImportError> {
    let d = PasswordPolicy::default();
    let p = &a.policy;
    let policy = PasswordPolicy {
        min_length: p.min_length.unwrap_or(d.min_length),
        max_length: p.max_length.unwrap_or(d.max_length),
        forbid_email: p.forbid_email.unwrap_or(d.forbid_email),
        forbid_common: p.forbid_common.unwrap_or(d.forbid_common),
        history: p.history.unwrap_or(d.history),
        self_service: p.self_service.unwrap_or(d.self_service),
    };
    if policy.min_length == 0 {
        return Err(invalid(
            format!("{path}.policy.min_length"),
            "must be at least 1",
        ));
    }
    if policy.max_length < policy.min_length || policy.max_length > 4096 {
        return Err(invalid(
            format!("{path}.policy.max_length"),
            "must be between min_length and 4096",
        ));
    }
    if policy.history > MAX_HISTORY {
        return Err(invalid(
            format!("{path}.policy.history"),
            format!("must be at most {MAX_HISTORY}"),
        ));
    }
    Ok(policy)
}

fn non_empty(path: &str, value: &str) -> Result<(), ImportError> {
    if value.trim().is_empty() {
        Err(invalid(path, "is empty"))
    } else {
        Ok(())
    }
}

/// Flattens the nested tree parent-first; ids must be unique within the account.
fn flatten(
    path: &str,
    d: &DepartmentDoc,
    parent: Option<&str>,
    out: &mut Vec<DepartmentPlan>,
    seen: &mut HashSet<String>,
) -> Result<(), ImportError> {
    non_empty(&format!("{path}.id"), &d.id)?;
    if !seen.insert(d.id.clone()) {
        return Err(invalid(
            format!("{path}.id"),
            format!("department \"{}\" appears twice", d.id),
        ));
    }
    out.push(DepartmentPlan {
        ext_id: d.id.clone(),
        name: d.name.clone(),
        parent: parent.map(str::to_string),
    });
    for (i, child) in d.children.iter().enumerate() {
        flatten(
            &format!("{path}.children[{i}]"),
            child,
            Some(&d.id),
            out,
            seen,
        )?;
    }
    Ok(())
}

/// Department and role ids a user may refer to: those in the file and those stored.
struct Known<'a> {
    departments: &'a HashSet<String>,
    roles: &'a HashSet<String>,
    existing: &'a ExistingIds,
}

/// Validates one user. Returns the plan and, for a new user given a plain password, the
/// password to hash.
fn plan_user(
    path: &str,
    u: UserDoc,
    known: &Known<'_>,
    is_new: bool,
    params: HashParams,
) -> Result<(UserPlan, Option<Password>), ImportError> {
    non_empty(&format!("{path}.id"), &u.id)?;
    let email =
        Email::parse("email", &u.email).map_err(|e| invalid(format!("{path}.email"), e.message))?;
    let role = Role::parse(&u.role).ok_or_else(|| {
        invalid(
            format!("{path}.role"),
            format!(
                "unknown role \"{}\" (owner, account_admin, department_admin, user)",
                u.role
            ),
        )
    })?;
    let status = match u.status.as_deref() {
        None => UserStatus::Active,
        Some(s) => UserStatus::parse(s).ok_or_else(|| {
            invalid(
                format!("{path}.status"),
                format!("unknown status \"{s}\" (active, deactivated)"),
            )
        })?,
    };
    let department_ref = |p: String, id: &str| {
        if known.departments.contains(id) || known.existing.departments.contains(id) {
            Ok(())
        } else {
            Err(invalid(p, format!("no department \"{id}\"")))
        }
    };
    department_ref(format!("{path}.department"), &u.department)?;
    if !u.manages.is_empty() && role != Role::DepartmentAdmin {
        return Err(invalid(
            format!("{path}.manages"),
            "only a department_admin manages departments",
        ));
    }
    for (i, m) in u.manages.iter().enumerate() {
        department_ref(format!("{path}.manages[{i}]"), m)?;
    }
    let mut custom_roles = Vec::new();
    for (i, cr) in u.custom_roles.into_iter().enumerate() {
        if !known.roles.contains(&cr.role) && !known.existing.roles.contains(&cr.role) {
            return Err(invalid(
                format!("{path}.custom_roles[{i}].role"),
                format!("no role \"{}\"", cr.role),
            ));
        }
        for (j, d) in cr.departments.iter().enumerate() {
            department_ref(format!("{path}.custom_roles[{i}].departments[{j}]"), d)?;
        }
        custom_roles.push(CustomRolePlan {
            role: cr.role,
            departments: cr.departments,
        });
    }

    let (hash, plain) = match (u.password, u.password_hash) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                path,
                "give either password or password_hash, not both",
            ));
        }
        (None, None) => return Err(invalid(path, "a user needs password or password_hash")),
        (Some(plain), None) => {
            if plain.expose_secret().is_empty() {
                return Err(invalid(format!("{path}.password"), "is empty"));
            }
            (
                None,
                is_new.then(|| Password::normalise(plain.expose_secret())),
            )
        }
        (None, Some(hash)) => {
            crypto::validate_imported_hash(&hash, params)
                .map_err(|e| invalid(format!("{path}.password_hash"), e.to_string()))?;
            (Some(hash), None)
        }
    };
    let plan = UserPlan {
        ext_id: u.id,
        email: email.as_str().to_string(),
        email_key: email.key().to_string(),
        role,
        department: u.department,
        status,
        externally_managed: u.externally_managed,
        password_hash: hash,
        manages: u.manages,
        custom_roles,
    };
    Ok((plan, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors_name_the_json_path() {
        let err = parse(r#"{"accounts":[{"url":"x","name":"n","users":[{"id":1}]}]}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("accounts[0].users[0].id: "),
            "{err}"
        );
        let err = parse(r#"{"accounts":[{"url":"x","name":"n","departmnets":[]}]}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("unknown field `departmnets`"),
            "{err}"
        );
    }
}
