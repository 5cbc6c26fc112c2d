//! Pixel helpers for OCR: OpenCV-compatible bilinear resizing straight into the normalised
//! BGR planes the PaddleOCR models expect, and cropping a (rotated) text box.

use super::Quad;

/// A borrowed packed RGB24 image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RgbView<'a> {
    pub w: usize,
    pub h: usize,
    pub data: &'a [u8],
}

/// An owned packed RGB24 image.
#[derive(Debug, Clone)]
pub(crate) struct RgbBuf {
    pub w: usize,
    pub h: usize,
    pub data: Vec<u8>,
}

impl RgbBuf {
    pub(crate) fn view(&self) -> RgbView<'_> {
        RgbView {
            w: self.w,
            h: self.h,
            data: &self.data,
        }
    }
}

/// Source index and weight of the right/lower neighbour for each destination coordinate,
/// following OpenCV's `INTER_LINEAR` convention (pixel centres aligned, edges clamped).
fn linear_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = (d as f64 + 0.5) * scale - 0.5;
            let mut i = f.floor();
            let mut t = f - i;
            if i < 0.0 {
                i = 0.0;
                t = 0.0;
            }
            let i = i as usize;
            if i + 1 >= src {
                (src - 1, src - 1, 0.0)
            } else {
                (i, i + 1, t as f32)
            }
        })
        .collect()
}

/// Resize `src` to `dw`×`dh` (bilinear) and write it as three normalised planes in **BGR**
/// order (`v / 127.5 - 1`, i.e. PaddleOCR's mean 0.5 / std 0.5 on `v / 255`) into `out`,
/// which holds three planes of `plane_w`×`dh` floats; columns `dw..plane_w` are left as they
/// are (the caller zero-pads).
pub(crate) fn resize_into_bgr_planes(
    src: RgbView<'_>,
    dw: usize,
    dh: usize,
    out: &mut [f32],
    plane_w: usize,
) {
    debug_assert!(dw <= plane_w && out.len() >= 3 * plane_w * dh);
    if src.w == 0 || src.h == 0 || dw == 0 || dh == 0 {
        return;
    }
    let xs = linear_taps(src.w, dw);
    let ys = linear_taps(src.h, dh);
    let plane = plane_w * dh;
    let stride = src.w * 3;
    for (dy, &(y0, y1, ty)) in ys.iter().enumerate() {
        let r0 = &src.data[y0 * stride..(y0 + 1) * stride];
        let r1 = &src.data[y1 * stride..(y1 + 1) * stride];
        for (dx, &(x0, x1, tx)) in xs.iter().enumerate() {
            let o = dy * plane_w + dx;
            for c in 0..3 {
                let a = f32::from(r0[x0 * 3 + c]);
                let b = f32::from(r0[x1 * 3 + c]);
                let p = f32::from(r1[x0 * 3 + c]);
                let q = f32::from(r1[x1 * 3 + c]);
                let top = a + (b - a) * tx;
                let bottom = p + (q - p) * tx;
                let v = top + (bottom - top) * ty;
                // RGB channel c goes to BGR plane 2 - c.
                out[(2 - c) * plane + o] = v / 127.5 - 1.0;
            }
        }
    }
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Sample one RGB pixel at a fractional position (bilinear, edges replicated).
fn sample(src: RgbView<'_>, x: f32, y: f32, out: &mut [u8]) {
    let x = x.clamp(0.0, (src.w - 1) as f32);
    let y = y.clamp(0.0, (src.h - 1) as f32);
    let x0 = x.floor() as usize;
    let y0 = y.floor() as usize;
    let x1 = (x0 + 1).min(src.w - 1);
    let y1 = (y0 + 1).min(src.h - 1);
    let tx = x - x0 as f32;
    let ty = y - y0 as f32;
    let px = |xx: usize, yy: usize, c: usize| f32::from(src.data[(yy * src.w + xx) * 3 + c]);
    for (c, o) in out.iter_mut().enumerate().take(3) {
        let top = px(x0, y0, c) + (px(x1, y0, c) - px(x0, y0, c)) * tx;
        let bottom = px(x0, y1, c) + (px(x1, y1, c) - px(x0, y1, c)) * tx;
        *o = (top + (bottom - top) * ty).round().clamp(0.0, 255.0) as u8;
    }
}

/// Cut the text box `quad` (top-left, top-right, bottom-right, bottom-left) out of `src` as
/// an upright image, like PaddleOCR's `get_rotate_crop_image`: the output is as wide as the
/// longer top/bottom edge and as tall as the longer left/right edge; a box at least 1.5×
/// taller than wide is rotated 90° counter-clockwise (vertical text). Returns `None` for a
/// degenerate box.
pub(crate) fn crop_quad(src: RgbView<'_>, quad: &Quad) -> Option<RgbBuf> {
    let [tl, tr, br, bl] = *quad;
    let w = dist(tl, tr).max(dist(br, bl)) as usize;
    let h = dist(tl, bl).max(dist(tr, br)) as usize;
    if w == 0 || h == 0 || src.w == 0 || src.h == 0 {
        return None;
    }
    let mut data = vec![0u8; w * h * 3];
    for y in 0..h {
        let t = y as f32 / h as f32;
        for x in 0..w {
            let s = x as f32 / w as f32;
            // Bilinear interpolation of the corners (exact for rectangles and parallelograms).
            let px = (1.0 - s) * (1.0 - t) * tl[0]
                + s * (1.0 - t) * tr[0]
                + s * t * br[0]
                + (1.0 - s) * t * bl[0];
            let py = (1.0 - s) * (1.0 - t) * tl[1]
                + s * (1.0 - t) * tr[1]
                + s * t * br[1]
                + (1.0 - s) * t * bl[1];
            let o = (y * w + x) * 3;
            sample(src, px, py, &mut data[o..o + 3]);
        }
    }
    let crop = RgbBuf { w, h, data };
    if h as f32 >= 1.5 * w as f32 {
        Some(rot90_ccw(&crop))
    } else {
        Some(crop)
    }
}

/// Rotate 90° counter-clockwise (numpy's `rot90`).
fn rot90_ccw(img: &RgbBuf) -> RgbBuf {
    let (w, h) = (img.h, img.w);
    let mut data = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            // new[y][x] = old[x][old_w - 1 - y]
            let s = (x * img.w + (img.w - 1 - y)) * 3;
            let d = (y * w + x) * 3;
            data[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    RgbBuf { w, h, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_identity_keeps_pixels_and_swaps_to_bgr() {
        let data = [255u8, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
        let src = RgbView {
            w: 2,
            h: 2,
            data: &data,
        };
        let mut out = vec![9.0f32; 3 * 3 * 2];
        resize_into_bgr_planes(src, 2, 2, &mut out, 3);
        // Plane 2 (R) at (0,0) is 1.0; plane 0 (B) at (0,0) is -1.0; the padding column is untouched.
        assert_eq!(out[2 * 6], 1.0);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[2], 9.0);
        // Blue pixel (0,1) lands in the B plane.
        assert_eq!(out[3], 1.0);
    }

    #[test]
    fn crop_of_axis_aligned_box_copies_the_region() {
        let (w, h) = (8usize, 6usize);
        let data: Vec<u8> = (0..w * h)
            .flat_map(|i| [(i % w) as u8 * 10, (i / w) as u8 * 10, 7])
            .collect();
        let src = RgbView { w, h, data: &data };
        let c = crop_quad(src, &[[2.0, 1.0], [6.0, 1.0], [6.0, 3.0], [2.0, 3.0]]).unwrap();
        assert_eq!((c.w, c.h), (4, 2));
        assert_eq!(&c.data[0..3], &[20, 10, 7]);
        assert_eq!(&c.data[(c.w + 3) * 3..(c.w + 3) * 3 + 3], &[50, 20, 7]);
    }

    #[test]
    fn tall_crops_are_rotated() {
        let data = vec![0u8; 10 * 10 * 3];
        let src = RgbView {
            w: 10,
            h: 10,
            data: &data,
        };
        let c = crop_quad(src, &[[1.0, 0.0], [3.0, 0.0], [3.0, 8.0], [1.0, 8.0]]).unwrap();
        assert_eq!((c.w, c.h), (8, 2));
    }
}
