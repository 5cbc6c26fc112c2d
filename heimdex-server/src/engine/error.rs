//! The engine's error type and its categories.

use std::path::Path;

use heimdex_core::{ConnectorError, ErrorKind, ExtractError, IndexError, QueueError, StoreError};
use heimdex_pipeline::PipelineError;

/// Errors of the [`Engine`](super::Engine).
///
/// Messages say what is wrong in the library's terms and never repeat their source's text
/// (sources are chained: walk [`std::error::Error::source`] for the rest). What a user should
/// do about an error is for each edge to say: the CLI maps [`EngineError::kind`] and a few
/// variants to hints in one place, the HTTP API to a status code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Queue failure.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Index failure.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Connector failure.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// A source URI that cannot be parsed, or whose connector cannot be built.
    #[error(transparent)]
    Source(#[from] heimdex_connectors::SourceError),
    /// Media pipeline failure (bad input is reported here with a user-facing reason).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// An extractor failed.
    #[error("extractor {name}: {source}")]
    Extractor {
        /// Extractor name.
        name: String,
        /// Its error.
        #[source]
        source: ExtractError,
    },
    /// Sidecar / thumbnail storage failure.
    #[error("media storage: {0}")]
    Media(#[source] Box<object_store::Error>),
    /// Local file-system failure, naming the path.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A source id that is not registered (or whose place is gone).
    #[error("unknown source {0}")]
    UnknownSource(String),
    /// A path or asset that is not part of any indexed source.
    #[error("not indexed: {0}")]
    NotIndexed(String),
    /// An indexed asset whose sidecar is missing from the media store.
    #[error("no sidecar stored for asset {0}")]
    NoSidecar(String),
    /// "More like this" at a time where the asset has no embedded moment.
    #[error("{key} has no embedded moment at {at_s:.1} s")]
    NoMomentAt {
        /// Asset key.
        key: String,
        /// The time asked for.
        at_s: f64,
    },
    /// No job has this id (in this tenant).
    #[error("unknown job {0}")]
    UnknownJob(String),
    /// The asset has no thumbnail for this shot.
    #[error("asset {asset} has no thumbnail for shot {shot}")]
    NoThumbnail {
        /// Asset id.
        asset: String,
        /// Shot index.
        shot: u32,
    },
    /// No person has this id or name.
    #[error("unknown person {0}")]
    UnknownPerson(String),
    /// Stored data could not be read.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A background task panicked or was cancelled.
    #[error("internal task failure: {0}")]
    Task(String),
}

impl EngineError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn media(e: object_store::Error) -> Self {
        Self::Media(Box::new(e))
    }

    /// The category of this error, derived from the typed variants of the trait errors.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Store(e) => e.kind(),
            Self::Queue(e) => e.kind(),
            Self::Index(e) => e.kind(),
            Self::Connector(e) => e.kind(),
            Self::Pipeline(e) => e.kind(),
            Self::Source(e) => match e {
                heimdex_connectors::SourceError::Connector(c) => c.kind(),
                _ => ErrorKind::InvalidInput,
            },
            Self::Extractor { source, .. } => source.kind(),
            Self::Media(e) => match e.as_ref() {
                object_store::Error::NotFound { .. } => ErrorKind::NotFound,
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => ErrorKind::Unauthorized,
                _ => ErrorKind::Unavailable,
            },
            Self::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::Unauthorized,
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidFilename => {
                    ErrorKind::InvalidInput
                }
                _ => ErrorKind::Unavailable,
            },
            Self::UnknownSource(_)
            | Self::NotIndexed(_)
            | Self::NoSidecar(_)
            | Self::NoMomentAt { .. }
            | Self::UnknownPerson(_)
            | Self::UnknownJob(_)
            | Self::NoThumbnail { .. } => ErrorKind::NotFound,
            Self::Corrupt(_) | Self::Task(_) => ErrorKind::Internal,
        }
    }

    /// Whether retrying the same job cannot help: the media is bad or gone, or the request
    /// is wrong. Transient and internal failures are retried.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::BadMedia | ErrorKind::NotFound | ErrorKind::InvalidInput
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_typed_variants() {
        let e = EngineError::from(PipelineError::NoVideoStream);
        assert_eq!(e.kind(), ErrorKind::BadMedia);
        assert!(e.is_permanent());
        let e = EngineError::from(IndexError::UnknownSpace {
            space: "image".into(),
        });
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = EngineError::from(ConnectorError::NotFound { key: "a".into() });
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = EngineError::from(StoreError::Unavailable {
            store: "sqlite",
            source: "database is locked".into(),
        });
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(!e.is_permanent());
        let e = EngineError::io(
            Path::new("/x"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        // The message names the path once.
        assert_eq!(e.to_string().matches("/x").count(), 1, "{e}");
        let e = EngineError::Extractor {
            name: "asr".into(),
            source: ExtractError::MissingInput {
                what: "audio".into(),
            },
        };
        assert_eq!(e.kind(), ErrorKind::BadMedia);
    }
}
