//! CLIP's byte-level BPE tokenizer (OpenAI `simple_tokenizer.py`), over the merges file
//! `bpe_simple_vocab_16e6.txt.gz` (gzipped or plain).
//!
//! Text is cleaned (HTML entities unescaped twice, whitespace runs collapsed, trimmed),
//! lower-cased, split with CLIP's pattern (`'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`),
//! each piece is mapped byte-by-byte to CLIP's printable byte alphabet, the last symbol gets
//! `</w>`, and merges are applied lowest rank first. The sequence is
//! `<|startoftext|> … <|endoftext|>`, truncated to the context length (77) with
//! `<|endoftext|>` last, and padded with `pad_id` (0, as OpenAI CLIP and open_clip do).
//!
//! Difference from the reference: `ftfy.fix_text` (mojibake repair) is not applied, and only
//! the common HTML entities (`&amp; &lt; &gt; &quot; &apos; &#39; &nbsp;` and numeric ones)
//! are unescaped. Checked id-for-id on `tests/data/embed_tokenizer_fixtures.json`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use regex::Regex;

use crate::ml::MlError;

/// Number of merges CLIP uses from the file (`49152 - 256 - 2`).
const MERGES: usize = 49152 - 256 - 2;
const SOT: &str = "<|startoftext|>";
const EOT: &str = "<|endoftext|>";
const PATTERN: &str = r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// CLIP BPE tokenizer.
#[derive(Debug, Clone)]
pub struct ClipBpeTokenizer {
    /// Token string → id (49408 entries for the standard vocabulary).
    encoder: HashMap<String, u32>,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Byte → its printable stand-in character.
    byte_char: [char; 256],
    pattern: Regex,
    sot: u32,
    eot: u32,
    context_length: usize,
    pad_id: i64,
}

impl ClipBpeTokenizer {
    /// Load the merges file (`.gz` or plain text) with context length 77 and padding 0.
    pub fn from_file(path: &Path) -> Result<Self, MlError> {
        let io = |source| MlError::Io {
            path: path.display().to_string(),
            source,
        };
        let raw = std::fs::read(path).map_err(io)?;
        let text = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut s = String::new();
            flate2::read::GzDecoder::new(raw.as_slice())
                .read_to_string(&mut s)
                .map_err(io)?;
            s
        } else {
            String::from_utf8(raw).map_err(|e| MlError::model(path.display().to_string(), e))?
        };
        Self::from_merges(&text).map_err(|e| MlError::model(path.display().to_string(), e))
    }

    /// Build from the text of the merges file (first line is a header).
    pub fn from_merges(text: &str) -> Result<Self, String> {
        let byte_char = bytes_to_unicode();
        let merges_text: Vec<(&str, &str)> = text
            .split('\n')
            .skip(1)
            .take(MERGES)
            .filter_map(|l| l.split_once(' '))
            .collect();
        if merges_text.len() < 1000 {
            return Err(format!(
                "only {} merges: not a CLIP BPE vocabulary",
                merges_text.len()
            ));
        }
        // CLIP's order: the printable bytes' own characters first, then the remapped ones.
        let mut base: Vec<char> = byte_char.to_vec();
        base.sort_by_key(|&c| (u32::from(c) > 255, u32::from(c)));
        let mut vocab: Vec<String> = base.iter().map(char::to_string).collect();
        vocab.extend(base.iter().map(|c| format!("{c}</w>")));
        vocab.extend(merges_text.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push(SOT.into());
        vocab.push(EOT.into());
        let mut encoder = HashMap::with_capacity(vocab.len());
        for (i, tok) in vocab.into_iter().enumerate() {
            encoder.insert(tok, i as u32);
        }
        let mut merges = HashMap::with_capacity(merges_text.len());
        for (rank, (a, b)) in merges_text.iter().enumerate() {
            let (Some(&l), Some(&r), Some(&m)) = (
                encoder.get(*a),
                encoder.get(*b),
                encoder.get(&format!("{a}{b}")),
            ) else {
                return Err(format!(
                    "merge {a} {b} uses a symbol outside the vocabulary"
                ));
            };
            merges.entry((l, r)).or_insert((rank as u32, m));
        }
        let pattern = Regex::new(PATTERN).map_err(|e| e.to_string())?;
        Ok(Self {
            sot: encoder[SOT],
            eot: encoder[EOT],
            encoder,
            merges,
            byte_char,
            pattern,
            context_length: 77,
            pad_id: 0,
        })
    }

    /// Use another context length (CLIP: 77; some SigLIP exports: 64).
    pub fn with_context_length(mut self, n: usize) -> Self {
        self.context_length = n.max(2);
        self
    }

    /// Pad with another id (open_clip/OpenAI: 0; some Hugging Face exports: `<|endoftext|>`).
    pub fn with_pad_id(mut self, id: i64) -> Self {
        self.pad_id = id;
        self
    }

    /// Context length.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Id of `<|endoftext|>` (49407 for the standard file).
    pub fn eot_id(&self) -> u32 {
        self.eot
    }

    /// Vocabulary size (49408 for the standard file).
    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    /// BPE ids of `text`, without start/end tokens or padding.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned = html_unescape(&html_unescape(text));
        let cleaned = cleaned
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut out = Vec::new();
        for m in self.pattern.find_iter(&cleaned) {
            let piece = m.as_str();
            if piece == SOT {
                out.push(self.sot);
                continue;
            }
            if piece == EOT {
                out.push(self.eot);
                continue;
            }
            self.bpe(piece, &mut out);
        }
        out
    }

    /// `<|startoftext|> ids <|endoftext|>`, truncated (end token kept) and padded to the
    /// context length.
    pub fn encode_padded(&self, text: &str) -> Vec<i64> {
        let mut ids: Vec<i64> = Vec::with_capacity(self.context_length);
        ids.push(i64::from(self.sot));
        ids.extend(self.encode(text).into_iter().map(i64::from));
        ids.push(i64::from(self.eot));
        if ids.len() > self.context_length {
            ids.truncate(self.context_length);
            if let Some(last) = ids.last_mut() {
                *last = i64::from(self.eot);
            }
        }
        ids.resize(self.context_length, self.pad_id);
        ids
    }

    fn bpe(&self, piece: &str, out: &mut Vec<u32>) {
        let bytes = piece.as_bytes();
        let mut word: Vec<u32> = Vec::with_capacity(bytes.len());
        let mut sym = String::new();
        for (i, b) in bytes.iter().enumerate() {
            sym.clear();
            sym.push(self.byte_char[usize::from(*b)]);
            if i + 1 == bytes.len() {
                sym.push_str("</w>");
            }
            // Every byte char, alone or with </w>, is in the vocabulary by construction.
            word.push(self.encoder[sym.as_str()]);
        }
        loop {
            let best = word
                .windows(2)
                .filter_map(|w| {
                    self.merges
                        .get(&(w[0], w[1]))
                        .map(|&(rank, m)| (rank, w[0], w[1], m))
                })
                .min_by_key(|(rank, ..)| *rank);
            let Some((_, left, right, merged)) = best else {
                break;
            };
            let mut next = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == left && word[i + 1] == right {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(word[i]);
                    i += 1;
                }
            }
            word = next;
            if word.len() == 1 {
                break;
            }
        }
        out.extend(word);
    }
}

/// GPT-2/CLIP's reversible byte → printable character table.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut n = 0;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(c).unwrap_or('\u{fffd}');
    }
    table
}

/// Unescape the common HTML entities (one pass).
fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let entity = rest[1..]
            .find(';')
            .filter(|&j| j <= 10)
            .map(|j| (&rest[1..=j], j + 2));
        let decoded = entity.and_then(|(name, len)| {
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, len))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_clip() {
        let t = bytes_to_unicode();
        assert_eq!(t[usize::from(b'a')], 'a');
        assert_eq!(t[0], 'Ā'); // U+0100
        assert_eq!(t[usize::from(b' ')], 'Ġ'); // U+0120
    }

    #[test]
    fn unescapes_entities() {
        assert_eq!(
            html_unescape("Tom &amp; Jerry &#39;x&#x41; &bogus; &"),
            "Tom & Jerry 'xA &bogus; &"
        );
    }
}
