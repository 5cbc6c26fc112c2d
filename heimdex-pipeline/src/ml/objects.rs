//! Objects with counts and boxes: SSD-MobileNetV2 trained on Open Images (23 classes).
//!
//! # Model
//! `make models` unpacks `object_detection_ssd_mobilenetv2_oidv4_fp16.tflite` from npm
//! `@mediapipe/objectron@0.4.1675468480` (Apache-2.0) and converts it to ONNX with
//! `scripts/convert_ssd_tflite.py` (no TensorFlow): `$HEIMDEX_MODELS/objects/`
//! `ssd_mobilenetv2_oidv4.onnx` (input `rgb`, `[N, 3, 300, 300]` RGB 0..255, normalised in
//! the graph; outputs `box_encodings` `[N, 1917, 4]` and `class_logits` `[N, 1917, 24]`) and
//! `anchors.f32` (1917 × (y, x, h, w) little-endian f32, MediaPipe's SSD anchor options).
//! Against the original model in a TFLite interpreter the outputs agree within 2.1e-4.
//!
//! # Method (MediaPipe's `ObjectDetectionOidV4Subgraph`)
//! The whole frame is stretched to 300×300 (triangle filter). Boxes are decoded from the
//! anchors (`y = ty/10·ah + ay`, `x = tx/10·aw + ax`, `h = exp(th/5)·ah`, `w = exp(tw/5)·aw`);
//! a box's class is its best non-background class by sigmoid score, kept at
//! [`ObjectConfig::min_score`] (0.5) or above; then class-agnostic hard non-maximum
//! suppression at IoU 0.5, at most 100 boxes. Boxes are returned in frame pixels.
//!
//! # Classes
//! bicycle, boot, laptop, person, chair, cattle, desk, cat, computer mouse, computer monitor,
//! box, mug, coffee cup, stationary bicycle, table, bottle, high heels, vehicle, footwear,
//! dog, book, camera, car. Recall is modest: clear, large objects score 0.5–0.85; small or
//! half-visible ones are often missed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use heimdex_core::extractor::FrameRef;
use heimdex_core::sidecar::{BoundingBox, ModelIdentity};
use ort::session::Session;
use ort::value::Tensor;

use super::MlError;
use super::models::{identity, models_dir, require};
use super::planar::{Region, planar_rgb};
use super::runtime;

/// Name of the default detector in [`ModelIdentity`].
pub const MODEL_NAME: &str = "ssd-mobilenetv2-oidv4";
/// Input side in pixels.
pub const INPUT_SIZE: u32 = 300;
/// Class names by class id (0 is the background).
pub const LABELS: [&str; 24] = [
    "background",
    "bicycle",
    "boot",
    "laptop",
    "person",
    "chair",
    "cattle",
    "desk",
    "cat",
    "computer mouse",
    "computer monitor",
    "box",
    "mug",
    "coffee cup",
    "stationary bicycle",
    "table",
    "bottle",
    "high heels",
    "vehicle",
    "footwear",
    "dog",
    "book",
    "camera",
    "car",
];
const NUM_ANCHORS: usize = 1917;

/// Settings of the detector.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectConfig {
    /// The ONNX model.
    pub model: PathBuf,
    /// The anchors (`anchors.f32`).
    pub anchors: PathBuf,
    /// Least score of a detection. Default 0.5 (MediaPipe's).
    pub min_score: f32,
    /// Boxes overlapping a better one by more than this IoU are dropped. Default 0.5.
    pub iou: f32,
    /// At most this many detections per frame. Default 100.
    pub max_detections: usize,
    /// ONNX Runtime intra-op threads. Default 1.
    pub threads: usize,
    /// Frames per model run. Default 8.
    pub batch_size: usize,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        Self::in_dir(&models_dir())
    }
}

impl ObjectConfig {
    /// Default settings with the files under `models` (as `make models` fills it).
    pub fn in_dir(models: &Path) -> Self {
        Self {
            model: models.join("objects").join("ssd_mobilenetv2_oidv4.onnx"),
            anchors: models.join("objects").join("anchors.f32"),
            min_score: 0.5,
            iou: 0.5,
            max_detections: 100,
            threads: 1,
            batch_size: 8,
        }
    }
}

/// One detected object, in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Class name ([`LABELS`]).
    pub label: &'static str,
    /// Sigmoid score, 0..=1.
    pub score: f32,
    /// Box in frame pixels.
    pub bbox: BoundingBox,
}

/// The detector (see the module docs).
#[derive(Debug)]
pub struct ObjectDetector {
    session: Mutex<Session>,
    anchors: Vec<[f32; 4]>,
    config: ObjectConfig,
    model: ModelIdentity,
}

impl ObjectDetector {
    /// Load the model and anchors.
    pub fn load(config: ObjectConfig) -> Result<Self, MlError> {
        let model = Self::model_identity(&config)?;
        let bytes = std::fs::read(&config.anchors).map_err(|source| MlError::Io {
            path: config.anchors.display().to_string(),
            source,
        })?;
        if bytes.len() != NUM_ANCHORS * 16 {
            return Err(MlError::model(
                config.anchors.display().to_string(),
                format!(
                    "{} bytes, expected {} anchors of 16",
                    bytes.len(),
                    NUM_ANCHORS
                ),
            ));
        }
        let anchors = bytes
            .chunks_exact(16)
            .map(|c| {
                let f = |i: usize| f32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                [f(0), f(4), f(8), f(12)]
            })
            .collect();
        let session = runtime::session(&config.model, config.threads)?;
        Ok(Self {
            session: Mutex::new(session),
            anchors,
            config,
            model,
        })
    }

    /// The identity of the model and anchors without loading them.
    pub fn model_identity(config: &ObjectConfig) -> Result<ModelIdentity, MlError> {
        require(&config.model, "ObjectConfig::model")?;
        require(&config.anchors, "ObjectConfig::anchors")?;
        identity(MODEL_NAME, &[&config.model, &config.anchors])
    }

    /// Name and hash of the model and anchors.
    pub fn model_id(&self) -> &ModelIdentity {
        &self.model
    }

    /// The detections of each frame, in frame order, best first.
    pub fn detect(&self, frames: &[FrameRef<'_>]) -> Result<Vec<Vec<Detection>>, MlError> {
        let name = self.config.model.display().to_string();
        let err = |e: &dyn std::fmt::Display| MlError::model(name.clone(), e);
        let side = INPUT_SIZE as usize;
        let mut out = Vec::with_capacity(frames.len());
        for chunk in frames.chunks(self.config.batch_size.max(1)) {
            let mut pixels = Vec::with_capacity(chunk.len() * 3 * side * side);
            for f in chunk {
                preprocess(f, &mut pixels).map_err(|e| err(&e))?;
            }
            let tensor =
                Tensor::from_array(([chunk.len(), 3, side, side], pixels)).map_err(|e| err(&e))?;
            let mut session = self
                .session
                .lock()
                .map_err(|_| err(&"session lock poisoned"))?;
            let outputs = session
                .run(ort::inputs!["rgb" => tensor])
                .map_err(|e| err(&e))?;
            let (bshape, boxes) = outputs["box_encodings"]
                .try_extract_tensor::<f32>()
                .map_err(|e| err(&e))?;
            let (sshape, logits) = outputs["class_logits"]
                .try_extract_tensor::<f32>()
                .map_err(|e| err(&e))?;
            let n = chunk.len() as i64;
            let bdims: Vec<i64> = bshape.iter().copied().collect();
            let sdims: Vec<i64> = sshape.iter().copied().collect();
            if bdims != [n, NUM_ANCHORS as i64, 4]
                || sdims != [n, NUM_ANCHORS as i64, LABELS.len() as i64]
            {
                return Err(err(&format!(
                    "unexpected output shapes {bdims:?} / {sdims:?}"
                )));
            }
            for (i, f) in chunk.iter().enumerate() {
                let b = &boxes[i * NUM_ANCHORS * 4..(i + 1) * NUM_ANCHORS * 4];
                let l =
                    &logits[i * NUM_ANCHORS * LABELS.len()..(i + 1) * NUM_ANCHORS * LABELS.len()];
                out.push(self.decode(b, l, f.width, f.height));
            }
        }
        Ok(out)
    }

    /// Anchors + encodings → boxes above the threshold → non-maximum suppression.
    fn decode(&self, boxes: &[f32], logits: &[f32], width: u32, height: u32) -> Vec<Detection> {
        let classes = LABELS.len();
        let mut cands: Vec<(f32, usize, [f32; 4])> = Vec::new();
        for (a, anchor) in self.anchors.iter().enumerate() {
            let row = &logits[a * classes..(a + 1) * classes];
            let (class, logit) =
                row.iter()
                    .enumerate()
                    .skip(1)
                    .fold(
                        (0, f32::MIN),
                        |best, (c, &v)| if v > best.1 { (c, v) } else { best },
                    );
            let score = 1.0 / (1.0 + (-logit).exp());
            if score < self.config.min_score {
                continue;
            }
            let e = &boxes[a * 4..a * 4 + 4];
            let [ay, ax, ah, aw] = *anchor;
            let yc = e[0] / 10.0 * ah + ay;
            let xc = e[1] / 10.0 * aw + ax;
            let h = (e[2] / 5.0).exp() * ah;
            let w = (e[3] / 5.0).exp() * aw;
            let (x0, y0) = (
                (xc - w / 2.0).clamp(0.0, 1.0),
                (yc - h / 2.0).clamp(0.0, 1.0),
            );
            let (x1, y1) = (
                (xc + w / 2.0).clamp(0.0, 1.0),
                (yc + h / 2.0).clamp(0.0, 1.0),
            );
            if x1 > x0 && y1 > y0 {
                cands.push((score, class, [x0, y0, x1, y1]));
            }
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut kept: Vec<(f32, usize, [f32; 4])> = Vec::new();
        for c in cands {
            if kept.len() >= self.config.max_detections {
                break;
            }
            if kept.iter().all(|k| iou(&k.2, &c.2) <= self.config.iou) {
                kept.push(c);
            }
        }
        let (fw, fh) = (width as f32, height as f32);
        kept.into_iter()
            .map(|(score, class, [x0, y0, x1, y1])| Detection {
                label: LABELS[class],
                score,
                bbox: BoundingBox {
                    x: x0 * fw,
                    y: y0 * fh,
                    w: (x1 - x0) * fw,
                    h: (y1 - y0) * fh,
                },
            })
            .collect()
    }
}

/// IoU of two `[x0, y0, x1, y1]` boxes.
fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// The frame stretched to 300×300, appended to `out` as planar RGB 0..255.
fn preprocess(frame: &FrameRef<'_>, out: &mut Vec<f32>) -> Result<(), String> {
    let whole = Region {
        x: 0,
        y: 0,
        w: frame.width,
        h: frame.height,
    };
    planar_rgb(frame, whole, INPUT_SIZE, INPUT_SIZE, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[0.0, 0.0, 1.0, 1.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
        assert!((iou(&[0.0, 0.0, 2.0, 1.0], &[1.0, 0.0, 3.0, 1.0]) - 1.0 / 3.0).abs() < 1e-6);
    }
}
