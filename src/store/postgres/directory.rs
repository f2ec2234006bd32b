//! The operation's queries on PostgreSQL: caller and target lookup, the department-scope
//! facts, the change transaction and audit rows — `sqlite::directory`'s, in PostgreSQL's
//! dialect (numbered parameters, BOOLEAN flags, BIGINT counts).

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::super::StoreError;
use crate::domain::records::{
    AccountRecord, Applied, AuditRecord, CallerLookup, ChangeRecord, TargetRecord, UserRecord,
};
use crate::domain::{PasswordPolicy, Role, UserStatus};

pub(super) const USER_COLUMNS: &str =
    "u.id, u.ext_id, u.email, u.role, u.status, u.externally_managed,
     u.password_hash, u.password_temporary, u.password_changed_at, u.credential_version";
/// How many columns [`USER_COLUMNS`] selects.
pub(super) const USER_COLUMN_COUNT: usize = 10;

/// A stored count as the domain's `u32` (the schema's CHECKs keep them small).
fn count(row: &Row, i: usize) -> Result<u32, StoreError> {
    let n: i64 = row.try_get(i)?;
    u32::try_from(n).map_err(|_| StoreError::Conflict(format!("column {i} holds {n}")))
}

/// The policy columns `min_length, max_length, forbid_email, forbid_common, history,
/// self_service` from `offset` on.
pub(super) fn policy_from_row(row: &Row, offset: usize) -> Result<PasswordPolicy, StoreError> {
    Ok(PasswordPolicy {
        min_length: count(row, offset)?,
        max_length: count(row, offset + 1)?,
        forbid_email: row.try_get(offset + 2)?,
        forbid_common: row.try_get(offset + 3)?,
        history: count(row, offset + 4)?,
        self_service: row.try_get(offset + 5)?,
    })
}

/// Hashes of the user's previous passwords, newest first, at most `keep`.
pub(super) async fn history_of(
    client: &impl GenericClient,
    user_id: i64,
    keep: u32,
) -> Result<Vec<String>, StoreError> {
    if keep == 0 {
        return Ok(Vec::new());
    }
    let stmt = client
        .prepare_cached(
            "SELECT password_hash FROM password_history
              WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&user_id, &i64::from(keep)])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?)
}

pub(super) fn user_from_row(row: &Row, offset: usize) -> Result<UserRecord, StoreError> {
    let role: String = row.try_get(offset + 3)?;
    let status: String = row.try_get(offset + 4)?;
    Ok(UserRecord {
        id: row.try_get(offset)?,
        ext_id: row.try_get(offset + 1)?,
        email: row.try_get(offset + 2)?,
        // The schema's CHECK constraints make these total.
        role: Role::parse(&role).unwrap_or(Role::User),
        status: UserStatus::parse(&status).unwrap_or(UserStatus::Deactivated),
        externally_managed: row.try_get(offset + 5)?,
        password_hash: row.try_get(offset + 6)?,
        temporary: row.try_get(offset + 7)?,
        password_changed_at: row.try_get(offset + 8)?,
        credential_version: row.try_get(offset + 9)?,
    })
}

pub(super) async fn email_key_of(
    client: &impl GenericClient,
    account_key: &str,
    user_id: &str,
) -> Result<Option<String>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT u.email_key FROM users u JOIN accounts a ON a.id = u.account_id
              WHERE a.url_key = $1 AND u.ext_id = $2",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&account_key, &user_id]).await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// How many account columns `find_caller` selects before the user's.
const ACCOUNT_COLUMNS: usize = 7;

pub(super) async fn find_caller(
    client: &impl GenericClient,
    account_key: &str,
    email_key: &str,
) -> Result<CallerLookup, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT a.id, a.min_length, a.max_length, a.forbid_email, a.forbid_common,
                    a.history, a.self_service, {USER_COLUMNS}
               FROM accounts a
               LEFT JOIN users u ON u.account_id = a.id AND u.email_key = $2
              WHERE a.url_key = $1"
        ))
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&account_key, &email_key]).await? else {
        return Ok(CallerLookup {
            account: None,
            user: None,
        });
    };
    let account = AccountRecord {
        id: row.try_get(0)?,
        policy: policy_from_row(&row, 1)?,
    };
    let user = match row.try_get::<_, Option<i64>>(ACCOUNT_COLUMNS)? {
        Some(_) => Some(user_from_row(&row, ACCOUNT_COLUMNS)?),
        None => None,
    };
    Ok(CallerLookup {
        account: Some(account),
        user,
    })
}

pub(super) async fn find_target(
    client: &impl GenericClient,
    account_id: i64,
    caller_id: i64,
    target_ext_id: &str,
    history: u32,
) -> Result<Option<TargetRecord>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, u.department_id FROM users u
              WHERE u.account_id = $1 AND u.ext_id = $2"
        ))
        .await?;
    let Some(row) = client
        .query_opt(&stmt, &[&account_id, &target_ext_id])
        .await?
    else {
        return Ok(None);
    };
    let user = user_from_row(&row, 0)?;
    let department: i64 = row.try_get(USER_COLUMN_COUNT)?;

    let reach = departments_reached_by(client, user.id).await?;
    let covered = covered_departments(client, caller_id, user.id).await?;
    let in_scope = covered.contains(&department);
    let reach_in_scope = reach.iter().all(|d| covered.contains(d));

    let history = history_of(client, user.id, history).await?;
    Ok(Some(TargetRecord {
        user,
        in_scope,
        reach_in_scope,
        history,
    }))
}

/// Departments a user administers or holds any custom role over.
async fn departments_reached_by(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Vec<i64>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT department_id FROM user_manages WHERE user_id = $1
             UNION
             SELECT department_id FROM user_roles WHERE user_id = $1",
        )
        .await?;
    let rows = client.query(&stmt, &[&user_id]).await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// The departments caller `$N` administers or holds `change_password` over (contract §5
/// rule 4), as a `SELECT` for a CTE.
pub(super) fn scope_roots(caller_parameter: &str) -> String {
    format!(
        "SELECT department_id FROM user_manages WHERE user_id = {caller_parameter}
         UNION
         SELECT ur.department_id FROM user_roles ur
           JOIN role_permissions rp
             ON rp.role_id = ur.role_id AND rp.permission = 'change_password'
          WHERE ur.user_id = {caller_parameter}"
    )
}

/// The statement of [`covered_departments`], built once.
static COVERED_DEPARTMENTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH RECURSIVE
           scope(dept) AS ({}),
           starts(dept) AS (
             SELECT department_id FROM users WHERE id = $2
             UNION SELECT department_id FROM user_manages WHERE user_id = $2
             UNION SELECT department_id FROM user_roles WHERE user_id = $2),
           up(start, dept) AS (
             SELECT dept, dept FROM starts WHERE EXISTS (SELECT 1 FROM scope)
             UNION
             SELECT up.start, d.parent_id FROM up JOIN departments d ON d.id = up.dept
              WHERE d.parent_id IS NOT NULL)
         SELECT DISTINCT up.start FROM up JOIN scope ON scope.dept = up.dept",
        scope_roots("$1")
    )
});

/// Of the target's department and the departments the target reaches, those in the
/// caller's scope: a walk up from each to the root; `UNION` stops a cycle from looping.
async fn covered_departments(
    client: &impl GenericClient,
    caller_id: i64,
    target_id: i64,
) -> Result<HashSet<i64>, StoreError> {
    let stmt = client.prepare_cached(&COVERED_DEPARTMENTS).await?;
    let rows = client.query(&stmt, &[&caller_id, &target_id]).await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

pub(super) async fn insert_audit(
    client: &impl GenericClient,
    r: &AuditRecord,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO audit_log (at, request_id, account_id, account_url, caller_id,
                                    caller_email, target_id, target_ext_id, outcome, detail,
                                    client_addr)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &r.at,
                &r.request_id,
                &r.account_id,
                &r.account_url,
                &r.caller_id,
                &r.caller_email,
                &r.target_id,
                &r.target_ext_id,
                &r.outcome.as_str(),
                &r.detail,
                &r.client_addr,
            ],
        )
        .await?;
    Ok(())
}

/// Applies a change in one transaction, unless its link is dead or the user's credential
/// version moved since the checks (then nothing changed). The version condition is
/// checked under the row's lock, so of two instances changing one user at once one
/// commits and the other finds itself overtaken.
pub(super) async fn apply_change(
    client: &mut deadpool_postgres::Client,
    c: &ChangeRecord,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let tx = client.transaction().await?;
    if let Some(token_hash) = &c.spends_link {
        let spent = tx
            .prepare_cached(
                "DELETE FROM reset_tokens
                  WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3
                    AND EXISTS (SELECT 1 FROM users
                                 WHERE id = $2 AND status = 'active'
                                   AND NOT externally_managed)",
            )
            .await?;
        if tx
            .execute(&spent, &[&&token_hash[..], &c.target_id, &now_ms])
            .await?
            == 0
        {
            return Ok(Applied::LinkDead);
        }
    }
    // Any password change kills the user's reset links.
    let kill = tx
        .prepare_cached("DELETE FROM reset_tokens WHERE user_id = $1")
        .await?;
    tx.execute(&kill, &[&c.target_id]).await?;
    if c.history_keep > 0 {
        let keep = tx
            .prepare_cached(
                "INSERT INTO password_history (user_id, password_hash, replaced_at)
                 SELECT id, password_hash, $2 FROM users WHERE id = $1",
            )
            .await?;
        tx.execute(&keep, &[&c.target_id, &c.audit.at]).await?;
        let trim = tx
            .prepare_cached(
                "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN
                   (SELECT id FROM password_history WHERE user_id = $1
                     ORDER BY id DESC LIMIT $2)",
            )
            .await?;
        tx.execute(&trim, &[&c.target_id, &i64::from(c.history_keep)])
            .await?;
    } else {
        let clear = tx
            .prepare_cached("DELETE FROM password_history WHERE user_id = $1")
            .await?;
        tx.execute(&clear, &[&c.target_id]).await?;
    }
    let update = tx
        .prepare_cached(
            "UPDATE users SET password_hash = $2, password_changed_at = $3,
                              credential_version = credential_version + 1,
                              password_temporary = $4
              WHERE id = $1 AND credential_version = $5 RETURNING credential_version",
        )
        .await?;
    let Some(row) = tx
        .query_opt(
            &update,
            &[
                &c.target_id,
                &c.new_hash,
                &c.audit.at,
                &c.temporary,
                &c.read_version,
            ],
        )
        .await?
    else {
        // Dropping the transaction rolls back what it did.
        return Ok(Applied::Overtaken);
    };
    let version: i64 = row.try_get(0)?;
    insert_audit(&tx, &c.audit).await?;
    let event = tx
        .prepare_cached(
            "INSERT INTO events (at, kind, account_id, user_id, credential_version, request_id,
                                 via, temporary)
             VALUES ($1, 'password_changed', $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    tx.execute(
        &event,
        &[
            &c.audit.at,
            &c.account_id,
            &c.target_id,
            &version,
            &c.audit.request_id,
            &c.via,
            &c.temporary,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Applied::Changed(version))
}

pub(super) async fn upgrade_hash(
    client: &impl GenericClient,
    user_id: i64,
    old_hash: &str,
    new_hash: &str,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
        .await?;
    client
        .execute(&stmt, &[&user_id, &old_hash, &new_hash])
        .await?;
    Ok(())
}
