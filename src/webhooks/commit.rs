//! Group commit of webhook deliveries on SQLite.
//!
//! SQLite runs one write transaction at a time, and with `synchronous = FULL` every commit
//! waits for the disk. A transaction per delivery therefore caps the webhook rate at the
//! disk's sync rate, and deliveries queue behind each other for the write lock. Here one
//! thread writes for the whole process. It takes every delivery waiting and stores them in
//! one transaction, and each request gets its response after that commit. A delivery still
//! gets 200 only once it is on disk.
//!
//! PostgreSQL keeps a transaction per delivery on several pooled connections. One writer
//! there was slower (385 instead of 411 deliveries per second in docs/BENCHMARKS.md),
//! because each delivery's statements wait for a round trip to the server one after another.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::store::{Stored, VerifiedDelivery, store_all};
use crate::db::{Backend, Database, DbError};

/// Deliveries that may wait for the writer at once. Beyond this the server is overloaded,
/// and a quick 503 (which Greenhouse retries) is better than holding more bodies in memory.
/// A queued delivery keeps its body as text, so a full queue of typical 2 KiB bodies takes
/// about 2 MiB.
const QUEUE_CAPACITY: usize = 1024;

/// Deliveries stored in one transaction at most, so that one commit's wait stays short.
const MAX_BATCH: usize = 64;

/// Stores verified deliveries: in a transaction each, or through the group commit thread.
pub enum DeliveryWriter {
    Direct(Database),
    Grouped(GroupCommit),
}

impl DeliveryWriter {
    /// Picks group commit for SQLite and a transaction per delivery for PostgreSQL. If the
    /// writer thread cannot start, SQLite falls back to a transaction per delivery too.
    pub fn for_database(db: &Database) -> DeliveryWriter {
        if db.backend() == Backend::Postgres {
            return DeliveryWriter::Direct(db.clone());
        }
        match GroupCommit::start(db.clone()) {
            Ok(group) => DeliveryWriter::Grouped(group),
            Err(error) => {
                tracing::warn!(error = %error, "could not start the webhook writer thread; storing each delivery in its own transaction");
                DeliveryWriter::Direct(db.clone())
            }
        }
    }

    /// Stores and applies one delivery. `Ok` means it is committed.
    pub async fn store(&self, delivery: VerifiedDelivery) -> Result<Stored, DbError> {
        match self {
            DeliveryWriter::Direct(db) => db.run(move |conn| super::store::store_and_apply(conn, &delivery)).await,
            DeliveryWriter::Grouped(group) => group.store(delivery).await,
        }
    }
}

/// One delivery waiting for the writer thread, with a signal for when the writer starts on
/// it and the channel that returns its result.
struct Queued {
    delivery: VerifiedDelivery,
    started: oneshot::Sender<()>,
    reply: oneshot::Sender<Result<Stored, DbError>>,
}

/// A delivery in the batch the writer thread is storing.
struct InBatch {
    delivery: VerifiedDelivery,
    reply: oneshot::Sender<Result<Stored, DbError>>,
}

/// Handle to the writer thread. The thread ends when the last handle is dropped.
pub struct GroupCommit {
    sender: SyncSender<Queued>,
    /// How long a delivery may wait in the queue before it gets 503: the pool's acquire
    /// timeout, the same bound as waiting for a connection of one's own.
    queue_wait: Duration,
}

impl GroupCommit {
    /// Starts the writer thread. It blocks on the database, so it is an OS thread of its own
    /// rather than a task on the async runtime.
    pub fn start(db: Database) -> std::io::Result<GroupCommit> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE_CAPACITY);
        let queue_wait = db.acquire_timeout();
        std::thread::Builder::new()
            .name("webhook-writer".to_string())
            .spawn(move || write_batches(&db, &receiver))?;
        Ok(GroupCommit { sender, queue_wait })
    }

    /// Queues the delivery and waits for its result. A delivery the writer has not started
    /// on within `queue_wait` fails and is left out of later batches. Once started, it waits
    /// for its commit, which SQLite's busy timeout bounds.
    async fn store(&self, delivery: VerifiedDelivery) -> Result<Stored, DbError> {
        let (started, started_signal) = oneshot::channel();
        let (reply, answer) = oneshot::channel();
        match self.sender.try_send(Queued { delivery, started, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(DbError::Busy(format!("{QUEUE_CAPACITY} deliveries already wait for the database")));
            }
            Err(TrySendError::Disconnected(_)) => return Err(DbError::Task("the webhook writer has stopped".to_string())),
        }

        if tokio::time::timeout(self.queue_wait, started_signal).await.is_err() {
            // The writer skips a delivery whose receivers are dropped.
            return Err(DbError::Busy(format!("the webhook writer did not take the delivery within {:?}", self.queue_wait)));
        }
        answer.await.unwrap_or_else(|_| Err(DbError::Task("the webhook writer stopped before returning a result".to_string())))
    }
}

/// Runs the writer thread: waits for a delivery, takes whatever else is waiting, commits
/// them together, and starts over until every sender is gone.
fn write_batches(db: &Database, receiver: &Receiver<Queued>) {
    while let Some(batch) = next_batch(receiver) {
        // A panic in one batch must not stop the writer: later deliveries would find no
        // one to store them. The senders of the failed batch see their channel closed.
        let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_batch(db, batch)));
        if stored.is_err() {
            tracing::error!("the webhook writer panicked while storing a batch; its deliveries got 503");
        }
    }
}

/// Blocks for the first delivery, then takes up to `MAX_BATCH` without waiting. Deliveries
/// whose request gave up (a timeout, or the client disconnected) are left out, because they
/// got no 200.
fn next_batch(receiver: &Receiver<Queued>) -> Option<Vec<InBatch>> {
    let first = receiver.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(queued) => batch.push(queued),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    batch.retain(|queued| !queued.reply.is_closed());
    let batch = batch
        .into_iter()
        .map(|Queued { delivery, started, reply }| {
            // A request can still give up between the check above and this signal. Its
            // delivery is then stored although it got 503, so Greenhouse's resend is stored
            // as a duplicate of it (same event id).
            let _ = started.send(());
            InBatch { delivery, reply }
        })
        .collect();
    Some(batch)
}

/// Stores a batch in one transaction and returns each delivery's result to its request. If the transaction fails,
/// nothing of the batch is stored and every delivery gets the error (503, so Greenhouse
/// sends it again).
fn write_batch(db: &Database, batch: Vec<InBatch>) {
    if batch.is_empty() {
        return;
    }
    let (deliveries, replies): (Vec<VerifiedDelivery>, Vec<_>) = batch.into_iter().map(|p| (p.delivery, p.reply)).unzip();

    let result = db.get().and_then(|mut conn| store_all(&mut conn, &deliveries));
    crate::metrics::webhook_batch(deliveries.len());
    match result {
        Ok(stored) => {
            for (reply, stored) in replies.into_iter().zip(stored) {
                // A receiver that is gone only means the client stopped waiting.
                let _ = reply.send(Ok(stored));
            }
        }
        Err(error) => {
            let message = error.to_string();
            for reply in replies {
                let _ = reply.send(Err(DbError::Task(format!("the batch of deliveries was not stored: {message}"))));
            }
        }
    }
}
