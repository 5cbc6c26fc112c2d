//! The public error type.

/// Everything that can go wrong while probing or analysing a media file.
///
/// The `Display` form of every variant is written for an end user: it says what is wrong with
/// the *file* ("not a media file: ...", "truncated or corrupt: ...") rather than which FFmpeg
/// call failed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum PipelineError {
    /// The bytes are not a recognisable audio/video file (empty file, random data, a document).
    #[error("not a media file: {reason}")]
    NotMedia {
        /// What was found instead.
        reason: String,
    },
    /// The file is a media container but holds no video stream, and no audio stream to
    /// analyse instead (audio-only files are analysed for their audio).
    #[error("no video stream: the file contains no video track to analyse")]
    NoVideoStream,
    /// The file looks like media but is truncated or damaged.
    #[error("truncated or corrupt: {reason}")]
    Corrupt {
        /// What is wrong, e.g. `decoded 2.1 s of 5.3 s`.
        reason: String,
    },
    /// The byte source failed (network, permissions, ...).
    #[error("I/O error while reading the media: {0}")]
    Io(#[from] std::io::Error),
    /// The media uses a codec or pixel/sample format this FFmpeg build cannot handle.
    #[error("unsupported media: {reason}")]
    Unsupported {
        /// Which codec or format.
        reason: String,
    },
    /// An unexpected FFmpeg failure.
    #[error("FFmpeg failed while {context}: {message}")]
    Ffmpeg {
        /// What the pipeline was doing.
        context: String,
        /// FFmpeg's error text.
        message: String,
    },
    /// Encoding a thumbnail failed.
    #[error("could not encode a thumbnail: {reason}")]
    Thumbnail {
        /// The encoder's message.
        reason: String,
    },
}

impl PipelineError {
    /// The category of this error: what is wrong with the file is [`heimdex_core::ErrorKind::BadMedia`]
    /// (permanent, the job fails at once); reading it may be transient.
    pub fn kind(&self) -> heimdex_core::ErrorKind {
        use heimdex_core::ErrorKind;
        match self {
            Self::NotMedia { .. }
            | Self::NoVideoStream
            | Self::Corrupt { .. }
            | Self::Unsupported { .. } => ErrorKind::BadMedia,
            Self::Io(_) => ErrorKind::Unavailable,
            // An unexpected FFmpeg failure may be the machine's, not the file's: retried.
            Self::Ffmpeg { .. } | Self::Thumbnail { .. } => ErrorKind::Internal,
        }
    }

    /// Wrap an FFmpeg error with what the pipeline was doing.
    pub(crate) fn ffmpeg(context: &str, err: ffmpeg_next::Error) -> Self {
        match err {
            ffmpeg_next::Error::DecoderNotFound => Self::Unsupported {
                reason: format!("no decoder available ({context})"),
            },
            other => Self::Ffmpeg {
                context: context.to_owned(),
                message: other.to_string(),
            },
        }
    }
}
