//! Regenerates the committed sidecar JSON Schema (`docs/sidecar-schema.json`) from
//! `heimdex_core::sidecar` after a deliberate schema change:
//!
//! ```text
//! make bless-schema      # = cargo run -p heimdex-core --example bless_schema
//! git diff docs/sidecar-schema.json
//! ```
//!
//! Blessing is this separate command, never a test mode: the `sidecar_schema` test always
//! compares the committed file with the types.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/sidecar-schema.json");
    let generated = serde_json::to_string_pretty(&heimdex_core::sidecar::json_schema())? + "\n";
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    if before == generated {
        println!("{}: unchanged", path.display());
    } else {
        std::fs::write(&path, &generated).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}: written; review the diff", path.display());
    }
    Ok(())
}
