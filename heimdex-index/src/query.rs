//! Keyword query syntax: words, `"quoted phrases"` and `prefix*`.
//!
//! Clauses are combined with OR and ranked by BM25, so a document matching more (and rarer)
//! clauses ranks higher. Query words go through the same [tokenizer](crate::tokenize) as
//! documents; a word that tokenizes into several terms (`hello-world`) yields several
//! clauses. An unterminated quote runs to the end of the query. Clauses are plain
//! normalised terms: stemming happens at search time, in the index, for the languages of
//! the documents (see `keyword`), so term and phrase clauses also match inflections there.
//!
//! Stop words (`the`, `to`, `of`, … in English) are dropped from the free-word clauses when
//! the query has other words, so "cook serving seafood to visitors" does not match every
//! document containing "to". They stay inside `"phrases"`, and a query made only of stop
//! words keeps them.

use crate::tokenize::terms;

/// One query clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Clause {
    /// A single term.
    Term(String),
    /// Terms that must be adjacent and in order.
    Phrase(Vec<String>),
    /// Every term starting with this prefix.
    Prefix(String),
}

/// The keyword clauses of a search request, after the checks every backend shares: the
/// request must have `text`, `vector` or both, and a `text` must have searchable terms.
pub(crate) fn request_clauses(
    req: &heimdex_core::SearchRequest,
) -> Result<Vec<Clause>, heimdex_core::IndexError> {
    let invalid = |m: String| heimdex_core::IndexError::InvalidRequest(m);
    if req.text.is_none() && req.vector.is_none() {
        return Err(invalid("a search needs `text`, `vector` or both".into()));
    }
    match &req.text {
        Some(text) => {
            let c = parse(text);
            if c.is_empty() {
                return Err(invalid(format!("query {text:?} has no searchable terms")));
            }
            Ok(c)
        }
        None => Ok(Vec::new()),
    }
}

/// The query vector of a search request, after the checks every backend shares: its space
/// must be one of `dims` (name → dimensions) and its length that space's. Whether the
/// vector is usable (finite, non-zero) each backend checks as it prepares it.
pub(crate) fn request_vector<'r>(
    req: &'r heimdex_core::SearchRequest,
    dims: &std::collections::BTreeMap<String, usize>,
) -> Result<Option<(&'r str, &'r [f32])>, heimdex_core::IndexError> {
    let invalid = |m: String| heimdex_core::IndexError::InvalidRequest(m);
    let Some((space, v)) = &req.vector else {
        return Ok(None);
    };
    let dim = *dims
        .get(space)
        .ok_or_else(|| heimdex_core::IndexError::UnknownSpace {
            space: space.clone(),
        })?;
    if v.len() != dim {
        return Err(invalid(format!(
            "vector space `{space}` has {dim} dimensions, the query has {}",
            v.len()
        )));
    }
    Ok(Some((space.as_str(), v.as_slice())))
}

/// Parse a keyword query into de-duplicated clauses (possibly none).
pub(crate) fn parse(query: &str) -> Vec<Clause> {
    let mut clauses = Vec::new();
    let mut rest = query;
    while !rest.is_empty() {
        if let Some(after_quote) = rest.strip_prefix('"') {
            let (phrase, tail) = match after_quote.find('"') {
                Some(end) => (&after_quote[..end], &after_quote[end + 1..]),
                None => (after_quote, ""),
            };
            let mut ts: Vec<String> = terms(phrase).collect();
            match ts.len() {
                0 => {}
                1 => clauses.extend(ts.pop().map(Clause::Term)),
                _ => clauses.push(Clause::Phrase(ts)),
            }
            rest = tail;
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let word = &rest[..end];
        rest = rest[end..].trim_start_matches(char::is_whitespace);
        if word.is_empty() {
            continue;
        }
        let (body, is_prefix) = match word.strip_suffix('*') {
            Some(body) => (body, true),
            None => (word, false),
        };
        let mut ts: Vec<String> = terms(body).collect();
        let last = if is_prefix { ts.pop() } else { None };
        clauses.extend(ts.into_iter().map(Clause::Term));
        clauses.extend(last.map(Clause::Prefix));
    }
    let content = |c: &Clause| !matches!(c, Clause::Term(t) if is_stop_word(t));
    if clauses.iter().any(content) {
        clauses.retain(content);
    }
    let mut seen = Vec::with_capacity(clauses.len());
    for c in clauses {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    seen
}

/// English stop words (the common function words of the Snowball list).
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does",
    "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we", "were",
    "what", "when", "where", "which", "who", "why", "will", "with", "you", "your",
];

fn is_stop_word(t: &str) -> bool {
    STOP_WORDS.binary_search(&t).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(s: &str) -> Clause {
        Clause::Term(s.into())
    }

    #[test]
    fn stop_words_are_dropped_unless_nothing_else_is_left() {
        assert!(
            STOP_WORDS.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
        assert_eq!(parse("cook serving seafood to visitors").len(), 4);
        assert_eq!(parse("to the"), vec![term("to"), term("the")]);
        assert_eq!(
            parse("\"to be\" sea"),
            vec![Clause::Phrase(vec!["to".into(), "be".into()]), term("sea")]
        );
    }

    #[test]
    fn words_phrases_and_prefixes() {
        assert_eq!(
            parse(r#"Sunset "Red  Car" moun* sunset"#),
            vec![
                term("sunset"),
                Clause::Phrase(vec!["red".into(), "car".into()]),
                Clause::Prefix("moun".into()),
            ]
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert!(parse("").is_empty());
        assert!(parse(" !!! * \"\" ").is_empty());
        assert_eq!(parse("\"single\""), vec![term("single")]);
        assert_eq!(
            parse("\"open phrase"),
            vec![Clause::Phrase(vec!["open".into(), "phrase".into()])]
        );
        assert_eq!(
            parse("hello-wor*"),
            vec![term("hello"), Clause::Prefix("wor".into())]
        );
    }
}
