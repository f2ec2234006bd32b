//! The brute-force lock of contract §10 as a pure state machine: one [`Softlock`] per
//! counter (an (account, e-mail) pair or a client address), the current time passed in,
//! so every rule is tested here without storage or sleeps. `store` only persists it.
//!
//! Two promises of §10's "Precisions" are kept here:
//! - **Any window.** Failures are counted in sub-windows of 1/[`SUB_WINDOWS`] of the
//!   window, and every sub-window that overlaps the last `window` is counted: the count
//!   covers a stretch at most one sub-window longer than the window, never shorter, so no
//!   window-length interval ever holds more than the threshold (a fixed window let
//!   threshold − 1 failures through just before its end and as many again just after).
//! - **Whatever the concurrency.** An attempt is *reserved* before its password is
//!   verified, and a reservation counts like a failure until it is settled: however many
//!   calls for one pair arrive at once, on however many instances sharing the database,
//!   at most `threshold` verifications are ever under way or failed within a window.

/// How many sub-windows a window is counted in.
pub const SUB_WINDOWS: i64 = 60;

/// A reservation not settled within this long is dropped: the process that made it died
/// mid-verification (a live one settles within a request's lifetime, seconds).
pub const RESERVATION_TTL_MS: i64 = 120_000;

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

impl ThrottlePolicy {
    /// The rule of a pair counter.
    pub fn pair_rule(&self) -> LockRule {
        self.rule(self.pair_threshold)
    }

    /// The rule of an address counter.
    pub fn address_rule(&self) -> LockRule {
        self.rule(self.address_threshold)
    }

    fn rule(&self, threshold: u32) -> LockRule {
        LockRule {
            threshold: threshold.max(1),
            window_ms: self.window_ms.max(1),
            lock_ms: self.lock_ms.max(1),
            max_lock_ms: self.max_lock_ms.max(1),
        }
    }
}

/// The rule one counter follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRule {
    pub threshold: u32,
    pub window_ms: i64,
    pub lock_ms: i64,
    pub max_lock_ms: i64,
}

impl LockRule {
    /// The length of one sub-window.
    fn sub_window_ms(&self) -> i64 {
        (self.window_ms + SUB_WINDOWS - 1) / SUB_WINDOWS
    }

    /// The `n`th lock (0-based): `lock_ms` doubled `n` times, at most `max_lock_ms`.
    fn lock_length(&self, n: u32) -> i64 {
        let doubling = 1i64.checked_shl(n.min(40)).unwrap_or(i64::MAX);
        self.lock_ms.saturating_mul(doubling).min(self.max_lock_ms)
    }
}

/// Why an attempt may not be verified now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The counter is locked until this time (Unix ms).
    Locked { until: i64 },
    /// Failures and attempts under way already reach the threshold: the attempt must
    /// wait for one of them to settle (a success frees the place; a failure may lock).
    Full,
}

/// One counter's state. Times are Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Softlock {
    /// Failures per sub-window, as (sub-window start, count), oldest first.
    pub failures: Vec<(i64, u32)>,
    /// Attempts being verified now: (reservation id, reserved at).
    pub pending: Vec<(u64, i64)>,
    /// 0 when not locked.
    pub locked_until: i64,
    /// Locks so far, for the doubling; forgotten on a success or once the counter has
    /// been quiet for a window and a longest lock.
    pub lockouts: u32,
}

impl Softlock {
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until > now
    }

    /// Failures counted in the window ending now.
    pub fn failures_in_window(&self, now: i64, rule: &LockRule) -> u32 {
        let width = rule.sub_window_ms();
        self.failures
            .iter()
            .filter(|(start, _)| start + width > now - rule.window_ms)
            .fold(0u32, |sum, (_, n)| sum.saturating_add(*n))
    }

    /// Drops what can no longer count: sub-windows wholly before the window, and
    /// reservations older than [`RESERVATION_TTL_MS`].
    fn prune(&mut self, now: i64, rule: &LockRule) {
        let width = rule.sub_window_ms();
        self.failures
            .retain(|(start, _)| start + width > now - rule.window_ms);
        self.pending
            .retain(|(_, at)| now.saturating_sub(*at) < RESERVATION_TTL_MS);
    }

    /// Reserves a verification for attempt `id`, unless the counter is locked or its
    /// failures and reservations already reach the threshold.
    pub fn reserve(&mut self, id: u64, now: i64, rule: &LockRule) -> Result<(), Refusal> {
        self.prune(now, rule);
        if self.is_locked(now) {
            return Err(Refusal::Locked {
                until: self.locked_until,
            });
        }
        let in_use = self
            .failures_in_window(now, rule)
            .saturating_add(u32::try_from(self.pending.len()).unwrap_or(u32::MAX));
        if in_use >= rule.threshold {
            return Err(Refusal::Full);
        }
        self.pending.push((id, now));
        Ok(())
    }

    fn settle(&mut self, id: u64) {
        self.pending.retain(|(pending, _)| *pending != id);
    }

    /// Attempt `id` was verified and failed; returns the lock's end if it started one.
    pub fn fail(&mut self, id: u64, now: i64, rule: &LockRule) -> Option<i64> {
        self.settle(id);
        self.count(1, now, rule)
    }

    /// Attempt `id` was verified and succeeded: the failures and the lock history are
    /// forgotten (contract §10: a success resets the pair's count).
    pub fn succeed(&mut self, id: u64) {
        self.settle(id);
        self.failures.clear();
        self.locked_until = 0;
        self.lockouts = 0;
    }

    /// Attempt `id` was never verified (shed, or its client went away): its place is free.
    pub fn release(&mut self, id: u64) {
        self.settle(id);
    }

    /// Counts `n` failures that needed no reservation (an address's failed sign-ins and
    /// refused calls); returns the lock's end if they started one. Failures during a lock
    /// are not counted: the lock already refuses everything.
    pub fn count(&mut self, n: u32, now: i64, rule: &LockRule) -> Option<i64> {
        self.prune(now, rule);
        if self.is_locked(now) || n == 0 {
            return None;
        }
        let width = rule.sub_window_ms();
        let start = now.div_euclid(width) * width;
        match self.failures.last_mut() {
            Some((last, count)) if *last == start => *count = count.saturating_add(n),
            _ => self.failures.push((start, n)),
        }
        if self.failures_in_window(now, rule) < rule.threshold {
            return None;
        }
        self.locked_until = now.saturating_add(rule.lock_length(self.lockouts));
        self.lockouts = self.lockouts.saturating_add(1);
        self.failures.clear();
        Some(self.locked_until)
    }

    /// Lifts a lock and forgets the failures (an operator's `unlock`); returns the end of
    /// the lock that was lifted, if there was one.
    pub fn unlock(&mut self, now: i64) -> Option<i64> {
        let was = self.is_locked(now).then_some(self.locked_until);
        self.failures.clear();
        self.locked_until = 0;
        self.lockouts = 0;
        was
    }

    /// Nothing worth keeping: no lock, no failure in the window, nothing under way, and
    /// no lock for a window plus a longest lock (so the doubling has run out).
    pub fn is_forgettable(&self, now: i64, rule: &LockRule) -> bool {
        self.failures_in_window(now, rule) == 0
            && self.pending.is_empty()
            && !self.is_locked(now)
            && (self.lockouts == 0
                || now.saturating_sub(self.locked_until)
                    > rule.window_ms.saturating_add(rule.max_lock_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn rule(threshold: u32) -> LockRule {
        ThrottlePolicy {
            pair_threshold: threshold,
            ..ThrottlePolicy::default()
        }
        .pair_rule()
    }

    /// Reserves and fails attempt `id` at `now`.
    fn failed(lock: &mut Softlock, id: u64, now: i64, rule: &LockRule) -> Option<i64> {
        lock.reserve(id, now, rule).expect("reserved");
        lock.fail(id, now, rule)
    }

    #[test]
    fn the_tenth_failure_locks_for_the_lock_length() {
        let rule = rule(10);
        let mut lock = Softlock::default();
        for id in 0..9 {
            assert_eq!(failed(&mut lock, id, 1_000 + id as i64, &rule), None);
        }
        assert_eq!(failed(&mut lock, 9, 2_000, &rule), Some(2_000 + 15 * MIN));
        assert_eq!(
            lock.reserve(10, 2_001, &rule),
            Err(Refusal::Locked {
                until: 2_000 + 15 * MIN
            })
        );
        assert!(lock.reserve(10, 2_000 + 15 * MIN, &rule).is_ok());
    }

    #[test]
    fn attempts_under_way_count_against_the_threshold_until_settled() {
        let rule = rule(10);
        let mut lock = Softlock::default();
        for id in 0..10 {
            lock.reserve(id, 0, &rule).expect("reserved");
        }
        assert_eq!(lock.reserve(10, 0, &rule), Err(Refusal::Full));
        // One of them was the right password: its place frees, the others still count.
        lock.succeed(3);
        assert!(lock.reserve(10, 1, &rule).is_ok());
        assert_eq!(lock.reserve(11, 1, &rule), Err(Refusal::Full));
        // All the others fail: the lock starts with the tenth failure in the window.
        let mut started = None;
        for id in [0, 1, 2, 4, 5, 6, 7, 8, 9, 10] {
            started = started.or(lock.fail(id, 2, &rule));
        }
        assert_eq!(started, Some(2 + 15 * MIN));
    }

    /// 30 attempts at once: 10 verified, 20 refused, and the right password is not among
    /// the verified ones: the pair locks and nobody got an 11th guess.
    #[test]
    fn a_burst_gets_no_more_verifications_than_the_threshold() {
        let rule = rule(10);
        let mut lock = Softlock::default();
        let admitted: Vec<u64> = (0..30)
            .filter(|id| lock.reserve(*id, 5, &rule).is_ok())
            .collect();
        assert_eq!(admitted.len(), 10);
        for id in admitted {
            lock.fail(id, 6, &rule);
        }
        assert!(lock.is_locked(7));
    }

    #[test]
    fn a_released_reservation_frees_its_place_without_counting() {
        let rule = rule(2);
        let mut lock = Softlock::default();
        lock.reserve(1, 0, &rule).expect("reserved");
        lock.reserve(2, 0, &rule).expect("reserved");
        assert_eq!(lock.reserve(3, 0, &rule), Err(Refusal::Full));
        lock.release(1);
        lock.release(2);
        assert_eq!(lock.failures_in_window(0, &rule), 0);
        assert!(lock.reserve(3, 0, &rule).is_ok());
    }

    #[test]
    fn a_reservation_of_a_dead_process_expires() {
        let rule = rule(1);
        let mut lock = Softlock::default();
        lock.reserve(1, 0, &rule).expect("reserved");
        assert_eq!(
            lock.reserve(2, RESERVATION_TTL_MS - 1, &rule),
            Err(Refusal::Full)
        );
        assert!(lock.reserve(2, RESERVATION_TTL_MS, &rule).is_ok());
    }

    /// The finding of issue 9: 1 failure at t = 0, 8 just before a fixed window ended and
    /// 9 just after made 17 failures in 1.6 s without a lock. Counted over any window,
    /// the 10th of them locks.
    #[test]
    fn failures_either_side_of_a_window_boundary_still_lock() {
        let rule = rule(10);
        let mut lock = Softlock::default();
        let window = rule.window_ms;
        let mut id = 0..;
        let mut next = || id.next().unwrap_or_default();
        assert_eq!(failed(&mut lock, next(), 0, &rule), None);
        for i in 0..8 {
            assert_eq!(failed(&mut lock, next(), window - 800 + i, &rule), None);
        }
        assert_eq!(
            failed(&mut lock, next(), window + 800, &rule),
            Some(window + 800 + 15 * MIN)
        );
    }

    /// Over a long run of failures at random times, no window-length interval ever
    /// holds more than the threshold of failures that were let through.
    #[test]
    fn no_window_holds_more_than_the_threshold() {
        use rand::{Rng, SeedableRng};
        // A lock as long as the window (the default) and no doubling, so the run sees many
        // locks: what was counted before a lock has left the window when it ends.
        let rule = LockRule {
            max_lock_ms: rule(10).lock_ms,
            ..rule(10)
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut lock = Softlock::default();
        let mut verified = Vec::new();
        let mut now = 0i64;
        for id in 0..20_000u64 {
            now += rng.gen_range(0..40_000);
            if lock.reserve(id, now, &rule).is_ok() {
                verified.push(now);
                lock.fail(id, now, &rule);
            }
        }
        assert!(verified.len() > 500, "the run exercised the lock");
        for (i, start) in verified.iter().enumerate() {
            let within = verified[i..]
                .iter()
                .take_while(|t| **t < start + rule.window_ms)
                .count();
            assert!(within <= 10, "{within} failures in the window from {start}");
        }
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let rule = rule(3);
        let mut lock = Softlock::default();
        failed(&mut lock, 1, 0, &rule);
        failed(&mut lock, 2, 0, &rule);
        // One sub-window past the window, both have left it.
        let later = rule.window_ms + rule.sub_window_ms();
        assert_eq!(lock.failures_in_window(later, &rule), 0);
        assert_eq!(failed(&mut lock, 3, later, &rule), None);
    }

    #[test]
    fn each_repeated_lock_doubles_up_to_the_longest() {
        let rule = LockRule {
            threshold: 1,
            window_ms: 1_000,
            lock_ms: 400,
            max_lock_ms: 1_000,
        };
        let mut lock = Softlock::default();
        let mut now = 0;
        let mut lengths = Vec::new();
        for id in 0..4 {
            let until = failed(&mut lock, id, now, &rule).expect("locked");
            lengths.push(until - now);
            now = until;
        }
        assert_eq!(lengths, vec![400, 800, 1_000, 1_000]);
    }

    #[test]
    fn a_success_resets_failures_and_the_doubling() {
        let rule = rule(2);
        let mut lock = Softlock::default();
        failed(&mut lock, 1, 0, &rule);
        let until = failed(&mut lock, 2, 0, &rule).expect("locked");
        lock.reserve(3, until, &rule).expect("reserved");
        lock.succeed(3);
        assert_eq!(lock, Softlock::default());
    }

    #[test]
    fn counted_failures_lock_without_reservations_and_not_while_locked() {
        let rule = rule(100);
        let mut lock = Softlock::default();
        assert_eq!(lock.count(99, 0, &rule), None);
        assert_eq!(lock.count(1, 1, &rule), Some(1 + 15 * MIN));
        assert_eq!(lock.count(500, 2, &rule), None);
        assert_eq!(lock.failures_in_window(2, &rule), 0);
    }

    #[test]
    fn unlock_lifts_the_lock_and_reports_it() {
        let rule = rule(1);
        let mut lock = Softlock::default();
        let until = failed(&mut lock, 1, 0, &rule).expect("locked");
        assert_eq!(lock.unlock(5), Some(until));
        assert!(lock.reserve(2, 6, &rule).is_ok());
        assert_eq!(lock.unlock(6), None);
    }

    #[test]
    fn a_quiet_counter_is_forgettable_once_its_doubling_ran_out() {
        let rule = rule(1);
        let mut lock = Softlock::default();
        let until = failed(&mut lock, 1, 0, &rule).expect("locked");
        assert!(!lock.is_forgettable(until, &rule));
        assert!(lock.is_forgettable(until + rule.window_ms + rule.max_lock_ms + 1, &rule));
    }
}
