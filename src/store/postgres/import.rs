//! Applying a validated provisioning plan on PostgreSQL: as `sqlite::import` — upserts by
//! id, all in one transaction, never touching an existing user's password — with new
//! users, their scopes and roles inserted a batch at a time (`INSERT … SELECT FROM
//! UNNEST($1, $2, …)`: one statement per few thousand rows, not one per row).

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Transaction};

use super::super::{AccountIds, StoreError};
use crate::domain::Role;
use crate::domain::records::{AccountPlan, ExistingIds, ImportSummary, UserBatch, UserPlan};

/// Rows per multi-row statement.
const CHUNK: usize = 5000;

pub(super) async fn existing_ids(
    client: &impl GenericClient,
    account_key: &str,
) -> Result<ExistingIds, StoreError> {
    let mut sets = Vec::new();
    for table in ["users", "departments", "roles"] {
        let rows = client
            .query(
                &format!(
                    "SELECT t.ext_id FROM {table} t JOIN accounts a ON a.id = t.account_id
                      WHERE a.url_key = $1"
                ),
                &[&account_key],
            )
            .await?;
        sets.push(
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<HashSet<String>, _>>()?,
        );
    }
    let mut emails = HashMap::new();
    let mut owner = None;
    let rows = client
        .query(
            "SELECT u.ext_id, u.email_key, u.role FROM users u
               JOIN accounts a ON a.id = u.account_id WHERE a.url_key = $1",
            &[&account_key],
        )
        .await?;
    for row in rows {
        let (ext_id, email_key, role): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if role == Role::Owner.as_str() {
            owner = Some(ext_id.clone());
        }
        emails.insert(email_key, ext_id);
    }
    let roles = sets.pop().unwrap_or_default();
    let departments = sets.pop().unwrap_or_default();
    let users = sets.pop().unwrap_or_default();
    Ok(ExistingIds {
        users,
        departments,
        roles,
        emails,
        owner,
    })
}

pub(super) async fn import(
    client: &mut deadpool_postgres::Client,
    accounts: &[AccountPlan],
    next: &mut dyn FnMut() -> Result<Option<UserBatch>, StoreError>,
    progress: &dyn Fn(u64),
) -> Result<ImportSummary, StoreError> {
    let tx = client.transaction().await?;
    let mut summary = ImportSummary::default();
    let mut ids = Vec::with_capacity(accounts.len());
    for account in accounts {
        ids.push(import_account(&tx, account, &mut summary).await?);
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut done = 0u64;
    // `next` blocks this thread until the reader has a batch: the future runs on it
    // (`block_on`), and the connection's I/O on the runtime's workers.
    while let Some(batch) = next()? {
        let account = ids.get(batch.account).ok_or_else(|| {
            StoreError::Conflict(format!("no account {} in this import", batch.account))
        })?;
        for chunk in batch.users.chunks(CHUNK) {
            import_users(&tx, account, chunk, &now, &mut summary).await?;
        }
        done += batch.users.len() as u64;
        progress(done);
    }
    // A user the directory deactivated or handed to an external directory loses their
    // reset links (contract §11.4).
    tx.execute(
        "DELETE FROM reset_tokens WHERE user_id IN
           (SELECT id FROM users WHERE status <> 'active' OR externally_managed)",
        &[],
    )
    .await?;
    tx.commit().await?;
    // Fresh statistics for the planner: right after a large first import, autovacuum has
    // not analysed the tables yet, and the caller and target lookups planned on empty
    // tables scanned them (10.7 ms per decision at 100k users instead of 0.4 ms). One
    // table per statement, as CockroachDB's ANALYZE takes; the data is committed, so a
    // refusal only costs speed.
    for table in [
        "accounts",
        "departments",
        "roles",
        "role_permissions",
        "users",
        "user_manages",
        "user_roles",
        "password_history",
    ] {
        if let Err(e) = client.batch_execute(&format!("ANALYZE {table}")).await {
            log::warn!(
                "import: ANALYZE {table} failed (queries may plan poorly until autovacuum does it): {e}"
            );
        }
    }
    Ok(summary)
}

async fn import_account(
    tx: &Transaction<'_>,
    a: &AccountPlan,
    summary: &mut ImportSummary,
) -> Result<AccountIds, StoreError> {
    let p = &a.policy;
    let account_id: i64 = tx
        .query_one(
            "INSERT INTO accounts (url, url_key, name, min_length, max_length, forbid_email,
                                   forbid_common, history, self_service)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (url_key) DO UPDATE SET
                 url = excluded.url, name = excluded.name, min_length = excluded.min_length,
                 max_length = excluded.max_length, forbid_email = excluded.forbid_email,
                 forbid_common = excluded.forbid_common, history = excluded.history,
                 self_service = excluded.self_service
             RETURNING id",
            &[
                &a.url,
                &a.url_key,
                &a.name,
                &i64::from(p.min_length),
                &i64::from(p.max_length),
                &p.forbid_email,
                &p.forbid_common,
                &i64::from(p.history),
                &p.self_service,
            ],
        )
        .await?
        .try_get(0)?;
    summary.accounts += 1;

    // Departments a level of the tree at a time (a child needs its parent's id), each
    // level in multi-row statements: one round trip per department made 100k departments
    // take seconds.
    let mut depth: HashMap<&str, usize> = HashMap::with_capacity(a.departments.len());
    let mut levels: Vec<Vec<&crate::domain::records::DepartmentPlan>> = Vec::new();
    for d in &a.departments {
        // Parents come first, so a parent's depth is known.
        let level = d
            .parent
            .as_deref()
            .and_then(|p| depth.get(p))
            .map_or(0, |parent| parent + 1);
        depth.insert(&d.ext_id, level);
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
        }
        levels[level].push(d);
    }
    let mut departments: HashMap<String, i64> = HashMap::with_capacity(a.departments.len());
    let upsert = tx
        .prepare_cached(
            "INSERT INTO departments (account_id, ext_id, name, parent_id)
             SELECT $1, x.ext_id, x.name, x.parent_id
               FROM UNNEST($2::TEXT[], $3::TEXT[], $4::BIGINT[]) AS x(ext_id, name, parent_id)
             ON CONFLICT (account_id, ext_id) DO UPDATE SET
                 name = excluded.name, parent_id = excluded.parent_id
             RETURNING ext_id, id",
        )
        .await?;
    for level in &levels {
        for chunk in level.chunks(CHUNK) {
            let ext_ids: Vec<&str> = chunk.iter().map(|d| d.ext_id.as_str()).collect();
            let names: Vec<&str> = chunk.iter().map(|d| d.name.as_str()).collect();
            let parents: Vec<Option<i64>> = chunk
                .iter()
                .map(|d| {
                    d.parent
                        .as_deref()
                        .and_then(|p| departments.get(p).copied())
                })
                .collect();
            for row in tx
                .query(&upsert, &[&account_id, &ext_ids, &names, &parents])
                .await?
            {
                departments.insert(row.try_get(0)?, row.try_get(1)?);
            }
            summary.departments += chunk.len();
        }
    }
    let mut roles: HashMap<String, i64> = HashMap::new();
    let upsert = tx
        .prepare_cached(
            "INSERT INTO roles (account_id, ext_id, name) VALUES ($1, $2, $3)
             ON CONFLICT (account_id, ext_id) DO UPDATE SET name = excluded.name
             RETURNING id",
        )
        .await?;
    for r in &a.roles {
        let id: i64 = tx
            .query_one(&upsert, &[&account_id, &r.ext_id, &r.name])
            .await?
            .try_get(0)?;
        tx.execute("DELETE FROM role_permissions WHERE role_id = $1", &[&id])
            .await?;
        tx.execute(
            "INSERT INTO role_permissions (role_id, permission)
             SELECT $1, p FROM UNNEST($2::TEXT[]) AS p",
            &[&id, &r.permissions],
        )
        .await?;
        roles.insert(r.ext_id.clone(), id);
        summary.roles += 1;
    }
    // Departments and roles the file refers to but does not list are the stored ones.
    let mut stored = HashMap::new();
    for (sql, into) in [
        (
            "SELECT ext_id, id FROM departments WHERE account_id = $1",
            &mut departments,
        ),
        (
            "SELECT ext_id, id FROM roles WHERE account_id = $1",
            &mut roles,
        ),
        (
            "SELECT ext_id, id FROM users WHERE account_id = $1",
            &mut stored,
        ),
    ] {
        for row in tx.query(sql, &[&account_id]).await? {
            into.entry(row.try_get(0)?).or_insert(row.try_get(1)?);
        }
    }
    Ok(AccountIds {
        id: account_id,
        departments,
        roles,
        stored,
    })
}

/// Writes one chunk of an account's users, in file order: the stored users they displace
/// give up their e-mails and owner role, then the stored ones are updated one by one and
/// the new ones inserted in one statement, then the scopes and custom roles of all.
async fn import_users(
    tx: &Transaction<'_>,
    a: &AccountIds,
    users: &[UserPlan],
    now: &str,
    summary: &mut ImportSummary,
) -> Result<(), StoreError> {
    let account_id = a.id;
    let department_of = |ext: &str| a.department(ext);
    let role_of = |ext: &str| a.role(ext);
    let released: Vec<&str> = users
        .iter()
        .flat_map(|u| u.release.iter().map(String::as_str))
        .collect();
    if !released.is_empty() {
        tx.execute(
            "UPDATE users SET email_key = 'released:' || id,
                              role = CASE WHEN role = 'owner' THEN 'user' ELSE role END
              WHERE account_id = $1 AND ext_id = ANY($2)",
            &[&account_id, &released],
        )
        .await?;
    }
    let update = tx
        .prepare_cached(
            "UPDATE users SET email = $2, email_key = $3, role = $4, department_id = $5,
                              status = $6, externally_managed = $7
              WHERE id = $1",
        )
        .await?;
    let mut user_ids: HashMap<&str, i64> = HashMap::with_capacity(users.len());
    let mut new: Vec<&UserPlan> = Vec::new();
    for u in users {
        let department = department_of(&u.department)?;
        match a.stored.get(&u.ext_id).copied() {
            Some(id) => {
                tx.execute(
                    &update,
                    &[
                        &id,
                        &u.email,
                        &u.email_key,
                        &u.role.as_str(),
                        &department,
                        &u.status.as_str(),
                        &u.externally_managed,
                    ],
                )
                .await?;
                summary.users_updated += 1;
                user_ids.insert(&u.ext_id, id);
            }
            None => new.push(u),
        }
    }
    if !user_ids.is_empty() {
        let updated: Vec<i64> = user_ids.values().copied().collect();
        tx.execute(
            "DELETE FROM user_manages WHERE user_id = ANY($1)",
            &[&updated],
        )
        .await?;
        tx.execute(
            "DELETE FROM user_roles WHERE user_id = ANY($1)",
            &[&updated],
        )
        .await?;
    }

    if !new.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO users (account_id, ext_id, email, email_key, role, department_id,
                                    status, externally_managed, password_hash, password_changed_at)
                 SELECT $1, x.ext_id, x.email, x.email_key, x.role, x.department_id, x.status,
                        x.externally_managed, x.password_hash, $2
                   FROM UNNEST($3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[],
                               $8::TEXT[], $9::BOOLEAN[], $10::TEXT[])
                     AS x(ext_id, email, email_key, role, department_id, status,
                          externally_managed, password_hash)
                 RETURNING ext_id, id",
            )
            .await?;
        let mut columns = NewUsers::default();
        for u in &new {
            let hash = u.password_hash.as_deref().ok_or_else(|| {
                StoreError::Conflict(format!("user \"{}\" is new but has no password", u.ext_id))
            })?;
            columns.ext_id.push(&u.ext_id);
            columns.email.push(&u.email);
            columns.email_key.push(&u.email_key);
            columns.role.push(u.role.as_str());
            columns.department.push(department_of(&u.department)?);
            columns.status.push(u.status.as_str());
            columns.external.push(u.externally_managed);
            columns.hash.push(hash);
        }
        let rows = tx
            .query(
                &insert,
                &[
                    &account_id,
                    &now,
                    &columns.ext_id,
                    &columns.email,
                    &columns.email_key,
                    &columns.role,
                    &columns.department,
                    &columns.status,
                    &columns.external,
                    &columns.hash,
                ],
            )
            .await?;
        let by_ext: HashMap<String, i64> = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        for u in &new {
            if let Some(id) = by_ext.get(&u.ext_id) {
                user_ids.insert(&u.ext_id, *id);
            }
        }
        summary.users_created += new.len();
    }

    // Scopes and custom roles, in one statement each.
    let mut manages: (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut custom: (Vec<i64>, Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new(), Vec::new());
    for u in users {
        let Some(&user_id) = user_ids.get(u.ext_id.as_str()) else {
            continue;
        };
        for m in &u.manages {
            manages.0.push(user_id);
            manages.1.push(department_of(m)?);
        }
        for cr in &u.custom_roles {
            let role = role_of(&cr.role)?;
            for d in &cr.departments {
                custom.0.push(user_id);
                custom.1.push(role);
                custom.2.push(department_of(d)?);
            }
        }
    }
    if !manages.0.is_empty() {
        tx.execute(
            "INSERT INTO user_manages (user_id, department_id)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[]) ON CONFLICT DO NOTHING",
            &[&manages.0, &manages.1],
        )
        .await?;
    }
    if !custom.0.is_empty() {
        tx.execute(
            "INSERT INTO user_roles (user_id, role_id, department_id)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[])
             ON CONFLICT DO NOTHING",
            &[&custom.0, &custom.1, &custom.2],
        )
        .await?;
    }
    Ok(())
}

/// New users' columns, for one multi-row insert.
#[derive(Default)]
struct NewUsers<'a> {
    ext_id: Vec<&'a str>,
    email: Vec<&'a str>,
    email_key: Vec<&'a str>,
    role: Vec<&'a str>,
    department: Vec<i64>,
    status: Vec<&'a str>,
    external: Vec<bool>,
    hash: Vec<&'a str>,
}
