//! The pipeline's two tasks: the writer, which commits ingest jobs in
//! groups and runs control jobs in their turn, and the folder, which folds
//! each committed group into live states and answers its requests while the
//! writer commits the next.

use std::collections::HashSet;
use std::sync::Arc;

use features::{Interaction, Profile};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit};

use super::{Control, Ingested, Job, Reply, Result, GATHER_BELOW, MAX_GROUP};
use crate::bus::{new_event, Bus};
use crate::engine::{now_micros, Declared, Engine};
use crate::erasure::Tombstones;
use crate::store::{Appended, Store, StoreError};

/// What the writer and folder tasks share.
#[derive(Clone)]
pub(super) struct Writer {
    pub(super) store: Arc<dyn Store>,
    pub(super) engine: Arc<Engine>,
    pub(super) bus: Arc<dyn Bus>,
    pub(super) tombstones: Arc<Tombstones>,
    /// The flusher's lock: erasure holds it so a profile is not written back.
    pub(super) flush_lock: Arc<Mutex<i64>>,
}

type IngestReply = (usize, Reply<Vec<Ingested>>, OwnedSemaphorePermit);

/// A committed group on its way to the folder.
struct Committed {
    /// What was appended: the group less erased users' interactions.
    kept: Arc<[Interaction]>,
    appended: Vec<Appended>,
    /// Each interaction of the group, in order, as its request is told.
    outcomes: Vec<Ingested>,
    replies: Vec<IngestReply>,
    now: i64,
}

/// Work for the folder task, in commit order.
enum FoldJob {
    Group(Committed),
    /// Answered once every group sent before it is folded.
    Drain(oneshot::Sender<()>),
}

impl Writer {
    /// Starts the writer and the folder on the job queue; the handle ends
    /// when both have.
    pub(super) fn spawn(self, jobs: mpsc::Receiver<Job>) -> tokio::task::JoinHandle<()> {
        // Folding and scoring group N runs beside the append of group N+1.
        let (fold_tx, fold_rx) = mpsc::channel(2);
        let folder = tokio::spawn(self.clone().fold_loop(fold_rx));
        tokio::spawn(async move {
            self.run(jobs, fold_tx).await;
            let _ = folder.await;
        })
    }

    async fn run(self, mut rx: mpsc::Receiver<Job>, fold_tx: mpsc::Sender<FoldJob>) {
        let mut pending: Option<Job> = None;
        loop {
            let job = match pending.take() {
                Some(job) => job,
                None => match rx.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            let control = match job {
                Job::Ingest {
                    batch,
                    reply,
                    _permit,
                } => {
                    let mut size = batch.len();
                    let mut group = vec![(batch, reply, _permit)];
                    take_queued(&mut rx, &mut group, &mut size, &mut pending);
                    // Once more after letting every runnable task run:
                    // requests being read at this moment join this commit
                    // instead of paying one of their own (see `GATHER_BELOW`).
                    if size < GATHER_BELOW && pending.is_none() {
                        tokio::task::yield_now().await;
                        take_queued(&mut rx, &mut group, &mut size, &mut pending);
                    }
                    if let Some(committed) = self.append_group(group).await {
                        if let Err(mpsc::error::SendError(FoldJob::Group(c))) =
                            fold_tx.send(FoldJob::Group(committed)).await
                        {
                            // The folder is gone (shutting down): fold here.
                            self.fold_group(c).await;
                        }
                    }
                    continue;
                }
                Job::Control(control) => control,
            };
            // Control jobs read or change live states: let the folder finish
            // what was committed before them, so order is kept.
            let (drained, done) = oneshot::channel();
            if fold_tx.send(FoldJob::Drain(drained)).await.is_ok() {
                let _ = done.await;
            }
            match control {
                Control::Register { record, reply } => {
                    let _ = reply.send(self.register(*record).await);
                }
                Control::UpdateUser {
                    user_id,
                    patch,
                    reply,
                } => {
                    let _ = reply.send(self.update_user(&user_id, &patch).await);
                }
                Control::DeleteInteraction { id, reply } => {
                    let _ = reply.send(self.delete_interaction(&id).await);
                }
                Control::Erase { user_id, reply } => {
                    let _ = reply.send(self.erase(&user_id).await);
                }
                Control::Rescore { users, reply } => {
                    let _ = reply.send(self.rescore(&users).await);
                }
                Control::Barrier { reply } => {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    async fn fold_loop(self, mut rx: mpsc::Receiver<FoldJob>) {
        while let Some(job) = rx.recv().await {
            match job {
                FoldJob::Group(committed) => self.fold_group(committed).await,
                FoldJob::Drain(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Appends a group in one transaction; on failure answers its requests.
    async fn append_group(&self, group: Group) -> Option<Committed> {
        let mut all = Vec::with_capacity(group.iter().map(|g| g.0.len()).sum());
        let mut replies = Vec::with_capacity(group.len());
        for (batch, reply, permit) in group {
            replies.push((batch.len(), reply, permit));
            all.extend(batch);
        }
        // Erased users' interactions are dropped before they reach the log
        // (a redelivery or a retry of what they sent before the erasure).
        let erased: Vec<bool> = if self.tombstones.is_empty() {
            Vec::new()
        } else {
            all.iter()
                .map(|i| self.tombstones.is_erased(i.user_id(), &self.engine))
                .collect()
        };
        let kept: Arc<[Interaction]> = if erased.contains(&true) {
            all.into_iter()
                .zip(&erased)
                .filter(|(_, e)| !**e)
                .map(|(i, _)| i)
                .collect()
        } else {
            all.into()
        };
        let now = now_micros();
        let started = std::time::Instant::now();
        let appended = match self.store.append_interactions(kept.clone(), now).await {
            Ok(a) => a,
            Err(e) => {
                let message = e.to_string();
                tracing::error!(error = %message, "appending interactions failed");
                for (_, reply, _) in replies {
                    let _ = reply.send(Err(StoreError::Corrupt(message.clone()).into()));
                }
                return None;
            }
        };
        tracing::debug!(
            interactions = kept.len(),
            requests = replies.len(),
            append_ms = started.elapsed().as_secs_f64() * 1e3,
            "group appended"
        );
        let mut stored = appended.iter();
        let outcomes = (0..erased.len().max(appended.len()))
            .map(|k| {
                if erased.get(k).copied().unwrap_or(false) {
                    Ingested::Erased
                } else {
                    match stored.next().copied().flatten() {
                        Some(seq) => Ingested::Stored(seq),
                        None => Ingested::Duplicate,
                    }
                }
            })
            .collect();
        Some(Committed {
            kept,
            appended,
            outcomes,
            replies,
            now,
        })
    }

    /// Folds a committed group into live states, then answers its requests.
    async fn fold_group(&self, committed: Committed) {
        let Committed {
            kept,
            appended,
            outcomes,
            replies,
            now,
        } = committed;
        let started = std::time::Instant::now();
        let new: Vec<(&Interaction, i64)> = kept
            .iter()
            .zip(&appended)
            .filter_map(|(i, a)| a.map(|seq| (i, seq)))
            .collect();
        if let Some(first) = new.iter().map(|(_, s)| *s).min() {
            let mut unknown: Vec<&str> = new
                .iter()
                .map(|(i, _)| i.user_id())
                .filter(|u| self.engine.needs_lookup(u))
                .collect();
            unknown.sort_unstable();
            unknown.dedup();
            let mut failed = HashSet::new();
            for user in unknown {
                if let Err(e) = self.load_user(user, Some(first), now).await {
                    // Their interactions are durable; the next lookup folds them.
                    tracing::warn!(user, error = %e, "loading a user's history failed");
                    failed.insert(user.to_owned());
                }
            }
            let max = new.iter().map(|(_, s)| *s).max().unwrap_or(first);
            let folding: Vec<&Interaction> = new
                .iter()
                .map(|(i, _)| *i)
                .filter(|i| !failed.contains(i.user_id()))
                .collect();
            let profiles = self
                .engine
                .fold(&folding, max, now, self.bus.has_listeners());
            tracing::debug!(
                interactions = kept.len(),
                fold_ms = started.elapsed().as_secs_f64() * 1e3,
                "group folded"
            );
            for u in &failed {
                self.engine.forget(u);
            }
            self.publish_profiles(profiles);
        }
        let mut rest = outcomes.as_slice();
        for (n, reply, permit) in replies {
            let (mine, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            let _ = reply.send(Ok(mine.to_vec()));
            drop(permit);
        }
    }

    /// Loads a user's stored history (`seq < before`) and registration.
    pub(super) async fn load_user(
        &self,
        user_id: &str,
        before: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let log = self.store.interactions_of(user_id, before).await?;
        let registration = self.store.user(user_id).await?;
        let log: Vec<Interaction> = log.into_iter().map(|l| l.interaction).collect();
        let declared = registration.map(|r| Declared::of(&r.registration, chrono::Utc::now()));
        self.engine.load(user_id, &log, declared, now);
        Ok(())
    }

    pub(super) fn publish_profiles(&self, profiles: Vec<Profile>) {
        if !self.bus.has_listeners() {
            return;
        }
        for p in profiles {
            if let Ok(payload) = serde_json::to_value(&p) {
                self.bus.publish(new_event("profile.updated", payload));
            }
        }
    }
}

/// Ingest jobs of one group, each with its reply and queue permit.
type Group = Vec<(Vec<Interaction>, Reply<Vec<Ingested>>, OwnedSemaphorePermit)>;

/// Moves queued ingest jobs into `group` until it holds [`MAX_GROUP`]
/// interactions or the queue is empty; a control job ends the group and is
/// kept in `pending`, so order is kept.
fn take_queued(
    rx: &mut mpsc::Receiver<Job>,
    group: &mut Group,
    size: &mut usize,
    pending: &mut Option<Job>,
) {
    while *size < MAX_GROUP {
        match rx.try_recv() {
            Ok(Job::Ingest {
                batch,
                reply,
                _permit,
            }) => {
                *size += batch.len();
                group.push((batch, reply, _permit));
            }
            Ok(other) => {
                *pending = Some(other);
                return;
            }
            Err(_) => return,
        }
    }
}
