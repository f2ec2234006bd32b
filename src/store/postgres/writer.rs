//! What the audit writer (`store::audit`) writes, in PostgreSQL: a batch of rows, the
//! refused calls' counted rows with their addresses' counters, and retention's batches.

use deadpool_postgres::GenericClient;

use super::super::StoreError;
use super::{directory, throttle};
use crate::domain::lockout::ThrottlePolicy;
use crate::domain::records::AuditRecord;
use crate::store::audit::{Counted, Pruned, Tally, address_lock_row};

pub(super) async fn write_rows(
    client: &mut deadpool_postgres::Client,
    batch: &[AuditRecord],
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    for r in batch {
        directory::insert_audit(&tx, r).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Adds the gathered refused calls to their minute's rows and counts them against their
/// addresses, in one transaction; a lock that starts is audited. The counted rows' upsert
/// is one statement per row, safe with other instances upserting the same minute.
pub(super) async fn write_refusals(
    client: &mut deadpool_postgres::Client,
    tally: &Tally,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<Vec<Counted>, StoreError> {
    let tx = client.transaction().await?;
    let upsert = tx
        .prepare_cached(
            "INSERT INTO audit_log (at, request_id, outcome, detail, client_addr, count,
                                    aggregate_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (aggregate_key) DO UPDATE
                SET count = audit_log.count + excluded.count",
        )
        .await?;
    for (key, (count, request_id)) in &tally.rows {
        let (at, aggregate_key) = key.at_and_key();
        let count = i64::try_from(*count).unwrap_or(i64::MAX);
        tx.execute(
            &upsert,
            &[
                &at,
                request_id,
                &key.outcome.as_str(),
                &key.detail,
                &key.client_addr,
                &count,
                &aggregate_key,
            ],
        )
        .await?;
    }
    let mut counted = Vec::new();
    for (counter, n, client_addr, request_id) in tally.counts.values() {
        let (started, locked_until) =
            throttle::count_and_read(&tx, counter, *n, policy, now).await?;
        let started = started.map(|(_, until)| until);
        if let Some(until) = started {
            directory::insert_audit(&tx, &address_lock_row(request_id, client_addr, until)).await?;
        }
        counted.push(Counted {
            key: counter.clone(),
            locked_until,
            started,
            request_id: request_id.clone(),
        });
    }
    tx.commit().await?;
    Ok(counted)
}

/// Deletes up to `batch` rows of `what` from before `cutoff`; returns how many.
pub(super) async fn prune_batch(
    client: &impl GenericClient,
    what: Pruned,
    cutoff: &str,
    batch: usize,
) -> Result<usize, StoreError> {
    let sql = match what {
        Pruned::AuditRows => {
            "DELETE FROM audit_log WHERE id IN
               (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)"
        }
        Pruned::AcknowledgedEvents => {
            "DELETE FROM events WHERE id IN
               (SELECT id FROM events WHERE acked_at IS NOT NULL AND acked_at < $1
                 ORDER BY acked_at LIMIT $2)"
        }
    };
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    let stmt = client.prepare_cached(sql).await?;
    let n = client.execute(&stmt, &[&cutoff, &batch]).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
