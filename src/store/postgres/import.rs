//! Applying a validated provisioning plan on PostgreSQL: as `sqlite::import` — upserts by
//! id, all in one transaction, never touching an existing user's password — with new
//! users, their scopes and roles inserted a batch at a time (`INSERT … SELECT FROM
//! UNNEST($1, $2, …)`: one statement per few thousand rows, not one per row), and a
//! batch's statements sent without waiting for the answers to the batch before (see
//! [`InFlight`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Statement;

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
    plan_for_growth(&tx).await?;
    let mut summary = ImportSummary::default();
    let mut ids = Vec::with_capacity(accounts.len());
    for account in accounts {
        ids.push(import_account(&tx, account, &mut summary).await?);
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let statements = UserStatements::prepare(&tx).await?;
    let mut in_flight = InFlight::default();
    // Users in the batches answered, and in the one in flight.
    let (mut done, mut flying) = (0u64, 0u64);
    // `next` blocks this thread until the reader has a batch: the future runs on it
    // (`block_on`), and the connection's I/O on the runtime's workers. While it blocks,
    // the server runs the statements of the batch before, sent but not yet awaited: the
    // reader's parsing and this thread's encoding overlap the server's inserting, instead
    // of taking turns with it (with migration 0002's single key check: 1M users 19.1 s
    // → 13.2 s, the backend busy for 11.3 s of it).
    while let Some(batch) = next()? {
        let account = ids.get(batch.account).ok_or_else(|| {
            StoreError::Conflict(format!("no account {} in this import", batch.account))
        })?;
        let count = batch.users.len() as u64;
        let earlier = in_flight.len();
        send_users(
            &tx,
            &statements,
            account,
            batch,
            &now,
            &mut summary,
            &mut in_flight,
        )
        .await?;
        // The batch before is answered; this one stays in flight while `next` waits.
        in_flight.settle(earlier).await?;
        if flying > 0 {
            done += flying;
            progress(done);
        }
        flying = count;
    }
    in_flight.settle(in_flight.len()).await?;
    drop(in_flight);
    progress(done + flying);
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

/// Keeps the planner from choosing sequential scans for the rest of the transaction.
///
/// PostgreSQL plans a foreign-key check once per connection, at its first use, and keeps
/// the plan: a department's parent check planned while the account's first tree level
/// goes in sees a table of a page or two — after an earlier import of a small directory,
/// with statistics saying so — and scans the table, for each of the next 100,000
/// departments; the import then ran into the statement timeout (a 20-department import
/// followed by a 100,000-department one: cancelled after 20 s; with this, 13.4 s in all).
/// Every lookup the import makes has an index. A database without the setting keeps its
/// own planner's choice: the savepoint takes the refusal back.
async fn plan_for_growth(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute("SAVEPOINT plan_for_growth").await?;
    match tx.batch_execute("SET LOCAL enable_seqscan = off").await {
        Ok(()) => {
            tx.batch_execute("RELEASE SAVEPOINT plan_for_growth")
                .await?
        }
        Err(e) => {
            log::info!("import: the database kept its scan choices ({e})");
            tx.batch_execute("ROLLBACK TO SAVEPOINT plan_for_growth")
                .await?;
        }
    }
    Ok(())
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

/// The statements a batch of users is written with, prepared once per import.
struct UserStatements {
    release: Statement,
    update: Statement,
    forget_scopes: Statement,
    forget_roles: Statement,
    insert: Statement,
    manages: Statement,
    custom_roles: Statement,
}

impl UserStatements {
    async fn prepare(tx: &Transaction<'_>) -> Result<Self, StoreError> {
        Ok(UserStatements {
            release: tx
                .prepare(
                    "UPDATE users SET email_key = 'released:' || id,
                                      role = CASE WHEN role = 'owner' THEN 'user' ELSE role END
                      WHERE account_id = $1 AND ext_id = ANY($2)",
                )
                .await?,
            update: tx
                .prepare(
                    "UPDATE users SET email = $2, email_key = $3, role = $4, department_id = $5,
                                      status = $6, externally_managed = $7
                      WHERE id = $1",
                )
                .await?,
            forget_scopes: tx
                .prepare("DELETE FROM user_manages WHERE user_id = ANY($1)")
                .await?,
            forget_roles: tx
                .prepare("DELETE FROM user_roles WHERE user_id = ANY($1)")
                .await?,
            insert: tx
                .prepare(
                    "INSERT INTO users (account_id, ext_id, email, email_key, role, department_id,
                                        status, externally_managed, password_hash,
                                        password_changed_at)
                     SELECT $1, x.ext_id, x.email, x.email_key, x.role, x.department_id,
                            x.status, x.externally_managed, x.password_hash, $2
                       FROM UNNEST($3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                                   $7::BIGINT[], $8::TEXT[], $9::BOOLEAN[], $10::TEXT[])
                         AS x(ext_id, email, email_key, role, department_id, status,
                              externally_managed, password_hash)",
                )
                .await?,
            // By the users' ids, not ids returned by the insert: so that no statement
            // waits for another's answer, and a batch goes out in one flight.
            manages: tx
                .prepare(
                    "INSERT INTO user_manages (user_id, department_id)
                     SELECT u.id, x.department_id
                       FROM UNNEST($2::TEXT[], $3::BIGINT[]) AS x(ext_id, department_id)
                       JOIN users u ON u.account_id = $1 AND u.ext_id = x.ext_id
                     ON CONFLICT DO NOTHING",
                )
                .await?,
            custom_roles: tx
                .prepare(
                    "INSERT INTO user_roles (user_id, role_id, department_id)
                     SELECT u.id, x.role_id, x.department_id
                       FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[])
                         AS x(ext_id, role_id, department_id)
                       JOIN users u ON u.account_id = $1 AND u.ext_id = x.ext_id
                     ON CONFLICT DO NOTHING",
                )
                .await?,
        })
    }
}

/// A statement sent and not yet answered.
type Pending<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + 'a>>;

/// Statements sent on the import's connection and not yet answered, oldest first.
///
/// tokio-postgres hands a request to the connection when its future is first polled, and
/// the server answers a connection's requests in the order they came: a statement polled
/// once is on its way, and awaiting the oldest first reads the answers in the order they
/// arrive. A failure surfaces at the statement that failed (those after it then fail with
/// "transaction is aborted", and are never looked at); dropping the rest is harmless, as
/// the transaction rolls back.
#[derive(Default)]
struct InFlight<'a> {
    pending: VecDeque<Pending<'a>>,
}

impl<'a> InFlight<'a> {
    fn len(&self) -> usize {
        self.pending.len()
    }

    /// Sends `statement`: polls it once, which hands its request to the connection.
    async fn send(
        &mut self,
        statement: impl Future<Output = Result<(), StoreError>> + 'a,
    ) -> Result<(), StoreError> {
        let mut statement: Pending<'a> = Box::pin(statement);
        match std::future::poll_fn(|cx| Poll::Ready(statement.as_mut().poll(cx))).await {
            Poll::Ready(result) => result,
            Poll::Pending => {
                self.pending.push_back(statement);
                Ok(())
            }
        }
    }

    /// Waits for the answers to the oldest `count` statements.
    async fn settle(&mut self, count: usize) -> Result<(), StoreError> {
        for _ in 0..count {
            match self.pending.pop_front() {
                Some(statement) => statement.await?,
                None => break,
            }
        }
        Ok(())
    }
}

/// Sends the statements that write one batch of an account's users, in file order: the
/// stored users they displace give up their e-mails and owner role, then the stored ones
/// are updated one by one and the new ones inserted in one statement, then the scopes and
/// custom roles of all. Nothing is awaited: the statements are in `in_flight`.
async fn send_users<'a>(
    tx: &'a Transaction<'_>,
    st: &'a UserStatements,
    a: &'a AccountIds,
    batch: UserBatch,
    now: &'a str,
    summary: &mut ImportSummary,
    in_flight: &mut InFlight<'a>,
) -> Result<(), StoreError> {
    let account_id = a.id;
    // Each user's department and stored id, looked up once; the statements' futures own
    // the batch (shared), and build their columns from it when first polled.
    let mut department = Vec::with_capacity(batch.users.len());
    let mut stored = Vec::with_capacity(batch.users.len());
    for u in &batch.users {
        department.push(a.department(&u.department)?);
        stored.push(a.stored.get(&u.ext_id).copied());
    }
    let updated = stored.iter().flatten().count();
    summary.users_updated += updated;
    summary.users_created += batch.users.len() - updated;
    let batch = Rc::new(Written {
        users: batch.users,
        department,
        stored,
    });

    if batch.users.iter().any(|u| !u.release.is_empty()) {
        let b = Rc::clone(&batch);
        in_flight
            .send(async move {
                let released: Vec<&str> = b
                    .users
                    .iter()
                    .flat_map(|u| u.release.iter().map(String::as_str))
                    .collect();
                tx.execute(&st.release, &[&account_id, &released]).await?;
                Ok(())
            })
            .await?;
    }
    if updated > 0 {
        for (i, id) in batch.stored.iter().enumerate() {
            let Some(id) = *id else { continue };
            let b = Rc::clone(&batch);
            in_flight
                .send(async move {
                    let u = &b.users[i];
                    tx.execute(
                        &st.update,
                        &[
                            &id,
                            &u.email,
                            &u.email_key,
                            &u.role.as_str(),
                            &b.department[i],
                            &u.status.as_str(),
                            &u.externally_managed,
                        ],
                    )
                    .await?;
                    Ok(())
                })
                .await?;
        }
        // One statement per future: a future's second statement would go out only when
        // it is polled again, after statements sent since.
        for forget in [&st.forget_scopes, &st.forget_roles] {
            let b = Rc::clone(&batch);
            in_flight
                .send(async move {
                    let ids: Vec<i64> = b.stored.iter().flatten().copied().collect();
                    tx.execute(forget, &[&ids]).await?;
                    Ok(())
                })
                .await?;
        }
    }
    if updated < batch.users.len() {
        let b = Rc::clone(&batch);
        in_flight
            .send(async move {
                let mut c = NewUsers::with_capacity(b.users.len() - updated);
                for (i, u) in b.users.iter().enumerate() {
                    if b.stored[i].is_some() {
                        continue;
                    }
                    let hash = u.password_hash.as_deref().ok_or_else(|| {
                        StoreError::Conflict(format!(
                            "user \"{}\" is new but has no password",
                            u.ext_id
                        ))
                    })?;
                    c.ext_id.push(&u.ext_id);
                    c.email.push(&u.email);
                    c.email_key.push(&u.email_key);
                    c.role.push(u.role.as_str());
                    c.department.push(b.department[i]);
                    c.status.push(u.status.as_str());
                    c.external.push(u.externally_managed);
                    c.hash.push(hash);
                }
                tx.execute(
                    &st.insert,
                    &[
                        &account_id,
                        &now,
                        &c.ext_id,
                        &c.email,
                        &c.email_key,
                        &c.role,
                        &c.department,
                        &c.status,
                        &c.external,
                        &c.hash,
                    ],
                )
                .await?;
                Ok(())
            })
            .await?;
    }

    // Scopes and custom roles, in one statement each.
    let mut manages: (Vec<&str>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut custom: (Vec<&str>, Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new(), Vec::new());
    for u in &batch.users {
        for m in &u.manages {
            manages.0.push(&u.ext_id);
            manages.1.push(a.department(m)?);
        }
        for cr in &u.custom_roles {
            let role = a.role(&cr.role)?;
            for d in &cr.departments {
                custom.0.push(&u.ext_id);
                custom.1.push(role);
                custom.2.push(a.department(d)?);
            }
        }
    }
    // Owned: the futures outlive this function's borrow of the batch.
    let manages: (Vec<String>, Vec<i64>) = (
        manages.0.into_iter().map(str::to_owned).collect(),
        manages.1,
    );
    let custom: (Vec<String>, Vec<i64>, Vec<i64>) = (
        custom.0.into_iter().map(str::to_owned).collect(),
        custom.1,
        custom.2,
    );
    if !manages.0.is_empty() {
        in_flight
            .send(async move {
                tx.execute(&st.manages, &[&account_id, &manages.0, &manages.1])
                    .await?;
                Ok(())
            })
            .await?;
    }
    if !custom.0.is_empty() {
        in_flight
            .send(async move {
                tx.execute(
                    &st.custom_roles,
                    &[&account_id, &custom.0, &custom.1, &custom.2],
                )
                .await?;
                Ok(())
            })
            .await?;
    }
    Ok(())
}

/// A batch of users with what the statements need of each, looked up once.
struct Written {
    users: Vec<UserPlan>,
    department: Vec<i64>,
    /// The stored user's id; `None` for a user to create.
    stored: Vec<Option<i64>>,
}

/// New users' columns, for one multi-row insert.
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

impl NewUsers<'_> {
    fn with_capacity(n: usize) -> Self {
        NewUsers {
            ext_id: Vec::with_capacity(n),
            email: Vec::with_capacity(n),
            email_key: Vec::with_capacity(n),
            role: Vec::with_capacity(n),
            department: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            external: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }
}
