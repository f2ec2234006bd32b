//! Applying a validated provisioning plan: upserts by id, all in one transaction,
//! never touching the password of a user who already exists.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::StoreError;
use crate::domain::Role;
use crate::domain::records::{AccountPlan, ExistingIds, ImportSummary, UserBatch, UserPlan};
use crate::store::AccountIds;

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

/// The import's page cache: the users' indexes of a million-user import (about 100 MB)
/// mostly stay in memory, and the importer's peak stays within its 256 MiB bound.
const IMPORT_CACHE_KIB: i64 = 96 * 1024;

pub(super) fn import(
    conn: &mut Connection,
    accounts: &[AccountPlan],
    users: &mut dyn FnMut() -> Result<Option<UserBatch>, StoreError>,
    progress: &dyn Fn(u64),
) -> Result<ImportSummary, StoreError> {
    // One transaction of a million users outgrows SQLite's default 2 MiB page cache: it
    // then spills pages into the WAL mid-transaction and reads them back, and keeps each
    // statement's undo journal in a temp file. A larger cache and in-memory temp storage
    // for this connection while it imports (restored after) keep that work in memory.
    // Foreign keys are checked once, before the commit, instead of per row: per-row
    // checks make every INSERT keep a statement journal (a million users copied with
    // INSERT … SELECT: 8.3 s with per-row checks, 3.0 s without).
    let (cache, temp): (i64, i64) = (
        conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?,
        conn.query_row("PRAGMA temp_store", [], |r| r.get(0))?,
    );
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{IMPORT_CACHE_KIB}; PRAGMA temp_store = MEMORY; PRAGMA foreign_keys = OFF;"
    ))?;
    let result = import_all(conn, accounts, users, progress);
    conn.execute_batch(&format!(
        "PRAGMA cache_size = {cache}; PRAGMA temp_store = {temp}; PRAGMA foreign_keys = ON;"
    ))?;
    result
}

fn import_all(
    conn: &mut Connection,
    accounts: &[AccountPlan],
    next: &mut dyn FnMut() -> Result<Option<UserBatch>, StoreError>,
    progress: &dyn Fn(u64),
) -> Result<ImportSummary, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut summary = ImportSummary::default();
    let ids = accounts
        .iter()
        .map(|a| import_account(&tx, a, &mut summary))
        .collect::<Result<Vec<_>, _>>()?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut done = 0u64;
    while let Some(batch) = next()? {
        let account = ids.get(batch.account).ok_or_else(|| {
            StoreError::Conflict(format!("no account {} in this import", batch.account))
        })?;
        import_users(&tx, account, &batch.users, &now, &mut summary)?;
        done += batch.users.len() as u64;
        progress(done);
    }
    // A user the directory deactivated or handed to an external directory loses their
    // reset links (contract §11.4).
    tx.execute(
        "DELETE FROM reset_tokens WHERE user_id IN
           (SELECT id FROM users WHERE status <> 'active' OR externally_managed = 1)",
        [],
    )?;
    // The references were resolved to ids read in this transaction; checked anyway, in
    // the tables an import writes.
    for table in [
        "departments",
        "roles",
        "role_permissions",
        "users",
        "user_manages",
        "user_roles",
    ] {
        let broken: Option<String> = tx
            .query_row(&format!("PRAGMA foreign_key_check({table})"), [], |r| {
                r.get(0)
            })
            .optional()?;
        if broken.is_some() {
            return Err(StoreError::Conflict(format!(
                "the import left a dangling reference in {table}"
            )));
        }
    }
    tx.commit()?;
    Ok(summary)
}

/// Upserts the account, its departments (parents first) and roles; reads back the ids
/// of every department and role of the account (those of the file and those stored).
fn import_account(
    tx: &Transaction<'_>,
    a: &AccountPlan,
    summary: &mut ImportSummary,
) -> Result<AccountIds, StoreError> {
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

    let mut departments: HashMap<String, i64> = HashMap::new();
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
            departments.insert(d.ext_id.clone(), id);
            summary.departments += 1;
        }
    }

    let mut roles: HashMap<String, i64> = HashMap::new();
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
            roles.insert(r.ext_id.clone(), id);
            summary.roles += 1;
        }
    }
    // Departments and roles the file refers to but does not list are the stored ones.
    let read = |sql: &str, into: &mut HashMap<String, i64>| -> Result<(), StoreError> {
        let mut stmt = tx.prepare(sql)?;
        let mut rows = stmt.query([account_id])?;
        while let Some(row) = rows.next()? {
            into.entry(row.get(0)?).or_insert(row.get(1)?);
        }
        Ok(())
    };
    read(
        "SELECT ext_id, id FROM departments WHERE account_id = ?1",
        &mut departments,
    )?;
    read(
        "SELECT ext_id, id FROM roles WHERE account_id = ?1",
        &mut roles,
    )?;
    let mut stored = HashMap::new();
    read(
        "SELECT ext_id, id FROM users WHERE account_id = ?1",
        &mut stored,
    )?;
    Ok(AccountIds {
        id: account_id,
        departments,
        roles,
        stored,
    })
}

fn import_users(
    tx: &Transaction<'_>,
    a: &AccountIds,
    users: &[UserPlan],
    now: &str,
    summary: &mut ImportSummary,
) -> Result<(), StoreError> {
    let account_id = a.id;
    let department_of = |ext: &str| a.department(ext);
    let role_of = |ext: &str| a.role(ext);
    // A stored user whose e-mail or owner role a user of the file takes gives both up
    // first (the file lists them later; their own row is written then), so that a file
    // moving either between two users does not trip the unique indexes, whatever order
    // it lists them in.
    let mut release = tx.prepare_cached(
        "UPDATE users SET email_key = 'released:' || id,
                          role = CASE WHEN role = 'owner' THEN 'user' ELSE role END
          WHERE account_id = ?1 AND ext_id = ?2",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE users SET email = ?2, email_key = ?3, role = ?4, department_id = ?5,
                          status = ?6, externally_managed = ?7
          WHERE id = ?1",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO users (account_id, ext_id, email, email_key, role, department_id, status,
                            externally_managed, password_hash, password_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut clear_manages = tx.prepare_cached("DELETE FROM user_manages WHERE user_id = ?1")?;
    let mut clear_roles = tx.prepare_cached("DELETE FROM user_roles WHERE user_id = ?1")?;
    let mut add_manages = tx.prepare_cached(
        "INSERT OR IGNORE INTO user_manages (user_id, department_id) VALUES (?1, ?2)",
    )?;
    let mut add_role = tx.prepare_cached(
        "INSERT OR IGNORE INTO user_roles (user_id, role_id, department_id) VALUES (?1, ?2, ?3)",
    )?;
    for u in users {
        for holder in &u.release {
            release.execute(params![account_id, holder])?;
        }
        let department = department_of(&u.department)?;
        let user_id = match a.stored.get(&u.ext_id).copied() {
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
                insert.execute(params![
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
                ])?;
                tx.last_insert_rowid()
            }
        };
        for m in &u.manages {
            add_manages.execute(params![user_id, department_of(m)?])?;
        }
        for cr in &u.custom_roles {
            let role = role_of(&cr.role)?;
            for d in &cr.departments {
                add_role.execute(params![user_id, role, department_of(d)?])?;
            }
        }
    }
    Ok(())
}
