//! NATS JetStream, when `MICRO_NATS_URL` is set: interactions consumed from
//! `micro.interactions.>` through the same pipeline as HTTP, and events
//! published to `micro.events.<type>` from the store's outbox.
//!
//! Formats (SPEC §12, [`crate::wire`]): a message on
//! `micro.interactions.>` is one JSON interaction, or, with the header
//! `Content-Type: application/x-protobuf`, a `micro.v1.InteractionBatch`
//! whose items are validated one by one as HTTP items are. Events are
//! published as JSON or as `micro.v1.Event` (`MICRO_BUS_FORMAT`), with a
//! `Content-Type` header either way.
//!
//! Names (created when missing, so a fresh NATS needs no setup):
//! - stream [`INTERACTIONS_STREAM`] on `micro.interactions.>`, read by the
//!   durable pull consumer [`INGEST_CONSUMER`]; a message is acknowledged
//!   only after its interaction is durable (or was already stored: a
//!   redelivery or duplicate is stored once, by id);
//! - stream [`EVENTS_STREAM`] on `micro.events.>`, written by the outbox
//!   relay with `Nats-Msg-Id` = event id, so a batch re-sent after a lost
//!   acknowledgement is kept once (within [`DUPLICATE_WINDOW`]);
//! - stream [`DEAD_LETTER_STREAM`] on `micro.dead.>`: a message that is not a
//!   valid interaction goes to [`DEAD_LETTER_SUBJECT`] with the reason in the
//!   `Micro-Error` header, and the consumer moves on. Of a protobuf batch,
//!   each invalid item goes there alone (a batch of one, its place in the
//!   message in `Micro-Index`) and the valid ones are stored; a batch that
//!   cannot be decoded goes there whole.
//!
//! The service keeps answering HTTP while NATS is down: the connection
//! retries in the background, the relay leaves events in the outbox until
//! NATS acknowledges them, and the consumer resumes where it stopped.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream, AckKind, Context};
use async_nats::HeaderMap;
use bytes::Bytes;
use features::Interaction;
use futures::StreamExt;
use proto::{v1, Message as _};
use tokio::sync::watch;

use crate::pipeline::{Ingested, Pipeline, PipelineError};
use crate::store::{Outbox, OutboxEvent};
use crate::telemetry::Metrics;
use crate::wire::{self, BusFormat};

pub const INTERACTIONS_STREAM: &str = "MICRO_INTERACTIONS";
pub const INTERACTIONS_SUBJECTS: &str = "micro.interactions.>";
pub const INGEST_CONSUMER: &str = "micro-serve";
pub const EVENTS_STREAM: &str = "MICRO_EVENTS";
pub const EVENTS_SUBJECTS: &str = "micro.events.>";
pub const DEAD_LETTER_STREAM: &str = "MICRO_DEAD_LETTERS";
pub const DEAD_LETTER_SUBJECT: &str = "micro.dead.interactions";
/// How long JetStream remembers event ids to drop re-sent copies.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// Messages taken from the consumer at once.
const FETCH_BATCH: usize = 2_000;
/// Bytes taken from the consumer at once: protobuf messages carry batches,
/// so 2,000 of them may hold millions of interactions. Above NATS's
/// default largest message (1 MiB), so that one message always fits.
const FETCH_BYTES: usize = 16 * 1024 * 1024;
/// Interactions handed to the pipeline at once: what one fetch of JSON
/// messages holds, so a fetch of protobuf batches asks no more of the
/// ingest queue per request than JSON did.
const INGEST_CHUNK: usize = FETCH_BATCH;
/// Chunks of one fetch in the pipeline at once.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Events published per relay round (one outbox read, acknowledgements
/// awaited together).
const RELAY_BATCH: usize = 1_000;
/// Pause after a failure talking to NATS.
const RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("NATS: {0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Nats(e.to_string())
}

/// A connection to NATS and its JetStream context.
#[derive(Clone, Debug)]
pub struct Broker {
    client: async_nats::Client,
    jetstream: Context,
    /// How published events are encoded.
    events: BusFormat,
    /// How long the streams keep messages; set by micro-serve, which owns
    /// the streams (a consumer such as micro-welcome leaves them as found).
    retention: Option<Duration>,
}

impl Broker {
    /// Connects without waiting for the server: when it is down, the client
    /// keeps retrying and the tasks below wait for it.
    pub async fn connect(url: &str) -> Result<Broker, BrokerError> {
        let client = async_nats::ConnectOptions::new()
            .name("micro-serve")
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(nats)?;
        let jetstream = jetstream::new(client.clone());
        Ok(Broker {
            client,
            jetstream,
            events: BusFormat::default(),
            retention: None,
        })
    }

    /// Keeps the streams' messages for `retention` (`MICRO_BUS_RETENTION`),
    /// updating streams that exist already.
    pub fn with_retention(mut self, retention: Duration) -> Broker {
        self.retention = Some(retention);
        self
    }

    /// Publishes events in `format` (JSON unless told otherwise).
    pub fn with_event_format(mut self, format: BusFormat) -> Broker {
        self.events = format;
        self
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn ensure_stream(
        &self,
        name: &str,
        subjects: &str,
    ) -> Result<stream::Stream, BrokerError> {
        let config = stream::Config {
            name: name.to_owned(),
            subjects: vec![subjects.to_owned()],
            // JetStream refuses a window longer than the retention.
            duplicate_window: self
                .retention
                .map_or(DUPLICATE_WINDOW, |r| r.min(DUPLICATE_WINDOW)),
            storage: stream::StorageType::File,
            max_age: self.retention.unwrap_or_default(),
            ..Default::default()
        };
        if self.retention.is_none() {
            return self
                .jetstream
                .get_or_create_stream(config)
                .await
                .map_err(nats);
        }
        self.jetstream
            .create_or_update_stream(config)
            .await
            .map_err(nats)?;
        self.jetstream.get_stream(name).await.map_err(nats)
    }

    /// Creates the streams and the consumer when missing; returns the consumer.
    async fn ensure(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, BrokerError> {
        self.ensure_stream(EVENTS_STREAM, EVENTS_SUBJECTS).await?;
        self.ensure_stream(DEAD_LETTER_STREAM, "micro.dead.>")
            .await?;
        let interactions = self
            .ensure_stream(INTERACTIONS_STREAM, INTERACTIONS_SUBJECTS)
            .await?;
        interactions
            .get_or_create_consumer(
                INGEST_CONSUMER,
                pull::Config {
                    durable_name: Some(INGEST_CONSUMER.to_owned()),
                    // Each message on its own: with "all", acknowledging a
                    // later batch would also settle an earlier one that failed
                    // and waits for redelivery.
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 4 * FETCH_BATCH as i64,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats)
    }

    /// A durable consumer of the events stream (created when missing), for
    /// services that react to Micro's events, such as `micro-welcome`.
    pub async fn events_consumer(
        &self,
        durable: &str,
        filter_subject: &str,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, BrokerError> {
        self.ensure_stream(EVENTS_STREAM, EVENTS_SUBJECTS)
            .await?
            .get_or_create_consumer(
                durable,
                pull::Config {
                    durable_name: Some(durable.to_owned()),
                    filter_subject: filter_subject.to_owned(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats)
    }

    /// Starts the consumer and the relay; both stop when `stop` turns true.
    /// The outbox must be on ([`Outbox::set_outbox`]) from before anything
    /// is written that should be published.
    pub fn start(
        &self,
        outbox: Arc<dyn Outbox>,
        pipeline: Pipeline,
        metrics: Metrics,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(
                self.clone()
                    .consume(pipeline, metrics.clone(), stop.clone()),
            ),
            tokio::spawn(self.clone().relay(outbox, metrics, stop)),
        ]
    }

    /// Interactions from JetStream into the pipeline.
    async fn consume(self, pipeline: Pipeline, metrics: Metrics, mut stop: watch::Receiver<bool>) {
        // Fetching batch N+1 overlaps storing batch N; batches are stored in
        // the order fetched (one task, and the pipeline has one writer).
        let (batches, mut fetched) = tokio::sync::mpsc::channel::<Vec<jetstream::Message>>(2);
        let storing = {
            let (this, metrics) = (self.clone(), metrics.clone());
            tokio::spawn(async move {
                while let Some(batch) = fetched.recv().await {
                    this.ingest(&pipeline, &metrics, batch).await;
                }
            })
        };
        let mut consumer = None;
        while !*stop.borrow() {
            let Some(c) = consumer.as_mut() else {
                match self.ensure().await {
                    Ok(c) => consumer = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "NATS consumer not ready; retrying");
                        pause(&mut stop).await;
                    }
                }
                continue;
            };
            let fetched = c
                .fetch()
                .max_messages(FETCH_BATCH)
                .max_bytes(FETCH_BYTES)
                .expires(Duration::from_millis(500))
                .messages()
                .await;
            let mut messages = match fetched {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "fetching from NATS failed; retrying");
                    pause(&mut stop).await;
                    continue;
                }
            };
            let mut batch = Vec::with_capacity(FETCH_BATCH);
            while let Some(m) = messages.next().await {
                match m {
                    Ok(m) => batch.push(m),
                    Err(e) => {
                        tracing::debug!(error = %e, "fetch ended early");
                        break;
                    }
                }
            }
            // Each delivery says how many remain behind it: the lag, with no
            // extra request to JetStream.
            if let Some(pending) = batch.last().and_then(|m| m.info().ok()).map(|i| i.pending) {
                metrics.bus_pending.set(pending as i64);
            }
            if !batch.is_empty() && batches.send(batch).await.is_err() {
                break;
            }
        }
        drop(batches);
        let _ = storing.await;
    }

    /// Validates a fetched batch, sends bad messages (and bad items of
    /// protobuf batches) to the dead-letter subject, ingests the rest, and
    /// acknowledges every message once all its interactions are durable (a
    /// bad one once its dead letter is).
    async fn ingest(&self, pipeline: &Pipeline, metrics: &Metrics, batch: Vec<jetstream::Message>) {
        let mut valid = Vec::with_capacity(batch.len());
        for m in &batch {
            for dead in read(m, &mut valid) {
                if let Err(e) = self.dead_letter(m, dead, metrics).await {
                    // Acknowledging past it would lose it: take the
                    // whole batch again later.
                    tracing::warn!(error = %e, "dead-lettering failed; batch left for redelivery");
                    for m in &batch {
                        let _ = m.ack_with(AckKind::Nak(Some(RETRY))).await;
                    }
                    return;
                }
            }
        }
        let n = valid.len();
        match store_all(pipeline, valid).await {
            Ok(outcomes) => {
                // Erased users' interactions are dropped and acknowledged:
                // a redelivery must not bring them back (SPEC §10).
                metrics.count_ingested(&outcomes);
                metrics.bus_consumed.inc_by(n as u64);
                for m in &batch {
                    if let Err(e) = m.ack().await {
                        // Redelivered later and then found stored: no harm.
                        tracing::debug!(error = %e, "acknowledging to NATS failed");
                    }
                }
            }
            Err(e) => {
                let delay = match e {
                    PipelineError::Overloaded { .. } => Duration::from_secs(1),
                    _ => Duration::from_secs(5),
                };
                // Chunks stored before the failure are found stored on
                // redelivery (by id), not stored twice.
                tracing::warn!(error = %e, interactions = n, "bus batch not stored; NATS will redeliver");
                for m in &batch {
                    let _ = m.ack_with(AckKind::Nak(Some(delay))).await;
                }
            }
        }
    }

    /// Publishes a bad message, or a bad item of one, with its reason on the
    /// dead-letter subject (the caller's acknowledgement of the batch then
    /// covers it).
    async fn dead_letter(
        &self,
        m: &jetstream::Message,
        dead: DeadLetter,
        metrics: &Metrics,
    ) -> Result<(), BrokerError> {
        let mut headers = HeaderMap::new();
        headers.insert("Micro-Error", single_line(&dead.reason).as_str());
        headers.insert("Micro-Subject", m.subject.as_str());
        if let Some(content_type) = &dead.content_type {
            headers.insert("Content-Type", single_line(content_type).as_str());
        }
        if let Some(index) = dead.index {
            headers.insert("Micro-Index", index.to_string().as_str());
        }
        self.jetstream
            .publish_with_headers(DEAD_LETTER_SUBJECT, headers, dead.payload)
            .await
            .map_err(nats)?
            .await
            .map_err(nats)?;
        metrics.bus_dead_letters.inc();
        tracing::info!(subject = %m.subject, index = dead.index, reason = %dead.reason, "interaction sent to the dead-letter subject");
        Ok(())
    }

    /// Publishes the outbox in order; an event leaves the outbox only once
    /// JetStream acknowledged it. A failed round is re-sent whole (the
    /// stream drops the copies it already has, by `Nats-Msg-Id`).
    async fn relay(
        self,
        store: Arc<dyn Outbox>,
        metrics: Metrics,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ready = false;
        while !*stop.borrow() {
            if !ready {
                match self.ensure_stream(EVENTS_STREAM, EVENTS_SUBJECTS).await {
                    Ok(_) => ready = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "NATS events stream not ready; retrying");
                        pause(&mut stop).await;
                        continue;
                    }
                }
            }
            // While disconnected, the client buffers what it is given and
            // sends it on reconnecting, whatever the store did meanwhile: an
            // erased user's events, dropped from the outbox, would still go
            // out. So a round starts only while connected.
            if !self.is_connected() {
                pause(&mut stop).await;
                continue;
            }
            let batch = match store.outbox(RELAY_BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the outbox failed; retrying");
                    pause(&mut stop).await;
                    continue;
                }
            };
            let Some(last) = batch.last().map(|e| e.seq) else {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            match self.publish_all(&batch).await {
                Ok(()) => {
                    if let Err(e) = store.outbox_done(last).await {
                        tracing::warn!(error = %e, "clearing the outbox failed; events will be re-sent and dropped as copies");
                    }
                    metrics.bus_published.inc_by(batch.len() as u64);
                }
                Err(e) => {
                    tracing::warn!(error = %e, waiting = batch.len(), "publishing events failed; retrying");
                    pause(&mut stop).await;
                }
            }
        }
    }

    async fn publish_all(&self, batch: &[OutboxEvent]) -> Result<(), BrokerError> {
        let mut acks = Vec::with_capacity(batch.len());
        for e in batch {
            let body = self.events.encode_event(&e.event).map_err(nats)?;
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", e.event.id.as_str());
            headers.insert("Content-Type", self.events.content_type());
            let ack = self
                .jetstream
                .publish_with_headers(
                    format!("micro.events.{}", e.event.kind),
                    headers,
                    body.into(),
                )
                .await
                .map_err(nats)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(nats)?;
        }
        Ok(())
    }
}

/// The `Content-Type` header of a NATS message (header names compared
/// without case, as HTTP's are).
pub fn content_type(headers: Option<&HeaderMap>) -> Option<&str> {
    headers?
        .iter()
        .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case("content-type"))
        .and_then(|(_, values)| values.first())
        .map(|v| v.as_str())
}

/// What goes to the dead-letter subject: a message, or one item of a
/// protobuf batch (as a batch of one), and why.
#[derive(Debug)]
struct DeadLetter {
    payload: Bytes,
    reason: String,
    /// The item's place in its batch.
    index: Option<usize>,
    content_type: Option<String>,
}

/// Reads one message: its valid interactions are added to `valid`, and
/// what cannot be stored is returned for the dead-letter subject.
fn read(m: &jetstream::Message, valid: &mut Vec<Interaction>) -> Vec<DeadLetter> {
    let whole = |reason: String, content_type: Option<&str>| DeadLetter {
        payload: m.payload.clone(),
        reason,
        index: None,
        content_type: content_type.map(str::to_owned),
    };
    let content_type = content_type(m.headers.as_ref());
    match content_type.map(wire::media_type).as_deref() {
        // No header: JSON, as before protobuf was offered.
        None | Some(wire::JSON) => match parse(&m.payload) {
            Ok(i) => {
                valid.push(i);
                Vec::new()
            }
            Err(reason) => vec![whole(reason, content_type)],
        },
        Some(wire::PROTOBUF) => match wire::decode_batch_message(&m.payload) {
            Err(e) => vec![whole(format!("$: {e}"), content_type)],
            Ok(batch) => {
                let mut dead = Vec::new();
                for (index, item) in batch.into_valid().enumerate() {
                    match item {
                        Ok(i) => valid.push(i),
                        Err(invalid) => dead.push(DeadLetter {
                            payload: v1::InteractionBatch {
                                interactions: vec![*invalid.item],
                            }
                            .encode_to_vec()
                            .into(),
                            reason: invalid.errors.to_string(),
                            index: Some(index),
                            content_type: Some(wire::PROTOBUF.to_owned()),
                        }),
                    }
                }
                dead
            }
        },
        Some(other) => vec![whole(
            format!(
                "Content-Type {other} is not accepted: use application/json or application/x-protobuf"
            ),
            content_type,
        )],
    }
}

/// Stores interactions in chunks of [`INGEST_CHUNK`], a few at a time;
/// returns what became of each. An error leaves the chunks before it
/// stored.
async fn store_all(
    pipeline: &Pipeline,
    interactions: Vec<Interaction>,
) -> Result<Vec<Ingested>, PipelineError> {
    let mut chunks = Vec::with_capacity(interactions.len().div_ceil(INGEST_CHUNK));
    let mut rest = interactions;
    while rest.len() > INGEST_CHUNK {
        let tail = rest.split_off(INGEST_CHUNK);
        chunks.push(std::mem::replace(&mut rest, tail));
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    // `buffered` starts the chunks in order and yields them in order.
    let mut stored = futures::stream::iter(chunks)
        .map(|chunk| pipeline.ingest(chunk))
        .buffered(CHUNKS_IN_FLIGHT);
    let mut all = Vec::new();
    while let Some(outcomes) = stored.next().await {
        all.extend(outcomes?);
    }
    Ok(all)
}

/// One JSON message as an interaction, or why it is not one.
fn parse(payload: &[u8]) -> Result<Interaction, String> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("$: not JSON: {e}"))?;
    Interaction::from_json(&value).map_err(|errors| errors.to_string())
}

/// Header values are one line.
fn single_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

async fn pause(stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(RETRY) => {}
        _ = stop.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn bad_messages_say_which_field() {
        assert!(parse(b"{not json").unwrap_err().starts_with("$: not JSON"));
        let missing = parse(br#"{"type":"VIEW"}"#).unwrap_err();
        assert!(missing.contains("timestamp"), "{missing}");
    }
}
