//! Shot detection on clips generated with the ffmpeg CLI, where the true cuts are known.

mod common;

use common::*;

const SIZE: &str = "320x240";

/// Concatenate lavfi sources of known frame counts (25 fps) into an H.264 MP4.
fn concat_clip(dir: &std::path::Path, name: &str, sources: &[(&str, u32)]) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut args: Vec<String> = Vec::new();
    for (src, _) in sources {
        args.extend([
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!(
                "{src}{}size={SIZE}:rate=25",
                if src.contains('=') { ':' } else { '=' }
            ),
        ]);
    }
    let mut graph = String::new();
    for (i, (_, frames)) in sources.iter().enumerate() {
        graph.push_str(&format!(
            "[{i}:v]trim=end_frame={frames},setpts=PTS-STARTPTS,format=yuv420p,setsar=1[v{i}];"
        ));
    }
    for i in 0..sources.len() {
        graph.push_str(&format!("[v{i}]"));
    }
    graph.push_str(&format!("concat=n={}:v=1:a=0[out]", sources.len()));
    args.extend(
        [
            "-filter_complex",
            &graph,
            "-map",
            "[out]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "250",
            "-pix_fmt",
            "yuv420p",
        ]
        .map(String::from),
    );
    args.push(out.to_string_lossy().into_owned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
    out
}

#[test]
fn hard_cuts_are_found_within_one_frame() {
    let dir = tempfile::tempdir().unwrap();
    let sources = [
        ("testsrc2", 40),
        ("smptebars", 30),
        ("mandelbrot", 45),
        ("color=c=red", 35),
        ("rgbtestsrc", 30),
        ("testsrc", 40),
        ("color=c=0x104010", 25),
        ("smptehdbars", 30),
    ];
    let clip = concat_clip(dir.path(), "cuts.mp4", &sources);
    let mut pct = Vec::new();
    let a = heimdex_pipeline::analyze(
        open(&clip),
        &heimdex_pipeline::AnalyzeOptions::default(),
        &mut |p| pct.push((p.stage, p.percent)),
    )
    .unwrap();
    let total: u32 = sources.iter().map(|s| s.1).sum();
    assert_eq!(a.shots.frames_analyzed, u64::from(total));
    let mut expected = Vec::new();
    let mut acc = 0u64;
    for (_, n) in &sources[..sources.len() - 1] {
        acc += u64::from(*n);
        expected.push(acc);
    }
    assert_cuts(&cut_frames(&a), &expected, 1);
    assert_well_formed(&a);
    // Times are frame times at 25 fps; the last shot ends at the end of the video.
    let last = a.shots.shots.last().unwrap();
    assert!(
        (last.end_s - f64::from(total) / 25.0).abs() < 1e-6,
        "end {}",
        last.end_s
    );
    assert!((a.shots.shots[1].start_s - 40.0 / 25.0).abs() < 0.041);
    // The solid red shot is described as red.
    assert!(
        a.keyframes[3].descriptors.contains(&"red".to_owned()),
        "{:?}",
        a.keyframes[3]
    );
    // Keyframe 0.5 s into a shot long enough.
    assert_eq!(a.keyframes[0].frame, 13);
    // No audio stream in this clip.
    assert!(a.audio.is_none());
    // Progress: probe first, decode monotonic, at most ~100 calls, ends at 100.
    assert_eq!(pct.first().map(|p| p.0), Some("probe"));
    assert!(pct.len() <= 110);
    let dec: Vec<f32> = pct
        .iter()
        .filter(|p| p.0 == "decode")
        .map(|p| p.1)
        .collect();
    assert!(dec.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(dec.last(), Some(&100.0));
}

#[test]
fn gradual_motion_is_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    for (name, src) in [("mandel.mp4", "mandelbrot"), ("testsrc2.mp4", "testsrc2")] {
        let clip = concat_clip(dir.path(), name, &[(src, 150)]);
        let a = analyze_path(&clip).unwrap();
        assert_eq!(a.shots.frames_analyzed, 150);
        assert_eq!(a.shots.shots.len(), 1, "{src}: {:?}", cut_frames(&a));
        assert_well_formed(&a);
    }
}

#[test]
fn min_shot_frames_suppresses_close_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let clip = concat_clip(
        dir.path(),
        "close.mp4",
        &[
            ("color=c=red", 30),
            ("color=c=blue", 5),
            ("color=c=green", 30),
        ],
    );
    let a = analyze_path(&clip).unwrap();
    // The blue flash is shorter than min_shot_frames (15): only the first cut is kept.
    assert_cuts(&cut_frames(&a), &[30], 0);
    let opts = heimdex_pipeline::AnalyzeOptions {
        min_shot_frames: 3,
        ..Default::default()
    };
    let a = heimdex_pipeline::analyze(open(&clip), &opts, &mut |_| {}).unwrap();
    assert_cuts(&cut_frames(&a), &[30, 35], 0);
    assert_well_formed(&a);
}

#[test]
fn keyframes_stay_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let sources = [
        ("testsrc2", 20),
        ("smptebars", 20),
        ("color=c=red", 20),
        ("rgbtestsrc", 20),
        ("testsrc", 20),
        ("color=c=0x104010", 20),
        ("smptehdbars", 20),
        ("color=c=blue", 20),
    ];
    let clip = concat_clip(dir.path(), "budget.mp4", &sources);
    let full = heimdex_pipeline::analyze(
        open(&clip),
        &heimdex_pipeline::AnalyzeOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let full_bytes: usize = full.keyframes.iter().map(|k| k.rgb.len()).sum();
    let budget = full_bytes / 5;
    let opts = heimdex_pipeline::AnalyzeOptions {
        keyframe_budget_bytes: budget,
        ..heimdex_pipeline::AnalyzeOptions::default()
    };
    let small = heimdex_pipeline::analyze(open(&clip), &opts, &mut |_| {}).unwrap();
    assert_eq!(
        small.keyframes.len(),
        full.keyframes.len(),
        "one keyframe per shot still"
    );
    let small_bytes: usize = small.keyframes.iter().map(|k| k.rgb.len()).sum();
    assert!(
        small_bytes <= budget,
        "{small_bytes} bytes over a budget of {budget}"
    );
    for (s, f) in small.keyframes.iter().zip(&full.keyframes) {
        assert_eq!(s.rgb.len(), (s.width * s.height * 3) as usize);
        assert!(s.width < f.width, "shrunk");
        assert_eq!(
            s.thumbnail_jpeg.len(),
            f.thumbnail_jpeg.len(),
            "thumbnails unaffected"
        );
        assert_eq!(s.time_s, f.time_s);
    }
}
