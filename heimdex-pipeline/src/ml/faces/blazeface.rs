//! BlazeFace (MediaPipe) face detection through ONNX Runtime.
//!
//! Both published BlazeFace models have 896 SSD anchors: a 16x16 grid with 2 anchors per cell
//! and an 8x8 grid with 6 anchors per cell, every anchor of unit size centred on its cell.
//! Regressors are 16 numbers per anchor: box centre offset (x, y) and size (w, h), then six
//! keypoints (right eye, left eye, nose tip, mouth centre, right ear, left ear), all in input
//! pixels relative to the anchor centre. Scores are logits. Overlapping candidates are merged
//! by MediaPipe's weighted non-maximum suppression (IoU >= 0.3; boxes and keypoints averaged
//! with the scores as weights; the merged score is the best one).

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::ml::MlError;
use crate::ml::runtime;

/// One face candidate in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDetection {
    /// Box left, top, width, height.
    pub bbox: [f32; 4],
    /// Six keypoints (x, y): right eye, left eye, nose tip, mouth centre, right ear, left ear.
    pub keypoints: [(f32, f32); 6],
    /// Score in 0..=1.
    pub score: f32,
}

/// One BlazeFace model.
#[derive(Debug)]
pub struct BlazeFace {
    session: Mutex<Session>,
    size: u32,
    name: String,
}

impl BlazeFace {
    /// Load the model at `path`; `size` is its square input side (128 or 256).
    pub fn load(path: &Path, size: u32, threads: usize) -> Result<Self, MlError> {
        Ok(Self {
            session: Mutex::new(runtime::session(path, threads)?),
            size,
            name: path.display().to_string(),
        })
    }

    /// Square input side of the model.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Candidates with score >= `min_score` (before suppression), in image pixels, on a
    /// letterboxed copy of the image of this model's size.
    pub fn detect(&self, lb: &Letterbox, min_score: f32) -> Result<Vec<RawDetection>, MlError> {
        let s = self.size;
        let err = |e: &dyn std::fmt::Display| MlError::model(self.name.clone(), e);
        if lb.size != s {
            return Err(err(&"letterbox size does not match the model"));
        }
        let input: Vec<f32> = lb.rgb.iter().map(|&v| f32::from(v) / 127.5 - 1.0).collect();
        let (scale, ox, oy) = (lb.scale, lb.ox, lb.oy);
        let tensor = Tensor::from_array(([1usize, s as usize, s as usize, 3], input))
            .map_err(|e| err(&e))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| err(&"session lock poisoned"))?;
        let outputs = session
            .run(ort::inputs!["input:0" => tensor])
            .map_err(|e| err(&e))?;
        let get = |name: &str| -> Result<Vec<f32>, MlError> {
            outputs
                .get(name)
                .ok_or_else(|| err(&format!("missing output {name}")))?
                .try_extract_tensor::<f32>()
                .map(|(_, d)| d.to_vec())
                .map_err(|e| err(&e))
        };
        let layers = [
            (get("Identity:0")?, get("Identity_2:0")?, 16usize, 2usize),
            (get("Identity_1:0")?, get("Identity_3:0")?, 8, 6),
        ];
        drop(outputs);
        drop(session);
        let sf = s as f32;
        let to_image = |x: f32, y: f32| ((x * sf - ox) / scale, (y * sf - oy) / scale);
        let mut out = Vec::new();
        for (scores, boxes, cells, anchors) in &layers {
            if scores.len() < cells * cells * anchors || boxes.len() < scores.len() * 16 {
                return Err(err(&"unexpected output shape"));
            }
            for (i, &logit) in scores.iter().enumerate().take(cells * cells * anchors) {
                let score = 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp());
                if score < min_score {
                    continue;
                }
                let cell = i / anchors;
                let ax = ((cell % cells) as f32 + 0.5) / *cells as f32;
                let ay = ((cell / cells) as f32 + 0.5) / *cells as f32;
                let r = &boxes[i * 16..i * 16 + 16];
                let (cx, cy) = (ax + r[0] / sf, ay + r[1] / sf);
                let (w, h) = (r[2] / sf, r[3] / sf);
                let (x0, y0) = to_image(cx - w / 2.0, cy - h / 2.0);
                let (x1, y1) = to_image(cx + w / 2.0, cy + h / 2.0);
                let mut keypoints = [(0f32, 0f32); 6];
                for (k, kp) in keypoints.iter_mut().enumerate() {
                    *kp = to_image(ax + r[4 + 2 * k] / sf, ay + r[5 + 2 * k] / sf);
                }
                out.push(RawDetection {
                    bbox: [x0, y0, x1 - x0, y1 - y0],
                    keypoints,
                    score,
                });
            }
        }
        Ok(out)
    }
}

/// An image scaled (aspect kept) and centred on a black square of side `size`.
#[derive(Debug, Clone)]
pub struct Letterbox {
    /// RGB24, `size * size * 3`.
    pub rgb: Vec<u8>,
    /// Side of the square.
    pub size: u32,
    /// Square pixels per image pixel.
    pub scale: f32,
    /// Left offset of the image on the square.
    pub ox: f32,
    /// Top offset of the image on the square.
    pub oy: f32,
}

impl Letterbox {
    /// Letterbox `rgb` (packed RGB24) onto a `size` square, shrinking by area averaging
    /// (each square pixel is the mean of the image pixels it covers) or enlarging by
    /// nearest neighbour.
    pub fn new(rgb: &[u8], width: u32, height: u32, size: u32) -> Self {
        let (w, h) = (width as usize, height as usize);
        let scale = size as f32 / width.max(height) as f32;
        let nw = ((width as f32 * scale).round() as usize).clamp(1, size as usize);
        let nh = ((height as f32 * scale).round() as usize).clamp(1, size as usize);
        let (ox, oy) = ((size as usize - nw) / 2, (size as usize - nh) / 2);
        let s = size as usize;
        let mut out = vec![0u8; s * s * 3];
        let span = |i: usize, n: usize, src: usize| {
            let a = i * src / n;
            let b = ((i + 1) * src / n).max(a + 1).min(src);
            (a, b)
        };
        let xs: Vec<(usize, usize)> = (0..nw).map(|x| span(x, nw, w)).collect();
        let mut row = vec![0u32; w * 3];
        for y in 0..nh {
            let (y0, y1) = span(y, nh, h);
            row.iter_mut().for_each(|v| *v = 0);
            for sy in y0..y1 {
                let src = &rgb[sy * w * 3..(sy + 1) * w * 3];
                for (acc, &v) in row.iter_mut().zip(src) {
                    *acc += u32::from(v);
                }
            }
            let dst = &mut out[((y + oy) * s + ox) * 3..((y + oy) * s + ox + nw) * 3];
            for (px, &(x0, x1)) in dst.chunks_exact_mut(3).zip(&xs) {
                let n = ((x1 - x0) * (y1 - y0)) as u32;
                for (c, d) in px.iter_mut().enumerate() {
                    let sum: u32 = (x0..x1).map(|x| row[x * 3 + c]).sum();
                    *d = ((sum + n / 2) / n) as u8;
                }
            }
        }
        Self {
            rgb: out,
            size,
            scale: nw as f32 / width as f32,
            ox: ox as f32,
            oy: oy as f32,
        }
    }

    /// The same letterbox at half the size (2x2 means), for the 128 model from the 256 one.
    pub fn half(&self) -> Self {
        let s = self.size as usize;
        let h = s / 2;
        let mut out = vec![0u8; h * h * 3];
        for y in 0..h {
            for x in 0..h {
                for c in 0..3 {
                    let at = |yy: usize, xx: usize| u16::from(self.rgb[(yy * s + xx) * 3 + c]);
                    let sum = at(2 * y, 2 * x)
                        + at(2 * y, 2 * x + 1)
                        + at(2 * y + 1, 2 * x)
                        + at(2 * y + 1, 2 * x + 1);
                    out[(y * h + x) * 3 + c] = ((sum + 2) / 4) as u8;
                }
            }
        }
        Self {
            rgb: out,
            size: h as u32,
            scale: self.scale / 2.0,
            ox: self.ox / 2.0,
            oy: self.oy / 2.0,
        }
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    let inter = ix.max(0.0) * iy.max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// MediaPipe's weighted non-maximum suppression. Output is sorted by descending score.
pub fn weighted_nms(mut cands: Vec<RawDetection>, iou_threshold: f32) -> Vec<RawDetection> {
    cands.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.bbox[0].total_cmp(&b.bbox[0]))
            .then(a.bbox[1].total_cmp(&b.bbox[1]))
    });
    let mut used = vec![false; cands.len()];
    let mut out = Vec::new();
    for i in 0..cands.len() {
        if used[i] {
            continue;
        }
        let mut bbox = [0f32; 4];
        let mut kps = [(0f32, 0f32); 6];
        let mut total = 0f32;
        for j in i..cands.len() {
            if used[j] || iou(&cands[i].bbox, &cands[j].bbox) < iou_threshold {
                continue;
            }
            used[j] = true;
            let c = &cands[j];
            total += c.score;
            for (acc, v) in bbox.iter_mut().zip(&c.bbox) {
                *acc += v * c.score;
            }
            for (acc, kp) in kps.iter_mut().zip(&c.keypoints) {
                acc.0 += kp.0 * c.score;
                acc.1 += kp.1 * c.score;
            }
        }
        bbox.iter_mut().for_each(|v| *v /= total);
        kps.iter_mut().for_each(|p| {
            p.0 /= total;
            p.1 /= total;
        });
        out.push(RawDetection {
            bbox,
            keypoints: kps,
            score: cands[i].score,
        });
    }
    out
}
