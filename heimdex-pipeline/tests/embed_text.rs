//! Text embeddings with the real all-MiniLM-L6-v2 (int8 ONNX) from `make models`.
//! Fails with the fix (`make models`) when the model or ONNX Runtime is not installed.
#![cfg(feature = "embed")]

use std::sync::{Arc, Mutex, OnceLock};

use heimdex_core::conformance::extractor::{Content, run_all_on, synthetic_sidecar};
use heimdex_core::extractor::{ExtractContext, Extractor, StageData};
use heimdex_core::sidecar::{
    BoundingBox, ExtractorInfo, Ocr, OcrLine, Sidecar, StageBlock, Transcript, TranscriptSegment,
};
use heimdex_pipeline::ml::embed::{EmbedConfig, TEXT_SPACE, TextEmbedder, TextEmbeddingStage};

/// One embedder per test binary (loading the model once).
fn embedder() -> Arc<TextEmbedder> {
    static E: OnceLock<Arc<TextEmbedder>> = OnceLock::new();
    E.get_or_init(|| {
        let cfg = EmbedConfig::default();
        for p in [&cfg.model, &cfg.vocab] {
            assert!(p.exists(), "{} not found: run `make models`", p.display());
        }
        match TextEmbedder::new(cfg) {
            Ok(e) => Arc::new(e),
            Err(e) => panic!("loading MiniLM failed: {e} (run `make models`)"),
        }
    })
    .clone()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn reference_pair_scores_0_755() {
    let e = embedder();
    assert_eq!(e.dim(), 384);
    let v = e
        .embed(&["A man is eating food.", "A man is eating a piece of bread."])
        .expect("embed");
    assert_eq!(v.len(), 2);
    for x in &v {
        assert_eq!(x.len(), 384);
        assert!((norm(x) - 1.0).abs() < 1e-4, "not unit length: {}", norm(x));
    }
    let c = cosine(&v[0], &v[1]);
    eprintln!("cosine(reference pair) = {c:.4}");
    assert!(
        (c - 0.755).abs() <= 0.01,
        "cosine {c} not within 0.755 ± 0.01"
    );
}

#[test]
fn related_texts_rank_above_unrelated() {
    let e = embedder();
    let q = e
        .embed_one("someone having bread for lunch")
        .expect("query");
    let docs = e
        .embed(&[
            "A man is eating a piece of bread.",
            "The stock market fell sharply on Tuesday.",
            "A dog runs across the park.",
        ])
        .expect("docs");
    let scores: Vec<f32> = docs.iter().map(|d| cosine(&q, d)).collect();
    assert!(scores[0] > scores[1] && scores[0] > scores[2], "{scores:?}");
}

#[test]
fn batching_and_order_do_not_change_vectors() {
    let e = embedder();
    let texts: Vec<String> = (0..70)
        .map(|i| match i % 4 {
            0 => format!("clip {i}"),
            1 => format!("The presenter explains quarterly results, part {i}, in detail."),
            2 => "a very long sentence about the sunset over the mountains ".repeat(1 + i % 7),
            _ => format!("Ünïcödé {i} — 東京"),
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batched = e.embed(&refs).expect("batched");
    assert_eq!(batched.len(), texts.len());
    for (i, t) in refs.iter().enumerate().step_by(9) {
        let single = e.embed_one(t).expect("single");
        let max_diff = single
            .iter()
            .zip(&batched[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-3,
            "text {i}: batched vs single differ by {max_diff}"
        );
    }
    let again = e.embed(&refs).expect("again");
    assert_eq!(batched, again, "embedding is not deterministic");
    assert!(e.embed(&[]).expect("empty input").is_empty());
    assert_eq!(e.embed_one("").expect("empty text").len(), 384);
}

#[test]
fn long_text_is_truncated_to_128_tokens() {
    let e = embedder();
    let long = "word ".repeat(1000);
    assert_eq!(e.encode(&long).ids.len(), 128);
    assert_eq!(e.embed_one(&long).expect("long").len(), 384);
}

/// The conformance suite on a sidecar with transcript and OCR text (the synthetic one has
/// none, so the stage would find nothing to check).
#[test]
fn stage_passes_extractor_conformance() {
    let e = embedder();
    let mut content = Content::synthetic();
    content.sidecar = sidecar_with_text();
    run_all_on(&TextEmbeddingStage::new(e), &content);
}

/// The synthetic sidecar plus a transcript (one blank segment) and an OCR line.
fn sidecar_with_text() -> Sidecar {
    let info = |name: &str| ExtractorInfo {
        name: name.into(),
        version: "1".into(),
        model: None,
        params: None,
    };
    let mut sidecar = synthetic_sidecar();
    let seg = |s: f64, t: &str| TranscriptSegment {
        start_s: s,
        end_s: s + 2.0,
        text: t.into(),
        words: vec![],
    };
    sidecar.transcript = Some(StageBlock::new(
        info("test.asr"),
        0,
        Transcript {
            language: Some("en".into()),
            segments: vec![
                seg(0.0, " A man is eating food. "),
                seg(2.0, "   "),
                seg(4.0, "A man is eating a piece of bread."),
            ],
        },
    ));
    sidecar.ocr = Some(StageBlock::new(
        info("test.ocr"),
        0,
        Ocr {
            lines: vec![OcrLine {
                start_s: 5.0,
                end_s: 7.5,
                text: "QUARTERLY RESULTS".into(),
                bbox: BoundingBox {
                    x: 0.1,
                    y: 0.1,
                    w: 0.5,
                    h: 0.1,
                },
                confidence: 0.9,
            }],
        },
    ));
    sidecar
}

#[test]
fn stage_embeds_every_segment_with_text() {
    let e = embedder();
    let sidecar = sidecar_with_text();
    let stage = TextEmbeddingStage::new(e.clone()).with_after(["captions"]);
    let needs = stage.needs();
    assert!(!needs.keyframes && !needs.audio_16k);
    assert_eq!(needs.after, vec!["transcript", "ocr", "visual", "captions"]);
    let info = stage.info();
    assert_eq!(info.name, "embed.text");
    assert_eq!(
        info.model.as_ref().map(|m| m.name.as_str()),
        Some("all-MiniLM-L6-v2-int8")
    );

    let seen = Mutex::new(Vec::new());
    let report = |p: f32| seen.lock().unwrap().push(p);
    let ctx = ExtractContext::new(&sidecar, &[], None, &report);
    let StageData::Embeddings(out) = stage.extract(&ctx).expect("extract") else {
        panic!("expected embeddings");
    };
    let ids: Vec<&str> = out
        .vectors
        .iter()
        .filter_map(|v| v.segment.as_deref())
        .collect();
    assert_eq!(
        ids,
        ["asset", "transcript-00000", "transcript-00001", "ocr-00000"],
        "shots (generated colour words) and the blank transcript segment are skipped"
    );
    for v in &out.vectors {
        assert_eq!(v.space, TEXT_SPACE);
        assert_eq!(v.vector.len(), 384);
        assert!((norm(&v.vector) - 1.0).abs() < 1e-4);
    }
    let t0 = &out.vectors[1];
    let t2 = &out.vectors[2];
    assert_eq!((t0.start_s, t0.end_s), (0.0, 2.0));
    assert_eq!((t2.start_s, t2.end_s), (4.0, 6.0));
    // Segment text is trimmed by `segments::from_sidecar`; the stage reproduces the pair score.
    let c = cosine(&t0.vector, &t2.vector);
    assert!((c - 0.755).abs() <= 0.01, "cosine {c}");
    let q = e
        .embed_one("A man is eating a piece of bread.")
        .expect("query");
    assert!(
        (cosine(&q, &t2.vector) - 1.0).abs() < 1e-3,
        "query/stage vectors differ"
    );
    let seen = seen.into_inner().unwrap();
    assert!(seen.iter().all(|p| (0.0..=100.0).contains(p)));
    assert_eq!(seen.last(), Some(&100.0));
}
