//! The events service (`/v1/events`): listing, filters, cursor pages and
//! deletion, including deleting an interaction, which rescores its user.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{catalog_targets, interaction, on_both_stores, Backend, World};

on_both_stores!(
    events_service_lists_filters_pages_and_deletes,
    deleting_an_interaction_recomputes_exactly,
);

async fn events_service_lists_filters_pages_and_deletes(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 1);
    let (s, e) = app
        .post_json(
            "/v1/events",
            &json!({"type": "cart.abandoned", "payload": {"userId": "ivy", "items": 3}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let id = e["id"].as_str().unwrap().to_owned();
    assert!(e["receivedAt"].is_string());
    let (s, _) = app
        .post_json(
            "/v1/events",
            &json!({"type": "interaction.recorded",
            "payload": interaction("ivy", &t[0], "VIEW", 3, Some("ix-ivy-1"))}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    app.post_json(
        "/v1/interactions",
        &interaction("jon", &t[0], "VIEW", 3, None),
    )
    .await;
    app.post_json("/v1/events", &json!({"type": "newsletter.sent"}))
        .await;
    let (s, v) = app
        .post_json("/v1/events", &json!({"type": "Bad Type", "payload": 3}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = v["error"]["details"].to_string();
    assert!(
        fields.contains("type") && fields.contains("payload"),
        "{fields}"
    );

    let (_, all) = app.get_json("/v1/events").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 4, "{all}");
    let (_, ivy) = app.get_json("/v1/events?userId=ivy").await;
    let kinds: Vec<&str> = ivy["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{ivy}");
    assert!(kinds.contains(&"cart.abandoned") && kinds.contains(&"interaction.recorded"));
    let (_, recorded) = app.get_json("/v1/events?type=interaction.recorded").await;
    assert_eq!(recorded["items"].as_array().unwrap().len(), 2);
    // Pages of one visit every event once.
    let mut seen = Vec::new();
    let mut path = "/v1/events?limit=1".to_owned();
    loop {
        let (s, page) = app.get_json(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for e in page["items"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/events?limit=1&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4);
    let (s, v) = app.get_json("/v1/events?cursor=zz").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["details"][0]["field"], "cursor", "{v}");
    let future = "2999-01-01T00:00:00Z";
    let (_, none) = app.get_json(&format!("/v1/events?from={future}")).await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (s, got) = app.get_json(&format!("/v1/events/{id}")).await;
    assert_eq!(
        (s, got["payload"]["items"].as_u64()),
        (StatusCode::OK, Some(3))
    );
    assert_eq!(got, e, "the stored event reads back as it was answered");
    let (s, _) = app.delete(&format!("/v1/events/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get_json(&format!("/v1/events/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete(&format!("/v1/events/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn deleting_an_interaction_recomputes_exactly(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 3);
    let kept = [
        interaction("kim", &t[0], "PURCHACE", 2, Some("k1")),
        interaction("kim", &t[1], "VIEW", 5, Some("k2")),
    ];
    let dropped = interaction("kim", &t[2], "PURCHACE", 9, Some("k3"));
    // The deleted one and one kept in the log's index tables, one in its tail.
    app.post_json("/v1/interactions", &json!([kept[0], dropped]))
        .await;
    app.wait_indexed().await;
    app.post_json("/v1/interactions", &kept[1]).await;
    let (_, before) = app.get_json("/v1/profiles/kim").await;
    assert_eq!(before["interactionCount"], 3);
    let (s, v) = app.delete("/v1/events/k3").await;
    assert_eq!(
        (s, v["recomputed"].as_str()),
        (StatusCode::OK, Some("kim")),
        "{v}"
    );
    let (_, after) = app.get_json("/v1/profiles/kim").await;
    assert_eq!(after["interactionCount"], 2);
    // Exactly the profile of the remaining history, scored at the same time.
    let (s, expected) = app
        .post_json(
            "/v1/score",
            &json!({"userId": "kim", "asOf": after["updatedAt"], "interactions": kept}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{expected}");
    for field in [
        "about",
        "topics",
        "confidence",
        "interactionCount",
        "modelVersion",
    ] {
        assert_eq!(
            after[field], expected[field],
            "{field}: {after} vs {expected}"
        );
    }
    let (s, _) = app.get_json("/v1/events/k3").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await;
}
