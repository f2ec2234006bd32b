//! Applying a validated provisioning plan: upserts by id, all in one transaction,
//! never touching the password of a user who already exists.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::StoreError;
use crate::domain::Role;
use crate::domain::records::{AccountPlan, DirectoryPlan, ExistingIds, ImportSummary};

pub(super) fn existing_ids(
    conn: &Connection,
    account_key: &str,
) -> Result<ExistingIds, StoreError> {
    let ids = |table: &str| -> Result<HashSet<String>, StoreError> {
        let mut stmt = conn.prepare(&format!(
            "SELECT t.ext_id FROM {table} t JOIN accounts a ON a.id = t.account_id WHERE a.url_key = ?1"
        ))?;
        let rows = stmt.query_map([account_key], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let mut emails = HashMap::new();
    let mut owner = None;
    let mut stmt = conn.prepare(
        "SELECT u.ext_id, u.email_key, u.role FROM users u JOIN accounts a ON a.id = u.account_id
          WHERE a.url_key = ?1",
    )?;
    let mut rows = stmt.query([account_key])?;
    while let Some(row) = rows.next()? {
        let (ext_id, email_key, role): (String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        if role == Role::Owner.as_str() {
            owner = Some(ext_id.clone());
        }
        emails.insert(email_key, ext_id);
    }
    Ok(ExistingIds {
        users: ids("users")?,
        departments: ids("departments")?,
        roles: ids("roles")?,
        emails,
        owner,
    })
}

pub(super) fn import(
    conn: &mut Connection,
    plan: &DirectoryPlan,
    progress: &dyn Fn(u64),
) -> Result<ImportSummary, StoreError> {
    // One transaction of a million users outgrows SQLite's default 2 MiB page cache: it
    // then spills pages into the WAL mid-transaction and reads them back, and keeps each
    // statement's undo journal in a temp file. A large cache and in-memory temp storage
    // for this connection while it imports (restored after) keep that work in memory.
    let (cache, temp): (i64, i64) = (
        conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?,
        conn.query_row("PRAGMA temp_store", [], |r| r.get(0))?,
    );
    conn.execute_batch("PRAGMA cache_size = -524288; PRAGMA temp_store = MEMORY;")?;
    let result = import_all(conn, plan, progress);
    conn.execute_batch(&format!(
        "PRAGMA cache_size = {cache}; PRAGMA temp_store = {temp};"
    ))?;
    result
}

fn import_all(
    conn: &mut Connection,
    plan: &DirectoryPlan,
    progress: &dyn Fn(u64),
) -> Result<ImportSummary, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut summary = ImportSummary::default();
    let mut done = 0u64;
    for account in &plan.accounts {
        import_account(&tx, account, &mut summary, &|n| progress(done + n))?;
        done += account.users.len() as u64;
    }
    // A user the directory deactivated or handed to an external directory loses their
    // reset links (contract §11.4).
    tx.execute(
        "DELETE FROM reset_tokens WHERE user_id IN
           (SELECT id FROM users WHERE status <> 'active' OR externally_managed = 1)",
        [],
    )?;
    tx.commit()?;
    Ok(summary)
}

fn import_account(
    tx: &Transaction<'_>,
    a: &AccountPlan,
    summary: &mut ImportSummary,
    progress: &dyn Fn(u64),
) -> Result<(), StoreError> {
    let p = &a.policy;
    let account_id: i64 = tx.query_row(
        "INSERT INTO accounts (url, url_key, name, min_length, max_length, forbid_email,
                               forbid_common, history, self_service)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (url_key) DO UPDATE SET
             url = excluded.url, name = excluded.name, min_length = excluded.min_length,
             max_length = excluded.max_length, forbid_email = excluded.forbid_email,
             forbid_common = excluded.forbid_common, history = excluded.history,
             self_service = excluded.self_service
         RETURNING id",
        params![
            a.url,
            a.url_key,
            a.name,
            p.min_length,
            p.max_length,
            p.forbid_email,
            p.forbid_common,
            p.history,
            p.self_service
        ],
        |r| r.get(0),
    )?;
    summary.accounts += 1;

    let mut departments: HashMap<&str, i64> = HashMap::new();
    {
        let mut upsert = tx.prepare(
            "INSERT INTO departments (account_id, ext_id, name, parent_id) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account_id, ext_id) DO UPDATE SET
                 name = excluded.name, parent_id = excluded.parent_id
             RETURNING id",
        )?;
        for d in &a.departments {
            let parent = d
                .parent
                .as_deref()
                .and_then(|p| departments.get(p).copied());
            let id: i64 =
                upsert.query_row(params![account_id, d.ext_id, d.name, parent], |r| r.get(0))?;
            departments.insert(&d.ext_id, id);
            summary.departments += 1;
        }
    }

    let mut roles: HashMap<&str, i64> = HashMap::new();
    {
        let mut upsert = tx.prepare(
            "INSERT INTO roles (account_id, ext_id, name) VALUES (?1, ?2, ?3)
             ON CONFLICT (account_id, ext_id) DO UPDATE SET name = excluded.name
             RETURNING id",
        )?;
        let mut clear = tx.prepare("DELETE FROM role_permissions WHERE role_id = ?1")?;
        let mut grant =
            tx.prepare("INSERT INTO role_permissions (role_id, permission) VALUES (?1, ?2)")?;
        for r in &a.roles {
            let id: i64 =
                upsert.query_row(params![account_id, r.ext_id, r.name], |row| row.get(0))?;
            clear.execute([id])?;
            for perm in &r.permissions {
                grant.execute(params![id, perm])?;
            }
            roles.insert(&r.ext_id, id);
            summary.roles += 1;
        }
    }

    let lookup_department = |ext: &str| -> Result<i64, StoreError> {
        match departments.get(ext) {
            Some(id) => Ok(*id),
            None => tx
                .query_row(
                    "SELECT id FROM departments WHERE account_id = ?1 AND ext_id = ?2",
                    params![account_id, ext],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| StoreError::Conflict(format!("no department \"{ext}\""))),
        }
    };
    let lookup_role = |ext: &str| -> Result<i64, StoreError> {
        match roles.get(ext) {
            Some(id) => Ok(*id),
            None => tx
                .query_row(
                    "SELECT id FROM roles WHERE account_id = ?1 AND ext_id = ?2",
                    params![account_id, ext],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| StoreError::Conflict(format!("no role \"{ext}\""))),
        }
    };

    // Ids of the account's stored users, read once: a user absent from it is inserted
    // without the lookups and scope clean-up an update needs (a first import of a large
    // directory is then one INSERT per row).
    let stored: HashMap<String, i64> = {
        let mut stmt = tx.prepare("SELECT ext_id, id FROM users WHERE account_id = ?1")?;
        let rows = stmt.query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };

    // Stored users in this file first give up the e-mails and the owner role they are
    // leaving, so that a file moving either between two users does not trip the unique
    // indexes halfway through, whatever order it lists them in.
    if !stored.is_empty() {
        let mut release = tx.prepare(
            "UPDATE users SET email_key = 'released:' || id,
                              role = CASE WHEN role = 'owner' THEN ?4 ELSE role END
              WHERE account_id = ?1 AND ext_id = ?2 AND (email_key <> ?3 OR role = 'owner' AND ?4 <> 'owner')",
        )?;
        for u in a.users.iter().filter(|u| stored.contains_key(&u.ext_id)) {
            release.execute(params![account_id, u.ext_id, u.email_key, u.role.as_str()])?;
        }
    }

    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut update = tx.prepare(
        "UPDATE users SET email = ?2, email_key = ?3, role = ?4, department_id = ?5,
                          status = ?6, externally_managed = ?7
          WHERE id = ?1",
    )?;
    let mut insert = tx.prepare(
        "INSERT INTO users (account_id, ext_id, email, email_key, role, department_id, status,
                            externally_managed, password_hash, password_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
    )?;
    let mut clear_manages = tx.prepare("DELETE FROM user_manages WHERE user_id = ?1")?;
    let mut clear_roles = tx.prepare("DELETE FROM user_roles WHERE user_id = ?1")?;
    let mut add_manages =
        tx.prepare("INSERT OR IGNORE INTO user_manages (user_id, department_id) VALUES (?1, ?2)")?;
    let mut add_role = tx.prepare(
        "INSERT OR IGNORE INTO user_roles (user_id, role_id, department_id) VALUES (?1, ?2, ?3)",
    )?;
    for (i, u) in a.users.iter().enumerate() {
        if i % PROGRESS_EVERY == 0 {
            progress(i as u64);
        }
        let department = lookup_department(&u.department)?;
        let user_id = match stored.get(&u.ext_id).copied() {
            Some(id) => {
                update.execute(params![
                    id,
                    u.email,
                    u.email_key,
                    u.role.as_str(),
                    department,
                    u.status.as_str(),
                    u.externally_managed
                ])?;
                summary.users_updated += 1;
                clear_manages.execute([id])?;
                clear_roles.execute([id])?;
                id
            }
            None => {
                let hash = u.password_hash.as_deref().ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "user \"{}\" is new but has no password",
                        u.ext_id
                    ))
                })?;
                summary.users_created += 1;
                insert.query_row(
                    params![
                        account_id,
                        u.ext_id,
                        u.email,
                        u.email_key,
                        u.role.as_str(),
                        department,
                        u.status.as_str(),
                        u.externally_managed,
                        hash,
                        now
                    ],
                    |r| r.get(0),
                )?
            }
        };
        for m in &u.manages {
            add_manages.execute(params![user_id, lookup_department(m)?])?;
        }
        for cr in &u.custom_roles {
            let role = lookup_role(&cr.role)?;
            for d in &cr.departments {
                add_role.execute(params![user_id, role, lookup_department(d)?])?;
            }
        }
    }
    progress(a.users.len() as u64);
    Ok(())
}

/// How often (in users) the import reports progress.
const PROGRESS_EVERY: usize = 10_000;
