//! DB (Differentiable Binarization) text detection: input sizing and the post-processing of
//! the probability map into text boxes, following PaddleOCR's `DBPostProcess` (as shipped in
//! RapidOCR) without OpenCV: threshold → 2×2 dilation → 8-connected components (in place of
//! `findContours`) → minimum-area rectangle of each component's convex hull → box score →
//! unclip → rescale to the source image.

use super::{DetResize, Quad};

/// Post-processing settings (PaddleOCR / RapidOCR defaults in brackets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DbParams {
    /// Pixel threshold on the probability map [0.3].
    pub thresh: f32,
    /// Minimum mean probability inside a box [0.5].
    pub box_thresh: f32,
    /// Unclip (expansion) ratio [1.6].
    pub unclip_ratio: f32,
    /// At most this many components are considered [1000].
    pub max_candidates: usize,
}

/// Smallest accepted short side of a box on the probability map, before unclipping
/// (PaddleOCR's `min_size`); after unclipping it must be at least `MIN_SIZE + 2`.
const MIN_SIZE: f32 = 3.0;

/// The detector's input size for a `w`×`h` image: scaled per `resize`, then each side
/// rounded to a multiple of 32 (at least 32).
pub(crate) fn input_size(w: usize, h: usize, resize: DetResize) -> (usize, usize) {
    let (w_f, h_f) = (w as f64, h as f64);
    let ratio = match resize {
        DetResize::MaxSide(limit) => {
            let m = w_f.max(h_f);
            if m > f64::from(limit) {
                f64::from(limit) / m
            } else {
                1.0
            }
        }
        DetResize::MinSide(limit) => {
            let m = w_f.min(h_f);
            if m < f64::from(limit) {
                f64::from(limit) / m
            } else {
                1.0
            }
        }
    };
    // Python's round() (ties to even), as in PaddleOCR.
    let round32 = |v: f64| (((v * ratio).floor() / 32.0).round_ties_even() as usize * 32).max(32);
    (round32(w_f), round32(h_f))
}

type Pt = [f32; 2];

/// A rotated rectangle: centre, unit axis `u` (the `w` side), extents `w` and `h`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RotRect {
    c: Pt,
    u: Pt,
    w: f32,
    h: f32,
}

impl RotRect {
    fn corners(&self) -> [Pt; 4] {
        let n = [-self.u[1], self.u[0]];
        let (a, b) = (self.w / 2.0, self.h / 2.0);
        let p = |su: f32, sn: f32| {
            [
                self.c[0] + su * a * self.u[0] + sn * b * n[0],
                self.c[1] + su * a * self.u[1] + sn * b * n[1],
            ]
        };
        [p(-1.0, -1.0), p(1.0, -1.0), p(1.0, 1.0), p(-1.0, 1.0)]
    }
}

fn cross(o: Pt, a: Pt, b: Pt) -> f32 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Convex hull (Andrew's monotone chain), counter-clockwise in a y-up frame, without
/// collinear points.
fn convex_hull(mut pts: Vec<Pt>) -> Vec<Pt> {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut hull: Vec<Pt> = Vec::with_capacity(pts.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &Pt>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// Minimum-area enclosing rectangle of a convex hull (rotating calipers over hull edges).
fn min_area_rect(hull: &[Pt]) -> RotRect {
    let mut best: Option<(f32, RotRect)> = None;
    let n = hull.len();
    let edges = if n < 2 { 1 } else { n };
    for i in 0..edges {
        let u = if n < 2 {
            [1.0, 0.0]
        } else {
            let (a, b) = (hull[i], hull[(i + 1) % n]);
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let len = (dx * dx + dy * dy).sqrt();
            if len == 0.0 {
                continue;
            }
            [dx / len, dy / len]
        };
        let nrm = [-u[1], u[0]];
        let (mut u0, mut u1, mut n0, mut n1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in hull {
            let pu = p[0] * u[0] + p[1] * u[1];
            let pn = p[0] * nrm[0] + p[1] * nrm[1];
            u0 = u0.min(pu);
            u1 = u1.max(pu);
            n0 = n0.min(pn);
            n1 = n1.max(pn);
        }
        let area = (u1 - u0) * (n1 - n0);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (cu, cn) = ((u0 + u1) / 2.0, (n0 + n1) / 2.0);
            let c = [cu * u[0] + cn * nrm[0], cu * u[1] + cn * nrm[1]];
            best = Some((
                area,
                RotRect {
                    c,
                    u,
                    w: u1 - u0,
                    h: n1 - n0,
                },
            ));
        }
    }
    best.map(|(_, r)| r).unwrap_or(RotRect {
        c: hull.first().copied().unwrap_or([0.0, 0.0]),
        u: [1.0, 0.0],
        w: 0.0,
        h: 0.0,
    })
}

/// Order four corners as top-left, top-right, bottom-right, bottom-left: the two left-most
/// points (by x) give top-left/bottom-left by y, the two right-most top-right/bottom-right.
fn order_corners(mut pts: [Pt; 4]) -> Quad {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (tl, bl) = if pts[1][1] > pts[0][1] {
        (pts[0], pts[1])
    } else {
        (pts[1], pts[0])
    };
    let (tr, br) = if pts[3][1] > pts[2][1] {
        (pts[2], pts[3])
    } else {
        (pts[3], pts[2])
    };
    [tl, tr, br, bl]
}

/// Mean of `prob` over the pixels inside the (convex) quad, within its bounding box
/// (PaddleOCR's `box_score_fast`).
fn box_score(prob: &[f32], pw: usize, ph: usize, quad: &Quad) -> f32 {
    let clampi = |v: f32, hi: usize| (v.max(0.0) as usize).min(hi - 1);
    let xmin = clampi(
        quad.iter().map(|p| p[0]).fold(f32::MAX, f32::min).floor(),
        pw,
    );
    let xmax = clampi(
        quad.iter().map(|p| p[0]).fold(f32::MIN, f32::max).ceil(),
        pw,
    );
    let ymin = clampi(
        quad.iter().map(|p| p[1]).fold(f32::MAX, f32::min).floor(),
        ph,
    );
    let ymax = clampi(
        quad.iter().map(|p| p[1]).fold(f32::MIN, f32::max).ceil(),
        ph,
    );
    // OpenCV fills the polygon with integer (truncated) vertices, boundary included.
    let q: Vec<Pt> = quad.iter().map(|p| [p[0].trunc(), p[1].trunc()]).collect();
    let orient: f32 = (0..4)
        .map(|i| cross(q[i], q[(i + 1) % 4], q[(i + 2) % 4]))
        .sum();
    let sign = if orient < 0.0 { -1.0 } else { 1.0 };
    let (mut sum, mut count) = (0.0f64, 0usize);
    for y in ymin..=ymax {
        for x in xmin..=xmax {
            let p = [x as f32, y as f32];
            let inside = (0..4).all(|i| sign * cross(q[i], q[(i + 1) % 4], p) >= -1e-3);
            if inside {
                sum += f64::from(prob[y * pw + x]);
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

/// Text boxes from the detector's probability map (`pw`×`ph`, values in 0..=1), in the
/// coordinates of the `src_w`×`src_h` source image, sorted top-to-bottom, left-to-right.
pub(crate) fn boxes_from_prob(
    prob: &[f32],
    pw: usize,
    ph: usize,
    src_w: usize,
    src_h: usize,
    params: &DbParams,
) -> Vec<Quad> {
    if pw == 0 || ph == 0 || prob.len() < pw * ph {
        return Vec::new();
    }
    // Threshold, then dilate with a 2×2 kernel (OpenCV anchor (1,1): max over x-1..=x, y-1..=y).
    let bin: Vec<bool> = prob[..pw * ph].iter().map(|&v| v > params.thresh).collect();
    let mut mask = vec![false; pw * ph];
    for y in 0..ph {
        for x in 0..pw {
            let y0 = y.saturating_sub(1);
            let x0 = x.saturating_sub(1);
            mask[y * pw + x] = (y0..=y).any(|yy| (x0..=x).any(|xx| bin[yy * pw + xx]));
        }
    }

    let mut seen = vec![false; pw * ph];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut candidates = 0usize;
    for start in 0..pw * ph {
        if !mask[start] || seen[start] {
            continue;
        }
        if candidates >= params.max_candidates {
            break;
        }
        candidates += 1;
        // Flood fill one 8-connected component, keeping each row's left-most and right-most
        // pixel (enough for the convex hull).
        let mut rows: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % pw, i / pw);
            let e = rows.entry(y).or_insert((x, x));
            e.0 = e.0.min(x);
            e.1 = e.1.max(x);
            for yy in y.saturating_sub(1)..=(y + 1).min(ph - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(pw - 1) {
                    let j = yy * pw + xx;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        let pts: Vec<Pt> = rows
            .iter()
            .flat_map(|(&y, &(x0, x1))| [[x0 as f32, y as f32], [x1 as f32, y as f32]])
            .collect();
        let rect = min_area_rect(&convex_hull(pts));
        if rect.w.min(rect.h) < MIN_SIZE {
            continue;
        }
        let quad = order_corners(rect.corners());
        if box_score(prob, pw, ph, &quad) < params.box_thresh {
            continue;
        }
        // Unclip: offset the rectangle outwards by area * ratio / perimeter. The offset of a
        // rectangle (round joins) has as minimum-area rectangle the rectangle grown by that
        // distance on every side.
        let d = rect.w * rect.h * params.unclip_ratio / (2.0 * (rect.w + rect.h));
        let grown = RotRect {
            w: rect.w + 2.0 * d,
            h: rect.h + 2.0 * d,
            ..rect
        };
        if grown.w.min(grown.h) < MIN_SIZE + 2.0 {
            continue;
        }
        let (sx, sy) = (src_w as f32 / pw as f32, src_h as f32 / ph as f32);
        let scaled = order_corners(grown.corners()).map(|p| {
            [
                (p[0] * sx).round().clamp(0.0, src_w as f32),
                (p[1] * sy).round().clamp(0.0, src_h as f32),
            ]
        });
        // PaddleOCR's filter_tag_det_res: reorder, clip into the image, drop tiny boxes.
        let clipped = order_corners(scaled).map(|p| {
            [
                p[0].clamp(0.0, (src_w.max(1) - 1) as f32).trunc(),
                p[1].clamp(0.0, (src_h.max(1) - 1) as f32).trunc(),
            ]
        });
        let rw = super::image_dist(clipped[0], clipped[1]) as usize;
        let rh = super::image_dist(clipped[0], clipped[3]) as usize;
        if rw <= 3 || rh <= 3 {
            continue;
        }
        out.push(clipped);
    }
    sort_reading_order(&mut out);
    out
}

/// PaddleOCR's `sorted_boxes`: by top-left (y, x), then boxes whose tops are within 10 px
/// are ordered left to right.
fn sort_reading_order(boxes: &mut [Quad]) {
    boxes.sort_by(|a, b| {
        a[0][1]
            .total_cmp(&b[0][1])
            .then(a[0][0].total_cmp(&b[0][0]))
    });
    for i in 0..boxes.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            if (boxes[j + 1][0][1] - boxes[j][0][1]).abs() < 10.0
                && boxes[j + 1][0][0] < boxes[j][0][0]
            {
                boxes.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_sizes_are_multiples_of_32() {
        assert_eq!(input_size(1280, 720, DetResize::MaxSide(960)), (960, 544));
        assert_eq!(input_size(1280, 720, DetResize::MinSide(736)), (1312, 736));
        assert_eq!(input_size(64, 36, DetResize::MaxSide(960)), (64, 32));
        assert_eq!(input_size(3, 2, DetResize::MaxSide(960)), (32, 32));
    }

    #[test]
    fn min_area_rect_of_a_rotated_rectangle() {
        // A 10×4 rectangle rotated by 30°.
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let pts: Vec<Pt> = [
            [-5.0f32, -2.0],
            [5.0, -2.0],
            [5.0, 2.0],
            [-5.0, 2.0],
            [0.0, 0.0],
        ]
        .iter()
        .map(|p| [50.0 + p[0] * c - p[1] * s, 40.0 + p[0] * s + p[1] * c])
        .collect();
        let r = min_area_rect(&convex_hull(pts));
        let (long, short) = (r.w.max(r.h), r.w.min(r.h));
        assert!(
            (long - 10.0).abs() < 1e-3 && (short - 4.0).abs() < 1e-3,
            "{r:?}"
        );
        assert!((r.c[0] - 50.0).abs() < 1e-3 && (r.c[1] - 40.0).abs() < 1e-3);
    }

    #[test]
    fn a_filled_block_becomes_one_unclipped_box() {
        let (pw, ph) = (64usize, 32usize);
        let mut prob = vec![0.0f32; pw * ph];
        for y in 10..20 {
            for x in 8..48 {
                prob[y * pw + x] = 0.9;
            }
        }
        let params = DbParams {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
        };
        let boxes = boxes_from_prob(&prob, pw, ph, 128, 64, &params);
        assert_eq!(boxes.len(), 1, "{boxes:?}");
        let [tl, tr, br, bl] = boxes[0];
        // The box covers the block (x 16..96, y 20..40 at 2× scale) and grows outwards.
        assert!(
            tl[0] < 16.0 && tl[1] < 20.0 && br[0] > 94.0 && br[1] > 38.0,
            "{boxes:?}"
        );
        assert_eq!(tl[1], tr[1]);
        assert_eq!(bl[0], tl[0]);
    }

    #[test]
    fn empty_map_has_no_boxes() {
        let params = DbParams {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
        };
        assert!(boxes_from_prob(&[0.1; 32 * 32], 32, 32, 32, 32, &params).is_empty());
    }
}
