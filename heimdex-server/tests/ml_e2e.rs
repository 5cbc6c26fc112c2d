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
    // The voice tracks are media too: leave only the clip in the folder.
    for f in ["a.wav", "b.wav"] {
        std::fs::remove_file(dir.join(f)).expect("rm");
    }
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

/// Media that is not a plain landscape video, and what is visible, through the whole engine
/// with the default stages: an interview recorded as audio only (.m4a and .mp3) is
/// transcribed and found at the time the words were said; a caption burned in mid-shot is
/// found at its own time; a phone clip with a display-matrix rotation gets an upright
/// thumbnail; the street in bikes.mp4 is found by what it shows (a bicycle), by meaning and by
/// the `shows` filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_mid_shot_text_and_phone_footage_are_indexed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    run(Command::new("espeak-ng")
        .args([
            "-w",
            "speech.wav",
            "Our chef prepares fresh lobster for the guests.",
        ])
        .current_dir(&lib));
    // 2 s of silence first, so the words start at 2 s.
    for (name, codec) in [("interview.m4a", "aac"), ("memo.mp3", "libmp3lame")] {
        run(Command::new("ffmpeg")
            .current_dir(&lib)
            .args([
                "-v",
                "error",
                "-y",
                "-i",
                "speech.wav",
                "-af",
                "adelay=2000:all=1,apad=pad_dur=1",
            ])
            .args(["-c:a", codec, name]));
    }
    std::fs::remove_file(lib.join("speech.wav")).expect("rm");
    // 9 s, one shot, "ZEPHYR OBSERVATORY" on screen from 5 s to 7 s only.
    run(Command::new("ffmpeg")
        .current_dir(&lib)
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=0x2a4d69:s=1280x720:r=25:d=9",
        ])
        .arg("-vf")
        .arg(format!(
            "drawtext=fontfile={FONT}:text='ZEPHYR OBSERVATORY':fontsize=56:fontcolor=white:\
             x=(w-tw)/2:y=h-160:enable='between(t,5,7)',format=yuv420p"
        ))
        .args(["-c:v", "libx264", "caption.mp4"]));
    // Portrait picture stored landscape with a rotation, as phones record.
    run(Command::new("ffmpeg")
        .current_dir(&lib)
        .args(["-v", "error", "-y", "-filter_complex"])
        .arg(
            "color=c=red:s=360x320:d=2:r=25[a];color=c=blue:s=360x320:d=2:r=25[b];\
             [a][b]vstack,transpose=cclock,format=yuv420p",
        )
        .args(["-c:v", "libx264", "coded.mp4"]));
    run(Command::new("ffmpeg")
        .current_dir(&lib)
        .args(["-v", "error", "-y", "-i", "coded.mp4", "-c", "copy"])
        .args(["-metadata:s:v:0", "rotate=90", "phone.mp4"]));
    std::fs::remove_file(lib.join("coded.mp4")).expect("rm");
    copy_samples(&samples(), &lib, &["bikes.mp4"]);

    let tenant = heimdex_core::TenantId::default_tenant();
    let engine = engine(&tmp.path().join("home")).await;
    let src = engine.add_local_path(&tenant, &lib).await.expect("source");
    engine.scan(&tenant, &src.id).await.expect("scan");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(report.indexed, 5, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");

    let validator = sidecar_validator();
    let assets = engine.assets(&tenant).await.expect("assets");
    let sidecar_of = |name: &str| {
        let a = assets
            .iter()
            .find(|a| a.key.ends_with(name))
            .unwrap_or_else(|| panic!("{name} listed"));
        (a.id.clone(), engine.sidecar(&tenant, &a.id))
    };
    for name in ["interview.m4a", "memo.mp3"] {
        let (_, s) = sidecar_of(name);
        let s = s.await.expect("sidecar");
        assert_valid_sidecar(&validator, &serde_json::to_value(&s).expect("json"));
        assert!(
            s.shots.as_ref().is_none_or(|b| b.data.shots.is_empty()),
            "{name}: no shots"
        );
        let text: String = s
            .transcript
            .as_ref()
            .expect("transcribed")
            .data
            .segments
            .iter()
            .map(|x| x.text.to_lowercase())
            .collect();
        assert!(text.contains("lobster"), "{name}: {text:?}");
    }
    let m = search(
        &engine,
        "chef prepares fresh lobster",
        SearchFilter::default(),
    )
    .await;
    let audio_hits: Vec<&Moment> = m
        .iter()
        .filter(|m| m.path.ends_with("interview.m4a") || m.path.ends_with("memo.mp3"))
        .collect();
    assert_eq!(audio_hits.len(), 2, "both recordings found: {m:?}");
    for hit in audio_hits {
        assert!(
            hit.start_s >= 1.5 && hit.start_s <= 3.0,
            "{}: words start at 2 s, moment at {:.2}",
            hit.path,
            hit.start_s
        );
        assert!(signals(hit).contains(&"keyword"), "{hit:?}");
    }

    let m = search(&engine, "zephyr observatory", SearchFilter::default()).await;
    assert!(m[0].path.ends_with("caption.mp4"), "{m:?}");
    assert!(
        m[0].start_s >= 4.5 && m[0].start_s <= 5.5 && m[0].end_s >= 6.5 && m[0].end_s <= 7.5,
        "caption on screen 5..7, moment {:.2}..{:.2}",
        m[0].start_s,
        m[0].end_s
    );

    let (_, s) = sidecar_of("phone.mp4");
    let s = s.await.expect("sidecar");
    let video = s
        .technical
        .as_ref()
        .and_then(|t| t.data.video().cloned())
        .expect("video stream");
    assert!(video.rotation.is_some(), "{video:?}");
    assert!(video.height > video.width, "displayed portrait: {video:?}");
    let kf = s.shots.as_ref().expect("shots").data.shots[0]
        .keyframe
        .clone()
        .expect("keyframe");
    assert!(kf.height > kf.width, "upright thumbnail: {kf:?}");

    // What is visible: the sidecar says what each shot of the street shows.
    let (_, s) = sidecar_of("bikes.mp4");
    let s = s.await.expect("sidecar");
    let visual = &s.visual.as_ref().expect("visual block").data;
    assert!(
        visual
            .shots
            .iter()
            .any(|v| v.objects.iter().any(|o| o.label == "bicycle")),
        "{visual:?}"
    );
    // Searched by a word no one said or wrote: only the picture has it.
    let m = search(&engine, "bicycle", SearchFilter::default()).await;
    assert!(m[0].path.ends_with("bikes.mp4"), "{m:?}");
    let mut shows = SearchFilter::default();
    shows.tags = vec![heimdex_core::segments::visual_tag("bicycle")];
    let m = search(&engine, "bike", shows).await;
    assert!(
        !m.is_empty() && m.iter().all(|m| m.path.ends_with("bikes.mp4")),
        "{m:?}"
    );
    for moment in &m {
        assert!(
            moment.segments.iter().all(|seg| seg.starts_with("visual-")),
            "{moment:?}"
        );
    }
    // By meaning: the generated description is embedded, and a match on it is "visual".
    let m = search(&engine, "someone riding a bike", SearchFilter::default()).await;
    let bikes = m
        .iter()
        .find(|m| m.path.ends_with("bikes.mp4"))
        .expect("bikes found");
    assert!(signals(bikes).contains(&"visual"), "{bikes:?}");
}
