//! Model input from a frame: a region of packed RGB24 resampled to planar RGB `f32` (0..255),
//! shared by the stages whose models take `[N, 3, H, W]` RGB (visual tags, objects).

use heimdex_core::extractor::FrameRef;

/// A rectangle of a frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Region {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Resample `region` of `frame` to `out_w`x`out_h` with a triangle filter (antialiased when
/// shrinking, as PIL's bilinear resize) and append it to `out` as three planes R, G, B.
/// Separable: a vertical pass over the region's columns, then a horizontal one written
/// straight into the planes. Errors name the frame when its buffer or the region is wrong.
pub(crate) fn planar_rgb(
    frame: &FrameRef<'_>,
    region: Region,
    out_w: u32,
    out_h: u32,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    if w == 0 || h == 0 || frame.rgb.len() != w * h * 3 {
        return Err(format!(
            "frame of shot {} has {} bytes, not {w}x{h}x3",
            frame.shot_index,
            frame.rgb.len()
        ));
    }
    let (x0, y0, rw, rh) = (
        region.x as usize,
        region.y as usize,
        region.w as usize,
        region.h as usize,
    );
    if rw == 0 || rh == 0 || x0 + rw > w || y0 + rh > h {
        return Err(format!(
            "region {region:?} outside the {w}x{h} frame of shot {}",
            frame.shot_index
        ));
    }
    let (ow, oh) = (out_w as usize, out_h as usize);
    let (taps_y, taps_x) = (triangle_taps(rh, oh), triangle_taps(rw, ow));
    // Vertical pass over the region's columns: `oh` rows of `rw` RGB pixels.
    let mut rows = vec![0f32; oh * rw * 3];
    for (row, (first, weights)) in rows.chunks_exact_mut(rw * 3).zip(&taps_y) {
        for (k, &wt) in weights.iter().enumerate() {
            let y = y0 + first + k;
            let src = &frame.rgb[(y * w + x0) * 3..(y * w + x0 + rw) * 3];
            for (acc, &v) in row.iter_mut().zip(src) {
                *acc += wt * f32::from(v);
            }
        }
    }
    // Horizontal pass, written straight into the three planes.
    let plane = ow * oh;
    let base = out.len();
    out.resize(base + 3 * plane, 0.0);
    let (r, rest) = out[base..].split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (y, row) in rows.chunks_exact(rw * 3).enumerate() {
        for (x, (first, weights)) in taps_x.iter().enumerate() {
            let mut acc = [0f32; 3];
            for (px, &wt) in row[first * 3..].chunks_exact(3).zip(weights) {
                acc[0] += wt * px[0];
                acc[1] += wt * px[1];
                acc[2] += wt * px[2];
            }
            let i = y * ow + x;
            (r[i], g[i], b[i]) = (acc[0], acc[1], acc[2]);
        }
    }
    Ok(())
}

/// Resampling `src` samples to `dst` with a triangle filter whose radius is one output pixel
/// (in source pixels: `max(1, src/dst)`), as PIL's antialiased bilinear resize does: for each
/// output sample, the first source index and the normalised weights from there on.
fn triangle_taps(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f64 / dst as f64;
    let radius = scale.max(1.0);
    (0..dst)
        .map(|i| {
            let centre = (i as f64 + 0.5) * scale;
            let first = (centre - radius).floor().max(0.0) as usize;
            let end = ((centre + radius).ceil() as usize).min(src);
            let weights: Vec<f64> = (first..end)
                .map(|j| (1.0 - ((j as f64 + 0.5 - centre) / radius).abs()).max(0.0))
                .collect();
            let sum: f64 = weights.iter().sum();
            (first, weights.iter().map(|v| (v / sum) as f32).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretched_region_keeps_its_colours_where_they_were() {
        // 4x2: left half red, right half blue; stretched to 2x4.
        let mut rgb = Vec::new();
        for _ in 0..2 {
            for x in 0..4 {
                rgb.extend(if x < 2 { [255, 0, 0] } else { [0, 0, 255] });
            }
        }
        let frame = FrameRef {
            shot_index: 0,
            time_s: 0.0,
            width: 4,
            height: 2,
            rgb: &rgb,
        };
        let all = Region {
            x: 0,
            y: 0,
            w: 4,
            h: 2,
        };
        let mut out = Vec::new();
        planar_rgb(&frame, all, 2, 4, &mut out).expect("resample");
        assert_eq!(out.len(), 3 * 8);
        let (r, g, b) = (&out[..8], &out[8..16], &out[16..]);
        // Shrinking 4 -> 2 columns averages across the edge (antialiasing), but each side
        // keeps its colour; stretching 2 -> 4 rows repeats identical rows; nothing is green.
        for y in 0..4 {
            assert!(r[y * 2] > 200.0 && b[y * 2] < 55.0, "{out:?}");
            assert!(b[y * 2 + 1] > 200.0 && r[y * 2 + 1] < 55.0, "{out:?}");
            assert_eq!((r[y * 2], b[y * 2 + 1]), (r[0], b[1]));
        }
        assert!(g.iter().all(|v| v.abs() < 1e-3));
        let outside = Region { x: 3, ..all };
        assert!(planar_rgb(&frame, outside, 2, 2, &mut out).is_err());
    }
}
