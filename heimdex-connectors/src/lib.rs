//! # heimdex-connectors
//!
//! [`Connector`](heimdex_core::Connector) implementations, one module and one Cargo feature per
//! backend; the connector factory that turns a source URI into a connector; and
//! [`RangeReader`]: a blocking `Read + Seek` view of any object through the connector's ranged
//! reads, which is how the pipeline (FFmpeg's AVIO callbacks) reads media in place without
//! copying the file.
//!
//! | feature | backend |
//! |---|---|
//! | `local` (default) | [`local::LocalConnector`]: a folder (or one file) on a local disk |
//! | `gdrive` | [`gdrive::GDriveConnector`]: a Google Drive folder, shared drive or My Drive (Drive v3 API; changes feed) |
//! | `s3` | [`object::s3`]: Amazon S3 and S3-compatible stores (MinIO), `s3://bucket/prefix` |
//! | `gcs` | [`object::gcs`]: Google Cloud Storage, `gs://bucket/prefix` (JSON API) |
//! | `azure` | [`object::azure`]: Azure Blob Storage, `az://container/prefix` |
//! | `http` | [`object::http`]: a web server, `https://host/folder/` (WebDAV) or one file |
//!
//! The S3, Azure and HTTP backends share [`object::ObjectStoreConnector`] (any `object_store`
//! store plus a prefix); their URIs, options and environment variables are in [`object`]'s
//! docs. GCS has its own connector on the JSON API, [`object::gcs::GcsConnector`], sharing
//! credentials and retries with Drive ([`google`]).
//!
//! ## Sources are URIs
//!
//! A source is named by one string, the same in the CLI, the library, the HTTP API and the
//! Python bindings: `file:///path` or a plain path, `s3://bucket/prefix`, `gs://bucket/prefix`,
//! `az://container/prefix`, `https://host/path/`, `gdrive://folder/<id>`. Building a
//! connector from it takes two steps, in the shape of object_store's `parse_url_opts`:
//!
//! 1. [`SourceSpec::parse`] reads the string: the scheme gives the source's *kind*, and the
//!    URI is normalised into the canonical form that identifies the source (and is stored
//!    with it). Options (credentials, endpoints) ride along in [`SourceOptions`]; they are
//!    not part of the identity and never stored. A stored source comes back with
//!    [`SourceSpec::stored`]`(kind, uri)` without touching disk or network.
//! 2. [`ConnectorRegistry::build`] looks the kind up and calls its factory.
//!    [`ConnectorRegistry::default`] knows the backends compiled in; applications
//!    [`register`](ConnectorRegistry::register) more, so a new kind of storage plugs in
//!    without changing the engine or the parser (an unknown scheme parses to a kind named
//!    after it). A kind nobody registered is [`SourceError::UnsupportedScheme`], which names
//!    the scheme and the supported ones.
//!
//! ```
//! use heimdex_connectors::{ConnectorRegistry, SourceSpec, source::kind};
//! # fn main() -> Result<(), heimdex_connectors::SourceError> {
//! let registry = ConnectorRegistry::default();
//! let folder = std::env::temp_dir();
//! let (spec, connector) = registry.open(&format!("file://{}", folder.display()))?;
//! assert_eq!(spec.kind(), kind::LOCAL);
//! // What a store keeps: kind + normalised URI. Rebuilding after a restart:
//! let again = registry.build(&SourceSpec::stored(spec.kind(), spec.uri())?)?;
//! # let _ = (connector, again); Ok(()) }
//! ```
//!
//! The local kinds are `local` (a folder) and `local-file` (one file); their stored URI is
//! the plain absolute path, as sources stored by earlier versions have it.

#[cfg(feature = "gdrive")]
pub mod gdrive;
#[cfg(any(feature = "gdrive", feature = "gcs"))]
pub mod google;
#[cfg(feature = "local")]
pub mod local;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure", feature = "http"))]
pub mod object;
pub mod range_reader;
pub mod registry;
pub mod source;

#[cfg(feature = "gdrive")]
pub use gdrive::GDriveConnector;
#[cfg(feature = "local")]
pub use local::LocalConnector;
pub use range_reader::{RangeReader, ReadStats};
pub use registry::{ConnectorFactory, ConnectorRegistry};
pub use source::{SourceError, SourceOptions, SourceSpec};
