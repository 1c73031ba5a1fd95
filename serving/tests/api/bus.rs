//! The event bus (SPEC §8): interactions consumed from NATS once each with
//! bad ones dead-lettered, the outbox across a NATS outage, the consumer
//! across a database outage, and the welcome e-mail over either bus.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_welcomed, catalog_targets, eventually, eventually_within, interaction,
    interactions_counted, metric, on_both_stores, postgres_admin_url, publish_when_ready,
    register_ada, welcome_over_nats, Backend, NatsServer, SmtpSink, World,
};

on_both_stores!(
    nats_interactions_are_stored_once_and_bad_ones_dead_lettered,
    nats_outage_loses_no_event_and_repeats_none,
    registration_sends_a_welcome_over_the_in_process_bus,
    registration_sends_a_welcome_over_nats,
);

async fn registration_sends_a_welcome_over_the_in_process_bus(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--welcome-smtp-url", &smtp.url()]).await;
    register_ada(&app, "ada").await;
    eventually("the welcome e-mail", || async {
        !smtp.received().is_empty()
    })
    .await;
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_welcomed(&received[0], "ada");
    app.stop().await;
}

async fn registration_sends_a_welcome_over_nats(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    welcome_over_nats(&app, &nats, &smtp, "ada-nats").await;
    app.stop().await;
}

async fn nats_interactions_are_stored_once_and_bad_ones_dead_lettered(backend: Backend) {
    let nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    let t = catalog_targets(&world, 5);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    // 200 interactions of 20 users, then the first 30 again (redeliveries),
    // and one that is not an interaction.
    let all: Vec<Value> = (0..200)
        .map(|n| {
            let user = format!("bus-{}", n % 20);
            interaction(
                &user,
                &t[n % 5],
                "VIEW",
                1 + (n % 28) as u32,
                Some(&format!("bus-{n}")),
            )
        })
        .collect();
    for v in all.iter().chain(&all[..30]) {
        publish_when_ready(
            &js,
            "micro.interactions.shop",
            serde_json::to_vec(v).unwrap(),
        )
        .await;
    }
    let mut bad = interaction("bus-0", &t[0], "VIEW", 3, Some("bus-bad"));
    bad["timestamp"] = json!("yesterday");
    publish_when_ready(
        &js,
        "micro.interactions.shop",
        serde_json::to_vec(&bad).unwrap(),
    )
    .await;
    eventually("the bus batch to be stored", || async {
        metric(&app, "micro_bus_interactions_total").await >= 230.0
            && metric(&app, "micro_bus_dead_letters_total").await >= 1.0
    })
    .await;
    assert_eq!(
        interactions_counted(&app, "bus-", 20).await,
        200,
        "each interaction counted once"
    );
    let (_, events) = app
        .get_json("/v1/events?type=interaction.recorded&limit=500")
        .await;
    assert_eq!(
        events["items"].as_array().map(Vec::len),
        Some(200),
        "stored once"
    );
    // The bad one is on the dead-letter subject with the field named.
    let dead = js
        .get_stream(serving::broker::DEAD_LETTER_STREAM)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(serving::broker::DEAD_LETTER_SUBJECT)
        .await
        .unwrap();
    let reason = dead.headers.get("Micro-Error").unwrap().to_string();
    assert!(reason.contains("timestamp"), "{reason}");
    let body: Value = serde_json::from_slice(&dead.payload).unwrap();
    assert_eq!(body["id"], "bus-bad");
    assert_eq!(metric(&app, "micro_bus_consumer_pending").await, 0.0);
    app.stop().await;
}

/// Registrations go on while NATS is down; when it is back, every
/// `user.registered` reaches the stream exactly once.
async fn nats_outage_loses_no_event_and_repeats_none(backend: Backend) {
    let mut nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    let register = |n: usize| {
        let app = &app;
        async move {
            let (s, v) = app
                .post_json(
                    "/v1/users",
                    &json!({"userId": format!("out-{n}"), "email": format!("out-{n}@example.com")}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
    };
    for n in 0..10 {
        register(n).await;
    }
    eventually("the first events to be published", || async {
        metric(&app, "micro_bus_events_published_total").await >= 10.0
    })
    .await;
    nats.kill();
    for n in 10..20 {
        register(n).await;
    }
    // Registered and erased while NATS is down: nothing about them goes out
    // but their erasure.
    register(99).await;
    let (s, _) = app.delete("/v1/users/out-99").await;
    assert_eq!(s, StatusCode::OK);
    let (s, ready) = app.get_json("/readyz").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "HTTP stays ready while NATS is down: {ready}"
    );
    eventually("the relay to notice NATS is down", || async {
        metric(&app, "micro_outbox_depth").await >= 10.0
    })
    .await;
    nats.restart();
    eventually("the outbox to drain", || async {
        metric(&app, "micro_outbox_depth").await == 0.0
    })
    .await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = js.get_stream(serving::broker::EVENTS_STREAM).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut registered: Vec<(String, String)> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    let mut about_erased = 0;
    for seq in 1..=last {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let e: Value = serde_json::from_slice(&m.payload).unwrap();
        if m.subject.as_str() == "micro.events.user.registered" {
            registered.push((
                e["id"].as_str().unwrap().to_owned(),
                e["payload"]["userId"].as_str().unwrap().to_owned(),
            ));
        } else if m.subject.as_str() == "micro.events.user.deleted" {
            deleted.push(e["payload"]["userId"].as_str().unwrap().to_owned());
        } else if e["payload"]["userId"] == "out-99" {
            about_erased += 1;
        }
    }
    assert_eq!(deleted, vec!["out-99".to_owned()]);
    assert_eq!(
        about_erased, 0,
        "nothing else about the erased user was published"
    );
    let mut users: Vec<&str> = registered.iter().map(|(_, u)| u.as_str()).collect();
    users.sort_unstable();
    let mut expected: Vec<String> = (0..20).map(|n| format!("out-{n}")).collect();
    expected.sort_unstable();
    assert_eq!(users, expected, "every registration published exactly once");
    app.stop().await;
}

/// The database goes away while interactions arrive over NATS: nothing is
/// acknowledged until it is stored, so when the database is back every
/// interaction is stored, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_consumer_waits_out_a_database_outage() {
    use sqlx::Connection;
    let nats = NatsServer::start();
    let world = World::new(Backend::Postgres).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    let t = catalog_targets(&world, 5);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let publish = |from: usize, to: usize| {
        let (js, t) = (&js, &t);
        async move {
            for n in from..to {
                let v = interaction(
                    &format!("db-{}", n % 10),
                    &t[n % 5],
                    "VIEW",
                    1 + (n % 28) as u32,
                    Some(&format!("db-{n}")),
                );
                publish_when_ready(
                    js,
                    "micro.interactions.shop",
                    serde_json::to_vec(&v).unwrap(),
                )
                .await;
            }
        }
    };
    publish(0, 50).await;
    eventually("the first 50 to be stored", || async {
        metric(&app, "micro_bus_interactions_total").await >= 50.0
    })
    .await;

    let (_, name) = world.database_url.rsplit_once('/').unwrap();
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    publish(50, 150).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        metric(&app, "micro_bus_interactions_total").await < 150.0,
        "nothing can be stored while the database is away"
    );
    sqlx::raw_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();

    eventually_within(
        "all 150 stored after the outage",
        Duration::from_secs(30),
        || async {
            let (s, events) = app
                .get_json("/v1/events?type=interaction.recorded&limit=500")
                .await;
            s == StatusCode::OK && events["items"].as_array().map(Vec::len) == Some(150)
        },
    )
    .await;
    assert_eq!(
        interactions_counted(&app, "db-", 10).await,
        150,
        "each interaction counted once"
    );
    eventually("the consumer to catch up", || async {
        metric(&app, "micro_bus_consumer_pending").await == 0.0
    })
    .await;
    app.stop().await;
}
