//! The background writer of the audit trail: a dedicated thread that commits failed
//! attempts' rows in batches, folds calls refused before authentication into counted
//! rows, counts the parameter faults among them against their client addresses, and
//! prunes what is older than the retention.
//!
//! The writer is the same for every backend; what it writes goes through the backend's
//! `write_audit_rows`, `write_refusals` and `prune_batch` (its SQL).
//!
//! Successful changes do not come here: their audit row is written in the change's own
//! transaction. The channel is bounded; when it is full, senders wait (nothing is
//! dropped).
//!
//! Calls refused before any password was checked (wrong parameters, an unsupported
//! token, shed, locked out, not a SOAP envelope…) cost nothing to send, so a flood of
//! them wrote a row each: 81 MB of audit in 10 s from one client (issue 9). They are
//! audited in aggregate instead — one row per client address, outcome and minute, with
//! a count — and every authenticated attempt keeps its own row.

use std::collections::HashMap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use log::{error, info, warn};
use tokio::sync::mpsc;

use super::{LockCache, Store, StoreError};
use crate::domain::Outcome;
use crate::domain::lockout::ThrottlePolicy;
use crate::domain::records::{AuditRecord, RefusedCall, ThrottleKey};

/// Rows waiting to be written before senders have to wait.
const QUEUE: usize = 8192;
/// Rows committed in one transaction at most.
const BATCH: usize = 512;
/// How long the writer lets rows gather after the first one of a batch arrives. Under
/// a flood of refused calls this turns a commit every few rows (each commit appends WAL
/// frames: ~13 % of the server's CPU in a WrongParameters flood) into one per hundred;
/// at low rates it only delays rows that nobody is waiting for by this much.
const LINGER: Duration = Duration::from_millis(2);
/// Attempts to write one batch before giving up on it.
const RETRIES: u32 = 10;
/// How often the refused calls gathered so far are written (and counted).
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Rows deleted per transaction when pruning, so requests' writes interleave.
const PRUNE_BATCH: usize = 5000;

/// What the writer does besides writing rows.
#[derive(Debug, Clone)]
pub struct Upkeep {
    /// The rules refused calls are counted under.
    pub policy: ThrottlePolicy,
    /// Audit rows and acknowledged events older than this are deleted; `None` keeps all.
    pub retention: Option<Duration>,
    /// Where the counted addresses' locks are noted for the service.
    pub locks: std::sync::Arc<LockCache>,
}

impl Default for Upkeep {
    fn default() -> Self {
        Upkeep {
            policy: ThrottlePolicy::default(),
            retention: Some(DEFAULT_RETENTION),
            locks: Default::default(),
        }
    }
}

/// 400 days: a year of audit plus a margin (PCI DSS keeps a year).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);

/// What the writer thread receives.
enum Message {
    Row(Box<AuditRecord>),
    Refused(Box<RefusedCall>),
    /// Once a second, so gathered refusals are written while the rest is quiet.
    Tick,
    /// Write what is queued, then stop.
    Stop,
}

/// Sends audit rows to the writer thread.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Message>,
}

/// Owns the writer thread; [`AuditWriter::finish`] flushes what is queued and stops it,
/// whether or not sinks are still alive (the HTTP server's app state may outlive its run).
pub struct AuditWriter {
    handle: JoinHandle<()>,
    tx: mpsc::Sender<Message>,
}

/// One counted row: per minute, client address, outcome and detail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Aggregate {
    pub(crate) minute_ms: i64,
    pub(crate) client_addr: String,
    pub(crate) outcome: Outcome,
    pub(crate) detail: Option<String>,
}

impl Aggregate {
    /// The minute's start as stored, and the key its row is counted under.
    pub(crate) fn at_and_key(&self) -> (String, String) {
        let at = rfc3339(self.minute_ms);
        let key = format!(
            "{at}|{}|{}|{}",
            self.client_addr,
            self.outcome.as_str(),
            self.detail.as_deref().unwrap_or("")
        );
        (at, key)
    }
}

/// Refused calls gathered since the last flush.
#[derive(Default)]
pub(crate) struct Tally {
    /// Per minute's row: (calls, the first one's request id).
    pub(crate) rows: HashMap<Aggregate, (u64, String)>,
    /// Per address counter: (refusals, a client address and request id for its lock row).
    pub(crate) counts: HashMap<String, (ThrottleKey, u32, String, String)>,
}

impl Tally {
    fn add(&mut self, call: RefusedCall) {
        let key = Aggregate {
            minute_ms: call.at_ms.div_euclid(60_000) * 60_000,
            client_addr: call.client_addr.clone(),
            outcome: call.outcome,
            detail: call.detail,
        };
        self.rows
            .entry(key)
            .or_insert_with(|| (0, call.request_id.clone()))
            .0 += 1;
        if let Some(counter) = call.counts_against {
            let entry = self
                .counts
                .entry(counter.as_str().to_string())
                .or_insert_with(|| (counter, 0, call.client_addr, call.request_id));
            entry.1 = entry.1.saturating_add(1);
        }
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.counts.is_empty()
    }
}

impl AuditSink {
    /// Starts the writer thread on a connection of its own from `store`.
    pub fn start(store: &Store, upkeep: Upkeep) -> Result<(AuditSink, AuditWriter), StoreError> {
        let (tx, rx) = mpsc::channel::<Message>(QUEUE);
        let store = store.clone();
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(store, rx, upkeep))
            .map_err(|e| StoreError::Join(e.to_string()))?;
        let ticks = tx.clone();
        std::thread::Builder::new()
            .name("audit-ticker".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    if let Err(mpsc::error::TrySendError::Closed(_)) = ticks.try_send(Message::Tick)
                    {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Join(e.to_string()))?;
        Ok((AuditSink { tx: tx.clone() }, AuditWriter { handle, tx }))
    }

    /// Queues one row; waits while the queue is full.
    pub async fn record(&self, record: AuditRecord) {
        if self.tx.send(Message::Row(Box::new(record))).await.is_err() {
            error!("audit: writer has stopped; a row was not written");
        }
    }

    /// Queues a call refused before authentication, to be counted into its row.
    pub async fn refused(&self, call: RefusedCall) {
        if self
            .tx
            .send(Message::Refused(Box::new(call)))
            .await
            .is_err()
        {
            error!("audit: writer has stopped; a refused call was not counted");
        }
    }
}

impl AuditWriter {
    /// Writes every queued row and stops the thread. Call from a blocking context once
    /// no more rows are coming (the server has stopped).
    pub fn finish(self) {
        if self.tx.blocking_send(Message::Stop).is_err() {
            error!("audit: writer had already stopped");
        }
        if self.handle.join().is_err() {
            error!("audit: writer thread panicked");
        }
    }
}

/// The writer thread's loop.
fn run(store: Store, mut rx: mpsc::Receiver<Message>, upkeep: Upkeep) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut tally = Tally::default();
    let mut flushed = Instant::now();
    // The first prune runs at the first tick.
    let prune_every = upkeep
        .retention
        .map(|r| (r / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600)));
    let mut pruned: Option<Instant> = None;
    let mut stop = false;
    while !stop {
        let mut take = |message: Option<Message>, batch: &mut Vec<AuditRecord>| match message {
            Some(Message::Row(r)) => batch.push(*r),
            Some(Message::Refused(call)) => tally.add(*call),
            Some(Message::Tick) => {}
            Some(Message::Stop) | None => stop = true,
        };
        let first = rx.blocking_recv();
        let linger = matches!(first, Some(Message::Row(_) | Message::Refused(_)));
        take(first, &mut batch);
        if linger {
            // Let more gather: the senders then find the writer awake and wake no thread.
            std::thread::sleep(LINGER);
        }
        // What arrived meanwhile, up to a batch of rows or many refused calls.
        for _ in 0..16 * BATCH {
            if batch.len() >= BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(message) => take(Some(message), &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            write_with_retries("rows", || store.write_audit_rows(&batch));
            batch.clear();
        }
        if (stop || flushed.elapsed() >= FLUSH_EVERY) && !tally.is_empty() {
            let gathered = std::mem::take(&mut tally);
            write_with_retries("refused calls", || {
                let now = Utc::now().timestamp_millis();
                let counted = store.write_refusals(&gathered, &upkeep.policy, now)?;
                for c in counted {
                    if let Some(until) = c.started {
                        crate::metrics::lockout("address");
                        warn!(
                            "request_id={} lockout: address locked until {} after repeated refused calls",
                            c.request_id,
                            rfc3339(until)
                        );
                    }
                    upkeep.locks.note(&c.key, c.locked_until, now);
                }
                Ok(())
            });
            flushed = Instant::now();
        }
        if let (Some(retention), Some(every)) = (upkeep.retention, prune_every) {
            if !stop && pruned.is_none_or(|at| at.elapsed() >= every) {
                prune(&store, retention, &upkeep.policy);
                pruned = Some(Instant::now());
            }
        }
    }
}

/// Writes a batch, retrying while the database is busy or failing (a lock held by
/// another process, a full disk that gets space back, a database restarting): the rows
/// are kept, and senders wait on the full queue meanwhile. Gives up, loudly, after about
/// a minute.
fn write_with_retries(what: &str, mut write: impl FnMut() -> Result<(), StoreError>) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=RETRIES {
        match write() {
            Ok(()) => return,
            Err(e) if attempt == RETRIES => {
                error!("audit: gave up writing {what} after {attempt} attempts: {e}");
            }
            Err(e) => {
                crate::metrics::database_retry("audit_write");
                warn!("audit: could not write {what} ({e}); retrying in {delay:?}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An address counter the refused calls were counted against: its lock's end now (0:
/// none), and the end of a lock the count started.
pub(crate) struct Counted {
    pub(crate) key: ThrottleKey,
    pub(crate) locked_until: i64,
    pub(crate) started: Option<i64>,
    pub(crate) request_id: String,
}

/// The audit row of an address lock that counted refusals started.
pub(crate) fn address_lock_row(request_id: &str, client_addr: &str, until: i64) -> AuditRecord {
    AuditRecord::new(request_id, client_addr, Outcome::Lockout)
        .detail(Some(format!("ADDRESS_THROTTLED until {}", rfc3339(until))))
}

/// What retention deletes, a batch at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pruned {
    AuditRows,
    AcknowledgedEvents,
}

/// Deletes audit rows and acknowledged events older than `retention`, a batch per
/// transaction, and forgets throttle counters that can no longer matter.
fn prune(store: &Store, retention: Duration, policy: &ThrottlePolicy) {
    let now = Utc::now();
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = cutoff.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut deleted = (0usize, 0usize);
    for what in [Pruned::AuditRows, Pruned::AcknowledgedEvents] {
        loop {
            match store.prune_batch(what, &cutoff, PRUNE_BATCH) {
                Ok(n) => {
                    if what == Pruned::AuditRows {
                        deleted.0 += n;
                    } else {
                        deleted.1 += n;
                    }
                    if n < PRUNE_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    warn!("audit: pruning failed ({e}); trying again later");
                    return;
                }
            }
        }
    }
    if let Err(e) = store.forget_quiet_counters(policy, now.timestamp_millis()) {
        warn!("audit: forgetting quiet counters failed ({e})");
    }
    if deleted != (0, 0) {
        info!(
            "retention: deleted {} audit rows and {} acknowledged events from before {cutoff}",
            deleted.0, deleted.1
        );
    }
}
