//! Registration (`/v1/users`) and erasure: a registered user has a profile
//! and an event from the start, and an erased one leaves no row behind, even
//! when the erasure was interrupted by a stop.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{catalog_targets, interaction, on_both_stores, Backend, TestApp, World};

on_both_stores!(
    registration_creates_user_event_and_profile,
    erasure_leaves_no_row_of_the_user,
    an_interrupted_erasure_is_finished_at_start,
);

async fn registration_creates_user_event_and_profile(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let body = json!({"userId": "fay", "email": "fay@example.com", "gender": "female",
        "birthYear": 1990, "kids": 2, "name": "Fay"});
    let (s, v) = app.post_json("/v1/users", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["profile"]["userId"], "fay");
    assert_eq!(v["profile"]["about"]["gender"], "female");
    assert_eq!(v["profile"]["about"]["realLifeStage"], "young_family");
    assert_eq!(v["profile"]["interactionCount"], 0);
    let (s, p) = app.get_json("/v1/profiles/fay").await;
    assert_eq!(s, StatusCode::OK, "the profile exists from registration");
    assert_eq!(p["about"]["realLifeStage"], "young_family");
    let (s, u) = app.get_json("/v1/users/fay").await;
    assert_eq!(
        (s, u["email"].as_str()),
        (StatusCode::OK, Some("fay@example.com"))
    );
    assert_eq!(
        u, v["user"],
        "the stored user reads back as it was answered"
    );
    let (s, v) = app
        .post_json("/v1/users", &json!({"email": "fay@example.com"}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{v}"
    );
    let (s, v) = app
        .post_json(
            "/v1/users",
            &json!({"userId": "fay", "email": "other@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v) = app
        .post_json("/v1/users", &json!({"email": "not-an-address", "kids": -1}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = v["error"]["details"].to_string();
    assert!(
        fields.contains("email") && fields.contains("kids"),
        "{fields}"
    );
    let (s, v) = app
        .post_json("/v1/users", &json!({"email": "gus@example.com"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let assigned = v["user"]["userId"].as_str().unwrap().to_owned();
    assert!(!assigned.is_empty());
    // Pages of one through both users.
    let (_, page1) = app.get_json("/v1/users?limit=1").await;
    let cursor = page1["nextCursor"].as_str().unwrap().to_owned();
    let (_, page2) = app
        .get_json(&format!("/v1/users?limit=1&cursor={cursor}"))
        .await;
    let mut ids = vec![
        page1["items"][0]["userId"].as_str().unwrap().to_owned(),
        page2["items"][0]["userId"].as_str().unwrap().to_owned(),
    ];
    ids.sort();
    let mut expected = vec!["fay".to_owned(), assigned];
    expected.sort();
    assert_eq!(ids, expected);
    let (_, events) = app
        .get_json("/v1/events?type=user.registered&userId=fay")
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    app.stop().await;
}

/// Registers users and gives each two interactions: one in the log's index
/// tables, one in its tail (erasure must find both).
async fn register_with_history(app: &TestApp, targets: &[String], users: [&str; 2]) {
    for u in users {
        app.post_json(
            "/v1/users",
            &json!({"userId": u, "email": format!("{u}@example.com")}),
        )
        .await;
        app.post_json(
            "/v1/interactions",
            &interaction(u, &targets[0], "PURCHACE", 3, None),
        )
        .await;
    }
    app.wait_indexed().await;
    for u in users {
        app.post_json(
            "/v1/interactions",
            &interaction(u, &targets[1], "VIEW", 4, None),
        )
        .await;
    }
}

async fn erasure_leaves_no_row_of_the_user(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 2);
    register_with_history(&app, &t, ["gil", "hal"]).await;
    app.post_json(
        "/v1/events",
        &json!({"type": "cart.abandoned", "payload": {"userId": "gil"}}),
    )
    .await;
    // Profiles reach the store before erasure, so erasure must remove them there.
    app.get_json("/v1/profiles?limit=10").await;
    assert!(world.rows_of("gil").await > 0);
    let (s, v) = app.delete("/v1/users/gil").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["removed"],
        json!({"user": 1, "interactions": 2, "events": 2, "profiles": 1})
    );
    app.get_json("/v1/profiles?limit=10").await;
    assert_eq!(
        world.rows_of("gil").await,
        0,
        "a row of the erased user is left"
    );
    let (s, _) = app.get_json("/v1/profiles/gil").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get_json("/v1/users/gil").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete("/v1/users/gil").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, p) = app.get_json("/v1/profiles/hal").await;
    assert_eq!(p["interactionCount"], 2, "other users are untouched");
    app.stop().await;
    assert_eq!(
        world.rows_of("gil").await,
        0,
        "shutdown flush wrote nothing back"
    );
}

/// An erasure spans files that commit one after another (on SQLite the log,
/// its index tables and the profiles), so a stop between them may leave part
/// of the user behind; the erasure's mark, written first, makes the next
/// start finish it.
async fn an_interrupted_erasure_is_finished_at_start(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 2);
    register_with_history(&app, &t, ["ivy", "jon"]).await;
    app.stop().await;
    assert!(world.rows_of("ivy").await > 0);
    // What a stop midway leaves: the mark, the index file already clean,
    // the log and the rest not yet.
    world
        .execute(
            "INSERT INTO erasures (user_id) VALUES ('ivy'); \
             DELETE FROM interaction_ids WHERE seq IN \
               (SELECT seq FROM interaction_users WHERE user_id = 'ivy'); \
             DELETE FROM interaction_users WHERE user_id = 'ivy';",
        )
        .await;
    let app = world.spawn().await;
    assert_eq!(world.rows_of("ivy").await, 0, "a row of ivy is left");
    let (s, _) = app.get_json("/v1/profiles/ivy").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get_json("/v1/users/ivy").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, p) = app.get_json("/v1/profiles/jon").await;
    assert_eq!(p["interactionCount"], 2, "other users are untouched");
    // A later start leaves the other users as they were.
    app.stop().await;
    let app = world.spawn().await;
    let (_, p) = app.get_json("/v1/profiles/jon").await;
    assert_eq!(p["interactionCount"], 2);
    app.stop().await;
}
