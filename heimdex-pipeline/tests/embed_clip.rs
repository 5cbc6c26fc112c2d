//! Image-text embedding plumbing (bring your own CLIP/SigLIP), tested with a tiny
//! **random-weight** ONNX pair written by `scripts/make_test_clip.py` (`make models` puts it
//! in `clip-test/`). The vectors mean nothing; these tests check shapes, normalisation,
//! determinism, segment ids and time ranges — not retrieval quality.
//! Fails with the fix (`make models`) when the files or ONNX Runtime are missing.
#![cfg(feature = "embed")]

use std::sync::Mutex;

use heimdex_core::conformance::extractor::{run_all, synthetic_keyframes, synthetic_sidecar};
use heimdex_core::extractor::{ExtractContext, ExtractError, Extractor, FrameRef, StageData};
use heimdex_core::sidecar::{EmbeddingVector, Embeddings, ExtractorInfo};
use heimdex_pipeline::ml::MlError;
use heimdex_pipeline::ml::embed::{ClipConfig, ClipImageStage, ClipTextEncoder, IMAGE_SPACE};
use heimdex_pipeline::ml::models::default_model;

const DIM: usize = 512;

/// The random-weight test pair; panics with the fix when it or ONNX Runtime is missing.
fn config() -> ClipConfig {
    let mut c = ClipConfig::new(
        default_model("clip-test/image.onnx"),
        default_model("clip-test/text.onnx"),
    );
    c.name = "random-test-clip".into();
    for p in [&c.image_model, &c.text_model, &c.tokenizer] {
        assert!(p.exists(), "{} not found: run `make models`", p.display());
    }
    if let Err(e) = heimdex_pipeline::ml::runtime::init() {
        panic!("ONNX Runtime not available: {e} (run `make models`)");
    }
    c
}

fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Same vector up to float rounding (batch size may change the kernels ONNX Runtime uses).
fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "vectors differ by up to {d}");
}

fn frames<'a>(pixels: &'a [Vec<u8>]) -> Vec<FrameRef<'a>> {
    pixels
        .iter()
        .enumerate()
        .map(|(i, rgb)| FrameRef {
            shot_index: i as u32,
            time_s: i as f64 * 2.5 + 0.5,
            width: 64,
            height: 36,
            rgb,
        })
        .collect()
}

#[test]
fn image_stage_passes_extractor_conformance() {
    let c = config();
    run_all(&ClipImageStage::new(c).expect("image model"));
}

#[test]
fn image_stage_embeds_one_unit_vector_per_shot() {
    let c = config();
    let stage = ClipImageStage::new(c).expect("image model");
    let needs = stage.needs();
    assert!(needs.keyframes && !needs.audio_16k);
    assert!(needs.after.is_empty(), "independent of the text stage");
    let info = stage.info();
    assert_eq!(info.name, "embed.image");
    assert_eq!(
        info.model.as_ref().map(|m| m.name.as_str()),
        Some("random-test-clip")
    );

    let sidecar = synthetic_sidecar();
    let pixels = synthetic_keyframes();
    let frames = frames(&pixels);
    let seen = Mutex::new(Vec::new());
    let report = |p: f32| seen.lock().unwrap().push(p);
    let ctx = ExtractContext::new(&sidecar, &frames, None, &report);
    let StageData::Embeddings(out) = stage.extract(&ctx).expect("extract") else {
        panic!("expected embeddings");
    };
    assert_eq!(out.vectors.len(), 4);
    for (i, v) in out.vectors.iter().enumerate() {
        assert_eq!(v.space, IMAGE_SPACE);
        assert_eq!(v.segment.as_deref(), Some(format!("shot-{i:05}").as_str()));
        assert_eq!((v.start_s, v.end_s), (i as f64 * 2.5, (i + 1) as f64 * 2.5));
        assert_eq!(v.vector.len(), DIM);
        assert!((norm(&v.vector) - 1.0).abs() < 1e-4);
    }
    assert_ne!(
        out.vectors[0].vector, out.vectors[1].vector,
        "different frames, same vector"
    );
    assert_eq!(seen.into_inner().unwrap().last(), Some(&100.0));

    // Identical frames give identical vectors, in any batch position.
    let same = [frames[2], frames[0], frames[2]];
    let v = stage.embed_frames(&same).expect("embed frames");
    assert_eq!(v[0], v[2]);
    assert_close(&v[1], &out.vectors[0].vector);
}

#[test]
fn image_and_text_vectors_live_in_separate_blocks() {
    let c = config();
    let stage = ClipImageStage::new(c).expect("image model");
    let mut sidecar = synthetic_sidecar();
    let text = EmbeddingVector {
        space: "text".into(),
        segment: Some("asset".into()),
        start_s: 0.0,
        end_s: 10.0,
        vector: vec![1.0, 0.0],
    };
    let text_info = ExtractorInfo {
        name: "embed.text".into(),
        version: "1".into(),
        model: None,
        params: None,
    };
    heimdex_core::extractor::apply_stage(
        &mut sidecar,
        text_info,
        0,
        StageData::Embeddings(Embeddings {
            vectors: vec![text.clone()],
        }),
    );
    let pixels = synthetic_keyframes();
    let frames = frames(&pixels);
    let ctx = ExtractContext::new(&sidecar, &frames, None, &|_| {});
    let out = stage.extract(&ctx).expect("extract");
    let StageData::Embeddings(ref image) = out else {
        panic!("expected embeddings");
    };
    assert_eq!(
        image.vectors.len(),
        4,
        "one image vector per shot, nothing else"
    );
    assert!(
        image
            .vectors
            .iter()
            .all(|v| v.space == IMAGE_SPACE && v.vector.len() == DIM)
    );
    heimdex_core::extractor::apply_stage(&mut sidecar, stage.info(), 0, out);
    assert_eq!(
        sidecar.embeddings.len(),
        2,
        "text and image blocks side by side"
    );
    assert_eq!(sidecar.embeddings["embed.text"].data.vectors, vec![text]);
    assert_eq!(sidecar.embeddings["embed.image"].data.vectors.len(), 4);
}

#[test]
fn image_stage_rejects_bad_frames_without_panicking() {
    let c = config();
    let stage = ClipImageStage::new(c).expect("image model");
    let sidecar = synthetic_sidecar();
    let short = vec![0u8; 10];
    let bad = [FrameRef {
        shot_index: 0,
        time_s: 0.5,
        width: 64,
        height: 36,
        rgb: &short,
    }];
    let ctx = ExtractContext::new(&sidecar, &bad, None, &|_| {});
    assert!(matches!(
        stage.extract(&ctx),
        Err(ExtractError::Model { .. })
    ));
    let ctx = ExtractContext::new(&sidecar, &[], None, &|_| {});
    assert!(matches!(
        stage.extract(&ctx),
        Err(ExtractError::MissingInput { .. })
    ));
}

#[test]
fn text_encoder_embeds_queries() {
    let c = config();
    let enc = ClipTextEncoder::new(c).expect("text model");
    let a = enc.embed_query("a photo of a cat").expect("query");
    assert_eq!(a.len(), DIM);
    assert!((norm(&a) - 1.0).abs() < 1e-4);
    // Deterministic, and case/whitespace-insensitive like CLIP's tokenizer.
    assert_eq!(a, enc.embed_query("a photo of a cat").expect("again"));
    assert_eq!(
        a,
        enc.embed_query("  A Photo  of a CAT ")
            .expect("normalised text")
    );
    let b = enc
        .embed_query("a sunset over the mountains")
        .expect("other");
    assert_ne!(a, b);
    let many = enc
        .embed(&["a sunset over the mountains", "a photo of a cat"])
        .expect("batch");
    assert_eq!(many.len(), 2);
    assert_close(&many[0], &b);
    assert_close(&many[1], &a);
}

#[test]
fn missing_model_is_a_typed_error() {
    let mut c = config();
    c.image_model = "/nonexistent/clip-image.onnx".into();
    assert!(matches!(
        ClipImageStage::new(c),
        Err(MlError::ModelMissing { .. })
    ));
}

const CLIP_VARS: [&str; 2] = ["HEIMDEX_CLIP_IMAGE_MODEL", "HEIMDEX_CLIP_TEXT_MODEL"];

/// `from_env` configures CLIP exactly when both towers are named, in whatever environment
/// this process has (the test below runs it in each combination).
#[test]
fn config_from_env_matches_the_environment() {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let both = CLIP_VARS.iter().all(|k| set(k));
    let config = ClipConfig::from_env();
    assert_eq!(config.is_some(), both, "{config:?}");
    if let Some(c) = config {
        let var = |k: &str| std::path::PathBuf::from(std::env::var_os(k).unwrap_or_default());
        assert_eq!(c.image_model, var(CLIP_VARS[0]));
        assert_eq!(c.text_model, var(CLIP_VARS[1]));
    }
}

/// Neither, one or both towers named: the check above, each time in a child process with
/// exactly that environment.
#[test]
fn config_from_env_needs_both_towers() {
    let exe = std::env::current_exe().expect("test binary");
    for (image, text) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["config_from_env_matches_the_environment", "--exact"]);
        for (k, on, v) in [
            (CLIP_VARS[0], image, "/models/image.onnx"),
            (CLIP_VARS[1], text, "/models/text.onnx"),
        ] {
            if on {
                cmd.env(k, v);
            } else {
                cmd.env_remove(k);
            }
        }
        let out = cmd.output().expect("run the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "image {image}, text {text}:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn text_and_image_stages_are_independent() {
    use heimdex_core::extractor::stage_levels;
    use heimdex_pipeline::ml::embed::{EmbedConfig, TextEmbedder, TextEmbeddingStage};
    let c = config();
    let text_cfg = EmbedConfig::default();
    for p in [&text_cfg.model, &text_cfg.vocab] {
        assert!(p.exists(), "{} not found: run `make models`", p.display());
    }
    let text = TextEmbeddingStage::new(std::sync::Arc::new(
        TextEmbedder::new(text_cfg).expect("MiniLM"),
    ));
    let image = ClipImageStage::new(c).expect("image model");
    let stages: Vec<Box<dyn Extractor>> = vec![Box::new(image), Box::new(text)];
    // Separate sidecar blocks: no ordering between them, they may run concurrently.
    assert_eq!(stage_levels(&stages), vec![vec![0, 1]]);
}

#[test]
fn text_encoder_feeds_attention_mask_when_the_export_takes_one() {
    let mut c = config();
    let masked = default_model("clip-test/text_masked.onnx");
    assert!(
        masked.exists(),
        "{} not found: run `make models`",
        masked.display()
    );
    // Without a mask input, the padding id changes the (random) vector: padding is seen.
    let plain_0 = ClipTextEncoder::new(c.clone()).expect("text model");
    c.pad_id = 7;
    let plain_7 = ClipTextEncoder::new(c.clone()).expect("text model");
    let q = "a photo of a cat";
    assert_ne!(
        plain_0.embed_query(q).expect("q"),
        plain_7.embed_query(q).expect("q")
    );
    // With one, padding is masked out: the padding id no longer matters.
    c.text_model = masked;
    let masked_7 = ClipTextEncoder::new(c.clone()).expect("masked text model");
    c.pad_id = 0;
    let masked_0 = ClipTextEncoder::new(c).expect("masked text model");
    let (a, b) = (
        masked_0.embed_query(q).expect("q"),
        masked_7.embed_query(q).expect("q"),
    );
    assert_eq!(a.len(), DIM);
    assert_close(&a, &b);
}
