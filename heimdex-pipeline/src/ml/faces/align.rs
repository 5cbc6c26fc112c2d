//! Face alignment: a similarity transform from detector keypoints to dlib's mean face, and
//! extraction of the 150x150 chip the embedding network expects.
//!
//! dlib aligns with its 5-point landmark model and `get_face_chip_details(shape, 150, 0.25)`.
//! Here the reference points are the matching points of dlib's mean face shape (the one
//! `get_face_chip_details` uses): the eye centres (mean of each eye's two corners), the nose
//! tip (point 30) and the mouth centre (between inner-lip points 62 and 66), mapped into the
//! chip with the same padding (0.25). BlazeFace's keypoints (right eye, left eye, nose tip,
//! mouth centre) are matched to them by least squares.

use super::dlib_resnet::CHIP_SIZE;

/// dlib's chip padding for the face-recognition model.
const PADDING: f64 = 0.25;

/// Reference points in dlib's normalised mean face: image-left eye, image-right eye, nose
/// tip, mouth centre.
const MEAN_FACE: [(f64, f64); 4] = [
    // (0.1205750620789 + 0.3340850613712) / 2, (0.2137274526848 + 0.2290642403242) / 2
    (0.227_330_061_725, 0.221_395_851_504_5),
    // (0.8595674595992 + 0.6460604764104) / 2, (0.2134981538014 + 0.2289674387677) / 2
    (0.752_813_968_004_8, 0.221_232_796_284_55),
    // mean-face point 30
    (0.490_127, 0.515_625),
    // mean of mean-face points 62 and 66
    (0.490_127, 0.804_992_5),
];

/// Weights of the four points in the fit (the nose tip moves most with head turns).
const WEIGHTS: [f64; 4] = [1.0, 1.0, 0.5, 1.0];

/// A similarity transform `p' = [a -b; b a] p + [tx ty]` from chip to image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    a: f64,
    b: f64,
    tx: f64,
    ty: f64,
}

impl Similarity {
    /// The identity.
    pub const IDENTITY: Self = Self {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// The linear part `(a, b)` of `[a -b; b a]`.
    pub fn linear(&self) -> (f64, f64) {
        (self.a, self.b)
    }

    /// Map a chip pixel to image coordinates.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        )
    }

    /// The mapping dlib's `extract_image_chip` actually samples with for a chip whose
    /// `chip_details` were built from this transform: the chip's corner pixels (0 and 149)
    /// land on the corners of a `150 * scale` square centred on `self(75, 75)`, i.e. the
    /// transform is stretched by 150/149 about the chip centre.
    fn dlib_sampling(self) -> Self {
        let n = CHIP_SIZE as f64;
        let k = n / (n - 1.0);
        let (cx, cy) = self.apply(n / 2.0, n / 2.0);
        let (a, b) = (self.a * k, self.b * k);
        let m = (n - 1.0) / 2.0;
        Self {
            a,
            b,
            tx: cx - (a * m - b * m),
            ty: cy - (b * m + a * m),
        }
    }

    /// Image pixels per chip pixel.
    pub fn scale(&self) -> f64 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// Weighted least-squares similarity transform taking `from[i]` to `to[i]`.
pub(super) fn fit(from: &[(f64, f64)], to: &[(f64, f64)], w: &[f64]) -> Option<Similarity> {
    let sw: f64 = w.iter().sum();
    let mean = |p: &[(f64, f64)]| {
        let (mut x, mut y) = (0.0, 0.0);
        for (q, wi) in p.iter().zip(w) {
            x += q.0 * wi;
            y += q.1 * wi;
        }
        (x / sw, y / sw)
    };
    let (fx, fy) = mean(from);
    let (tx, ty) = mean(to);
    let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
    for ((f, t), wi) in from.iter().zip(to).zip(w) {
        let (ux, uy) = (f.0 - fx, f.1 - fy);
        let (vx, vy) = (t.0 - tx, t.1 - ty);
        num_a += wi * (ux * vx + uy * vy);
        num_b += wi * (ux * vy - uy * vx);
        den += wi * (ux * ux + uy * uy);
    }
    if den <= f64::EPSILON {
        return None;
    }
    let (a, b) = (num_a / den, num_b / den);
    Some(Similarity {
        a,
        b,
        tx: tx - (a * fx - b * fy),
        ty: ty - (b * fx + a * fy),
    })
}

/// The chip-to-image transform for BlazeFace keypoints (image pixels): right eye, left eye
/// (the subject's; image left and image right), nose tip, mouth centre.
pub fn chip_transform(keypoints: &[(f32, f32); 4]) -> Option<Similarity> {
    let size = CHIP_SIZE as f64;
    let from: Vec<(f64, f64)> = MEAN_FACE
        .iter()
        .map(|&(x, y)| {
            (
                (PADDING + x) / (2.0 * PADDING + 1.0) * size,
                (PADDING + y) / (2.0 * PADDING + 1.0) * size,
            )
        })
        .collect();
    let to: Vec<(f64, f64)> = keypoints
        .iter()
        .map(|&(x, y)| (f64::from(x), f64::from(y)))
        .collect();
    fit(&from, &to, &WEIGHTS).map(Similarity::dlib_sampling)
}

/// dlib's 5-point chip template (`get_face_chip_details`): image-right eye outer and inner
/// corner, image-left eye outer and inner corner, nose bottom, normalised to the face.
const DLIB_5PT: [(f64, f64); 5] = [
    (0.859_567_459_599_2, 0.213_498_153_801_4),
    (0.646_060_476_410_4, 0.228_967_438_767_7),
    (0.120_575_062_078_9, 0.213_727_452_684_8),
    (0.334_085_061_371_2, 0.229_064_240_324_2),
    (0.490_112_313_567_9, 0.627_797_531_647_5),
];

/// The chip-to-image transform for dlib's 5 landmarks (image pixels), exactly as dlib's
/// `get_face_chip_details(shape, 150, 0.25)`.
pub fn chip_transform_5pt(parts: &[(f64, f64)]) -> Option<Similarity> {
    if parts.len() != 5 {
        return None;
    }
    let size = CHIP_SIZE as f64;
    let from: Vec<(f64, f64)> = DLIB_5PT
        .iter()
        .map(|&(x, y)| {
            (
                (PADDING + x) / (2.0 * PADDING + 1.0) * size,
                (PADDING + y) / (2.0 * PADDING + 1.0) * size,
            )
        })
        .collect();
    fit(&from, parts, &[1.0; 5]).map(Similarity::dlib_sampling)
}

/// Sample the 150x150 chip from a packed RGB24 image. Bilinear; when the chip is smaller than
/// the face in the image, each chip pixel averages an n x n grid of bilinear samples
/// (n = ceil(scale)) so that downscaling does not alias. Pixels outside the image are black,
/// as in dlib.
pub fn extract_chip(rgb: &[u8], width: u32, height: u32, t: &Similarity) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let n = t.scale().ceil().clamp(1.0, 8.0) as usize;
    let mut out = vec![0u8; CHIP_SIZE * CHIP_SIZE * 3];
    let sample = |x: f64, y: f64| -> [f64; 3] {
        if x < 0.0 || y < 0.0 || x > (w - 1) as f64 || y > (h - 1) as f64 {
            return [0.0; 3];
        }
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let px = |xx: usize, yy: usize, c: usize| f64::from(rgb[(yy * w + xx) * 3 + c]);
        let mut v = [0.0; 3];
        for (c, vc) in v.iter_mut().enumerate() {
            let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
            let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
            *vc = top * (1.0 - fy) + bottom * fy;
        }
        v
    };
    if w == 0 || h == 0 || rgb.len() < w * h * 3 {
        return out;
    }
    for cy in 0..CHIP_SIZE {
        for cx in 0..CHIP_SIZE {
            let mut acc = [0.0; 3];
            for sy in 0..n {
                for sx in 0..n {
                    let ox = (sx as f64 + 0.5) / n as f64 - 0.5;
                    let oy = (sy as f64 + 0.5) / n as f64 - 0.5;
                    let (x, y) = t.apply(cx as f64 + ox, cy as f64 + oy);
                    let s = sample(x, y);
                    for c in 0..3 {
                        acc[c] += s[c];
                    }
                }
            }
            let o = (cy * CHIP_SIZE + cx) * 3;
            for c in 0..3 {
                out[o + c] = (acc[c] / (n * n) as f64).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_similarity() {
        let t = Similarity {
            a: 1.5,
            b: 0.3,
            tx: 10.0,
            ty: -4.0,
        };
        let from = [(0.0, 0.0), (10.0, 0.0), (3.0, 7.0)];
        let to: Vec<_> = from.iter().map(|&(x, y)| t.apply(x, y)).collect();
        let got = fit(&from, &to, &[1.0, 1.0, 1.0]).unwrap();
        assert!((got.a - 1.5).abs() < 1e-9 && (got.b - 0.3).abs() < 1e-9);
        assert!((got.tx - 10.0).abs() < 1e-9 && (got.ty + 4.0).abs() < 1e-9);
    }
}
