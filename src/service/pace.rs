//! How long a refused-by-lock call waits before its answer, so that its timing does not
//! tell a client it hit a lock (contract §10: the same fault, and so the same look).
//!
//! A locked call runs no argon2; it is answered after about as long as a real failed
//! sign-in would take *for that client*: the moving average of that client's own recent
//! failures, or, for a client with none, of every failure's time *without* its wait in
//! the hashing queue. A flood cannot skew either: its own long queue waits only slow its
//! own locked answers (as they slow its real failures), and the fair queue lets a quiet
//! client's real failure through about as fast as the no-queue estimate. A ±10 % jitter
//! keeps two answers from lining up exactly. The wait is a timer, not work: it holds no
//! slot, thread or connection from the pool.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

/// Never longer than this, whatever was measured.
const MAX: Duration = Duration::from_secs(2);
/// Clients remembered; past it, the least recently seen half is forgotten.
const MAX_CLIENTS: usize = 4096;

/// Each client's own failures: client → (average, sequence number of its last update),
/// and the last sequence number given.
type ClientPaces = (HashMap<String, (u64, u64)>, u64);

/// The moving averages, in microseconds.
pub struct FailurePace {
    /// Failures' time without their hashing-queue wait, over all clients.
    unqueued: AtomicU64,
    clients: Mutex<ClientPaces>,
}

/// Weight 1/8: the average over every client, many failures a second under load.
fn fold(old: u64, new: u64) -> u64 {
    old - old / 8 + new / 8
}

/// Weight 1/4: a client's own average follows its few failures faster.
fn fold_own(old: u64, new: u64) -> u64 {
    old - old / 4 + new / 4
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.min(MAX).as_micros()).unwrap_or(u64::MAX)
}

impl FailurePace {
    /// Starts from `first`, an estimate of one failure (one argon2 operation).
    pub fn new(first: Duration) -> Self {
        FailurePace {
            unqueued: AtomicU64::new(micros(first)),
            clients: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Folds in one real failure of `client`: `took` from start to answer, of which
    /// `queued` waiting for a hashing slot.
    pub fn observe(&self, client: &str, took: Duration, queued: Duration) {
        let unqueued = micros(took.saturating_sub(queued));
        let _ = self
            .unqueued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(fold(old, unqueued))
            });
        let took = micros(took);
        let mut guard = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let (clients, seq) = &mut *guard;
        *seq += 1;
        let seen = *seq;
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(client) {
            let mut ages: Vec<u64> = clients.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            clients.retain(|_, (_, at)| *at > cutoff);
        }
        let entry = clients.entry(client.to_string()).or_insert((took, seen));
        *entry = (fold_own(entry.0, took), seen);
    }

    /// How long a locked call from `client` should take in all, jitter included.
    pub fn for_client(&self, client: &str) -> Duration {
        let base = {
            let guard = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            guard.0.get(client).map(|(avg, _)| *avg)
        }
        .unwrap_or_else(|| self.unqueued.load(Ordering::Relaxed));
        let jitter = rand::thread_rng().gen_range(0.9..1.1);
        Duration::from_micros(base).mul_f64(jitter).min(MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_slows_only_its_own_locked_answers() {
        let pace = FailurePace::new(Duration::from_millis(30));
        for _ in 0..200 {
            // The flood's failures wait half a second in the queue.
            pace.observe(
                "flood",
                Duration::from_millis(530),
                Duration::from_millis(500),
            );
            pace.observe("probe", Duration::from_millis(35), Duration::from_millis(5));
        }
        let ms = |c: &str| pace.for_client(c).as_secs_f64() * 1000.0;
        assert!((450.0..=600.0).contains(&ms("flood")), "{}", ms("flood"));
        assert!((25.0..=45.0).contains(&ms("probe")), "{}", ms("probe"));
        // A client never seen gets the failures' time without the queue.
        assert!((25.0..=40.0).contains(&ms("new")), "{}", ms("new"));
    }

    #[test]
    fn the_client_table_stays_bounded() {
        let pace = FailurePace::new(Duration::from_millis(30));
        for i in 0..(3 * MAX_CLIENTS) {
            pace.observe(&format!("c{i}"), Duration::from_millis(30), Duration::ZERO);
        }
        let guard = pace.clients.lock().unwrap();
        assert!(guard.0.len() <= MAX_CLIENTS);
        assert!(guard.0.contains_key(&format!("c{}", 3 * MAX_CLIENTS - 1)));
    }
}
