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
/// Attempts to write one batch before giving up on it.
const RETRIES: u32 = 10;

/// Sends audit rows to the writer thread.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditRecord>,
}

/// Owns the writer thread; dropping every [`AuditSink`] and then calling
/// [`AuditWriter::finish`] flushes what is queued.
pub struct AuditWriter {
    handle: JoinHandle<()>,
}

impl AuditSink {
    /// Starts the writer thread on a connection of its own from `store`.
    pub fn start(store: &Store) -> Result<(AuditSink, AuditWriter), StoreError> {
        let (tx, mut rx) = mpsc::channel::<AuditRecord>(QUEUE);
        let store = store.clone();
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    write_with_retries(&store, &batch);
                    batch.clear();
                }
            })
            .map_err(|e| StoreError::Join(e.to_string()))?;
        Ok((AuditSink { tx }, AuditWriter { handle }))
    }

    /// Queues one row; waits while the queue is full.
    pub async fn record(&self, record: AuditRecord) {
        if self.tx.send(record).await.is_err() {
            error!("audit: writer has stopped; a row was not written");
        }
    }
}

impl AuditWriter {
    /// Waits until every queued row is written. Call after the last sink is dropped.
    pub fn finish(self) {
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
        match store.call_blocking(|conn| write_batch(conn, batch)) {
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
