//! What every area of the suite shares: a [`World`] (a database and a model
//! registry that outlive one server, so tests can restart), the [`TestApp`]
//! client of a server on port 0, the `on_both_stores!` macro that runs a test
//! on SQLite and on PostgreSQL, interaction builders, polling, and the
//! stand-ins for outside services (an SMTP sink, a nats-server per test).
//! Kept apart so that an area file reads as its tests only.

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

pub(crate) fn postgres_admin_url() -> String {
    std::env::var("MICRO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Backend {
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
pub(crate) struct World {
    backend: Backend,
    pub(crate) database_url: String,
    pub(crate) models: PathBuf,
    _dir: tempfile::TempDir,
}

impl World {
    pub(crate) async fn new(backend: Backend) -> World {
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

    pub(crate) fn version(&self) -> String {
        std::fs::read_to_string(self.models.join("profile/current"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Copies the current version under a new name (a second model to promote).
    pub(crate) fn copy_version(&self, new_version: &str) -> PathBuf {
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
    pub(crate) async fn rows_of(&self, user: &str) -> i64 {
        let tables = [
            "SELECT COUNT(*) FROM interactions WHERE user_id = $1",
            "SELECT COUNT(*) FROM interaction_users WHERE user_id = $1",
            // Ids left behind by erased interactions (of any user).
            "SELECT COUNT(*) FROM interaction_ids WHERE seq NOT IN (SELECT seq FROM interactions) \
             AND $1 <> ''",
            "SELECT COUNT(*) FROM events WHERE user_id = $1 OR payload LIKE '%' || $1 || '%'",
            "SELECT COUNT(*) FROM users WHERE user_id = $1",
            "SELECT COUNT(*) FROM profiles WHERE user_id = $1",
            // The erasure's own announcement aside.
            "SELECT COUNT(*) FROM outbox WHERE (user_id = $1 OR body LIKE '%' || $1 || '%') \
             AND type <> 'user.deleted'",
            "SELECT COUNT(*) FROM erasures WHERE user_id = $1",
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

    /// The first column of a query's rows, as text.
    pub(crate) async fn strings(&self, sql: &str) -> Vec<String> {
        match self.backend {
            Backend::Sqlite => {
                let pool = self.sqlite_pool().await;
                let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
                let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            }
        }
    }

    /// The SQLite files of the world (the database, the files beside it and
    /// their write-ahead logs), for what they hold byte by byte.
    pub(crate) fn sqlite_files(&self) -> Vec<PathBuf> {
        let main = PathBuf::from(self.database_url.trim_start_matches("sqlite://"));
        std::fs::read_dir(main.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("micro.db"))
            })
            .collect()
    }

    /// Runs statements on the world's database while no server is running
    /// (to set up what a crash would leave behind).
    pub(crate) async fn execute(&self, statements: &str) {
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

    /// The service as `micro-serve` builds it on this world with `extra`
    /// flags, not yet serving (the router tests call its router directly).
    pub(crate) async fn build(&self, extra: &[&str]) -> Application {
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
        Application::build(Config::parse_from(args))
            .await
            .expect("build")
    }

    pub(crate) async fn spawn(&self) -> TestApp {
        self.spawn_with(&[]).await
    }

    pub(crate) async fn spawn_with(&self, extra: &[&str]) -> TestApp {
        let app = self.build(extra).await;
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

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) client: Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), serving::startup::StartupError>>>,
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub(crate) async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get(path).await;
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(path, "application/json", body.to_string())
            .await
    }

    /// A request with a body of the given content type, sent as it is.
    pub(crate) async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
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

    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (StatusCode, Value) {
        self.send_raw(reqwest::Method::POST, path, content_type, body)
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.delete(self.url(path)).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the indexer has moved every appended interaction into the
    /// log's index tables (lookups then take the indexed path, not the tail).
    pub(crate) async fn wait_indexed(&self) {
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
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

/// A target id from the demo model's catalog (so features see price and topics).
pub(crate) fn catalog_targets(world: &World, n: usize) -> Vec<String> {
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

pub(crate) fn interaction(
    user: &str,
    target: &str,
    kind: &str,
    day: u32,
    id: Option<&str>,
) -> Value {
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

/// Turns each `async fn name(backend: Backend)` of the calling module into
/// two tests, `sqlite::name` and `postgres::name`, so an area cannot forget
/// one of the stores. The functions and `Backend` must be in scope in the
/// calling module (the generated modules reach them through `super`).
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
pub(crate) use on_both_stores;

/// A real SMTP listener on loopback that keeps every message it is given.
pub(crate) struct SmtpSink {
    port: u16,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub(crate) async fn start() -> SmtpSink {
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

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub(crate) fn received(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

pub(crate) async fn register_ada(app: &TestApp, id: &str) {
    let (s, v) = app
        .post_json(
            "/v1/users",
            &json!({"userId": id, "email": format!("{id}@example.com"), "name": "Ada Lovelace",
                    "birthYear": 1990, "kids": 1, "adults": 2, "maritalStatus": "married"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// Checks the welcome e-mail [`register_ada`]'s user `id` was sent.
pub(crate) fn assert_welcomed(message: &str, id: &str) {
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

/// Runs `micro-welcome` as a messaging team would (its own process, NATS
/// and HTTP only), registers [`register_ada`]'s user `id`, and checks the
/// one e-mail it sends.
pub(crate) async fn welcome_over_nats(app: &TestApp, nats: &NatsServer, smtp: &SmtpSink, id: &str) {
    let mut welcome = std::process::Command::new(env!("CARGO_BIN_EXE_micro-welcome"))
        .env("MICRO_NATS_URL", nats.url())
        .env("MICRO_API_URL", &app.base)
        .env("MICRO_WELCOME_SMTP_URL", smtp.url())
        .env("MICRO_LOG", "warn")
        .spawn()
        .unwrap();
    register_ada(app, id).await;
    eventually("the welcome e-mail", || async {
        !smtp.received().is_empty()
    })
    .await;
    let _ = welcome.kill();
    let _ = welcome.wait();
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_welcomed(&received[0], id);
}

/// A nats-server of the test's own (its own port and store), so a test can
/// stop and restart it without touching anyone else's.
pub(crate) struct NatsServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl NatsServer {
    pub(crate) fn start() -> NatsServer {
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

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(crate) fn restart(&mut self) {
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

    pub(crate) fn kill(&mut self) {
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
pub(crate) async fn publish_when_ready(
    js: &async_nats::jetstream::Context,
    subject: &str,
    body: Vec<u8>,
) {
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
pub(crate) async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(10), check).await
}

/// Polls `check` every 50 ms until it holds, or panics after `limit`.
pub(crate) async fn eventually_within<F, Fut>(what: &str, limit: Duration, mut check: F)
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

pub(crate) async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Sum of `interactionCount` over the profiles `{prefix}0` … `{prefix}{n-1}`
/// (each must exist).
pub(crate) async fn interactions_counted(app: &TestApp, prefix: &str, n: usize) -> u64 {
    let mut total = 0;
    for u in 0..n {
        let (s, p) = app.get_json(&format!("/v1/profiles/{prefix}{u}")).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        total += p["interactionCount"].as_u64().unwrap();
    }
    total
}
