//! Group commit: writes that arrive together share one transaction, so one fsync. Every
//! `SendMessage` and every gateway acknowledgement used to be its own transaction, and the
//! server did only as many of them per second as the disk does fsyncs (about 1,000 on the
//! test machine, see BENCHMARKS.md). Now they queue, and a writer commits whatever is waiting
//! (up to [`MAX_BATCH`]) at once. Each caller still hears back only after that commit, with
//! its own outcome.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::ids::{AccountId, DeviceId};
use crate::store::{Backend, DeviceAcks, NewMessage, Receipt, SendOutcome, Store, StoreError};

/// The most writes committed in one transaction.
pub const MAX_BATCH: usize = 256;

type Job<I, O> = (I, oneshot::Sender<Result<O, StoreError>>);

/// A queue in front of writers that commit its items in batches.
pub struct GroupCommit<I, O> {
    jobs: mpsc::Sender<Job<I, O>>,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        Self { jobs: self.jobs.clone() }
    }
}

impl<I: Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts `writers` tasks; each takes what is waiting, orders it by `key` (so concurrent
    /// PostgreSQL writers lock rows in one order; the sort is stable) and calls `commit`, which
    /// returns one outcome per item in the order given, or fails as a whole. They stop when
    /// the last queue is dropped.
    pub fn start<K, C, F>(writers: usize, key: fn(&I) -> K, commit: C) -> Self
    where
        K: Ord + 'static,
        C: Fn(Vec<I>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Vec<Result<O, StoreError>>, StoreError>> + Send,
    {
        let (jobs, waiting) = mpsc::channel(4 * MAX_BATCH);
        let waiting = Arc::new(Mutex::new(waiting));
        let commit = Arc::new(commit);
        for _ in 0..writers.max(1) {
            let (waiting, commit) = (waiting.clone(), commit.clone());
            tokio::spawn(async move {
                let mut batch: Vec<Job<I, O>> = Vec::with_capacity(MAX_BATCH);
                loop {
                    {
                        let mut waiting = waiting.lock().await;
                        let Some(first) = waiting.recv().await else { return };
                        batch.push(first);
                        while batch.len() < MAX_BATCH {
                            match waiting.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                    }
                    batch.sort_by_key(|job| key(&job.0));
                    let (items, replies): (Vec<I>, Vec<_>) = batch.drain(..).unzip();
                    let count = items.len();
                    match commit(items).await {
                        Ok(outcomes) => {
                            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                                let _ = reply.send(outcome);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, writes = count, "a batch of writes could not be committed");
                            let message = e.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(StoreError::Unavailable(message.clone().into())));
                            }
                        }
                    }
                }
            });
        }
        Self { jobs }
    }

    /// Queues `item` and returns its outcome once its batch is committed.
    pub async fn submit(&self, item: I) -> Result<O, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs.send((item, reply)).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the database writer stopped".into())
}

/// Messages waiting to be stored ([`crate::store::ConversationStore::send_messages`]): one
/// writer on SQLite (it has one writer anyway), two on PostgreSQL (one commits while the other
/// gathers).
pub type SendQueue = GroupCommit<NewMessage, SendOutcome>;

pub fn send_queue(store: Arc<dyn Store>) -> SendQueue {
    let writers = match store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    };
    GroupCommit::start(
        writers,
        |m: &NewMessage| m.conversation_id,
        move |batch: Vec<NewMessage>| {
            let store = store.clone();
            async move { store.send_messages(&batch).await }
        },
    )
}

/// Gateway acknowledgements waiting to be saved
/// ([`crate::store::DeliveryStore::commit_acks_of`]); one writer, which orders the rows itself.
pub type AckQueue = GroupCommit<(DeviceId, AccountId, DeviceAcks), Vec<Receipt>>;

pub fn ack_queue(store: Arc<dyn Store>) -> AckQueue {
    GroupCommit::start(
        1,
        |_: &(DeviceId, AccountId, DeviceAcks)| (),
        move |batch: Vec<(DeviceId, AccountId, DeviceAcks)>| {
            let store = store.clone();
            async move { Ok(store.commit_acks_of(&batch).await?.into_iter().map(Ok).collect()) }
        },
    )
}
