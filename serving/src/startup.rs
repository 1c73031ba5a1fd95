//! Building and running the service: open the store, load the promoted model,
//! recover profiles, start the pipeline, bind, serve, and on SIGTERM or
//! Ctrl-C finish in-flight requests and flush before exiting.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use features::registry::Registry;
use tokio::net::TcpListener;

use crate::broker::{Broker, BrokerError};
use crate::bus::{Bus, InProcessBus};
use crate::config::Config;
use crate::demo::{Demo, DemoParams};
use crate::engine::Engine;
use crate::models::Models;
use crate::pipeline::{Limits, Pipeline, Tasks};
use crate::routes::{app, AppState, Shared};
use crate::store;
use crate::telemetry::Metrics;
use crate::welcome::{WelcomeError, WelcomeMailer};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Welcome(#[from] WelcomeError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    tasks: Tasks,
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let store = store::connect(config.effective_database_url()).await?;
        let engine = Arc::new(Engine::new());
        let metrics = Metrics::new();
        let models = Arc::new(Models::new(
            Arc::new(Registry::new(&config.models_dir)),
            engine.clone(),
            metrics.clone(),
        ));
        match models.activate_current().await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!(
                dir = %config.models_dir.display(),
                "no promoted model: profiles carry declared fields and counts only"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "the promoted model cannot be served; profiles carry declared fields and counts until one is promoted"
            ),
        }
        let empty = store.max_seq().await? == 0
            && store.list_users(None, 1).await?.is_empty()
            && store.profile_ids(None, 1).await?.is_empty();
        engine.set_complete(empty);
        let bus = Arc::new(InProcessBus::new(4_096));
        let limits = Limits {
            queued_interactions: config.ingest_queue,
            flush_interval: std::time::Duration::from_millis(config.profile_flush_ms.max(1)),
            ..Limits::default()
        };
        // Before recovery: the profiles it rewrites are announced on NATS too.
        store.set_outbox(config.nats_url.is_some());
        let tombstone_key = store
            .secret(crate::erasure::TOMBSTONE_KEY, &crate::erasure::new_key())
            .await?;
        let tombstones = Arc::new(crate::erasure::Tombstones::new(
            &tombstone_key,
            store.tombstones().await?,
        ));
        let (pipeline, mut tasks) = Pipeline::start(
            store.clone(),
            engine.clone(),
            bus.clone(),
            tombstones,
            limits,
        );
        let recovered = pipeline.recover().await?;
        if recovered > 0 {
            tracing::info!(
                users = recovered,
                "profiles rebuilt from interactions newer than the last flush"
            );
        }
        let broker = match &config.nats_url {
            Some(url) => {
                let broker = Broker::connect(url)
                    .await?
                    .with_event_format(config.bus_format)
                    .with_retention(config.bus_retention);
                tracing::info!(%url, events = ?config.bus_format, "NATS JetStream: consuming micro.interactions.>, publishing micro.events.<type>");
                let stop = tasks.feeder_stop();
                tasks.add_feeders(broker.start(
                    store.clone(),
                    pipeline.clone(),
                    metrics.clone(),
                    stop,
                ));
                Some(broker)
            }
            None => None,
        };
        let mut demo_status = None;
        if config.demo {
            let demo = Demo::new(DemoParams {
                per_second: config.demo_rate,
                ..DemoParams::default()
            });
            let load = demo
                .needs_loading(&store, config.effective_database_url())
                .await?;
            tracing::info!(load, per_second = config.demo_rate, "demo mode");
            demo_status = Some(demo.status());
            tasks.add_feeders(vec![tokio::spawn(crate::demo::run(
                demo,
                pipeline.clone(),
                metrics.clone(),
                load,
                tasks.feeder_stop(),
            ))]);
        }
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.bind,
                    source,
                })?;
        if let Some(smtp) = &config.welcome_smtp_url {
            let addr = listener.local_addr().map_err(StartupError::Serve)?;
            let api = format!("http://127.0.0.1:{}", addr.port());
            let mailer = WelcomeMailer::new(&api, smtp, &config.welcome_from)?;
            let events = bus.subscribe();
            tasks.add_feeders(vec![tokio::spawn(welcome_in_process(
                mailer,
                events,
                tasks.feeder_stop(),
            ))]);
            tracing::info!(%smtp, "welcome e-mails on for user.registered (in-process bus)");
        }
        let state = AppState::new(Shared {
            store,
            engine,
            pipeline,
            bus,
            broker,
            models,
            metrics,
            max_body_bytes: config.max_body_bytes,
            cors_origins: config.cors_origins.clone(),
            demo: demo_status,
        });
        Ok(Application {
            listener,
            state,
            tasks,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The application state (tests inspect the bus and engine through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> Result<(), StartupError> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then stops taking connections,
    /// finishes in-flight requests and queued work, and flushes profiles.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Application {
            listener,
            state,
            tasks,
        } = self;
        let pipeline = state.pipeline.clone();
        let served = axum::serve(listener, app(state))
            .with_graceful_shutdown(shutdown)
            .await;
        tasks.shutdown(&pipeline).await;
        tracing::info!("stopped");
        served.map_err(StartupError::Serve)
    }
}

/// Welcome e-mails from the in-process bus: at most once (events heard while
/// the process runs), retried a few times when SMTP or the API fail.
async fn welcome_in_process(
    mailer: WelcomeMailer,
    mut events: tokio::sync::broadcast::Receiver<features::Event>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.changed() => break,
        };
        let event = match event {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "welcome mailer fell behind the bus");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        for attempt in 1..=5u32 {
            match mailer.handle(&event).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(event = %event.id, attempt, error = %e, "welcome e-mail failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                        .await;
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
