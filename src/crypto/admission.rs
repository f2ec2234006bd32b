//! Admission to the argon2 pool: a bounded number of slots (one per core), a bounded
//! queue, and fairness between client addresses.
//!
//! A request takes one slot for all of its argon2 work (so it is never shed halfway).
//! It is shed *at admission* — at once, never after waiting — when the queue could not
//! hand it a slot within `max_wait`: the wait is estimated from its place in the queue
//! and how long slots are held (a moving average of real holds, so a host slowed down by
//! other load admits fewer). A request let into the queue is served: it waits for its
//! slot however long that takes (a bound of [`SAFETY_WAITS`] × `max_wait` only guards
//! against a stuck pool). A fixed wait bound shed requests of a normal burst that had
//! already waited most of it, when the host happened to be slow.
//! When a slot frees, it goes to the waiter whose address holds the fewest slots; among
//! those, to the address with the fewest requests waiting, then the one that held slots
//! least in the last seconds, then first come. So one address flooding the service
//! cannot take more than its share while others wait, and the estimate follows that
//! order: a flooder's next request is shed while a quiet client's is admitted. Without
//! the tie-breaks, an address whose slot had just freed tied with a quiet one and,
//! queued earlier, won every time: a learner's 8 connections held an admin's 2 to one
//! slot (28 % of its rate alone).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A request let into the queue is shed only after this many `max_wait`s (a stuck pool).
pub const SAFETY_WAITS: u32 = 20;

use tokio::sync::oneshot;

/// Why a slot was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue was full: refused without waiting.
    QueueFull,
    /// The queue would not reach this request within the wait bound: refused without
    /// waiting.
    WouldWaitTooLong,
    /// No slot became free within the safety bound (a stuck pool).
    Timeout,
}

struct Waiter {
    id: u64,
    client: Arc<str>,
    grant: oneshot::Sender<()>,
}

/// How fast an address's slot time is forgotten: halved every this long.
const USAGE_HALF_LIFE: Duration = Duration::from_secs(1);

/// Slot time an address used lately, decayed: (seconds, when last updated).
#[derive(Clone, Copy)]
struct Usage {
    secs: f64,
    at: Instant,
}

impl Usage {
    fn now(&self, now: Instant) -> f64 {
        let halvings =
            now.saturating_duration_since(self.at).as_secs_f64() / USAGE_HALF_LIFE.as_secs_f64();
        self.secs * 0.5f64.powf(halvings)
    }
}

#[derive(Default)]
struct State {
    free: usize,
    slots: usize,
    held: HashMap<Arc<str>, usize>,
    usage: HashMap<Arc<str>, Usage>,
    waiting: VecDeque<Waiter>,
    next_id: u64,
    /// Moving average of how long a slot is held (weight 1/8 per release).
    hold: Duration,
}

impl State {
    /// How long a new request from `client` would wait for a slot: the waiters the
    /// fewest-held-first order puts before it, times the hold time, over the slots.
    /// A waiter of address x goes before it if x's level then (slots held plus the
    /// waiters of x before that one) is at most the new request's.
    fn estimated_wait(&self, client: &str) -> Duration {
        if self.free > 0 && self.waiting.is_empty() {
            return Duration::ZERO;
        }
        let mut waiting: HashMap<&str, usize> = HashMap::new();
        for w in &self.waiting {
            *waiting.entry(&w.client).or_insert(0) += 1;
        }
        let held = |c: &str| self.held.get(c).copied().unwrap_or(0);
        let own_waiting = waiting.get(client).copied().unwrap_or(0);
        let level = held(client) + own_waiting;
        let ahead: usize = waiting
            .iter()
            .map(|(c, n)| {
                if *c == client {
                    *n
                } else {
                    (level + 1).saturating_sub(held(c)).min(*n)
                }
            })
            .sum();
        let turns = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
        self.hold.saturating_mul(turns) / u32::try_from(self.slots.max(1)).unwrap_or(1)
    }

    /// Hands free slots to waiters: fewest-held address first; among those, the one
    /// with fewest requests waiting (it asks least), then the one that used slots least
    /// lately, then first come.
    fn dispatch(&mut self) {
        let now = Instant::now();
        while self.free > 0 {
            let mut waiting: HashMap<&str, usize> = HashMap::new();
            for w in &self.waiting {
                *waiting.entry(&w.client).or_insert(0) += 1;
            }
            let key = |(i, w): &(usize, &Waiter)| {
                let held = self.held.get(&w.client).copied().unwrap_or(0);
                let asks = waiting.get(w.client.as_ref()).copied().unwrap_or(0);
                let used = self.usage.get(&w.client).map_or(0.0, |u| u.now(now));
                (held, asks, used, *i)
            };
            let Some(index) = self
                .waiting
                .iter()
                .enumerate()
                .min_by(|a, b| {
                    let (a, b) = (key(a), key(b));
                    (a.0, a.1)
                        .cmp(&(b.0, b.1))
                        .then(a.2.total_cmp(&b.2))
                        .then(a.3.cmp(&b.3))
                })
                .map(|(i, _)| i)
            else {
                return;
            };
            let Some(waiter) = self.waiting.remove(index) else {
                return;
            };
            // A waiter whose request was cancelled has dropped its receiver: skip it.
            if waiter.grant.send(()).is_ok() {
                self.free -= 1;
                *self.held.entry(waiter.client).or_insert(0) += 1;
            }
        }
    }

    /// The address a full queue would evict a waiter of to make room for `client`: the
    /// one with the most waiters, if it has more than `client` has plus one.
    fn eviction_for(&self, client: &str) -> Option<Arc<str>> {
        let mut counts: HashMap<&Arc<str>, usize> = HashMap::new();
        for w in &self.waiting {
            *counts.entry(&w.client).or_insert(0) += 1;
        }
        let own = counts
            .iter()
            .find(|(c, _)| c.as_ref() == client)
            .map_or(0, |(_, n)| *n);
        let (biggest, n) = counts.into_iter().max_by_key(|(_, n)| *n)?;
        (n > own + 1).then(|| biggest.clone())
    }

    /// Whether a request from `client` would be let in now: a free slot, or a place in
    /// the queue (free, or of a bigger address to evict) it would be served from within
    /// `max_wait`.
    fn has_room(&self, client: &str, max_queue: usize, max_wait: Duration) -> bool {
        (self.free > 0 && self.waiting.is_empty())
            || ((self.waiting.len() < max_queue || self.eviction_for(client).is_some())
                && self.estimated_wait(client) <= max_wait)
    }

    /// When the queue is full, makes room for `client` by refusing the newest waiter of
    /// the address with the most waiters, if that address has more than `client` has:
    /// a flood from one host cannot keep everyone else from even waiting.
    fn evict_for(&mut self, client: &Arc<str>) -> bool {
        let Some(biggest) = self.eviction_for(client) else {
            return false;
        };
        match self.waiting.iter().rposition(|w| w.client == biggest) {
            // Dropping its grant sender tells the waiter it was refused.
            Some(i) => self.waiting.remove(i).is_some(),
            None => false,
        }
    }

    fn release(&mut self, client: &Arc<str>, held_for: Duration) {
        self.hold = self.hold - self.hold / 8 + held_for / 8;
        let now = Instant::now();
        let used = self.usage.get(client).map_or(0.0, |u| u.now(now));
        self.usage.insert(
            client.clone(),
            Usage {
                secs: used + held_for.as_secs_f64(),
                at: now,
            },
        );
        if self.usage.len() > 4096 {
            // Forget addresses whose use has decayed to nothing.
            self.usage.retain(|_, u| u.now(now) > 1e-3);
        }
        if let Some(n) = self.held.get_mut(client) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(client);
            }
        }
        self.free += 1;
        self.dispatch();
    }
}

/// A request's place in the queue while it waits. A request can be cancelled while it
/// waits (actix drops the handler when its client goes away): then the place leaves the
/// queue, so it no longer takes room there, and a slot granted to it in the meantime (sent,
/// not yet received) is handed on instead of being lost to the pool for good.
struct Place {
    admission: Arc<Admission>,
    client: Arc<str>,
    id: u64,
    granted: oneshot::Receiver<()>,
    /// The wait's outcome has been taken (by `acquire` or by leaving).
    settled: bool,
}

/// Where a place that left without receiving its grant stood.
enum Left {
    /// Still in the queue: taken out.
    Queue,
    /// Granted just before it left: the slot was counted as its own.
    Granted,
    /// Evicted from a full queue (its grant sender was dropped).
    Evicted,
}

impl Place {
    /// Leaves the queue, under the state lock. Keeping the receiver until here is what
    /// tells a grant sent just before from an eviction.
    fn leave(&mut self, state: &mut State) -> Left {
        self.settled = true;
        if let Some(i) = state.waiting.iter().position(|w| w.id == self.id) {
            state.waiting.remove(i);
            Left::Queue
        } else if self.granted.try_recv().is_ok() {
            Left::Granted
        } else {
            Left::Evicted
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let admission = self.admission.clone();
        let mut state = admission.lock();
        if let Left::Granted = self.leave(&mut state) {
            state.release(&self.client, Duration::ZERO);
        }
    }
}

/// The slots of the argon2 pool.
pub struct Admission {
    state: Mutex<State>,
    max_queue: usize,
    max_wait: Duration,
}

/// A held slot; released (and handed on) when dropped.
pub struct Slot {
    admission: Arc<Admission>,
    client: Arc<str>,
    since: Instant,
}

impl Slot {
    /// Requests of this slot's address that hold a slot or wait for one.
    pub fn outstanding(&self) -> usize {
        let state = self.admission.lock();
        let held = state.held.get(&self.client).copied().unwrap_or(0);
        held + state
            .waiting
            .iter()
            .filter(|w| w.client == self.client)
            .count()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission
            .lock()
            .release(&self.client, self.since.elapsed());
    }
}

impl Admission {
    /// `slots` slots, up to `max_queue` waiters, admitted when the estimated wait is at
    /// most `max_wait`; `first_hold` is the hold time assumed until slots have been held.
    pub fn new(
        slots: usize,
        max_queue: usize,
        max_wait: Duration,
        first_hold: Duration,
    ) -> Arc<Self> {
        Arc::new(Admission {
            state: Mutex::new(State {
                free: slots.max(1),
                slots: slots.max(1),
                hold: first_hold,
                ..State::default()
            }),
            max_queue,
            max_wait,
        })
    }

    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a slot for `client` (a client address).
    pub async fn acquire(self: &Arc<Self>, client: &str) -> Result<Slot, Refusal> {
        let client: Arc<str> = Arc::from(client);
        let (id, granted) = {
            let mut state = self.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                *state.held.entry(client.clone()).or_insert(0) += 1;
                return Ok(Slot {
                    admission: self.clone(),
                    client,
                    since: Instant::now(),
                });
            }
            if state.estimated_wait(&client) > self.max_wait {
                return Err(Refusal::WouldWaitTooLong);
            }
            if state.waiting.len() >= self.max_queue && !state.evict_for(&client) {
                return Err(Refusal::QueueFull);
            }
            let (grant, granted) = oneshot::channel();
            let id = state.next_id;
            state.next_id += 1;
            state.waiting.push_back(Waiter {
                id,
                client: client.clone(),
                grant,
            });
            (id, granted)
        };
        let mut place = Place {
            admission: self.clone(),
            client: client.clone(),
            id,
            granted,
            settled: false,
        };
        let outcome = tokio::time::timeout(self.max_wait * SAFETY_WAITS, &mut place.granted).await;
        let won = match outcome {
            // Granted, or evicted from a full queue to make room for another address.
            Ok(granted) => {
                place.settled = true;
                granted.is_ok()
            }
            Err(_elapsed) => match place.leave(&mut self.lock()) {
                Left::Queue => return Err(Refusal::Timeout),
                Left::Granted => true,
                Left::Evicted => false,
            },
        };
        if !won {
            return Err(Refusal::QueueFull);
        }
        Ok(Slot {
            admission: self.clone(),
            client,
            since: Instant::now(),
        })
    }

    /// Whether [`Admission::acquire`] for `client` would get a slot or a place in the
    /// queue now. Lets a request that would be shed anyway be refused before it costs a
    /// database round trip; `acquire` still decides.
    pub fn has_room(&self, client: &str) -> bool {
        self.lock().has_room(client, self.max_queue, self.max_wait)
    }

    /// (free slots, waiting requests), for tests and metrics.
    pub fn load(&self) -> (usize, usize) {
        let state = self.lock();
        (state.free, state.waiting.len())
    }

    /// (slots, slots held, waiting requests), for `/metrics`.
    pub fn occupancy(&self) -> (usize, usize, usize) {
        let state = self.lock();
        (state.slots, state.slots - state.free, state.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_micros(1);

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_waiter_is_served_however_long_it_takes() {
        let admission = Admission::new(1, 1, Duration::from_millis(50), QUICK);
        let held = admission.acquire("a").await.unwrap();
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.acquire("b").await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!admission.has_room("c"));
        assert_eq!(admission.acquire("c").await.err(), Some(Refusal::QueueFull));
        // Held for three times the wait bound: the waiter let in is still served.
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(admission.load(), (1, 0));
    }

    /// Shed at admission, not after waiting: with slots held for a second and a bound of
    /// 100 ms, the next request is refused at once, while there is still room in the queue.
    #[tokio::test]
    async fn a_request_the_queue_cannot_serve_in_time_is_refused_at_once() {
        let admission = Admission::new(1, 8, Duration::from_millis(100), Duration::from_secs(1));
        let _held = admission.acquire("a").await.unwrap();
        assert!(!admission.has_room("b"));
        let started = std::time::Instant::now();
        assert_eq!(
            admission.acquire("b").await.err(),
            Some(Refusal::WouldWaitTooLong)
        );
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(admission.load(), (0, 0));
    }

    /// The estimate follows the fair order: behind a flooder's five waiters, a quiet
    /// client is next in line, and only the flooder's sixth request would wait too long.
    #[tokio::test]
    async fn the_estimate_puts_a_quiet_client_before_a_flood() {
        let admission = Admission::new(
            1,
            16,
            Duration::from_millis(350),
            Duration::from_millis(100),
        );
        let _held = admission.acquire("flood").await.unwrap();
        let mut waits = Vec::new();
        for _ in 0..3 {
            let mut wait = Box::pin(admission.acquire("flood"));
            enqueue(&mut wait).await;
            waits.push(wait);
        }
        assert_eq!(admission.load(), (0, 3));
        // The flood's fourth waiter would be the fourth in line: 400 ms > 350 ms.
        assert!(!admission.has_room("flood"));
        // A quiet client holds none: it goes before every flood waiter, 100 ms.
        assert!(admission.has_room("quiet"));
    }

    /// Polls `wait` once, so that it takes its place in the queue, and leaves it pending.
    async fn enqueue<F: std::future::Future + Unpin>(wait: &mut F) {
        tokio::select! {
            biased;
            _ = wait => panic!("the wait ended at once"),
            () = std::future::ready(()) => {}
        }
    }

    /// A request cancelled while it waits (its client went away) leaves the queue, and a
    /// slot granted to it before it could take it goes back to the pool. Without that,
    /// each such cancellation took a slot for good.
    #[tokio::test]
    async fn a_cancelled_wait_leaves_the_queue_and_returns_a_granted_slot() {
        let admission = Admission::new(1, 4, Duration::from_secs(5), QUICK);
        let held = admission.acquire("a").await.unwrap();
        let mut cancelled = Box::pin(admission.acquire("b"));
        enqueue(&mut cancelled).await;
        assert_eq!(admission.load(), (0, 1));
        drop(cancelled);
        assert_eq!(
            admission.load(),
            (0, 0),
            "the cancelled wait left the queue"
        );

        let mut granted_then_cancelled = Box::pin(admission.acquire("c"));
        enqueue(&mut granted_then_cancelled).await;
        drop(held); // the slot is sent to "c", which never takes it
        assert_eq!(admission.load(), (0, 0));
        drop(granted_then_cancelled);
        assert_eq!(admission.load(), (1, 0), "the granted slot went back");
        let again = admission.acquire("d").await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn one_address_cannot_fill_the_whole_queue() {
        let admission = Admission::new(1, 3, Duration::from_millis(200), QUICK);
        let _held = admission.acquire("flood").await.unwrap();
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let admission = admission.clone();
            waiting.push(tokio::spawn(async move {
                admission.acquire("flood").await.map(|_| ())
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!admission.has_room("flood"));
        assert!(
            admission.has_room("user"),
            "room is made for another address"
        );
        assert_eq!(
            admission.acquire("flood").await.err(),
            Some(Refusal::QueueFull)
        );
        let other = tokio::spawn({
            let admission = admission.clone();
            async move { admission.acquire("user").await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            admission.load().1,
            3,
            "the other address still gets a place in the queue"
        );
        drop(_held);
        assert_eq!(other.await.unwrap(), Ok(()), "and is served in its turn");
        for w in waiting {
            let _ = w.await;
        }
    }

    /// Waits that run out just as slots are handed on, over and over: never more slots
    /// held than exist, and every slot back at the end. A grant that raced a timeout
    /// used to be returned as a slot nobody had counted (one more holder than slots, and
    /// `free` above the pool size afterwards).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timeouts_racing_grants_never_mint_a_slot() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A safety bound of 300 µs: waits run out while slots are handed on.
        let admission = Admission::new(2, 64, Duration::from_micros(15), QUICK);
        let live = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for t in 0..32 {
            let (admission, live, most) = (admission.clone(), live.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..600 {
                    if let Ok(slot) = admission.acquire(["a", "b", "c"][t % 3]).await {
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        live.fetch_sub(1, Ordering::SeqCst);
                        drop(slot);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "{} held at once",
            most.load(Ordering::SeqCst)
        );
        assert_eq!(admission.load(), (2, 0));
    }

    /// Issue 9: with slots held one each, a freed slot went to whichever address had
    /// queued first; an attacker's 8 connections, always queued, won every tie against
    /// an admin's 2. Among equals the address asking for less goes first.
    #[tokio::test]
    async fn a_tie_goes_to_the_address_asking_for_less() {
        let admission = Admission::new(3, 16, Duration::from_secs(5), QUICK);
        let attacker = admission.acquire("attacker").await.unwrap();
        let _attacker = admission.acquire("attacker").await.unwrap();
        let _admin = admission.acquire("admin").await.unwrap();
        let mut waits = Vec::new();
        for _ in 0..3 {
            let mut wait = Box::pin(admission.acquire("attacker"));
            enqueue(&mut wait).await;
            waits.push(wait);
        }
        let mut admin_wait = Box::pin(admission.acquire("admin"));
        enqueue(&mut admin_wait).await;
        // One of the attacker's slots frees: both then hold one, and the admin asks for
        // less.
        drop(attacker);
        let granted = tokio::time::timeout(Duration::from_millis(100), &mut admin_wait).await;
        assert!(matches!(granted, Ok(Ok(_))), "the admin got the slot");
        assert_eq!(admission.load(), (0, 3));
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_address_holding_fewest() {
        let admission = Admission::new(2, 16, Duration::from_secs(5), QUICK);
        let flood1 = admission.acquire("flood").await.unwrap();
        let flood2 = admission.acquire("flood").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, client) in ["flood", "flood", "user"].into_iter().enumerate() {
            let (admission, order) = (admission.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5 * i as u64)).await;
                let slot = admission.acquire(client).await.unwrap();
                order.lock().unwrap().push(client);
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(slot);
            }));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(flood1); // "user" holds none, queued last, and still goes first
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(flood2);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(order.lock().unwrap()[0], "user");
        assert_eq!(admission.load(), (2, 0));
    }
}
