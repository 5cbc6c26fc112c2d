//! The `visual` stage (EfficientNet-Lite0 labels + SSD-MobileNetV2 objects) on real footage:
//! the expected labels and objects were written after looking at the frames.
//!
//! - `bikes.mp4`: a street; cars pass, a man in a suit walks between them, and at about 5 s a
//!   parked bicycle stands behind a railing next to a car.
//! - `chelsea.png` (scikit-image, as a 2 s clip): a tabby cat.
//!
//! Needs the default models and samples (`make models`, `make samples`).
#![cfg(feature = "tags")]

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use heimdex_core::extractor::{ExtractContext, Extractor, StageData};
use heimdex_core::sidecar::Visual;
use heimdex_pipeline::ml::models::models_dir;
use heimdex_pipeline::ml::visual::{VisualConfig, VisualStage};
use heimdex_pipeline::{Analysis, AnalyzeOptions};

fn stage() -> &'static VisualStage {
    static STAGE: OnceLock<VisualStage> = OnceLock::new();
    STAGE.get_or_init(|| {
        VisualStage::new(VisualConfig::default())
            .unwrap_or_else(|e| panic!("visual models not available: {e} (run `make models`)"))
    })
}

fn analyze(path: &Path) -> Analysis {
    let opts = AnalyzeOptions {
        sample_frames: true,
        ..AnalyzeOptions::default()
    };
    heimdex_pipeline::analyze(common::open(path), &opts, &mut |_| {})
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(analysis: &Analysis) -> Visual {
    let sidecar = common::sidecar_of(analysis);
    let frames = analysis.frames();
    let samples = analysis.sample_frames();
    let progress = |_: f32| {};
    let ctx = ExtractContext::new(&sidecar, &frames, None, &progress).with_samples(&samples);
    let started = Instant::now();
    let out = stage().extract(&ctx).expect("visual stage");
    println!(
        "visual: {} keyframes + {} samples in {:.0} ms",
        frames.len(),
        samples.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    match out {
        StageData::Visual(v) => {
            for s in &v.shots {
                println!(
                    "  shot {} {:.1}-{:.1}: {}",
                    s.shot_index, s.start_s, s.end_s, s.description
                );
            }
            v
        }
        other => panic!("expected visual data, got {other:?}"),
    }
}

#[test]
fn street_footage_shows_cars_a_bicycle_and_a_person() {
    let analysis = analyze(&common::samples_dir().join("bikes.mp4"));
    let visual = run(&analysis);
    assert!(!visual.shots.is_empty());
    let shots = &analysis.shots.shots;
    for v in &visual.shots {
        let shot = &shots[v.shot_index as usize];
        assert_eq!((v.start_s, v.end_s), (shot.start_s, shot.end_s));
        assert!(!v.description.is_empty());
        for t in &v.tags {
            assert!((0.1..=1.0).contains(&t.score), "{t:?}");
            assert_eq!(t.model, "efficientnet-lite0");
        }
        for o in &v.objects {
            assert!(o.count as usize == o.boxes.len() && o.count >= 1, "{o:?}");
            for b in &o.boxes {
                let kf = &analysis.keyframes[v.shot_index as usize];
                assert!(
                    b.x >= 0.0
                        && b.y >= 0.0
                        && b.x + b.w <= kf.width as f32 + 0.5
                        && b.y + b.h <= kf.height as f32 + 0.5,
                    "{b:?} outside {}x{}",
                    kf.width,
                    kf.height
                );
            }
        }
    }
    let objects: Vec<&str> = visual
        .shots
        .iter()
        .flat_map(|s| s.objects.iter().map(|o| o.label.as_str()))
        .collect();
    for expected in ["car", "bicycle", "person"] {
        assert!(
            objects.contains(&expected),
            "{expected} not among {objects:?}"
        );
    }
    // The classifier names the bicycle of the last shot (`mountain bike`, broader `bicycle`)
    // and the cars counted where the man walks between them.
    let last = visual.shots.last().unwrap();
    assert!(
        last.tags
            .iter()
            .any(|t| t.broader.iter().any(|b| b == "bicycle")),
        "{last:?}"
    );
    let walk = visual
        .shots
        .iter()
        .find(|s| s.start_s <= 2.0 && s.end_s >= 2.0)
        .expect("the shot at 2 s");
    let cars = walk
        .objects
        .iter()
        .find(|o| o.label == "car")
        .map_or(0, |o| o.count);
    assert!(cars >= 2, "cars at 2 s: {walk:?}");
}

#[test]
fn a_photo_of_a_cat_is_a_cat() {
    let photo = models_dir().join("testdata/chelsea.png");
    assert!(
        photo.exists(),
        "{} missing: run `make models`",
        photo.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("cat.mp4");
    common::ffmpeg(&[
        "-loop",
        "1",
        "-i",
        photo.to_str().unwrap(),
        "-t",
        "2",
        "-r",
        "25",
        "-vf",
        "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p",
        clip.to_str().unwrap(),
    ]);
    let analysis = analyze(&clip);
    let visual = run(&analysis);
    assert_eq!(visual.shots.len(), 1);
    let shot = &visual.shots[0];
    let names: Vec<&str> = shot
        .tags
        .iter()
        .flat_map(|t| std::iter::once(t.label.as_str()).chain(t.broader.iter().map(String::as_str)))
        .collect();
    assert!(names.contains(&"cat"), "{names:?}");
    assert!(
        shot.objects
            .iter()
            .any(|o| o.label == "cat" && o.count == 1),
        "{:?}",
        shot.objects
    );
    assert!(shot.description.contains("cat"), "{}", shot.description);
}

#[test]
fn conformance() {
    let analysis = analyze(&common::samples_dir().join("bikes.mp4"));
    let k = &analysis.keyframes[0];
    let frames: Vec<Vec<u8>> = analysis
        .keyframes
        .iter()
        .take(4)
        .filter(|x| (x.width, x.height) == (k.width, k.height))
        .map(|x| x.rgb.clone())
        .collect();
    let content = heimdex_core::conformance::extractor::Content::synthetic()
        .with_keyframes(k.width, k.height, frames);
    heimdex_core::conformance::extractor::run_all_on(stage(), &content);
}
