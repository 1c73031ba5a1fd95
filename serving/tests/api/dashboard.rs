//! What a browser sees: the dashboard served by the binary, CORS, `--demo`,
//! and the dashboard driven in a real Chromium. These run on SQLite only:
//! what they check is above the store.

use std::path::Path;

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{json, Value};
use serving::{Application, Config};

use crate::helpers::{eventually, metric, register_ada, Backend, TestApp, World};

/// The dashboard's page and assets come from the binary itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_is_served_by_the_binary() {
    let world = World::new(Backend::Sqlite).await;
    let app = world.spawn().await;
    for (path, content_type, needle) in [
        ("/", "text/html", "/assets/app.js"),
        ("/assets/app.js", "text/javascript", "/v1/"),
        ("/assets/style.css", "text/css", "{"),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"route="/assets/app.js""#), "{metrics}");
    app.stop().await;
}

/// `MICRO_CORS_ORIGINS` lets a listed origin call the API from a browser;
/// without it (the default) no origin is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins() {
    let world = World::new(Backend::Sqlite).await;
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/users"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let app = world.spawn().await;
    let r = preflight(&app, "https://dash.example.com").await.unwrap();
    assert!(
        !r.headers().contains_key("access-control-allow-origin"),
        "same-origin only by default: {:?}",
        r.headers()
    );
    app.stop().await;

    let app = world
        .spawn_with(&[
            "--cors-origins",
            "https://dash.example.com,https://ops.example.com",
        ])
        .await;
    let r = preflight(&app, "https://ops.example.com").await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ops.example.com"
    );
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let r = app
        .client
        .get(app.url("/v1/users"))
        .header("origin", "https://dash.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    let r = preflight(&app, "https://evil.example.com").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    app.stop().await;
}

/// `--demo` loads the generated world into an empty database and keeps
/// interactions coming; a restart does not load it twice; a database with
/// other users is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_loads_a_world_once_and_keeps_it_moving() {
    let world = World::new(Backend::Sqlite).await;
    let app = world.spawn_with(&["--demo", "--demo-rate", "50"]).await;
    eventually("the demo world is loaded", || async {
        app.get_json("/readyz").await.1["demo"]["state"] == "live"
    })
    .await;
    let (_, users) = app.get_json("/v1/users?limit=1000").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1000);
    let cursor = users["nextCursor"].as_str().unwrap_or_default().to_owned();
    let (_, rest) = app
        .get_json(&format!("/v1/users?limit=1000&cursor={cursor}"))
        .await;
    assert!(cursor.is_empty() || rest["items"] == json!([]), "{rest}");
    let (_, profiles) = app.get_json("/v1/profiles?limit=1000").await;
    let scored: Vec<&Value> = profiles["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["interactionCount"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert!(
        scored.len() > 500,
        "most people have a history: {}",
        scored.len()
    );
    let unscored: Vec<&&Value> = scored
        .iter()
        .filter(|p| {
            p["modelVersion"] != json!(world.version())
                || !p["about"]["actingLifeStage"].is_string()
        })
        .collect();
    assert!(unscored.is_empty(), "profiles not scored: {unscored:?}");
    let before = metric(&app, "micro_ingest_accepted_total").await;
    assert!(before > 10_000.0, "history ingested: {before}");
    eventually("live interactions keep arriving", || async {
        metric(&app, "micro_ingest_accepted_total").await >= before + 20.0
    })
    .await;
    app.stop().await;

    // Restarted: the world is not registered or ingested again.
    let app = world.spawn_with(&["--demo", "--demo-rate", "50"]).await;
    eventually("the restarted demo goes live", || async {
        app.get_json("/readyz").await.1["demo"]["state"] == "live"
    })
    .await;
    let (_, users) = app.get_json("/v1/users?limit=1000").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1000);
    assert!(metric(&app, "micro_ingest_accepted_total").await < 1_000.0);
    app.stop().await;

    let other = World::new(Backend::Sqlite).await;
    let app = other.spawn().await;
    register_ada(&app, "ada").await;
    app.stop().await;
    let args = vec![
        "micro-serve".to_owned(),
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--database-url".into(),
        other.database_url.clone(),
        "--models-dir".into(),
        other.models.display().to_string(),
        "--demo".into(),
    ];
    let err = Application::build(Config::parse_from(args))
        .await
        .expect_err("a database with real users is refused");
    assert!(
        err.to_string().contains("--demo needs an empty database"),
        "{err}"
    );
}

/// The dashboard in Debian's Chromium, driven by Playwright
/// (`tests/browser/dashboard.test.mjs`): registration with a field error,
/// interactions posted on the events page, the profile page changing without
/// a reload, every page at 1280×800 and 390 px; screenshots to
/// `docs/screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_works_in_a_real_browser() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser test needs Chromium at {chromium} (`apt-get install chromium`, or set \
         CHROMIUM); .ci/run installs it"
    );
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        // Playwright's driver only (no browser download), pinned by the lock file.
        let dir = browser_dir.clone();
        let npm = tokio::task::spawn_blocking(move || {
            std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir)
                .status()
        })
        .await
        .unwrap();
        assert!(
            matches!(npm, Ok(s) if s.success()),
            "`npm ci` in {} failed: {npm:?} (Node.js and npm are needed)",
            browser_dir.display()
        );
    }
    let world = World::new(Backend::Sqlite).await;
    let app = world.spawn().await;
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(["--test", "dashboard.test.mjs"])
            .current_dir(&browser_dir)
            .env("MICRO_URL", base)
            .env("CHROMIUM", chromium)
            .env("SCREENSHOT_DIR", screenshots)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "browser test failed:\n{report}");
    assert!(report.contains("# fail 0"), "{report}");
    app.stop().await;
}
