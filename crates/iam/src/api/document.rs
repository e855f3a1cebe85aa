//! Policy documents as IAM returns them in XML.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (IAM API
/// Reference, GetRolePolicy: "The policy document returned in this structure is URL-encoded
/// compliant with RFC 3986").
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A policy document as IAM returns it in XML: percent-encoded JSON.
pub(crate) fn encode_document(doc: &str) -> String {
    utf8_percent_encode(doc, RFC3986).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_percent_encoded_as_rfc_3986() {
        assert_eq!(
            encode_document(r#"{"Version": "2012-10-17", "a~b": "*"}"#),
            "%7B%22Version%22%3A%20%222012-10-17%22%2C%20%22a~b%22%3A%20%22%2A%22%7D"
        );
    }
}
