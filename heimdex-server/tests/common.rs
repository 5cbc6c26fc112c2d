//! Shared helpers of the heimdex-server integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The samples folder. Panics with the fix when `HEIMDEX_SAMPLES` is unset or incomplete:
/// `make test` and CI always fetch the samples first, so a missing folder is a setup error
/// to report, never a reason to pass without testing.
pub fn samples() -> PathBuf {
    let Some(p) = std::env::var_os("HEIMDEX_SAMPLES").map(PathBuf::from) else {
        panic!("HEIMDEX_SAMPLES is not set: run `make samples` and set HEIMDEX_SAMPLES=samples");
    };
    assert!(
        p.join("bikes.mp4").exists(),
        "HEIMDEX_SAMPLES={} has no bikes.mp4: run `make samples`",
        p.display()
    );
    p
}

/// Copy named samples into `dir`.
pub fn copy_samples(samples: &Path, dir: &Path, names: &[&str]) {
    for n in names {
        std::fs::copy(samples.join(n), dir.join(n)).expect("copy sample");
    }
}

/// A validator for the committed sidecar JSON Schema.
pub fn sidecar_validator() -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/sidecar-schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file"))
            .expect("schema json");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// Assert `value` validates against the sidecar schema.
pub fn assert_valid_sidecar(validator: &jsonschema::Validator, value: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "sidecar does not validate: {errors:?}");
}

/// Write the three kinds of bad input the CLI must survive.
pub fn write_bad_inputs(dir: &Path, samples: &Path) {
    std::fs::write(dir.join("empty.mp4"), b"").expect("empty");
    // Deterministic pseudo-random bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(dir.join("random.mp4"), noise).expect("random");
    let full = std::fs::read(samples.join("bigbuckbunny.mp4")).expect("bbb");
    std::fs::write(dir.join("truncated.mp4"), &full[..full.len() * 2 / 5]).expect("truncated");
}
