//! Reading the audit trail and the `password_changed` events (the `audit` and `events`
//! commands), and acknowledging events a notifier has handled.

use rusqlite::{Connection, params};

use super::StoreError;
use crate::domain::records::{AuditEntry, AuditFilter, OutboxEvent};

pub(super) fn audit(conn: &Connection, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, l.at, l.request_id, COALESCE(a.url, l.account_url), l.caller_email,
                c.ext_id, COALESCE(t.ext_id, l.target_ext_id), l.outcome, l.detail, l.client_addr,
                l.count
           FROM audit_log l
           LEFT JOIN accounts a ON a.id = l.account_id
           LEFT JOIN users c ON c.id = l.caller_id
           LEFT JOIN users t ON t.id = l.target_id
          WHERE (?1 IS NULL OR a.url_key = ?1)
            AND (?2 IS NULL OR c.ext_id = ?2 OR t.ext_id = ?2 OR l.target_ext_id = ?2)
            AND (?3 IS NULL OR l.at >= ?3)
          ORDER BY l.id",
    )?;
    let rows = stmt.query_map(params![f.account_key, f.user, f.since], |r| {
        Ok(AuditEntry {
            id: r.get(0)?,
            at: r.get(1)?,
            request_id: r.get(2)?,
            account: r.get(3)?,
            caller_email: r.get(4)?,
            caller_id: r.get(5)?,
            target_id: r.get(6)?,
            outcome: r.get(7)?,
            detail: r.get(8)?,
            client_addr: r.get(9)?,
            count: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The columns of an [`OutboxEvent`], in [`event_from_row`]'s order (`e`: events).
pub(super) const EVENT_COLUMNS: &str =
    "e.id, e.at, e.kind, a.url, u.ext_id, u.email, e.credential_version, e.request_id,
     e.via, e.temporary, e.link, e.link_expires_at";

pub(super) fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEvent> {
    Ok(OutboxEvent {
        id: r.get(0)?,
        at: r.get(1)?,
        kind: r.get(2)?,
        account: r.get(3)?,
        user_id: r.get(4)?,
        email: r.get(5)?,
        credential_version: r.get(6)?,
        request_id: r.get(7)?,
        via: r.get(8)?,
        temporary: r.get(9)?,
        link: r.get(10)?,
        link_expires_at: r.get(11)?,
    })
}

pub(super) fn events_after(conn: &Connection, after: i64) -> Result<Vec<OutboxEvent>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS}
           FROM events e
           JOIN accounts a ON a.id = e.account_id
           JOIN users u ON u.id = e.user_id
          WHERE e.id > ?1 AND e.acked_at IS NULL
          ORDER BY e.id"
    ))?;
    let rows = stmt.query_map([after], event_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks exactly the events `ids` as handled, in one transaction; returns how many
/// changed.
pub(super) fn ack_listed(
    conn: &mut Connection,
    ids: &[i64],
    at: &str,
) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let mut changed = 0;
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE events SET acked_at = ?2, link = NULL WHERE id = ?1 AND acked_at IS NULL",
        )?;
        for id in ids {
            changed += stmt.execute(params![id, at])?;
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// Marks every event up to and including `id` as handled; returns how many changed.
pub(super) fn ack(conn: &Connection, id: i64, at: &str) -> Result<usize, StoreError> {
    Ok(conn.execute(
        // A reset link is held only until its event is handled: then it is erased.
        "UPDATE events SET acked_at = ?2, link = NULL WHERE id <= ?1 AND acked_at IS NULL",
        params![id, at],
    )?)
}
