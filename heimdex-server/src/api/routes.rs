//! The `/v1` handlers: each checks its input, calls the engine for the caller's tenant, and
//! translates the answer. No logic of their own beyond that.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use heimdex_core::index::{SearchFilter, SearchRequest};
use heimdex_core::model::{Asset, AssetId, Job, JobId, JobState, Source, SourceId};
use heimdex_core::{Fusion, Moment, SegmentKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{AppState, Caller};

/// A source to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    /// Kind, when the URI alone does not say it (`local`); checked against the URI's.
    #[serde(default)]
    pub kind: Option<String>,
    /// Where the media lives: a server-side path or `file://` URI (other schemes as the
    /// server's connectors allow).
    #[schema(min_length = 1)]
    pub uri: String,
    /// Connector options (endpoint, region, credentials). Settings are stored with the
    /// source; secrets (keys naming a secret, password, token, key, credential) are used for
    /// this request's connector only and never stored: the server's environment supplies them
    /// after a restart.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// A registered source.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceOut {
    /// Source id.
    pub id: String,
    /// Kind (`local`, `local-file`, …).
    pub kind: String,
    /// Normalised URI.
    pub uri: String,
    /// Whether it has been synced at least once.
    pub synced: bool,
    /// When the last sync finished (ms since the epoch), if ever.
    pub synced_ms: Option<i64>,
    /// Stored connector settings (never secrets).
    pub options: BTreeMap<String, String>,
}

impl From<Source> for SourceOut {
    fn from(s: Source) -> Self {
        Self {
            id: s.id.to_string(),
            kind: s.kind,
            uri: s.uri,
            synced: s.cursor.is_some(),
            synced_ms: s.synced_ms,
            options: s.options,
        }
    }
}

/// What a sync found and queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOut {
    /// New assets queued.
    pub new: u64,
    /// Modified assets queued.
    pub modified: u64,
    /// Deleted assets removed.
    pub deleted: u64,
    /// Jobs queued.
    pub jobs: Vec<String>,
}

/// A job and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobOut {
    /// Job id.
    pub id: String,
    /// Asset id.
    pub asset: String,
    /// `pending`, `processing`, `completed` or `failed`.
    pub state: String,
    /// Current stage while processing.
    pub stage: Option<String>,
    /// Percent of the whole job while processing.
    pub percent: Option<f32>,
    /// Deliveries so far.
    pub attempts: u32,
    /// Why it failed (for good, or last time before a retry).
    pub error: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last change, ms since the epoch.
    pub updated_ms: i64,
}

impl From<Job> for JobOut {
    fn from(j: Job) -> Self {
        let (stage, percent, reason) = match &j.state {
            JobState::Processing { stage, percent } => (Some(stage.clone()), Some(*percent), None),
            JobState::Failed { reason } => (None, None, Some(reason.clone())),
            _ => (None, None, None),
        };
        Self {
            id: j.id.to_string(),
            asset: j.asset.to_string(),
            state: j.state.name().to_owned(),
            stage,
            percent,
            attempts: j.attempts,
            error: reason.or(j.last_error),
            created_ms: j.created_ms,
            updated_ms: j.updated_ms,
        }
    }
}

/// An asset.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetOut {
    /// Asset id.
    pub id: String,
    /// Source id.
    pub source: String,
    /// Key within the source.
    pub key: String,
    /// Version (etag, size-mtime, …).
    pub version: String,
    /// Bytes.
    pub size: u64,
    /// `pending`, `indexed` or `failed`.
    pub state: String,
    /// Duration, seconds, once indexed.
    pub duration_s: Option<f64>,
    /// Last change, ms since the epoch.
    pub updated_ms: i64,
}

impl From<Asset> for AssetOut {
    fn from(a: Asset) -> Self {
        Self {
            id: a.id.to_string(),
            source: a.source.to_string(),
            key: a.key,
            version: a.version,
            size: a.size,
            state: a.state.as_str().to_owned(),
            duration_s: a.duration_s,
            updated_ms: a.updated_ms,
        }
    }
}

/// Paging of listings.
#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetPage {
    /// Only ids after this one (keyset paging: the last id of the previous page).
    pub after: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Job listing filter.
#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// Only jobs in this state: `pending`, `processing`, `completed` or `failed`.
    #[param(pattern = "^(pending|processing|completed|failed)$")]
    pub state: Option<String>,
    /// At most this many, newest first, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Filters of a search; each applies to every signal.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FiltersIn {
    /// Only these sources.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Only these assets.
    #[serde(default)]
    pub assets: Vec<String>,
    /// Only paths starting with this.
    pub path_prefix: Option<String>,
    /// Only moments overlapping [from, to] seconds.
    #[schema(min_items = 2, max_items = 2)]
    pub time: Option<[f64; 2]>,
    /// Only these kinds: asset, shot, transcript, ocr, visual, custom.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only moments with all these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only shots showing all of these (visual labels or broader words, e.g. `dog`,
    /// `mountain`, `seashore`): the tags `visual:<label>`.
    #[serde(default)]
    pub shows: Vec<String>,
    /// Only assets whose duration (seconds) is in [min, max].
    #[schema(min_items = 2, max_items = 2)]
    pub duration: Option<[f64; 2]>,
    /// Only assets captured in [from, to] (`YYYY-MM-DD`).
    #[schema(min_items = 2, max_items = 2)]
    pub date: Option<[String; 2]>,
    /// Only these spoken languages (ISO 639-1).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Only assets with (true) or without (false) speech.
    pub has_speech: Option<bool>,
    /// Only moments where these persons appear (ids or names).
    #[serde(default)]
    pub persons: Vec<String>,
}

/// "More like this": the moment of `asset` at `at_s` seconds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LikeIn {
    /// Asset id.
    pub asset: String,
    /// Seconds into the asset.
    pub at_s: f64,
}

/// A query vector in a named space.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorIn {
    /// Space (`text`, `image`).
    pub space: String,
    /// The vector.
    pub values: Vec<f32>,
}

/// A search: text and/or a vector or an example moment, filters, paging.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchIn {
    /// Words, "quoted phrases", prefix*.
    pub query: Option<String>,
    /// Search by a vector.
    pub vector: Option<VectorIn>,
    /// More like this moment.
    pub like: Option<LikeIn>,
    /// Filters.
    #[serde(default)]
    pub filters: FiltersIn,
    /// `rrf` (default) or `weighted`.
    pub fusion: Option<String>,
    /// Weights of `weighted` fusion: [keyword, vector].
    #[schema(min_items = 2, max_items = 2)]
    pub weights: Option<[f32; 2]>,
    /// Moments to return, 1–100 (default 10).
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// Moments to skip, at most 10000.
    #[serde(default)]
    #[schema(maximum = 10000)]
    pub offset: usize,
}

/// Which signal matched a moment, with its rank and score.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalOut {
    /// `keyword` or `vector:SPACE`.
    pub signal: String,
    /// Rank in that signal's list (1 = best).
    pub rank: u32,
    /// That signal's score.
    pub score: f32,
}

/// A time-coded moment.
#[derive(Debug, Serialize, ToSchema)]
pub struct MomentOut {
    /// Asset id.
    pub asset: String,
    /// Source id.
    pub source: String,
    /// Path users know the asset by.
    pub path: String,
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Fused score.
    pub score: f32,
    /// Why it matched.
    pub signals: Vec<SignalOut>,
    /// Matching text with `[`highlights`]`.
    pub snippet: Option<String>,
    /// URL of the thumbnail image.
    pub thumbnail: Option<String>,
}

/// Search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchOut {
    /// The moments, best first.
    pub moments: Vec<MomentOut>,
}

/// A person (face cluster).
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonOut {
    /// `person-N`.
    pub id: String,
    /// Name, once given.
    pub name: Option<String>,
    /// Faces seen.
    pub faces: u64,
}

/// A new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonName {
    /// The name: 1 to 200 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
}

/// A queued job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// Job id.
    pub job: String,
}

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(100) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::invalid(format!("limit {n}: expected 1 to 1000"))),
    }
}

#[utoipa::path(post, path = "/v1/sources", tag = "sources", request_body = NewSource,
    responses((status = 201, body = SourceOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "A local source outside HEIMDEX_LOCAL_ROOTS", body = ErrorBody),
        (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
/// Register a source (idempotent: the same place gives the same source).
pub async fn create_source(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiJson(body): ApiJson<NewSource>,
) -> Result<Response, ApiError> {
    let spec = heimdex_connectors::SourceSpec::parse(&body.uri)
        .map_err(|e| ApiError::invalid(e.to_string()))?
        .with_options(body.options);
    if let Some(kind) = &body.kind
        && kind != spec.kind()
        && !(kind == "local" && spec.kind() == "local-file")
    {
        return Err(ApiError::invalid(format!(
            "kind {kind:?} does not match the URI (a {} source)",
            spec.kind()
        )));
    }
    state.allow_source(&spec)?;
    let source = state.engine.add_source_spec(&tenant, spec).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(SourceOut::from(source)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/sources", tag = "sources",
    responses((status = 200, body = [SourceOut]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
/// The caller's sources.
pub async fn list_sources(
    State(state): State<AppState>,
    Caller(tenant): Caller,
) -> Result<axum::Json<Vec<SourceOut>>, ApiError> {
    let sources = state.engine.sources(&tenant).await?;
    Ok(axum::Json(
        sources.into_iter().map(SourceOut::from).collect(),
    ))
}

#[utoipa::path(post, path = "/v1/sources/{id}/sync", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    responses((status = 200, body = SyncOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// Look for new, modified and deleted media now; returns the jobs queued.
pub async fn sync_source(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<SyncOut>, ApiError> {
    // An unknown id (or another tenant's) is the scan's NotFound; its connector is attached
    // on first use.
    let r = state.engine.scan(&tenant, &SourceId::new(id)).await?;
    Ok(axum::Json(SyncOut {
        new: r.new,
        modified: r.modified,
        deleted: r.deleted,
        jobs: r.jobs.iter().map(ToString::to_string).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobFilter),
    responses((status = 200, body = [JobOut]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
/// The caller's jobs, newest first.
pub async fn list_jobs(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiQuery(q): ApiQuery<JobFilter>,
) -> Result<axum::Json<Vec<JobOut>>, ApiError> {
    if let Some(s) = &q.state
        && !["pending", "processing", "completed", "failed"].contains(&s.as_str())
    {
        return Err(ApiError::invalid(format!(
            "state {s:?}: expected pending, processing, completed or failed"
        )));
    }
    let jobs = state
        .engine
        .jobs(&tenant, q.state.as_deref(), page_limit(q.limit)?)
        .await?;
    Ok(axum::Json(jobs.into_iter().map(JobOut::from).collect()))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// One job: state, stage, percent, attempts, last error.
pub async fn get_job(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<JobOut>, ApiError> {
    Ok(axum::Json(
        state.engine.job(&tenant, &JobId::new(id)).await?.into(),
    ))
}

#[utoipa::path(get, path = "/v1/assets", tag = "assets", params(AssetPage),
    responses((status = 200, body = [AssetOut]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
/// A page of the caller's assets, by id.
pub async fn list_assets(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiQuery(q): ApiQuery<AssetPage>,
) -> Result<axum::Json<Vec<AssetOut>>, ApiError> {
    let page = state
        .engine
        .assets_page(&tenant, q.after.map(AssetId::new), page_limit(q.limit)?)
        .await?;
    Ok(axum::Json(page.into_iter().map(AssetOut::from).collect()))
}

#[utoipa::path(get, path = "/v1/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id")),
    responses((status = 200, body = AssetOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// One asset.
pub async fn get_asset(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<AssetOut>, ApiError> {
    Ok(axum::Json(
        state.engine.asset(&tenant, &AssetId::new(id)).await?.into(),
    ))
}

#[utoipa::path(get, path = "/v1/assets/{id}/sidecar", tag = "assets",
    params(("id" = String, Path, description = "Asset id")),
    responses((status = 200, description = "The sidecar JSON (docs/sidecar-schema.json)"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// The asset's sidecar.
pub async fn get_sidecar(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = AssetId::new(id);
    state.engine.asset(&tenant, &id).await?;
    let sidecar = state.engine.sidecar(&tenant, &id).await?;
    Ok(axum::Json(sidecar).into_response())
}

#[utoipa::path(get, path = "/v1/assets/{id}/thumbnails/{n}", tag = "assets",
    params(("id" = String, Path, description = "Asset id"), ("n" = u32, Path, description = "Shot index")),
    responses((status = 200, content_type = "image/jpeg", description = "JPEG thumbnail"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// The JPEG thumbnail of shot `n`.
pub async fn get_thumbnail(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiPath((id, n)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let shot: u32 = n
        .trim_end_matches(".jpg")
        .parse()
        .map_err(|_| ApiError::invalid(format!("thumbnail {n:?}: expected a shot number")))?;
    let bytes = state
        .engine
        .thumbnail(&tenant, &AssetId::new(id), shot)
        .await?;
    let mut resp = bytes.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(resp)
}

#[utoipa::path(post, path = "/v1/assets/{id}/reindex", tag = "assets",
    params(("id" = String, Path, description = "Asset id")),
    responses((status = 202, body = Queued), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// Queue the asset for indexing again (stages whose identity is unchanged are reused).
pub async fn reindex_asset(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = state
        .engine
        .reindex_asset(&tenant, &AssetId::new(id))
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(Queued {
            job: job.to_string(),
        }),
    )
        .into_response())
}

fn kind_of(name: &str) -> Result<SegmentKind, ApiError> {
    name.parse().map_err(|e: String| ApiError::invalid(e))
}

fn finite_range(what: &str, r: Option<[f64; 2]>) -> Result<Option<(f64, f64)>, ApiError> {
    match r {
        None => Ok(None),
        Some([a, b]) if a.is_finite() && b.is_finite() && a <= b => Ok(Some((a, b))),
        Some([a, b]) => Err(ApiError::invalid(format!(
            "{what} [{a}, {b}]: expected two finite numbers, from <= to"
        ))),
    }
}

/// The URL of a moment's thumbnail (`TENANT/thumbs/ASSET/shot-00002.jpg` → the API path).
fn thumbnail_url(m: &Moment) -> Option<String> {
    let location = m.thumbnail.as_deref()?;
    let shot = location
        .rsplit('/')
        .next()?
        .strip_prefix("shot-")?
        .strip_suffix(".jpg")?;
    let n: u32 = shot.parse().ok()?;
    Some(format!("/v1/assets/{}/thumbnails/{n}", m.asset))
}

#[utoipa::path(post, path = "/v1/search", tag = "search", request_body = SearchIn,
    responses((status = 200, body = SearchOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "`like` names an asset without a sidecar", body = ErrorBody),
        (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
/// Hybrid search: keyword and meaning, fused, as time-coded moments.
pub async fn search(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiJson(body): ApiJson<SearchIn>,
) -> Result<axum::Json<SearchOut>, ApiError> {
    let limit = body.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit {limit}: expected 1 to 100"
        )));
    }
    if body.offset > 10_000 {
        return Err(ApiError::invalid("offset: at most 10000"));
    }
    let f = body.filters;
    let mut filter = SearchFilter::default();
    filter.sources = f.sources.into_iter().map(SourceId::new).collect();
    filter.assets = f.assets.into_iter().map(AssetId::new).collect();
    filter.path_prefix = f.path_prefix;
    filter.time_range = finite_range("time", f.time)?;
    filter.kinds = f
        .kinds
        .iter()
        .map(|k| kind_of(k))
        .collect::<Result<_, _>>()?;
    filter.tags = f.tags;
    filter.tags.extend(
        f.shows
            .iter()
            .map(|l| heimdex_core::segments::visual_tag(l)),
    );
    filter.duration_range = finite_range("duration", f.duration)?;
    filter.date_range = f.date.map(|[a, b]| (a, b));
    filter.languages = f.languages;
    filter.has_speech = f.has_speech;
    for p in f.persons {
        let id = state.engine.resolve_person(&tenant, &p).await?.unwrap_or(p);
        filter.faces.push(id);
    }
    let fusion = match (body.fusion.as_deref(), body.weights) {
        (None | Some("rrf"), None) => Fusion::default(),
        (Some("weighted"), Some([keyword, vector])) => Fusion::Weighted { keyword, vector },
        (Some("weighted"), None) => {
            return Err(ApiError::invalid(
                "weighted fusion needs weights: [keyword, vector]",
            ));
        }
        (Some(other), _) if other != "rrf" && other != "weighted" => {
            return Err(ApiError::invalid(format!(
                "fusion {other:?}: expected rrf or weighted"
            )));
        }
        _ => return Err(ApiError::invalid("weights apply to weighted fusion only")),
    };
    let mut req = SearchRequest::new(tenant.clone())
        .with_filter(filter)
        .with_fusion(fusion)
        .with_limit(limit)
        .with_offset(body.offset);
    if let Some(q) = body.query {
        req = req.with_text(q);
    }
    if let Some(v) = body.vector {
        req = req.with_vector(v.space, v.values);
    }
    let moments = match body.like {
        Some(like) => {
            state
                .engine
                .more_like(&AssetId::new(like.asset), like.at_s, &req)
                .await?
        }
        None => {
            if req.text.is_none() && req.vector.is_none() {
                return Err(ApiError::invalid("give a query, a vector or like"));
            }
            state.engine.search(&req).await?
        }
    };
    Ok(axum::Json(SearchOut {
        moments: moments
            .iter()
            .map(|m| MomentOut {
                asset: m.asset.to_string(),
                source: m.source.to_string(),
                path: m.path.clone(),
                start_s: m.start_s,
                end_s: m.end_s,
                score: m.score,
                signals: m
                    .signals
                    .iter()
                    .map(|s| SignalOut {
                        signal: s.signal.clone(),
                        rank: s.rank,
                        score: s.score,
                    })
                    .collect(),
                snippet: m.snippet.clone(),
                thumbnail: thumbnail_url(m),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/persons", tag = "persons",
    responses((status = 200, body = [PersonOut]), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
/// The caller's persons (face clusters across the archive).
pub async fn list_persons(
    State(state): State<AppState>,
    Caller(tenant): Caller,
) -> Result<axum::Json<Vec<PersonOut>>, ApiError> {
    let persons = state.engine.persons(&tenant).await?;
    Ok(axum::Json(
        persons
            .into_iter()
            .map(|p| PersonOut {
                id: p.id,
                name: p.name,
                faces: p.faces,
            })
            .collect(),
    ))
}

#[utoipa::path(put, path = "/v1/persons/{id}", tag = "persons", request_body = PersonName,
    params(("id" = String, Path, description = "Person id or current name")),
    responses((status = 200, body = PersonOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
/// Name a person.
pub async fn name_person(
    State(state): State<AppState>,
    Caller(tenant): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PersonName>,
) -> Result<axum::Json<PersonOut>, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.contains(char::is_control) {
        return Err(ApiError::invalid(
            "name: 1 to 200 characters, no control characters",
        ));
    }
    let p = state.engine.name_person(&tenant, &id, name).await?;
    Ok(axum::Json(PersonOut {
        id: p.id,
        name: p.name,
        faces: p.faces,
    }))
}
