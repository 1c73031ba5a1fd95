//! Registration (`/v1/users`), edits and erasure: a registered user has a
//! profile and an event from the start, an edit reaches the profile at once,
//! and an erased user leaves no row behind, even when the erasure was
//! interrupted by a stop.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{catalog_targets, interaction, on_both_stores, Backend, TestApp, World};

on_both_stores!(
    registration_creates_user_event_and_profile,
    edits_change_declared_fields_and_the_profile_follows,
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

/// `PATCH /v1/users/{id}`: a merge patch of declared fields, validated as a
/// registration; `user.updated` names what changed; the profile's declared
/// fields follow at once; a refused edit changes nothing.
async fn edits_change_declared_fields_and_the_profile_follows(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let merge = "application/merge-patch+json";
    for body in [
        json!({"userId": "hal", "email": "hal@example.com", "gender": "male", "birthYear": 1990,
               "kids": 0, "name": "Hal"}),
        json!({"userId": "ivy", "email": "ivy@example.com"}),
    ] {
        let (s, v) = app.post_json("/v1/users", &body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (_, p) = app.get_json("/v1/profiles/hal").await;
    assert_eq!(p["about"]["realLifeStage"], "midlife_adult", "36, no kids");

    let (s, v) = app
        .send_raw(
            reqwest::Method::PATCH,
            "/v1/users/hal",
            merge,
            json!({"kids": 2, "name": null, "gender": "male"}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["changed"],
        json!(["name", "kids"]),
        "gender was unchanged"
    );
    assert_eq!(v["user"]["kids"], 2);
    assert!(
        v["user"].get("name").is_none(),
        "null removed the name: {v}"
    );
    assert_eq!(
        v["user"]["email"], "hal@example.com",
        "absent fields are kept"
    );
    assert_eq!(v["profile"]["about"]["realLifeStage"], "young_family");
    let (_, p) = app.get_json("/v1/profiles/hal").await;
    assert_eq!(
        p["about"]["realLifeStage"], "young_family",
        "the live profile follows at once"
    );
    let (_, u) = app.get_json("/v1/users/hal").await;
    assert_eq!(u, v["user"], "the stored user reads back as answered");
    assert_eq!(u["createdAt"], v["user"]["createdAt"], "creation time kept");
    let (_, listed) = app
        .get_json("/v1/profiles?realLifeStage=young_family")
        .await;
    assert_eq!(listed["items"][0]["userId"], "hal", "{listed}");
    let (_, events) = app
        .get_json("/v1/events?type=user.updated&userId=hal")
        .await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(
        items[0]["payload"],
        json!({"userId": "hal", "changed": ["name", "kids"]}),
        "which fields changed, not their values (no personal data on the bus)"
    );

    // Plain JSON is accepted too; gender removed, and the profile says so.
    let (s, v) = app
        .send_raw(
            reqwest::Method::PATCH,
            "/v1/users/hal",
            "application/json",
            json!({"gender": null}).to_string(),
        )
        .await;
    assert_eq!(
        (s, v["changed"].clone()),
        (StatusCode::OK, json!(["gender"]))
    );
    let (_, p) = app.get_json("/v1/profiles/hal").await;
    assert_eq!(p["about"]["gender"], Value::Null, "{p}");

    // What is refused changes nothing, and says which field.
    let before = app.get_json("/v1/users/hal").await.1;
    for (body, status, field) in [
        (json!({"birthYear": 1800}), 422, Some("birthYear")),
        (json!({"email": null}), 422, Some("email")),
        (json!({"userId": "hal2"}), 422, Some("userId")),
        (
            json!({"favouriteColour": "red"}),
            422,
            Some("favouriteColour"),
        ),
        (
            json!({"kids": 3, "maritalStatus": "complicated"}),
            422,
            Some("maritalStatus"),
        ),
        (json!({"email": "ivy@example.com"}), 409, None),
        (json!(["kids"]), 422, Some("$")),
    ] {
        let (s, v) = app
            .send_raw(
                reqwest::Method::PATCH,
                "/v1/users/hal",
                merge,
                body.to_string(),
            )
            .await;
        assert_eq!(s.as_u16(), status, "{body}: {v}");
        if let Some(field) = field {
            assert_eq!(v["error"]["details"][0]["field"], field, "{body}: {v}");
        }
    }
    let (s, v) = app
        .send_raw(
            reqwest::Method::PATCH,
            "/v1/users/hal",
            "text/plain",
            json!({"kids": 1}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (s, _) = app
        .send_raw(
            reqwest::Method::PATCH,
            "/v1/users/nobody",
            merge,
            json!({"kids": 1}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_json("/v1/users/hal").await.1,
        before,
        "refused edits changed nothing"
    );

    // An edit that changes nothing stores nothing and emits nothing.
    let (s, v) = app
        .send_raw(
            reqwest::Method::PATCH,
            "/v1/users/hal",
            merge,
            json!({"kids": 2}).to_string(),
        )
        .await;
    assert_eq!(
        (s, v["changed"].clone()),
        (StatusCode::OK, json!([])),
        "{v}"
    );
    let (_, events) = app
        .get_json("/v1/events?type=user.updated&userId=hal")
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2, "{events}");

    // The edit survives a restart, in the user and in the stored profile.
    app.stop().await;
    let app = world.spawn().await;
    let (_, p) = app.get_json("/v1/profiles/hal").await;
    assert_eq!(
        (
            p["about"]["realLifeStage"].clone(),
            p["about"]["gender"].clone()
        ),
        (json!("young_family"), Value::Null),
        "{p}"
    );
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
