//! The model registry as served: promotion under load, artifacts refused
//! with the old model still serving, and what profiles carry with no model.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{catalog_targets, interaction, on_both_stores, Backend, World};

on_both_stores!(
    promote_under_load_drops_nothing,
    broken_artifacts_are_refused_and_the_old_model_serves,
    without_a_model_profiles_carry_declared_fields_and_counts,
);

async fn promote_under_load_drops_nothing(backend: Backend) {
    let world = World::new(backend).await;
    let next = "profile-next";
    world.copy_version(next);
    let app = world.spawn().await;
    let t = catalog_targets(&world, 10);
    app.post_json(
        "/v1/interactions",
        &interaction("pat", &t[0], "PURCHACE", 1, None),
    )
    .await;
    let base = app.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (client, base, stop, t) = (app.client.clone(), base.clone(), stop.clone(), t.clone());
        load.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || n < 20 {
                n += 1;
                let user = format!("load-{worker}-{}", n % 7);
                let body = interaction(&user, &t[n % 10], "VIEW", 1 + (n % 27) as u32, None);
                let r = client
                    .post(format!("{base}/v1/interactions"))
                    .json(&body)
                    .send()
                    .await;
                let g = client
                    .get(format!("{base}/v1/profiles/{user}"))
                    .send()
                    .await;
                for r in [r, g] {
                    match r {
                        Ok(r) if r.status().is_success() => ok += 1,
                        _ => failed += 1,
                    }
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, v) = app
        .post_json(&format!("/v1/models/{next}/promote"), &json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut ok, mut failed) = (0, 0);
    for h in load {
        let (o, f) = h.await.unwrap();
        ok += o;
        failed += f;
    }
    assert_eq!(
        failed, 0,
        "{failed} requests failed during the swap ({ok} succeeded)"
    );
    assert!(ok > 0);
    let (_, models) = app.get_json("/v1/models").await;
    assert_eq!(models["serving"], next);
    assert_eq!(models["current"], next);
    // What the dashboard labels confusion matrices with.
    assert_eq!(
        models["versions"][0]["labelVocabularies"]["actingLifeStage"]
            .as_array()
            .map(Vec::len),
        Some(5),
        "{models}"
    );
    // Background re-scoring reaches every profile, including idle ones.
    let mut rescored = false;
    for _ in 0..100 {
        let (_, p) = app.get_json("/v1/profiles/pat").await;
        if p["modelVersion"] == next {
            rescored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        rescored,
        "an idle profile was not re-scored with the new model"
    );
    app.stop().await;
}

async fn broken_artifacts_are_refused_and_the_old_model_serves(backend: Backend) {
    let world = World::new(backend).await;
    let serving = world.version();
    let corrupted = world.copy_version("profile-corrupted");
    let catalog = corrupted.join("catalog.json");
    let mut bytes = std::fs::read(&catalog).unwrap();
    bytes.push(b' ');
    std::fs::write(&catalog, bytes).unwrap();
    let mismatched = world.copy_version("profile-mismatched");
    let path = mismatched.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["feature_spec"]["params"]["half_life_days"] = json!(7.0);
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let app = world.spawn().await;
    for (version, reason) in [
        ("profile-corrupted", "corrupted"),
        ("profile-mismatched", "feature schema"),
    ] {
        let (s, v) = app
            .post_json(&format!("/v1/models/{version}/promote"), &json!({}))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["details"][0]["field"], "model", "{v}");
        let message = v["error"]["details"][0]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{version}: {message}");
    }
    let (s, _) = app
        .post_json("/v1/models/profile-nope/promote", &json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, models) = app.get_json("/v1/models").await;
    assert_eq!(models["serving"], json!(serving));
    assert_eq!(models["current"], json!(serving));
    app.stop().await;
}

async fn without_a_model_profiles_carry_declared_fields_and_counts(backend: Backend) {
    let world = World::new(backend).await;
    let t = catalog_targets(&world, 2);
    std::fs::remove_file(world.models.join("profile/current")).unwrap();
    let app = world.spawn().await;
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(ready["model"], Value::Null);
    app.post_json(
        "/v1/users",
        &json!({"userId": "sam", "email": "sam@example.com", "gender": "male", "birthYear": 1950}),
    )
    .await;
    let (s, v) = app
        .post_json(
            "/v1/interactions",
            &json!([
                interaction("sam", &t[0], "PURCHACE", 2, None),
                interaction("sam", &t[1], "VIEW", 3, None)
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, p) = app.get_json("/v1/profiles/sam").await;
    assert_eq!(p["interactionCount"], 2);
    assert_eq!(p["modelVersion"], Value::Null);
    assert_eq!(p["about"]["gender"], "male");
    assert_eq!(p["about"]["realLifeStage"], "senior");
    assert_eq!(p["about"]["spendingClass"], Value::Null);
    assert_eq!(p["about"]["actingLifeStage"], Value::Null);
    assert_eq!(p["topics"], json!([]));
    app.stop().await;
}
