//! The reference server's HTTP API (axum): `/v1` JSON endpoints behind Supabase-compatible
//! bearer auth, health, readiness, Prometheus metrics and the OpenAPI document with
//! interactive docs.
//!
//! ```text
//! GET  /healthz  /readyz  /metrics  /openapi.json  /docs
//! POST /v1/sources            GET /v1/sources          POST /v1/sources/{id}/sync
//! GET  /v1/jobs               GET /v1/jobs/{id}
//! GET  /v1/assets             GET /v1/assets/{id}      POST /v1/assets/{id}/reindex
//! GET  /v1/assets/{id}/sidecar                         GET  /v1/assets/{id}/thumbnails/{n}
//! POST /v1/search             GET /v1/persons          PUT  /v1/persons/{id}
//! ```
//!
//! Handlers only translate: they take the caller's tenant from the token ([`Caller`]), call
//! the [`Engine`], and map its errors in one place ([`error::status_of`]). Every error is
//! `{"error": {"kind", "message"}}`; malformed bodies, unknown fields, bad filters and
//! oversized bodies are 4xx, and 5xx bodies never carry internal detail.

pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use heimdex_core::TenantId;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use self::auth::Authenticator;
use self::error::ApiError;
use self::metrics::Metrics;
use crate::engine::Engine;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Longest a request may take before the server answers 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine (all backends).
    pub engine: Arc<Engine>,
    /// Token checks.
    pub auth: Arc<Authenticator>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Folders local sources may be registered under (empty: any path).
    pub local_roots: Arc<Vec<PathBuf>>,
    /// Set once the server finished starting (migrations, reconcile).
    pub ready: Arc<AtomicBool>,
}

impl AppState {
    /// State with no local-root restriction, ready at once.
    pub fn new(engine: Arc<Engine>, auth: Authenticator) -> Self {
        Self {
            engine,
            auth: Arc::new(auth),
            metrics: Arc::new(Metrics::default()),
            local_roots: Arc::new(Vec::new()),
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Refuse a local source outside the configured roots (a tenant must not index the
    /// server's own files).
    pub fn allow_source(&self, spec: &heimdex_connectors::SourceSpec) -> Result<(), ApiError> {
        if !spec.kind().starts_with("local") || self.local_roots.is_empty() {
            return Ok(());
        }
        let path = std::path::Path::new(spec.uri());
        if self.local_roots.iter().any(|r| path.starts_with(r)) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "unauthorized",
                "local sources must be under a folder the server allows (HEIMDEX_LOCAL_ROOTS)",
            ))
        }
    }
}

/// The caller's tenant, from a valid bearer token; 401 otherwise.
#[derive(Debug, Clone)]
pub struct Caller(pub TenantId);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        match state.auth.tenant_of_header(header).await {
            Ok(t) => Ok(Self(t)),
            Err(auth::AuthError::Jwks(e)) => {
                tracing::error!(error = %e, "cannot fetch signing keys");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "cannot check tokens right now; retry later",
                ))
            }
            Err(e) => Err(ApiError::unauthorized(e.to_string())),
        }
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Heimdex API", description = "Find time-coded moments in video archives read in place."),
    paths(
        routes::create_source, routes::list_sources, routes::sync_source,
        routes::list_jobs, routes::get_job,
        routes::list_assets, routes::get_asset, routes::get_sidecar, routes::get_thumbnail,
        routes::reindex_asset, routes::search, routes::list_persons, routes::name_person,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "sources", description = "Where media lives"),
        (name = "jobs", description = "Indexing work and its progress"),
        (name = "assets", description = "Indexed media, sidecars, thumbnails"),
        (name = "search", description = "Hybrid search by moment"),
        (name = "persons", description = "Face clusters across the archive"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let v1 = Router::new()
        .route(
            "/sources",
            post(routes::create_source).get(routes::list_sources),
        )
        .route("/sources/{id}/sync", post(routes::sync_source))
        .route("/jobs", get(routes::list_jobs))
        .route("/jobs/{id}", get(routes::get_job))
        .route("/assets", get(routes::list_assets))
        .route("/assets/{id}", get(routes::get_asset))
        .route("/assets/{id}/sidecar", get(routes::get_sidecar))
        .route("/assets/{id}/thumbnails/{n}", get(routes::get_thumbnail))
        .route("/assets/{id}/reindex", post(routes::reindex_asset))
        .route("/search", post(routes::search))
        .route("/persons", get(routes::list_persons))
        .route("/persons/{id}", put(routes::name_person))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint (see the Allow header)",
            )
        });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs"))
        .nest("/v1", v1)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// Count every request by route and status.
async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let t = Instant::now();
    let resp = next.run(req).await;
    state.metrics.request(
        &route,
        &method,
        resp.status().as_u16(),
        t.elapsed().as_secs_f64(),
    );
    resp
}

/// Each dependency's state; 503 with `ok: false` when one is down.
async fn healthz(State(state): State<AppState>) -> Response {
    let checks = state.engine.health().await;
    let ok = checks.values().all(Result::is_ok);
    let body = serde_json::json!({
        "ok": ok,
        "checks": checks
            .iter()
            .map(|(name, r)| {
                let v = match r {
                    Ok(()) => serde_json::json!({"ok": true}),
                    Err(e) => serde_json::json!({"ok": false, "error": e}),
                };
                ((*name).to_owned(), v)
            })
            .collect::<serde_json::Map<_, _>>(),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// 200 once started and the store answers.
async fn readyz(State(state): State<AppState>) -> Response {
    let started = state.ready.load(Ordering::SeqCst);
    let store_ok = state
        .engine
        .health()
        .await
        .get("store")
        .is_some_and(Result::is_ok);
    let ok = started && store_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::json!({"ready": ok}))).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let queue = state
        .engine
        .queue()
        .stats()
        .await
        .ok()
        .map(|s| (s.ready, s.delayed, s.in_flight, s.dead));
    let mut text = state.metrics.render(queue);
    let (hits, misses, held) = state.engine.query_cache_stats();
    let (batches, encoded) = state.engine.query_batch_stats();
    text.push_str(&format!(
        "# HELP heimdex_query_cache_total Query-vector cache lookups by result.\n# TYPE heimdex_query_cache_total counter\nheimdex_query_cache_total{{result=\"hit\"}} {hits}\nheimdex_query_cache_total{{result=\"miss\"}} {misses}\n# HELP heimdex_query_cache_vectors Query vectors held.\n# TYPE heimdex_query_cache_vectors gauge\nheimdex_query_cache_vectors {held}\n# HELP heimdex_query_encoder_batches_total Query-encoder calls (batches) and the queries they encoded.\n# TYPE heimdex_query_encoder_batches_total counter\nheimdex_query_encoder_batches_total {batches}\n# TYPE heimdex_query_encoder_queries_total counter\nheimdex_query_encoder_queries_total {encoded}\n"
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
