//! Prometheus metrics, one registry per application (no process globals, so
//! tests can run many apps side by side). HTTP metrics are labelled by route
//! template (`/v1/profiles/{user_id}`), never by raw path.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The application's metrics; cloning shares them (one pointer: the
/// middleware and handlers get a copy per request).
#[derive(Clone, Debug)]
pub struct Metrics(Arc<MetricHandles>);

impl Deref for Metrics {
    type Target = MetricHandles;

    fn deref(&self) -> &MetricHandles {
        &self.0
    }
}

#[derive(Debug)]
pub struct MetricHandles {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub ingest_accepted: IntCounter,
    pub ingest_duplicates: IntCounter,
    /// Interactions and events of erased users, dropped (SPEC §10).
    pub ingest_erased: IntCounter,
    pub ingest_rejected: IntCounter,
    pub ingest_refused: IntCounter,
    pub queue_depth: IntGauge,
    pub log_unindexed: IntGauge,
    pub outbox_depth: IntGauge,
    pub bus_pending: IntGauge,
    pub bus_consumed: IntCounter,
    pub bus_dead_letters: IntCounter,
    pub bus_published: IntCounter,
    pub users_in_memory: IntGauge,
    pub model: IntGaugeVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: T) -> T {
    // Names are fixed and distinct: registration can only fail on a duplicate.
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    c
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Counts what became of ingested interactions.
    pub fn count_ingested(&self, outcomes: &[crate::pipeline::Ingested]) {
        let (stored, duplicates, erased) = crate::pipeline::tally(outcomes);
        self.ingest_accepted.inc_by(stored as u64);
        self.ingest_duplicates.inc_by(duplicates as u64);
        self.ingest_erased.inc_by(erased as u64);
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("micro".into()), None).unwrap_or_default();
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help)).unwrap_or_else(|_| unreachable_metric())
        };
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric())
        };
        Metrics(Arc::new(MetricHandles {
            outbox_depth: register(
                &registry,
                gauge(
                    "outbox_depth",
                    "Events in the outbox not yet acknowledged by NATS",
                ),
            ),
            bus_pending: register(
                &registry,
                gauge(
                    "bus_consumer_pending",
                    "Interactions on NATS not yet delivered to this consumer (lag)",
                ),
            ),
            bus_consumed: register(
                &registry,
                counter(
                    "bus_interactions_total",
                    "Interactions taken from NATS and stored or found stored",
                ),
            ),
            bus_dead_letters: register(
                &registry,
                counter(
                    "bus_dead_letters_total",
                    "NATS messages sent to the dead-letter subject",
                ),
            ),
            bus_published: register(
                &registry,
                counter(
                    "bus_events_published_total",
                    "Events published on NATS from the outbox",
                ),
            ),
            requests: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "http_requests_total",
                        "HTTP requests by route template and status",
                    ),
                    &["method", "route", "status"],
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            latency: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_duration_seconds",
                        "HTTP request latency by route template",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                        0.5, 1.0, 2.5, 5.0,
                    ]),
                    &["method", "route"],
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            ingest_accepted: register(
                &registry,
                counter("ingest_accepted_total", "Interactions stored"),
            ),
            ingest_duplicates: register(
                &registry,
                counter(
                    "ingest_duplicates_total",
                    "Interactions already stored (by id)",
                ),
            ),
            ingest_erased: register(
                &registry,
                counter(
                    "ingest_erased_total",
                    "Interactions and events of erased users, dropped",
                ),
            ),
            ingest_rejected: register(
                &registry,
                counter("ingest_rejected_total", "Interactions refused as invalid"),
            ),
            ingest_refused: register(
                &registry,
                counter(
                    "ingest_overload_total",
                    "Requests refused because the queue was full",
                ),
            ),
            queue_depth: register(
                &registry,
                IntGauge::new("ingest_queue_depth", "Interactions waiting for the writer")
                    .unwrap_or_else(|_| unreachable_metric()),
            ),
            log_unindexed: register(
                &registry,
                IntGauge::new(
                    "log_unindexed_interactions",
                    "Interactions appended but not yet in the log's index tables",
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            users_in_memory: register(
                &registry,
                IntGauge::new("users_in_memory", "Users whose live state is held")
                    .unwrap_or_else(|_| unreachable_metric()),
            ),
            model: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("model_info", "The model version serving (value 1)"),
                    &["version"],
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            registry,
        }))
    }
}

impl MetricHandles {
    /// Marks `version` as the one serving.
    pub fn set_model(&self, version: Option<&str>) {
        self.model.reset();
        if let Some(v) = version {
            self.model.with_label_values(&[v]).set(1);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Metric constructors only fail on invalid names, which are literals here.
fn unreachable_metric<T>() -> T {
    panic!("invalid metric definition")
}

/// Middleware recording count and latency per route template.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    metrics
        .latency
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}
