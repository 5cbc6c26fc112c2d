//! The committed JSON Schema (`docs/sidecar-schema.json`) must match the Rust types, and
//! sidecars must validate against it. Regenerate after a deliberate schema change with
//! `make bless-schema` (the `bless_schema` example) and review the diff; this test only
//! ever compares.

use std::collections::BTreeMap;
use std::path::PathBuf;

use heimdex_core::sidecar::*;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/sidecar-schema.json")
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = serde_json::to_string_pretty(&json_schema()).expect("schema json") + "\n";
    let path = schema_path();
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run `make bless-schema` to create it)",
            path.display()
        )
    });
    assert!(
        committed == generated,
        "docs/sidecar-schema.json drifted from heimdex_core::sidecar; run `make bless-schema` \
         and review the diff"
    );
}

fn info(name: &str) -> ExtractorInfo {
    ExtractorInfo {
        name: name.into(),
        version: "1".into(),
        model: Some(ModelIdentity {
            name: "m".into(),
            sha256: "ab".repeat(32),
        }),
        params: None,
    }
}

fn full_sidecar() -> Sidecar {
    let mut s = Sidecar::new(SidecarAsset {
        id: "a1".into(),
        tenant: "default".into(),
        source: "local-1".into(),
        key: "q2/sunset.mp4".into(),
        version: "10-20".into(),
        size: 10,
    });
    s.technical = Some(StageBlock::new(
        info("ffmpeg.probe"),
        3,
        Technical {
            container: "mov,mp4".into(),
            container_long: Some("QuickTime / MOV".into()),
            duration_s: Some(5.0),
            bitrate: Some(1_000_000),
            creation_time: Some("2024-06-01T10:00:00Z".into()),
            tags: BTreeMap::from([("title".into(), "Sunset".into())]),
            streams: vec![StreamInfo {
                index: 0,
                kind: StreamKind::Video,
                codec: "h264".into(),
                profile: Some("High".into()),
                duration_s: Some(5.0),
                bitrate: None,
                width: Some(1280),
                height: Some(720),
                rotation: Some(90),
                fps: Some(25.0),
                frames: Some(125),
                pix_fmt: Some("yuv420p".into()),
                sample_rate: None,
                channels: None,
                language: None,
            }],
        },
    ));
    s.shots = Some(StageBlock::new(
        info("shots"),
        1,
        Shots {
            method: "content-hsv".into(),
            threshold: 27.0,
            frames_analyzed: 125,
            shots: vec![Shot {
                index: 0,
                start_s: 0.0,
                end_s: 5.0,
                start_frame: 0,
                end_frame: 125,
                keyframe: Some(Keyframe {
                    time_s: 0.5,
                    frame: 12,
                    thumbnail: "thumbs/a1/shot-00000.jpg".into(),
                    width: 320,
                    height: 180,
                }),
                descriptors: vec!["bright".into(), "orange".into()],
            }],
        },
    ));
    s.transcript = Some(StageBlock::new(
        info("asr"),
        1,
        Transcript {
            language: Some("en".into()),
            segments: vec![TranscriptSegment {
                start_s: 1.0,
                end_s: 2.0,
                text: "hello".into(),
                words: vec![Word {
                    start_s: 1.0,
                    end_s: 1.5,
                    text: "hello".into(),
                    confidence: Some(0.9),
                }],
            }],
        },
    ));
    s.extensions.insert(
        "example".into(),
        StageBlock::new(
            info("example"),
            0,
            CustomBlock {
                data: serde_json::json!({"k": [1, 2]}),
                spans: vec![TextSpan {
                    start_s: 0.0,
                    end_s: 1.0,
                    text: "x".into(),
                    tags: vec![],
                }],
            },
        ),
    );
    s
}

#[test]
fn sidecars_validate_against_the_schema_and_round_trip() {
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let sidecar = full_sidecar();
    let value: serde_json::Value = serde_json::from_slice(&sidecar.to_json_pretty()).expect("json");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let back: Sidecar = serde_json::from_value(value.clone()).expect("deserialize");
    assert_eq!(back, sidecar);

    // The schema really constrains: unknown fields and wrong types are rejected.
    let mut bad = value.clone();
    bad["surprise"] = serde_json::json!(1);
    assert!(!validator.is_valid(&bad));
    let mut bad = value;
    bad["schema_version"] = serde_json::json!("one");
    assert!(!validator.is_valid(&bad));
}

#[test]
fn stage_identity_drives_reuse() {
    let s = full_sidecar();
    assert!(s.has_stage(&info("asr")));
    let mut other = info("asr");
    other.model = Some(ModelIdentity {
        name: "m".into(),
        sha256: "cd".repeat(32),
    });
    assert!(
        !s.has_stage(&other),
        "a different model hash is a different stage"
    );
    assert_eq!(s.stages().len(), 4);
}
