//! dlib's 5-point face landmark model (`shape_predictor_5_face_landmarks.dat`): a cascade of
//! regression-tree ensembles (Kazemi & Sullivan 2014), read from dlib's serialization and run
//! as dlib's `shape_predictor::operator()` does.
//!
//! The five points are the outer and inner corner of the image-right eye, the outer and inner
//! corner of the image-left eye, and the bottom of the nose. dlib starts the cascade from the
//! mean shape placed in the detector's rectangle; BlazeFace's rectangle is not dlib's, so the
//! rectangle is instead chosen so that the mean shape's eye centres fall on BlazeFace's eye
//! keypoints (square, axis-aligned), which is the placement the cascade was trained around.

use std::path::Path;

use super::align::{Similarity, fit};
use super::dlib_resnet::Reader;
use crate::ml::MlError;

#[derive(Debug, Clone)]
struct Tree {
    /// (idx1, idx2, threshold) per split node, breadth first.
    splits: Vec<(usize, usize, f32)>,
    /// Leaf shape deltas, `2 * parts` floats each, concatenated.
    leaves: Vec<f32>,
}

/// The loaded landmark model.
#[derive(Debug, Clone)]
pub struct ShapePredictor {
    /// Mean shape in rectangle-normalised coordinates: x0, y0, x1, y1, ...
    initial: Vec<f32>,
    forests: Vec<Vec<Tree>>,
    anchors: Vec<Vec<usize>>,
    deltas: Vec<Vec<(f32, f32)>>,
}

fn matrix(r: &mut Reader<'_>) -> Result<Vec<f32>, MlError> {
    let nr = r.int()?.unsigned_abs() as usize;
    let nc = r.int()?.unsigned_abs() as usize;
    let n = nr.checked_mul(nc).filter(|&n| n < 1 << 20);
    let n = n.ok_or_else(|| r.err("matrix too large"))?;
    (0..n).map(|_| r.float().map(|v| v as f32)).collect()
}

fn len(r: &mut Reader<'_>, max: usize) -> Result<usize, MlError> {
    let n = r.usize()?;
    if n > max {
        return Err(r.err(format!("length {n} larger than {max}")));
    }
    Ok(n)
}

impl ShapePredictor {
    /// Read `shape_predictor_5_face_landmarks.dat` (any dlib shape predictor file).
    pub fn load(path: &Path) -> Result<Self, MlError> {
        let buf = std::fs::read(path).map_err(|source| MlError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path.display().to_string();
        let mut r = Reader {
            buf: &buf,
            pos: 0,
            path: &name,
        };
        let version = r.int()?;
        if version != 1 {
            return Err(r.err(format!("shape_predictor version {version}")));
        }
        let initial = matrix(&mut r)?;
        let dims = initial.len();
        if dims == 0 || dims % 2 != 0 {
            return Err(r.err("bad initial shape"));
        }
        let levels = len(&mut r, 1000)?;
        let mut forests = Vec::with_capacity(levels);
        for _ in 0..levels {
            let trees = len(&mut r, 100_000)?;
            let mut forest = Vec::with_capacity(trees);
            for _ in 0..trees {
                let ns = len(&mut r, 1 << 16)?;
                let mut splits = Vec::with_capacity(ns);
                for _ in 0..ns {
                    let a = r.usize()?;
                    let b = r.usize()?;
                    splits.push((a, b, r.float()? as f32));
                }
                let nl = len(&mut r, 1 << 17)?;
                if nl != ns + 1 {
                    return Err(r.err("tree is not complete"));
                }
                let mut leaves = Vec::with_capacity(nl * dims);
                for _ in 0..nl {
                    let v = matrix(&mut r)?;
                    if v.len() != dims {
                        return Err(r.err("leaf size mismatch"));
                    }
                    leaves.extend(v);
                }
                forest.push(Tree { splits, leaves });
            }
            forests.push(forest);
        }
        let na = len(&mut r, 1000)?;
        let mut anchors = Vec::with_capacity(na);
        for _ in 0..na {
            let n = len(&mut r, 1 << 16)?;
            anchors.push((0..n).map(|_| r.usize()).collect::<Result<Vec<_>, _>>()?);
        }
        let nd = len(&mut r, 1000)?;
        let mut deltas = Vec::with_capacity(nd);
        for _ in 0..nd {
            let n = len(&mut r, 1 << 16)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let x = r.float()? as f32;
                let y = r.float()? as f32;
                v.push((x, y));
            }
            deltas.push(v);
        }
        let parts = dims / 2;
        let consistent = anchors.len() == levels
            && deltas.len() == levels
            && anchors
                .iter()
                .zip(&deltas)
                .all(|(a, d)| a.len() == d.len() && a.iter().all(|&i| i < parts))
            && forests.iter().zip(&deltas).all(|(f, d)| {
                f.iter()
                    .all(|t| t.splits.iter().all(|s| s.0 < d.len() && s.1 < d.len()))
            });
        if !consistent {
            return Err(r.err("inconsistent shape predictor"));
        }
        Ok(Self {
            initial,
            forests,
            anchors,
            deltas,
        })
    }

    /// Number of landmarks.
    pub fn parts(&self) -> usize {
        self.initial.len() / 2
    }

    /// The square rectangle (left, top, side) that puts the mean shape's eye centres on the
    /// given eye positions (image-left eye first). Only meaningful for the 5-point layout.
    pub fn rect_from_eyes(&self, left_eye: (f32, f32), right_eye: (f32, f32)) -> Option<[f64; 3]> {
        if self.parts() != 5 {
            return None;
        }
        let p = |i: usize| {
            (
                f64::from(self.initial[2 * i]),
                f64::from(self.initial[2 * i + 1]),
            )
        };
        let mid = |a: (f64, f64), b: (f64, f64)| ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        // Points 0, 1: image-right eye; 2, 3: image-left eye.
        let (ul, ur) = (mid(p(2), p(3)), mid(p(0), p(1)));
        let (el, er) = (
            (f64::from(left_eye.0), f64::from(left_eye.1)),
            (f64::from(right_eye.0), f64::from(right_eye.1)),
        );
        let du = ((ur.0 - ul.0).powi(2) + (ur.1 - ul.1).powi(2)).sqrt();
        let de = ((er.0 - el.0).powi(2) + (er.1 - el.1).powi(2)).sqrt();
        if du <= f64::EPSILON || de <= f64::EPSILON {
            return None;
        }
        let side = de / du;
        let (mu, me) = (mid(ul, ur), mid(el, er));
        Some([me.0 - mu.0 * side, me.1 - mu.1 * side, side])
    }

    /// Landmarks (image pixels) on a grey image (`gray[y * width + x]`) within `rect`
    /// (left, top, side).
    pub fn predict(
        &self,
        gray: &[u8],
        width: usize,
        height: usize,
        rect: [f64; 3],
    ) -> Vec<(f64, f64)> {
        let [left, top, side] = rect;
        let to_img = |x: f32, y: f32| (left + f64::from(x) * side, top + f64::from(y) * side);
        let n = self.parts();
        let init: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                (
                    f64::from(self.initial[2 * i]),
                    f64::from(self.initial[2 * i + 1]),
                )
            })
            .collect();
        let mut cur = self.initial.clone();
        let mut features = Vec::new();
        for ((forest, anchors), deltas) in self.forests.iter().zip(&self.anchors).zip(&self.deltas)
        {
            let pts: Vec<(f64, f64)> = (0..n)
                .map(|i| (f64::from(cur[2 * i]), f64::from(cur[2 * i + 1])))
                .collect();
            let t = fit(&init, &pts, &vec![1.0; n]).unwrap_or(Similarity::IDENTITY);
            let (a, b) = t.linear();
            let (a, b) = (a as f32, b as f32);
            features.clear();
            for (&anchor, &(dx, dy)) in anchors.iter().zip(deltas) {
                let x = a * dx - b * dy + cur[2 * anchor];
                let y = b * dx + a * dy + cur[2 * anchor + 1];
                let (px, py) = to_img(x, y);
                let (px, py) = ((px + 0.5).floor(), (py + 0.5).floor());
                let v = if px >= 0.0 && py >= 0.0 && px < width as f64 && py < height as f64 {
                    f32::from(gray[py as usize * width + px as usize])
                } else {
                    0.0
                };
                features.push(v);
            }
            for tree in forest {
                let mut i = 0usize;
                while i < tree.splits.len() {
                    let (i1, i2, th) = tree.splits[i];
                    i = if features[i1] - features[i2] > th {
                        2 * i + 1
                    } else {
                        2 * i + 2
                    };
                }
                let leaf = i - tree.splits.len();
                let d = &tree.leaves[leaf * 2 * n..(leaf + 1) * 2 * n];
                cur.iter_mut().zip(d).for_each(|(c, v)| *c += v);
            }
        }
        (0..n).map(|i| to_img(cur[2 * i], cur[2 * i + 1])).collect()
    }
}
