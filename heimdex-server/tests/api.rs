//! The HTTP API through the router (no socket; `tower::ServiceExt::oneshot`), on real
//! backends and real clips: auth, the error shape, tenant isolation, the end-to-end flow,
//! OpenAPI, health and metrics. A JWKS server on loopback serves ES256 keys.

#![cfg(feature = "api")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use heimdex_server::api::auth::{AuthConfig, Authenticator};
use heimdex_server::api::{AppState, router};
use heimdex_server::engine::{Engine, EngineConfig, SilentProgress};
use heimdex_server::queue::LocalQueue;
use heimdex_server::store::SqliteStore;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

struct Fixture {
    app: Router,
    engine: Arc<Engine>,
    dir: tempfile::TempDir,
}

async fn fixture(auth: AuthConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::in_memory().await.expect("store");
    let queue = LocalQueue::new(&store, EngineConfig::default().retry)
        .await
        .expect("queue");
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).expect("media");
    let engine = Arc::new(Engine::new(
        EngineConfig::default(),
        Arc::new(store),
        Arc::new(queue),
        Arc::new(heimdex_index::EmbeddedIndex::in_memory()),
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&media).expect("media")),
    ));
    let mut state = AppState::new(Arc::clone(&engine), Authenticator::new(auth));
    state.local_roots = Arc::new(vec![dir.path().canonicalize().expect("canon")]);
    Fixture {
        app: router(state),
        engine,
        dir,
    }
}

fn hs256() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SECRET.into()),
        ..AuthConfig::default()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn claims(tenant: &str) -> Value {
    json!({"sub": "user-1", "aud": "authenticated", "exp": now() + 3600,
           "app_metadata": {"tenant_id": tenant}, "role": "authenticated"})
}

fn token(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn error_kind(&self) -> String {
        self.json()["error"]["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("no error shape: {}", self.json()))
            .to_owned()
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    raw(app, req).await
}

async fn raw(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body")
        .to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

#[tokio::test]
async fn bad_tokens_are_401_with_the_error_shape() {
    let f = fixture(hs256()).await;
    let good = token(&claims("t1"));
    assert_eq!(
        call(&f.app, "GET", "/v1/sources", Some(&good), None)
            .await
            .status,
        StatusCode::OK
    );

    let b64 = |v: &Value| base64_url_encode(v.to_string().as_bytes());
    let none_alg = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("t1"))
    );
    let mut expired = claims("t1");
    expired["exp"] = json!(now() - 3600);
    let mut not_yet = claims("t1");
    not_yet["nbf"] = json!(now() + 3600);
    let mut wrong_aud = claims("t1");
    wrong_aud["aud"] = json!("anon");
    let mut no_exp = claims("t1");
    no_exp.as_object_mut().expect("obj").remove("exp");
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &claims("t1"),
        &EncodingKey::from_secret(b"another-secret-that-is-also-32-chars-long"),
    )
    .expect("sign");
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("garbage", Some("not-a-jwt".into())),
        ("alg none", Some(none_alg)),
        ("expired", Some(token(&expired))),
        ("not yet valid", Some(token(&not_yet))),
        ("wrong audience", Some(token(&wrong_aud))),
        ("no exp", Some(token(&no_exp))),
        ("wrong key", Some(wrong_key)),
    ];
    for (what, t) in cases {
        let r = call(&f.app, "GET", "/v1/sources", t.as_deref(), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(r.error_kind(), "unauthorized", "{what}");
        assert!(r.content_type.starts_with("application/json"), "{what}");
    }
    // The tenant falls back to `sub` when the tenant claim is absent.
    let mut sub_only = claims("ignored");
    sub_only
        .as_object_mut()
        .expect("obj")
        .remove("app_metadata");
    let r = call(&f.app, "GET", "/v1/sources", Some(&token(&sub_only)), None).await;
    assert_eq!(r.status, StatusCode::OK);
}

fn base64_url_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWKS endpoint on loopback serving one ES256 key; counts fetches.
async fn jwks_server(jwks: Value) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(jwks)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/.well-known/jwks.json"), hits)
}

fn es256_key(seed: u8) -> (EncodingKey, Value) {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let secret = p256::SecretKey::from_slice(&[seed; 32]).expect("key");
    let pem = secret.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).expect("jwk");
    (
        EncodingKey::from_ec_pem(pem.as_bytes()).expect("encoding key"),
        jwk,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_are_checked_against_the_jwks() {
    let (key, mut jwk) = es256_key(7);
    jwk["kid"] = json!("key-1");
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    let (url, fetches) = jwks_server(json!({"keys": [jwk]})).await;
    let f = fixture(AuthConfig {
        jwks_url: Some(url.clone()),
        jwks_min_refresh: std::time::Duration::ZERO,
        ..AuthConfig::default()
    })
    .await;
    let sign = |kid: &str, key: &EncodingKey| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        encode(&h, &claims("es"), key).expect("sign")
    };
    let good = sign("key-1", &key);
    for _ in 0..3 {
        let r = call(&f.app, "GET", "/v1/sources", Some(&good), None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "keys are cached");
    let (other, _) = es256_key(9);
    let r = call(
        &f.app,
        "GET",
        "/v1/sources",
        Some(&sign("key-1", &other)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "signed by another key");
    let r = call(
        &f.app,
        "GET",
        "/v1/sources",
        Some(&sign("key-2", &key)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "unknown kid");
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "an unknown kid refreshes the keys once"
    );
    // With the default rate limit, made-up key ids do not reach the key server again.
    let limited = fixture(AuthConfig {
        jwks_url: Some(url),
        ..AuthConfig::default()
    })
    .await;
    let r = call(&limited.app, "GET", "/v1/sources", Some(&good), None).await;
    assert_eq!(r.status, StatusCode::OK);
    for kid in ["x1", "x2", "x3"] {
        let r = call(
            &limited.app,
            "GET",
            "/v1/sources",
            Some(&sign(kid, &key)),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        3,
        "one fetch for the new server, none for made-up kids"
    );
    // HS256 is refused when no secret is configured (no key confusion with the public key).
    let r = call(
        &f.app,
        "GET",
        "/v1/sources",
        Some(&token(&claims("es"))),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_requests_are_4xx_json() {
    let f = fixture(hs256()).await;
    let t = token(&claims("t1"));
    let post = |body: &'static str, ctype: &'static str| {
        Request::builder()
            .method("POST")
            .uri("/v1/search")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .header(header::CONTENT_TYPE, ctype)
            .body(Body::from(body))
            .expect("req")
    };
    let r = raw(&f.app, post("{not json", "application/json")).await;
    assert_eq!(
        (r.status, r.error_kind().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    let r = raw(
        &f.app,
        post(r#"{"query": "x", "colour": "red"}"#, "application/json"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "unknown field");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("colour")
    );
    let r = raw(&f.app, post(r#"{"query": "x"}"#, "text/plain")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = Box::leak(format!(r#"{{"query": "{}"}}"#, "a".repeat(2 << 20)).into_boxed_str());
    let r = raw(&f.app, post(huge, "application/json")).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_kind(), "payload_too_large");
    for (body, what) in [
        (
            json!({"query": "x", "filters": {"kinds": ["nope"]}}),
            "bad kind",
        ),
        (json!({"query": "x", "limit": 0}), "limit 0"),
        (
            json!({"query": "x", "filters": {"time": [5.0, 1.0]}}),
            "inverted time",
        ),
        (json!({"query": "x", "fusion": "magic"}), "unknown fusion"),
        (json!({}), "nothing to search"),
        (json!({"query": "   "}), "blank query"),
        (
            json!({"vector": {"space": "text", "values": [1.0, 2.0]}}),
            "unknown space",
        ),
    ] {
        let r = call(&f.app, "POST", "/v1/search", Some(&t), Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.json());
        assert_eq!(r.error_kind(), "invalid_input", "{what}");
    }
    let r = call(&f.app, "GET", "/v1/jobs?limit=abc", Some(&t), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(&f.app, "GET", "/v1/jobs?state=sleeping", Some(&t), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A wrong method was an empty 405; it is the JSON error shape too.
    let r = call(&f.app, "DELETE", "/v1/assets", Some(&t), None).await;
    assert_eq!(
        (r.status, r.error_kind().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let r = call(&f.app, "GET", "/v1/nothing-here", Some(&t), None).await;
    assert_eq!(
        (r.status, r.error_kind().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    for uri in [
        "/v1/assets/nope",
        "/v1/jobs/nope",
        "/v1/assets/nope/sidecar",
        "/v1/assets/nope/thumbnails/0",
    ] {
        let r = call(&f.app, "GET", uri, Some(&t), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.error_kind(), "not_found", "{uri}");
    }
    let r = call(
        &f.app,
        "POST",
        "/v1/sources",
        Some(&t),
        Some(json!({"uri": "/etc"})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "outside HEIMDEX_LOCAL_ROOTS"
    );
    let r = call(
        &f.app,
        "POST",
        "/v1/sources",
        Some(&t),
        Some(json!({"uri": "/no/such/dir"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json());
    let r = call(
        &f.app,
        "PUT",
        "/v1/persons/person-1",
        Some(&t),
        Some(json!({"name": "Ada"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Found by fuzzing the native stack (make fuzz-api): a NUL byte in an id reached Postgres,
    // which refuses it in text, and came back 500; an id that is not UTF-8 came back as
    // axum's plain-text 400. Both are JSON 400s now.
    for (method, uri) in [
        ("GET", "/v1/assets/%00"),
        ("GET", "/v1/assets/a%00b/sidecar"),
        ("GET", "/v1/assets/%00/thumbnails/1"),
        ("POST", "/v1/assets/%00/reindex"),
        ("GET", "/v1/jobs/%00"),
        ("POST", "/v1/sources/%00/sync"),
        ("GET", "/v1/assets?after=%00"),
        ("GET", "/v1/jobs?state=pending%00"),
        ("GET", "/v1/assets/%FF"),
        ("GET", "/v1/jobs/%C3%28"),
    ] {
        let r = call(&f.app, method, uri, Some(&t), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method} {uri}");
        assert_eq!(r.error_kind(), "invalid_input", "{method} {uri}");
    }
    let long = "x".repeat(201);
    for name in ["a\u{0}b", "line\nbreak", long.as_str()] {
        let r = call(
            &f.app,
            "PUT",
            "/v1/persons/person-1",
            Some(&t),
            Some(json!({ "name": name })),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(r.error_kind(), "invalid_input", "{name:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_with_tenant_isolation() {
    let samples = samples();
    let f = fixture(hs256()).await;
    let lib = f.dir.path().join("library");
    std::fs::create_dir_all(&lib).expect("mkdir");
    copy_samples(&samples, &lib, &["bikes.mp4", "carphone_pristine.mp4"]);
    let a = token(&claims("tenant-a"));
    let b = token(&claims("tenant-b"));

    let r = call(
        &f.app,
        "POST",
        "/v1/sources",
        Some(&a),
        Some(json!({"uri": lib.to_str().expect("utf8")})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let source = r.json()["id"].as_str().expect("id").to_owned();
    let again = call(
        &f.app,
        "POST",
        "/v1/sources",
        Some(&a),
        Some(json!({"uri": format!("file://{}", lib.display())})),
    )
    .await;
    assert_eq!(
        again.json()["id"].as_str(),
        Some(source.as_str()),
        "same place, same source"
    );

    // Tenant B cannot sync A's source.
    let r = call(
        &f.app,
        "POST",
        &format!("/v1/sources/{source}/sync"),
        Some(&b),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &f.app,
        "POST",
        &format!("/v1/sources/{source}/sync"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let jobs: Vec<String> = r.json()["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(jobs.len(), 2);
    let r = call(
        &f.app,
        "GET",
        &format!("/v1/jobs/{}", jobs[0]),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.json()["state"], "pending");
    f.engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("workers");
    for j in &jobs {
        let r = call(&f.app, "GET", &format!("/v1/jobs/{j}"), Some(&a), None).await;
        assert_eq!(r.json()["state"], "completed", "{}", r.json());
        let r = call(&f.app, "GET", &format!("/v1/jobs/{j}"), Some(&b), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "B cannot see A's job");
    }

    let r = call(
        &f.app,
        "POST",
        "/v1/search",
        Some(&a),
        Some(json!({"query": "bikes", "limit": 5})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let moments = r.json()["moments"].as_array().expect("moments").clone();
    assert!(!moments.is_empty());
    let first = &moments[0];
    assert!(
        first["path"].as_str().expect("path").ends_with("bikes.mp4"),
        "{first}"
    );
    assert!(first["signals"][0]["signal"] == "keyword");
    let asset = first["asset"].as_str().expect("asset").to_owned();
    let thumb = first["thumbnail"]
        .as_str()
        .expect("thumbnail url")
        .to_owned();
    let r = call(&f.app, "GET", &thumb, Some(&a), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "image/jpeg");
    assert_eq!(&r.body[..2], &[0xFF, 0xD8], "a JPEG");
    let r = call(
        &f.app,
        "GET",
        &format!("/v1/assets/{asset}/sidecar"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.json()["asset"]["tenant"], "tenant-a");
    let r = call(&f.app, "GET", "/v1/assets?limit=1", Some(&a), None).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "paging");

    // Tenant B sees none of it, through any endpoint.
    for uri in [
        format!("/v1/assets/{asset}"),
        format!("/v1/assets/{asset}/sidecar"),
        thumb.clone(),
    ] {
        let r = call(&f.app, "GET", &uri, Some(&b), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let r = call(
        &f.app,
        "POST",
        &format!("/v1/assets/{asset}/reindex"),
        Some(&b),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &f.app,
        "POST",
        "/v1/search",
        Some(&b),
        Some(json!({"query": "bikes"})),
    )
    .await;
    assert_eq!(r.json()["moments"], json!([]));
    for list in ["/v1/assets", "/v1/jobs", "/v1/sources", "/v1/persons"] {
        let r = call(&f.app, "GET", list, Some(&b), None).await;
        assert_eq!(r.json(), json!([]), "{list}");
    }
    let r = call(
        &f.app,
        "POST",
        &format!("/v1/assets/{asset}/reindex"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn openapi_docs_health_and_metrics() {
    let f = fixture(hs256()).await;
    let r = call(&f.app, "GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    for path in [
        "/v1/sources",
        "/v1/sources/{id}/sync",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/assets",
        "/v1/assets/{id}",
        "/v1/assets/{id}/sidecar",
        "/v1/assets/{id}/thumbnails/{n}",
        "/v1/assets/{id}/reindex",
        "/v1/search",
        "/v1/persons",
        "/v1/persons/{id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every operation documents the answers a fuzzer (make fuzz-api) gets from it: 401
    // without a token, 400 for malformed input, 415 for a body that is not JSON.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let codes = op["responses"].as_object().expect("responses");
            assert!(codes.contains_key("401"), "{method} {path} lacks 401");
            let has_input = path.contains('{')
                || op.get("parameters").is_some()
                || op.get("requestBody").is_some();
            if has_input {
                assert!(codes.contains_key("400"), "{method} {path} lacks 400");
            }
            if op.get("requestBody").is_some() {
                assert!(codes.contains_key("415"), "{method} {path} lacks 415");
            }
        }
    }
    let r = call(&f.app, "GET", "/docs/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&r.body).contains("swagger"),
        "docs page"
    );
    let r = call(&f.app, "GET", "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["ok"], true);
    for dep in ["store", "queue", "index", "media"] {
        assert_eq!(r.json()["checks"][dep]["ok"], true, "{dep}");
    }
    assert_eq!(
        call(&f.app, "GET", "/readyz", None, None).await.status,
        StatusCode::OK
    );
    let r = call(&f.app, "GET", "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        text.contains(
            "heimdex_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("heimdex_queue_messages{state=\"ready\"} 0"),
        "{text}"
    );
    let r = call(&f.app, "GET", "/v1/sources", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let text = String::from_utf8_lossy(&call(&f.app, "GET", "/metrics", None, None).await.body)
        .into_owned();
    assert!(
        text.contains("route=\"/v1/sources\",method=\"GET\",status=\"401\"} 1"),
        "{text}"
    );
}
