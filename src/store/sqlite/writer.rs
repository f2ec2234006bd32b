//! What the audit writer (`store::audit`) writes, in SQLite: a batch of rows, the
//! refused calls' counted rows with their addresses' counters, and retention's batches.

use rusqlite::{Connection, TransactionBehavior, params};

use super::{StoreError, directory, throttle};
use crate::domain::lockout::ThrottlePolicy;
use crate::domain::records::AuditRecord;
use crate::store::audit::{Counted, Pruned, Tally, address_lock_row};

pub(super) fn write_rows(conn: &mut Connection, batch: &[AuditRecord]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for r in batch {
        directory::insert_audit(&tx, r)?;
    }
    tx.commit()?;
    Ok(())
}

/// Adds the gathered refused calls to their minute's rows and counts them against their
/// addresses, in one transaction; a lock that starts is audited.
pub(super) fn write_refusals(
    conn: &mut Connection,
    tally: &Tally,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<Vec<Counted>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO audit_log (at, request_id, outcome, detail, client_addr, count,
                                    aggregate_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (aggregate_key) DO UPDATE SET count = count + excluded.count",
        )?;
        for (key, (count, request_id)) in &tally.rows {
            let (at, aggregate_key) = key.at_and_key();
            upsert.execute(params![
                at,
                request_id,
                key.outcome.as_str(),
                key.detail,
                key.client_addr,
                i64::try_from(*count).unwrap_or(i64::MAX),
                aggregate_key
            ])?;
        }
    }
    let mut counted = Vec::new();
    for (counter, n, client_addr, request_id) in tally.counts.values() {
        let (started, locked_until) = throttle::count_and_read(&tx, counter, *n, policy, now)?;
        let started = started.map(|(_, until)| until);
        if let Some(until) = started {
            directory::insert_audit(&tx, &address_lock_row(request_id, client_addr, until))?;
        }
        counted.push(Counted {
            key: counter.clone(),
            locked_until,
            started,
            request_id: request_id.clone(),
        });
    }
    tx.commit()?;
    Ok(counted)
}

/// Deletes up to `batch` rows of `what` from before `cutoff`; returns how many.
pub(super) fn prune_batch(
    conn: &Connection,
    what: Pruned,
    cutoff: &str,
    batch: usize,
) -> Result<usize, StoreError> {
    let sql = match what {
        Pruned::AuditRows => {
            "DELETE FROM audit_log WHERE id IN
               (SELECT id FROM audit_log WHERE at < ?1 ORDER BY at LIMIT ?2)"
        }
        Pruned::AcknowledgedEvents => {
            "DELETE FROM events WHERE id IN
               (SELECT id FROM events WHERE acked_at IS NOT NULL AND acked_at < ?1
                 ORDER BY acked_at LIMIT ?2)"
        }
    };
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    Ok(conn.prepare_cached(sql)?.execute(params![cutoff, batch])?)
}
