//! The engine's error type.

use std::path::Path;

use heimdex_core::{ConnectorError, ExtractError, IndexError, QueueError, StoreError};
use heimdex_pipeline::PipelineError;

/// Errors of the [`Engine`](super::Engine).
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
    /// A source id that is not registered.
    #[error("unknown source {0}")]
    UnknownSource(String),
    /// A path that is not part of any indexed source.
    #[error("not indexed: {0} (run `heimdex index` on it first)")]
    NotIndexed(String),
    /// No person has this id or name.
    #[error("unknown person {0} (see `heimdex persons`)")]
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

    /// Whether retrying the same job cannot help (bad media, missing file).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Pipeline(p) => matches!(
                p,
                PipelineError::NotMedia { .. }
                    | PipelineError::NoVideoStream
                    | PipelineError::Corrupt { .. }
                    | PipelineError::Unsupported { .. }
            ),
            Self::Connector(ConnectorError::NotFound { .. }) => true,
            Self::Extractor {
                source: ExtractError::MissingInput { .. },
                ..
            } => true,
            _ => false,
        }
    }
}
