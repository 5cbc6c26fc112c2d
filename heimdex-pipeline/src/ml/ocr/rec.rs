//! CTC text recognition: batch preparation (height 48, width padded to the widest crop of
//! the batch) and greedy CTC decoding with the character dictionary.

use super::image::{RgbView, resize_into_bgr_planes};

/// Input height of the PP-OCR recognisers.
pub(crate) const REC_H: usize = 48;
/// Minimum input width (PaddleOCR's `rec_image_shape` 3×48×320).
pub(crate) const REC_MIN_W: usize = 320;

/// A recogniser batch: `[n, 3, 48, width]` floats.
#[derive(Debug)]
pub(crate) struct Batch {
    pub n: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// Prepare crops as one batch, like PaddleOCR's `resize_norm_img`: every crop is resized to
/// height 48 keeping its aspect ratio (at most the batch width), normalised, BGR, and
/// zero-padded on the right to the batch width `48 × max(320/48, widest aspect ratio)`.
pub(crate) fn prepare_batch(crops: &[RgbView<'_>]) -> Batch {
    let mut max_ratio = REC_MIN_W as f64 / REC_H as f64;
    for c in crops {
        max_ratio = max_ratio.max(c.w as f64 / c.h.max(1) as f64);
    }
    let width = (REC_H as f64 * max_ratio) as usize;
    let per = 3 * REC_H * width;
    let mut data = vec![0.0f32; per * crops.len()];
    for (i, c) in crops.iter().enumerate() {
        let ratio = c.w as f64 / c.h.max(1) as f64;
        let rw = ((REC_H as f64 * ratio).ceil() as usize).clamp(1, width);
        resize_into_bgr_planes(*c, rw, REC_H, &mut data[i * per..(i + 1) * per], width);
    }
    Batch {
        n: crops.len(),
        width,
        data,
    }
}

/// Greedy CTC decoding of one sequence of `t` steps × `c` class probabilities: take the
/// arg-max per step, collapse repeats, drop the blank (class 0). The confidence is the mean
/// of the kept steps' maximum probabilities (0 when nothing is kept).
///
/// The recogniser often emits no space between upper-case words ("HEIMDEXDEMO"), which
/// makes both words unsearchable. Every emitted character is also placed in time (its first
/// step), and where the blank run between two Latin letters or digits is much longer than
/// the line's usual spacing ([`wide_gap`]) a space is put in, as the picture has one there.
pub(crate) fn ctc_greedy(probs: &[f32], t: usize, c: usize, dict: &[String]) -> (String, f32) {
    // (text, first step, last step) of each emitted character.
    let mut chars: Vec<(&str, usize, usize)> = Vec::new();
    let (mut sum, mut kept) = (0.0f32, 0usize);
    let mut prev = usize::MAX;
    for (i, step) in probs.chunks_exact(c).take(t).enumerate() {
        let (idx, p) = step
            .iter()
            .enumerate()
            .fold(
                (0usize, f32::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            );
        if idx != 0 && idx == prev {
            if let Some(last) = chars.last_mut() {
                last.2 = i;
            }
        } else if idx != 0 {
            if let Some(ch) = dict.get(idx) {
                chars.push((ch.as_str(), i, i));
            }
            sum += p;
            kept += 1;
        }
        prev = idx;
    }
    // Blank steps between consecutive characters.
    let gaps: Vec<usize> = chars
        .windows(2)
        .map(|w| w[1].1.saturating_sub(w[0].2 + 1))
        .collect();
    let wide = wide_gap(&gaps);
    let latin = |s: &str| s.chars().all(|ch| ch.is_ascii_alphanumeric());
    let mut text = String::new();
    for (i, (ch, ..)) in chars.iter().enumerate() {
        if i > 0
            && let Some(wide) = wide
            && gaps[i - 1] >= wide
            && latin(ch)
            && latin(chars[i - 1].0)
        {
            text.push(' ');
        }
        text.push_str(ch);
    }
    let conf = if kept == 0 { 0.0 } else { sum / kept as f32 };
    (text, conf)
}

/// The blank run (in steps) from which a gap between two characters is a word space: at
/// least the median gap + 3 steps and 1.75× the median. `None` for lines of fewer than four
/// gaps, where the median says nothing. On rendered captions the gaps inside a word are 3-5
/// steps (wide letters such as M give the longer ones) and a word space 7 or more.
fn wide_gap(gaps: &[usize]) -> Option<usize> {
    if gaps.len() < 4 {
        return None;
    }
    let mut sorted = gaps.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    Some((median + 3).max((median * 7).div_ceil(4)))
}

/// The class table from a dictionary text (one character per line): index 0 is the CTC
/// blank, then the lines, then a space (PaddleOCR's `use_space_char`).
pub(crate) fn class_table(dictionary: &str) -> Vec<String> {
    let mut lines: Vec<&str> = dictionary
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut table = Vec::with_capacity(lines.len() + 2);
    table.push(String::new());
    table.extend(lines.into_iter().map(str::to_owned));
    table.push(" ".to_owned());
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_collapses_repeats_and_drops_blanks() {
        let dict = class_table("a\nb\n");
        assert_eq!(dict.len(), 4);
        // Steps: a a blank a b space space
        let steps = [1usize, 1, 0, 1, 2, 3, 3];
        let mut probs = vec![0.0f32; steps.len() * 4];
        for (i, &k) in steps.iter().enumerate() {
            probs[i * 4 + k] = 0.8;
            probs[i * 4 + (k + 1) % 4] = 0.2;
        }
        let (text, conf) = ctc_greedy(&probs, steps.len(), 4, &dict);
        assert_eq!(text, "aab ");
        assert!((conf - 0.8).abs() < 1e-6);
        let (empty, zero) = ctc_greedy(&[1.0, 0.0, 0.0, 0.0], 1, 4, &dict);
        assert_eq!((empty.as_str(), zero), ("", 0.0));
    }

    /// Probabilities for a step sequence written as characters of `a`, `b`, ` ` and `.`
    /// (blank).
    fn steps_of(seq: &str) -> Vec<f32> {
        let mut probs = Vec::new();
        for ch in seq.chars() {
            let k = match ch {
                'a' => 1,
                'b' => 2,
                ' ' => 3,
                _ => 0,
            };
            let mut step = [0.0f32; 4];
            step[k] = 0.9;
            probs.extend_from_slice(&step);
        }
        probs
    }

    #[test]
    fn a_wide_blank_run_between_letters_is_a_space() {
        let dict = class_table("a\nb\n");
        // The shape seen on "HEIMDEX DEMO": gaps of 3-5 inside words, 7 between them.
        let seq = "..a....b...a...b.....a....b....a.......b.....a....b.....a.....";
        let (text, _) = ctc_greedy(&steps_of(seq), seq.len(), 4, &dict);
        assert_eq!(text, "abababa baba");
        // Even spacing: no space invented; a space the model emits is kept as it is.
        let seq = "a...b...a...b...a.  ..b...a";
        let (text, _) = ctc_greedy(&steps_of(seq), seq.len(), 4, &dict);
        assert_eq!(text, "ababa ba");
        // Too few characters to judge.
        let seq = "a..........b";
        assert_eq!(ctc_greedy(&steps_of(seq), seq.len(), 4, &dict).0, "ab");
        assert_eq!(wide_gap(&[4, 3, 3, 5, 4, 4, 7, 5, 4, 5]), Some(7));
        assert_eq!(wide_gap(&[1, 1, 1, 1]), Some(4));
    }

    #[test]
    fn batches_pad_to_the_widest_crop() {
        let wide = vec![255u8; 200 * 10 * 3];
        let small = vec![255u8; 20 * 10 * 3];
        let crops = [
            RgbView {
                w: 200,
                h: 10,
                data: &wide,
            },
            RgbView {
                w: 20,
                h: 10,
                data: &small,
            },
        ];
        let b = prepare_batch(&crops);
        assert_eq!((b.n, b.width), (2, 960));
        let per = 3 * REC_H * b.width;
        // The small crop is 96 px wide after resizing, then zero padding.
        assert_eq!(b.data[per + 95], 1.0);
        assert_eq!(b.data[per + 96], 0.0);
    }
}
