//! Tokenizer shared by indexing, querying and snippets.
//!
//! A token is a maximal run of Unicode alphanumeric characters. Tokens are lower-cased and
//! common Latin accents are folded (`Café` → `cafe`, `Straße` → `strasse`); combining marks
//! (U+0300–U+036F) are dropped so decomposed and precomposed input index the same term.
//! Everything else (whitespace, punctuation, `_`, `-`, `/`) separates tokens.
//!
//! [`Stemming`] adds language-aware analysis: the Snowball stemmer (`rust-stemmers`) of a
//! document's language, applied to the normalised tokens. Stems are indexed as separate
//! terms, [`STEM_MARK`]`<code>:<stem>` (e.g. `"\u{1}en:run"`), which cannot collide with a
//! raw term because raw terms are alphanumeric.

use std::borrow::Cow;

use rust_stemmers::{Algorithm, Stemmer};

/// One token: its normalised term and the byte span of the original text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// Normalised term (lower-cased, accents folded).
    pub term: String,
    /// Byte offset of the first character in the original text.
    pub start: usize,
    /// Byte offset just past the last character in the original text.
    pub end: usize,
}

fn is_combining_mark(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// Fold a lower-case character to ASCII where that is a plain accent removal.
fn fold(c: char, out: &mut String) {
    let s = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' => "s",
        'ţ' | 'ť' | 'ŧ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        _ => {
            out.push(c);
            return;
        }
    };
    out.push_str(s);
}

/// Split `text` into normalised tokens with their byte spans.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut current: Option<Token> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            let tok = current.get_or_insert_with(|| Token {
                term: String::new(),
                start: i,
                end: i,
            });
            for lc in c.to_lowercase() {
                fold(lc, &mut tok.term);
            }
            tok.end = i + c.len_utf8();
        } else if is_combining_mark(c) && current.is_some() {
            if let Some(tok) = current.as_mut() {
                tok.end = i + c.len_utf8();
            }
        } else if let Some(tok) = current.take() {
            tokens.push(tok);
        }
    }
    if let Some(tok) = current.take() {
        tokens.push(tok);
    }
    tokens
}

/// Normalised terms of `text`, in order.
pub(crate) fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    tokenize(text).into_iter().map(|t| t.term)
}

/// First character of a stem term (never part of a raw term, which is alphanumeric).
pub(crate) const STEM_MARK: char = '\u{1}';

/// The Snowball stemmer of one supported language.
pub(crate) struct Stemming {
    code: &'static str,
    stemmer: Stemmer,
}

impl Stemming {
    /// The stemmer for an ISO 639-1 code (`en`, `fr`, `pt-BR`, `nb_NO`: the primary subtag
    /// counts, any case), or `None` when the language has no Snowball stemmer here.
    /// Supported: ar da de el en es fi fr hu it nl no (also nb, nn) pt ro ru sv ta tr.
    pub fn for_language(language: &str) -> Option<Self> {
        let primary = language
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let (code, algorithm) = match primary.as_str() {
            "ar" => ("ar", Algorithm::Arabic),
            "da" => ("da", Algorithm::Danish),
            "de" => ("de", Algorithm::German),
            "el" => ("el", Algorithm::Greek),
            "en" => ("en", Algorithm::English),
            "es" => ("es", Algorithm::Spanish),
            "fi" => ("fi", Algorithm::Finnish),
            "fr" => ("fr", Algorithm::French),
            "hu" => ("hu", Algorithm::Hungarian),
            "it" => ("it", Algorithm::Italian),
            "nl" => ("nl", Algorithm::Dutch),
            "no" | "nb" | "nn" => ("no", Algorithm::Norwegian),
            "pt" => ("pt", Algorithm::Portuguese),
            "ro" => ("ro", Algorithm::Romanian),
            "ru" => ("ru", Algorithm::Russian),
            "sv" => ("sv", Algorithm::Swedish),
            "ta" => ("ta", Algorithm::Tamil),
            "tr" => ("tr", Algorithm::Turkish),
            _ => return None,
        };
        Some(Self {
            code,
            stemmer: Stemmer::create(algorithm),
        })
    }

    /// The canonical code of the language (`nb` → `no`).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The stem of a normalised term.
    pub fn stem<'a>(&self, term: &'a str) -> Cow<'a, str> {
        self.stemmer.stem(term)
    }

    /// The index term of `term`'s stem: `\u{1}<code>:<stem>`.
    pub fn key(&self, term: &str) -> String {
        format!("{STEM_MARK}{}:{}", self.code, self.stem(term))
    }
}

/// `(language code, stem)` of a stem term made by [`Stemming::key`]; `None` for raw terms.
pub(crate) fn parse_stem_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(STEM_MARK)?.split_once(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stemming_languages_and_keys() {
        let en = Stemming::for_language("EN-us").unwrap();
        assert_eq!(en.code(), "en");
        assert_eq!(en.stem("running"), "run");
        assert_eq!(en.key("runs"), "\u{1}en:run");
        assert_eq!(parse_stem_key(&en.key("runs")), Some(("en", "run")));
        assert_eq!(parse_stem_key("run"), None);
        assert_eq!(Stemming::for_language("nb").unwrap().code(), "no");
        assert!(Stemming::for_language("ja").is_none());
        assert!(Stemming::for_language("").is_none());
        // Any normalised token can be stemmed (digits, other scripts, folded accents).
        for code in [
            "ar", "da", "de", "el", "en", "es", "fi", "fr", "hu", "it", "nl", "no",
        ] {
            let s = Stemming::for_language(code).unwrap();
            for t in [
                "2024",
                "q2",
                "東京",
                "москва",
                "strasse",
                "a",
                "ελλαδα",
                "x1y2z3",
            ] {
                assert!(!s.stem(t).is_empty(), "{code} {t}");
            }
        }
        for code in ["pt", "ro", "ru", "sv", "ta", "tr"] {
            let s = Stemming::for_language(code).unwrap();
            assert!(!s.stem("tests").is_empty());
        }
    }

    fn t(s: &str) -> Vec<String> {
        terms(s).collect()
    }

    #[test]
    fn lowercases_and_splits_on_punctuation() {
        assert_eq!(
            t("Hello, WORLD! sunset-over_the (Mountains)..."),
            ["hello", "world", "sunset", "over", "the", "mountains"]
        );
    }

    #[test]
    fn keeps_digits_and_unicode_letters() {
        assert_eq!(t("Q2 2024 campaign.mp4"), ["q2", "2024", "campaign", "mp4"]);
        assert_eq!(t("東京 Москва"), ["東京", "москва"]);
    }

    #[test]
    fn folds_accents_precomposed_and_decomposed() {
        assert_eq!(
            t("Café Crème Straße Øresund"),
            ["cafe", "creme", "strasse", "oresund"]
        );
        assert_eq!(t("cafe\u{301} noir"), ["cafe", "noir"]);
    }

    #[test]
    fn spans_point_into_original_text() {
        let text = "  Red, CAR!";
        let toks = tokenize(text);
        assert_eq!(toks.len(), 2);
        assert_eq!(&text[toks[0].start..toks[0].end], "Red");
        assert_eq!(&text[toks[1].start..toks[1].end], "CAR");
        let text = "Café!";
        let toks = tokenize(text);
        assert_eq!(&text[toks[0].start..toks[0].end], "Café");
    }

    #[test]
    fn empty_and_punctuation_only() {
        assert!(t("").is_empty());
        assert!(t(" -- !! ").is_empty());
    }
}
