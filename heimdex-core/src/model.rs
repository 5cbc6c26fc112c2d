//! Domain types: tenants, sources, assets, jobs, segments.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wrap an id string.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(
    /// A tenant: the unit of isolation. The embedded default has one, `default`.
    TenantId
);
id_type!(
    /// A source: one configured connector instance (a folder, a bucket prefix, a Drive).
    SourceId
);
id_type!(
    /// A stable asset id, derived from (tenant, source, key); the version is tracked separately.
    AssetId
);
id_type!(
    /// A job id (UUID v4).
    JobId
);

impl TenantId {
    /// The single tenant of the embedded default.
    pub fn default_tenant() -> Self {
        Self::new("default")
    }
}

impl AssetId {
    /// The stable id of the asset at `key` in `source` of `tenant`: the first 16 bytes of
    /// SHA-256 over the three parts, hex encoded. Re-listing the same key yields the same id.
    pub fn derive(tenant: &TenantId, source: &SourceId, key: &str) -> Self {
        let mut h = Sha256::new();
        for part in [tenant.as_str(), source.as_str(), key] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let digest = h.finalize();
        Self(hex(&digest[..16]))
    }
}

impl JobId {
    /// A fresh random job id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A configured source: which connector kind and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Tenant that owns it.
    pub tenant: TenantId,
    /// Its id.
    pub id: SourceId,
    /// Connector kind, e.g. `local`, `s3`.
    pub kind: String,
    /// Connector-specific location, e.g. an absolute folder path or `s3://bucket/prefix`.
    pub uri: String,
    /// The change cursor after the last successful scan, if any.
    pub cursor: Option<String>,
    /// Connector settings kept with the source so it can be rebuilt after a restart
    /// (endpoint, region, …). Never secrets: credentials come from the environment or are
    /// given again (see `heimdex_connectors::SourceOptions::storable`).
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// When the last successful scan finished, ms since the epoch.
    #[serde(default)]
    pub synced_ms: Option<i64>,
}

/// State of an asset in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetState {
    /// Known, waiting for (re-)indexing.
    Pending,
    /// Indexed: its sidecar is current for its version.
    Indexed,
    /// Its last job failed; see the job for the reason.
    Failed,
}

impl AssetState {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Indexed => "indexed",
            Self::Failed => "failed",
        }
    }
    /// Parse the stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "indexed" => Self::Indexed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// An asset: one object in a source. Identity is (source, key); `version` says which bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// Owner.
    pub tenant: TenantId,
    /// Stable id, see [`AssetId::derive`].
    pub id: AssetId,
    /// Source it lives in.
    pub source: SourceId,
    /// Object key inside the source.
    pub key: String,
    /// Version (etag / generation / size+mtime).
    pub version: String,
    /// Size in bytes.
    pub size: u64,
    /// Indexing state.
    pub state: AssetState,
    /// Where its sidecar is stored, once written.
    pub sidecar: Option<SidecarRef>,
    /// Media duration in seconds, once probed.
    pub duration_s: Option<f64>,
    /// Last update, milliseconds since the epoch.
    pub updated_ms: i64,
}

/// A reference to a stored sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarRef {
    /// Object-store location of the sidecar JSON.
    pub location: String,
    /// Sidecar schema version.
    pub schema_version: u32,
    /// Asset version the sidecar was computed from.
    pub asset_version: String,
}

/// The state machine of a job:
/// `Pending → Processing{stage, percent} → Completed | Failed{reason}`;
/// a retry moves `Processing` back to `Pending` with `attempts` incremented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to be picked up (first time or retry).
    Pending,
    /// A worker is on it.
    Processing {
        /// Current stage name.
        stage: String,
        /// Percent of the whole job, 0..=100.
        percent: f32,
    },
    /// Done.
    Completed,
    /// Gave up; `reason` says why.
    Failed {
        /// Human-readable reason, including the failing stage.
        reason: String,
    },
}

impl JobState {
    /// Stable name of the state (without payload).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing { .. } => "processing",
            Self::Completed => "completed",
            Self::Failed { .. } => "failed",
        }
    }
    /// True for `Completed` and `Failed`.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed { .. })
    }
    /// Whether moving from `self` to `next` is a legal transition.
    pub fn can_transition_to(&self, next: &JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Pending, Processing { .. })
                | (Processing { .. }, Processing { .. })
                | (Processing { .. }, Completed)
                | (Processing { .. }, Failed { .. })
                | (Processing { .. }, Pending)
                | (Pending, Failed { .. })
        )
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Run the pipeline on one asset version.
    IndexAsset,
}

impl JobKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IndexAsset => "index_asset",
        }
    }
    /// Parse the stable name.
    pub fn parse(s: &str) -> Option<Self> {
        (s == "index_asset").then_some(Self::IndexAsset)
    }
}

/// A job record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Owner.
    pub tenant: TenantId,
    /// Id.
    pub id: JobId,
    /// Kind.
    pub kind: JobKind,
    /// Asset the job is about.
    pub asset: AssetId,
    /// Asset version the job was created for.
    pub asset_version: String,
    /// Current state.
    pub state: JobState,
    /// Deliveries so far (1 on the first run).
    pub attempts: u32,
    /// Last error message, kept across retries.
    pub last_error: Option<String>,
    /// Creation time, ms since epoch.
    pub created_ms: i64,
    /// Last update, ms since epoch.
    pub updated_ms: i64,
}

/// Kind of a searchable segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// The whole asset (file name, path, technical metadata).
    Asset,
    /// One shot.
    Shot,
    /// A transcript window.
    Transcript,
    /// On-screen text.
    Ocr,
    /// What a shot shows (labels, objects, generated description).
    Visual,
    /// Produced by an integrator's extractor.
    Custom,
}

impl SegmentKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asset => "asset",
            Self::Shot => "shot",
            Self::Transcript => "transcript",
            Self::Ocr => "ocr",
            Self::Visual => "visual",
            Self::Custom => "custom",
        }
    }

    /// Every kind, in a stable order.
    pub const ALL: [SegmentKind; 6] = [
        Self::Asset,
        Self::Shot,
        Self::Transcript,
        Self::Ocr,
        Self::Visual,
        Self::Custom,
    ];
}

impl std::str::FromStr for SegmentKind {
    type Err = String;

    /// The kind named by [`SegmentKind::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown segment kind `{s}` (one of asset, shot, transcript, ocr, visual, custom)"
                )
            })
    }
}

/// A time-coded, searchable piece of an asset. Segments are what the index stores and what
/// search returns (merged into moments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Unique within the asset, e.g. `shot-3`.
    pub id: String,
    /// Kind.
    pub kind: SegmentKind,
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Searchable text.
    pub text: String,
    /// Thumbnail location, if any.
    pub thumbnail: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// A person: a cluster of similar faces across the whole archive, with a stable id
/// (`person-N`, never renumbered) and an optional name given by a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Owner.
    pub tenant: TenantId,
    /// Stable id, e.g. `person-3`.
    pub id: String,
    /// Name given by a user.
    pub name: Option<String>,
    /// Mean face descriptor of the faces assigned so far.
    pub centroid: Vec<f32>,
    /// Faces assigned so far.
    pub faces: u64,
    /// Last update, ms since the epoch.
    pub updated_ms: i64,
}
