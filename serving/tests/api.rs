//! Integration tests over real HTTP on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use serving::{Application, Config};

async fn spawn_app() -> String {
    let config = Config::parse_from(["micro-serve", "--bind", "127.0.0.1:0"]);
    let app = Application::build(config).await.expect("build");
    let addr = app.local_addr().expect("addr");
    tokio::spawn(app.run());
    format!("http://{addr}")
}

#[tokio::test]
async fn healthz_answers_over_http() {
    let base = spawn_app().await;
    let addr = base.trim_start_matches("http://");
    // A raw HTTP/1.1 request keeps this test free of an HTTP client dependency.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#"{"status":"ok"}"#), "{response}");
}

#[tokio::test]
async fn healthz_via_oneshot() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let app = serving::routes::app(serving::routes::AppState::default());
    let res = app
        .oneshot(
            Request::get("/healthz")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(res.status(), 200);
    let res = serving::routes::app(serving::routes::AppState::default())
        .oneshot(Request::get("/nope").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(res.status(), 404);
}
