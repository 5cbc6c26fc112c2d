//! Content-based hard-cut detection (PySceneDetect `ContentDetector` style).

/// One downscaled frame in HSV, OpenCV convention: H in [0, 180), S and V in [0, 255].
#[derive(Debug, Clone, Default)]
pub(crate) struct Hsv {
    pub h: Vec<u8>,
    pub s: Vec<u8>,
    pub v: Vec<u8>,
}

impl Hsv {
    /// Convert tightly packed RGB24 pixels, re-using this value's buffers.
    pub(crate) fn fill_from_rgb(&mut self, rgb: &[u8]) {
        let n = rgb.len() / 3;
        self.h.clear();
        self.s.clear();
        self.v.clear();
        self.h.reserve(n);
        self.s.reserve(n);
        self.v.reserve(n);
        for px in rgb.chunks_exact(3) {
            let (h, s, v) = rgb_to_hsv(px[0], px[1], px[2]);
            self.h.push(h);
            self.s.push(s);
            self.v.push(v);
        }
    }
}

/// RGB to HSV with OpenCV's 8-bit scaling (H is degrees / 2).
pub(crate) fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (rf, gf, bf) = (f32::from(r), f32::from(g), f32::from(b));
    let max = rf.max(gf).max(bf);
    let min = rf.min(gf).min(bf);
    let delta = max - min;
    let s = if max > 0.0 { delta * 255.0 / max } else { 0.0 };
    let mut h = if delta <= 0.0 {
        0.0
    } else if max == rf {
        60.0 * (gf - bf) / delta
    } else if max == gf {
        120.0 + 60.0 * (bf - rf) / delta
    } else {
        240.0 + 60.0 * (rf - gf) / delta
    };
    if h < 0.0 {
        h += 360.0;
    }
    // Values are within [0, 255] by construction; `as` saturates anyway.
    (
        (h / 2.0).round().min(179.0) as u8,
        s.round() as u8,
        max as u8,
    )
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len() as f64
}

/// The content score between two frames: the mean of the per-channel mean absolute
/// differences of H, S and V (0..=255 scale; hue is not treated as circular, like PySceneDetect).
pub(crate) fn content_score(a: &Hsv, b: &Hsv) -> f64 {
    (mean_abs_diff(&a.h, &b.h) + mean_abs_diff(&a.s, &b.s) + mean_abs_diff(&a.v, &b.v)) / 3.0
}

/// Streaming cut detector: feed frames in presentation order, get back whether each one starts
/// a new shot.
#[derive(Debug)]
pub(crate) struct CutDetector {
    threshold: f64,
    min_shot_frames: u64,
    prev: Option<Hsv>,
    spare: Hsv,
    last_cut: u64,
    /// Score of the last frame pushed (for diagnostics).
    pub last_score: f64,
}

impl CutDetector {
    pub(crate) fn new(threshold: f64, min_shot_frames: u32) -> Self {
        Self {
            threshold,
            min_shot_frames: u64::from(min_shot_frames.max(1)),
            prev: None,
            spare: Hsv::default(),
            last_cut: 0,
            last_score: 0.0,
        }
    }

    /// Push frame number `index` (tightly packed RGB24 at analysis size). Returns `true` when
    /// it is the first frame of a new shot (never for frame 0, which always starts shot 0).
    pub(crate) fn push(&mut self, index: u64, rgb: &[u8]) -> bool {
        let mut cur = std::mem::take(&mut self.spare);
        cur.fill_from_rgb(rgb);
        let cut = match &self.prev {
            Some(prev) if prev.h.len() == cur.h.len() => {
                self.last_score = content_score(prev, &cur);
                self.last_score >= self.threshold && index - self.last_cut >= self.min_shot_frames
            }
            // Resolution changed mid-stream: treat as a cut when allowed.
            Some(_) => {
                self.last_score = 255.0;
                index - self.last_cut >= self.min_shot_frames
            }
            None => {
                self.last_score = 0.0;
                false
            }
        };
        if cut {
            self.last_cut = index;
        }
        if let Some(old) = self.prev.replace(cur) {
            self.spare = old;
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(r: u8, g: u8, b: u8, n: usize) -> Vec<u8> {
        std::iter::repeat_n([r, g, b], n).flatten().collect()
    }

    #[test]
    fn hsv_matches_opencv_convention() {
        assert_eq!(rgb_to_hsv(255, 0, 0), (0, 255, 255));
        assert_eq!(rgb_to_hsv(0, 255, 0), (60, 255, 255));
        assert_eq!(rgb_to_hsv(0, 0, 255), (120, 255, 255));
        assert_eq!(rgb_to_hsv(128, 128, 128), (0, 0, 128));
    }

    #[test]
    fn detects_hard_cut_and_respects_min_len() {
        let mut d = CutDetector::new(27.0, 5);
        let red = solid(255, 0, 0, 64);
        let blue = solid(0, 0, 255, 64);
        assert!(!d.push(0, &red));
        assert!(!d.push(1, &red));
        assert!(!d.push(2, &blue), "too soon after the start");
        for i in 3..8 {
            assert!(!d.push(i, &blue));
        }
        assert!(d.push(8, &red));
    }
}
