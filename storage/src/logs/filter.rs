//! Turns literal line filters (`|= "text"`, case-sensitive substrings)
//! into tantivy prefilter queries on the tokenized line field. The index
//! holds lowercased alphanumeric tokens, so a filter's tokens fall in
//! three kinds:
//!
//! * interior tokens (delimited on both sides inside the filter) are whole
//!   tokens of any matching line: a term query;
//! * a last token running to the filter's end may be the start of a longer
//!   token: a prefix query (`tok.*`);
//! * a first token starting at the filter's start may be the end of a
//!   longer token (`.*tok`), and a lone token may sit anywhere inside one
//!   (`.*tok.*`): these need a scan of the term dictionary and are used
//!   only when nothing cheaper is available.
//!
//! Lines with tokens too long to index carry a flag term, and every
//! prefix/suffix/infix clause also accepts flagged lines, so the prefilter
//! never drops a line that contains the substring. Candidates are then
//! verified with an exact substring test.

use tantivy::query::{BooleanQuery, Occur, Query, RegexQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::Term;

use super::partition::{line_analyzer, Fields, FLAG_LONG_TOKEN};

/// Shortest edge token turned into a prefix or infix query (shorter ones
/// expand to too many terms to help).
const MIN_EDGE_TOKEN: usize = 3;

#[derive(Debug, PartialEq)]
enum Clause {
    Term(String),
    Prefix(String),
    Suffix(String),
    Infix(String),
}

fn clauses(filter: &str) -> Vec<Clause> {
    let mut analyzer = line_analyzer();
    let mut stream = analyzer.token_stream(filter);
    let mut tokens = Vec::new();
    while let Some(t) = stream.next() {
        tokens.push((t.offset_from, t.offset_to, t.text.clone()));
    }
    let mut cheap = Vec::new();
    let mut costly = Vec::new();
    for (from, to, text) in tokens {
        let left = from > 0;
        let right = to < filter.len();
        match (left, right) {
            (true, true) => cheap.push(Clause::Term(text)),
            (true, false) if text.len() >= MIN_EDGE_TOKEN => cheap.push(Clause::Prefix(text)),
            (false, true) if text.len() >= MIN_EDGE_TOKEN => costly.push(Clause::Suffix(text)),
            (false, false) if text.len() >= MIN_EDGE_TOKEN => costly.push(Clause::Infix(text)),
            _ => {}
        }
    }
    if cheap.is_empty() {
        // Keep only the most selective dictionary scan: the longest token.
        costly.sort_by_key(|c| match c {
            Clause::Suffix(t) | Clause::Infix(t) => std::cmp::Reverse(t.len()),
            _ => std::cmp::Reverse(0),
        });
        costly.truncate(1);
        costly
    } else {
        cheap
    }
}

/// A prefilter query for lines containing every string in `contains`, or
/// `None` when the filters give the index nothing to narrow by.
pub fn prefilter(fields: &Fields, contains: &[String]) -> Option<Box<dyn Query>> {
    let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for f in contains {
        for c in clauses(f) {
            let q: Box<dyn Query> = match c {
                Clause::Term(t) => Box::new(TermQuery::new(
                    Term::from_field_text(fields.line, &t),
                    IndexRecordOption::Basic,
                )),
                Clause::Prefix(t) => or_flagged(fields, regex(fields, &format!("{t}.*"))?),
                Clause::Suffix(t) => or_flagged(fields, regex(fields, &format!(".*{t}"))?),
                Clause::Infix(t) => or_flagged(fields, regex(fields, &format!(".*{t}.*"))?),
            };
            must.push((Occur::Must, q));
        }
    }
    match must.len() {
        0 => None,
        1 => must.pop().map(|(_, q)| q),
        _ => Some(Box::new(BooleanQuery::new(must))),
    }
}

fn regex(fields: &Fields, pattern: &str) -> Option<Box<dyn Query>> {
    // Tokens are alphanumeric only, so they need no escaping.
    RegexQuery::from_pattern(pattern, fields.line)
        .ok()
        .map(|q| Box::new(q) as Box<dyn Query>)
}

fn or_flagged(fields: &Fields, q: Box<dyn Query>) -> Box<dyn Query> {
    let flag = TermQuery::new(
        Term::from_field_text(fields.flags, FLAG_LONG_TOKEN),
        IndexRecordOption::Basic,
    );
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, q),
        (Occur::Should, Box::new(flag)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_tokens() {
        assert_eq!(
            clauses("user=Alice id=42 ok"),
            vec![Clause::Term("alice".into()), Clause::Term("id".into()),]
        );
        assert_eq!(clauses("needle"), vec![Clause::Infix("needle".into())]);
        assert_eq!(
            clauses("needle-7f3a9c"),
            vec![Clause::Prefix("7f3a9c".into())]
        );
        assert_eq!(clauses("error: disk"), vec![Clause::Prefix("disk".into())]);
        assert_eq!(clauses("ab"), vec![]);
        assert_eq!(clauses("abc def"), vec![Clause::Prefix("def".into())]);
    }
}
