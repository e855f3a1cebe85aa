//! A minimal XML writer for awsQuery responses (`<OpResponse><OpResult>…</OpResult>
//! <ResponseMetadata>…</ResponseMetadata></OpResponse>`). Only writing is needed: awsQuery
//! requests are form-encoded.

use serde::Serialize;

use crate::error::AwsError;
pub use crate::escape::escape;
use crate::service::{Protocol, ServiceId};

mod ser;

/// Builds the body of an `<OpResult>` element.
#[derive(Default, Debug)]
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `<tag>text</tag>`, text escaped.
    pub fn elem(&mut self, tag: &str, text: &str) -> &mut Self {
        self.open(tag);
        self.out.push_str(&escape(text));
        self.close(tag)
    }

    /// Writes the element only when there is a value (AWS omits absent members).
    pub fn opt(&mut self, tag: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.elem(tag, t);
        }
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Encodes an operation's output structure as the inner XML of `<{Action}Result>`, exactly
/// as [`XmlWriter`] would write the same members (see the table in the `ser` module docs:
/// members in declaration order, `None` omitted, lists as `<member>`s, maps as `<entry>`s).
/// `None` when nothing is written, for [`query_response`]'s "no Result element".
///
/// Timestamps are `#[serde(with = "tresor_wire::xml::iso8601")]`; blobs
/// `#[serde(with = "tresor_wire::blob")]`.
///
/// ```
/// use serde::Serialize;
/// use time::macros::datetime;
///
/// #[derive(Serialize)]
/// #[serde(rename_all = "PascalCase")]
/// struct Role {
///     role_name: String,
///     #[serde(with = "tresor_wire::xml::iso8601")]
///     create_date: time::OffsetDateTime,
///     max_session_duration: Option<i64>,
/// }
///
/// #[derive(Serialize)]
/// #[serde(rename_all = "PascalCase")]
/// struct ListRolesResult {
///     roles: Vec<Role>,
///     is_truncated: bool,
///     marker: Option<String>,
/// }
///
/// let out = tresor_wire::xml::encode(&ListRolesResult {
///     roles: vec![Role {
///         role_name: "r".into(),
///         create_date: datetime!(2026-01-01 0:00 UTC),
///         max_session_duration: None,
///     }],
///     is_truncated: false,
///     marker: None,
/// })?;
/// assert_eq!(
///     out.as_deref(),
///     Some("<Roles><member><RoleName>r</RoleName><CreateDate>2026-01-01T00:00:00Z</CreateDate>\
///           </member></Roles><IsTruncated>false</IsTruncated>"),
/// );
/// # Ok::<(), tresor_wire::AwsError>(())
/// ```
pub fn encode<T: Serialize + ?Sized>(output: &T) -> Result<Option<String>, AwsError> {
    ser::encode(output).map_err(|e| {
        tracing::error!(error = %e, "awsQuery output cannot be encoded");
        AwsError::internal(Protocol::AwsQuery)
    })
}

/// Serde helpers for IAM and STS timestamps: ISO-8601 in UTC to the second
/// (`2026-01-01T00:00:00Z`), as [`crate::timefmt::iso8601`] writes them. Decoding accepts
/// any RFC 3339 timestamp.
pub mod iso8601 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::timefmt::iso8601(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|_| serde::de::Error::custom("timestamp is not ISO-8601"))
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&crate::timefmt::iso8601(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] OffsetDateTime);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// The whole awsQuery success document. `result` is the inner XML of `<OpResult>`; `None`
/// for operations without output (only `ResponseMetadata` is sent).
pub fn query_response(
    service: ServiceId,
    operation: &str,
    result: Option<&str>,
    request_id: &str,
) -> String {
    let mut out = String::with_capacity(256 + result.map_or(0, str::len));
    out.push('<');
    out.push_str(operation);
    out.push_str("Response xmlns=\"");
    out.push_str(service.xml_namespace());
    out.push_str("\">\n");
    if let Some(r) = result {
        out.push_str("  <");
        out.push_str(operation);
        out.push_str("Result>");
        out.push_str(r);
        out.push_str("</");
        out.push_str(operation);
        out.push_str("Result>\n");
    }
    out.push_str("  <ResponseMetadata>\n    <RequestId>");
    out.push_str(&escape(request_id));
    out.push_str("</RequestId>\n  </ResponseMetadata>\n</");
    out.push_str(operation);
    out.push_str("Response>\n");
    out
}

/// The text of the first `<name>…</name>` element of an XML response from another server (an
/// upstream STS `GetCallerIdentity` answer), with the five predefined entities unescaped;
/// `None` if it has no such element. Not a general XML parser: elements with attributes or
/// nested markup are not matched.
pub fn element_text(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = doc.find(&open)? + open.len();
    let end = start + doc[start..].find(&close)?;
    let text = &doc[start..end];
    if text.contains('<') {
        return None;
    }
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_escapes_and_omits_absent_members() {
        let mut w = XmlWriter::new();
        w.open("User")
            .elem("UserName", "a<b")
            .opt("Path", None)
            .close("User");
        assert_eq!(w.finish(), "<User><UserName>a&lt;b</UserName></User>");
    }

    #[test]
    fn response_has_result_wrapper_and_request_id() {
        let x = query_response(
            ServiceId::Sts,
            "GetCallerIdentity",
            Some("<Account>1</Account>"),
            "r-1",
        );
        assert!(x.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ));
        assert!(
            x.contains("<GetCallerIdentityResult><Account>1</Account></GetCallerIdentityResult>")
        );
        assert!(x.contains("<RequestId>r-1</RequestId>"));
        let empty = query_response(ServiceId::Iam, "DeleteRole", None, "r");
        assert!(!empty.contains("DeleteRoleResult"));
    }

    #[test]
    fn iso8601_timestamps_round_trip_to_the_second() {
        use time::macros::datetime;
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "super::iso8601")]
            at: time::OffsetDateTime,
            #[serde(with = "super::iso8601::option", default)]
            maybe: Option<time::OffsetDateTime>,
        }
        let t = T {
            at: datetime!(2026-11-25 18:07:25.743 +01:00),
            maybe: None,
        };
        let text = serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(text, r#"{"at":"2026-11-25T17:07:25Z","maybe":null}"#);
        let back: Option<T> = serde_json::from_str(&text).ok();
        assert_eq!(
            back,
            Some(T {
                at: datetime!(2026-11-25 17:07:25 UTC),
                maybe: None
            })
        );
        assert!(serde_json::from_str::<T>(r#"{"at":"yesterday"}"#).is_err());
    }

    #[test]
    fn element_text_reads_a_simple_answer() {
        let doc = "<R><Result><Arn>arn:aws:sts::1:assumed-role/r/s&amp;x</Arn><Account>1</Account></Result></R>";
        assert_eq!(
            element_text(doc, "Arn").as_deref(),
            Some("arn:aws:sts::1:assumed-role/r/s&x")
        );
        assert_eq!(element_text(doc, "Account").as_deref(), Some("1"));
        assert_eq!(element_text(doc, "UserId"), None);
        assert_eq!(element_text(doc, "Result"), None);
    }
}
