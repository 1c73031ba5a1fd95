//! `micro-train backfill` against a small in-process server that answers
//! like `micro-serve` (dedupe by id, `{accepted, duplicates, rejectedCount}`,
//! 409 for a user registered twice) and records every request, so the tests
//! can say what arrived, how often and with which headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use features::Interaction;
use features_batch::io::visit_interactions;
use serde_json::{json, Value};

/// What the fake server saw and how it should answer.
#[derive(Default)]
struct Seen {
    /// Interaction requests answered so far (any status).
    requests: usize,
    /// Answer the first this-many interaction requests with 503.
    overload_first: usize,
    /// Answer 500 to every interaction request after this many good ones.
    fail_after: Option<usize>,
    good: usize,
    /// Every line of every accepted request, in arrival order.
    lines: Vec<Value>,
    ids: HashSet<String>,
    authorization: HashSet<String>,
    content_types: HashSet<String>,
    users: Vec<Value>,
    user_ids: HashSet<String>,
}

type Shared = Arc<Mutex<Seen>>;

struct Server {
    addr: SocketAddr,
    seen: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    fn start(seen: Seen) -> Server {
        let seen = Arc::new(Mutex::new(seen));
        let app = Router::new()
            .route("/v1/interactions", post(interactions))
            .route("/v1/users", post(users))
            .with_state(seen.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Server {
            addr,
            seen,
            _stop: stop,
        }
    }

    fn api(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn interactions(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut seen = seen.lock().unwrap();
    seen.requests += 1;
    if seen.requests <= seen.overload_first {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            Json(
                json!({"error": {"code": "overloaded", "message": "queue full", "details": null}}),
            ),
        )
            .into_response();
    }
    if seen.fail_after.is_some_and(|n| seen.good >= n) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "broken").into_response();
    }
    seen.good += 1;
    seen.authorization.insert(header(&headers, "authorization"));
    seen.content_types.insert(header(&headers, "content-type"));
    let (mut accepted, mut duplicates) = (0, 0);
    for line in std::str::from_utf8(&body).unwrap().lines() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).unwrap();
        let id = value["id"]
            .as_str()
            .expect("every line has an id")
            .to_owned();
        if seen.ids.insert(id) {
            accepted += 1;
        } else {
            duplicates += 1;
        }
        seen.lines.push(value);
    }
    Json(json!({
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": [],
        "rejectedCount": 0,
        "rejectedSummary": [],
        "ids": [],
    }))
    .into_response()
}

async fn users(State(seen): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut seen = seen.lock().unwrap();
    seen.users.push(body.clone());
    let email = body["email"].as_str().unwrap_or_default();
    if !email.contains('@') {
        let details = json!([{"field": "email", "message": format!("{email:?} is not a valid e-mail address")}]);
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": {"code": "invalid", "message": "the input is not valid", "details": details}})),
        )
            .into_response();
    }
    let id = body["userId"].as_str().unwrap_or_default().to_owned();
    if !seen.user_ids.insert(id) {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": {"code": "conflict", "message": "user already exists", "details": null}})),
        )
            .into_response();
    }
    (StatusCode::CREATED, Json(json!({"user": body}))).into_response()
}

const HEADER: &str =
    "id,type,timestamp,origin_id,origin_type,actor_id,actor_type,target_id,target_type,value,currency,quantity";

/// A CSV log of `good` valid rows with bad rows mixed in (rows 3, 7 and
/// 12: unknown type, broken timestamp, missing actor), ids given and
/// derived, values, quantities, and a target that needs JSON escaping.
fn write_log(path: &Path, good: usize) {
    let mut lines = vec![HEADER.to_owned()];
    let mut n = 0;
    let mut row = 0;
    while n < good {
        row += 1;
        let line = match row {
            3 => "x3,BUY,2026-01-01T00:00:00Z,shop,site,u1,user,sku-1,product,,,".to_owned(),
            7 => "x7,VIEW,yesterday,shop,site,u1,user,sku-1,product,,,".to_owned(),
            12 => "x12,VIEW,2026-01-01T00:00:00Z,shop,site,,user,sku-1,product,,,".to_owned(),
            _ => {
                n += 1;
                let id = if n % 3 == 0 {
                    String::new()
                } else {
                    format!("ix-{n}")
                };
                let kind = ["PURCHASE", "VIEW", "SAVE", "INQUIRY", "SHARE"][n % 5];
                let target = if n % 7 == 0 {
                    r#""sku ""quoted"", é""#.to_owned()
                } else {
                    format!("sku-{}", n % 11)
                };
                let (value, currency) = if n % 5 == 0 {
                    (format!("{}.5", n), "USD")
                } else {
                    (String::new(), "")
                };
                let quantity = if n % 4 == 0 {
                    "2".to_owned()
                } else {
                    String::new()
                };
                format!(
                    "{id},{kind},2026-01-{:02}T10:00:00.{:06}Z,shop-1,site,u{},user,{target},product,{value},{currency},{quantity}",
                    1 + n % 28,
                    n * 1_000,
                    n % 13
                )
            }
        };
        lines.push(line);
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The valid rows of a log after `from_row`, as the server should receive them.
fn expected(path: &Path, from_row: usize) -> Vec<Interaction> {
    let mut out = Vec::new();
    visit_interactions(path, |row, raw, _| {
        if row > from_row {
            out.push(raw.validate().unwrap());
        }
        Ok(())
    })
    .unwrap();
    out
}

fn received(server: &Server) -> Vec<Interaction> {
    server
        .seen()
        .lines
        .iter()
        .map(|v| Interaction::from_json(v).unwrap())
        .collect()
}

fn sorted(mut v: Vec<Interaction>) -> Vec<Interaction> {
    v.sort_by(|a, b| a.id.cmp(&b.id).then(a.timestamp.cmp(&b.timestamp)));
    v
}

fn backfill(server: &Server, log: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "backfill".to_owned(),
        "--interactions".into(),
        log.display().to_string(),
        "--api".into(),
        server.api(),
        "--key".into(),
        "secret-key".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(env!("CARGO_BIN_EXE_micro-train"))
        .args(&args)
        .output()
        .expect("run micro-train")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn state_path(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.backfill.json", log.display()))
}

fn read_state(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_valid_row_arrives_once_as_ndjson_with_the_key_and_bad_rows_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log.csv");
    write_log(&log, 40);
    let server = Server::start(Seen::default());
    let out = backfill(&server, &log, &["--batch", "7", "--in-flight", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let want = expected(&log, 0);
    assert_eq!(want.len(), 40);
    assert_eq!(sorted(received(&server)), sorted(want));
    let seen = server.seen();
    assert_eq!(seen.requests, 6, "40 rows in batches of 7");
    assert_eq!(
        seen.authorization,
        HashSet::from(["Bearer secret-key".to_owned()])
    );
    assert_eq!(
        seen.content_types,
        HashSet::from(["application/x-ndjson".to_owned()])
    );
    // The escaped target arrived intact.
    assert!(seen
        .lines
        .iter()
        .any(|l| l["target"]["id"] == json!("sku \"quoted\", é")));

    let err = stderr(&out);
    assert!(err.contains("43 rows, 40 used, 3 skipped"), "{err}");
    for reason in [
        "type: unknown value",
        "timestamp: not RFC 3339",
        "actor.id: ",
    ] {
        assert!(err.contains(reason), "{reason} missing in {err}");
    }
    let summary = stdout(&out);
    assert!(
        summary.contains("43 rows read")
            && summary.contains("40 sent")
            && summary.contains("40 accepted")
            && summary.contains("0 duplicates")
            && summary.contains("3 skipped in the file"),
        "{summary}"
    );
    let state = read_state(&state_path(&log));
    assert_eq!(state["complete"], json!(true));
    assert_eq!(state["acknowledged"]["accepted"], json!(40));
}

#[test]
fn overloaded_answers_are_retried_and_nothing_is_lost_or_sent_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log.csv");
    write_log(&log, 25);
    let server = Server::start(Seen {
        overload_first: 4,
        ..Seen::default()
    });
    let out = backfill(&server, &log, &["--batch", "4", "--in-flight", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sorted(received(&server)), sorted(expected(&log, 0)));
    let seen = server.seen();
    assert_eq!(
        seen.requests,
        7 + 4,
        "7 batches, 4 of them answered 503 first"
    );
    assert_eq!(seen.lines.len(), 25, "no line stored twice");
    assert!(
        stdout(&out).contains("25 accepted, 0 duplicates"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_server_that_keeps_failing_stops_the_run_at_the_last_acknowledged_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log.csv");
    write_log(&log, 20);
    let server = Server::start(Seen {
        fail_after: Some(2),
        ..Seen::default()
    });
    let out = backfill(
        &server,
        &log,
        &["--batch", "5", "--in-flight", "1", "--retries", "2"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("500")
            && err.contains("2 times")
            && err.contains("run the same command again"),
        "{err}"
    );
    // Two batches of 5 valid rows: the 10th valid row is file row 13 (bad
    // rows 3, 7 and 12 come before it).
    let state = read_state(&state_path(&log));
    assert_eq!(state["rowsDone"], json!(13), "{state}");
    assert_eq!(state["complete"], json!(false));

    // The server recovers: the rest is sent, nothing before the position again.
    server.seen().fail_after = None;
    let out = backfill(&server, &log, &["--batch", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming after row 13"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sorted(received(&server)), sorted(expected(&log, 0)));
    assert!(
        stdout(&out).contains("all runs: 20 sent, 20 accepted, 0 duplicates"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_state_file_resumes_after_its_position_and_refuses_a_changed_file() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log.csv");
    write_log(&log, 30);
    let state_file = tmp.path().join("progress.json");
    let first = Server::start(Seen::default());
    let out = backfill(&first, &log, &["--state", state_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!state_path(&log).exists(), "--state chooses the file");

    // A state saying rows up to 20 were acknowledged: only the rows after
    // it are sent.
    let mut state = read_state(&state_file);
    state["rowsDone"] = json!(20);
    state["complete"] = json!(false);
    std::fs::write(&state_file, state.to_string()).unwrap();
    let server = Server::start(Seen::default());
    let out = backfill(
        &server,
        &log,
        &["--state", state_file.to_str().unwrap(), "--batch", "4"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming after row 20"),
        "{}",
        stderr(&out)
    );
    let want = expected(&log, 20);
    assert_eq!(want.len(), 30 - 17, "rows 1–20 hold 17 valid rows");
    assert_eq!(sorted(received(&server)), sorted(want));
    assert!(
        stdout(&out).contains("17 sent by an earlier run"),
        "{}",
        stdout(&out)
    );

    // Complete: nothing is sent, and that is success.
    let server = Server::start(Seen::default());
    let out = backfill(&server, &log, &["--state", state_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already complete"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.seen().requests, 0);

    // A changed file is refused until the state is deleted or --restart given.
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("late-1,VIEW,2026-02-01T00:00:00Z,shop,site,u1,user,sku-1,product,,,\n");
    std::fs::write(&log, text).unwrap();
    let out = backfill(&server, &log, &["--state", state_file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("has changed") && err.contains("size") && err.contains("--restart"),
        "{err}"
    );
    assert_eq!(server.seen().requests, 0);
    let out = backfill(
        &server,
        &log,
        &["--state", state_file.to_str().unwrap(), "--restart"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.seen().lines.len(), 31);
}

#[test]
fn users_are_registered_first_and_conflicts_count_as_done() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log.ndjson");
    let line = |id: &str, user: &str| {
        json!({"id": id, "type": "VIEW", "timestamp": "2026-01-01T00:00:00Z",
               "origin": {"id": "shop", "type": "site"}, "actor": {"id": user, "type": "user"},
               "target": {"id": "sku-1", "type": "product"}})
        .to_string()
    };
    std::fs::write(
        &log,
        [
            line("a", "u1"),
            String::new(),
            line("b", "u2"),
            "{broken".into(),
        ]
        .join("\n"),
    )
    .unwrap();
    let users = tmp.path().join("users.csv");
    std::fs::write(
        &users,
        "user_id,email,name,gender,birth_year,adults,kids,marital_status,income_band,registered_at\n\
         u1,ada@example.com,Ada,female,1988,2,1,married,50-100k,2026-01-01T00:00:00Z\n\
         u2,bob@example.com,,,,,,,,\n\
         u3,not-an-address,,,1970,,,,,\n\
         ,nobody@example.com,,,,,,,,\n",
    )
    .unwrap();
    let server = Server::start(Seen::default());
    server.seen().user_ids.insert("u2".into());
    let out = backfill(&server, &log, &["--users", users.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("1 registered, 1 already registered, 1 rejected"),
        "{err}"
    );
    assert!(err.contains("email") && err.contains("row 3"), "{err}");
    assert!(err.contains("user_id: is required"), "{err}");

    let seen = server.seen();
    let ada = seen
        .users
        .iter()
        .find(|u| u["userId"] == json!("u1"))
        .unwrap();
    assert_eq!(
        ada,
        &json!({"userId": "u1", "email": "ada@example.com", "name": "Ada", "gender": "female",
                "birthYear": 1988, "adults": 2, "kids": 1, "maritalStatus": "married",
                "incomeBand": "50-100k"})
    );
    let bob = seen
        .users
        .iter()
        .find(|u| u["userId"] == json!("u2"))
        .unwrap();
    assert_eq!(
        bob,
        &json!({"userId": "u2", "email": "bob@example.com"}),
        "nulls are left out"
    );
    assert_eq!(seen.users.len(), 3);
    // The interactions followed; the NDJSON file's blank line and broken
    // line were not sent.
    assert_eq!(seen.lines.len(), 2);
    assert!(err.contains("not JSON"), "{err}");
    drop(seen);

    // A rerun does not register the users again.
    let out = backfill(&server, &log, &["--users", users.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("answered in an earlier run"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.seen().users.len(), 3);
}
