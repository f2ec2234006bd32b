//! The writer of failed-attempt audit rows: a dedicated thread that commits them in
//! batches, so a flood of refused calls costs one transaction per batch, not per call.
//!
//! Successful changes do not come here: their audit row is written in the change's own
//! transaction. The channel is bounded; when it is full, senders wait (nothing is dropped).

use std::thread::JoinHandle;

use std::time::Duration;

use log::{error, warn};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc;

use super::{AuditRecord, Store, StoreError, directory};

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

/// What the writer thread receives.
enum Message {
    Row(Box<AuditRecord>),
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

impl AuditSink {
    /// Starts the writer thread on a connection of its own from `store`.
    pub fn start(store: &Store) -> Result<(AuditSink, AuditWriter), StoreError> {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let store = store.clone();
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                let mut stop = false;
                while !stop {
                    match rx.blocking_recv() {
                        Some(Message::Row(r)) => batch.push(*r),
                        Some(Message::Stop) | None => stop = true,
                    }
                    if !stop {
                        std::thread::sleep(LINGER);
                    }
                    while !stop && batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(Message::Row(r)) => batch.push(*r),
                            Ok(Message::Stop) => stop = true,
                            Err(_) => break,
                        }
                    }
                    if !batch.is_empty() {
                        write_with_retries(&store, &batch);
                        batch.clear();
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

/// Writes a batch, retrying while the database is busy or failing (a lock held by
/// another process, a full disk that gets space back): the rows are kept, and senders
/// wait on the full queue meanwhile. Gives up, loudly, after about a minute.
fn write_with_retries(store: &Store, batch: &[AuditRecord]) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=RETRIES {
        match store.write_blocking(|conn| write_batch(conn, batch)) {
            Ok(()) => return,
            Err(e) if attempt == RETRIES => {
                error!(
                    "audit: gave up writing {} rows after {attempt} attempts: {e}",
                    batch.len()
                );
            }
            Err(e) => {
                warn!(
                    "audit: could not write {} rows ({e}); retrying in {delay:?}",
                    batch.len()
                );
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[AuditRecord]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for r in batch {
        directory::insert_audit(&tx, r)?;
    }
    tx.commit()?;
    Ok(())
}
