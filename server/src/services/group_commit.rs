//! Group commit for messages. Every `SendMessage` used to be its own transaction, so the server
//! accepted only as many messages per second as the disk does fsyncs (about 1,000 on the test
//! machine, see BENCHMARKS.md). Now sends go through a queue, and a writer stores whatever is
//! waiting (up to [`MAX_BATCH`]) in one transaction: one fsync for all of them. Each sender
//! still hears back only after that commit, with its own outcome, exactly as before.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{Backend, NewMessage, SendOutcome, Store, StoreError};

/// The most messages stored in one transaction.
pub const MAX_BATCH: usize = 256;

type Job = (NewMessage, oneshot::Sender<Result<SendOutcome, StoreError>>);

/// The queue in front of the message writers.
#[derive(Clone)]
pub struct SendQueue {
    jobs: mpsc::Sender<Job>,
}

impl SendQueue {
    /// Starts the writers: one on SQLite (it has one writer anyway), two on PostgreSQL (one
    /// commits while the other fills its batch). They stop when the last queue is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (jobs, waiting) = mpsc::channel(4 * MAX_BATCH);
        let waiting = Arc::new(Mutex::new(waiting));
        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        };
        for _ in 0..writers {
            tokio::spawn(write(store.clone(), waiting.clone()));
        }
        Self { jobs }
    }

    /// Stores `message` with the others waiting, and returns its outcome after the commit.
    pub async fn send(&self, message: NewMessage) -> Result<SendOutcome, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs.send((message, reply)).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the message writer stopped".into())
}

async fn write(store: Arc<dyn Store>, waiting: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
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
        // Rows are locked in the same order in every batch, so PostgreSQL writers cannot
        // deadlock; the sort is stable, so one conversation's messages keep their order.
        batch.sort_by_key(|(message, _)| message.conversation_id);
        let (messages, replies): (Vec<NewMessage>, Vec<_>) = batch.drain(..).unzip();
        match store.send_messages(&messages).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = messages.len(), "a batch of messages could not be stored");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(message.clone().into())));
                }
            }
        }
    }
}
