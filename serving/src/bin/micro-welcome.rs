//! `micro-welcome`: the welcome-message consumer of the registration scenario,
//! as a service of its own. A durable JetStream consumer of
//! `micro.events.user.registered`: for each registration it reads the
//! profile API and sends a welcome e-mail over SMTP, acknowledging the event
//! only once the e-mail was accepted (a failure is retried later). Events are
//! read in JSON or protobuf, by their `Content-Type` header.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use clap::Parser;
use futures::StreamExt;
use serving::broker::{self, Broker};
use serving::welcome::WelcomeMailer;
use serving::wire;

#[derive(Parser, Debug)]
#[command(
    name = "micro-welcome",
    version,
    about = "Sends a welcome e-mail for every user.registered event"
)]
struct Args {
    /// NATS server with Micro's streams.
    #[arg(long, env = "MICRO_NATS_URL")]
    nats_url: String,
    /// Where Micro's HTTP API answers.
    #[arg(long, env = "MICRO_API_URL", default_value = "http://127.0.0.1:8080")]
    api_url: String,
    /// SMTP server (`smtp://host[:port]`).
    #[arg(long, env = "MICRO_WELCOME_SMTP_URL")]
    smtp_url: String,
    /// Sender address.
    #[arg(
        long,
        env = "MICRO_WELCOME_FROM",
        default_value = "Micro <welcome@localhost>"
    )]
    from: String,
    /// Durable consumer name (one per deployment of this service).
    #[arg(long, default_value = "micro-welcome")]
    consumer: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MICRO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mailer = WelcomeMailer::new(&args.api_url, &args.smtp_url, &args.from)?;
    let broker = Broker::connect(&args.nats_url).await?;
    let consumer = loop {
        match broker
            .events_consumer(&args.consumer, "micro.events.user.registered")
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "waiting for NATS");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(consumer = %args.consumer, "listening for user.registered");
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "receiving from NATS failed");
                continue;
            }
        };
        // JSON or protobuf, as the message's Content-Type says
        // (`MICRO_BUS_FORMAT` of the publishing micro-serve).
        let content_type = broker::content_type(message.headers.as_ref());
        let event = match wire::decode_event(content_type, &message.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "not an event; dropped");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            }
        };
        match mailer.handle(&event).await {
            Ok(()) => {
                let _ = message.ack().await;
            }
            Err(e) => {
                tracing::warn!(event = %event.id, error = %e, "welcome e-mail failed; will retry");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
            }
        }
    }
    Ok(())
}
