//! Many processes on one home, killed processes, and rebuilding the index: nothing is lost.
//!
//! These run the real `heimdex` binary on real FFmpeg-decoded clips (the FFmpeg stages only,
//! `--no-ml`, so a run takes seconds), as a user would: several terminals at once, Ctrl-C or
//! `kill -9` at any moment, then one more run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Code words: each clip is named after one, so a search for the word finds exactly it.
const WORDS: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
];

/// Messages of raw storage failures that must never reach a user.
const RAW_ERRORS: [&str; 5] = [
    "sqlite error",
    "pool timed out",
    "rename into",
    "database is locked",
    "No such file or directory",
];

fn heimdex_cmd(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heimdex"));
    c.arg("--home").arg(home).arg("--no-ml").args(args);
    c
}

fn heimdex(home: &Path, args: &[&str]) -> Output {
    let out = heimdex_cmd(home, args).output().expect("run heimdex");
    eprintln!(
        "$ heimdex {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON on stdout ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// A small generated clip (lavfi test pattern `variant`, 2 s, 160x90) at `path`.
fn generate(path: &Path, variant: usize) {
    let sources = [
        "testsrc2",
        "smptebars",
        "rgbtestsrc",
        "testsrc",
        "smptehdbars",
        "pal75bars",
        "yuvtestsrc",
        "pal100bars",
    ];
    let src = sources[variant % sources.len()];
    let hue = (variant * 37) % 360;
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("{src}=size=160x90:rate=25:duration=2,hue=h={hue}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(path)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg failed for {}", path.display());
}

/// A library of 8 clips: 4 real samples and 4 generated ones, each named after a code word.
fn library(root: &Path) -> PathBuf {
    let samples = samples();
    let lib = root.join("library");
    std::fs::create_dir_all(&lib).expect("mkdir");
    let real = [
        "bikes.mp4",
        "bigbuckbunny.mp4",
        "carphone_pristine.mp4",
        "harbor_news.mp4",
    ];
    for (word, name) in WORDS.iter().zip(real) {
        std::fs::copy(samples.join(name), lib.join(format!("{word}.mp4"))).expect("copy");
    }
    for (i, word) in WORDS.iter().enumerate().skip(real.len()) {
        generate(&lib.join(format!("{word}.mp4")), i);
    }
    lib
}

fn status(home: &Path) -> serde_json::Value {
    let out = heimdex(home, &["status", "--json"]);
    assert!(out.status.success());
    json(&out)
}

fn count(v: &serde_json::Value, group: &str, state: &str) -> u64 {
    v[group][state].as_u64().unwrap_or(0)
}

/// The file each code word finds first (none when nothing matches).
fn word_hits(home: &Path) -> BTreeMap<String, Option<String>> {
    WORDS
        .iter()
        .map(|w| {
            let out = heimdex(home, &["search", w, "--json", "--limit", "1"]);
            assert!(out.status.success());
            let hits = json(&out);
            let file = hits[0]["path"]
                .as_str()
                .and_then(|p| Path::new(p).file_name()?.to_str().map(str::to_owned));
            (w.to_string(), file)
        })
        .collect()
}

fn assert_every_clip_found(home: &Path, lib: &Path) {
    let files: Vec<String> = std::fs::read_dir(lib)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for (word, file) in word_hits(home) {
        let expected = format!("{word}.mp4");
        if files.contains(&expected) {
            assert_eq!(file.as_deref(), Some(expected.as_str()), "search {word}");
        }
    }
}

/// Documents a single uninterrupted run on a fresh home writes for `lib`.
fn single_run_documents(root: &Path, lib: &Path) -> u64 {
    let home = root.join("reference-home");
    let out = heimdex(&home, &["index", "--quiet", lib.to_str().expect("utf8")]);
    assert!(out.status.success());
    status(&home)["index_documents"]
        .as_u64()
        .expect("document count")
}

fn assert_clean(home: &Path) {
    let out = heimdex(home, &["check", "--json"]);
    let report = json(&out);
    assert_eq!(report["clean"], true, "check: {report:#}");
    assert!(out.status.success());
}

fn assert_no_raw_errors(stderr: &str) {
    for raw in RAW_ERRORS {
        assert!(
            !stderr.contains(raw),
            "raw storage error {raw:?} in: {stderr}"
        );
    }
}

#[test]
fn three_index_runs_at_once_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = library(tmp.path());
    let home = tmp.path().join("home");
    let lib_s = lib.to_str().expect("utf8");
    let children: Vec<Child> = (0..3)
        .map(|_| {
            heimdex_cmd(&home, &["index", "--quiet", lib_s])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut waited = 0;
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
        assert!(out.status.success(), "a concurrent run failed: {stderr}");
        assert_no_raw_errors(&stderr);
        waited += usize::from(stderr.contains("waiting for"));
    }
    assert!(waited >= 1, "the later runs say they wait for the first");
    let st = status(&home);
    assert_eq!(count(&st, "assets", "indexed"), 8, "{st:#}");
    assert_eq!(count(&st, "assets", "failed"), 0, "{st:#}");
    assert_every_clip_found(&home, &lib);
    assert_eq!(
        st["index_documents"].as_u64(),
        Some(single_run_documents(tmp.path(), &lib)),
        "same documents as one run"
    );
    assert_clean(&home);
}

/// splitmix64: reproducible kill times (the seed is printed).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn killed_runs_then_one_more_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = library(tmp.path());
    let home = tmp.path().join("home");
    let lib_s = lib.to_str().expect("utf8").to_owned();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    eprintln!("kill schedule seed {seed}");
    let mut killed_mid_run = 0;
    let mut round = 0;
    // Runs after the first have one or two clips of work (a few hundred ms): kill times are
    // drawn over that span, and rounds go on until ten runs were really cut short.
    while killed_mid_run < 10 {
        assert!(round < 60, "could not interrupt ten runs in {round} rounds");
        // Give every round work to interrupt: a clip changes, one goes away, one comes back.
        let word = WORDS[round % WORDS.len()];
        let changed = lib.join(format!("{word}.mp4"));
        if round % 3 == 2 {
            let _ = std::fs::remove_file(&changed);
        } else {
            generate(&changed, round + 3);
        }
        if round % 4 == 3 {
            let other = lib.join(format!("{}.mp4", WORDS[(round + 4) % WORDS.len()]));
            generate(&other, round + 11);
        }
        let delay = Duration::from_millis(20 + next(&mut seed) % 700);
        let mut child = heimdex_cmd(&home, &["index", "--quiet", &lib_s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if started.elapsed() >= delay {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                killed_mid_run += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("round {round}: {word} changed, stop at {delay:?}");
        round += 1;
    }
    assert!(
        killed_mid_run >= 10,
        "only {killed_mid_run} runs were killed mid-run"
    );
    let out = heimdex(&home, &["index", "--quiet", &lib_s]);
    assert!(out.status.success(), "the run after the kills succeeds");
    assert_no_raw_errors(&String::from_utf8_lossy(&out.stderr));

    let files = std::fs::read_dir(&lib).expect("ls").count() as u64;
    let st = status(&home);
    assert_eq!(count(&st, "assets", "indexed"), files, "{st:#}");
    assert_eq!(count(&st, "assets", "failed"), 0, "{st:#}");
    assert_every_clip_found(&home, &lib);
    assert_eq!(
        st["index_documents"].as_u64(),
        Some(single_run_documents(tmp.path(), &lib)),
        "no duplicate or missing documents"
    );
    assert_clean(&home);
    // No orphan media: one sidecar per asset, thumbnails only of known assets (check says
    // so too; count the files as a second witness).
    let sidecars = std::fs::read_dir(home.join("media/default/sidecars"))
        .expect("sidecars")
        .count() as u64;
    assert_eq!(sidecars, files, "one sidecar per asset");
    // Assets with thumbnail files (a deleted asset may leave its emptied folder behind).
    let with_thumbs = std::fs::read_dir(home.join("media/default/thumbs"))
        .expect("thumbs")
        .filter(|d| {
            let dir = d.as_ref().expect("entry").path();
            std::fs::read_dir(dir).expect("thumb dir").count() > 0
        })
        .count() as u64;
    assert_eq!(with_thumbs, files, "thumbnails only of indexed assets");
}

#[test]
fn readers_run_while_a_writer_indexes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = library(tmp.path());
    let home = tmp.path().join("home");
    let writer = heimdex_cmd(&home, &["index", "--quiet", lib.to_str().expect("utf8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Searches, status and check while the writer works: none fails, none waits for it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reads = 0;
    let mut writer = Some(writer);
    while let Some(mut w) = writer.take() {
        if w.try_wait().expect("try_wait").is_some() || Instant::now() > deadline {
            let out = w.wait_with_output().expect("wait");
            assert!(out.status.success());
            break;
        }
        writer = Some(w);
        for args in [
            &["search", "alpha", "--json"][..],
            &["status", "--json"][..],
        ] {
            let t = Instant::now();
            let out = heimdex(&home, args);
            assert!(out.status.success(), "reader failed while a writer runs");
            assert_no_raw_errors(&String::from_utf8_lossy(&out.stderr));
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "a reader waited {:?}",
                t.elapsed()
            );
            reads += 1;
        }
    }
    assert!(reads >= 2);
    assert_every_clip_found(&home, &lib);
}

#[test]
fn reindex_rebuilds_identical_results_from_sidecars() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = library(tmp.path());
    let home = tmp.path().join("home");
    let out = heimdex(&home, &["index", "--quiet", lib.to_str().expect("utf8")]);
    assert!(out.status.success());
    let queries = ["alpha", "bravo hotel", "golf*", "colorful", "blue", "mp4"];
    let results = |home: &Path| -> Vec<serde_json::Value> {
        queries
            .iter()
            .map(|q| {
                let out = heimdex(home, &["search", q, "--json", "--limit", "20"]);
                assert!(out.status.success());
                json(&out)
            })
            .collect()
    };
    let before = results(&home);
    assert!(
        before
            .iter()
            .all(|r| !r.as_array().expect("array").is_empty())
    );
    std::fs::remove_dir_all(home.join("index")).expect("rm index");
    let gone = heimdex(&home, &["search", "alpha", "--json"]);
    assert_eq!(json(&gone), serde_json::json!([]), "index really gone");
    let check = json(&heimdex(&home, &["check", "--json"]));
    assert_eq!(
        check["found"]["missing_documents"].as_array().map(Vec::len),
        Some(8),
        "check sees the gap: {check:#}"
    );
    let out = heimdex_cmd(&home, &["reindex"])
        .env("HEIMDEX_MODELS", tmp.path().join("no-models-here"))
        .output()
        .expect("reindex");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert!(text.contains("reindex: 8 assets"), "{text}");
    assert_eq!(results(&home), before, "identical moments and scores");
    assert_clean(&home);
}

/// With the default models: transcript, OCR, faces and text vectors come back from the
/// sidecars alone. `reindex` runs with the models out of reach, and hybrid searches (keyword
/// and meaning, fused) give the same moments and scores as before.
#[test]
fn reindex_restores_hybrid_results_without_models() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("library");
    std::fs::create_dir_all(&lib).expect("mkdir");
    copy_samples(
        &samples,
        &lib,
        &["harbor_news.mp4", "carphone_pristine.mp4"],
    );
    let home = tmp.path().join("home");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_heimdex"))
            .arg("--home")
            .arg(&home)
            .args(args)
            .output()
            .expect("run heimdex");
        eprintln!(
            "$ heimdex {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success());
        out
    };
    run(&["index", "--quiet", lib.to_str().expect("utf8")]);
    let queries = [
        "boats arriving at sunset",
        "lobster",
        "seafood dinner",
        "festival",
    ];
    let results = || -> Vec<serde_json::Value> {
        queries
            .iter()
            .map(|q| json(&run(&["search", q, "--json", "--limit", "10"])))
            .collect()
    };
    let before = results();
    let signals: BTreeSet<String> = before
        .iter()
        .flat_map(|r| r.as_array().expect("array").iter())
        .flat_map(|m| m["signals"].as_array().expect("signals").iter())
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    assert!(
        signals.contains("keyword") && signals.iter().any(|s| s.starts_with("vector")),
        "both signals present before: {signals:?}"
    );
    std::fs::remove_dir_all(home.join("index")).expect("rm index");
    let out = Command::new(env!("CARGO_BIN_EXE_heimdex"))
        .arg("--home")
        .arg(&home)
        .arg("reindex")
        .env("HEIMDEX_MODELS", tmp.path().join("no-models-here"))
        .output()
        .expect("reindex");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("reindex: 2 assets"));
    assert_eq!(results(), before, "identical moments and scores");
}
