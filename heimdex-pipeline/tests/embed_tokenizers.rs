//! The Rust WordPiece and CLIP BPE tokenizers against reference ids recorded in
//! `tests/data/embed_tokenizer_fixtures.json` (Hugging Face `tokenizers` and OpenAI's
//! `simple_tokenizer`; regenerate with `tests/data/embed_tokenizer_fixtures.py`).
//! Needs the vocabularies from `make models`; fails saying so without them.
#![cfg(feature = "embed")]

use std::path::PathBuf;

use heimdex_pipeline::ml::embed::{ClipBpeTokenizer, WordPieceTokenizer};
use heimdex_pipeline::ml::models::default_model;

fn fixtures() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/embed_tokenizer_fixtures.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture file")).expect("json")
}

fn present(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} not found: run `make models`",
        path.display()
    );
    path
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .expect("ids array")
        .iter()
        .map(|x| x.as_i64().expect("int id"))
        .collect()
}

#[test]
fn wordpiece_matches_hugging_face_tokenizers() {
    let vocab = present(default_model("minilm/vocab.txt"));
    let tok = WordPieceTokenizer::from_file(&vocab, true, 128).expect("vocab");
    let cases = fixtures()["wordpiece"].as_array().expect("cases").clone();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for case in &cases {
        let text = case["text"].as_str().expect("text");
        let want = ids(&case["ids"]);
        let got = tok.encode(text);
        assert_eq!(got.attention_mask.len(), got.ids.len());
        assert!(got.type_ids.iter().all(|&t| t == 0));
        if got.ids != want {
            failures.push(format!("{text:?}\n   got  {:?}\n   want {want:?}", got.ids));
        }
    }
    assert!(
        failures.is_empty(),
        "WordPiece mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn clip_bpe_matches_openai_simple_tokenizer() {
    let vocab = present(default_model("clip/bpe_simple_vocab_16e6.txt.gz"));
    let tok = ClipBpeTokenizer::from_file(&vocab).expect("bpe vocab");
    assert_eq!(tok.vocab_size(), 49408);
    let cases = fixtures()["clip"].as_array().expect("cases").clone();
    let mut failures = Vec::new();
    for case in &cases {
        let text = case["text"].as_str().expect("text");
        let want = ids(&case["ids"]);
        let got = tok.encode_padded(text);
        assert_eq!(got.len(), 77);
        if got != want {
            failures.push(format!("{text:?}\n   got  {got:?}\n   want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "CLIP BPE mismatches:\n{}",
        failures.join("\n")
    );
}
