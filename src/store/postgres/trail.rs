//! The audit trail and the outbox on PostgreSQL: reading them back (the `audit` and
//! `events` commands), acknowledging events, and the mail sender's claims (as
//! `sqlite::trail` and `sqlite::outbox`). Claims take rows `FOR UPDATE SKIP LOCKED`, so
//! two instances' senders take disjoint events and never wait on each other.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::super::StoreError;
use crate::domain::records::{AuditEntry, AuditFilter, Claimed, OutboxEvent};

pub(super) async fn audit(
    client: &impl GenericClient,
    f: &AuditFilter,
) -> Result<Vec<AuditEntry>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT l.id, l.at, l.request_id, COALESCE(a.url, l.account_url), l.caller_email,
                    c.ext_id, COALESCE(t.ext_id, l.target_ext_id), l.outcome, l.detail,
                    l.client_addr, l.count
               FROM audit_log l
               LEFT JOIN accounts a ON a.id = l.account_id
               LEFT JOIN users c ON c.id = l.caller_id
               LEFT JOIN users t ON t.id = l.target_id
              WHERE ($1::TEXT IS NULL OR a.url_key = $1)
                AND ($2::TEXT IS NULL OR c.ext_id = $2 OR t.ext_id = $2 OR l.target_ext_id = $2)
                AND ($3::TEXT IS NULL OR l.at >= $3)
              ORDER BY l.id",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&f.account_key, &f.user, &f.since])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                request_id: r.try_get(2)?,
                account: r.try_get(3)?,
                caller_email: r.try_get(4)?,
                caller_id: r.try_get(5)?,
                target_id: r.try_get(6)?,
                outcome: r.try_get(7)?,
                detail: r.try_get(8)?,
                client_addr: r.try_get(9)?,
                count: r.try_get(10)?,
            })
        })
        .collect()
}

/// The columns of an [`OutboxEvent`], in [`event_from_row`]'s order (`e`: events).
const EVENT_COLUMNS: &str =
    "e.id, e.at, e.kind, a.url, u.ext_id, u.email, e.credential_version, e.request_id,
     e.via, e.temporary, e.link, e.link_expires_at";

fn event_from_row(r: &Row) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        kind: r.try_get(2)?,
        account: r.try_get(3)?,
        user_id: r.try_get(4)?,
        email: r.try_get(5)?,
        credential_version: r.try_get(6)?,
        request_id: r.try_get(7)?,
        via: r.try_get(8)?,
        temporary: r.try_get(9)?,
        link: r.try_get(10)?,
        link_expires_at: r.try_get(11)?,
    })
}

pub(super) async fn events_after(
    client: &impl GenericClient,
    after: i64,
) -> Result<Vec<OutboxEvent>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS}
               FROM events e
               JOIN accounts a ON a.id = e.account_id
               JOIN users u ON u.id = e.user_id
              WHERE e.id > $1 AND e.acked_at IS NULL
              ORDER BY e.id"
        ))
        .await?;
    let rows = client.query(&stmt, &[&after]).await?;
    rows.iter().map(event_from_row).collect()
}

/// Marks every event up to and including `id` as handled (erasing reset links);
/// returns how many changed.
pub(super) async fn ack(client: &impl GenericClient, id: i64, at: &str) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE events SET acked_at = $2, link = NULL WHERE id <= $1 AND acked_at IS NULL",
        )
        .await?;
    Ok(client.execute(&stmt, &[&id, &at]).await?)
}

/// Marks exactly the events `ids` as handled (erasing reset links); returns how many
/// changed.
pub(super) async fn ack_listed(
    client: &impl GenericClient,
    ids: &[i64],
    at: &str,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE events SET acked_at = $2, link = NULL
              WHERE id = ANY($1) AND acked_at IS NULL",
        )
        .await?;
    Ok(client.execute(&stmt, &[&ids, &at]).await?)
}

/// Claims up to `limit` due events until `lease_until_ms` (see `sqlite::outbox`).
pub(super) async fn claim_due(
    client: &mut deadpool_postgres::Client,
    now_ms: i64,
    lease_until_ms: i64,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    let tx = client.transaction().await?;
    let take = tx
        .prepare_cached(
            "UPDATE events SET mail_next_at = $2 WHERE id IN (
                 SELECT id FROM events
                  WHERE acked_at IS NULL AND (mail_next_at IS NULL OR mail_next_at <= $1)
                  ORDER BY id LIMIT $3
                    FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let ids: Vec<i64> = tx
        .query(&take, &[&now_ms, &lease_until_ms, &limit])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let read = tx
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS}, e.mail_attempts
               FROM events e
               JOIN accounts a ON a.id = e.account_id
               JOIN users u ON u.id = e.user_id
              WHERE e.id = ANY($1)
              ORDER BY e.id"
        ))
        .await?;
    let claimed = tx
        .query(&read, &[&ids])
        .await?
        .iter()
        .map(|r| {
            Ok(Claimed {
                event: event_from_row(r)?,
                attempts: r.try_get(12)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    tx.commit().await?;
    Ok(claimed)
}

/// Acknowledges one delivered event (and erases its link); false if it already was.
pub(super) async fn ack_one(
    client: &impl GenericClient,
    id: i64,
    at: &str,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE events SET acked_at = $2, link = NULL, mail_next_at = NULL
              WHERE id = $1 AND acked_at IS NULL",
        )
        .await?;
    Ok(client.execute(&stmt, &[&id, &at]).await? == 1)
}

/// Puts an event back for another attempt at `next_ms`, counting this one.
pub(super) async fn defer(
    client: &impl GenericClient,
    id: i64,
    next_ms: i64,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE events SET mail_next_at = $2, mail_attempts = mail_attempts + 1
              WHERE id = $1 AND acked_at IS NULL",
        )
        .await?;
    client.execute(&stmt, &[&id, &next_ms]).await?;
    Ok(())
}
