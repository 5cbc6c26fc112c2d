//! Keyframe post-processing: thumbnails and cheap pixel descriptors.

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, RgbImage, imageops};

use crate::PipelineError;
use crate::shots::rgb_to_hsv;

/// Resize (never upscale) tightly packed RGB24 to at most `max_width` wide, then JPEG-encode.
/// Returns `(jpeg, width, height, thumbnail_pixels)`.
pub(crate) fn thumbnail(
    rgb: &[u8],
    width: u32,
    height: u32,
    max_width: u32,
    quality: u8,
) -> Result<(Vec<u8>, u32, u32, RgbImage), PipelineError> {
    let img = RgbImage::from_raw(width, height, rgb.to_vec()).ok_or_else(|| {
        PipelineError::Thumbnail {
            reason: format!("pixel buffer does not match {width}x{height}"),
        }
    })?;
    let max_width = max_width.max(1);
    let img = if width > max_width {
        let h = ((u64::from(height) * u64::from(max_width) + u64::from(width) / 2)
            / u64::from(width))
        .max(1);
        let h = u32::try_from(h).unwrap_or(1);
        imageops::resize(&img, max_width, h, imageops::FilterType::Triangle)
    } else {
        img
    };
    let (tw, th) = img.dimensions();
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, quality.clamp(1, 100))
        .encode(img.as_raw(), tw, th, ExtendedColorType::Rgb8)
        .map_err(|e| PipelineError::Thumbnail {
            reason: e.to_string(),
        })?;
    Ok((jpeg, tw, th, img))
}

/// Colour names by hue (degrees), for saturated, not-too-dark pixels.
fn hue_name(deg: f32) -> &'static str {
    match deg {
        d if !(15.0..345.0).contains(&d) => "red",
        d if d < 40.0 => "orange",
        d if d < 70.0 => "yellow",
        d if d < 165.0 => "green",
        d if d < 195.0 => "cyan",
        d if d < 260.0 => "blue",
        d if d < 290.0 => "purple",
        _ => "pink",
    }
}

/// Cheap, deterministic descriptors of an RGB image:
///
/// * brightness: `dark` (mean V < 25 %) or `bright` (mean V > 70 %);
/// * saturation: `colorful` (mean S > 45 %), `muted` (mean S < 15 %); `grayscale` when
///   almost no pixel has any colour;
/// * up to three dominant colour names (`red`, `orange`, `yellow`, `green`, `cyan`, `blue`,
///   `purple`, `pink`, `white`, `gray`, `black`), each covering at least 20 % of the pixels,
///   most common first.
pub(crate) fn descriptors(img: &RgbImage) -> Vec<String> {
    let n = (img.width() as usize) * (img.height() as usize);
    if n == 0 {
        return Vec::new();
    }
    let mut sum_v = 0u64;
    let mut sum_s = 0u64;
    let mut colored = 0usize;
    let names = [
        "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "white", "gray",
        "black",
    ];
    let mut counts = [0usize; 11];
    for px in img.pixels() {
        let [r, g, b] = px.0;
        let (h, s, v) = rgb_to_hsv(r, g, b);
        sum_v += u64::from(v);
        sum_s += u64::from(s);
        let name = if v < 50 {
            "black"
        } else if s < 40 {
            if v > 200 { "white" } else { "gray" }
        } else {
            colored += 1;
            hue_name(f32::from(h) * 2.0)
        };
        if let Some(i) = names.iter().position(|x| *x == name) {
            counts[i] += 1;
        }
    }
    let mean_v = sum_v as f64 / n as f64 / 255.0;
    let mean_s = sum_s as f64 / n as f64 / 255.0;
    let mut out = Vec::new();
    if mean_v < 0.25 {
        out.push("dark".to_owned());
    } else if mean_v > 0.70 {
        out.push("bright".to_owned());
    }
    if (colored as f64) < 0.02 * n as f64 {
        out.push("grayscale".to_owned());
    } else if mean_s > 0.45 {
        out.push("colorful".to_owned());
    } else if mean_s < 0.15 {
        out.push("muted".to_owned());
    }
    let mut ranked: Vec<(usize, &str)> = counts
        .iter()
        .copied()
        .zip(names)
        .filter(|(c, _)| *c * 5 >= n)
        .collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
    out.extend(ranked.into_iter().take(3).map(|(_, name)| name.to_owned()));
    out
}

/// Downscale a keyframe's RGB so its longest side is at most `max_side` (no-op if it
/// already fits).
pub(crate) fn shrink_to(rgb: &mut Vec<u8>, width: &mut u32, height: &mut u32, max_side: u32) {
    let longest = (*width).max(*height);
    let expected = *width as usize * *height as usize * 3;
    if longest <= max_side || longest == 0 || rgb.len() != expected {
        return;
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let w = ((f64::from(*width) * scale).round() as u32).max(1);
    let h = ((f64::from(*height) * scale).round() as u32).max(1);
    let Some(img) = image::RgbImage::from_raw(*width, *height, std::mem::take(rgb)) else {
        return;
    };
    let small = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
    *width = w;
    *height = h;
    *rgb = small.into_raw();
}

/// Turn tightly packed RGB24 `width`x`height` clockwise by `degrees` (0, 90, 180 or 270; any
/// other value leaves it as it is). Returns the pixels and their new size.
pub(crate) fn rotate(rgb: Vec<u8>, width: u32, height: u32, degrees: u32) -> (Vec<u8>, u32, u32) {
    if !matches!(degrees, 90 | 180 | 270) || rgb.len() != width as usize * height as usize * 3 {
        return (rgb, width, height);
    }
    let Some(img) = RgbImage::from_raw(width, height, rgb) else {
        return (Vec::new(), 0, 0);
    };
    let out = match degrees {
        90 => imageops::rotate90(&img),
        180 => imageops::rotate180(&img),
        _ => imageops::rotate270(&img),
    };
    let (w, h) = out.dimensions();
    (out.into_raw(), w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_turns_clockwise() {
        // 2x1: red, blue. Turned 90° clockwise it stands 1x2 with red on top.
        let rgb = vec![255, 0, 0, 0, 0, 255];
        let (r, w, h) = rotate(rgb.clone(), 2, 1, 90);
        assert_eq!((w, h), (1, 2));
        assert_eq!(r, vec![255, 0, 0, 0, 0, 255]);
        let (r, w, h) = rotate(rgb.clone(), 2, 1, 270);
        assert_eq!((w, h), (1, 2));
        assert_eq!(r, vec![0, 0, 255, 255, 0, 0]);
        let (r, _, _) = rotate(rgb.clone(), 2, 1, 180);
        assert_eq!(r, vec![0, 0, 255, 255, 0, 0]);
        assert_eq!(rotate(rgb.clone(), 2, 1, 0).0, rgb);
    }

    #[test]
    fn solid_red_is_red_and_colorful() {
        let img = RgbImage::from_pixel(16, 16, image::Rgb([230, 20, 20]));
        let d = descriptors(&img);
        assert!(d.contains(&"red".to_owned()), "{d:?}");
        assert!(d.contains(&"colorful".to_owned()), "{d:?}");
    }

    #[test]
    fn black_is_dark() {
        let img = RgbImage::from_pixel(8, 8, image::Rgb([5, 5, 5]));
        let d = descriptors(&img);
        assert_eq!(d, vec!["dark", "grayscale", "black"]);
    }

    #[test]
    fn thumbnail_is_bounded_jpeg() {
        let rgb = vec![100u8; 640 * 360 * 3];
        let (jpeg, w, h, _) = thumbnail(&rgb, 640, 360, 320, 80).unwrap();
        assert_eq!((w, h), (320, 180));
        assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    }
}
