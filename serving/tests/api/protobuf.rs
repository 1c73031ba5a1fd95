//! Protobuf on the wire (SPEC §12): `POST /v1/interactions` with
//! `application/x-protobuf`, NATS messages with that content type, and
//! events published in protobuf with `MICRO_BUS_FORMAT=protobuf`, each
//! answered or read as its JSON form is.

use std::time::Duration;

use proto::{v1, Message};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    catalog_targets, eventually, interaction, interactions_counted, metric, on_both_stores,
    publish_when_ready, register_ada, welcome_over_nats, Backend, NatsServer, SmtpSink, TestApp,
    World,
};

on_both_stores!(
    protobuf_batches_get_the_answers_json_ones_get,
    protobuf_batches_on_nats_are_stored_and_bad_items_dead_lettered,
    protobuf_events_are_published_and_the_welcome_consumer_reads_them,
);

/// An interaction of [`interaction`] in protobuf, with no id when the
/// JSON one has none (derived by the service, as for JSON).
fn pb(json: &Value) -> v1::Interaction {
    let valid = features::Interaction::from_json(json).expect("a valid interaction");
    let mut item = v1::Interaction::from(&valid);
    if json.get("id").is_none() {
        item.id = None;
    }
    item
}

fn bytes(items: Vec<v1::Interaction>) -> Vec<u8> {
    v1::InteractionBatch {
        interactions: items,
    }
    .encode_to_vec()
}

async fn post_protobuf(app: &TestApp, body: Vec<u8>) -> (StatusCode, Value) {
    app.send_raw(
        reqwest::Method::POST,
        "/v1/interactions",
        "application/x-protobuf",
        body,
    )
    .await
}

/// Good, duplicate and invalid items, an all-invalid batch, an
/// undecodable body and one over the limit: each answered as the same
/// items in JSON are, with the same field names, messages and ids.
async fn protobuf_batches_get_the_answers_json_ones_get(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--max-body-bytes", "20000"]).await;
    let t = catalog_targets(&world, 2);
    let given = interaction("pia", &t[0], "VIEW", 3, Some("pb-1"));
    let derived = interaction("pia", &t[1], "PURCHACE", 4, None);
    let invalid = v1::Interaction {
        r#type: "BUY".into(),
        ..pb(&interaction("pia", &t[0], "SAVE", 5, None))
    };
    let invalid = v1::Interaction {
        timestamp: None,
        actor: None,
        ..invalid
    };
    let items = vec![pb(&given), pb(&derived), invalid, pb(&given)];
    let (s, answer) = post_protobuf(&app, bytes(items)).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(2), Some(1)),
        "{answer}"
    );
    assert_eq!(answer["rejectedCount"], 1);
    assert_eq!(answer["rejected"][0]["index"], 2);
    let ids = answer["ids"].as_array().unwrap();
    assert_eq!(ids[0], "pb-1");
    assert!(ids[1].as_str().unwrap().starts_with("ix_"), "{answer}");
    assert!(ids[2].is_null());
    assert_eq!(ids[3], "pb-1");
    let (_, p) = app.get_json("/v1/profiles/pia").await;
    assert_eq!(p["interactionCount"], 2, "{p}");

    // The same items in JSON: stored before (the derived id is the
    // same), the bad one refused with the same errors.
    let mut bad = interaction("pia", &t[0], "BUY", 5, None);
    bad.as_object_mut().unwrap().remove("timestamp");
    bad.as_object_mut().unwrap().remove("actor");
    let (s, json_answer) = app
        .post_json("/v1/interactions", &json!([given, derived, bad, given]))
        .await;
    assert_eq!(s, StatusCode::OK, "{json_answer}");
    assert_eq!(json_answer["duplicates"], 3);
    assert_eq!(json_answer["ids"], answer["ids"]);
    assert_eq!(json_answer["rejected"], answer["rejected"]);
    assert_eq!(json_answer["rejectedSummary"], answer["rejectedSummary"]);
    let fields: Vec<&str> = answer["rejected"][0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["type", "timestamp", "actor.id", "actor.type"]);

    // Every item invalid: 422 with the items by index, as for JSON.
    let (s, v) = post_protobuf(&app, bytes(vec![v1::Interaction::default()])).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid");
    assert_eq!(v["error"]["details"]["rejected"][0]["index"], 0, "{v}");
    // Not a protobuf InteractionBatch: field 1 says 127 bytes follow.
    let (s, v) = post_protobuf(&app, vec![0x0a, 0x7f, 0x01]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "malformed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a protobuf InteractionBatch"),
        "{v}"
    );
    // The body limit holds for protobuf too.
    let big: Vec<v1::Interaction> = (0..400)
        .map(|i| {
            pb(&interaction(
                "pia",
                &t[0],
                "VIEW",
                6,
                Some(&format!("pb-big-{i}")),
            ))
        })
        .collect();
    let big = bytes(big);
    assert!(big.len() > 20_000);
    let (s, v) = post_protobuf(&app, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // The empty batch, like `[]`: nothing to do.
    let (s, v) = post_protobuf(&app, Vec::new()).await;
    assert_eq!(
        (s, v["accepted"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{v}"
    );
    let (_, p) = app.get_json("/v1/profiles/pia").await;
    assert_eq!(p["interactionCount"], 2, "refused requests change nothing");
    app.stop().await;
}

/// Publishes with headers on JetStream, retrying until the service has
/// created the stream.
async fn publish_with_type(js: &async_nats::jetstream::Context, content_type: &str, body: Vec<u8>) {
    for _ in 0..200 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Content-Type", content_type);
        if let Ok(ack) = js
            .publish_with_headers("micro.interactions.shop", headers, body.clone().into())
            .await
        {
            if ack.await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("JetStream did not take the message");
}

/// Every message of a stream, in order.
async fn stream_messages(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let mut stream = js.get_stream(name).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut messages = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            messages.push(m);
        }
    }
    messages
}

/// The `user.registered` event on the events stream, checked to carry
/// `content_type`.
async fn published_registration(
    js: &async_nats::jetstream::Context,
    content_type: &str,
) -> async_nats::jetstream::message::StreamMessage {
    let events = stream_messages(js, serving::broker::EVENTS_STREAM).await;
    let registered = events
        .into_iter()
        .find(|m| m.subject.as_str() == "micro.events.user.registered")
        .expect("published");
    assert_eq!(
        registered
            .headers
            .get("Content-Type")
            .map(|v| v.to_string())
            .as_deref(),
        Some(content_type)
    );
    registered
}

/// A protobuf batch on NATS is read as HTTP reads it: valid items
/// stored (once, redelivered or not), each invalid one dead-lettered
/// alone with its index and reason, an undecodable message
/// dead-lettered whole; JSON messages without the header still work.
async fn protobuf_batches_on_nats_are_stored_and_bad_items_dead_lettered(backend: Backend) {
    let nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    let t = catalog_targets(&world, 5);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut items: Vec<v1::Interaction> = (0..50)
        .map(|n| {
            pb(&interaction(
                &format!("pbus-{}", n % 5),
                &t[n % 5],
                "VIEW",
                1 + (n % 28) as u32,
                Some(&format!("pbus-{n}")),
            ))
        })
        .collect();
    let mut bad = items[7].clone();
    bad.id = Some("pbus-bad".into());
    bad.timestamp = None;
    items.insert(7, bad.clone());
    let batch = bytes(items);
    // Twice: a redelivery is stored once.
    publish_with_type(&js, "application/x-protobuf", batch.clone()).await;
    publish_with_type(&js, "application/x-protobuf", batch).await;
    publish_with_type(&js, "application/x-protobuf", vec![0x0a, 0x7f, 0x01]).await;
    publish_when_ready(
        &js,
        "micro.interactions.shop",
        serde_json::to_vec(&interaction("pbus-0", &t[0], "SAVE", 9, Some("pbus-json"))).unwrap(),
    )
    .await;
    eventually("the bus messages to be stored", || async {
        metric(&app, "micro_bus_interactions_total").await >= 101.0
            && metric(&app, "micro_bus_dead_letters_total").await >= 3.0
    })
    .await;
    assert_eq!(
        interactions_counted(&app, "pbus-", 5).await,
        51,
        "each interaction counted once"
    );
    let dead = stream_messages(&js, serving::broker::DEAD_LETTER_STREAM).await;
    assert_eq!(dead.len(), 3);
    for m in &dead[..2] {
        let header = |name: &str| m.headers.get(name).map(|v| v.to_string());
        assert_eq!(header("Micro-Index").as_deref(), Some("7"));
        assert_eq!(
            header("Content-Type").as_deref(),
            Some("application/x-protobuf")
        );
        assert_eq!(
            header("Micro-Error").as_deref(),
            Some("timestamp: is required")
        );
        let one = v1::InteractionBatch::decode(m.payload.as_ref()).unwrap();
        assert_eq!(one.interactions, vec![bad.clone()], "the item as sent");
    }
    let undecodable = dead[2].headers.get("Micro-Error").unwrap().to_string();
    assert!(
        undecodable.starts_with("$: not a protobuf InteractionBatch"),
        "{undecodable}"
    );
    assert_eq!(dead[2].payload.as_ref(), [0x0a, 0x7f, 0x01]);

    // Events go out as JSON by default, and say so.
    register_ada(&app, "pbus-ada").await;
    eventually("user.registered to be published", || async {
        metric(&app, "micro_bus_events_published_total").await >= 1.0
    })
    .await;
    let registered = published_registration(&js, "application/json").await;
    let e: Value = serde_json::from_slice(&registered.payload).unwrap();
    assert_eq!(e["payload"]["userId"], "pbus-ada");
    app.stop().await;
}

/// With `MICRO_BUS_FORMAT=protobuf` events are `micro.v1.Event`s, and
/// `micro-welcome` reads them as it reads JSON ones.
async fn protobuf_events_are_published_and_the_welcome_consumer_reads_them(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world
        .spawn_with(&["--nats-url", &nats.url(), "--bus-format", "protobuf"])
        .await;
    welcome_over_nats(&app, &nats, &smtp, "ada-pb").await;

    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let registered = published_registration(&js, "application/x-protobuf").await;
    let event = v1::Event::decode(registered.payload.as_ref())
        .unwrap()
        .to_event()
        .unwrap();
    assert_eq!(event.kind, "user.registered");
    assert!(event.id.starts_with("ev_"), "{event:?}");
    assert_eq!(event.payload["userId"], "ada-pb");
    let keys: Vec<&String> = event.payload.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["createdAt", "userId"], "no personal data on the bus");
    // The event as the API stores it is the one published.
    let (s, stored) = app.get_json(&format!("/v1/events/{}", event.id)).await;
    assert_eq!(s, StatusCode::OK, "{stored}");
    assert_eq!(stored, serde_json::to_value(&event).unwrap());
    app.stop().await;
}
