//! BERT WordPiece tokenizer, equivalent to Hugging Face `tokenizers`' `BertNormalizer` +
//! `BertPreTokenizer` + `WordPiece` + `[CLS] $A [SEP]` template for uncased BERT vocabularies
//! (checked id-for-id against `tokenizers` 0.23 on the strings in
//! `tests/data/embed_tokenizer_fixtures.json`).
//!
//! Steps: split off literal special tokens (`[CLS]`, `[SEP]`, `[PAD]`, `[UNK]`, `[MASK]`,
//! matched on the raw text as the reference does); clean (drop NUL, U+FFFD and control/format
//! characters, map whitespace to a space); put spaces around CJK ideographs; when lower-casing,
//! strip accents (NFD, drop non-spacing marks) and lower-case; split on whitespace and on
//! punctuation (ASCII punctuation and Unicode `P*`); then greedy longest-match WordPiece with
//! `##` continuations, a whole word becoming `[UNK]` when it cannot be covered or is longer
//! than 100 characters. Sequences are truncated to `max_len` tokens including `[CLS]`/`[SEP]`.

use std::collections::HashMap;
use std::path::Path;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

use crate::ml::MlError;

const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const MAX_CHARS_PER_WORD: usize = 100;

/// Token ids of one text, ready for a BERT-style model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids, starting with `[CLS]` and ending with `[SEP]`.
    pub ids: Vec<i64>,
    /// 1 for every token (padding is added by the caller when batching).
    pub attention_mask: Vec<i64>,
    /// Segment ids (all 0: single sentence).
    pub type_ids: Vec<i64>,
}

/// An uncased (or cased) BERT WordPiece tokenizer over a `vocab.txt`.
#[derive(Debug, Clone)]
pub struct WordPieceTokenizer {
    vocab: HashMap<String, i64>,
    lowercase: bool,
    max_len: usize,
    cls: i64,
    sep: i64,
    unk: i64,
    pad: i64,
}

impl WordPieceTokenizer {
    /// Load `vocab.txt` (one token per line, the line number is the id).
    pub fn from_file(path: &Path, lowercase: bool, max_len: usize) -> Result<Self, MlError> {
        let text = std::fs::read_to_string(path).map_err(|source| MlError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_vocab(&text, lowercase, max_len)
            .map_err(|reason| MlError::model(path.display().to_string(), reason))
    }

    /// Build from the text of a `vocab.txt`.
    pub fn from_vocab(vocab_txt: &str, lowercase: bool, max_len: usize) -> Result<Self, String> {
        let mut vocab = HashMap::new();
        for (i, line) in vocab_txt.lines().enumerate() {
            let token = line.trim_end_matches('\r');
            vocab.entry(token.to_owned()).or_insert(i as i64);
        }
        let id = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| format!("vocabulary has no {t} token"))
        };
        if max_len < 2 {
            return Err(format!(
                "max_len {max_len} leaves no room for [CLS] and [SEP]"
            ));
        }
        Ok(Self {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            unk: id("[UNK]")?,
            pad: id("[PAD]")?,
            vocab,
            lowercase,
            max_len,
        })
    }

    /// Id of `[PAD]`.
    pub fn pad_id(&self) -> i64 {
        self.pad
    }

    /// Maximum sequence length, `[CLS]` and `[SEP]` included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokenize `text`: `[CLS] tokens… [SEP]`, truncated to [`max_len`](Self::max_len).
    pub fn encode(&self, text: &str) -> Encoding {
        let budget = self.max_len - 2;
        let mut ids = Vec::with_capacity(budget.min(64) + 2);
        ids.push(self.cls);
        'pieces: for piece in split_specials(text) {
            match piece {
                Piece::Special(t) => {
                    ids.push(self.vocab[t]);
                }
                Piece::Text(t) => {
                    for word in self.basic_tokens(t) {
                        self.wordpiece(&word, &mut ids);
                        if ids.len() > budget {
                            break 'pieces;
                        }
                    }
                }
            }
            if ids.len() > budget {
                break;
            }
        }
        ids.truncate(budget + 1);
        ids.push(self.sep);
        let n = ids.len();
        Encoding {
            ids,
            attention_mask: vec![1; n],
            type_ids: vec![0; n],
        }
    }

    /// The basic (pre-WordPiece) tokens of text without special tokens.
    fn basic_tokens(&self, text: &str) -> Vec<String> {
        let mut cleaned = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{fffd}' || is_control(c) {
                continue;
            }
            if is_whitespace(c) {
                cleaned.push(' ');
            } else if is_cjk(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        let normalized: String = if self.lowercase {
            cleaned
                .nfd()
                .filter(|c| c.general_category() != GeneralCategory::NonspacingMark)
                .flat_map(char::to_lowercase)
                .collect()
        } else {
            cleaned
        };
        let mut out = Vec::new();
        for word in normalized.split(char::is_whitespace) {
            let mut current = String::new();
            for c in word.chars() {
                if is_punctuation(c) {
                    if !current.is_empty() {
                        out.push(std::mem::take(&mut current));
                    }
                    out.push(c.to_string());
                } else {
                    current.push(c);
                }
            }
            if !current.is_empty() {
                out.push(current);
            }
        }
        out
    }

    /// Greedy longest-match-first WordPiece of one basic token, appended to `ids`.
    fn wordpiece(&self, word: &str, ids: &mut Vec<i64>) {
        if word.chars().count() > MAX_CHARS_PER_WORD {
            ids.push(self.unk);
            return;
        }
        let mark = ids.len();
        // Char boundaries, so substrings never split a character.
        let bounds: Vec<usize> = word
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(word.len()))
            .collect();
        let mut start = 0; // index into `bounds`
        let mut candidate = String::new();
        while start + 1 < bounds.len() {
            let mut end = bounds.len() - 1;
            let mut found = None;
            while end > start {
                candidate.clear();
                if start > 0 {
                    candidate.push_str("##");
                }
                candidate.push_str(&word[bounds[start]..bounds[end]]);
                if let Some(&id) = self.vocab.get(candidate.as_str()) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    ids.push(id);
                    start = end;
                }
                None => {
                    ids.truncate(mark);
                    ids.push(self.unk);
                    return;
                }
            }
        }
    }
}

enum Piece<'a> {
    Special(&'static str),
    Text(&'a str),
}

/// Split the raw text around literal special tokens.
fn split_specials(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let next = SPECIALS
            .iter()
            .filter_map(|s| rest.find(s).map(|i| (i, *s)))
            .min_by_key(|(i, s)| (*i, std::cmp::Reverse(s.len())));
        match next {
            Some((i, s)) => {
                if i > 0 {
                    out.push(Piece::Text(&rest[..i]));
                }
                out.push(Piece::Special(s));
                rest = &rest[i + s.len()..];
            }
            None => {
                if !rest.is_empty() {
                    out.push(Piece::Text(rest));
                }
                return out;
            }
        }
    }
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control in BERT's sense: any `C*` general category except tab, newline, carriage return.
fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    c.general_category_group() == GeneralCategoryGroup::Other
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.general_category_group() == GeneralCategoryGroup::Punctuation
}

/// CJK Unified Ideographs blocks, as in BERT's `_is_chinese_char` (Hangul, Hiragana and
/// Katakana are not included, as in the reference).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPieceTokenizer {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\nhello\n,\n!\ncafe\n";
        WordPieceTokenizer::from_vocab(vocab, true, 8).unwrap()
    }

    #[test]
    fn greedy_longest_match_with_continuations() {
        let t = tiny();
        assert_eq!(t.encode("unaffable").ids, vec![2, 5, 6, 7, 3]);
        assert_eq!(t.encode("Hello, CAFÉ!").ids, vec![2, 8, 9, 11, 10, 3]);
        assert_eq!(t.encode("unknownword").ids, vec![2, 1, 3]);
    }

    #[test]
    fn truncates_including_cls_and_sep() {
        let t = tiny();
        let e = t.encode("hello hello hello hello hello hello hello hello hello");
        assert_eq!(e.ids.len(), 8);
        assert_eq!(e.ids.first(), Some(&2));
        assert_eq!(e.ids.last(), Some(&3));
        assert_eq!(e.attention_mask, vec![1; 8]);
    }
}
