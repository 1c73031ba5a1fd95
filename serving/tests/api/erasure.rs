//! Erasure that sticks (SPEC §10): after `DELETE /v1/users/{id}`, what the
//! user sent before — retried over HTTP, redelivered or replayed over NATS —
//! is dropped and counted until they register again; what is kept to know
//! it is a keyed hash; their queued events never reach the bus; and on
//! SQLite no byte of theirs stays in the files.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    catalog_targets, eventually, interaction, metric, on_both_stores, publish_when_ready, Backend,
    NatsServer, TestApp, World,
};

on_both_stores!(
    what_an_erased_user_sent_before_stays_out,
    erased_users_queued_events_never_reach_the_bus,
);

async fn register(app: &TestApp, id: &str, email: &str) {
    let (s, v) = app
        .post_json(
            "/v1/users",
            &json!({"userId": id, "email": email, "name": format!("Name of {id}"),
                    "birthYear": 1980}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn post(app: &TestApp, items: &[Value]) -> Value {
    let (s, v) = app.post_json("/v1/interactions", &json!(items)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Erase, then retry over HTTP and redeliver over NATS: nothing comes back,
/// every dropped item is counted, across a restart; registering again lifts
/// it; and the tombstone is not the id.
async fn what_an_erased_user_sent_before_stays_out(backend: Backend) {
    let nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    let t = catalog_targets(&world, 3);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    register(&app, "eve", "eve@example.com").await;
    let sent = [
        interaction("eve", &t[0], "VIEW", 3, Some("eve-1")),
        interaction("eve", &t[1], "PURCHACE", 4, Some("eve-2")),
    ];
    assert_eq!(post(&app, &sent).await["accepted"], 2);
    let over_nats = interaction("eve", &t[2], "SAVE", 5, Some("eve-3"));
    publish_when_ready(
        &js,
        "micro.interactions.shop",
        over_nats.to_string().into_bytes(),
    )
    .await;
    eventually("the NATS interaction to be stored", || async {
        app.get_json("/v1/profiles/eve").await.1["interactionCount"] == 3
    })
    .await;

    let (s, v) = app.delete("/v1/users/eve").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["removed"]["interactions"], 3, "{v}");

    // The client retries its old request, with one new interaction.
    let mut retried = sent.to_vec();
    retried.push(interaction("eve", &t[2], "VIEW", 6, None));
    let v = post(&app, &retried).await;
    assert_eq!(
        (
            v["accepted"].clone(),
            v["duplicates"].clone(),
            v["erased"].clone()
        ),
        (json!(0), json!(0), json!(3)),
        "{v}"
    );
    // JetStream redelivers the old message and a replay brings another.
    let before = metric(&app, "micro_ingest_erased_total").await;
    assert_eq!(before, 3.0);
    for m in [
        over_nats.clone(),
        interaction("eve", &t[0], "SHARE", 7, None),
    ] {
        publish_when_ready(&js, "micro.interactions.shop", m.to_string().into_bytes()).await;
    }
    eventually("the NATS items to be dropped and counted", || async {
        metric(&app, "micro_ingest_erased_total").await == 5.0
    })
    .await;
    // An event about the user is refused, and said to be.
    let (s, v) = app
        .post_json(
            "/v1/events",
            &json!({"type": "cart.abandoned", "payload": {"userId": "eve"}}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::GONE, Some("erased")),
        "{v}"
    );
    let (s, v) = app
        .post_json(
            "/v1/events",
            &json!({"type": "interaction.recorded", "payload": interaction("eve", &t[1], "VIEW", 8, None)}),
        )
        .await;
    assert_eq!(s, StatusCode::GONE, "{v}");
    assert_eq!(metric(&app, "micro_ingest_erased_total").await, 7.0);
    assert_eq!(
        app.get_json("/v1/profiles/eve").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, events) = app.get_json("/v1/events?userId=eve").await;
    assert_eq!(events["items"], json!([]), "{events}");

    // A restart keeps the tombstone, and it is not the id.
    app.stop().await;
    assert_eq!(world.rows_of("eve").await, 0, "a row of eve is left");
    let tombstones = world.strings("SELECT tombstone FROM erased_users").await;
    assert_eq!(tombstones.len(), 1);
    assert!(
        tombstones[0].len() == 32 && tombstones[0].chars().all(|c| c.is_ascii_hexdigit()),
        "a 128-bit keyed hash, not the id: {tombstones:?}"
    );
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    assert_eq!(
        post(&app, &sent).await["erased"],
        2,
        "still erased after a restart"
    );
    publish_when_ready(
        &js,
        "micro.interactions.shop",
        over_nats.to_string().into_bytes(),
    )
    .await;
    eventually("the redelivery after the restart to be dropped", || async {
        metric(&app, "micro_ingest_erased_total").await == 3.0
    })
    .await;
    assert_eq!(world.rows_of("eve").await, 0);

    // Registering again lifts the erasure: eve starts afresh.
    register(&app, "eve", "eve@example.com").await;
    let v = post(&app, &sent).await;
    assert_eq!(
        (v["accepted"].clone(), v["erased"].clone()),
        (json!(2), json!(0)),
        "{v}"
    );
    let (_, p) = app.get_json("/v1/profiles/eve").await;
    assert_eq!(p["interactionCount"], 2, "{p}");
    assert!(world
        .strings("SELECT tombstone FROM erased_users")
        .await
        .is_empty());
    app.stop().await;
}

/// Events of a user queued while NATS was configured stay in the outbox
/// when the service later runs without it; erasing the user then must
/// still remove them, so that a later start with NATS publishes nothing of
/// theirs.
async fn erased_users_queued_events_never_reach_the_bus(backend: Backend) {
    let mut nats = NatsServer::start();
    let world = World::new(backend).await;
    // NATS is down: events wait in the outbox.
    nats.kill();
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    register(&app, "olga", "olga@example.com").await;
    register(&app, "otto", "otto@example.com").await;
    app.stop().await;
    assert!(world.rows_of("olga").await > 1, "olga's events are queued");
    // Without NATS, olga is erased.
    let app = world.spawn().await;
    let (s, v) = app.delete("/v1/users/olga").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.stop().await;
    assert_eq!(world.rows_of("olga").await, 0, "her queued events are gone");
    // With NATS back, only otto's events go out.
    nats.restart();
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    eventually("the outbox to be published", || async {
        metric(&app, "micro_outbox_depth").await == 0.0
            && metric(&app, "micro_bus_events_published_total").await > 0.0
    })
    .await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = js.get_stream(serving::broker::EVENTS_STREAM).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut bodies = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            bodies.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    }
    assert!(bodies.iter().any(|b| b.contains("otto")), "{bodies:?}");
    assert!(!bodies.iter().any(|b| b.contains("olga")), "{bodies:?}");
    app.stop().await;
}

/// On SQLite, deleted rows are overwritten (`secure_delete`) and the
/// write-ahead logs emptied after an erasure: no byte of the erased user's
/// e-mail, name or ids is left in any file of the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_byte_of_an_erased_user_stays_in_the_sqlite_files() {
    let world = World::new(Backend::Sqlite).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 2);
    let secrets = [
        "fenna-7731@example.com",
        "Name of fenna-7731",
        "fenna-7731",
        "fenna-ix-1",
    ];
    register(&app, "fenna-7731", secrets[0]).await;
    register(&app, "kept-user", "kept@example.com").await;
    post(
        &app,
        &[
            interaction("fenna-7731", &t[0], "VIEW", 3, Some("fenna-ix-1")),
            interaction("kept-user", &t[1], "VIEW", 3, Some("kept-ix-1")),
        ],
    )
    .await;
    // Written back and indexed: the bytes are in every file.
    app.get_json("/v1/profiles?limit=10").await;
    app.wait_indexed().await;
    let holds = |needle: &str| {
        world
            .sqlite_files()
            .into_iter()
            .filter(|f| {
                let bytes = std::fs::read(f).unwrap_or_default();
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
    };
    assert!(!holds(secrets[0]).is_empty(), "the e-mail is stored before");
    let (s, v) = app.delete("/v1/users/fenna-7731").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The erasure's truncating checkpoint is best-effort against readers:
    // give a reader that was mid-query a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for needle in secrets {
        assert_eq!(holds(needle), Vec::<String>::new(), "{needle:?} is left");
    }
    assert!(!holds("kept@example.com").is_empty(), "other users stay");
    app.stop().await;
}

/// Micro's streams keep messages for `MICRO_BUS_RETENTION`, and a change of
/// it reaches streams made before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_keep_messages_for_the_configured_retention() {
    let nats = NatsServer::start();
    let world = World::new(Backend::Sqlite).await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let max_ages = || async {
        let mut ages = Vec::new();
        for name in [
            serving::broker::EVENTS_STREAM,
            serving::broker::INTERACTIONS_STREAM,
            serving::broker::DEAD_LETTER_STREAM,
        ] {
            match js.get_stream(name).await {
                Ok(mut s) => ages.push(s.info().await.unwrap().config.max_age),
                Err(_) => return None,
            }
        }
        Some(ages)
    };
    let week = Duration::from_secs(7 * 24 * 3600);
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    eventually("the streams at the default retention", || async {
        max_ages().await == Some(vec![week; 3])
    })
    .await;
    app.stop().await;
    let app = world
        .spawn_with(&["--nats-url", &nats.url(), "--bus-retention", "2h"])
        .await;
    let two_hours = Duration::from_secs(2 * 3600);
    eventually("the streams updated to 2 h", || async {
        max_ages().await == Some(vec![two_hours; 3])
    })
    .await;
    app.stop().await;
}
