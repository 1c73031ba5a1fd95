//! The cheap cases of the HTTP contract (SPEC §7) asked of the router itself
//! with `tower::ServiceExt::oneshot`: no request crosses a socket, so these
//! run in milliseconds and a failure points at routing, extraction or the
//! error mapping rather than at the network or the harness. The router is
//! the one `micro-serve` serves (`serving::routes::app` on the state
//! `Application::build` makes), so it has the same layers: the body limit,
//! the JSON 404, the typed query strings.
//!
//! The store plays no part in these answers, so they run on SQLite only.

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use serving::Application;
use tower::ServiceExt;

use crate::helpers::{catalog_targets, interaction, Backend, World};

/// A service built on a fresh SQLite world but not serving: requests go
/// straight to its router.
struct Routed {
    router: Router,
    application: Application,
    world: World,
}

impl Routed {
    async fn new(extra: &[&str]) -> Routed {
        let world = World::new(Backend::Sqlite).await;
        let application = world.build(extra).await;
        let router = serving::routes::app(application.state().clone());
        Routed {
            router,
            application,
            world,
        }
    }

    /// One request through the router: the status, the headers, and the
    /// body as JSON (`Null` when it is not JSON, which no assertion on an
    /// error code accepts).
    async fn call(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// Stops the pipeline and background tasks the build started, the way a
    /// served application stops (a shutdown that is already due), so no test
    /// leaves writers running on a deleted directory.
    async fn stop(self) {
        let Routed {
            router,
            application,
            world,
        } = self;
        drop(router);
        application.run_until(std::future::ready(())).await.unwrap();
        drop(world);
    }

    /// POSTs a JSON body of one good interaction and checks it is stored:
    /// what a refused request is compared with.
    async fn stores_one_interaction(&self, body: String) {
        let (s, _, v) = self
            .call(post("/v1/interactions", Some("application/json"), body))
            .await;
        assert_eq!(
            (s, v["accepted"].as_u64()),
            (StatusCode::OK, Some(1)),
            "{v}"
        );
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, content_type: Option<&str>, body: String) -> Request<Body> {
    let mut request = Request::post(path);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(Body::from(body)).unwrap()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_in_another_content_type_are_415() {
    let routed = Routed::new(&[]).await;
    let t = catalog_targets(&routed.world, 1);
    let body = interaction("uma", &t[0], "VIEW", 3, None).to_string();
    for content_type in [Some("text/plain"), Some("application/xml"), None] {
        let (s, _, v) = routed
            .call(post("/v1/interactions", content_type, body.clone()))
            .await;
        assert_eq!(
            s,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {v}"
        );
        assert_eq!(
            v["error"]["code"], "unsupported_media_type",
            "{content_type:?}: {v}"
        );
    }
    // The same body sent as JSON is taken: the content type alone was refused.
    routed.stores_one_interaction(body).await;
    routed.stop().await;
}

/// The limit answers in the API's error shape, not axum's plain-text 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_bytes_is_413() {
    let routed = Routed::new(&["--max-body-bytes", "2000"]).await;
    let t = catalog_targets(&routed.world, 1);
    let item = |i: usize| interaction("vic", &t[0], "VIEW", 3, Some(&format!("v-{i}")));
    let one = item(0).to_string();
    let many = json!((0..20).map(item).collect::<Vec<_>>()).to_string();
    assert!(
        one.len() < 2000 && many.len() > 2000,
        "bodies of {} and {} bytes do not straddle the limit",
        one.len(),
        many.len()
    );
    let (s, headers, v) = routed
        .call(post("/v1/interactions", Some("application/json"), many))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(is_json(&headers), "{headers:?}");
    assert_eq!(v["error"]["code"], "too_large", "{v}");
    // Under the limit the same kind of body is stored: its size was refused.
    routed.stores_one_interaction(one).await;
    routed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_400() {
    let routed = Routed::new(&[]).await;
    for body in ["{not json", "[{\"type\": \"VIEW\"},", ""] {
        let (s, _, v) = routed
            .call(post(
                "/v1/interactions",
                Some("application/json"),
                body.to_owned(),
            ))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body:?}: {v}");
        assert_eq!(v["error"]["code"], "malformed", "{body:?}: {v}");
    }
    routed.stop().await;
}

/// A bad parameter is a 422 whose details name it (axum's own `Query` would
/// answer a plain-text 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_zero_is_422_naming_the_parameter() {
    let routed = Routed::new(&[]).await;
    let (s, _, v) = routed.call(get("/v1/users?limit=0")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid", "{v}");
    assert_eq!(v["error"]["details"][0]["field"], "limit", "{v}");
    assert_eq!(v["error"]["details"].as_array().map(Vec::len), Some(1));
    let (s, _, v) = routed.call(get("/v1/users?limit=1")).await;
    assert_eq!(
        (s, v["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    routed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_a_json_404() {
    let routed = Routed::new(&[]).await;
    for path in ["/v1/nothing-here", "/nothing-here", "/v1/users/ann/nothing"] {
        let (s, headers, v) = routed.call(get(path)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert!(is_json(&headers), "{path}: {headers:?}");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }
    routed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_says_ok() {
    let routed = Routed::new(&[]).await;
    let (s, _, v) = routed.call(get("/healthz")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"status": "ok"}));
    routed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_lists_the_interactions_endpoint() {
    let routed = Routed::new(&[]).await;
    let (s, headers, doc) = routed.call(get("/openapi.json")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(is_json(&headers), "{headers:?}");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    assert!(
        doc["paths"]["/v1/interactions"]["post"].is_object(),
        "{}",
        doc["paths"]
    );
    routed.stop().await;
}
