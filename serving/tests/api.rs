//! Integration tests over real HTTP on port 0. Every test runs twice: on an
//! embedded SQLite file and on a fresh PostgreSQL database (the same suite
//! for both stores).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use serving::{Application, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The model committed in the repository (what `cargo run -p serving` serves).
fn demo_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn postgres_admin_url() -> String {
    std::env::var("MICRO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Copies a directory tree (model registries are small).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A database and model registry that outlive one server (for restarts).
struct World {
    backend: Backend,
    database_url: String,
    models: PathBuf,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(backend: Backend) -> World {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        copy_dir(&demo_models(), &models);
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("micro.db").display()),
            Backend::Postgres => {
                use sqlx::Connection;
                let name = format!("micro_test_{}", uuid::Uuid::now_v7().simple());
                let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
                    .await
                    .expect("PostgreSQL must be running (see .ci/run)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let base = postgres_admin_url();
                let (root, _) = base.rsplit_once('/').unwrap();
                format!("{root}/{name}")
            }
        };
        World {
            backend,
            database_url,
            models,
            _dir: dir,
        }
    }

    fn version(&self) -> String {
        std::fs::read_to_string(self.models.join("profile/current"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Copies the current version under a new name (a second model to promote).
    fn copy_version(&self, new_version: &str) -> PathBuf {
        let from = self.models.join("profile").join(self.version());
        let to = self.models.join("profile").join(new_version);
        copy_dir(&from, &to);
        let path = to.join("manifest.json");
        let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        manifest["version"] = json!(new_version);
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
        to
    }

    /// Counts rows naming a user in every table.
    async fn rows_of(&self, user: &str) -> i64 {
        let tables = [
            "SELECT COUNT(*) FROM interactions WHERE user_id = $1",
            "SELECT COUNT(*) FROM interaction_users WHERE user_id = $1",
            // Ids left behind by erased interactions (of any user).
            "SELECT COUNT(*) FROM interaction_ids WHERE seq NOT IN (SELECT seq FROM interactions) \
             AND $1 <> ''",
            "SELECT COUNT(*) FROM events WHERE user_id = $1 OR payload LIKE '%' || $1 || '%'",
            "SELECT COUNT(*) FROM users WHERE user_id = $1",
            "SELECT COUNT(*) FROM profiles WHERE user_id = $1",
        ];
        // The same counting on either engine's pool type.
        macro_rules! count_in {
            ($pool:expr) => {{
                let pool = $pool;
                let mut total = 0;
                for sql in tables {
                    let n: i64 = sqlx::query_scalar(sql)
                        .bind(user)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    total += n;
                }
                pool.close().await;
                total
            }};
        }
        match self.backend {
            Backend::Sqlite => count_in!(self.sqlite_pool().await),
            Backend::Postgres => {
                count_in!(sqlx::PgPool::connect(&self.database_url).await.unwrap())
            }
        }
    }

    /// A one-connection pool on the SQLite files, attached as the server
    /// attaches them; checks no other database file sits in the directory
    /// (one that did would escape [`World::rows_of`]).
    async fn sqlite_pool(&self) -> sqlx::SqlitePool {
        let main = PathBuf::from(self.database_url.trim_start_matches("sqlite://"));
        let (index, profiles) = serving::store::sqlite_sidecars(&main);
        let mut files: Vec<String> = std::fs::read_dir(main.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("micro.db") && !n.ends_with("-wal") && !n.ends_with("-shm"))
            .collect();
        files.sort();
        assert_eq!(files, ["micro.db", "micro.db-index", "micro.db-profiles"]);
        let attach = [
            format!("ATTACH DATABASE '{}' AS idx", index.display()),
            format!("ATTACH DATABASE '{}' AS prof", profiles.display()),
        ];
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(move |conn, _| {
                let attach = attach.clone();
                Box::pin(async move {
                    for sql in &attach {
                        sqlx::query(sql).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&self.database_url)
            .await
            .unwrap()
    }

    /// Runs statements on the world's database while no server is running
    /// (to set up what a crash would leave behind).
    async fn execute(&self, statements: &str) {
        match self.backend {
            Backend::Sqlite => {
                let pool = self.sqlite_pool().await;
                sqlx::raw_sql(statements).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
                sqlx::raw_sql(statements).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    async fn spawn(&self) -> TestApp {
        self.spawn_with(&[]).await
    }

    async fn spawn_with(&self, extra: &[&str]) -> TestApp {
        let mut args = vec![
            "micro-serve".to_owned(),
            "--bind".into(),
            "127.0.0.1:0".into(),
            "--database-url".into(),
            self.database_url.clone(),
            "--models-dir".into(),
            self.models.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let app = Application::build(Config::parse_from(args))
            .await
            .expect("build");
        let addr = app.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            client: Client::new(),
            stop: Some(stop),
            handle: Some(handle),
        }
    }
}

impl Drop for World {
    /// Drops the test's PostgreSQL database (on a thread of its own: drop
    /// cannot await).
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let Some((_, name)) = self.database_url.rsplit_once('/') else {
            return;
        };
        let name = name.to_owned();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

struct TestApp {
    base: String,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), serving::startup::StartupError>>>,
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get(path).await;
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A request with a body of the given content type, sent as it is.
    async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (StatusCode, Value) {
        let r = self
            .client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post_raw(&self, path: &str, content_type: &str, body: String) -> (StatusCode, Value) {
        self.send_raw(reqwest::Method::POST, path, content_type, body)
            .await
    }

    async fn patch_raw(&self, path: &str, content_type: &str, body: String) -> (StatusCode, Value) {
        self.send_raw(reqwest::Method::PATCH, path, content_type, body)
            .await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.delete(self.url(path)).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the indexer has moved every appended interaction into the
    /// log's index tables (lookups then take the indexed path, not the tail).
    async fn wait_indexed(&self) {
        for _ in 0..200 {
            let metrics = self.get("/metrics").await.text().await.unwrap();
            if metrics
                .lines()
                .any(|l| l == "micro_log_unindexed_interactions 0")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the log was not indexed within 10 s");
    }

    /// Graceful stop: in-flight work finishes, profiles are flushed.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

/// A target id from the demo model's catalog (so features see price and topics).
fn catalog_targets(world: &World, n: usize) -> Vec<String> {
    let dir = world.models.join("profile").join(world.version());
    let catalog: Value =
        serde_json::from_slice(&std::fs::read(dir.join("catalog.json")).unwrap()).unwrap();
    catalog
        .as_array()
        .unwrap()
        .iter()
        .take(n)
        .map(|item| item["target_id"].as_str().unwrap().to_owned())
        .collect()
}

fn interaction(user: &str, target: &str, kind: &str, day: u32, id: Option<&str>) -> Value {
    let mut v = json!({
        "type": kind,
        "timestamp": format!("2026-10-{:02}T12:00:00Z", day.clamp(1, 28)),
        "origin": {"id": "shop-1", "type": "shop"},
        "actor": {"id": user, "type": "user"},
        "target": {"id": target, "type": "product"},
    });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    if kind == "PURCHACE" {
        v["value"] = json!({"amount": 25.0, "currency": "USD"});
        v["quantity"] = json!(1);
    }
    v
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
    };
}

on_both_stores!(
    operations_endpoints_answer,
    ingest_forms_and_read_your_writes,
    bad_input_is_refused_by_field_and_good_items_kept,
    thousands_of_bad_items_are_summarised_and_good_ones_kept,
    retries_are_stored_once,
    registration_creates_user_event_and_profile,
    edits_change_declared_fields_and_the_profile_follows,
    erasure_leaves_no_row_of_the_user,
    an_interrupted_erasure_is_finished_at_start,
    events_service_lists_filters_pages_and_deletes,
    deleting_an_interaction_recomputes_exactly,
    profile_lists_filter_and_page,
    score_stores_nothing,
    profiles_after_restart_equal_those_before,
    promote_under_load_drops_nothing,
    broken_artifacts_are_refused_and_the_old_model_serves,
    overload_answers_503_with_retry_after,
    sigterm_finishes_work_and_keeps_it,
    without_a_model_profiles_carry_declared_fields_and_counts,
    the_log_keeps_ids_once_and_never_reuses_a_seq,
    nats_interactions_are_stored_once_and_bad_ones_dead_lettered,
    nats_outage_loses_no_event_and_repeats_none,
    registration_sends_a_welcome_over_the_in_process_bus,
    registration_sends_a_welcome_over_nats,
);

/// A real SMTP listener on loopback that keeps every message it is given.
struct SmtpSink {
    port: u16,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = messages.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut envelope = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.to_ascii_uppercase();
                        let reply: &[u8] = if verb.starts_with("EHLO") || verb.starts_with("HELO") {
                            b"250 sink\r\n"
                        } else if verb.starts_with("MAIL") || verb.starts_with("RCPT") {
                            envelope.push_str(&line);
                            envelope.push('\n');
                            b"250 ok\r\n"
                        } else if verb == "DATA" {
                            let _ = write.write_all(b"354 go on\r\n").await;
                            let mut data = envelope.clone();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            kept.lock().unwrap().push(data);
                            envelope.clear();
                            b"250 queued\r\n"
                        } else if verb == "QUIT" {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        SmtpSink { port, messages }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn received(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

async fn register_ada(app: &TestApp, id: &str) {
    let (s, v) = app
        .post_json(
            "/v1/users",
            &json!({"userId": id, "email": format!("{id}@example.com"), "name": "Ada Lovelace",
                    "birthYear": 1990, "kids": 1, "adults": 2, "maritalStatus": "married"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

fn assert_welcomed(message: &str, id: &str) {
    assert!(
        message.contains(&format!("RCPT TO:<{id}@example.com>")),
        "{message}"
    );
    assert!(
        message.contains("Subject: Welcome, Ada Lovelace!"),
        "{message}"
    );
    assert!(message.contains("Hello Ada Lovelace"), "{message}");
}

async fn registration_sends_a_welcome_over_the_in_process_bus(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--welcome-smtp-url", &smtp.url()]).await;
    register_ada(&app, "ada").await;
    eventually("the welcome e-mail", || async {
        !smtp.received().is_empty()
    })
    .await;
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_welcomed(&received[0], "ada");
    app.stop().await;
}

async fn registration_sends_a_welcome_over_nats(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    // The consumer a messaging team runs: its own process, NATS + HTTP only.
    let mut welcome = std::process::Command::new(env!("CARGO_BIN_EXE_micro-welcome"))
        .env("MICRO_NATS_URL", nats.url())
        .env("MICRO_API_URL", &app.base)
        .env("MICRO_WELCOME_SMTP_URL", smtp.url())
        .env("MICRO_LOG", "warn")
        .spawn()
        .unwrap();
    register_ada(&app, "ada-nats").await;
    eventually("the welcome e-mail", || async {
        !smtp.received().is_empty()
    })
    .await;
    let _ = welcome.kill();
    let _ = welcome.wait();
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_welcomed(&received[0], "ada-nats");
    app.stop().await;
}

/// A nats-server of the test's own (its own port and store), so a test can
/// stop and restart it without touching anyone else's.
struct NatsServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl NatsServer {
    fn start() -> NatsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = NatsServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = std::process::Command::new(nats_server_binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server must be installed (see .ci/run)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not start");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn nats_server_binary() -> String {
    std::env::var("MICRO_TEST_NATS_SERVER").unwrap_or_else(|_| {
        if Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server".to_owned()
        } else {
            "nats-server".to_owned()
        }
    })
}

/// Publishes on JetStream, retrying until the service has created the stream.
async fn publish_when_ready(js: &async_nats::jetstream::Context, subject: &str, body: Vec<u8>) {
    for _ in 0..200 {
        if let Ok(ack) = js.publish(subject.to_owned(), body.clone().into()).await {
            if ack.await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("JetStream did not take {subject}");
}

/// Polls until `check` holds (10 s at most).
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(10), check).await
}

/// Polls `check` every 50 ms until it holds, or panics after `limit`.
async fn eventually_within<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Sum of `interactionCount` over the profiles `{prefix}0` … `{prefix}{n-1}`
/// (each must exist).
async fn interactions_counted(app: &TestApp, prefix: &str, n: usize) -> u64 {
    let mut total = 0;
    for u in 0..n {
        let (s, p) = app.get_json(&format!("/v1/profiles/{prefix}{u}")).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        total += p["interactionCount"].as_u64().unwrap();
    }
    total
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

async fn nats_interactions_are_stored_once_and_bad_ones_dead_lettered(backend: Backend) {
    let nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    let t = catalog_targets(&world, 5);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    // 200 interactions of 20 users, then the first 30 again (redeliveries),
    // and one that is not an interaction.
    let all: Vec<Value> = (0..200)
        .map(|n| {
            let user = format!("bus-{}", n % 20);
            interaction(
                &user,
                &t[n % 5],
                "VIEW",
                1 + (n % 28) as u32,
                Some(&format!("bus-{n}")),
            )
        })
        .collect();
    for v in all.iter().chain(&all[..30]) {
        publish_when_ready(
            &js,
            "micro.interactions.shop",
            serde_json::to_vec(v).unwrap(),
        )
        .await;
    }
    let mut bad = interaction("bus-0", &t[0], "VIEW", 3, Some("bus-bad"));
    bad["timestamp"] = json!("yesterday");
    publish_when_ready(
        &js,
        "micro.interactions.shop",
        serde_json::to_vec(&bad).unwrap(),
    )
    .await;
    eventually("the bus batch to be stored", || async {
        metric(&app, "micro_bus_interactions_total").await >= 230.0
            && metric(&app, "micro_bus_dead_letters_total").await >= 1.0
    })
    .await;
    assert_eq!(
        interactions_counted(&app, "bus-", 20).await,
        200,
        "each interaction counted once"
    );
    let (_, events) = app
        .get_json("/v1/events?type=interaction.recorded&limit=500")
        .await;
    assert_eq!(
        events["items"].as_array().map(Vec::len),
        Some(200),
        "stored once"
    );
    // The bad one is on the dead-letter subject with the field named.
    let dead = js
        .get_stream(serving::broker::DEAD_LETTER_STREAM)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(serving::broker::DEAD_LETTER_SUBJECT)
        .await
        .unwrap();
    let reason = dead.headers.get("Micro-Error").unwrap().to_string();
    assert!(reason.contains("timestamp"), "{reason}");
    let body: Value = serde_json::from_slice(&dead.payload).unwrap();
    assert_eq!(body["id"], "bus-bad");
    assert_eq!(metric(&app, "micro_bus_consumer_pending").await, 0.0);
    app.stop().await;
}

/// Registrations go on while NATS is down; when it is back, every
/// `user.registered` reaches the stream exactly once.
async fn nats_outage_loses_no_event_and_repeats_none(backend: Backend) {
    let mut nats = NatsServer::start();
    let world = World::new(backend).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    let register = |n: usize| {
        let app = &app;
        async move {
            let (s, v) = app
                .post_json(
                    "/v1/users",
                    &json!({"userId": format!("out-{n}"), "email": format!("out-{n}@example.com")}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
    };
    for n in 0..10 {
        register(n).await;
    }
    eventually("the first events to be published", || async {
        metric(&app, "micro_bus_events_published_total").await >= 10.0
    })
    .await;
    nats.kill();
    for n in 10..20 {
        register(n).await;
    }
    // Registered and erased while NATS is down: nothing about them goes out
    // but their erasure.
    register(99).await;
    let (s, _) = app.delete("/v1/users/out-99").await;
    assert_eq!(s, StatusCode::OK);
    let (s, ready) = app.get_json("/readyz").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "HTTP stays ready while NATS is down: {ready}"
    );
    eventually("the relay to notice NATS is down", || async {
        metric(&app, "micro_outbox_depth").await >= 10.0
    })
    .await;
    nats.restart();
    eventually("the outbox to drain", || async {
        metric(&app, "micro_outbox_depth").await == 0.0
    })
    .await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = js.get_stream(serving::broker::EVENTS_STREAM).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut registered: Vec<(String, String)> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    let mut about_erased = 0;
    for seq in 1..=last {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let e: Value = serde_json::from_slice(&m.payload).unwrap();
        if m.subject.as_str() == "micro.events.user.registered" {
            registered.push((
                e["id"].as_str().unwrap().to_owned(),
                e["payload"]["userId"].as_str().unwrap().to_owned(),
            ));
        } else if m.subject.as_str() == "micro.events.user.deleted" {
            deleted.push(e["payload"]["userId"].as_str().unwrap().to_owned());
        } else if e["payload"]["userId"] == "out-99" {
            about_erased += 1;
        }
    }
    assert_eq!(deleted, vec!["out-99".to_owned()]);
    assert_eq!(
        about_erased, 0,
        "nothing else about the erased user was published"
    );
    let mut users: Vec<&str> = registered.iter().map(|(_, u)| u.as_str()).collect();
    users.sort_unstable();
    let mut expected: Vec<String> = (0..20).map(|n| format!("out-{n}")).collect();
    expected.sort_unstable();
    assert_eq!(users, expected, "every registration published exactly once");
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
    let patch = |body: Value| body.to_string();
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
        .patch_raw(
            "/v1/users/hal",
            merge,
            patch(json!({"kids": 2, "name": null, "gender": "male"})),
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
    assert_eq!(items[0]["payload"]["changed"], json!(["name", "kids"]));
    assert_eq!(items[0]["payload"]["kids"], 2);

    // Plain JSON is accepted too; gender removed, and the profile says so.
    let (s, v) = app
        .patch_raw(
            "/v1/users/hal",
            "application/json",
            patch(json!({"gender": null})),
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
            .patch_raw("/v1/users/hal", merge, patch(body.clone()))
            .await;
        assert_eq!(s.as_u16(), status, "{body}: {v}");
        if let Some(field) = field {
            assert_eq!(v["error"]["details"][0]["field"], field, "{body}: {v}");
        }
    }
    let (s, v) = app
        .patch_raw("/v1/users/hal", "text/plain", patch(json!({"kids": 1})))
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (s, _) = app
        .patch_raw("/v1/users/nobody", merge, patch(json!({"kids": 1})))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_json("/v1/users/hal").await.1,
        before,
        "refused edits changed nothing"
    );

    // An edit that changes nothing stores nothing and emits nothing.
    let (s, v) = app
        .patch_raw("/v1/users/hal", merge, patch(json!({"kids": 2})))
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

/// The database goes away while interactions arrive over NATS: nothing is
/// acknowledged until it is stored, so when the database is back every
/// interaction is stored, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_consumer_waits_out_a_database_outage() {
    use sqlx::Connection;
    let nats = NatsServer::start();
    let world = World::new(Backend::Postgres).await;
    let app = world.spawn_with(&["--nats-url", &nats.url()]).await;
    let t = catalog_targets(&world, 5);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let publish = |from: usize, to: usize| {
        let (js, t) = (&js, &t);
        async move {
            for n in from..to {
                let v = interaction(
                    &format!("db-{}", n % 10),
                    &t[n % 5],
                    "VIEW",
                    1 + (n % 28) as u32,
                    Some(&format!("db-{n}")),
                );
                publish_when_ready(
                    js,
                    "micro.interactions.shop",
                    serde_json::to_vec(&v).unwrap(),
                )
                .await;
            }
        }
    };
    publish(0, 50).await;
    eventually("the first 50 to be stored", || async {
        metric(&app, "micro_bus_interactions_total").await >= 50.0
    })
    .await;

    let (_, name) = world.database_url.rsplit_once('/').unwrap();
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    publish(50, 150).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        metric(&app, "micro_bus_interactions_total").await < 150.0,
        "nothing can be stored while the database is away"
    );
    sqlx::raw_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();

    eventually_within(
        "all 150 stored after the outage",
        Duration::from_secs(30),
        || async {
            let (s, events) = app
                .get_json("/v1/events?type=interaction.recorded&limit=500")
                .await;
            s == StatusCode::OK && events["items"].as_array().map(Vec::len) == Some(150)
        },
    )
    .await;
    assert_eq!(
        interactions_counted(&app, "db-", 10).await,
        150,
        "each interaction counted once"
    );
    eventually("the consumer to catch up", || async {
        metric(&app, "micro_bus_consumer_pending").await == 0.0
    })
    .await;
    app.stop().await;
}
