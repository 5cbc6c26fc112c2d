//! The `heimdex` CLI contract, exercised as a user would: real clips, real FFmpeg, the
//! embedded default in a temporary home.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn heimdex(home: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_heimdex"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run heimdex");
    eprintln!(
        "$ heimdex {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

#[test]
fn index_search_show_status_reindex_and_delete() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("library");
    std::fs::create_dir_all(lib.join("q2 campaign")).expect("mkdir");
    copy_samples(&samples, &lib, &["bikes.mp4", "bigbuckbunny.mp4"]);
    std::fs::copy(
        samples.join("carphone_pristine.mp4"),
        lib.join("q2 campaign/carphone.mp4"),
    )
    .expect("copy");
    std::fs::write(lib.join("readme.txt"), "not a video").expect("txt");
    let home = tmp.path().join("home");
    let lib_s = lib.to_str().expect("utf8");

    let out = heimdex(&home, &["index", lib_s]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("scan: 3 new, 0 modified, 0 deleted"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("3 indexed, 0 failed"));

    // Every sidecar validates; shots, thumbnails and audio are sensible.
    let validator = sidecar_validator();
    let show = heimdex(
        &home,
        &["show", lib.join("bikes.mp4").to_str().expect("utf8")],
    );
    assert!(show.status.success());
    let bikes = json(&show);
    assert_valid_sidecar(&validator, &bikes);
    let shots = bikes["shots"]["data"]["shots"].as_array().expect("shots");
    assert!(
        shots.len() >= 3,
        "bikes.mp4 has several cuts, got {} shots",
        shots.len()
    );
    assert_eq!(shots.last().expect("last")["end_s"].as_f64(), Some(10.0));
    for s in shots {
        let thumb = s["keyframe"]["thumbnail"].as_str().expect("thumbnail");
        let bytes = std::fs::read(home.join("media").join(thumb)).expect("thumbnail file");
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "thumbnail is a JPEG");
        assert!(s["keyframe"]["width"].as_u64().expect("w") <= 320);
    }
    assert_eq!(bikes["technical"]["data"]["streams"][0]["codec"], "h264");
    let bbb = json(&heimdex(
        &home,
        &["show", lib.join("bigbuckbunny.mp4").to_str().expect("utf8")],
    ));
    assert_valid_sidecar(&validator, &bbb);
    let audio_s = bbb["audio"]["data"]["duration_s"]
        .as_f64()
        .expect("audio decoded");
    assert!((audio_s - 5.3).abs() < 0.2, "audio duration {audio_s}");
    assert_eq!(bbb["technical"]["data"]["streams"][0]["width"], 1280);

    // Search prints moments; --json carries the contract fields.
    let out = heimdex(&home, &["search", "bikes", "--json"]);
    let hits = json(&out);
    let first = &hits[0];
    assert!(first["path"].as_str().expect("path").ends_with("bikes.mp4"));
    assert_eq!(first["start_s"].as_f64(), Some(0.0));
    assert_eq!(first["end_s"].as_f64(), Some(10.0));
    assert!(first["score"].as_f64().expect("score") > 0.0);
    assert!(
        first["snippet"]
            .as_str()
            .expect("snippet")
            .contains("[bikes]")
    );
    let text = stdout(&heimdex(&home, &["search", "campaign"]));
    assert!(
        text.contains("carphone.mp4") && text.contains("00:00:00.000"),
        "{text}"
    );
    let shot_hits = json(&heimdex(
        &home,
        &["search", "\"shot 2\"", "--json", "--limit", "20"],
    ));
    let bikes_shot2 = shot_hits
        .as_array()
        .expect("array")
        .iter()
        .find(|h| h["path"].as_str().is_some_and(|p| p.ends_with("bikes.mp4")))
        .expect("bikes shot 2 found");
    assert_eq!(
        bikes_shot2["start_s"].as_f64(),
        shots[1]["start_s"].as_f64(),
        "moment is time-coded to the shot"
    );
    assert_eq!(bikes_shot2["end_s"].as_f64(), shots[1]["end_s"].as_f64());

    // Filters: kind and time range apply to every hit.
    let filtered = json(&heimdex(
        &home,
        &[
            "search", "shot", "--kind", "shot", "--time", "3-4", "--json", "--limit", "20",
        ],
    ));
    let filtered = filtered.as_array().expect("array");
    assert!(!filtered.is_empty());
    for m in filtered {
        assert!(
            m["start_s"].as_f64().expect("start") <= 4.0
                && m["end_s"].as_f64().expect("end") >= 3.0,
            "{m}"
        );
        assert!(
            m["segments"]
                .as_array()
                .expect("segments")
                .iter()
                .all(|s| s.as_str().is_some_and(|s| s.starts_with("shot-")))
        );
    }
    let campaign = lib.join("q2 campaign");
    let only = json(&heimdex(
        &home,
        &[
            "search",
            "mp4",
            "--json",
            "--path-prefix",
            campaign.to_str().expect("utf8"),
        ],
    ));
    assert_eq!(only.as_array().map(Vec::len), Some(1), "{only}");
    // --asset keeps one asset's moments only (ids as printed by --json).
    let shots_all = json(&heimdex(
        &home,
        &["search", "shot", "--json", "--limit", "50"],
    ));
    let first_asset = shots_all[0]["asset"].as_str().expect("asset id").to_owned();
    let one = json(&heimdex(
        &home,
        &[
            "search",
            "shot",
            "--json",
            "--limit",
            "50",
            "--asset",
            &first_asset,
        ],
    ));
    let one = one.as_array().expect("array");
    assert!(!one.is_empty());
    assert!(
        one.iter().all(|m| m["asset"] == first_asset.as_str()),
        "{one:?}"
    );
    assert!(
        shots_all
            .as_array()
            .expect("array")
            .iter()
            .any(|m| m["asset"] != first_asset.as_str()),
        "the unfiltered search spans several assets"
    );
    let bad = heimdex(&home, &["search", "x", "--time", "later"]);
    assert!(!bad.status.success());

    // Re-running on unchanged files does no work.
    let out = heimdex(&home, &["index", lib_s]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("scan: 0 new, 0 modified, 0 deleted"));
    assert!(stdout(&out).contains("done: 0 indexed"));

    // A modified file is re-indexed; a deleted one leaves the index.
    std::fs::remove_file(lib.join("bikes.mp4")).expect("rm");
    std::fs::copy(samples.join("carphone_pristine.mp4"), lib.join("bikes.mp4")).expect("replace");
    std::fs::remove_file(lib.join("bigbuckbunny.mp4")).expect("rm");
    let out = heimdex(&home, &["index", lib_s]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("scan: 0 new, 1 modified, 1 deleted"),
        "{}",
        stdout(&out)
    );
    let bikes2 = json(&heimdex(
        &home,
        &["show", lib.join("bikes.mp4").to_str().expect("utf8")],
    ));
    assert_eq!(
        bikes2["technical"]["data"]["streams"][0]["width"], 176,
        "re-indexed with the new content"
    );
    let gone = heimdex(&home, &["search", "bigbuckbunny", "--json"]);
    assert_eq!(json(&gone), serde_json::json!([]));
    let bbb_id = bbb["asset"]["id"].as_str().expect("id");
    assert!(
        !home
            .join("media/sidecars")
            .join(format!("{bbb_id}.json"))
            .exists(),
        "sidecar removed"
    );
    let thumbs_left = std::fs::read_dir(home.join("media/thumbs").join(bbb_id))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(thumbs_left, 0, "thumbnails removed");

    let status = json(&heimdex(&home, &["status", "--json"]));
    assert_eq!(status["assets"]["indexed"], 2);
    assert_eq!(status["failures"], serde_json::json!([]));
}

#[test]
fn bad_inputs_fail_their_own_jobs_and_the_rest_indexes() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("library");
    std::fs::create_dir_all(&lib).expect("mkdir");
    write_bad_inputs(&lib, &samples);
    copy_samples(&samples, &lib, &["bikes.mp4"]);
    let home = tmp.path().join("home");

    let out = heimdex(&home, &["index", lib.to_str().expect("utf8")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code says something failed"
    );
    assert!(stdout(&out).contains("1 indexed, 3 failed"));

    let status = json(&heimdex(&home, &["status", "--json"]));
    let failures = status["failures"].as_array().expect("failures");
    let reason = |key: &str| {
        failures
            .iter()
            .find(|f| f["key"] == key)
            .and_then(|f| f["reason"].as_str())
            .unwrap_or_else(|| panic!("no failure for {key}: {failures:?}"))
            .to_owned()
    };
    assert!(
        reason("empty.mp4").contains("empty"),
        "{}",
        reason("empty.mp4")
    );
    assert!(
        reason("random.mp4").contains("not a media file"),
        "{}",
        reason("random.mp4")
    );
    assert!(
        reason("truncated.mp4").contains("truncated or corrupt"),
        "{}",
        reason("truncated.mp4")
    );
    assert!(
        failures.iter().all(|f| f["attempts"] == 1),
        "bad media is not retried"
    );
    assert_eq!(status["assets"]["indexed"], 1);
    assert_eq!(status["assets"]["failed"], 3);
    let text = stdout(&heimdex(&home, &["status"]));
    assert!(
        text.contains("random.mp4: probe: not a media file"),
        "{text}"
    );

    let hits = json(&heimdex(&home, &["search", "bikes", "--json"]));
    assert!(
        hits[0]["path"]
            .as_str()
            .expect("path")
            .ends_with("bikes.mp4")
    );

    // Re-running does not retry unchanged bad files, and says nothing failed this run.
    let again = heimdex(&home, &["index", lib.to_str().expect("utf8")]);
    assert!(again.status.success());
    assert!(stdout(&again).contains("done: 0 indexed, 0 failed"));
}

#[test]
fn usage_errors_are_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = heimdex(tmp.path(), &["index", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));
    let out = heimdex(tmp.path(), &["show", "/definitely/not/here.mp4"]);
    assert!(!out.status.success());
    let out = heimdex(tmp.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}

#[test]
fn sources_are_listed_and_resynced_without_naming_them() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    copy_samples(&samples, &lib, &["bikes.mp4"]);

    let out = heimdex(&home, &["index", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "nothing registered yet");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sources registered"));
    let out = heimdex(&home, &["sources"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("no sources yet"));

    let out = heimdex(
        &home,
        &["--no-ml", "index", "--quiet", lib.to_str().unwrap()],
    );
    assert!(out.status.success());
    let out = heimdex(&home, &["sources"]);
    let text = stdout(&out);
    let canonical = lib.canonicalize().expect("canonical");
    assert!(text.contains(&canonical.display().to_string()), "{text}");
    assert!(
        text.contains("local") && text.contains("last sync 20"),
        "{text}"
    );
    let listed = json(&heimdex(&home, &["sources", "--json"]));
    let first_sync = listed[0]["synced_ms"].as_i64().expect("synced_ms");

    // `index` with no source syncs every registered one: nothing changed, then a new file.
    let out = heimdex(&home, &["--no-ml", "index", "--quiet"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("scan: 0 new, 0 modified, 0 deleted"),
        "{}",
        stdout(&out)
    );
    copy_samples(&samples, &lib, &["carphone_pristine.mp4"]);
    let out = heimdex(&home, &["--no-ml", "index", "--quiet"]);
    assert!(
        stdout(&out).contains("scan: 1 new, 0 modified, 0 deleted"),
        "{}",
        stdout(&out)
    );
    let listed = json(&heimdex(&home, &["sources", "--json"]));
    assert!(listed[0]["synced_ms"].as_i64().expect("synced_ms") >= first_sync);
    let status = json(&heimdex(&home, &["status", "--json"]));
    assert_eq!(status["assets"]["indexed"], 2, "{status}");

    // An option that is not KEY=VALUE is a usage error.
    let out = heimdex(&home, &["index", "-o", "endpoint", lib.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY=VALUE"));
}
