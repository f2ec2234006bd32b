//! Failed-authentication counters per (account, e-mail) pair and per client address,
//! in SQLite so a restart does not reset them (contract §10).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::StoreError;

/// The thresholds and windows of contract §10 (all configurable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one pair within `window_ms` that lock it.
    pub pair_threshold: u32,
    /// Failures from one address within `window_ms` that throttle it.
    pub address_threshold: u32,
    pub window_ms: i64,
    /// First lock; each repeat doubles it, up to `max_lock_ms`.
    pub lock_ms: i64,
    pub max_lock_ms: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            pair_threshold: 10,
            address_threshold: 100,
            window_ms: 15 * 60 * 1000,
            lock_ms: 15 * 60 * 1000,
            max_lock_ms: 24 * 60 * 60 * 1000,
        }
    }
}

/// Which counter a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleKey {
    /// Account URL key and e-mail key, normalised as for matching.
    Pair(String),
    /// A client address.
    Address(String),
}

impl ThrottleKey {
    pub fn pair(account_key: &str, email_key: &str) -> Self {
        ThrottleKey::Pair(format!("pair:{account_key}|{email_key}"))
    }

    pub fn address(addr: &str) -> Self {
        ThrottleKey::Address(format!("addr:{addr}"))
    }

    pub fn as_str(&self) -> &str {
        match self {
            ThrottleKey::Pair(k) | ThrottleKey::Address(k) => k,
        }
    }

    fn threshold(&self, policy: &ThrottlePolicy) -> u32 {
        match self {
            ThrottleKey::Pair(_) => policy.pair_threshold,
            ThrottleKey::Address(_) => policy.address_threshold,
        }
    }
}

/// For each of `keys`, its counter's `locked_until` (0 when never locked), or `None`
/// when it has no counter.
pub(super) fn counters(
    conn: &Connection,
    keys: &[ThrottleKey],
) -> Result<Vec<Option<i64>>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT locked_until FROM auth_throttle WHERE key = ?1")?;
    keys.iter()
        .map(|key| Ok(stmt.query_row([key.as_str()], |r| r.get(0)).optional()?))
        .collect()
}

/// Counts one failure against each key; returns the keys whose lock started now, with
/// the lock's end.
pub(super) fn record_failure(
    conn: &mut Connection,
    keys: &[ThrottleKey],
    policy: &ThrottlePolicy,
    now_ms: i64,
) -> Result<Vec<(ThrottleKey, i64)>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut started = Vec::new();
    for key in keys {
        let row: Option<(i64, i64, i64, i64)> = tx
            .prepare_cached(
                "SELECT failures, window_start, locked_until, lockouts FROM auth_throttle WHERE key = ?1",
            )?
            .query_row([key.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let (mut failures, mut window_start, mut locked_until, mut lockouts) =
            row.unwrap_or((0, now_ms, 0, 0));
        if now_ms - window_start > policy.window_ms {
            failures = 0;
            window_start = now_ms;
        }
        failures += 1;
        if failures >= i64::from(key.threshold(policy)) {
            let doubling = 1i64
                .checked_shl(lockouts.clamp(0, 40) as u32)
                .unwrap_or(i64::MAX);
            let lock = policy
                .lock_ms
                .saturating_mul(doubling)
                .min(policy.max_lock_ms);
            locked_until = now_ms.saturating_add(lock);
            lockouts += 1;
            failures = 0;
            window_start = now_ms;
            started.push((key.clone(), locked_until));
        }
        tx.prepare_cached(
            "INSERT INTO auth_throttle (key, failures, window_start, locked_until, lockouts)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
                 window_start = excluded.window_start, locked_until = excluded.locked_until,
                 lockouts = excluded.lockouts",
        )?
        .execute(params![
            key.as_str(),
            failures,
            window_start,
            locked_until,
            lockouts
        ])?;
    }
    // Forget counters that can no longer matter (now and then: it scans the table).
    if rand::random::<u8>() == 0 {
        tx.execute(
            "DELETE FROM auth_throttle WHERE locked_until < ?1 AND window_start < ?2",
            params![now_ms, now_ms - policy.window_ms.max(policy.max_lock_ms)],
        )?;
    }
    tx.commit()?;
    Ok(started)
}

/// A success resets the pair's count (and its lock history); the address's stays.
pub(super) fn reset(conn: &Connection, key: &ThrottleKey) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM auth_throttle WHERE key = ?1")?
        .execute([key.as_str()])?;
    Ok(())
}
