//! Example: use Heimdex as a library and plug in an `Extractor` of your own.
//!
//! Run it with `cargo run -p custom-extractor -- path/to/video.mp4` (CI runs it on
//! `bikes.mp4` from the samples). It assembles the embedded engine (SQLite store, persisted
//! in-process queue, in-process index, local media folder) in a temporary home, adds a
//! `LumaExtractor` that labels each shot's keyframe as a "night" or "daylight" scene from its
//! mean luma, indexes the video, and searches for the labels the extractor wrote: the custom
//! stage's output is in the sidecar and searchable like any built-in stage.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use heimdex_core::extractor::{ExtractContext, ExtractError, Extractor, Needs, StageData};
use heimdex_core::index::SearchRequest;
use heimdex_core::sidecar::{CustomBlock, ExtractorInfo, TextSpan};
use heimdex_server::engine::{Engine, EngineConfig, SilentProgress};

/// Labels shots by the mean luma (Rec. 601) of their keyframe.
#[derive(Debug)]
struct LumaExtractor {
    night_below: f64,
}

impl Extractor for LumaExtractor {
    fn info(&self) -> ExtractorInfo {
        ExtractorInfo {
            name: "example.luma".into(),
            version: "1".into(),
            model: None,
            params: Some(format!("night_below={}", self.night_below)),
        }
    }

    fn needs(&self) -> Needs {
        Needs::keyframes()
    }

    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let shots = ctx
            .sidecar
            .shots
            .as_ref()
            .ok_or_else(|| ExtractError::MissingInput {
                what: "shots".into(),
            })?;
        let mut spans = Vec::new();
        let mut lumas = Vec::new();
        for (i, frame) in ctx.keyframes.iter().enumerate() {
            let pixels = frame.rgb.chunks_exact(3);
            let n = pixels.len().max(1) as f64;
            let luma: f64 = pixels
                .map(|p| {
                    0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
                })
                .sum::<f64>()
                / n;
            let Some(shot) = shots.data.shots.get(frame.shot_index as usize) else {
                continue;
            };
            let label = if luma < self.night_below {
                "night scene"
            } else {
                "daylight scene"
            };
            spans.push(TextSpan {
                start_s: shot.start_s,
                end_s: shot.end_s,
                text: format!("{label} luma {luma:.0}"),
                tags: vec![format!("luma:{}", (luma / 32.0).floor() as u32)],
            });
            lumas.push(luma);
            (ctx.progress)((i + 1) as f32 * 100.0 / ctx.keyframes.len() as f32);
        }
        Ok(StageData::Custom(CustomBlock {
            data: serde_json::json!({ "mean_luma_per_shot": lumas }),
            spans,
        }))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let video: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: custom-extractor VIDEO")?;
    let home = tempfile::tempdir()?;
    let engine = Engine::open_embedded(home.path(), EngineConfig::default(), None)
        .await?
        .with_extractor(Arc::new(LumaExtractor { night_below: 60.0 }));

    let source = engine
        .add_local_path(&heimdex_core::TenantId::default_tenant(), &video)
        .await?;
    let scan = engine
        .scan(&heimdex_core::TenantId::default_tenant(), &source.id)
        .await?;
    let run = engine.run_until_idle(Arc::new(SilentProgress)).await?;
    println!("scan {scan:?}; run {run:?}");
    if run.indexed != 1 {
        bail!("expected the video to index, got {run:?}");
    }

    let sidecar = engine
        .sidecar_for_path(&heimdex_core::TenantId::default_tenant(), &video)
        .await?;
    let block = sidecar
        .extensions
        .get("example.luma")
        .context("the custom stage's block is missing from the sidecar")?;
    println!("custom block: {}", serde_json::to_string(&block.data.data)?);

    let mut found = 0;
    for query in ["daylight scene", "night scene"] {
        let req = SearchRequest::new(heimdex_core::TenantId::default_tenant())
            .with_text(query)
            .with_limit(5);
        for m in engine.search(&req).await? {
            println!(
                "{query:>15}: {} {:.2}-{:.2}s score {:.3} {}",
                m.path,
                m.start_s,
                m.end_s,
                m.score,
                m.snippet.as_deref().unwrap_or("")
            );
            found += 1;
        }
    }
    if found == 0 {
        bail!("no moment matched the custom extractor's labels");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LumaExtractor;

    #[test]
    fn luma_extractor_passes_the_extractor_conformance_suite() {
        heimdex_core::conformance::extractor::run_all(&LumaExtractor { night_below: 60.0 });
    }
}
