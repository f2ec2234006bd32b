//! The outbox's delivery bookkeeping (contract §14): which unacknowledged events a mail
//! sender may take now, its claim on them while it sends, and the retry time of the ones
//! it could not send. An event is acknowledged only once delivered (or, for a reset link
//! that expired before it could be sent, dropped: see `notify`).

use rusqlite::{Connection, TransactionBehavior, params};

use super::StoreError;
use super::trail::{EVENT_COLUMNS, event_from_row};
use crate::domain::records::Claimed;

/// Takes up to `limit` unacknowledged events that are due at `now_ms`, oldest first, and
/// claims them until `lease_until_ms`: another sender (another process on the same
/// database) does not take them before then, and if this one dies, they are due again then.
pub(super) fn claim_due(
    conn: &mut Connection,
    now_ms: i64,
    lease_until_ms: i64,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let claimed = {
        let mut due = tx.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS}, e.mail_attempts
               FROM events e
               JOIN accounts a ON a.id = e.account_id
               JOIN users u ON u.id = e.user_id
              WHERE e.acked_at IS NULL AND (e.mail_next_at IS NULL OR e.mail_next_at <= ?1)
              ORDER BY e.id
              LIMIT ?2"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = due.query_map(params![now_ms, limit], |r| {
            Ok(Claimed {
                event: event_from_row(r)?,
                attempts: r.get(12)?,
            })
        })?;
        let claimed: Vec<Claimed> = rows.collect::<Result<_, _>>()?;
        let mut lease = tx.prepare_cached("UPDATE events SET mail_next_at = ?2 WHERE id = ?1")?;
        for c in &claimed {
            lease.execute(params![c.event.id, lease_until_ms])?;
        }
        claimed
    };
    tx.commit()?;
    Ok(claimed)
}

/// Acknowledges one delivered event (and erases its link); false if it already was.
pub(super) fn ack_one(conn: &Connection, id: i64, at: &str) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE events SET acked_at = ?2, link = NULL, mail_next_at = NULL
              WHERE id = ?1 AND acked_at IS NULL",
        )?
        .execute(params![id, at])?;
    Ok(n == 1)
}

/// Puts an event back for another attempt at `next_ms`, counting this one.
pub(super) fn defer(conn: &Connection, id: i64, next_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE events SET mail_next_at = ?2, mail_attempts = mail_attempts + 1
          WHERE id = ?1 AND acked_at IS NULL",
    )?
    .execute(params![id, next_ms])?;
    Ok(())
}
