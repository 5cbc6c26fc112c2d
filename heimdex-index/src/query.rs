//! Keyword query syntax: words, `"quoted phrases"` and `prefix*`.
//!
//! Clauses are combined with OR and ranked by BM25, so a document matching more (and rarer)
//! clauses ranks higher. Query words go through the same [tokenizer](crate::tokenize) as
//! documents; a word that tokenizes into several terms (`hello-world`) yields several
//! clauses. An unterminated quote runs to the end of the query.

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
    let mut seen = Vec::with_capacity(clauses.len());
    for c in clauses {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(s: &str) -> Clause {
        Clause::Term(s.into())
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
