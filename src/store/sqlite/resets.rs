//! Reset links (contract §11.4, §12): who a reset reaches (`allInScope`, computed here
//! page by page, never the directory in memory), issuing a link (only its SHA-256 is
//! kept), reading one, and — in the change's own transaction — spending it.
//!
//! A link dies when a newer one is issued for its user (issuing deletes the others),
//! when its user's password changes by any path (`directory::apply_change` deletes them),
//! when the user is deactivated or made externally managed (the import deletes them), or
//! when it expires; spending deletes it.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::StoreError;
use super::directory::{USER_COLUMNS, user_from_row};
use crate::domain::Role;
use crate::domain::records::{LinkOwner, ReachCursor, ReachedUser, ResetRecord};

/// Issues the links of `resets` in one transaction: each replaces its user's older ones.
pub(super) fn issue(conn: &mut Connection, resets: &[ResetRecord]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut older = tx.prepare_cached("DELETE FROM reset_tokens WHERE user_id = ?1")?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO reset_tokens (user_id, token_hash, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut event = tx.prepare_cached(
            "INSERT INTO events (at, kind, account_id, user_id, credential_version, request_id,
                                 link, link_expires_at)
             SELECT ?1, 'password_reset_requested', ?2, id, credential_version, ?3, ?4, ?5
               FROM users WHERE id = ?6",
        )?;
        for r in resets {
            older.execute([r.user_id])?;
            insert.execute(params![
                r.user_id,
                &r.token_hash[..],
                r.audit.at_str(),
                r.expires_ms
            ])?;
            if let Some((link, expires)) = &r.notify {
                event.execute(params![
                    r.audit.at_str(),
                    r.account_id,
                    r.audit.request_id_str(),
                    link,
                    expires,
                    r.user_id
                ])?;
            }
            super::directory::insert_audit(&tx, &r.audit)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The owner of the live link whose token hashes to `token_hash`, if any.
pub(super) fn find_link(
    conn: &Connection,
    token_hash: &[u8; 32],
    now_ms: i64,
) -> Result<Option<LinkOwner>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT u.account_id, a.min_length, a.max_length, a.forbid_email, a.forbid_common,
                a.history, a.self_service, {USER_COLUMNS}
           FROM reset_tokens t
           JOIN users u ON u.id = t.user_id
           JOIN accounts a ON a.id = u.account_id
          WHERE t.token_hash = ?1 AND t.expires_at > ?2
            AND u.status = 'active' AND u.externally_managed = 0"
    ))?;
    let found = stmt
        .query_row(params![&token_hash[..], now_ms], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                crate::domain::PasswordPolicy {
                    min_length: row.get(1)?,
                    max_length: row.get(2)?,
                    forbid_email: row.get(3)?,
                    forbid_common: row.get(4)?,
                    history: row.get(5)?,
                    self_service: row.get(6)?,
                },
                user_from_row(row, 7)?,
            ))
        })
        .optional()?;
    let Some((account_id, policy, user)) = found else {
        return Ok(None);
    };
    let history = if policy.history == 0 {
        Vec::new()
    } else {
        conn.prepare_cached(
            "SELECT password_hash FROM password_history
              WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?
        .query_map(params![user.id, policy.history], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?
    };
    Ok(Some(LinkOwner {
        account_id,
        user,
        policy,
        history,
    }))
}

/// Spends the link in the change's transaction: true if it was live (and is now gone).
pub(super) fn spend(
    tx: &rusqlite::Transaction<'_>,
    token_hash: &[u8; 32],
    user_id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let spent = tx
        .prepare_cached(
            "DELETE FROM reset_tokens
              WHERE token_hash = ?1 AND user_id = ?2 AND expires_at > ?3
                AND EXISTS (SELECT 1 FROM users
                             WHERE id = ?2 AND status = 'active' AND externally_managed = 0)",
        )?
        .execute(params![&token_hash[..], user_id, now_ms])?;
    Ok(spent == 1)
}

/// Whether the user has a live link (their status's `resetPending`).
pub(super) fn pending(conn: &Connection, user_id: i64, now_ms: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM reset_tokens WHERE user_id = ?1 AND expires_at > ?2)",
        )?
        .query_row(params![user_id, now_ms], |r| r.get(0))?)
}

/// One page of the users a caller's reset reaches (`allInScope`): every user of the
/// account but the caller for an owner or account admin (in id order), else every user
/// in the departments the caller administers or holds `change_password` over, with their
/// subtrees (in (department, id) order, read through the department index, so that every
/// page resumes where the last one ended instead of scanning the directory again); at
/// most `limit` after `after`.
pub(super) fn reach_page(
    conn: &Connection,
    account_id: i64,
    caller_id: i64,
    caller_role: Role,
    after: ReachCursor,
    limit: usize,
) -> Result<Vec<ReachedUser>, StoreError> {
    let whole_account = matches!(caller_role, Role::Owner | Role::AccountAdmin);
    let sql = if whole_account {
        format!(
            // ?3 (the cursor's department) is not needed here; `?3 = ?3` binds it so
            // both queries take the same parameters.
            "SELECT {USER_COLUMNS}, 1, u.department_id FROM users u
              WHERE u.account_id = ?1 AND u.id <> ?2 AND u.id > ?4 AND ?3 = ?3
              ORDER BY u.id LIMIT ?5"
        )
    } else {
        // The scope: the roots the caller administers or holds change_password over,
        // with their subtrees (walked down once per page through the parent index).
        format!(
            "WITH RECURSIVE
               roots(dept) AS ({roots}),
               scope(dept) AS (
                 SELECT dept FROM roots
                 UNION
                 SELECT d.id FROM departments d JOIN scope s ON d.parent_id = s.dept)
             SELECT {USER_COLUMNS},
                    NOT EXISTS (SELECT 1 FROM user_manages m WHERE m.user_id = u.id
                                   AND m.department_id NOT IN (SELECT dept FROM scope))
                AND NOT EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id
                                   AND r.department_id NOT IN (SELECT dept FROM scope)),
                    u.department_id
               FROM users u INDEXED BY users_department
              WHERE u.department_id IN (SELECT dept FROM scope)
                AND (u.department_id, u.id) > (?3, ?4)
                AND u.account_id = ?1 AND u.id <> ?2
              ORDER BY u.department_id, u.id LIMIT ?5",
            roots = super::directory::scope_roots("?2")
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            account_id,
            caller_id,
            after.0,
            after.1,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| {
            Ok(ReachedUser {
                user: user_from_row(row, 0)?,
                reach_in_scope: row.get(super::directory::USER_COLUMN_COUNT)?,
                department_id: row.get(super::directory::USER_COLUMN_COUNT + 1)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}
