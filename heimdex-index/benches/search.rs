//! Search benchmark for the embedded index (no criterion; prints a table).
//!
//! Run: `cargo bench -p heimdex-index --bench search -- 1000000` (the argument, or
//! `HEIMDEX_BENCH_DOCS`, is the corpus size; default 100 000). Synthetic segment documents,
//! 20–40 words each drawn with a skewed distribution from a 5 000-word vocabulary, one 384-d
//! vector each. Vectors are clustered like real embeddings (2 000 topic centres plus
//! per-document noise, cosine ≈ 0.5 within a topic); `HEIMDEX_BENCH_UNIFORM=1` uses uniform
//! random vectors instead (the worst case for any graph index: no structure at all);
//! `HEIMDEX_BENCH_NO_VECTORS=1` indexes text only and runs only the keyword queries.
//! Baselines are naive full scans over the original documents (what you would write without
//! an index); the ratio is ours / baseline. Recall@10 compares vector hits with the exact
//! top 10 of the naive scan (ties broken by key, as the index does).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use heimdex_core::{
    AssetId, IndexDoc, SearchFilter, SearchRequest, SegmentKind, SourceId, TenantId,
};
use heimdex_index::EmbeddedIndex;

const VOCAB: usize = 5_000;
const DIM: usize = 384;
const QUERIES: usize = 200;
/// Queries checked against the exact top 10 (a naive scan each: ~1 s at 1M docs).
const RECALL_QUERIES: usize = 100;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Skewed word choice: low ids are common, high ids rare.
    fn word(&mut self) -> usize {
        ((self.unit() * self.unit()) * VOCAB as f64) as usize
    }
    fn vector(&mut self) -> Vec<f32> {
        (0..DIM).map(|_| (self.unit() * 2.0 - 1.0) as f32).collect()
    }
    /// A document-like vector: a topic centre plus noise (or uniform noise).
    fn embedding(&mut self, centres: &[Vec<f32>]) -> Vec<f32> {
        if centres.is_empty() {
            return self.vector();
        }
        let c = &centres[self.below(centres.len())];
        c.iter()
            .map(|x| x + (self.unit() * 2.0 - 1.0) as f32)
            .collect()
    }
}

fn word(i: usize) -> String {
    // Pronounceable, distinct: base-20 syllables.
    const SYL: [&str; 20] = [
        "ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "va", "ze", "bo", "da", "fi", "gu", "ha",
        "je", "ki", "ly", "mo", "ne",
    ];
    let mut s = String::new();
    let mut n = i + VOCAB;
    while n > 0 {
        s.push_str(SYL[n % 20]);
        n /= 20;
    }
    s
}

fn pct(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 99 / 100).min(v.len() - 1)]),
    )
}

fn time(f: impl FnMut(usize)) -> Vec<Duration> {
    time_n(QUERIES, f)
}

fn time_n(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

/// Naive keyword baseline: tokenize every document per query, count matching terms, sort.
fn keyword_baseline(docs: &[IndexDoc], terms: &[String]) -> usize {
    let mut scored: Vec<(usize, usize)> = docs
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let n = d
                .text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| terms.iter().any(|t| w.eq_ignore_ascii_case(t)))
                .count();
            (n > 0).then_some((i, n))
        })
        .collect();
    scored.sort_by_key(|b| std::cmp::Reverse(b.1));
    scored.len().min(10)
}

/// Naive vector baseline: cosine against every stored (unnormalised) vector, full sort.
/// Returns the top 10 keys.
fn vector_baseline(docs: &[IndexDoc], q: &[f32], filter: Option<&SearchFilter>) -> Vec<String> {
    let qn = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut scored: Vec<(usize, f32)> = docs
        .iter()
        .enumerate()
        .filter(|(_, d)| filter.is_none_or(|f| f.matches(d)))
        .filter_map(|(i, d)| {
            let v = d.vectors.get("text")?;
            let dot: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            Some((i, dot / (n * qn)))
        })
        .collect();
    scored.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| docs[a.0].key().cmp(&docs[b.0].key()))
    });
    scored
        .iter()
        .take(10)
        .map(|(i, _)| docs[*i].key())
        .collect()
}

/// Mean recall@10 of `run` against `truth`.
fn recall(truth: &[Vec<String>], run: &mut dyn FnMut(usize) -> Vec<String>) -> f64 {
    let mut sum = 0.0;
    for (i, t) in truth.iter().enumerate() {
        let got = run(i);
        let hit = t.iter().filter(|k| got.contains(k)).count();
        sum += if t.is_empty() {
            1.0
        } else {
            hit as f64 / t.len() as f64
        };
    }
    sum / truth.len() as f64
}

fn main() {
    let n_docs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .or_else(|| {
            std::env::var("HEIMDEX_BENCH_DOCS")
                .ok()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(100_000);
    let uniform = std::env::var("HEIMDEX_BENCH_UNIFORM").is_ok_and(|v| v == "1");
    let no_vectors = std::env::var("HEIMDEX_BENCH_NO_VECTORS").is_ok_and(|v| v == "1");
    let tenant = TenantId::default_tenant();
    let mut rng = Rng(42);
    let centres: Vec<Vec<f32>> = if uniform {
        Vec::new()
    } else {
        (0..2_000).map(|_| rng.vector()).collect()
    };
    let t = Instant::now();
    let kinds = [SegmentKind::Shot, SegmentKind::Transcript, SegmentKind::Ocr];
    let docs: Vec<IndexDoc> = (0..n_docs)
        .map(|i| {
            let len = 20 + rng.below(21);
            let text: Vec<String> = (0..len).map(|_| word(rng.word())).collect();
            IndexDoc {
                tenant: tenant.clone(),
                source: SourceId::new(format!("src{}", i % 4)),
                asset: AssetId::new(format!("asset{:05}", i / 20)),
                segment: format!("seg{}", i % 20),
                kind: kinds[i % 3],
                path: format!("/archive/{}/asset{:05}.mp4", 2020 + i % 5, i / 20),
                start_s: (i % 20) as f64 * 5.0,
                end_s: (i % 20) as f64 * 5.0 + 5.0,
                text: text.join(" "),
                thumbnail: None,
                tags: if i % 10 == 0 {
                    vec!["hero".into()]
                } else {
                    Vec::new()
                },
                vectors: if no_vectors {
                    BTreeMap::new()
                } else {
                    BTreeMap::from([("text".to_string(), rng.embedding(&centres))])
                },
                meta: Default::default(),
            }
        })
        .collect();
    eprintln!(
        "generated {n_docs} docs in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // With HEIMDEX_BENCH_INDEX_DIR, the built index is flushed there and reopened (both
    // timed); a later run with the same corpus size reopens it instead of building.
    let dir = std::env::var("HEIMDEX_BENCH_INDEX_DIR").ok();
    let mut index = match &dir {
        Some(d) => EmbeddedIndex::open(d).expect("open"),
        None => EmbeddedIndex::in_memory(),
    };
    let existing = index.count_blocking(&tenant);
    let t = Instant::now();
    if existing != n_docs as u64 {
        assert_eq!(existing, 0, "HEIMDEX_BENCH_INDEX_DIR holds another corpus");
        for chunk in docs.chunks(1_000) {
            index.upsert_blocking(chunk).expect("upsert");
        }
    }
    let build = t.elapsed();
    let mut persist_line = None;
    if let Some(d) = dir.as_ref().filter(|_| existing == 0) {
        let t = Instant::now();
        index.flush_blocking().expect("flush");
        let flush = t.elapsed();
        drop(index);
        let t = Instant::now();
        index = EmbeddedIndex::open(d).expect("reopen");
        let size = std::fs::metadata(index.snapshot_path().expect("path"))
            .map(|m| m.len())
            .unwrap_or(0);
        persist_line = Some(format!(
            "snapshot {:.0} MiB: flush {:.2} s, reopen {:.2} s",
            size as f64 / (1 << 20) as f64,
            flush.as_secs_f64(),
            t.elapsed().as_secs_f64()
        ));
    }
    let (mem_vectors, mem_graph) = index.vector_memory_bytes();
    eprintln!("built in {:.1} s", build.as_secs_f64());
    let tenant_docs = index.count_blocking(&tenant);
    assert_eq!(tenant_docs, n_docs as u64);

    let mut filter = SearchFilter::default();
    filter.kinds = vec![SegmentKind::Shot];
    let mut filter_sel = filter.clone();
    filter_sel.tags = vec!["hero".into()];
    let hero_shots = docs.iter().filter(|d| filter_sel.matches(d)).count();

    // Queries: one common and one rarer word; phrases from real documents.
    let kw: Vec<String> = (0..QUERIES)
        .map(|_| format!("{} {}", word(rng.below(50)), word(500 + rng.below(4_000))))
        .collect();
    let phrases: Vec<String> = (0..QUERIES)
        .map(|_| {
            let d = &docs[rng.below(n_docs)];
            let w: Vec<&str> = d.text.split(' ').take(2).collect();
            format!("\"{}\"", w.join(" "))
        })
        .collect();
    let prefixes: Vec<String> = (0..QUERIES)
        .map(|_| format!("{}*", &word(rng.below(VOCAB))[..4]))
        .collect();
    let vecs: Vec<Vec<f32>> = (0..QUERIES).map(|_| rng.embedding(&centres)).collect();
    let req = || SearchRequest::new(tenant.clone());

    // Exact top 10 by naive scan (also the vector baselines' timings), first RECALL_QUERIES.
    let exact = |f: Option<&SearchFilter>| -> (Vec<Vec<String>>, Vec<Duration>) {
        vecs[..RECALL_QUERIES]
            .iter()
            .map(|q| {
                let t = Instant::now();
                let top = vector_baseline(&docs, q, f);
                (top, t.elapsed())
            })
            .unzip()
    };
    type Exact = (Vec<Vec<String>>, Vec<Duration>);
    // The exact reference (3 × 100 naive scans, minutes at 1M) is cached next to a reused
    // snapshot; the corpus and queries are deterministic for a given size.
    let cache = dir
        .as_ref()
        .map(|d| std::path::Path::new(d).join(format!("bench-exact-{n_docs}.json")));
    let cached: Option<[Exact; 3]> = cache
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let [(truth, base_vec), (truth_f, base_vec_f), (truth_sel, _)] = if no_vectors {
        Default::default()
    } else if let Some(c) = cached {
        eprintln!("exact reference and naive-scan timings read from the cache");
        c
    } else {
        let all = [exact(None), exact(Some(&filter)), exact(Some(&filter_sel))];
        if let Some(p) = &cache {
            std::fs::write(p, serde_json::to_vec(&all).expect("json")).expect("write cache");
        }
        all
    };
    eprintln!("exact reference done");

    let mut rows: Vec<(String, Vec<Duration>, Option<Vec<Duration>>)> = Vec::new();
    let run = |r: SearchRequest| {
        let hits = index.search_blocking(&r).expect("search");
        std::hint::black_box(hits);
    };
    rows.push((
        "keyword (2 terms)".into(),
        time(|i| run(req().with_text(&kw[i]))),
        Some(time_n(RECALL_QUERIES, |i| {
            let terms: Vec<String> = kw[i].split(' ').map(str::to_string).collect();
            std::hint::black_box(keyword_baseline(&docs, &terms));
        })),
    ));
    rows.push((
        "keyword + filter (kind)".into(),
        time(|i| run(req().with_text(&kw[i]).with_filter(filter.clone()))),
        None,
    ));
    rows.push((
        "phrase".into(),
        time(|i| run(req().with_text(&phrases[i]))),
        None,
    ));
    rows.push((
        "prefix".into(),
        time(|i| run(req().with_text(&prefixes[i]))),
        None,
    ));
    if !no_vectors {
        rows.push((
            "vector 384-d".into(),
            time(|i| run(req().with_vector("text", vecs[i].clone()))),
            Some(base_vec),
        ));
        rows.push((
            "vector + filter (kind, 1/3)".into(),
            time(|i| {
                run(req()
                    .with_vector("text", vecs[i].clone())
                    .with_filter(filter.clone()))
            }),
            Some(base_vec_f),
        ));
        rows.push((
            format!("vector + filter (kind+tag, {hero_shots} docs)"),
            time(|i| {
                run(req()
                    .with_vector("text", vecs[i].clone())
                    .with_filter(filter_sel.clone()))
            }),
            None,
        ));
        rows.push((
            "hybrid".into(),
            time(|i| run(req().with_text(&kw[i]).with_vector("text", vecs[i].clone()))),
            None,
        ));
        rows.push((
            "hybrid + filter (kind)".into(),
            time(|i| {
                run(req()
                    .with_text(&kw[i])
                    .with_vector("text", vecs[i].clone())
                    .with_filter(filter.clone()))
            }),
            None,
        ));
    }

    // Recall@10 of the vector signal against the exact (naive) top 10.
    let keys = |r: SearchRequest| -> Vec<String> {
        index
            .search_blocking(&r)
            .expect("search")
            .into_iter()
            .map(|h| h.doc.key())
            .collect()
    };
    let recall = |truth: &[Vec<String>], run: &mut dyn FnMut(usize) -> Vec<String>| {
        if no_vectors {
            f64::NAN
        } else {
            recall(truth, run)
        }
    };
    let r_all = recall(&truth, &mut |i| {
        keys(req().with_vector("text", vecs[i].clone()))
    });
    let r_f = recall(&truth_f, &mut |i| {
        keys(
            req()
                .with_vector("text", vecs[i].clone())
                .with_filter(filter.clone()),
        )
    });
    let r_sel = recall(&truth_sel, &mut |i| {
        keys(
            req()
                .with_vector("text", vecs[i].clone())
                .with_filter(filter_sel.clone()),
        )
    });

    println!(
        "embedded index: {n_docs} docs, vocab {VOCAB}, {DIM}-d {} vectors; {}; {QUERIES} queries each",
        if no_vectors {
            "no"
        } else if uniform {
            "uniform random"
        } else {
            "clustered"
        },
        if existing == n_docs as u64 {
            "reopened an existing snapshot (build not measured)".to_string()
        } else {
            format!(
                "build {:.2} s ({:.0} docs/s)",
                build.as_secs_f64(),
                n_docs as f64 / build.as_secs_f64()
            )
        }
    );
    println!(
        "vector memory: rows {:.0} MiB + graph/bookkeeping {:.0} MiB",
        mem_vectors as f64 / (1 << 20) as f64,
        mem_graph as f64 / (1 << 20) as f64
    );
    println!(
        "recall@10 vs exact ({RECALL_QUERIES} queries): vector {r_all:.4}; + filter (kind, 1/3) {r_f:.4}; + filter (kind+tag) {r_sel:.4}"
    );
    println!("| query | p50 ms | p99 ms | naive scan p50 ms | ours / naive |");
    println!("|---|---:|---:|---:|---:|");
    for (name, ours, base) in rows {
        let (p50, p99) = pct(ours);
        match base {
            Some(b) => {
                let (b50, _) = pct(b);
                println!(
                    "| {name} | {p50:.2} | {p99:.2} | {b50:.2} | {:.2} |",
                    p50 / b50
                );
            }
            None => println!("| {name} | {p50:.2} | {p99:.2} | – | – |"),
        }
    }
    if let Some(line) = persist_line {
        println!("{line}");
    }
}
