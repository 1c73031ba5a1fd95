//! Reading profiles: the audience list with its filters and cursor pages, and
//! `POST /v1/score`, which scores a history without storing anything.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{catalog_targets, interaction, on_both_stores, Backend, World};

on_both_stores!(profile_lists_filter_and_page, score_stores_nothing,);

async fn profile_lists_filter_and_page(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 20);
    let mut batch = Vec::new();
    for u in 0..12 {
        for k in 0..(1 + u % 5) {
            let kind = if k % 2 == 0 { "PURCHACE" } else { "VIEW" };
            batch.push(interaction(
                &format!("user-{u:02}"),
                &t[(u * 3 + k) % 20],
                kind,
                1 + k as u32,
                None,
            ));
        }
    }
    app.post_json("/v1/interactions", &json!(batch)).await;
    let mut profiles = Vec::new();
    let mut path = "/v1/profiles?limit=5".to_owned();
    loop {
        let (s, page) = app.get_json(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        profiles.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/profiles?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(profiles.len(), 12);
    let ids: Vec<&str> = profiles
        .iter()
        .map(|p| p["userId"].as_str().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ordered by user, no repeats"
    );
    let class = profiles[0]["about"]["spendingClass"].as_u64().unwrap();
    let stage = profiles[0]["about"]["actingLifeStage"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = profiles[0]["topics"][0].as_str().unwrap().to_owned();
    let count = |f: &dyn Fn(&Value) -> bool| profiles.iter().filter(|p| f(p)).count();
    let (_, by_class) = app
        .get_json(&format!("/v1/profiles?spendingClass={class}"))
        .await;
    assert_eq!(
        by_class["items"].as_array().unwrap().len(),
        count(&|p| p["about"]["spendingClass"] == json!(class))
    );
    let (_, by_stage) = app
        .get_json(&format!("/v1/profiles?lifeStage={stage}"))
        .await;
    assert_eq!(
        by_stage["items"].as_array().unwrap().len(),
        count(&|p| p["about"]["actingLifeStage"] == json!(stage))
    );
    let (_, by_topic) = app
        .get_json(&format!("/v1/profiles?topic={}", urlencode(&topic)))
        .await;
    assert_eq!(
        by_topic["items"].as_array().unwrap().len(),
        count(&|p| p["topics"].as_array().unwrap().contains(&json!(topic)))
    );
    let (s, _) = app.get_json("/v1/profiles?lifeStage=teenager").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn score_stores_nothing(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 2);
    let history = json!([
        interaction("lee", &t[0], "PURCHACE", 3, None),
        interaction("lee", &t[1], "VIEW", 4, None)
    ]);
    let (s, p) = app
        .post_json("/v1/score", &json!({"interactions": history}))
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (p["userId"].as_str(), p["interactionCount"].as_u64()),
        (Some("lee"), Some(2))
    );
    assert!(p["about"]["spendingClass"].is_number());
    let (s, _) = app.get_json("/v1/profiles/lee").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "scoring stored a profile");
    let (_, events) = app.get_json("/v1/events").await;
    assert!(events["items"].as_array().unwrap().is_empty());
    let (s, v) = app
        .post_json("/v1/score", &json!({"interactions": [{"type": "VIEW"}]}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["details"]["rejected"][0]["index"], 0);
    app.stop().await;
}
