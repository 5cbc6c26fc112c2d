//! Text-embedding throughput: all-MiniLM-L6-v2 (int8 ONNX) through `TextEmbedder`, in texts
//! per second for batch sizes 1, 8 and 32, plus single-query latency and tokenizer speed.
//!
//! Run with `cargo bench -p heimdex-pipeline --features embed --bench embed` after
//! `make models`. `HEIMDEX_EMBED_THREADS` sets ONNX Runtime's intra-op threads (default 2).
//! The texts are transcript-like sentences of 8–40 words (roughly 12–60 tokens).

use std::time::{Duration, Instant};

use heimdex_pipeline::ml::embed::{EmbedConfig, TextEmbedder};

const TEXTS: usize = 256;
const RUNS: usize = 3;

const WORDS: &[&str] = &[
    "the",
    "camera",
    "pans",
    "across",
    "a",
    "crowded",
    "market",
    "while",
    "the",
    "presenter",
    "explains",
    "quarterly",
    "results",
    "sunset",
    "over",
    "mountains",
    "interview",
    "with",
    "our",
    "director",
    "about",
    "campaign",
    "launch",
    "in",
    "Berlin",
    "slow",
    "motion",
    "product",
    "shot",
    "close-up",
    "of",
    "hands",
    "typing",
    "on",
    "laptop",
    "drone",
    "footage",
    "coastline",
    "customers",
    "talk",
    "their",
    "experience",
    "2024",
    "budget",
];

fn corpus() -> Vec<String> {
    // Deterministic pseudo-random sentences (xorshift), no extra dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..TEXTS)
        .map(|_| {
            let n = 8 + (next() % 33) as usize;
            let mut s: Vec<&str> = (0..n)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect();
            s.push(".");
            s.join(" ")
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut cfg = EmbedConfig::default();
    if !cfg.model.exists() || !cfg.vocab.exists() {
        eprintln!(
            "embed bench: skipped, {} or {} missing (run `make models`)",
            cfg.model.display(),
            cfg.vocab.display()
        );
        return;
    }
    cfg.threads = std::env::var("HEIMDEX_EMBED_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let threads = cfg.threads;
    let texts = corpus();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = {
        let e = TextEmbedder::new(cfg.clone()).expect("load MiniLM");
        refs.iter().map(|t| e.encode(t).ids.len()).sum()
    };
    println!(
        "embed bench: all-MiniLM-L6-v2 int8, {TEXTS} texts, {:.1} tokens/text on average, {threads} ORT threads, {} CPUs",
        tokens as f64 / TEXTS as f64,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for batch in [1usize, 8, 32] {
        let mut c = cfg.clone();
        c.batch_size = batch;
        let e = TextEmbedder::new(c).expect("load MiniLM");
        e.embed(&refs[..batch.min(refs.len())]).expect("warm-up");
        let times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let v = e.embed(&refs).expect("embed");
                assert_eq!(v.len(), refs.len());
                t.elapsed()
            })
            .collect();
        let m = median(times);
        println!(
            "  batch {batch:>2}: {:>7.1} texts/s  ({:.1} ms for {TEXTS} texts, median of {RUNS})",
            TEXTS as f64 / m.as_secs_f64(),
            m.as_secs_f64() * 1e3
        );
    }
    let e = TextEmbedder::new(cfg).expect("load MiniLM");
    let q = "sunset over the mountains from the Q2 campaign";
    e.embed_one(q).expect("warm-up");
    let lat: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            e.embed_one(q).expect("query");
            t.elapsed()
        })
        .collect();
    println!(
        "  query latency: {:.2} ms (median of 50)",
        median(lat).as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..20 {
        for s in &refs {
            n += e.encode(s).ids.len();
        }
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "  WordPiece tokenizer: {:.0} texts/s ({:.0} tokens/s)",
        20.0 * TEXTS as f64 / el,
        n as f64 / el
    );
}
