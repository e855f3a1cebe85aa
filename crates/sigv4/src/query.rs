//! Splitting and decoding a raw query string, shared by `parse` (which reads the presigned
//! `X-Amz-*` parameters) and `canonical` (which rebuilds the canonical query string). It is a
//! leaf: it uses no other module of this crate, so `parse` and `canonical` depend on it and
//! `canonical` on `parse`, never the other way round.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// Decodes one query component the way AWS front ends do: `%XX` escapes and `+` as a space
/// (the reason SigV2-era clients had to send `+` as `%2B`); aws-sdk-rust canonicalizes the same
/// way (`form_urlencoded::parse`).
fn decode_query_component(raw: &str) -> Cow<'_, [u8]> {
    if !raw.contains(['%', '+']) {
        return Cow::Borrowed(raw.as_bytes());
    }
    let plus_as_space: Cow<'_, [u8]> = if raw.contains('+') {
        Cow::Owned(
            raw.bytes()
                .map(|b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw.as_bytes())
    };
    Cow::Owned(percent_decode(&plus_as_space).collect())
}

/// Splits a raw query into decoded `(name, value)` pairs, skipping empty pieces (`a=1&&b=2`).
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, [u8]>, Cow<'_, [u8]>)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode_query_component(name), decode_query_component(value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(query: &str) -> Vec<(String, String)> {
        query_pairs(query)
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn pairs_are_decoded_and_empty_pieces_skipped() {
        assert_eq!(
            decoded("a=1&&b=x%2By+z&flag"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x+y z".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert!(decoded("").is_empty());
    }
}
