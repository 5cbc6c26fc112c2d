//! OCR cost per keyframe (PP-OCRv4 det + rec on ONNX Runtime).
//!
//! Run with `cargo bench -p heimdex-pipeline --features ocr --bench ocr` after `make models`.
//! Frames are rendered by the ffmpeg CLI (`drawtext`, DejaVu Sans): 1280×720 with two lines
//! of text, 1280×720 without text, and 640×360 with one line; with the default detector size
//! (`MaxSide(1280)`) and PaddleOCR's (`MaxSide(960)`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use heimdex_pipeline::ml::ocr::{DetResize, OcrConfig, PaddleOcr};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Render one RGB frame with ffmpeg (lavfi color source + optional drawtext filters).
fn frame(w: u32, h: u32, color: &str, filters: &str) -> Vec<u8> {
    let src = format!("color=c={color}:s={w}x{h}:d=1");
    let mut args = vec!["-hide_banner", "-v", "error", "-f", "lavfi", "-i", &src];
    if !filters.is_empty() {
        args.extend(["-vf", filters]);
    }
    args.extend(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    let out = Command::new("ffmpeg")
        .args(&args)
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), (w * h * 3) as usize);
    out.stdout
}

fn text(t: &str, size: u32, x: &str, y: &str) -> String {
    format!("drawtext=fontfile={FONT}:text='{t}':fontsize={size}:fontcolor=white:x={x}:y={y}")
}

fn main() {
    let config = OcrConfig::default();
    if !config.det_path.exists() {
        eprintln!(
            "ocr bench skipped: {} missing (run `make models`)",
            config.det_path.display()
        );
        return;
    }
    assert!(
        Path::new(FONT).exists(),
        "{FONT} missing (fonts-dejavu-core)"
    );
    let two_lines = format!(
        "{},{}",
        text("HEIMDEX DEMO", 72, "(w-tw)/2", "200"),
        text("Sunset over the mountains, 2024", 40, "(w-tw)/2", "500")
    );
    let cases = [
        (
            "1280x720, 2 lines",
            1280,
            720,
            frame(1280, 720, "navy", &two_lines),
        ),
        (
            "1280x720, no text",
            1280,
            720,
            frame(1280, 720, "0x336633", ""),
        ),
        (
            "640x360, 1 line",
            640,
            360,
            frame(
                640,
                360,
                "maroon",
                &text("SUNSET MOUNTAINS", 36, "40", "280"),
            ),
        ),
    ];
    for resize in [DetResize::MaxSide(1280), DetResize::MaxSide(960)] {
        let mut config = OcrConfig::default();
        config.det_resize = resize;
        let threads = config.threads;
        let ocr = PaddleOcr::new(config).expect("load OCR models");
        println!("ocr bench: det_resize {resize}, {threads} threads");
        for (name, w, h, rgb) in &cases {
            let lines = ocr.read_text(*w, *h, rgb).expect("read_text");
            let runs = 5;
            let t = Instant::now();
            for _ in 0..runs {
                std::hint::black_box(ocr.read_text(*w, *h, rgb).expect("read_text"));
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
            let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
            println!("ocr {name}: {ms:.1} ms/keyframe, lines {texts:?}");
        }
    }
}
