//! The line of sign-ins waiting for a place of their (account, e-mail) pair, in this
//! process: the pair's failures and verifications under way reach its threshold
//! (contract §10), so one of those under way must settle first. An LMS making many
//! changes with one admin account is the usual case: its calls wait here in arrival
//! order (first come, first served; a newcomer joins the line behind those already in
//! it) and each settlement lets the first one try again. Waiters also look again now and
//! then without being woken, for places freed by another instance.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

/// How often a waiter looks again without being woken (a place freed by another
/// instance wakes nobody here).
pub const POLL: Duration = Duration::from_millis(250);

/// Per pair, the waiters in order: (turn id, how to wake it).
type Lines = HashMap<String, VecDeque<(u64, oneshot::Sender<()>)>>;

#[derive(Default)]
pub struct PairTurns {
    lines: Mutex<Lines>,
    next: AtomicU64,
}

/// One sign-in's place in its pair's line; leaves the line when dropped.
pub struct Turn<'a> {
    turns: &'a PairTurns,
    pair: String,
    id: u64,
    woken: Option<oneshot::Receiver<()>>,
}

impl PairTurns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether sign-ins of this process wait for `pair`: a newcomer then joins the line
    /// instead of taking a place before them.
    pub fn has_line(&self, pair: &str) -> bool {
        self.lock().get(pair).is_some_and(|line| !line.is_empty())
    }

    /// Joins `pair`'s line: at its end, or at its front (a waiter whose turn came but
    /// found the place taken keeps its precedence).
    pub fn join(&self, pair: &str, front: bool) -> Turn<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut lines = self.lock();
        let line = lines.entry(pair.to_string()).or_default();
        if front {
            line.push_front((id, tx));
        } else {
            line.push_back((id, tx));
        }
        Turn {
            turns: self,
            pair: pair.to_string(),
            id,
            woken: Some(rx),
        }
    }

    /// A place of `pair` was freed: the first live waiter's turn.
    pub fn wake_one(&self, pair: &str) {
        let mut lines = self.lock();
        let Some(line) = lines.get_mut(pair) else {
            return;
        };
        while let Some((_, tx)) = line.pop_front() {
            if tx.send(()).is_ok() {
                break;
            }
        }
        if line.is_empty() {
            lines.remove(pair);
        }
    }
}

impl Turn<'_> {
    /// Waits for this turn, at most [`POLL`]. True when woken: the turn was taken off
    /// the line (rejoin at the front if the place is gone); false when the poll ran out
    /// (still in line).
    pub async fn wait(&mut self) -> bool {
        let Some(woken) = self.woken.as_mut() else {
            return true;
        };
        match tokio::time::timeout(POLL, woken).await {
            Ok(_) => {
                self.woken = None;
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.woken.is_none() {
            return;
        }
        let mut lines = self.turns.lock();
        if let Some(line) = lines.get_mut(&self.pair) {
            line.retain(|(id, _)| *id != self.id);
            if line.is_empty() {
                lines.remove(&self.pair);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_come_in_arrival_order_and_a_dropped_one_is_skipped() {
        let turns = PairTurns::default();
        let mut first = turns.join("p", false);
        let second = turns.join("p", false);
        let mut third = turns.join("p", false);
        assert!(turns.has_line("p"));
        drop(second);
        turns.wake_one("p");
        assert!(first.wait().await);
        turns.wake_one("p");
        assert!(third.wait().await, "the dropped turn was skipped");
        assert!(!turns.has_line("p"));
    }

    #[tokio::test]
    async fn a_turn_rejoining_at_the_front_goes_first() {
        let turns = PairTurns::default();
        let mut back = turns.join("p", false);
        let mut front = turns.join("p", true);
        turns.wake_one("p");
        assert!(front.wait().await);
        assert!(
            !tokio::time::timeout(Duration::from_millis(10), back.wait())
                .await
                .unwrap_or(false)
        );
    }
}
