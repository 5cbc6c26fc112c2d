//! Reading in place, measured (`cargo bench -p heimdex-server --features connectors --bench
//! connectors`, release; needs `moto_server` from `make deps` and ffmpeg).
//!
//! Real clips (the samples, plus a generated 30 s 1920x1080 H.264 clip, once with the index
//! (`moov`) at the end and once at the front) are put in an S3 bucket served by moto and read
//! through the S3 connector and [`RangeReader`], as the engine's workers read them:
//!
//! - bytes fetched ÷ object size for the probe only (`heimdex_pipeline::probe`) and for the
//!   media pipeline (`heimdex_pipeline::analyze`: probe, one decode, shots, keyframes,
//!   thumbnails, audio), at the engine's read block (`EngineConfig::read_block`) and others;
//! - wall time of the media pipeline from S3 ÷ from the local disk (the same reader over the
//!   local connector), median of 3.
//!
//! Targets (issue "Connect, not copy"): probe ≤ 0.05 (≤ 0.02 with the index at the front),
//! pipeline ≤ 1.1, S3 ÷ local ≤ 1.2.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use heimdex_connectors::{ConnectorRegistry, LocalConnector, RangeReader, SourceSpec};
use heimdex_core::Connector;
use heimdex_pipeline::AnalyzeOptions;

const RUNS: usize = 3;

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_moto() -> Moto {
    let port = free_port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server not found: run `make deps`");
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(30), "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto(child, port)
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 30 s 1080p H.264 + AAC clip, `moov` at the end or (faststart) at the front.
fn hd_clip(dir: &Path, faststart: bool) -> PathBuf {
    let out = dir.join(if faststart {
        "hd_faststart.mp4"
    } else {
        "hd_moov_at_end.mp4"
    });
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1920x1080:rate=25:duration=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=330:duration=30",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "20",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
    ];
    if faststart {
        args.extend(["-movflags", "+faststart"]);
    }
    let path = out.to_string_lossy().into_owned();
    args.push(&path);
    ffmpeg(&args);
    out
}

fn create_bucket(port: u16, bucket: &str) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "create bucket: {out}");
}

#[derive(Clone, Copy)]
struct Read {
    bytes: u64,
    requests: u64,
    wall: Duration,
}

/// Read `key` through `connector` with a [`RangeReader`] of `block` bytes: the probe only,
/// or the whole media pipeline.
async fn read(connector: Arc<dyn Connector>, key: &str, block: u64, full: bool) -> Read {
    let meta = connector.stat(key).await.expect("stat");
    let handle = tokio::runtime::Handle::current();
    let key = key.to_owned();
    tokio::task::spawn_blocking(move || {
        let reader =
            RangeReader::new(connector, key, meta.size, block, handle).with_version(meta.version);
        let stats = reader.stats();
        let t = Instant::now();
        if full {
            heimdex_pipeline::analyze(Box::new(reader), &AnalyzeOptions::default(), &mut |_| {})
                .map(drop)
                .expect("analyze");
        } else {
            heimdex_pipeline::probe(Box::new(reader))
                .map(drop)
                .expect("probe");
        }
        Read {
            bytes: stats.bytes(),
            requests: stats.request_count(),
            wall: t.elapsed(),
        }
    })
    .await
    .expect("task")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let samples = PathBuf::from(
        std::env::var_os("HEIMDEX_SAMPLES").expect("HEIMDEX_SAMPLES: run `make samples`"),
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("clips");
    std::fs::create_dir_all(&dir).expect("mkdir");
    println!("generating 30 s 1080p clips…");
    let mut clips = vec![hd_clip(&dir, false), hd_clip(&dir, true)];
    for name in ["bigbuckbunny.mp4", "bikes.mp4", "harbor_news.mp4"] {
        let to = dir.join(name);
        std::fs::copy(samples.join(name), &to).expect("copy sample");
        clips.push(to);
    }

    let moto = start_moto();
    create_bucket(moto.1, "bench");
    let spec = SourceSpec::parse("s3://bench/clips")
        .expect("spec")
        .with_options([
            ("endpoint", format!("http://127.0.0.1:{}", moto.1)),
            ("allow_http", "true".into()),
            ("region", "us-east-1".into()),
            ("access_key_id", "bench".into()),
            ("secret_access_key", "bench".into()),
        ]);
    let s3 = ConnectorRegistry::default()
        .build(&spec)
        .expect("s3 connector");
    let raw = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{}", moto.1))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name("bench")
        .with_access_key_id("bench")
        .with_secret_access_key("bench")
        .build()
        .expect("raw s3");
    for c in &clips {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(c).expect("read clip");
        object_store::ObjectStoreExt::put(
            &raw,
            &object_store::path::Path::from(format!("clips/{name}")),
            bytes.into(),
        )
        .await
        .expect("upload");
    }
    let local: Arc<dyn Connector> = Arc::new(LocalConnector::new(&dir).expect("local"));
    let engine_block = heimdex_server::engine::EngineConfig::default().read_block;

    println!("\n## Bytes read ÷ size (S3 on moto)\n");
    println!(
        "| clip | size | block | probe bytes (requests) | probe ÷ size | pipeline bytes (requests) | pipeline ÷ size |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for c in &clips {
        let key = c.file_name().unwrap().to_string_lossy().into_owned();
        let size = std::fs::metadata(c).expect("meta").len();
        for block in [64 << 10, 256 << 10, 1 << 20] {
            let probe = read(Arc::clone(&s3), &key, block, false).await;
            let full = read(Arc::clone(&s3), &key, block, true).await;
            println!(
                "| {key} | {size} | {} KiB{} | {} ({}) | {:.3} | {} ({}) | {:.3} |",
                block >> 10,
                if block == engine_block {
                    " (engine)"
                } else {
                    ""
                },
                probe.bytes,
                probe.requests,
                probe.bytes as f64 / size as f64,
                full.bytes,
                full.requests,
                full.bytes as f64 / size as f64
            );
        }
    }

    println!("\n## Media pipeline from S3 ÷ from local disk (median of {RUNS}, engine block)\n");
    println!("| clip | local | S3 | S3 ÷ local |");
    println!("|---|---:|---:|---:|");
    for c in &clips[..2] {
        let key = c.file_name().unwrap().to_string_lossy().into_owned();
        let mut l = Vec::new();
        let mut s = Vec::new();
        for _ in 0..RUNS {
            l.push(
                read(Arc::clone(&local), &key, engine_block, true)
                    .await
                    .wall,
            );
            s.push(read(Arc::clone(&s3), &key, engine_block, true).await.wall);
        }
        let (l, s) = (median(l), median(s));
        println!(
            "| {key} | {:.2} s | {:.2} s | {:.2} |",
            l.as_secs_f64(),
            s.as_secs_f64(),
            s.as_secs_f64() / l.as_secs_f64()
        );
    }
    drop(moto);
}
