//! The sidecar: one versioned, time-coded JSON document per asset.
//!
//! A sidecar is what Heimdex knows about one version of one asset. It is written by the
//! pipeline next to (never inside) the user's storage, and it is the source of truth the
//! index is built from: the index can always be rebuilt from sidecars.
//!
//! Every stage writes its own [`StageBlock`], which records the extractor's name and version
//! and the identity of the model it ran (name + SHA-256). A later run compares those with the
//! configured extractors and re-runs only the stages whose identity changed.
//!
//! The JSON Schema of this type is committed at `docs/sidecar-schema.json`; a test fails when
//! the types and the committed schema drift apart.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The schema version written by this crate.
pub const SCHEMA_VERSION: u32 = 1;

/// One asset's sidecar (schema v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// Always [`SCHEMA_VERSION`] for sidecars written by this version of Heimdex.
    pub schema_version: u32,
    /// Which asset (and which version of it) this sidecar describes.
    pub asset: SidecarAsset,
    /// When the sidecar was last written (RFC 3339, UTC).
    pub generated_at: String,
    /// Container and stream metadata from probing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technical: Option<StageBlock<Technical>>,
    /// Shot boundaries, one keyframe and thumbnail per shot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shots: Option<StageBlock<Shots>>,
    /// The audio track as decoded for speech recognition (16 kHz mono).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<StageBlock<AudioSummary>>,
    /// Speech-to-text with timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<StageBlock<Transcript>>,
    /// On-screen text found on keyframes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<StageBlock<Ocr>>,
    /// Faces found on keyframes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faces: Option<StageBlock<Faces>>,
    /// What is visible in each shot: scene and object labels, counted objects, and a short
    /// generated description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual: Option<StageBlock<Visual>>,
    /// Embedding vectors of this asset's moments, one block per embedding stage (keyed by the
    /// stage name, e.g. `embed.text`, `embed.image`), so each stage can be re-run alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub embeddings: BTreeMap<String, StageBlock<Embeddings>>,
    /// Blocks written by integrators' own extractors, keyed by extractor name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, StageBlock<CustomBlock>>,
}

impl Sidecar {
    /// An empty sidecar for `asset`, stamped now.
    pub fn new(asset: SidecarAsset) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            asset,
            generated_at: crate::time_util::now_rfc3339(),
            technical: None,
            shots: None,
            audio: None,
            transcript: None,
            ocr: None,
            faces: None,
            visual: None,
            embeddings: BTreeMap::new(),
            extensions: BTreeMap::new(),
        }
    }

    /// The media duration in seconds, if probing found one.
    pub fn duration_s(&self) -> Option<f64> {
        self.technical.as_ref().and_then(|t| t.data.duration_s)
    }

    /// The extractor identity recorded for stage `name`, if that stage has run.
    pub fn stage_info(&self, name: &str) -> Option<&ExtractorInfo> {
        match name {
            "technical" => self.technical.as_ref().map(|b| &b.extractor),
            "shots" => self.shots.as_ref().map(|b| &b.extractor),
            "audio" => self.audio.as_ref().map(|b| &b.extractor),
            "transcript" => self.transcript.as_ref().map(|b| &b.extractor),
            "ocr" => self.ocr.as_ref().map(|b| &b.extractor),
            "faces" => self.faces.as_ref().map(|b| &b.extractor),
            "visual" => self.visual.as_ref().map(|b| &b.extractor),
            other => self
                .embeddings
                .get(other)
                .or_else(|| {
                    self.embeddings
                        .values()
                        .next()
                        .filter(|_| other == "embeddings")
                })
                .map(|b| &b.extractor)
                .or_else(|| self.extensions.get(other).map(|b| &b.extractor)),
        }
    }

    /// Every stage block's extractor identity, with the block name.
    pub fn stages(&self) -> Vec<(String, &ExtractorInfo)> {
        let mut out = Vec::new();
        let typed: [(&str, Option<&ExtractorInfo>); 7] = [
            ("technical", self.technical.as_ref().map(|b| &b.extractor)),
            ("shots", self.shots.as_ref().map(|b| &b.extractor)),
            ("audio", self.audio.as_ref().map(|b| &b.extractor)),
            ("transcript", self.transcript.as_ref().map(|b| &b.extractor)),
            ("ocr", self.ocr.as_ref().map(|b| &b.extractor)),
            ("faces", self.faces.as_ref().map(|b| &b.extractor)),
            ("visual", self.visual.as_ref().map(|b| &b.extractor)),
        ];
        for (name, info) in typed {
            if let Some(info) = info {
                out.push((name.to_owned(), info));
            }
        }
        for (name, block) in &self.embeddings {
            out.push((name.clone(), &block.extractor));
        }
        for (name, block) in &self.extensions {
            out.push((name.clone(), &block.extractor));
        }
        out
    }

    /// True when some block was produced by exactly `info` (same name, version, model, params).
    pub fn has_stage(&self, info: &ExtractorInfo) -> bool {
        self.stages().iter().any(|(_, i)| *i == info)
    }

    /// Serialise as pretty JSON (the on-disk form).
    pub fn to_json_pretty(&self) -> Vec<u8> {
        // Serialising plain data structs with string keys cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// The identity of the asset a sidecar describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SidecarAsset {
    /// Heimdex's stable asset id.
    pub id: String,
    /// Tenant that owns the asset.
    pub tenant: String,
    /// Source (connector instance) the asset lives in.
    pub source: String,
    /// Object key of the asset inside its source (a relative path for local folders).
    pub key: String,
    /// Version of the object (etag, generation, or size+mtime for local files).
    pub version: String,
    /// Size in bytes.
    pub size: u64,
}

/// Which extractor produced a stage block, and with which model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractorInfo {
    /// Stable extractor name, e.g. `ffprobe`, `shots.content`.
    pub name: String,
    /// Extractor version; bumping it re-runs the stage.
    pub version: String,
    /// The model the extractor ran, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelIdentity>,
    /// Settings that change the output (thresholds, sizes), as a stable string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
}

/// A model referenced by identity: name plus content hash of its weights.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelIdentity {
    /// Human name, e.g. `whisper-tiny.en`.
    pub name: String,
    /// Lower-case hex SHA-256 of the model file(s).
    pub sha256: String,
}

/// One stage's output plus the identity of what produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageBlock<T> {
    /// Which extractor (and model) produced `data`.
    pub extractor: ExtractorInfo,
    /// When the stage completed (RFC 3339, UTC).
    pub completed_at: String,
    /// Wall time the stage took, in milliseconds.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// The stage's output.
    pub data: T,
}

impl<T> StageBlock<T> {
    /// Wrap `data` produced by `extractor`, stamped now.
    pub fn new(extractor: ExtractorInfo, elapsed_ms: u64, data: T) -> Self {
        Self {
            extractor,
            completed_at: crate::time_util::now_rfc3339(),
            elapsed_ms,
            data,
        }
    }
}

/// Container-level technical metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Technical {
    /// Container format name(s) as FFmpeg reports them, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    /// Long container name, e.g. `QuickTime / MOV`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_long: Option<String>,
    /// Duration in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Overall bit rate in bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// Creation time from container metadata, as written there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    /// Container-level metadata tags (title, encoder, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// All streams in container order.
    pub streams: Vec<StreamInfo>,
}

impl Technical {
    /// The first video stream, if any.
    pub fn video(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Video)
    }
    /// The first audio stream, if any.
    pub fn audio(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Audio)
    }
}

/// Kind of an elementary stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Subtitles.
    Subtitle,
    /// Data (timecode, metadata tracks).
    Data,
    /// Anything else (attachments, unknown).
    Other,
}

/// One elementary stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamInfo {
    /// Stream index in the container.
    pub index: u32,
    /// Stream kind.
    pub kind: StreamKind,
    /// Codec name, e.g. `h264`, `aac`.
    pub codec: String,
    /// Codec profile, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Stream duration in seconds, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Bit rate in bits per second, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// Video width in pixels, as displayed (after [`rotation`](Self::rotation)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Video height in pixels, as displayed (after [`rotation`](Self::rotation)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Clockwise rotation in degrees (90, 180 or 270) a player applies to show the video
    /// upright, from the stream's display matrix (phone footage); absent when none.
    /// Keyframes and thumbnails are already upright.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<u32>,
    /// Average frame rate (frames per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// Number of frames, if the container says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    /// Pixel format, e.g. `yuv420p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pix_fmt: Option<String>,
    /// Audio sample rate in Hz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Audio channel count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    /// Stream language tag, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The shot list of an asset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shots {
    /// Detector name and threshold, e.g. `content-hsv`.
    pub method: String,
    /// The threshold the detector used.
    pub threshold: f64,
    /// Frames analysed.
    pub frames_analyzed: u64,
    /// Shots in time order; together they cover the whole video.
    pub shots: Vec<Shot>,
}

/// One shot: a run of frames between two cuts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shot {
    /// 0-based shot index.
    pub index: u32,
    /// Start time in seconds (presentation time of the first frame).
    pub start_s: f64,
    /// End time in seconds (start of the next shot, or the end of the video).
    pub end_s: f64,
    /// Index of the first frame of the shot (0-based, decode order of presented frames).
    pub start_frame: u64,
    /// Index one past the last frame of the shot.
    pub end_frame: u64,
    /// The shot's keyframe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyframe: Option<Keyframe>,
    /// Cheap visual descriptors of the keyframe (brightness, dominant colours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptors: Vec<String>,
}

/// A keyframe and where its thumbnail was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Keyframe {
    /// Presentation time of the keyframe in seconds.
    pub time_s: f64,
    /// Frame index of the keyframe.
    pub frame: u64,
    /// Location of the thumbnail image (object-store path relative to the media root).
    pub thumbnail: String,
    /// Thumbnail width in pixels.
    pub width: u32,
    /// Thumbnail height in pixels.
    pub height: u32,
}

/// What was decoded from the audio track.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioSummary {
    /// Sample rate of the decoded audio (16000).
    pub sample_rate: u32,
    /// Channels after downmix (1).
    pub channels: u32,
    /// Decoded duration in seconds.
    pub duration_s: f64,
    /// RMS level of the whole track in dBFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rms_dbfs: Option<f64>,
}

/// A time-coded transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    /// Detected or forced language (ISO 639-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Segments in time order.
    pub segments: Vec<TranscriptSegment>,
}

/// One transcript segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptSegment {
    /// Start time in seconds.
    pub start_s: f64,
    /// End time in seconds.
    pub end_s: f64,
    /// Recognised text.
    pub text: String,
    /// Word timings, where the recogniser gives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// One recognised word with its timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Word {
    /// Start time in seconds.
    pub start_s: f64,
    /// End time in seconds.
    pub end_s: f64,
    /// The word.
    pub text: String,
    /// Recogniser confidence in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

/// An axis-aligned box in pixels of the analysed frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoundingBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// On-screen text found by OCR.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ocr {
    /// Text lines in time order.
    pub lines: Vec<OcrLine>,
}

/// One line of on-screen text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OcrLine {
    /// First time the text was seen, in seconds.
    pub start_s: f64,
    /// Last time the text was seen, in seconds.
    pub end_s: f64,
    /// The text.
    pub text: String,
    /// Where on the frame.
    pub bbox: BoundingBox,
    /// Recogniser confidence in [0, 1].
    pub confidence: f32,
}

/// What is visible, shot by shot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Visual {
    /// One entry per shot looked at, in shot order.
    pub shots: Vec<ShotVisual>,
}

/// What is visible in one shot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShotVisual {
    /// The shot's index in the shot list.
    pub shot_index: u32,
    /// Start of the shot, seconds.
    pub start_s: f64,
    /// End of the shot, seconds.
    pub end_s: f64,
    /// Scene and object labels of an image classifier, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<VisualTag>,
    /// Objects a detector found, with how many and where, most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<VisualObject>,
    /// A short generated description of the shot ("seashore, lakeside; bright, blue"), what
    /// the text embedding of the shot's look is computed from.
    pub description: String,
}

/// A label of what a shot shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisualTag {
    /// The label (the class's first name, e.g. `seashore`).
    pub label: String,
    /// Other names of the same class (`coast`, `seacoast`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
    /// Plainer, broader words people search by (`alp` → `mountain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broader: Vec<String>,
    /// Model score in 0..=1 (the best over the frames looked at).
    pub score: f32,
    /// The model that gave it.
    pub model: String,
}

/// Objects of one kind in a shot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisualObject {
    /// What (`person`, `car`, `dog`).
    pub label: String,
    /// How many are visible at once (the most on one frame looked at).
    pub count: u32,
    /// Best detection score in 0..=1.
    pub score: f32,
    /// Their boxes on the keyframe, in keyframe pixels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<BoundingBox>,
    /// The model that found them.
    pub model: String,
}

/// Faces found on keyframes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Faces {
    /// Detections in time order.
    pub detections: Vec<FaceDetection>,
}

/// One detected face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaceDetection {
    /// Time of the frame, in seconds.
    pub time_s: f64,
    /// Where on the frame.
    pub bbox: BoundingBox,
    /// Detector score in [0, 1].
    pub score: f32,
    /// Person cluster id: archive-wide (`person-N`) once the engine has clustered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Face descriptor (128-d dlib ResNet: Euclidean distance < 0.6 means the same person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// Embedding vectors of an asset's moments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Embeddings {
    /// Vectors, each for a time range and a named space (e.g. `text`, `image`).
    pub vectors: Vec<EmbeddingVector>,
}

/// One embedding vector for one time range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingVector {
    /// Named vector space, e.g. `text` or `image`.
    pub space: String,
    /// Id of the segment this vector belongs to (see `heimdex_core::segments`), when it
    /// embeds one segment's text or keyframe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Start time in seconds.
    pub start_s: f64,
    /// End time in seconds.
    pub end_s: f64,
    /// The vector.
    pub vector: Vec<f32>,
}

/// The output of an integrator's own extractor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomBlock {
    /// Free-form data of the extractor.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Time-coded text the extractor wants searchable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<TextSpan>,
}

/// A time-coded piece of searchable text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextSpan {
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// The text.
    pub text: String,
    /// Tags for filtering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The JSON Schema of [`Sidecar`], as committed at `docs/sidecar-schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Sidecar)).unwrap_or(serde_json::Value::Null)
}
