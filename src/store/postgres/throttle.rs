//! The §10 counters on PostgreSQL: one row per pair or address holding its `Softlock`
//! state, as in `sqlite::throttle`. Several instances update one row at once here, so
//! every read-modify-write first upserts and locks the row in one statement (`INSERT … ON
//! CONFLICT DO UPDATE … RETURNING`) and holds it until its transaction ends: the state machine of `domain::lockout` then runs
//! on a state no other instance can change under it. Rows are locked in one order — the
//! pair before the address — so two sign-ins cannot deadlock each other.

use deadpool_postgres::GenericClient;

use super::super::StoreError;
use crate::domain::lockout::{LockRule, Refusal, Softlock, ThrottlePolicy};
use crate::domain::records::{LockStarted, Settlement, ThrottleKey};
use crate::store::codec::{decode_pairs, encode_pairs};

/// Why a sign-in may not be verified now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    Locked,
    /// The pair's failures and attempts under way reach its threshold.
    Full,
}

/// When `key`'s lock ends, if it is locked at `now`.
pub(super) async fn locked_until(
    client: &impl GenericClient,
    key: &ThrottleKey,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT locked_until FROM auth_throttle WHERE key = $1")
        .await?;
    let until = client.query_opt(&stmt, &[&key.as_str()]).await?;
    let until: Option<i64> = until.map(|r| r.try_get(0)).transpose()?;
    Ok(until.filter(|until| *until > now))
}

/// Whether any of `keys` is locked at `now`.
pub(super) async fn any_locked(
    client: &impl GenericClient,
    keys: &[ThrottleKey],
    now: i64,
) -> Result<bool, StoreError> {
    let keys: Vec<&str> = keys.iter().map(ThrottleKey::as_str).collect();
    let stmt = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM auth_throttle
                             WHERE key = ANY($1) AND locked_until > $2)",
        )
        .await?;
    Ok(client.query_one(&stmt, &[&keys, &now]).await?.try_get(0)?)
}

/// `key`'s state, the row held until the transaction ends (created empty if missing).
async fn hold(
    client: &impl GenericClient,
    key: &ThrottleKey,
    now: i64,
) -> Result<Softlock, StoreError> {
    // One statement creates the row if it is missing and locks it either way: a separate
    // insert and `SELECT … FOR UPDATE` could find the row gone (deleted by the
    // transaction it waited for) and return nothing.
    let stmt = client
        .prepare_cached(
            "INSERT INTO auth_throttle (key, updated_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET key = excluded.key
             RETURNING failures, pending, locked_until, lockouts",
        )
        .await?;
    let row = client.query_one(&stmt, &[&key.as_str(), &now]).await?;
    let failures: String = row.try_get(0)?;
    let pending: String = row.try_get(1)?;
    let lockouts: i64 = row.try_get(3)?;
    Ok(Softlock {
        failures: decode_pairs(&failures),
        pending: decode_pairs(&pending),
        locked_until: row.try_get(2)?,
        lockouts: u32::try_from(lockouts).unwrap_or(u32::MAX),
    })
}

/// Writes `state` back, or deletes the row when nothing in it matters any more.
async fn save(
    client: &impl GenericClient,
    key: &ThrottleKey,
    state: &Softlock,
    rule: &LockRule,
    now: i64,
) -> Result<(), StoreError> {
    if state.is_forgettable(now, rule) {
        let stmt = client
            .prepare_cached("DELETE FROM auth_throttle WHERE key = $1")
            .await?;
        client.execute(&stmt, &[&key.as_str()]).await?;
        return Ok(());
    }
    let stmt = client
        .prepare_cached(
            "UPDATE auth_throttle SET failures = $2, pending = $3, locked_until = $4,
                                      lockouts = $5, updated_at = $6
              WHERE key = $1",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &key.as_str(),
                &encode_pairs(&state.failures),
                &encode_pairs(&state.pending),
                &state.locked_until,
                &i64::from(state.lockouts),
                &now,
            ],
        )
        .await?;
    Ok(())
}

/// Reserves a verification of the pair for attempt `id`, unless the address or the pair
/// is locked or the pair is full. Runs inside the caller's transaction.
pub(super) async fn reserve(
    client: &impl GenericClient,
    pair: &ThrottleKey,
    address: Option<&ThrottleKey>,
    id: u64,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<Result<(), Closed>, StoreError> {
    // The address is only read: a lock on it is enough to refuse.
    if let Some(address) = address {
        if locked_until(client, address, now).await?.is_some() {
            return Ok(Err(Closed::Locked));
        }
    }
    let rule = pair.rule(policy);
    let mut state = hold(client, pair, now).await?;
    match state.reserve(id, now, &rule) {
        Ok(()) => {
            save(client, pair, &state, &rule, now).await?;
            Ok(Ok(()))
        }
        Err(Refusal::Locked { .. }) => Ok(Err(Closed::Locked)),
        Err(Refusal::Full) => Ok(Err(Closed::Full)),
    }
}

/// Settles attempt `id` of `pair`: a failure is also counted against `address`.
/// Returns the locks it started.
pub(super) async fn settle(
    client: &impl GenericClient,
    pair: &ThrottleKey,
    address: Option<&ThrottleKey>,
    id: u64,
    outcome: Settlement,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<Vec<LockStarted>, StoreError> {
    let mut started = Vec::new();
    let rule = pair.rule(policy);
    let mut state = hold(client, pair, now).await?;
    match outcome {
        Settlement::Success => state.succeed(id),
        Settlement::Abandoned => state.release(id),
        Settlement::Failure => {
            if let Some(until) = state.fail(id, now, &rule) {
                started.push((pair.clone(), until));
            }
        }
    }
    save(client, pair, &state, &rule, now).await?;
    if let (Settlement::Failure, Some(address)) = (outcome, address) {
        started.extend(count_and_read(client, address, 1, policy, now).await?.0);
    }
    Ok(started)
}

/// Counts `n` failures against `key` without a reservation (an address's refused
/// calls); also returns the key's lock end afterwards (0 when not locked).
pub(super) async fn count_and_read(
    client: &impl GenericClient,
    key: &ThrottleKey,
    n: u32,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<(Option<LockStarted>, i64), StoreError> {
    let rule = key.rule(policy);
    let mut state = hold(client, key, now).await?;
    let started = state.count(n, now, &rule).map(|until| (key.clone(), until));
    save(client, key, &state, &rule, now).await?;
    Ok((started, state.locked_until))
}

/// Lifts `key`'s lock and forgets its failures; returns whether a row existed and the
/// end of the lock that was lifted.
pub(super) async fn unlock(
    client: &impl GenericClient,
    key: &ThrottleKey,
    now: i64,
) -> Result<(bool, Option<i64>), StoreError> {
    let exists = client
        .prepare_cached("SELECT 1 FROM auth_throttle WHERE key = $1")
        .await?;
    if client.query_opt(&exists, &[&key.as_str()]).await?.is_none() {
        return Ok((false, None));
    }
    let mut state = hold(client, key, now).await?;
    let was = state.unlock(now);
    let stmt = client
        .prepare_cached(
            "UPDATE auth_throttle SET failures = '', locked_until = 0, lockouts = 0,
                                      updated_at = $2
              WHERE key = $1",
        )
        .await?;
    client.execute(&stmt, &[&key.as_str(), &now]).await?;
    Ok((true, was))
}

/// Forgets counters untouched for longer than a window, a longest lock and a
/// reservation's lifetime. Scans the table: run now and then, not on every write.
pub(super) async fn forget_quiet(
    client: &impl GenericClient,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<u64, StoreError> {
    let quiet = policy
        .window_ms
        .saturating_add(policy.max_lock_ms)
        .max(crate::domain::lockout::RESERVATION_TTL_MS);
    let stmt = client
        .prepare_cached("DELETE FROM auth_throttle WHERE updated_at < $1 AND locked_until < $2")
        .await?;
    Ok(client
        .execute(&stmt, &[&now.saturating_sub(quiet), &now])
        .await?)
}
