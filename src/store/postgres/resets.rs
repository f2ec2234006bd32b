//! Reset links on PostgreSQL (contract §11.4, §12): `sqlite::resets`'s queries — who an
//! `allInScope` reset reaches, page by page; issuing a link (its SHA-256 only); reading
//! one; spending it inside the change's transaction (in `directory::apply_change`).

use deadpool_postgres::GenericClient;

use super::super::StoreError;
use super::directory::{
    USER_COLUMN_COUNT, USER_COLUMNS, history_of, policy_from_row, scope_roots, user_from_row,
};
use crate::domain::Role;
use crate::domain::records::{LinkOwner, ReachCursor, ReachedUser, ResetRecord};

/// Issues the links of `resets` in one transaction: each replaces its user's older ones.
pub(super) async fn issue(
    client: &mut deadpool_postgres::Client,
    resets: &[ResetRecord],
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let older = tx
        .prepare_cached("DELETE FROM reset_tokens WHERE user_id = $1")
        .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO reset_tokens (user_id, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    let event = tx
        .prepare_cached(
            "INSERT INTO events (at, kind, account_id, user_id, credential_version, request_id,
                                 link, link_expires_at)
             SELECT $1, 'password_reset_requested', $2, id, credential_version, $3, $4, $5
               FROM users WHERE id = $6",
        )
        .await?;
    for r in resets {
        tx.execute(&older, &[&r.user_id]).await?;
        tx.execute(
            &insert,
            &[
                &r.user_id,
                &&r.token_hash[..],
                &r.audit.at_str(),
                &r.expires_ms,
            ],
        )
        .await?;
        if let Some((link, expires)) = &r.notify {
            tx.execute(
                &event,
                &[
                    &r.audit.at_str(),
                    &r.account_id,
                    &r.audit.request_id_str(),
                    link,
                    expires,
                    &r.user_id,
                ],
            )
            .await?;
        }
        super::directory::insert_audit(&tx, &r.audit).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The owner of the live link whose token hashes to `token_hash`, if any.
pub(super) async fn find_link(
    client: &impl GenericClient,
    token_hash: &[u8; 32],
    now_ms: i64,
) -> Result<Option<LinkOwner>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT u.account_id, a.min_length, a.max_length, a.forbid_email, a.forbid_common,
                    a.history, a.self_service, {USER_COLUMNS}
               FROM reset_tokens t
               JOIN users u ON u.id = t.user_id
               JOIN accounts a ON a.id = u.account_id
              WHERE t.token_hash = $1 AND t.expires_at > $2
                AND u.status = 'active' AND NOT u.externally_managed"
        ))
        .await?;
    let Some(row) = client
        .query_opt(&stmt, &[&&token_hash[..], &now_ms])
        .await?
    else {
        return Ok(None);
    };
    let account_id: i64 = row.try_get(0)?;
    let policy = policy_from_row(&row, 1)?;
    let user = user_from_row(&row, 7)?;
    let history = history_of(client, user.id, policy.history).await?;
    Ok(Some(LinkOwner {
        account_id,
        user,
        policy,
        history,
    }))
}

/// Whether the user has a live link (their status's `resetPending`).
pub(super) async fn pending(
    client: &impl GenericClient,
    user_id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM reset_tokens WHERE user_id = $1 AND expires_at > $2)",
        )
        .await?;
    Ok(client
        .query_one(&stmt, &[&user_id, &now_ms])
        .await?
        .try_get(0)?)
}

/// One page of the users a caller's `allInScope` reset reaches, as in
/// `sqlite::resets::reach_page`: the whole account in id order for an owner or account
/// admin, else the caller's scope in (department, id) order; at most `limit` after `after`.
pub(super) async fn reach_page(
    client: &impl GenericClient,
    account_id: i64,
    caller_id: i64,
    caller_role: Role,
    after: ReachCursor,
    limit: usize,
) -> Result<Vec<ReachedUser>, StoreError> {
    let whole_account = matches!(caller_role, Role::Owner | Role::AccountAdmin);
    let sql = if whole_account {
        format!(
            // $3 (the cursor's department) is not needed here; `$3::BIGINT IS NOT NULL`
            // uses it so both queries take the same parameters.
            "SELECT {USER_COLUMNS}, TRUE, u.department_id FROM users u
              WHERE u.account_id = $1 AND u.id <> $2 AND u.id > $4
                AND $3::BIGINT IS NOT NULL
              ORDER BY u.id LIMIT $5"
        )
    } else {
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
               FROM users u
              WHERE u.department_id IN (SELECT dept FROM scope)
                AND (u.department_id, u.id) > ($3, $4)
                AND u.account_id = $1 AND u.id <> $2
              ORDER BY u.department_id, u.id LIMIT $5",
            roots = scope_roots("$2")
        )
    };
    let stmt = client.prepare_cached(&sql).await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &stmt,
            &[&account_id, &caller_id, &after.0, &after.1, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ReachedUser {
                user: user_from_row(row, 0)?,
                reach_in_scope: row.try_get(USER_COLUMN_COUNT)?,
                department_id: row.try_get(USER_COLUMN_COUNT + 1)?,
            })
        })
        .collect()
}
