//! Persistence of the §10 counters: one row per (account, e-mail) pair or client
//! address holding its [`Softlock`] state, so a restart, or another instance on the same
//! database, sees the same locks. The rules themselves are `domain::lockout`'s; every
//! change here is a read-modify-write inside the caller's IMMEDIATE transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::domain::lockout::{LockRule, Refusal, Softlock, ThrottlePolicy};
use crate::domain::records::{LockStarted, Settlement, ThrottleKey};
use crate::store::codec::{decode_pairs, encode_pairs};

/// The address locks this process knows of, so that calls refused before
/// authentication from a throttled address can be paced without a database read each:
/// filled by the background writer as it counts refusals (it reads each counted
/// address's lock back, whichever instance started it) and by sign-ins that start one.
#[derive(Debug, Default)]
pub struct LockCache {
    until: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl LockCache {
    /// Most addresses remembered; past it, ended locks are forgotten first, then all.
    const MAX: usize = 65_536;

    /// Records that `key` is locked until `until` (0: not locked).
    pub fn note(&self, key: &ThrottleKey, until: i64, now: i64) {
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if until <= now {
            map.remove(key.as_str());
            return;
        }
        if map.len() >= Self::MAX {
            map.retain(|_, u| *u > now);
            if map.len() >= Self::MAX {
                map.clear();
            }
        }
        map.insert(key.as_str().to_string(), until);
    }

    /// Whether `key` is known to be locked at `now`.
    pub fn is_locked(&self, key: &ThrottleKey, now: i64) -> bool {
        let map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key.as_str()).is_some_and(|until| *until > now)
    }
}

/// When `key`'s lock ends, if it is locked now.
pub(super) fn locked_until(
    conn: &Connection,
    key: &ThrottleKey,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let until: Option<i64> = conn
        .prepare_cached("SELECT locked_until FROM auth_throttle WHERE key = ?1")?
        .query_row([key.as_str()], |r| r.get(0))
        .optional()?;
    Ok(until.filter(|until| *until > now))
}

/// Whether any of `keys` is locked at `now`.
pub(super) fn any_locked(
    conn: &Connection,
    keys: &[ThrottleKey],
    now: i64,
) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT locked_until FROM auth_throttle WHERE key = ?1")?;
    for key in keys {
        let until: Option<i64> = stmt.query_row([key.as_str()], |r| r.get(0)).optional()?;
        if until.is_some_and(|until| until > now) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn load(conn: &Connection, key: &ThrottleKey) -> Result<Option<Softlock>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT failures, pending, locked_until, lockouts FROM auth_throttle WHERE key = ?1",
    )?;
    let row: Option<(String, String, i64, i64)> = stmt
        .query_row([key.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    Ok(
        row.map(|(failures, pending, locked_until, lockouts)| Softlock {
            failures: decode_pairs(&failures),
            pending: decode_pairs(&pending),
            locked_until,
            lockouts: u32::try_from(lockouts).unwrap_or(u32::MAX),
        }),
    )
}

/// Writes `state` back, or deletes the row when nothing in it matters any more.
fn save(
    conn: &Connection,
    key: &ThrottleKey,
    state: &Softlock,
    rule: &LockRule,
    now: i64,
) -> Result<(), StoreError> {
    if state.is_forgettable(now, rule) {
        conn.prepare_cached("DELETE FROM auth_throttle WHERE key = ?1")?
            .execute([key.as_str()])?;
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO auth_throttle (key, failures, pending, locked_until, lockouts, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
             pending = excluded.pending, locked_until = excluded.locked_until,
             lockouts = excluded.lockouts, updated_at = excluded.updated_at",
    )?
    .execute(params![
        key.as_str(),
        encode_pairs(&state.failures),
        encode_pairs(&state.pending),
        state.locked_until,
        state.lockouts,
        now
    ])?;
    Ok(())
}

/// Why a sign-in may not be verified now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Locked,
    /// The pair's failures and attempts under way reach its threshold.
    Full,
}

/// Reserves a verification of the pair for attempt `id`, unless the address or the pair
/// is locked or the pair is full. Runs inside the caller's write transaction.
pub(super) fn reserve(
    conn: &Connection,
    pair: &ThrottleKey,
    address: Option<&ThrottleKey>,
    id: u64,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<Result<(), Closed>, StoreError> {
    if let Some(address) = address {
        if load(conn, address)?.is_some_and(|s| s.is_locked(now)) {
            return Ok(Err(Closed::Locked));
        }
    }
    let rule = pair.rule(policy);
    let mut state = load(conn, pair)?.unwrap_or_default();
    match state.reserve(id, now, &rule) {
        Ok(()) => {
            save(conn, pair, &state, &rule, now)?;
            Ok(Ok(()))
        }
        Err(Refusal::Locked { .. }) => Ok(Err(Closed::Locked)),
        Err(Refusal::Full) => Ok(Err(Closed::Full)),
    }
}

/// Settles attempt `id` of `pair`: a failure is also counted against `address`.
/// Returns the locks it started.
pub(super) fn settle(
    conn: &Connection,
    pair: &ThrottleKey,
    address: Option<&ThrottleKey>,
    id: u64,
    outcome: Settlement,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<Vec<LockStarted>, StoreError> {
    let mut started = Vec::new();
    let rule = pair.rule(policy);
    let mut state = load(conn, pair)?.unwrap_or_default();
    match outcome {
        Settlement::Success => state.succeed(id),
        Settlement::Abandoned => state.release(id),
        Settlement::Failure => {
            if let Some(until) = state.fail(id, now, &rule) {
                started.push((pair.clone(), until));
            }
        }
    }
    save(conn, pair, &state, &rule, now)?;
    if let (Settlement::Failure, Some(address)) = (outcome, address) {
        started.extend(count(conn, address, 1, policy, now)?);
    }
    Ok(started)
}

/// Counts `n` failures against `key` without a reservation (an address's refused calls).
pub(super) fn count(
    conn: &Connection,
    key: &ThrottleKey,
    n: u32,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<Option<LockStarted>, StoreError> {
    Ok(count_and_read(conn, key, n, policy, now)?.0)
}

/// [`count`], also returning the key's lock end afterwards (0 when not locked).
pub(super) fn count_and_read(
    conn: &Connection,
    key: &ThrottleKey,
    n: u32,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<(Option<LockStarted>, i64), StoreError> {
    let rule = key.rule(policy);
    let mut state = load(conn, key)?.unwrap_or_default();
    let started = state.count(n, now, &rule).map(|until| (key.clone(), until));
    save(conn, key, &state, &rule, now)?;
    Ok((started, state.locked_until))
}

/// Lifts `key`'s lock and forgets its failures; returns whether a row existed and the
/// end of the lock that was lifted.
pub(super) fn unlock(
    conn: &Connection,
    key: &ThrottleKey,
    now: i64,
) -> Result<(bool, Option<i64>), StoreError> {
    let Some(mut state) = load(conn, key)? else {
        return Ok((false, None));
    };
    let was = state.unlock(now);
    conn.prepare_cached(
        "UPDATE auth_throttle SET failures = '', locked_until = 0, lockouts = 0, updated_at = ?2
          WHERE key = ?1",
    )?
    .execute(params![key.as_str(), now])?;
    Ok((true, was))
}

/// Forgets counters untouched for longer than a window, a longest lock and a
/// reservation's lifetime: nothing in them can count any more. Scans the table, so the
/// caller runs it now and then, not on every write.
pub(super) fn forget_quiet(
    conn: &Connection,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<usize, StoreError> {
    let quiet = policy
        .window_ms
        .saturating_add(policy.max_lock_ms)
        .max(crate::domain::lockout::RESERVATION_TTL_MS);
    Ok(conn
        .prepare_cached("DELETE FROM auth_throttle WHERE updated_at < ?1 AND locked_until < ?2")?
        .execute(params![now.saturating_sub(quiet), now])?)
}
