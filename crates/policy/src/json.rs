//! The one hand-written JSON walker of the policy engine: over text `serde_json` has already
//! accepted, it finds where things are — each statement's braces (the policy simulator's
//! `StartPosition`/`EndPosition`) and each `Statement[*].(Not)Principal.AWS[*]` string
//! (principal capture) — which a parsed `Value` cannot tell.

/// What [`scan`] finds, in document order.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Byte offsets of each statement's `{` and `}`.
    pub(crate) statements: Vec<(usize, usize)>,
    /// (start, end, unescaped value) of each AWS principal string literal.
    pub(crate) aws_principals: Vec<(usize, usize, String)>,
}

/// Walks already-validated JSON; `None` if it is not.
pub(crate) fn scan(text: &str) -> Option<Scan> {
    let mut scanner = Scanner {
        text,
        at: 0,
        depth: 0,
        found: Scan::default(),
    };
    scanner.value(Place::Top)?;
    Some(scanner.found)
}

/// A 1-based (line, column) in a policy document; columns count characters.
pub type Position = (usize, usize);

/// The 1-based positions of each statement's `{` and `}` in a policy document, as the IAM
/// policy simulator reports them (`StartPosition`, `EndPosition`); empty if `text` is not JSON.
pub fn statement_positions(text: &str) -> Vec<(Position, Position)> {
    let Some(spans) = scan(text).map(|s| s.statements) else {
        return Vec::new();
    };
    let mut offsets: Vec<usize> = spans.iter().flat_map(|&(a, b)| [a, b]).collect();
    offsets.sort_unstable();
    let mut at = std::collections::HashMap::with_capacity(offsets.len());
    let (mut line, mut column) = (1usize, 1usize);
    let mut wanted = offsets.iter().peekable();
    for (i, c) in text.char_indices() {
        while let Some(&&o) = wanted.peek() {
            if o > i {
                break;
            }
            wanted.next();
            if o == i {
                at.insert(i, (line, column));
            }
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    spans
        .iter()
        .filter_map(|(a, b)| Some((*at.get(a)?, *at.get(b)?)))
        .collect()
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
    /// Nesting of the value being walked: bounded like `serde_json`'s own recursion limit, so
    /// that no text (even one that never went through `serde_json`) can exhaust the stack.
    depth: usize,
    found: Scan,
}

/// `serde_json`'s default recursion limit: deeper text is not a policy it accepted.
const MAX_DEPTH: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    StatementList,
    Statement,
    Principal,
    Aws,
    Other,
}

impl<'a> Scanner<'a> {
    /// At an object's `}`: steps over it, recording a statement's span.
    fn close_object(&mut self, place: Place, start: usize) {
        if place == Place::Statement {
            self.found.statements.push((start, self.at));
        }
        self.at += 1;
    }

    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            if b.is_ascii_whitespace() {
                self.at += 1;
            } else {
                return Some(b);
            }
        }
        None
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string literal: (start, end, unescaped).
    fn string(&mut self) -> Option<(usize, usize, String)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at;
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        loop {
            match bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        let end = i + 1;
        self.at = end;
        let value: String = serde_json::from_str(self.text.get(start..end)?).ok()?;
        Some((start, end, value))
    }

    fn value(&mut self, place: Place) -> Option<()> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let walked = self.value_inner(place);
        self.depth -= 1;
        walked
    }

    fn value_inner(&mut self, place: Place) -> Option<()> {
        match self.peek()? {
            b'{' => {
                self.at += 1;
                let object_place = match place {
                    Place::StatementList => Place::Statement,
                    other => other,
                };
                let start = self.at - 1;
                if self.peek()? == b'}' {
                    self.close_object(object_place, start);
                    return Some(());
                }
                loop {
                    let (_, _, key) = self.string()?;
                    self.expect(b':')?;
                    let child = match (object_place, key.as_str()) {
                        (Place::Top, "Statement") => Place::StatementList,
                        (Place::Statement, "Principal" | "NotPrincipal") => Place::Principal,
                        (Place::Principal, "AWS") => Place::Aws,
                        _ => Place::Other,
                    };
                    self.value(child)?;
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => {
                            self.close_object(object_place, start);
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let item_place = match place {
                    Place::StatementList | Place::Aws => place,
                    _ => Place::Other,
                };
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.value(item_place)?;
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => {
                let found = self.string()?;
                if place == Place::Aws {
                    self.found.aws_principals.push(found);
                }
                Some(())
            }
            _ => {
                // number, true, false, null
                let bytes = self.text.as_bytes();
                while let Some(&b) = bytes.get(self.at) {
                    if b == b',' || b == b'}' || b == b']' || b.is_ascii_whitespace() {
                        break;
                    }
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_deeper_than_serde_json_allows_is_refused_without_exhausting_the_stack() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(statement_positions(&deep).is_empty());
        let shallow = "[".repeat(100) + &"]".repeat(100);
        assert!(scan(&shallow).is_some());
    }

    #[test]
    fn statement_positions_are_one_based_brace_positions() {
        // Observed IAM output for one-line documents: a statement opening at
        // `{"Version":"2012-10-17","Statement":[{` starts at column 38 and, here, ends at the
        // `}` in column 167 (1-based columns of the statement's own braces).
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}]}"#;
        assert_eq!(statement_positions(doc), vec![((1, 38), (1, 167))]);
        let multi = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": \"a:b\", \"Resource\": \"*\"},\n    {\n      \"Effect\": \"Deny\", \"Action\": \"a:c\", \"Resource\": [\"x\", \"y\"]\n    }\n  ]\n}";
        assert_eq!(
            statement_positions(multi),
            vec![((4, 5), (4, 57)), ((5, 5), (7, 5))]
        );
        let single = r#"{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*"},"Version":"2012-10-17"}"#;
        assert_eq!(scan(single).map(|s| s.statements), Some(vec![(13, 60)]));
        assert_eq!(statement_positions(single), vec![((1, 14), (1, 61))]);
        let principals = r#"{"Statement":[{"Principal":{"AWS":["a","b"]},"Effect":"Allow"}]}"#;
        let found = scan(principals)
            .map(|s| s.aws_principals)
            .unwrap_or_default();
        let values: Vec<&str> = found.iter().map(|(_, _, v)| v.as_str()).collect();
        assert_eq!(values, ["a", "b"]);
        assert!(statement_positions("{").is_empty());
    }
}
