//! Heimdex media pipeline: probe a media file through any seekable byte source, decode it
//! **once**, and derive shots, keyframes, thumbnails and 16 kHz audio from that single pass.
//!
//! # Reading
//!
//! Media is never downloaded to a temporary file. The caller hands over a
//! [`MediaRead`] (`Read + Seek + Send`, e.g. a connector's ranged stream) and FFmpeg reads it
//! through a custom `AVIOContext` whose read and seek callbacks (including `AVSEEK_SIZE`) call
//! into the reader. [`probe`] therefore reads only what the demuxer asks for: for the 1 MB
//! `bigbuckbunny.mp4` sample, whose `moov` atom is at the *end*, it reads about 140 KB using a
//! handful of seeks. The decode pass reads the file front to back.
//!
//! # Single-decode fan-out
//!
//! [`analyze`] runs one demux loop over the container. Video packets go to the video decoder,
//! packets of the first audio stream to the audio decoder, in the order they are interleaved in
//! the file. Every decoded video frame is fanned out to:
//!
//! 1. **shot detection** — the frame is scaled with swscale (area filter) to
//!    [`AnalyzeOptions::analysis_width`] pixels wide (96 by default) in RGB24 and converted to
//!    HSV;
//! 2. **keyframe capture** — only when the frame is a keyframe candidate (see below) it is
//!    also scaled to RGB24 with its longest side at most
//!    [`AnalyzeOptions::keyframe_max_side`].
//!
//! 3. **sampling** (when [`AnalyzeOptions::sample_frames`] is set) — a frame at least
//!    [`AnalyzeOptions::sample_interval_s`] after the last frame kept of its shot, whose
//!    downscaled pixels changed by [`AnalyzeOptions::sample_change`] since then, is kept as
//!    well ([`Analysis::samples`]), so text that appears mid-shot is seen; a static shot keeps
//!    none.
//!
//! Frames are turned upright first when the stream carries a rotation (a phone's display
//! matrix): keyframes, samples and thumbnails are as a viewer sees them, and the sidecar's
//! width, height and `rotation` say so.
//!
//! A file without a video stream (an interview in `.m4a`, `.mp3`, `.wav`, an `.mp4` holding
//! only sound) is decoded for its audio alone: no shots, no keyframes.
//!
//! Decoded audio frames are converted by swresample to 16 kHz mono `f32` as they arrive.
//! Memory therefore stays bounded by a few frames, plus the decoded audio (64 KB per second
//! of media) and one bounded-size keyframe per shot.
//!
//! # Shot detection
//!
//! A content detector in the style of PySceneDetect's `ContentDetector`: for each pair of
//! consecutive frames the score is the average of the mean absolute differences of the H, S and
//! V channels (OpenCV 8-bit convention: H in 0..180, S and V in 0..=255) of the downscaled
//! frames. A frame whose score is at least [`AnalyzeOptions::shot_threshold`] (default
//! **27.0**, PySceneDetect's default) starts a new shot, provided at least
//! [`AnalyzeOptions::min_shot_frames`] (default 15) frames have passed since the previous cut.
//! This finds hard cuts; slow fades and dissolves are usually not detected. On the `bikes.mp4`
//! sample the detected cuts are the same for any threshold from 20 to 30 (15 adds a false cut
//! in fast motion, 35 loses a real one), so 27 sits inside a stable band; the tests check the
//! cuts against FFmpeg's own `scene` score and against generated clips with known cuts. Shots cover
//! `[0, end of video)` contiguously; times are presentation times (frame timestamp × time base)
//! relative to the video stream's start time, and the last shot ends where the last frame ends.
//!
//! # Keyframes
//!
//! One keyframe per shot: the first frame at least 0.5 s after the shot's start, or the shot's
//! first frame when the shot is shorter than that (avoiding the cut frame itself, which often
//! carries encoder artefacts, while staying representative of the start). Since shots are
//! found while streaming, the first frame is captured when the shot starts and replaced once
//! the 0.5 s frame is reached — at most two RGB conversions per shot. Each keyframe is returned
//! as RGB24 (for later OCR / vision stages), as a JPEG thumbnail at most
//! [`AnalyzeOptions::thumbnail_max_width`] wide, and with cheap descriptors computed from the
//! thumbnail's pixels: `dark` / `bright`, `colorful` / `muted` / `grayscale`, and up to three
//! dominant colour names (`red`, `orange`, `yellow`, `green`, `cyan`, `blue`, `purple`, `pink`,
//! `white`, `gray`, `black`).
//!
//! # Errors
//!
//! Failures are reported as [`PipelineError`] with messages meant for end users: an empty file
//! or random bytes give [`PipelineError::NotMedia`]; a file that starts like a known container
//! but cannot be opened, or whose decodable video stops well before the stream's duration
//! ("decoded 2.1 s of 5.3 s"), gives [`PipelineError::Corrupt`]. FFmpeg's own log output is set
//! to `fatal` on first use, since everything relevant is returned as an error.
//!
//! ```no_run
//! let file = std::fs::File::open("clip.mp4")?;
//! let analysis = heimdex_pipeline::analyze(
//!     Box::new(file),
//!     &heimdex_pipeline::AnalyzeOptions::default(),
//!     &mut |p| eprintln!("{} {:.0}%", p.stage, p.percent),
//! )?;
//! println!("{} shots", analysis.shots.shots.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod analyze;
mod error;
mod ffi;
mod input;
mod keyframe;
mod shots;

#[cfg(feature = "onnx")]
pub mod ml;

use std::time::Duration;

pub use error::PipelineError;

/// Largest frame side the pipeline decodes, in pixels. A file beyond it is refused as
/// [`PipelineError::Unsupported`] before any frame is decoded: a header claiming
/// 60000×60000 would otherwise make the decoder allocate gigabytes per frame.
pub const MAX_FRAME_SIDE: u32 = 16_384;
/// Largest frame area the pipeline decodes, in pixels (8192×8192, above 8K UHD).
pub const MAX_FRAME_PIXELS: u64 = 8192 * 8192;
use heimdex_core::sidecar::{AudioSummary, Shots, Technical};

/// Any seekable byte source (a Connector's ranged stream implements this).
pub trait MediaRead: std::io::Read + std::io::Seek + Send {}
impl<T: std::io::Read + std::io::Seek + Send> MediaRead for T {}

/// Settings of [`analyze`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeOptions {
    /// Content score (0..=255 scale) at or above which a frame starts a new shot. Default 27.
    pub shot_threshold: f64,
    /// Minimum number of frames between two cuts. Default 15.
    pub min_shot_frames: u32,
    /// Width in pixels of the frames shot detection looks at. Default 96.
    pub analysis_width: u32,
    /// Maximum thumbnail width in pixels. Default 320.
    pub thumbnail_max_width: u32,
    /// JPEG quality of thumbnails (1..=100). Default 80.
    pub jpeg_quality: u8,
    /// Longest side of the RGB keyframes kept for later stages. Default 1280.
    pub keyframe_max_side: u32,
    /// Memory budget of the RGB keyframes of one video, in bytes. Default 256 MiB (about
    /// 90 keyframes at 1280x720). When a long video's keyframes would exceed it, all
    /// keyframes (kept and to come) are halved in size, as often as needed, so memory stays
    /// bounded however many shots the video has; thumbnails are unaffected.
    pub keyframe_budget_bytes: usize,
    /// Decode the first audio stream to 16 kHz mono. Default true.
    pub decode_audio: bool,
    /// Also keep frames sampled through each shot wherever the picture changed
    /// ([`Analysis::samples`]), for stages that read what appears mid-shot (on-screen text).
    /// Default false; the engine turns it on when a stage needs them.
    pub sample_frames: bool,
    /// Least time between two frames kept of one shot (keyframe or sample), in seconds.
    /// Default 0.5.
    pub sample_interval_s: f64,
    /// Fraction of the pixels of the downscaled frame that must have changed (one channel by
    /// 24 levels or more) since the last frame kept for a new sample to be kept. Default
    /// 0.002 (about 10 pixels of the 96-pixel-wide analysis frame): a static shot keeps no
    /// sample at all, a caption appearing is enough.
    pub sample_change: f64,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            shot_threshold: 27.0,
            min_shot_frames: 15,
            analysis_width: 96,
            thumbnail_max_width: 320,
            jpeg_quality: 80,
            keyframe_max_side: 1280,
            keyframe_budget_bytes: 256 << 20,
            decode_audio: true,
            sample_frames: false,
            sample_interval_s: 0.5,
            sample_change: 0.002,
        }
    }
}

impl AnalyzeOptions {
    /// The settings that change the output, as a stable string for
    /// `ExtractorInfo::params`.
    pub fn params_string(&self) -> String {
        let mut s = format!(
            "threshold={};min_shot_frames={};analysis_width={};keyframe_offset_s={};keyframe_max_side={};keyframe_budget={}",
            self.shot_threshold,
            self.min_shot_frames,
            self.analysis_width,
            analyze::KEYFRAME_OFFSET_S,
            self.keyframe_max_side,
            self.keyframe_budget_bytes
        );
        if self.sample_frames {
            s.push_str(&format!(
                ";samples={}s/{}",
                self.sample_interval_s, self.sample_change
            ));
            s.push_str(&format!(";sample_side={}", analyze::SAMPLE_MAX_SIDE));
        }
        s
    }
}

/// Progress of [`analyze`]: stage `"probe"`, then `"decode"` with a percentage of the media
/// duration decoded so far. Called at most about a hundred times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// `"probe"` or `"decode"`.
    pub stage: &'static str,
    /// 0..=100.
    pub percent: f32,
}

/// Everything one decode pass produced.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Container and stream metadata.
    pub technical: Technical,
    /// Shots; `Shot::keyframe` is `None` (filled by the caller that stores the thumbnails),
    /// `Shot::descriptors` is filled from the keyframe.
    pub shots: Shots,
    /// One keyframe per shot, in shot order.
    pub keyframes: Vec<KeyframeImage>,
    /// Frames sampled through the shots where the picture changed since the last frame kept
    /// (keyframe or sample) of the same shot, in time order; empty unless
    /// [`AnalyzeOptions::sample_frames`]. A static shot has none.
    pub samples: Vec<FrameImage>,
    /// The first audio stream at 16 kHz mono, if there is one and `decode_audio` was set.
    pub audio: Option<DecodedAudio>,
    /// Wall time of the demux/decode loop.
    pub decode_elapsed: Duration,
}

/// A shot's keyframe: pixels for later stages plus a JPEG thumbnail.
#[derive(Clone, PartialEq)]
pub struct KeyframeImage {
    /// Index of the shot this keyframe belongs to.
    pub shot_index: u32,
    /// Presentation time in seconds.
    pub time_s: f64,
    /// Frame index.
    pub frame: u64,
    /// Width of `rgb`.
    pub width: u32,
    /// Height of `rgb`.
    pub height: u32,
    /// RGB24, tightly packed, longest side at most `keyframe_max_side`.
    pub rgb: Vec<u8>,
    /// JPEG thumbnail.
    pub thumbnail_jpeg: Vec<u8>,
    /// Thumbnail width.
    pub thumb_width: u32,
    /// Thumbnail height.
    pub thumb_height: u32,
    /// Cheap pixel descriptors (`dark`, `colorful`, `green`, ...).
    pub descriptors: Vec<String>,
}

impl KeyframeImage {
    /// A borrowed view for the stages ([`heimdex_core::FrameRef`]).
    pub fn frame(&self) -> heimdex_core::FrameRef<'_> {
        heimdex_core::FrameRef {
            shot_index: self.shot_index,
            time_s: self.time_s,
            width: self.width,
            height: self.height,
            rgb: &self.rgb,
        }
    }
}

impl Analysis {
    /// Borrowed views of every keyframe, in shot order.
    pub fn frames(&self) -> Vec<heimdex_core::FrameRef<'_>> {
        self.keyframes.iter().map(KeyframeImage::frame).collect()
    }

    /// Borrowed views of every sampled frame ([`Analysis::samples`]), in time order.
    pub fn sample_frames(&self) -> Vec<heimdex_core::FrameRef<'_>> {
        self.samples.iter().map(FrameImage::frame).collect()
    }
}

impl std::fmt::Debug for KeyframeImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyframeImage")
            .field("shot_index", &self.shot_index)
            .field("time_s", &self.time_s)
            .field("frame", &self.frame)
            .field("size", &(self.width, self.height))
            .field("thumbnail_bytes", &self.thumbnail_jpeg.len())
            .field("thumb_size", &(self.thumb_width, self.thumb_height))
            .field("descriptors", &self.descriptors)
            .finish()
    }
}

/// A frame sampled mid-shot, upright, its longest side at most 960 px (and at most the
/// keyframes' size): stages that report positions scale them to the keyframe of the shot.
#[derive(Clone, PartialEq)]
pub struct FrameImage {
    /// Index of the shot it belongs to.
    pub shot_index: u32,
    /// Presentation time in seconds.
    pub time_s: f64,
    /// Frame index.
    pub frame: u64,
    /// Width of `rgb`.
    pub width: u32,
    /// Height of `rgb`.
    pub height: u32,
    /// RGB24, tightly packed.
    pub rgb: Vec<u8>,
}

impl FrameImage {
    /// A borrowed view for the stages ([`heimdex_core::FrameRef`]).
    pub fn frame(&self) -> heimdex_core::FrameRef<'_> {
        heimdex_core::FrameRef {
            shot_index: self.shot_index,
            time_s: self.time_s,
            width: self.width,
            height: self.height,
            rgb: &self.rgb,
        }
    }
}

impl std::fmt::Debug for FrameImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameImage")
            .field("shot_index", &self.shot_index)
            .field("time_s", &self.time_s)
            .field("frame", &self.frame)
            .field("size", &(self.width, self.height))
            .finish()
    }
}

/// Decoded audio, ready for speech recognition.
#[derive(Clone, PartialEq)]
pub struct DecodedAudio {
    /// Always 16000.
    pub sample_rate: u32,
    /// Mono samples in -1..=1.
    pub samples: Vec<f32>,
    /// RMS level of the whole track (dBFS, floored at -120); `None` without samples.
    pub rms_dbfs: Option<f64>,
}

impl DecodedAudio {
    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The sidecar summary of this audio.
    pub fn summary(&self) -> AudioSummary {
        AudioSummary {
            sample_rate: self.sample_rate,
            channels: 1,
            duration_s: self.duration_s(),
            rms_dbfs: self.rms_dbfs,
        }
    }
}

impl std::fmt::Debug for DecodedAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedAudio")
            .field("sample_rate", &self.sample_rate)
            .field("samples", &self.samples.len())
            .field("rms_dbfs", &self.rms_dbfs)
            .finish()
    }
}

/// Read container and stream metadata through `reader` (ranged reads only; no decoding).
pub fn probe(reader: Box<dyn MediaRead>) -> Result<Technical, PipelineError> {
    input::open(reader).map(|o| o.technical)
}

/// Probe and decode `reader` once, producing technical metadata, shots, keyframes and audio.
///
/// See the crate documentation for the method. `progress` is called with stage `"probe"`,
/// then `"decode"` with increasing percentages.
pub fn analyze(
    reader: Box<dyn MediaRead>,
    opts: &AnalyzeOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Analysis, PipelineError> {
    analyze::run(reader, opts, progress)
}
