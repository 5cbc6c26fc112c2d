//! # heimdex-core
//!
//! The dependency-light heart of Heimdex: domain types, the sidecar schema, and the five
//! traits every other crate implements or consumes:
//!
//! | trait | what it abstracts | embedded default | server stack |
//! |---|---|---|---|
//! | [`Connector`] | a storage source read in place | local folder | S3 / MinIO, Drive |
//! | [`Extractor`] | one pipeline stage | FFmpeg stages, custom | same |
//! | [`Store`] | durable metadata, job state | SQLite | Postgres + RLS |
//! | [`Queue`] | at-least-once job delivery | in-process, persisted | Redis |
//! | [`Index`] | time-coded keyword + vector search | in-process | Qdrant |
//!
//! Each trait's doc comment has a `# Contract` section, and the `conformance` feature ships
//! one suite per trait that every backend runs (in the style of `object_store`'s integration
//! suite), so backends cannot drift apart.
//!
//! Errors are typed and `#[non_exhaustive]`; backends convert their own errors into them.

pub mod connector;
pub mod error;
pub mod extractor;
pub mod fusion;
pub mod index;
pub mod media;
pub mod model;
pub mod moments;
pub mod queue;
pub mod segments;
pub mod sidecar;
pub mod store;
pub mod time_util;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use connector::{
    Change, ChangeSet, Connector, ConnectorError, ListPage, ListRequest, ObjectMeta,
};
pub use error::ErrorKind;
pub use extractor::{
    ExtractContext, ExtractError, Extractor, FrameRef, Needs, QueryEncoder, StageData,
};
pub use index::{Fusion, Index, IndexDoc, IndexError, SearchFilter, SearchHit, SearchRequest};
pub use model::{
    Asset, AssetId, AssetState, Job, JobId, JobKind, JobState, Segment, SegmentKind, Source,
    SourceId, TenantId,
};
pub use moments::Moment;
pub use queue::{Delivery, NackOutcome, Queue, QueueError, QueueMessage, RetryPolicy};
pub use sidecar::Sidecar;
pub use store::{Store, StoreError};
