//! `POST /v1/interactions`: the three body forms, read-your-writes, refusal
//! by field with the good items of a batch kept, idempotent retries, and the
//! store's log underneath (ids kept once, sequence numbers never reused).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{catalog_targets, interaction, on_both_stores, Backend, World};

on_both_stores!(
    ingest_forms_and_read_your_writes,
    bad_input_is_refused_by_field_and_good_items_kept,
    thousands_of_bad_items_are_summarised_and_good_ones_kept,
    retries_are_stored_once,
    the_log_keeps_ids_once_and_never_reuses_a_seq,
);

async fn ingest_forms_and_read_your_writes(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 3);
    let (s, v) = app
        .post_json(
            "/v1/interactions",
            &interaction("ann", &t[0], "PURCHACE", 3, None),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    // Read-your-writes: the profile reflects the interaction as soon as the POST returned.
    let (s, p) = app.get_json("/v1/profiles/ann").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["interactionCount"], 1);
    assert_eq!(p["modelVersion"], json!(world.version()));
    assert!(
        p["about"]["spendingClass"]
            .as_u64()
            .is_some_and(|c| (1..=5).contains(&c)),
        "{p}"
    );
    assert!(p["about"]["actingLifeStage"].is_string(), "{p}");
    assert!(
        p["about"]["gender"].is_null(),
        "gender is never inferred: {p}"
    );
    assert!(!p["topics"].as_array().unwrap().is_empty(), "{p}");
    let array = json!([
        interaction("ann", &t[1], "VIEW", 4, None),
        interaction("ann", &t[2], "SAVE", 5, None),
        interaction("bob", &t[1], "INQUIRY", 5, None),
    ]);
    let (s, v) = app.post_json("/v1/interactions", &array).await;
    assert_eq!(
        (s, v["accepted"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{v}"
    );
    let ndjson = [
        interaction("ann", &t[0], "SHARE", 6, None),
        interaction("cy", &t[2], "VIEW", 6, None),
    ]
    .iter()
    .map(|v| v.to_string() + "\n")
    .collect::<String>();
    let (s, v) = app
        .post_raw("/v1/interactions", "application/x-ndjson", ndjson)
        .await;
    assert_eq!(
        (s, v["accepted"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{v}"
    );
    let (_, p) = app.get_json("/v1/profiles/ann").await;
    assert_eq!(p["interactionCount"], 4);
    let (_, p) = app.get_json("/v1/profiles/bob").await;
    assert_eq!(p["interactionCount"], 1);
    app.stop().await;
}

async fn bad_input_is_refused_by_field_and_good_items_kept(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--max-body-bytes", "20000"]).await;
    let t = catalog_targets(&world, 1);
    let mut bad = interaction("dee", &t[0], "BUY", 3, None);
    bad["timestamp"] = json!("yesterday");
    let batch = json!([
        interaction("dee", &t[0], "VIEW", 3, None),
        bad,
        {"type": "VIEW"},
        interaction("dee", &t[0], "SAVE", 4, None),
    ]);
    let (s, v) = app.post_json("/v1/interactions", &batch).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2);
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["index"], 1);
    let fields: Vec<&str> = rejected[0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"type") && fields.contains(&"timestamp"),
        "{fields:?}"
    );
    assert_eq!(rejected[1]["index"], 2);
    let (_, p) = app.get_json("/v1/profiles/dee").await;
    assert_eq!(
        p["interactionCount"], 2,
        "the good items of the batch are kept"
    );

    let (s, v) = app
        .post_json("/v1/interactions", &json!({"type": "VIEW"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["code"], "invalid");
    assert!(
        v["error"]["details"].to_string().contains("actor.id"),
        "{v}"
    );
    let (s, v) = app
        .post_raw("/v1/interactions", "application/json", "{not json".into())
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed"))
    );
    let (s, v) = app
        .post_raw("/v1/interactions", "text/plain", "hello".into())
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let big: Vec<Value> = (0..200)
        .map(|i| interaction("dee", &t[0], "VIEW", 5, Some(&format!("big-{i}"))))
        .collect();
    let (s, _) = app.post_json("/v1/interactions", &json!(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, p) = app.get_json("/v1/profiles/dee").await;
    assert_eq!(p["interactionCount"], 2, "refused requests change nothing");
    let (s, v) = app.get_json("/v1/profiles?spendingClass=9").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["details"][0]["field"], "spendingClass");
    app.stop().await;
}

/// A bulk load with thousands of bad items: the good ones are stored, the
/// answer lists the first 100 bad ones and sums up all of them by field and
/// reason (a few groups, not 1,500 entries).
async fn thousands_of_bad_items_are_summarised_and_good_ones_kept(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 1);
    let mut ndjson = String::new();
    for i in 0..2_000 {
        let mut item = interaction("fay", &t[0], "VIEW", 3, Some(&format!("bulk-{i}")));
        match i % 4 {
            0 => {}
            1 => item["type"] = json!(format!("BUY{i}")),
            2 => item["timestamp"] = json!(format!("day {i}")),
            _ => {
                item.as_object_mut().unwrap().remove("actor");
            }
        }
        ndjson.push_str(&item.to_string());
        ndjson.push('\n');
    }
    let (s, v) = app
        .post_raw("/v1/interactions", "application/x-ndjson", ndjson)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["rejectedCount"].as_u64()),
        (Some(500), Some(1500))
    );
    let listed = v["rejected"].as_array().unwrap();
    assert_eq!(listed.len(), 100);
    assert_eq!(
        (listed[0]["index"].as_u64(), listed[99]["index"].as_u64()),
        (Some(1), Some(133))
    );
    let summary: Vec<(String, u64, Vec<u64>)> = v["rejectedSummary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["field"].as_str().unwrap().to_owned(),
                g["count"].as_u64().unwrap(),
                g["examples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect();
    let expect = |f: &str, first: u64| (f.to_owned(), 500, vec![first, first + 4, first + 8]);
    assert_eq!(
        summary,
        [
            expect("actor.id", 3),
            expect("actor.type", 3),
            expect("timestamp", 2),
            expect("type", 1)
        ]
    );
    assert_eq!(
        v["rejectedSummary"][3]["reason"],
        "unknown value \"…\" (expected one of PURCHACE, SAVE, INQUERY, VIEW, SHARE)"
    );
    let (_, p) = app.get_json("/v1/profiles/fay").await;
    assert_eq!(p["interactionCount"], 500, "every good item is kept");
    app.stop().await;
}

async fn retries_are_stored_once(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 1);
    let with_id = interaction("eve", &t[0], "VIEW", 3, Some("evt-1"));
    let without_id = interaction("eve", &t[0], "SAVE", 4, None);
    // Round 1 finds the first in the log's tail, round 2 in its index tables.
    for round in 0..3 {
        if round == 2 {
            app.wait_indexed().await;
        }
        let (s, v) = app
            .post_json("/v1/interactions", &json!([with_id, without_id]))
            .await;
        assert_eq!(s, StatusCode::OK);
        let expect = if round == 0 { (2, 0) } else { (0, 2) };
        assert_eq!(
            (
                v["accepted"].as_u64().unwrap(),
                v["duplicates"].as_u64().unwrap()
            ),
            expect,
            "{v}"
        );
    }
    // The same id twice in one batch: the first wins.
    let (_, v) = app
        .post_json(
            "/v1/interactions",
            &json!([
                interaction("eve", &t[0], "VIEW", 6, Some("evt-2")),
                interaction("eve", &t[0], "VIEW", 7, Some("evt-2")),
            ]),
        )
        .await;
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, p) = app.get_json("/v1/profiles/eve").await;
    assert_eq!(p["interactionCount"], 3);
    app.stop().await;
}

/// The store's log directly, across reopenings: duplicates are found in the
/// tail, in the index tables and after a restart rebuilt the tail; a deleted
/// top seq is not handed out again.
async fn the_log_keeps_ids_once_and_never_reuses_a_seq(backend: Backend) {
    let world = World::new(backend).await;
    let one = |id: &str, user: &str| {
        features::Interaction::from_json(&interaction(user, "sku-000001", "VIEW", 3, Some(id)))
            .unwrap()
    };
    let store = serving::store::connect(&world.database_url).await.unwrap();
    let first = store
        .append_interactions(
            vec![one("a", "u1"), one("b", "u2"), one("a", "u3")].into(),
            1,
        )
        .await
        .unwrap();
    assert_eq!(first, vec![Some(1), Some(2), None], "first occurrence wins");
    assert_eq!(store.unindexed(), 2);
    // In the tail.
    let again = store
        .append_interactions(vec![one("b", "u2")].into(), 2)
        .await
        .unwrap();
    assert_eq!(again, vec![None]);
    // In the index tables.
    assert_eq!(store.index_log(1_000).await.unwrap(), 2);
    assert_eq!(store.unindexed(), 0);
    let again = store
        .append_interactions(vec![one("a", "u1"), one("c", "u1")].into(), 3)
        .await
        .unwrap();
    assert_eq!(again, vec![None, Some(3)]);
    // Every id already indexed: the append's transaction ends having only
    // read, and what follows (a deletion, a reopening, appends) still writes.
    let again = store
        .append_interactions(vec![one("a", "u1"), one("b", "u2")].into(), 3)
        .await
        .unwrap();
    assert_eq!(again, vec![None, None]);
    let history: Vec<i64> = store
        .interactions_of("u1", None)
        .await
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(history, vec![1, 3], "indexed and tail rows of one user");
    // Delete the top seq, reopen: the tail is rebuilt and 3 is not reused.
    assert_eq!(
        store.delete_interaction("c").await.unwrap().as_deref(),
        Some("u1")
    );
    drop(store);
    let store = serving::store::connect(&world.database_url).await.unwrap();
    assert_eq!(store.max_seq().await.unwrap(), 3);
    let after = store
        .append_interactions(
            vec![one("d", "u4"), one("b", "u2"), one("c", "u1")].into(),
            4,
        )
        .await
        .unwrap();
    assert_eq!(after, vec![Some(4), None, Some(5)]);
    drop(store);
    let store = serving::store::connect(&world.database_url).await.unwrap();
    assert_eq!(
        store.unindexed(),
        2,
        "the tail is rebuilt from the unindexed rows"
    );
    let again = store
        .append_interactions(vec![one("d", "u4")].into(), 5)
        .await
        .unwrap();
    assert_eq!(again, vec![None]);
}
