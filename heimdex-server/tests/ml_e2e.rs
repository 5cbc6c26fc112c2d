//! End to end with the real default models (`make models`): speech, on-screen text, faces
//! and text embeddings feed hybrid search over time-coded moments.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;
use heimdex_core::SearchRequest;
use heimdex_core::index::SearchFilter;
use heimdex_core::moments::Moment;
use heimdex_server::engine::{Engine, EngineConfig, SilentProgress};
use heimdex_server::stages::{StageSettings, default_stages};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn models_dir() -> PathBuf {
    std::env::var_os("HEIMDEX_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/heimdex/models")
        })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 12 s: shot A (navy, "HARBOR FESTIVAL" on screen, "Welcome to the harbor festival"
/// spoken from 1 s), hard cut at 6 s to shot B (green, "LOBSTER MENU" on screen, "Our chef
/// prepares fresh lobster for the guests" spoken from 7.5 s).
fn festival_clip(dir: &Path) -> PathBuf {
    let say = |text: &str, out: &str| {
        run(Command::new("espeak-ng")
            .args(["-w", out, text])
            .current_dir(dir))
    };
    say("Welcome to the harbor festival.", "a.wav");
    say("Our chef prepares fresh lobster for the guests.", "b.wav");
    let out = dir.join("festival.mp4");
    let draw = |text: &str, color: &str| {
        format!(
            "drawtext=fontfile={FONT}:text='{text}':fontsize=44:fontcolor={color}:x=(w-tw)/2:y=(h-th)/2"
        )
    };
    run(Command::new("ffmpeg")
        .current_dir(dir)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "color=c=navy:s=640x360:r=25:d=6"])
        .args(["-f", "lavfi", "-i", "color=c=darkgreen:s=640x360:r=25:d=6"])
        .args(["-i", "a.wav", "-i", "b.wav"])
        .arg("-filter_complex")
        .arg(format!(
            "[0]{}[v0];[1]{}[v1];[v0][v1]concat=n=2:v=1:a=0[v];\
             [2]adelay=1000:all=1[a0];[3]adelay=7500:all=1[a1];[a0][a1]amix=inputs=2:duration=longest:normalize=0,apad=whole_dur=12[a]",
            draw("HARBOR FESTIVAL", "white"),
            draw("LOBSTER MENU", "yellow")
        ))
        .args(["-map", "[v]", "-map", "[a]", "-t", "12", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(&out));
    out
}

/// A 2 s clip of a still photo.
fn photo_clip(photo: &Path, out: &Path) {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-i"])
        .arg(photo)
        .args([
            "-t",
            "2",
            "-r",
            "25",
            "-vf",
            "scale=512:512,format=yuv420p",
            "-c:v",
            "libx264",
        ])
        .arg(out));
}

async fn engine(home: &Path) -> Engine {
    let stages = default_stages(&StageSettings::default());
    assert!(
        stages.notes.is_empty(),
        "every default model must load (run `make models`): {:?}",
        stages.notes
    );
    let mut engine = Engine::open_embedded(home, EngineConfig::default(), None)
        .await
        .expect("engine");
    for e in stages.extractors {
        engine = engine.with_extractor(e);
    }
    for q in stages.query_encoders {
        engine = engine.with_query_encoder(q);
    }
    engine
}

async fn search(engine: &Engine, q: &str, filter: SearchFilter) -> Vec<Moment> {
    let req = SearchRequest::new(heimdex_core::TenantId::default_tenant())
        .with_text(q)
        .with_filter(filter)
        .with_limit(5);
    let moments = engine.search(&req).await.expect("search");
    eprintln!("search {q:?}:");
    for m in &moments {
        let signals: Vec<&str> = m.signals.iter().map(|s| s.signal.as_str()).collect();
        eprintln!(
            "  {} {:.2}-{:.2} {:.4} {signals:?} {:?}",
            m.path, m.start_s, m.end_s, m.score, m.snippet
        );
    }
    moments
}

fn signals(m: &Moment) -> Vec<&str> {
    let mut s: Vec<&str> = m.signals.iter().map(|s| s.signal.as_str()).collect();
    s.sort();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_text_faces_and_meaning_are_searchable_by_moment() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    festival_clip(&lib);
    copy_samples(&samples, &lib, &["bikes.mp4", "carphone_pristine.mp4"]);
    // The same person in a second, different clip: the second half of carphone, re-encoded.
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-ss", "2", "-i"])
        .arg(samples.join("carphone_pristine.mp4"))
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(lib.join("carphone_part2.mp4")));
    photo_clip(
        &models_dir().join("testdata/astronaut.png"),
        &lib.join("astronaut.mp4"),
    );

    let engine = engine(&tmp.path().join("home")).await;
    let src = engine
        .add_local_path(&heimdex_core::TenantId::default_tenant(), &lib)
        .await
        .expect("source");
    engine
        .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
        .await
        .expect("scan");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(report.indexed, 5, "{report:?}");
    let validator = sidecar_validator();
    for a in engine
        .assets(&heimdex_core::TenantId::default_tenant())
        .await
        .expect("assets")
    {
        let s = engine
            .sidecar(&heimdex_core::TenantId::default_tenant(), &a.id)
            .await
            .expect("sidecar");
        assert_valid_sidecar(&validator, &serde_json::to_value(&s).expect("json"));
    }

    // A spoken phrase: the festival clip, at the time it was said.
    let m = search(
        &engine,
        "chef prepares fresh lobster",
        SearchFilter::default(),
    )
    .await;
    assert!(m[0].path.ends_with("festival.mp4"));
    assert!(
        m[0].start_s >= 5.5 && m[0].start_s <= 8.5 && m[0].end_s >= 9.0,
        "{:?}",
        (m[0].start_s, m[0].end_s)
    );
    assert!(signals(&m[0]).contains(&"keyword"));

    // An on-screen word only OCR knows: the festival clip's second shot.
    let m = search(&engine, "menu", SearchFilter::default()).await;
    assert!(m[0].path.ends_with("festival.mp4"));
    assert!(
        m[0].start_s >= 5.5 && m[0].end_s <= 12.5,
        "{:?}",
        (m[0].start_s, m[0].end_s)
    );

    // A paraphrase sharing no word with the transcript: found by meaning only.
    let m = search(
        &engine,
        "cook serving seafood to visitors",
        SearchFilter::default(),
    )
    .await;
    assert!(m[0].path.ends_with("festival.mp4"), "{m:?}");
    assert_eq!(signals(&m[0]), ["vector:text"]);
    assert!(
        m[0].snippet
            .as_deref()
            .is_some_and(|s| s.contains("lobster")),
        "why: the matched text"
    );
    assert!(
        m[0].end_s >= 7.5 && m[0].start_s <= 10.0,
        "{:?}",
        (m[0].start_s, m[0].end_s)
    );

    // A moment matching both signals ranks above moments matching one.
    let m = search(&engine, "lobster", SearchFilter::default()).await;
    assert_eq!(signals(&m[0]), ["keyword", "vector:text"]);
    for other in &m[1..] {
        if other.signals.len() == 1 {
            assert!(other.score < m[0].score);
        }
    }

    // More like this: from the lobster sentence (7.5 s) to the lobster menu on screen, and
    // never the sentence itself.
    let festival = engine
        .asset_for_path(
            &heimdex_core::TenantId::default_tenant(),
            &lib.join("festival.mp4"),
        )
        .await
        .expect("asset");
    let req = SearchRequest::new(heimdex_core::TenantId::default_tenant()).with_limit(3);
    let like = engine
        .more_like(&festival.id, 8.0, &req)
        .await
        .expect("more like");
    eprintln!("more like festival@8: {like:?}");
    assert!(
        like[0].segments.iter().any(|s| s.starts_with("ocr-")),
        "{:?}",
        like[0].segments
    );
    assert!(
        like.iter()
            .all(|m| !m.segments.iter().any(|s| s.starts_with("transcript-00001")))
    );

    // Filters: speech, language.
    let mut f = SearchFilter::default();
    f.has_speech = Some(true);
    let m = search(&engine, "mp4", f).await;
    assert!(!m.is_empty() && m.iter().all(|m| m.path.ends_with("festival.mp4")));
    let mut f = SearchFilter::default();
    f.languages = vec!["de".into()];
    assert!(search(&engine, "lobster", f).await.is_empty());

    // Faces: one person across both carphone clips, another for the astronaut.
    let persons = engine
        .persons(&heimdex_core::TenantId::default_tenant())
        .await
        .expect("persons");
    assert_eq!(
        persons.len(),
        2,
        "{:?}",
        persons.iter().map(|p| (&p.id, p.faces)).collect::<Vec<_>>()
    );
    let cluster_of = |path: PathBuf| {
        let engine = &engine;
        async move {
            let s = engine
                .sidecar_for_path(&heimdex_core::TenantId::default_tenant(), &path)
                .await
                .expect("sidecar");
            let faces = s.faces.expect("faces block").data.detections;
            assert!(!faces.is_empty(), "a face in {}", path.display());
            let mut ids: Vec<String> = faces.into_iter().filter_map(|d| d.cluster).collect();
            ids.dedup();
            ids
        }
    };
    let a = cluster_of(lib.join("carphone_pristine.mp4")).await;
    let b = cluster_of(lib.join("carphone_part2.mp4")).await;
    let c = cluster_of(lib.join("astronaut.mp4")).await;
    assert_eq!(a, b, "same person in two clips");
    assert_ne!(a, c, "different persons");
    let named = engine
        .name_person(
            &heimdex_core::TenantId::default_tenant(),
            &a[0],
            "Car Phone Man",
        )
        .await
        .expect("name");
    assert_eq!(
        engine
            .resolve_person(&heimdex_core::TenantId::default_tenant(), "car phone man")
            .await
            .expect("resolve"),
        Some(named.id.clone())
    );
    let mut f = SearchFilter::default();
    f.faces = vec![named.id];
    let m = search(&engine, "mp4", f).await;
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|m| m.path.contains("carphone")));
}

/// Search by example frame, through the CLIP plumbing. No CLIP weights exist on the
/// registries this project can use, so this runs the tiny RANDOM-WEIGHT CLIP-shaped model
/// that `make models` generates (scripts/make_test_clip.py): its vectors mean nothing, but
/// the same picture still lands nearest to itself, which is what the plumbing must achieve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_example_frame_through_clip_plumbing() {
    let dir = models_dir().join("clip-test");
    assert!(
        dir.join("image.onnx").exists(),
        "run `make models` (clip-test)"
    );
    let clip =
        heimdex_pipeline::ml::embed::ClipConfig::new(dir.join("image.onnx"), dir.join("text.onnx"));
    let stage = Arc::new(heimdex_pipeline::ml::embed::ClipImageStage::new(clip).expect("clip"));
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    festival_clip(&lib);
    let home = tmp.path().join("home");
    let engine = Engine::open_embedded(&home, EngineConfig::default(), None)
        .await
        .expect("engine")
        .with_extractor(stage.clone());
    let src = engine
        .add_local_path(&heimdex_core::TenantId::default_tenant(), &lib)
        .await
        .expect("source");
    engine
        .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
        .await
        .expect("scan");
    engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    let sidecar = engine
        .sidecar_for_path(
            &heimdex_core::TenantId::default_tenant(),
            &lib.join("festival.mp4"),
        )
        .await
        .expect("sidecar");
    assert_eq!(
        sidecar.embeddings["embed.image"].data.vectors.len(),
        2,
        "one image vector per shot"
    );
    for shot in &sidecar.shots.as_ref().expect("shots").data.shots {
        let thumb = home
            .join("media")
            .join(&shot.keyframe.as_ref().expect("keyframe").thumbnail);
        let v = heimdex_server::stages::image_vector(&stage, &thumb).expect("image vector");
        let req = SearchRequest::new(heimdex_core::TenantId::default_tenant())
            .with_vector("image", v)
            .with_limit(2);
        let m = engine.search(&req).await.expect("search");
        // Random weights make every frame fairly similar, so touching shots may merge into
        // one moment; its best (first) segment must be the shot itself.
        assert_eq!(
            m[0].segments[0],
            format!("shot-{:05}", shot.index),
            "shot {} finds itself",
            shot.index
        );
        assert!(m[0].start_s <= shot.start_s && m[0].end_s >= shot.end_s);
        assert_eq!(signals(&m[0]), ["vector:image"]);
    }
}
