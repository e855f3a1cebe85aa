//! Policy variables: `${aws:username}`, `${aws:PrincipalTag/team, 'none'}`, the literal escapes
//! `${*}` `${?}` `${$}`. This module only turns pattern text into pieces (literal text,
//! wildcards, variables); resolution happens at match time in `matcher`.
//!
//! Source: IAM User Guide, "IAM policy elements: Variables and tags" — variables are only
//! recognised with `"Version": "2012-10-17"` (with 2008-10-17 they are literal text), are
//! allowed in `Resource`/`NotResource` and in string/ARN condition values, take a default with
//! `${key, 'default'}`, and a variable that cannot be resolved makes that element not match.

use crate::context::KeyRef;

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(Box<str>),
    /// `*`: any sequence, including the empty one.
    Star,
    /// `?`: exactly one character.
    One,
    Var {
        key: KeyRef,
        default: Option<Box<str>>,
    },
}

/// Split pattern text into pieces. `wildcards`: `*`/`?` are wildcards (StringLike, Resource,
/// Action), otherwise literal (StringEquals). `variables`: `${…}` is a policy variable.
pub(crate) fn parse_pieces(text: &str, wildcards: bool, variables: bool) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if variables
            && rest.starts_with("${")
            && let Some(end) = rest.find('}')
            && let Some(piece) = parse_variable(&rest[2..end])
        {
            match piece {
                Piece::Lit(s) => lit.push_str(&s),
                other => {
                    flush(&mut pieces, &mut lit);
                    pieces.push(other);
                }
            }
            rest = &rest[end + 1..];
            continue;
        }
        match c {
            '*' if wildcards => {
                flush(&mut pieces, &mut lit);
                // Consecutive stars are one star.
                if pieces.last() != Some(&Piece::Star) {
                    pieces.push(Piece::Star);
                }
            }
            '?' if wildcards => {
                flush(&mut pieces, &mut lit);
                pieces.push(Piece::One);
            }
            _ => lit.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut pieces, &mut lit);
    pieces
}

fn flush(pieces: &mut Vec<Piece>, lit: &mut String) {
    if !lit.is_empty() {
        pieces.push(Piece::Lit(std::mem::take(lit).into_boxed_str()));
    }
}

/// The inside of `${…}`; `None` if it is not a variable (then the text stays literal).
fn parse_variable(inner: &str) -> Option<Piece> {
    match inner {
        "*" => return Some(Piece::Lit("*".into())),
        "?" => return Some(Piece::Lit("?".into())),
        "$" => return Some(Piece::Lit("$".into())),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let unquoted = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))?;
            (key.trim(), Some(unquoted.into()))
        }
        None => (inner.trim(), None),
    };
    if key.is_empty()
        || key
            .chars()
            .any(|c| c.is_whitespace() || c == '$' || c == '{')
    {
        return None;
    }
    Some(Piece::Var {
        key: KeyRef::new(key),
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_literal() {
        assert_eq!(
            parse_pieces("a${*}b${?}${$}", true, true),
            vec![Piece::Lit("a*b?$".into())]
        );
    }

    #[test]
    fn default_value_is_unquoted() {
        let pieces = parse_pieces("team/${aws:PrincipalTag/team, 'none'}/*", true, true);
        assert_eq!(pieces.len(), 4);
        match &pieces[1] {
            Piece::Var { key, default } => {
                assert_eq!(&*key.lower, "aws:principaltag/team");
                assert_eq!(default.as_deref(), Some("none"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(pieces[3], Piece::Star);
    }

    #[test]
    fn without_variables_dollar_brace_is_text() {
        assert_eq!(
            parse_pieces("${aws:username}", true, false),
            vec![Piece::Lit("${aws:username}".into())]
        );
    }

    #[test]
    fn without_wildcards_star_is_text() {
        assert_eq!(
            parse_pieces("a*b", false, true),
            vec![Piece::Lit("a*b".into())]
        );
    }
}
