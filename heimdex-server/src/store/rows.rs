//! Row <-> model conversions shared by the SQLite and Postgres stores.
//!
//! Both schemas have the same tables and columns; the conversions are written once over
//! [`StoredRow`]. Plain columns (text, 64-bit integers, doubles) are read through [`Columns`],
//! implemented for every sqlx row whose database decodes those types. The few columns whose
//! stored type differs between the backends (`jobs.percent`, `segments.tags`,
//! `persons.centroid`) are read by each backend's [`StoredRow`] implementation. Every decode
//! failure is a [`StoreError::Corrupt`] naming the column.

use std::collections::BTreeMap;

use heimdex_core::model::{
    Asset, AssetId, AssetState, Job, JobId, JobKind, JobState, Person, Segment, SegmentKind,
    SidecarRef, Source, SourceId, TenantId,
};
use heimdex_core::store::StoreError;
use sqlx::{ColumnIndex, Decode, Row, Type};

/// Page size when a query gives none.
const DEFAULT_LIMIT: u32 = 1000;

/// Read column `name` of `row`, mapping decode failures to [`StoreError::Corrupt`].
pub(super) fn col<'r, T, R>(row: &'r R, name: &str) -> Result<T, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column `{name}`: {e}")))
}

/// The plain column types both schemas share, read with [`col`].
pub(super) trait Columns {
    fn text(&self, name: &str) -> Result<String, StoreError>;
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
    fn real(&self, name: &str) -> Result<f64, StoreError>;
    fn opt_real(&self, name: &str) -> Result<Option<f64>, StoreError>;
}

impl<R> Columns for R
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, name: &str) -> Result<String, StoreError> {
        col(self, name)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        col(self, name)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        col(self, name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        col(self, name)
    }
    fn real(&self, name: &str) -> Result<f64, StoreError> {
        col(self, name)
    }
    fn opt_real(&self, name: &str) -> Result<Option<f64>, StoreError> {
        col(self, name)
    }
}

/// A row of one backend: the columns whose stored type is the backend's own.
pub(super) trait StoredRow: Columns {
    /// `jobs.percent`.
    fn percent(&self) -> Result<Option<f32>, StoreError>;
    /// `segments.tags`.
    fn tags(&self) -> Result<Vec<String>, StoreError>;
    /// `persons.centroid`.
    fn centroid(&self) -> Result<Vec<f32>, StoreError>;
}

/// `v` as the signed 64-bit integer the schemas store, or the backend's `value` error.
pub(super) fn to_i64<E: Into<StoreError>>(
    what: &str,
    v: u64,
    value: fn(String) -> E,
) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| value(format!("{what} {v} exceeds i64")).into())
}

/// The page size of a query.
pub(super) fn limit(limit: Option<u32>) -> i64 {
    i64::from(limit.unwrap_or(DEFAULT_LIMIT))
}

fn u32_col(row: &impl Columns, name: &str) -> Result<u32, StoreError> {
    let v = row.int(name)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("column `{name}`: {v} out of range")))
}

pub(super) fn source_from_row(row: &impl StoredRow) -> Result<Source, StoreError> {
    Ok(Source {
        tenant: TenantId::new(row.text("tenant")?),
        id: SourceId::new(row.text("id")?),
        kind: row.text("kind")?,
        uri: row.text("uri")?,
        cursor: row.opt_text("cursor")?,
        options: match row.opt_text("options")? {
            Some(json) if !json.is_empty() => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("column `options`: {e}")))?,
            _ => Default::default(),
        },
        synced_ms: row.opt_int("synced_ms")?,
    })
}

pub(super) fn asset_from_row(row: &impl StoredRow) -> Result<Asset, StoreError> {
    let state = row.text("state")?;
    let state = AssetState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown asset state `{state}`")))?;
    let size = row.int("size")?;
    let size =
        u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("asset size {size}")))?;
    let sidecar = match row.opt_text("sidecar_location")? {
        None => None,
        Some(location) => {
            let schema_version = row.opt_int("sidecar_schema_version")?;
            let asset_version = row.opt_text("sidecar_asset_version")?;
            match (schema_version, asset_version) {
                (Some(v), Some(asset_version)) => Some(SidecarRef {
                    location,
                    schema_version: u32::try_from(v)
                        .map_err(|_| StoreError::Corrupt(format!("sidecar schema version {v}")))?,
                    asset_version,
                }),
                _ => return Err(StoreError::Corrupt("incomplete sidecar reference".into())),
            }
        }
    };
    Ok(Asset {
        tenant: TenantId::new(row.text("tenant")?),
        id: AssetId::new(row.text("id")?),
        source: SourceId::new(row.text("source")?),
        key: row.text("object_key")?,
        version: row.text("version")?,
        size,
        state,
        sidecar,
        duration_s: row.opt_real("duration_s")?,
        updated_ms: row.int("updated_ms")?,
    })
}

/// The flat columns of a [`JobState`]: (name, stage, percent, reason), with the percent as
/// the backend's column type `P` (every `From<f32>` here is exact).
pub(super) fn job_state_columns<P: From<f32>>(
    state: &JobState,
) -> (&'static str, Option<&str>, Option<P>, Option<&str>) {
    match state {
        JobState::Pending => ("pending", None, None, None),
        JobState::Processing { stage, percent } => (
            "processing",
            Some(stage.as_str()),
            Some(P::from(*percent)),
            None,
        ),
        JobState::Completed => ("completed", None, None, None),
        JobState::Failed { reason } => ("failed", None, None, Some(reason.as_str())),
    }
}

fn job_state_from_row(row: &impl StoredRow) -> Result<JobState, StoreError> {
    let name = row.text("state")?;
    Ok(match name.as_str() {
        "pending" => JobState::Pending,
        "processing" => {
            let stage = row.opt_text("stage")?;
            let percent = row.percent()?;
            JobState::Processing {
                stage: stage
                    .ok_or_else(|| StoreError::Corrupt("processing job without stage".into()))?,
                percent: percent
                    .ok_or_else(|| StoreError::Corrupt("processing job without percent".into()))?,
            }
        }
        "completed" => JobState::Completed,
        "failed" => {
            let reason = row.opt_text("reason")?;
            JobState::Failed {
                reason: reason
                    .ok_or_else(|| StoreError::Corrupt("failed job without reason".into()))?,
            }
        }
        other => return Err(StoreError::Corrupt(format!("unknown job state `{other}`"))),
    })
}

pub(super) fn job_from_row(row: &impl StoredRow) -> Result<Job, StoreError> {
    let kind = row.text("kind")?;
    Ok(Job {
        tenant: TenantId::new(row.text("tenant")?),
        id: JobId::new(row.text("id")?),
        kind: JobKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown job kind `{kind}`")))?,
        asset: AssetId::new(row.text("asset")?),
        asset_version: row.text("asset_version")?,
        state: job_state_from_row(row)?,
        attempts: u32_col(row, "attempts")?,
        last_error: row.opt_text("last_error")?,
        created_ms: row.int("created_ms")?,
        updated_ms: row.int("updated_ms")?,
    })
}

fn segment_kind(name: &str) -> Result<SegmentKind, StoreError> {
    name.parse().map_err(StoreError::Corrupt)
}

pub(super) fn segment_from_row(row: &impl StoredRow) -> Result<Segment, StoreError> {
    let kind = row.text("kind")?;
    Ok(Segment {
        id: row.text("id")?,
        kind: segment_kind(&kind)?,
        start_s: row.real("start_s")?,
        end_s: row.real("end_s")?,
        text: row.text("content")?,
        thumbnail: row.opt_text("thumbnail")?,
        tags: row.tags()?,
    })
}

pub(super) fn persons_from_rows<R: StoredRow>(
    tenant: &TenantId,
    rows: &[R],
) -> Result<Vec<Person>, StoreError> {
    rows.iter()
        .map(|row| {
            let faces = row.int("faces")?;
            Ok(Person {
                tenant: tenant.clone(),
                id: row.text("id")?,
                name: row.opt_text("name")?,
                centroid: row.centroid()?,
                faces: u64::try_from(faces)
                    .map_err(|_| StoreError::Corrupt(format!("person faces {faces}")))?,
                updated_ms: row.int("updated_ms")?,
            })
        })
        .collect()
}

/// `(state, n)` rows as a map that also lists the known states with no rows as 0.
pub(super) fn counts_by_state<R: Columns, const N: usize>(
    rows: &[R],
    known: [&str; N],
) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut map: BTreeMap<String, u64> = known.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for row in rows {
        let state = row.text("state")?;
        let n = row.int("n")?;
        let n = u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("count {n}")))?;
        map.insert(state, n);
    }
    Ok(map)
}
