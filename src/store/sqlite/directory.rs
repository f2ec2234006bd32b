//! Queries of the operation: caller and target lookup, the department-scope decision
//! facts, the change transaction and the audit trail.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::StoreError;
use crate::domain::records::{
    AccountRecord, Applied, AuditRecord, CallerLookup, ChangeRecord, TargetRecord, UserRecord,
};
use crate::domain::{PasswordPolicy, Role, UserStatus};

pub(super) const USER_COLUMNS: &str =
    "u.id, u.ext_id, u.email, u.role, u.status, u.externally_managed,
     u.password_hash, u.password_temporary, u.password_changed_at, u.credential_version";
/// How many columns [`USER_COLUMNS`] selects.
pub(super) const USER_COLUMN_COUNT: usize = 10;

pub(super) fn user_from_row(row: &Row<'_>, offset: usize) -> rusqlite::Result<UserRecord> {
    let role: String = row.get(offset + 3)?;
    let status: String = row.get(offset + 4)?;
    Ok(UserRecord {
        id: row.get(offset)?,
        ext_id: row.get(offset + 1)?,
        email: row.get(offset + 2)?,
        // The schema's CHECK constraints make these total.
        role: Role::parse(&role).unwrap_or(Role::User),
        status: UserStatus::parse(&status).unwrap_or(UserStatus::Deactivated),
        externally_managed: row.get(offset + 5)?,
        password_hash: row.get(offset + 6)?,
        temporary: row.get(offset + 7)?,
        password_changed_at: row.get(offset + 8)?,
        credential_version: row.get(offset + 9)?,
    })
}

pub(super) fn email_key_of(
    conn: &Connection,
    account_key: &str,
    user_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT u.email_key FROM users u JOIN accounts a ON a.id = u.account_id
              WHERE a.url_key = ?1 AND u.ext_id = ?2",
        )?
        .query_row(params![account_key, user_id], |r| r.get(0))
        .optional()?)
}

/// How many account columns `find_caller` selects before the user's.
const ACCOUNT_COLUMNS: usize = 7;

pub(super) fn find_caller(
    conn: &Connection,
    account_key: &str,
    email_key: &str,
) -> Result<CallerLookup, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT a.id, a.min_length, a.max_length, a.forbid_email, a.forbid_common,
                a.history, a.self_service, {USER_COLUMNS}
           FROM accounts a
           LEFT JOIN users u ON u.account_id = a.id AND u.email_key = ?2
          WHERE a.url_key = ?1"
    ))?;
    let found = stmt
        .query_row(params![account_key, email_key], |row| {
            let account = AccountRecord {
                id: row.get(0)?,
                policy: PasswordPolicy {
                    min_length: row.get(1)?,
                    max_length: row.get(2)?,
                    forbid_email: row.get(3)?,
                    forbid_common: row.get(4)?,
                    history: row.get(5)?,
                    self_service: row.get(6)?,
                },
            };
            let user = match row.get::<_, Option<i64>>(ACCOUNT_COLUMNS)? {
                Some(_) => Some(user_from_row(row, ACCOUNT_COLUMNS)?),
                None => None,
            };
            Ok((account, user))
        })
        .optional()?;
    Ok(match found {
        Some((account, user)) => CallerLookup {
            account: Some(account),
            user,
        },
        None => CallerLookup {
            account: None,
            user: None,
        },
    })
}

pub(super) fn find_target(
    conn: &Connection,
    account_id: i64,
    caller_id: i64,
    target_ext_id: &str,
    history: u32,
) -> Result<Option<TargetRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS}, u.department_id FROM users u
          WHERE u.account_id = ?1 AND u.ext_id = ?2"
    ))?;
    let Some((user, department)) = stmt
        .query_row(params![account_id, target_ext_id], |row| {
            Ok((
                user_from_row(row, 0)?,
                row.get::<_, i64>(USER_COLUMN_COUNT)?,
            ))
        })
        .optional()?
    else {
        return Ok(None);
    };

    let reach = departments_reached_by(conn, user.id)?;
    let covered = covered_departments(conn, caller_id, user.id)?;
    let in_scope = covered.contains(&department);
    let reach_in_scope = reach.iter().all(|d| covered.contains(d));

    let history = if history == 0 {
        Vec::new()
    } else {
        let mut stmt = conn.prepare_cached(
            "SELECT password_hash FROM password_history
              WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        stmt.query_map(params![user.id, history], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?
    };
    Ok(Some(TargetRecord {
        user,
        in_scope,
        reach_in_scope,
        history,
    }))
}

/// Departments a user administers or holds any custom role over.
fn departments_reached_by(conn: &Connection, user_id: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT department_id FROM user_manages WHERE user_id = ?1
         UNION
         SELECT department_id FROM user_roles WHERE user_id = ?1",
    )?;
    let rows = stmt.query_map([user_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The departments caller `?N` administers or holds `change_password` over (each the root
/// of a subtree of the caller's scope, contract §5 rule 4), as a `SELECT` for a CTE.
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
             SELECT department_id FROM users WHERE id = ?2
             UNION SELECT department_id FROM user_manages WHERE user_id = ?2
             UNION SELECT department_id FROM user_roles WHERE user_id = ?2),
           up(start, dept) AS (
             SELECT dept, dept FROM starts WHERE EXISTS (SELECT 1 FROM scope)
             UNION
             SELECT up.start, d.parent_id FROM up JOIN departments d ON d.id = up.dept
              WHERE d.parent_id IS NOT NULL)
         SELECT DISTINCT up.start FROM up JOIN scope ON scope.dept = up.dept",
        scope_roots("?1")
    )
});

/// Of the target's department and the departments the target reaches, those that lie in
/// the caller's scope. Walks up from each starting department to the root (cost grows
/// with depth, not with the size of the tree); `UNION` stops a cycle from looping.
fn covered_departments(
    conn: &Connection,
    caller_id: i64,
    target_id: i64,
) -> Result<HashSet<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(&COVERED_DEPARTMENTS)?;
    let rows = stmt.query_map(params![caller_id, target_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn insert_audit(conn: &Connection, r: &AuditRecord) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO audit_log (at, request_id, account_id, account_url, caller_id,
                                caller_email, target_id, target_ext_id, outcome, detail,
                                client_addr)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    stmt.execute(params![
        r.at,
        r.request_id,
        r.account_id,
        r.account_url,
        r.caller_id,
        r.caller_email,
        r.target_id,
        r.target_ext_id,
        r.outcome.as_str(),
        r.detail,
        r.client_addr
    ])?;
    Ok(())
}

/// Applies a change in one transaction, unless its link is dead or the user's credential
/// version moved since the checks (then nothing changed).
pub(super) fn apply_change(
    conn: &mut Connection,
    c: &ChangeRecord,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(token_hash) = &c.spends_link {
        if !super::resets::spend(&tx, token_hash, c.target_id, now_ms)? {
            return Ok(Applied::LinkDead);
        }
    }
    // Any password change kills the user's reset links.
    tx.prepare_cached("DELETE FROM reset_tokens WHERE user_id = ?1")?
        .execute([c.target_id])?;
    if c.history_keep > 0 {
        tx.prepare_cached(
            "INSERT INTO password_history (user_id, password_hash, replaced_at)
             SELECT id, password_hash, ?2 FROM users WHERE id = ?1",
        )?
        .execute(params![c.target_id, c.audit.at])?;
        tx.prepare_cached(
            "DELETE FROM password_history WHERE user_id = ?1 AND id NOT IN
               (SELECT id FROM password_history WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2)",
        )?
        .execute(params![c.target_id, c.history_keep])?;
    } else {
        tx.prepare_cached("DELETE FROM password_history WHERE user_id = ?1")?
            .execute([c.target_id])?;
    }
    let version: Option<i64> = tx
        .prepare_cached(
            "UPDATE users SET password_hash = ?2, password_changed_at = ?3,
                              credential_version = credential_version + 1,
                              password_temporary = ?4
              WHERE id = ?1 AND credential_version = ?5 RETURNING credential_version",
        )?
        .query_row(
            params![
                c.target_id,
                c.new_hash,
                c.audit.at,
                c.temporary,
                c.read_version
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(version) = version else {
        // Dropping the transaction rolls back what it did.
        return Ok(Applied::Overtaken);
    };
    insert_audit(&tx, &c.audit)?;
    tx.prepare_cached(
        "INSERT INTO events (at, kind, account_id, user_id, credential_version, request_id,
                             via, temporary)
         VALUES (?1, 'password_changed', ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        c.audit.at,
        c.account_id,
        c.target_id,
        version,
        c.audit.request_id,
        c.via,
        c.temporary
    ])?;
    tx.commit()?;
    Ok(Applied::Changed(version))
}

pub(super) fn upgrade_hash(
    conn: &Connection,
    user_id: i64,
    old_hash: &str,
    new_hash: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
    )?
    .execute(params![user_id, old_hash, new_hash])?;
    Ok(())
}
