//! On-screen text (OCR) with PaddleOCR's PP-OCRv4 detector and recogniser on ONNX Runtime.
//!
//! [`PaddleOcr`] is an [`Extractor`] that reads the text burned into the picture (titles,
//! captions, lower thirds, signs, slides) on each shot's keyframe and on the frames the
//! decoder sampled mid-shot wherever the picture changed ([`Needs::samples`]), and writes
//! time-coded [`OcrLine`]s to the sidecar's `ocr` block.
//!
//! # Method
//!
//! The pipeline is PaddleOCR's (as packaged by RapidOCR), re-implemented in Rust without
//! OpenCV:
//!
//! 1. **Detection** (DB, "Differentiable Binarization"). The RGB keyframe is resized
//!    (bilinear) so that its longest side is at most [`OcrConfig::det_resize`] (default
//!    [`DetResize::MaxSide`]`(1280)`: the pipeline's keyframes, at most 1280 px, keep their
//!    resolution), each side rounded to a multiple of 32, converted to BGR and normalised to
//!    `(v / 255 - 0.5) / 0.5`. The network returns a per-pixel text probability map.
//!    PaddleOCR's own default, `MaxSide(960)`, is about 1.8× faster on 720p but loses text
//!    under about 20 px high (an 18 px caption was split and partly lost in our checks).
//! 2. **Boxes.** The map is thresholded at [`OcrConfig::det_thresh`] (0.3) and dilated with a
//!    2×2 kernel; every 8-connected component becomes a candidate (at most 1000) whose
//!    minimum-area (rotated) rectangle is computed from its convex hull. Candidates with a
//!    short side under 3 px or a mean probability inside the rectangle under
//!    [`OcrConfig::box_thresh`] (0.5) are dropped; the rest are *unclipped* (grown on every
//!    side by `area × unclip_ratio / perimeter`, [`OcrConfig::unclip_ratio`] 1.6, which undoes
//!    the shrinking DB is trained with), scaled back to keyframe pixels and sorted in reading
//!    order (top to bottom, left to right).
//! 3. **Recognition** (CTC, PP-OCRv4 rec). Each box is cut out upright (rotated boxes are
//!    straightened; boxes ≥ 1.5× taller than wide are turned 90°), resized to height 48
//!    keeping its aspect ratio and zero-padded to the widest crop of its batch (at least 320
//!    px). Crops of *all* keyframes are sorted by aspect ratio and run in batches of
//!    [`OcrConfig::rec_batch_size`] (6). The output (per time step, a probability for each of
//!    the dictionary's classes) is decoded greedily: arg-max per step, repeats collapsed,
//!    blanks removed. A line's confidence is the mean of the kept steps' maximum
//!    probabilities; lines under [`OcrConfig::min_confidence`] (0.5, RapidOCR's `text_score`)
//!    or empty after trimming are dropped.
//! 4. **Time coding.** The frames looked at are the keyframe of each shot plus the samples
//!    the decoder kept where the picture changed (at most one per 0.5 s, none in a static
//!    shot: see `AnalyzeOptions::sample_frames` in the crate root). A frame stands for the
//!    time from itself to the next frame looked at in its shot (the shot's first frame looked
//!    at from the shot's start, the last one to the shot's end). A line is tracked across
//!    consecutive frames: the same text (whitespace-normalised), or nearly the same text
//!    (edit similarity ≥ 0.75, a misread letter) in nearly the same place (box IoU ≥ 0.5);
//!    it becomes one line from the first to the last time it was seen, with the text and box
//!    of its most confident reading. So a caption burned in from 5 s to 7 s of a 9 s shot is
//!    a line `5.0..7.0`, since the frames where it appears and goes are sampled (the picture
//!    changed). `bbox` is the axis-aligned box of the detected quadrilateral in frame pixels.
//! 5. **Cost.** A keyframe is read in full. A mid-shot sample is only *glanced* at: the
//!    detector at 480 px on the longest side (a seventh of the pixels of a 1280 px frame).
//!    A box overlapping (IoU ≥ 0.5) a line of the frame before it in the shot repeats that
//!    line (a caption or logo still on screen: no recognition); a new box is cut out of the
//!    full-size sample and recognised with the others in one batched pass; a line whose box
//!    is gone ends there. So a sample without text costs one small detection, and text under
//!    about 30 px high (at 1280 px) that appears mid-shot can be missed (keyframes see it).
//!    Samples are captured at most 960 px wide; their boxes are scaled to the pixels of
//!    their shot's keyframe, like every other box.
//!
//! The angle classifier of PaddleOCR (for upside-down text) is not used: text in video is
//! upright.
//!
//! # Models
//!
//! `make models` fetches `ch_PP-OCRv4_det_infer.onnx` (4.7 MB) and
//! `ch_PP-OCRv4_rec_infer.onnx` (10.9 MB) from the PyPI wheel `rapidocr-onnxruntime==1.4.4`
//! into `$HEIMDEX_MODELS/ocr/` and writes the recogniser's dictionary (6623 Chinese and
//! Latin characters, stored in the ONNX metadata) to `ocr/ppocr_keys_v1.txt`; all three are
//! verified against `models/models.lock`. PP-OCRv4 is Apache-2.0.
//!
//! # Bring your own model
//!
//! Any PaddleOCR DB detector and CTC recogniser exported to ONNX (e.g. with `paddle2onnx`)
//! can be used, such as the English-only or other language recognisers: set
//! [`OcrConfig::det_path`] and [`OcrConfig::rec_path`], and [`OcrConfig::dict_path`] to the
//! model's character dictionary (one character per line, as in PaddleOCR's `ppocr/utils/`;
//! a space class is appended as with PaddleOCR's `use_space_char`). With `dict_path: None`
//! the dictionary is read from the recogniser's `character` metadata entry (as RapidOCR
//! models carry it). The number of classes the recogniser outputs must equal the dictionary
//! size + 2 (blank and space), which is checked when the model is loaded. The recogniser must
//! take `[N, 3, 48, W]` inputs; the detector `[1, 3, H, W]` with H, W multiples of 32. The
//! stage's identity records [`OcrConfig::model_name`] and the SHA-256 of both model files,
//! so changing models re-runs OCR on re-index.
//!
//! ```no_run
//! use heimdex_pipeline::ml::ocr::{OcrConfig, PaddleOcr};
//!
//! let mut config = OcrConfig::default(); // models from `make models`
//! config.min_confidence = 0.7;
//! let ocr = PaddleOcr::new(config)?;
//! let (w, h) = (64, 32);
//! let lines = ocr.read_text(w, h, &vec![255u8; (w * h * 3) as usize])?;
//! assert!(lines.is_empty());
//! # Ok::<(), heimdex_pipeline::ml::MlError>(())
//! ```
//!
//! # Cost and limitations
//!
//! `cargo bench -p heimdex-pipeline --features ocr --bench ocr` (release, 2 intra-op
//! threads, 2-core machine shared with other builds, so the spread is wide): a 1280×720
//! keyframe with two lines takes 0.16-0.5 s, one without text 0.05-0.4 s (detection only),
//! 640×360 with one line 0.06-0.23 s. For reference, RapidOCR (Python, same models and
//! runtime) took 0.16-0.27 s per 1280×720 frame on the same machine.
//! Detection dominates; recognition adds roughly 10-30 ms per batch of 6 lines.
//!
//! - The default recogniser is PP-OCRv4's Chinese + English model: it reads Latin text well
//!   but often emits no space between upper-case words ("HEIMDEXDEMO"; RapidOCR with the
//!   same model does the same). The decoder puts the space back where the blank run between
//!   two letters is much longer than the line's usual letter spacing (see `rec::ctc_greedy`:
//!   "HEIMDEX DEMO"); tightly set words can still run together.
//! - Text is read where the picture changed: a caption fading in over many frames is first
//!   seen when the change since the last frame looked at crosses the threshold, so its start
//!   can be late by up to the sampling interval (0.5 s). Footage in constant motion samples
//!   every 0.5 s, which bounds the cost at two detections per second of video.
//! - Upside-down text is not read (no angle classifier); vertical text is read by turning
//!   tall boxes 90°.
//! - Patterned backgrounds occasionally give a short low-confidence false line (a single
//!   character near 0.55); raise [`OcrConfig::min_confidence`] to trade recall for precision.

mod det;
mod image;
mod rec;

use std::path::PathBuf;
use std::sync::Mutex;

use heimdex_core::FrameRef;
use heimdex_core::extractor::{ExtractContext, ExtractError, Extractor, Needs, StageData};
use heimdex_core::sidecar::{BoundingBox, ExtractorInfo, Ocr, OcrLine, Shot};
use ort::session::Session;
use ort::value::Tensor;

use self::image::{RgbBuf, RgbView};
use super::MlError;
use super::models::{default_model, identity, require, sha256_file};
use super::runtime::session;

/// A text box: top-left, top-right, bottom-right, bottom-left corners `[x, y]` in pixels.
pub type Quad = [[f32; 2]; 4];

pub(crate) fn image_dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// How the detector's input is sized (each side is then rounded to a multiple of 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetResize {
    /// Scale down so that the longest side is at most this (never up). Heimdex's default is
    /// 1280 (keyframes keep their resolution); PaddleOCR's is 960.
    MaxSide(u32),
    /// Scale (up or down) so that the shortest side is at least this. RapidOCR's default
    /// (736): slower on 720p, finds smaller text.
    MinSide(u32),
}

impl std::fmt::Display for DetResize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MaxSide(n) => write!(f, "max{n}"),
            Self::MinSide(n) => write!(f, "min{n}"),
        }
    }
}

/// Settings of [`PaddleOcr`]. Defaults use the models fetched by `make models`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OcrConfig {
    /// DB text detector (ONNX). Default `$HEIMDEX_MODELS/ocr/ch_PP-OCRv4_det_infer.onnx`.
    pub det_path: PathBuf,
    /// CTC text recogniser (ONNX). Default `$HEIMDEX_MODELS/ocr/ch_PP-OCRv4_rec_infer.onnx`.
    pub rec_path: PathBuf,
    /// Character dictionary, one per line. Default `$HEIMDEX_MODELS/ocr/ppocr_keys_v1.txt`;
    /// `None` reads it from the recogniser's `character` metadata.
    pub dict_path: Option<PathBuf>,
    /// Name recorded in the stage's model identity. Default `PP-OCRv4-det+rec`.
    pub model_name: String,
    /// Intra-op threads per model. Default: available cores, at most 4.
    pub threads: usize,
    /// Lines with a lower recogniser confidence are dropped. Default 0.5.
    pub min_confidence: f32,
    /// Detector input size. Default [`DetResize::MaxSide`]`(1280)`.
    pub det_resize: DetResize,
    /// Probability-map threshold. Default 0.3.
    pub det_thresh: f32,
    /// Minimum mean probability inside a box. Default 0.5.
    pub box_thresh: f32,
    /// Box expansion ratio. Default 1.6.
    pub unclip_ratio: f32,
    /// Crops per recogniser run. Default 6.
    pub rec_batch_size: usize,
    /// At most this many boxes are read per keyframe (in reading order). Default 200.
    pub max_boxes_per_frame: usize,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self::with_models(
            default_model("ocr/ch_PP-OCRv4_det_infer.onnx"),
            default_model("ocr/ch_PP-OCRv4_rec_infer.onnx"),
            Some(default_model("ocr/ppocr_keys_v1.txt")),
        )
    }
}

impl OcrConfig {
    /// Default settings with the given detector, recogniser and dictionary (bring your own
    /// model; see the module docs).
    pub fn with_models(det_path: PathBuf, rec_path: PathBuf, dict_path: Option<PathBuf>) -> Self {
        Self {
            det_path,
            rec_path,
            dict_path,
            model_name: "PP-OCRv4-det+rec".into(),
            threads: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
                .min(4),
            min_confidence: 0.5,
            det_resize: DetResize::MaxSide(1280),
            det_thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            rec_batch_size: 6,
            max_boxes_per_frame: 200,
        }
    }

    fn db_params(&self) -> det::DbParams {
        det::DbParams {
            thresh: self.det_thresh,
            box_thresh: self.box_thresh,
            unclip_ratio: self.unclip_ratio,
            max_candidates: 1000,
        }
    }
}

/// One line of text read from an image.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    /// The text (trimmed).
    pub text: String,
    /// Recogniser confidence in 0..=1.
    pub confidence: f32,
    /// Axis-aligned box in image pixels.
    pub bbox: BoundingBox,
    /// The detected (possibly rotated) box.
    pub quad: Quad,
}

/// PP-OCRv4 text detection + recognition as a pipeline stage (needs keyframes).
pub struct PaddleOcr {
    config: OcrConfig,
    det: Mutex<Session>,
    rec: Mutex<Session>,
    classes: Vec<String>,
    info: ExtractorInfo,
}

impl std::fmt::Debug for PaddleOcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaddleOcr")
            .field("config", &self.config)
            .field("classes", &self.classes.len())
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl PaddleOcr {
    /// Stage name in the sidecar.
    pub const NAME: &'static str = "ocr";

    /// Load both models and the dictionary, and compute the model identity.
    pub fn new(config: OcrConfig) -> Result<Self, MlError> {
        let info = Self::describe(&config)?;
        let det = session(&config.det_path, config.threads)?;
        let rec = session(&config.rec_path, config.threads)?;
        let rec_name = config.rec_path.display().to_string();

        let dictionary = match &config.dict_path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| MlError::Io {
                path: path.display().to_string(),
                source,
            })?,
            None => {
                let meta = rec.metadata().map_err(|e| MlError::model(&rec_name, e))?;
                meta.custom("character").ok_or_else(|| {
                    MlError::model(
                        &rec_name,
                        "no `character` metadata; set OcrConfig::dict_path to the model's dictionary",
                    )
                })?
            }
        };
        let classes = rec::class_table(&dictionary);
        if let Some(&n) = rec
            .outputs()
            .first()
            .and_then(|o| o.dtype().tensor_shape())
            .and_then(|s| s.last())
            && n > 0
            && n as usize != classes.len()
        {
            return Err(MlError::model(
                &rec_name,
                format!(
                    "the recogniser has {n} classes but the dictionary gives {} (blank + {} characters + space)",
                    classes.len(),
                    classes.len() - 2
                ),
            ));
        }
        Ok(Self {
            config,
            det: Mutex::new(det),
            rec: Mutex::new(rec),
            classes,
            info,
        })
    }

    /// The identity [`new`](Self::new) would give the stage ([`Extractor::info`]), without
    /// loading the models: checks the files exist and hashes them ([`sha256_file`] caches
    /// the hashes).
    pub fn describe(config: &OcrConfig) -> Result<ExtractorInfo, MlError> {
        require(&config.det_path, "OcrConfig::det_path")?;
        require(&config.rec_path, "OcrConfig::rec_path")?;
        let dict_id = match &config.dict_path {
            Some(path) => {
                require(path, "OcrConfig::dict_path")?;
                sha256_file(path)?[..16].to_owned()
            }
            None => "model-metadata".to_owned(),
        };
        let model = identity(&config.model_name, &[&config.det_path, &config.rec_path])?;
        let params = format!(
            "det_resize={};glance={GLANCE_SIDE};det_thresh={};box_thresh={};unclip_ratio={};min_confidence={};rec_batch={};max_boxes={};dict={}",
            config.det_resize,
            config.det_thresh,
            config.box_thresh,
            config.unclip_ratio,
            config.min_confidence,
            config.rec_batch_size.max(1),
            config.max_boxes_per_frame,
            dict_id
        );
        Ok(ExtractorInfo {
            name: Self::NAME.into(),
            version: "2".into(),
            model: Some(model),
            params: Some(params),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &OcrConfig {
        &self.config
    }

    /// Read the text of one packed RGB24 image (`width * height * 3` bytes): lines in reading
    /// order with at least [`OcrConfig::min_confidence`].
    pub fn read_text(&self, width: u32, height: u32, rgb: &[u8]) -> Result<Vec<TextLine>, MlError> {
        let img = checked_view(width, height, rgb).map_err(|e| MlError::model("ocr input", e))?;
        let (boxes, crops): (Vec<Quad>, Vec<RgbBuf>) = self
            .detect(img)?
            .into_iter()
            .filter_map(|q| image::crop_quad(img, &q).map(|c| (q, c)))
            .unzip();
        let views: Vec<RgbView<'_>> = crops.iter().map(RgbBuf::view).collect();
        let texts = self.recognize(&views, &mut |_| {})?;
        Ok(boxes
            .iter()
            .zip(texts)
            .filter_map(|(q, (text, conf))| self.accept(q, text, conf))
            .collect())
    }

    fn accept(&self, quad: &Quad, text: String, confidence: f32) -> Option<TextLine> {
        let text = text.trim().to_owned();
        if text.is_empty() || confidence < self.config.min_confidence {
            return None;
        }
        Some(TextLine {
            text,
            confidence,
            bbox: bbox_of(quad),
            quad: *quad,
        })
    }

    /// Text boxes of one image, in reading order.
    fn detect(&self, img: RgbView<'_>) -> Result<Vec<Quad>, MlError> {
        self.detect_sized(img, self.config.det_resize)
    }

    /// Text boxes of one image with the detector input sized by `resize`.
    fn detect_sized(&self, img: RgbView<'_>, resize: DetResize) -> Result<Vec<Quad>, MlError> {
        let name = || self.config.det_path.display().to_string();
        let (dw, dh) = det::input_size(img.w, img.h, resize);
        let mut input = vec![0.0f32; 3 * dw * dh];
        image::resize_into_bgr_planes(img, dw, dh, &mut input, dw);
        let tensor = Tensor::from_array(([1usize, 3, dh, dw], input))
            .map_err(|e| MlError::model(name(), e))?;
        let mut det = self
            .det
            .lock()
            .map_err(|_| MlError::model(name(), "session lock poisoned"))?;
        let outputs = det
            .run(ort::inputs![tensor])
            .map_err(|e| MlError::model(name(), e))?;
        let (shape, prob) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| MlError::model(name(), e))?;
        let [.., ph, pw] = shape[..] else {
            return Err(MlError::model(
                name(),
                format!("unexpected output shape {shape:?}"),
            ));
        };
        let mut boxes = det::boxes_from_prob(
            prob,
            pw as usize,
            ph as usize,
            img.w,
            img.h,
            &self.config.db_params(),
        );
        boxes.truncate(self.config.max_boxes_per_frame);
        Ok(boxes)
    }

    /// Recognise crops in batches of similar aspect ratio; `(text, confidence)` per crop.
    fn recognize(
        &self,
        crops: &[RgbView<'_>],
        done: &mut dyn FnMut(f32),
    ) -> Result<Vec<(String, f32)>, MlError> {
        let name = || self.config.rec_path.display().to_string();
        let ratio = |c: &RgbView<'_>| c.w as f64 / c.h.max(1) as f64;
        let mut order: Vec<usize> = (0..crops.len()).collect();
        order.sort_by(|&a, &b| ratio(&crops[a]).total_cmp(&ratio(&crops[b])));
        let mut out = vec![(String::new(), 0.0f32); crops.len()];
        let mut finished = 0usize;
        for chunk in order.chunks(self.config.rec_batch_size.max(1)) {
            let views: Vec<RgbView<'_>> = chunk.iter().map(|&i| crops[i]).collect();
            let batch = rec::prepare_batch(&views);
            let tensor = Tensor::from_array(([batch.n, 3, rec::REC_H, batch.width], batch.data))
                .map_err(|e| MlError::model(name(), e))?;
            let mut rec = self
                .rec
                .lock()
                .map_err(|_| MlError::model(name(), "session lock poisoned"))?;
            let outputs = rec
                .run(ort::inputs![tensor])
                .map_err(|e| MlError::model(name(), e))?;
            let (shape, probs) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| MlError::model(name(), e))?;
            let [n, t, c] = shape[..] else {
                return Err(MlError::model(
                    name(),
                    format!("unexpected output shape {shape:?}"),
                ));
            };
            let (n, t, c) = (n as usize, t as usize, c as usize);
            if n != chunk.len() || c != self.classes.len() || probs.len() < n * t * c {
                return Err(MlError::model(
                    name(),
                    format!(
                        "output shape {shape:?} does not fit {} crops and {} classes",
                        chunk.len(),
                        self.classes.len()
                    ),
                ));
            }
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = rec::ctc_greedy(&probs[k * t * c..(k + 1) * t * c], t, c, &self.classes);
            }
            finished += chunk.len();
            done(finished as f32 / crops.len().max(1) as f32);
        }
        Ok(out)
    }
}

fn checked_view(width: u32, height: u32, rgb: &[u8]) -> Result<RgbView<'_>, String> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 {
        return Err(format!("empty image ({width}x{height})"));
    }
    if rgb.len() != w * h * 3 {
        return Err(format!(
            "{width}x{height} RGB needs {} bytes, got {}",
            w * h * 3,
            rgb.len()
        ));
    }
    Ok(RgbView { w, h, data: rgb })
}

fn bbox_of(quad: &Quad) -> BoundingBox {
    let xs = quad.iter().map(|p| p[0]);
    let ys = quad.iter().map(|p| p[1]);
    let (x0, x1) = (
        xs.clone().fold(f32::MAX, f32::min),
        xs.fold(f32::MIN, f32::max),
    );
    let (y0, y1) = (
        ys.clone().fold(f32::MAX, f32::min),
        ys.fold(f32::MIN, f32::max),
    );
    BoundingBox {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    }
}

/// Whitespace-normalised text, the key for merging the same line across frames.
fn merge_key(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Longest side of the detector input for the glance at a mid-shot sample (a seventh of the
/// pixels of the default 1280): enough to see whether and where captions are.
const GLANCE_SIDE: u32 = 480;

/// What a text box of a frame becomes: a crop to recognise (index into the crops), or the
/// line of box `.1` of frame `.0` (the frame before it in the shot), still on screen.
#[derive(Debug, Clone, Copy)]
enum Item {
    Read(usize),
    Carry(usize, usize),
}

/// Intersection over union of two boxes.
fn iou(a: &BoundingBox, b: &BoundingBox) -> f32 {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = (a.x + a.w).min(b.x + b.w);
    let y1 = (a.y + a.h).min(b.y + b.h);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a.w * a.h + b.w * b.h - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Similarity of two texts in 0..=1: one minus their edit distance over the longer length
/// (characters, case-insensitive).
fn text_similarity(a: &str, b: &str) -> f32 {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    1.0 - prev[b.len()] as f32 / longest as f32
}

/// Whether `line` (seen now) continues `open` (seen on the previous frame): the same text, or
/// nearly the same text (a misread letter) in nearly the same place.
fn continues(open: &OcrLine, key: &str, bbox: &BoundingBox) -> bool {
    open.text == key || (iou(&open.bbox, bbox) >= 0.5 && text_similarity(&open.text, key) >= 0.75)
}

/// Lines per frame looked at (in time order, each with the time range it stands for) →
/// sidecar lines: a line is tracked across consecutive frames (same text, or nearly the same
/// text in the same place) and becomes one line from the first to the last time it was seen,
/// with the text of its most confident reading.
fn merge_lines(frames: Vec<((f64, f64), Vec<TextLine>)>) -> Vec<OcrLine> {
    let mut out: Vec<OcrLine> = Vec::new();
    // Indexes into `out` of the lines seen on the previous frame.
    let mut previous: Vec<usize> = Vec::new();
    for ((start_s, end_s), lines) in frames {
        let mut current = Vec::with_capacity(lines.len());
        for line in lines {
            let key = merge_key(&line.text);
            let open = previous
                .iter()
                .position(|&i| out[i].text == key)
                .or_else(|| {
                    previous
                        .iter()
                        .position(|&i| continues(&out[i], &key, &line.bbox))
                })
                .map(|p| previous.swap_remove(p));
            match open {
                Some(i) => {
                    let l = &mut out[i];
                    l.end_s = l.end_s.max(end_s);
                    l.start_s = l.start_s.min(start_s);
                    if line.confidence > l.confidence {
                        l.confidence = line.confidence;
                        l.text = key;
                        l.bbox = line.bbox;
                    }
                    current.push(i);
                }
                None => {
                    out.push(OcrLine {
                        start_s,
                        end_s,
                        text: key,
                        bbox: line.bbox,
                        confidence: line.confidence,
                    });
                    current.push(out.len() - 1);
                }
            }
        }
        previous = current;
    }
    out.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    out
}

impl Extractor for PaddleOcr {
    fn info(&self) -> ExtractorInfo {
        self.info.clone()
    }

    fn needs(&self) -> Needs {
        Needs::keyframes_and_samples()
    }

    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let shots = ctx
            .sidecar
            .shots
            .as_ref()
            .map(|s| s.data.shots.as_slice())
            .unwrap_or(&[]);
        // Every frame looked at (keyframes and mid-shot samples), in time order, with whether
        // it is a sample.
        let mut looked: Vec<(&FrameRef<'_>, bool)> = ctx
            .keyframes
            .iter()
            .map(|k| (k, false))
            .chain(ctx.samples.iter().map(|s| (s, true)))
            .collect();
        looked.sort_by(|(a, _), (b, _)| {
            a.shot_index
                .cmp(&b.shot_index)
                .then(a.time_s.total_cmp(&b.time_s))
        });
        let order: Vec<&FrameRef<'_>> = looked.iter().map(|(f, _)| *f).collect();
        let total = order.len().max(1) as f32;
        (ctx.progress)(0.0);

        // A keyframe is read in full (detector at `det_resize`). A sample is only glanced at
        // (detector at GLANCE_SIDE, a quarter of the pixels): a box that overlaps a line of
        // the frame before it in the shot repeats that line (text still on screen), a new
        // box is cut out of the full frame and recognised, and text that is gone ends. 60%
        // of the progress.
        let mut crops: Vec<RgbBuf> = Vec::new();
        let mut items: Vec<Vec<(Quad, Item)>> = Vec::with_capacity(order.len());
        let (mut full, mut carried) = (0usize, 0usize);
        for (done, (kf, is_sample)) in looked.iter().enumerate() {
            let img = checked_view(kf.width, kf.height, kf.rgb).map_err(|e| {
                ExtractError::Failed(format!(
                    "frame of shot {} at {:.2} s: {e}",
                    kf.shot_index, kf.time_s
                ))
            })?;
            let previous = done
                .checked_sub(1)
                .filter(|&p| order[p].shot_index == kf.shot_index);
            let mut here = Vec::new();
            if *is_sample {
                // Positions are reported in the pixels of the shot's keyframe (samples are
                // smaller), so lines are tracked and boxed alike on every frame.
                let scale = ctx
                    .keyframes
                    .iter()
                    .find(|k| k.shot_index == kf.shot_index)
                    .map_or(1.0, |k| k.width as f32 / kf.width.max(1) as f32);
                for glance in self.detect_sized(img, DetResize::MaxSide(GLANCE_SIDE))? {
                    let quad = glance.map(|[x, y]| [x * scale, y * scale]);
                    let b = bbox_of(&quad);
                    let same = previous.and_then(|p| {
                        items[p]
                            .iter()
                            .position(|(q, _)| iou(&bbox_of(q), &b) >= 0.5)
                            .map(|i| (p, i))
                    });
                    match same {
                        Some((p, i)) => {
                            carried += 1;
                            here.push((items[p][i].0, Item::Carry(p, i)));
                        }
                        None => {
                            if let Some(crop) = image::crop_quad(img, &glance) {
                                crops.push(crop);
                                here.push((quad, Item::Read(crops.len() - 1)));
                            }
                        }
                    }
                }
            } else {
                full += 1;
                for quad in self.detect(img)? {
                    if let Some(crop) = image::crop_quad(img, &quad) {
                        crops.push(crop);
                        here.push((quad, Item::Read(crops.len() - 1)));
                    }
                }
            }
            items.push(here);
            (ctx.progress)(60.0 * (done + 1) as f32 / total);
        }
        tracing::debug!(
            frames = order.len(),
            full,
            glanced = order.len() - full,
            carried,
            recognised = crops.len(),
            "ocr frames"
        );

        // Recognise every new crop together, batched by aspect ratio: the other 40%.
        let views: Vec<RgbView<'_>> = crops.iter().map(RgbBuf::view).collect();
        let texts = self.recognize(&views, &mut |f| (ctx.progress)(60.0 + 40.0 * f))?;

        // Lines per frame, in order: carried items take the line of the item they repeat.
        let mut resolved: Vec<Vec<Option<TextLine>>> = Vec::with_capacity(items.len());
        for frame_items in &items {
            let lines = frame_items
                .iter()
                .map(|(quad, item)| match *item {
                    Item::Read(c) => {
                        let (text, conf) = texts[c].clone();
                        self.accept(quad, text, conf)
                    }
                    Item::Carry(p, i) => resolved[p][i].clone(),
                })
                .collect();
            resolved.push(lines);
        }
        let frames: Vec<((f64, f64), Vec<TextLine>)> = order
            .iter()
            .zip(resolved)
            .map(|(f, lines)| {
                (
                    observed_range(&order, shots, f),
                    lines.into_iter().flatten().collect(),
                )
            })
            .collect();
        (ctx.progress)(100.0);
        Ok(StageData::Ocr(Ocr {
            lines: merge_lines(frames),
        }))
    }
}

/// The time a frame of `order` (sorted by shot, then time) stands for: from its own time (the
/// shot's start for the shot's first frame) to the next frame looked at in the same shot (the
/// shot's end for its last).
fn observed_range(order: &[&FrameRef<'_>], shots: &[Shot], f: &FrameRef<'_>) -> (f64, f64) {
    let shot = shots.iter().find(|s| s.index == f.shot_index);
    let (shot_start, shot_end) = shot
        .map(|s| (s.start_s, s.end_s.max(s.start_s)))
        .unwrap_or((f.time_s, f.time_s));
    let same_shot = || order.iter().filter(|o| o.shot_index == f.shot_index);
    let first = same_shot().all(|o| o.time_s >= f.time_s);
    let next = same_shot()
        .map(|o| o.time_s)
        .filter(|t| *t > f.time_s)
        .fold(f64::INFINITY, f64::min);
    let start = if first {
        shot_start.min(f.time_s)
    } else {
        f.time_s
    };
    let end = if next.is_finite() {
        next
    } else {
        shot_end.max(f.time_s)
    };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, conf: f32) -> TextLine {
        TextLine {
            text: text.into(),
            confidence: conf,
            bbox: BoundingBox {
                x: 1.0,
                y: 2.0,
                w: 3.0,
                h: 4.0,
            },
            quad: [[0.0; 2]; 4],
        }
    }

    #[test]
    fn same_text_on_consecutive_shots_is_merged() {
        let lines = merge_lines(vec![
            ((0.0, 2.0), vec![line("TITLE", 0.9), line("a", 0.8)]),
            ((2.0, 4.0), vec![line("TITLE ", 0.95)]),
            ((4.0, 6.0), vec![line("a", 0.7)]),
            ((6.0, 8.0), vec![line("TITLE", 0.6)]),
        ]);
        let got: Vec<(&str, f64, f64)> = lines
            .iter()
            .map(|l| (l.text.as_str(), l.start_s, l.end_s))
            .collect();
        assert_eq!(
            got,
            vec![
                ("TITLE", 0.0, 4.0),
                ("a", 0.0, 2.0),
                ("a", 4.0, 6.0),
                ("TITLE", 6.0, 8.0)
            ]
        );
        assert_eq!(lines[0].confidence, 0.95);
    }

    #[test]
    fn a_misread_letter_in_the_same_place_continues_the_line() {
        let mut misread = line("ZEPHYR OBSERVAT0RY", 0.7);
        misread.bbox.x += 0.5;
        let lines = merge_lines(vec![
            ((5.0, 5.5), vec![line("ZEPHYR OBSERVATORY", 0.9)]),
            ((5.5, 6.0), vec![misread]),
            ((6.0, 7.0), vec![line("ZEPHYR OBSERVATORY", 0.8)]),
            ((7.0, 9.0), vec![]),
            ((9.0, 9.5), vec![line("ZEPHYR OBSERVATORY", 0.8)]),
        ]);
        let got: Vec<(&str, f64, f64)> = lines
            .iter()
            .map(|l| (l.text.as_str(), l.start_s, l.end_s))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ZEPHYR OBSERVATORY", 5.0, 7.0),
                ("ZEPHYR OBSERVATORY", 9.0, 9.5)
            ]
        );
        // Different text in the same place is a new line.
        let lines = merge_lines(vec![
            ((0.0, 1.0), vec![line("Chapter one", 0.9)]),
            ((1.0, 2.0), vec![line("Credits", 0.9)]),
        ]);
        assert_eq!(lines.len(), 2);
        assert!(text_similarity("kitten", "sitting") > 0.5);
        assert_eq!(text_similarity("", ""), 1.0);
    }

    #[test]
    fn frames_stand_for_the_time_until_the_next_one() {
        let shot = |index, start_s, end_s| Shot {
            index,
            start_s,
            end_s,
            start_frame: 0,
            end_frame: 0,
            keyframe: None,
            descriptors: vec![],
        };
        let shots = [shot(0, 0.0, 9.0), shot(1, 9.0, 12.0)];
        let f = |shot_index, time_s| FrameRef {
            shot_index,
            time_s,
            width: 1,
            height: 1,
            rgb: &[0, 0, 0],
        };
        let frames = [f(0, 0.5), f(0, 5.0), f(0, 7.0), f(1, 9.5)];
        let order: Vec<&FrameRef<'_>> = frames.iter().collect();
        let ranges: Vec<(f64, f64)> = frames
            .iter()
            .map(|x| observed_range(&order, &shots, x))
            .collect();
        assert_eq!(
            ranges,
            vec![(0.0, 5.0), (5.0, 7.0), (7.0, 9.0), (9.0, 12.0)]
        );
    }

    #[test]
    fn bad_buffers_are_rejected() {
        assert!(checked_view(2, 2, &[0; 11]).is_err());
        assert!(checked_view(0, 2, &[]).is_err());
        assert!(checked_view(2, 2, &[0; 12]).is_ok());
    }
}
