//! Key-range arithmetic shared by the backends: the bounds of a prefix scan. Pure functions,
//! no I/O.

/// The first key of a scan: `prefix` itself (inclusive), or `start_after` (exclusive) when that
/// already lies at or beyond the prefix.
pub(crate) enum LowerBound<'a> {
    Inclusive(&'a str),
    Exclusive(&'a str),
}

pub(crate) fn lower_bound<'a>(prefix: &'a str, start_after: Option<&'a str>) -> LowerBound<'a> {
    match start_after {
        // `start_after < prefix` would restart before the prefix: the prefix bound is tighter.
        Some(after) if after >= prefix => LowerBound::Exclusive(after),
        _ => LowerBound::Inclusive(prefix),
    }
}

/// The smallest string greater than every string that starts with `prefix`, or `None` when
/// there is none (the empty prefix, or a prefix made only of U+10FFFF).
///
/// The successor is taken per character, not per byte: incrementing the last *byte* of a UTF-8
/// string can produce invalid UTF-8 (`"a\u{7f}"` would become `"a\x80"`), which SQLite would
/// have to compare as a BLOB, and every BLOB sorts after every TEXT. Because UTF-8 byte order is
/// code point order, `p' + next_char(c)` bounds exactly the strings starting with `p' + c`;
/// the only code points skipped over are surrogates, which no string contains.
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = next_char(last) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
        // `last` is U+10FFFF: nothing follows it, so carry into the previous character.
    }
    None
}

fn next_char(c: char) -> Option<char> {
    match c {
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        _ => char::from_u32(u32::from(c) + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_of_ascii_prefix_increments_the_last_character() {
        assert_eq!(prefix_successor("acct/1/").as_deref(), Some("acct/10"));
        assert_eq!(prefix_successor("a\u{7f}").as_deref(), Some("a\u{80}"));
    }

    #[test]
    fn successor_skips_surrogates_and_carries_past_the_last_code_point() {
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
    }

    #[test]
    fn successor_bounds_exactly_the_prefixed_strings() {
        let samples = [
            "",
            "a",
            "ab",
            "a\u{7f}",
            "a\u{80}",
            "a\u{10FFFF}",
            "b",
            "\u{D7FF}",
            "\u{E000}",
            "é",
            "\u{FFFF}",
            "\u{10000}",
            "\u{10FFFF}",
        ];
        for prefix in samples {
            for rest in samples {
                for other in samples {
                    let key = format!("{other}{rest}");
                    let in_range = key.as_str() >= prefix
                        && prefix_successor(prefix).is_none_or(|s| key.as_str() < s.as_str());
                    assert_eq!(in_range, key.starts_with(prefix), "{prefix:?} {key:?}");
                }
            }
        }
    }
}
