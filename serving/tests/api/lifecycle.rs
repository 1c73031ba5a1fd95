//! The service as an operated process: the operational endpoints, profiles
//! across a restart and a SIGTERM of the real binary, readiness following
//! the database, and 503 with `Retry-After` under overload.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    catalog_targets, interaction, on_both_stores, postgres_admin_url, Backend, World,
};

on_both_stores!(
    operations_endpoints_answer,
    profiles_after_restart_equal_those_before,
    overload_answers_503_with_retry_after,
    sigterm_finishes_work_and_keeps_it,
);

async fn operations_endpoints_answer(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let (s, v) = app.get_json("/healthz").await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = app.get_json("/readyz").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ready"], true);
    assert_eq!(v["model"], json!(world.version()));
    let r = app.get("/healthz").await;
    assert!(r.headers().contains_key("x-request-id"));
    app.get("/v1/profiles/someone-123").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"route="/v1/profiles/{user_id}""#),
        "metrics by route template:\n{metrics}"
    );
    assert!(
        !metrics.contains("someone-123"),
        "raw paths leak into labels"
    );
    assert!(metrics.contains("micro_ingest_queue_depth"));
    assert!(metrics.contains(&format!(
        r#"micro_model_info{{version="{}"}} 1"#,
        world.version()
    )));
    let (s, doc) = app.get_json("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/v1/interactions",
        "/v1/profiles/{user_id}",
        "/v1/models/{version}/promote",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    let (s, v) = app.get_json("/v1/nothing-here").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    app.stop().await;
}

async fn profiles_after_restart_equal_those_before(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn().await;
    let t = catalog_targets(&world, 10);
    app.post_json(
        "/v1/users",
        &json!({"userId": "max", "email": "max@example.com", "birthYear": 1950}),
    )
    .await;
    let mut batch = Vec::new();
    for (i, u) in ["max", "nia", "oz"].iter().enumerate() {
        for k in 0..(2 + i) {
            batch.push(interaction(
                u,
                &t[(i + k) % 10],
                if k == 0 { "PURCHACE" } else { "VIEW" },
                1 + k as u32,
                None,
            ));
        }
    }
    app.post_json("/v1/interactions", &json!(batch)).await;
    let mut before = Vec::new();
    for u in ["max", "nia", "oz"] {
        before.push(app.get_json(&format!("/v1/profiles/{u}")).await.1);
    }
    app.stop().await;
    let app = world.spawn().await;
    for (u, b) in ["max", "nia", "oz"].iter().zip(&before) {
        let (s, after) = app.get_json(&format!("/v1/profiles/{u}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&after, b, "profile of {u} changed across a restart");
    }
    // State survives too: a new interaction folds onto the stored history.
    app.post_json(
        "/v1/interactions",
        &interaction("nia", &t[0], "VIEW", 20, None),
    )
    .await;
    let (_, p) = app.get_json("/v1/profiles/nia").await;
    assert_eq!(
        p["interactionCount"],
        before[1]["interactionCount"].as_u64().unwrap() + 1
    );
    let (_, p) = app.get_json("/v1/profiles/max").await;
    assert_eq!(p["about"]["realLifeStage"], "senior");
    app.stop().await;
}

async fn overload_answers_503_with_retry_after(backend: Backend) {
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--ingest-queue", "10"]).await;
    let t = catalog_targets(&world, 1);
    let big: Vec<Value> = (0..11)
        .map(|i| interaction("quin", &t[0], "VIEW", 3, Some(&format!("q-{i}"))))
        .collect();
    let (s, v) = app.post_json("/v1/interactions", &json!(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // Many concurrent full-queue batches: some must be turned away, at once.
    let mut saw_503 = false;
    for round in 0..20 {
        let mut requests = Vec::new();
        for r in 0..32 {
            let body: Vec<Value> = (0..10)
                .map(|i| {
                    interaction(
                        "quin",
                        &t[0],
                        "VIEW",
                        3,
                        Some(&format!("q-{round}-{r}-{i}")),
                    )
                })
                .collect();
            let client = app.client.clone();
            let url = app.url("/v1/interactions");
            requests.push(tokio::spawn(async move {
                client.post(url).json(&body).send().await.unwrap()
            }));
        }
        for r in requests {
            let r = r.await.unwrap();
            match r.status() {
                StatusCode::OK => {}
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(r.headers()["retry-after"], "1");
                    saw_503 = true;
                }
                other => panic!("unexpected status {other}"),
            }
        }
        if saw_503 {
            break;
        }
    }
    assert!(
        saw_503,
        "a queue of 10 never overflowed under 32 concurrent batches of 10"
    );
    app.stop().await;
}

/// The real binary: SIGTERM ends it cleanly (exit 0) after flushing, and a
/// new process serves the same profiles.
async fn sigterm_finishes_work_and_keeps_it(backend: Backend) {
    let world = World::new(backend).await;
    let t = catalog_targets(&world, 2);
    let start = |port: u16| {
        std::process::Command::new(env!("CARGO_BIN_EXE_micro-serve"))
            .env("MICRO_BIND", format!("127.0.0.1:{port}"))
            .env("MICRO_DATABASE_URL", &world.database_url)
            .env("MICRO_MODELS_DIR", &world.models)
            .env("MICRO_LOG", "warn")
            .spawn()
            .unwrap()
    };
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let client = Client::new();
    let wait_ready = |base: String| {
        let client = client.clone();
        async move {
            for _ in 0..200 {
                if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                    if r.status().is_success() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("micro-serve did not become ready at {base}");
        }
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(port);
    wait_ready(base.clone()).await;
    let batch = json!([
        interaction("rae", &t[0], "PURCHACE", 2, None),
        interaction("rae", &t[1], "VIEW", 3, None),
    ]);
    let r = client
        .post(format!("{base}/v1/interactions"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let before: Value = client
        .get(format!("{base}/v1/profiles/rae"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        status.success(),
        "micro-serve exited with {status} on SIGTERM"
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(port);
    wait_ready(base.clone()).await;
    let after: Value = client
        .get(format!("{base}/v1/profiles/rae"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        after, before,
        "the profile did not survive a SIGTERM restart"
    );
}

/// `/readyz` says not ready while the database refuses connections, and ready
/// again once it is back; `/healthz` stays up throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_readiness_follows_the_database() {
    use sqlx::Connection;
    let world = World::new(Backend::Postgres).await;
    let app = world.spawn().await;
    let (s, _) = app.get_json("/readyz").await;
    assert_eq!(s, StatusCode::OK);
    let (_, name) = world.database_url.rsplit_once('/').unwrap();
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    let cut = format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    );
    sqlx::raw_sql(&cut).execute(&mut admin).await.unwrap();
    let (s, v) = app.get_json("/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["ready"], false);
    let (s, _) = app.get_json("/healthz").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "liveness does not depend on the database"
    );
    sqlx::raw_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut ready = false;
    for _ in 0..50 {
        if app.get_json("/readyz").await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz did not recover with the database");
    app.stop().await;
}
