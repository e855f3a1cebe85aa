//! A minimal XML writer for awsQuery responses (`<OpResponse><OpResult>…</OpResult>
//! <ResponseMetadata>…</ResponseMetadata></OpResponse>`). Only writing is needed: awsQuery
//! requests are form-encoded.

pub use crate::escape::escape;
use crate::service::ServiceId;

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
}
