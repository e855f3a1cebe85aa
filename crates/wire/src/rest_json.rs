//! The restJson1 protocol (Lambda and services to come): which operation a request's method
//! and path name, decoding its input from URI labels, query string, headers and JSON body,
//! encoding its output, and rendering errors.
//!
//! Everything here is plain data — method, raw path, raw query, header pairs, body bytes in;
//! status, header pairs, body bytes out — so the crate stays free of HTTP libraries.
//!
//! An operation is described as in its botocore model: `http.method` + `http.requestUri`
//! (`POST /2015-03-31/functions/{FunctionName}/invocations`, with `{Label}` for one path
//! segment and `{Label+}` for one or more), plus the members bound to the query string,
//! headers or status code ([`Binding`]) and whether one member is the raw body
//! ([`Payload::Blob`]). The rest of the input is the JSON body; members bound elsewhere are
//! merged into it before decoding, so the input is one `#[derive(Deserialize)]` struct.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{AwsError, MessageCase};

pub const CONTENT_TYPE: &str = "application/json";

/// The header naming the error code of a restJson1 error response (AWS Smithy restJson1
/// protocol, "Operation error serialization").
pub const ERROR_TYPE_HEADER: &str = "X-Amzn-ErrorType";

// ---------------------------------------------------------------------------------------
// Routing.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Label(String),
    /// `{Name+}`: one or more segments, `/` kept.
    Greedy(String),
}

/// A parsed `METHOD /path/{Label}/{Greedy+}?literal` request template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    method: String,
    segments: Vec<Segment>,
    /// Query parameters the URI itself requires (`?versions`, `?x-id=GetObject`).
    query: Vec<(String, Option<String>)>,
}

/// A template that cannot be parsed: a programming error in an operation table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid request URI template {0:?}")]
pub struct TemplateError(pub String);

impl Template {
    pub fn parse(spec: &str) -> Result<Template, TemplateError> {
        let bad = || TemplateError(spec.to_string());
        let (method, uri) = spec.split_once(' ').ok_or_else(bad)?;
        if method.is_empty() || !uri.starts_with('/') {
            return Err(bad());
        }
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let mut segments = Vec::new();
        let mut greedy = false;
        for seg in path[1..].split('/').filter(|s| !s.is_empty()) {
            let segment = match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(label) => match label.strip_suffix('+') {
                    Some(name) if !name.is_empty() && !greedy => {
                        greedy = true;
                        Segment::Greedy(name.to_string())
                    }
                    Some(_) => return Err(bad()),
                    None if label.is_empty() => return Err(bad()),
                    None => Segment::Label(label.to_string()),
                },
                None if seg.contains(['{', '}']) => return Err(bad()),
                None => Segment::Literal(seg.to_string()),
            };
            segments.push(segment);
        }
        let query = query
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (p.to_string(), None),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Template {
            method: method.to_string(),
            segments,
            query,
        })
    }

    /// The labels, percent-decoded, when `method`, the raw `path` and the raw `query`
    /// match. A label that is not UTF-8 once decoded does not match.
    pub fn matches(&self, method: &str, path: &str, query: &str) -> Option<Vec<(String, String)>> {
        if method != self.method {
            return None;
        }
        let raw: Vec<&str> = path
            .strip_prefix('/')?
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut labels = Vec::new();
        let mut i = 0;
        for (n, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Literal(lit) => {
                    if decode_segment(raw.get(i)?)? != *lit {
                        return None;
                    }
                    i += 1;
                }
                Segment::Label(name) => {
                    labels.push((name.clone(), decode_segment(raw.get(i)?)?));
                    i += 1;
                }
                Segment::Greedy(name) => {
                    let after = self.segments.len() - n - 1;
                    let end = raw.len().checked_sub(after)?;
                    if end <= i {
                        return None;
                    }
                    let parts: Option<Vec<String>> =
                        raw[i..end].iter().map(|s| decode_segment(s)).collect();
                    labels.push((name.clone(), parts?.join("/")));
                    i = end;
                }
            }
        }
        if i != raw.len() {
            return None;
        }
        let pairs = query_pairs(query);
        for (k, v) in &self.query {
            let found = pairs
                .iter()
                .any(|(pk, pv)| pk == k && v.as_ref().is_none_or(|v| pv == v));
            if !found {
                return None;
            }
        }
        Some(labels)
    }

    /// Literal segments count for specificity: `/functions/{Name}/policy` wins over
    /// `/functions/{Name}/{Other}`.
    fn literals(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
            + self.query.len()
    }
}

fn decode_segment(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// The decoded `name=value` pairs of a raw query string, in order.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Operations by request template; the most specific matching template wins.
#[derive(Clone, Debug)]
pub struct Router<Op> {
    routes: Vec<(Template, Op)>,
}

impl<Op> Default for Router<Op> {
    fn default() -> Self {
        Router { routes: Vec::new() }
    }
}

/// A routed request: the operation and its percent-decoded URI labels.
#[derive(Debug, PartialEq, Eq)]
pub struct Routed<'r, Op> {
    pub operation: &'r Op,
    pub labels: Vec<(String, String)>,
}

impl<Op> Router<Op> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route(mut self, spec: &str, operation: Op) -> Result<Self, TemplateError> {
        self.routes.push((Template::parse(spec)?, operation));
        Ok(self)
    }

    /// The operation for a request, or AWS's `UnknownOperationException` (404).
    pub fn find(&self, method: &str, path: &str, query: &str) -> Result<Routed<'_, Op>, AwsError> {
        let mut best: Option<(usize, Routed<'_, Op>)> = None;
        for (template, op) in &self.routes {
            if let Some(labels) = template.matches(method, path, query) {
                let score = template.literals();
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((
                        score,
                        Routed {
                            operation: op,
                            labels,
                        },
                    ));
                }
            }
        }
        best.map(|(_, r)| r)
            .ok_or_else(|| AwsError::bare("UnknownOperationException", 404))
    }
}

// ---------------------------------------------------------------------------------------
// Input and output members outside the JSON body.

/// Where a member other than a URI label travels (botocore `location`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// `location: querystring`, `locationName`.
    Query(&'static str),
    /// `location: header`, `locationName` (case-insensitive).
    Header(&'static str),
    /// `location: statusCode` (outputs only).
    StatusCode,
}

/// The JSON type a query, header or status-code member has in the input/output struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Boolean,
    /// A query member repeated (`?a=1&a=2`) or a comma-separated header.
    StringList,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The member name in the input/output struct (`Qualifier`).
    pub member: &'static str,
    pub location: Location,
    pub kind: Kind,
}

/// What the HTTP body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A JSON object of the members not bound elsewhere.
    Members,
    /// The raw bytes of one blob member (Lambda `Invoke`'s `Payload`). In the struct the
    /// member is `#[serde(with = "tresor_wire::blob")]`.
    Blob(&'static str),
}

/// How one operation's input or output maps onto the HTTP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub bindings: &'static [Binding],
    pub payload: Payload,
}

impl Shape {
    pub const BODY: Shape = Shape {
        bindings: &[],
        payload: Payload::Members,
    };
}

/// A request as plain data. `path` and `query` are raw (still percent-encoded).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// A response as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn bad_member(location: &str, name: &str, kind: &str) -> AwsError {
    // The value is not quoted: it may be a secret sent in the wrong place.
    AwsError::serialization(format!("The {location} {name} is not a valid {kind}."))
}

fn typed(kind: Kind, values: Vec<String>, location: &str, name: &str) -> Result<Value, AwsError> {
    let one = || values.last().cloned().unwrap_or_default();
    Ok(match kind {
        Kind::String => Value::String(one()),
        Kind::Integer => one()
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad_member(location, name, "integer"))?,
        Kind::Boolean => match one().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad_member(location, name, "boolean")),
        },
        Kind::StringList => Value::Array(values.into_iter().map(Value::String).collect()),
    })
}

/// Decodes an operation's input: the JSON body (or raw payload), the URI `labels` from
/// [`Router::find`], and the members `shape` binds to the query string and headers.
///
/// Malformed JSON and wrong member types are `SerializationException`; a missing required
/// member is `ValidationException` "Value null at 'member' …", as for awsJson1.1.
pub fn decode<T: DeserializeOwned>(
    request: &Request<'_>,
    labels: &[(String, String)],
    shape: &Shape,
) -> Result<T, AwsError> {
    let mut members = match shape.payload {
        Payload::Members => body_object(request.body)?,
        Payload::Blob(member) => {
            let mut m = Map::new();
            if !request.body.is_empty() {
                let encoded = zeroize::Zeroizing::new(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    request.body,
                ));
                m.insert(member.to_string(), Value::String(encoded.to_string()));
            }
            m
        }
    };
    let query = query_pairs(request.query);
    for b in shape.bindings {
        let (values, location, name): (Vec<String>, &str, &str) = match b.location {
            Location::Query(name) => (
                query
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .collect(),
                "query parameter",
                name,
            ),
            Location::Header(name) => (
                request
                    .headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .flat_map(|(_, v)| {
                        if b.kind == Kind::StringList {
                            v.split(',').map(|s| s.trim().to_string()).collect()
                        } else {
                            vec![(*v).to_string()]
                        }
                    })
                    .collect(),
                "header",
                name,
            ),
            Location::StatusCode => continue,
        };
        if !values.is_empty() {
            members.insert(b.member.to_string(), typed(b.kind, values, location, name)?);
        }
    }
    for (name, value) in labels {
        members.insert(name.clone(), Value::String(value.clone()));
    }
    serde_json::from_value(Value::Object(members)).map_err(|e| crate::json::map_error(&e))
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AwsError::serialization(
            "Start of structure or map found where not expected.",
        )),
        Err(e) => Err(crate::json::map_error(&e)),
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(text_of).collect();
            parts.map(|p| p.join(", "))
        }
        _ => None,
    }
}

/// Encodes an operation's output: members bound to headers become headers, a
/// `StatusCode` member the status (else `status`), a blob payload the raw body, the rest a
/// JSON object. `None` members must be skipped by the output type.
pub fn encode<T: Serialize>(status: u16, output: &T, shape: &Shape) -> Result<Response, AwsError> {
    let internal = |what: &str| {
        tracing::error!(what, "restJson1 output cannot be encoded");
        AwsError::internal(crate::service::Protocol::AwsJson11)
    };
    let mut members = match serde_json::to_value(output) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Null) => Map::new(),
        Ok(_) => return Err(internal("output is not a structure")),
        Err(_) => return Err(internal("output does not serialize")),
    };
    let mut response = Response {
        status,
        headers: Vec::new(),
        body: Vec::new(),
    };
    for b in shape.bindings {
        let Some(value) = members.remove(b.member) else {
            continue;
        };
        match b.location {
            Location::Header(name) => {
                if let Some(text) = text_of(&value) {
                    response.headers.push((name.to_string(), text));
                }
            }
            Location::StatusCode => {
                response.status = value
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or_else(|| internal("status code member is not a status"))?;
            }
            Location::Query(_) => {}
        }
    }
    match shape.payload {
        // 204 No Content has no body (DeleteFunction, RemovePermission).
        Payload::Members if response.status == 204 => {}
        Payload::Members => {
            response
                .headers
                .push(("Content-Type".to_string(), CONTENT_TYPE.to_string()));
            response.body = serde_json::to_vec(&Value::Object(members))
                .map_err(|_| internal("output does not serialize"))?;
        }
        Payload::Blob(member) => {
            if let Some(Value::String(text)) = members.remove(member) {
                let text = zeroize::Zeroizing::new(text);
                response.body = crate::blob::decode(text.as_bytes())
                    .ok_or_else(|| internal("payload member is not base64"))?;
                response.headers.push((
                    "Content-Type".to_string(),
                    "application/octet-stream".to_string(),
                ));
            }
        }
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// Errors.

/// A restJson1 error response: the status, the error code in `X-Amzn-ErrorType`, and a JSON
/// body with the message under `message` or `Message` as the error's model shape names it
/// (`{}` for an error without a message).
pub fn render_error(err: &AwsError, case: MessageCase) -> Response {
    let mut body = Map::new();
    if let Some(m) = &err.message {
        let key = match case {
            MessageCase::Lower => "message",
            MessageCase::Upper => "Message",
        };
        body.insert(key.to_string(), Value::String(m.clone()));
    }
    Response {
        status: err.status,
        headers: vec![
            (ERROR_TYPE_HEADER.to_string(), err.code.to_string()),
            ("Content-Type".to_string(), CONTENT_TYPE.to_string()),
        ],
        body: serde_json::to_vec(&Value::Object(body)).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Op {
        Invoke,
        GetFunction,
        GetPolicy,
        ListFunctions,
        GetObject,
        CreateAlias,
    }

    fn router() -> Router<Op> {
        Router::new()
            .route(
                "POST /2015-03-31/functions/{FunctionName}/invocations",
                Op::Invoke,
            )
            .and_then(|r| r.route("GET /2015-03-31/functions/{FunctionName}", Op::GetFunction))
            .and_then(|r| {
                r.route(
                    "GET /2015-03-31/functions/{FunctionName}/policy",
                    Op::GetPolicy,
                )
            })
            .and_then(|r| r.route("GET /2015-03-31/functions/", Op::ListFunctions))
            .and_then(|r| {
                r.route(
                    "POST /2015-03-31/functions/{FunctionName}/aliases",
                    Op::CreateAlias,
                )
            })
            .and_then(|r| r.route("GET /{Bucket}/{Key+}?x-id=GetObject", Op::GetObject))
            .unwrap_or_default()
    }

    fn find(method: &str, path: &str, query: &str) -> Option<(Op, Vec<(String, String)>)> {
        router()
            .find(method, path, query)
            .ok()
            .map(|r| (*r.operation, r.labels))
    }

    fn label(v: &str) -> Vec<(String, String)> {
        vec![("FunctionName".to_string(), v.to_string())]
    }

    #[test]
    fn lambda_routes_match_with_percent_decoded_labels() {
        assert_eq!(
            find("POST", "/2015-03-31/functions/my-fn/invocations", ""),
            Some((Op::Invoke, label("my-fn")))
        );
        assert_eq!(
            find(
                "GET",
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af%20x",
                "Qualifier=1"
            ),
            Some((
                Op::GetFunction,
                label("arn:aws:lambda:us-east-1:123456789012:function:f x")
            ))
        );
        assert_eq!(
            find("GET", "/2015-03-31/functions/", ""),
            Some((Op::ListFunctions, vec![]))
        );
        assert_eq!(
            find("GET", "/2015-03-31/functions", ""),
            Some((Op::ListFunctions, vec![]))
        );
    }

    #[test]
    fn literal_segments_beat_labels_and_greedy_labels_keep_slashes() {
        assert_eq!(
            find("GET", "/2015-03-31/functions/f/policy", ""),
            Some((Op::GetPolicy, label("f")))
        );
        assert_eq!(
            find("GET", "/b/a/b%2Fc/d.txt", "x-id=GetObject"),
            Some((
                Op::GetObject,
                vec![
                    ("Bucket".to_string(), "b".to_string()),
                    ("Key".to_string(), "a/b/c/d.txt".to_string())
                ]
            ))
        );
        assert_eq!(find("GET", "/b/k", ""), None);
        assert_eq!(find("GET", "/b", "x-id=GetObject"), None);
    }

    #[test]
    fn unmatched_requests_are_unknown_operations() {
        for (m, p) in [
            ("DELETE", "/2015-03-31/functions/f/invocations"),
            ("POST", "/2015-03-31/functions/f/invocations/extra"),
            ("GET", "/2015-03-31/functions/%FF"),
            ("GET", "nothing"),
        ] {
            let e = router().find(m, p, "").err();
            assert_eq!(
                e,
                Some(AwsError::bare("UnknownOperationException", 404)),
                "{m} {p}"
            );
        }
    }

    #[test]
    fn bad_templates_are_rejected() {
        for t in ["/x", "GET x", "GET /{}", "GET /{a+}/{b+}", "GET /a{b}"] {
            assert!(Template::parse(t).is_err(), "{t}");
        }
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct InvocationRequest {
        function_name: String,
        invocation_type: Option<String>,
        qualifier: Option<String>,
        #[serde(with = "crate::blob::option", default)]
        payload: Option<Vec<u8>>,
    }

    const INVOKE_IN: Shape = Shape {
        bindings: &[
            Binding {
                member: "InvocationType",
                location: Location::Header("X-Amz-Invocation-Type"),
                kind: Kind::String,
            },
            Binding {
                member: "Qualifier",
                location: Location::Query("Qualifier"),
                kind: Kind::String,
            },
        ],
        payload: Payload::Blob("Payload"),
    };

    #[test]
    fn invoke_input_comes_from_label_header_query_and_raw_body() {
        let req = Request {
            method: "POST",
            path: "/2015-03-31/functions/f%3A1/invocations",
            query: "Qualifier=%24LATEST",
            headers: &[("x-amz-invocation-type", "Event")],
            body: b"{\"not\": \"parsed\"}",
        };
        let router = router();
        let routed = router.find(req.method, req.path, req.query).ok();
        let labels = routed.map(|r| r.labels).unwrap_or_default();
        let input: Option<InvocationRequest> = decode(&req, &labels, &INVOKE_IN).ok();
        assert_eq!(
            input,
            Some(InvocationRequest {
                function_name: "f:1".into(),
                invocation_type: Some("Event".into()),
                qualifier: Some("$LATEST".into()),
                payload: Some(b"{\"not\": \"parsed\"}".to_vec()),
            })
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct ListFunctionsRequest {
        max_items: Option<i32>,
        marker: Option<String>,
        function_version: Option<String>,
    }

    const LIST_IN: Shape = Shape {
        bindings: &[
            Binding {
                member: "MaxItems",
                location: Location::Query("MaxItems"),
                kind: Kind::Integer,
            },
            Binding {
                member: "Marker",
                location: Location::Query("Marker"),
                kind: Kind::String,
            },
        ],
        payload: Payload::Members,
    };

    fn request<'a>(query: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method: "GET",
            path: "/",
            query,
            headers: &[],
            body,
        }
    }

    #[test]
    fn typed_query_members_and_their_errors() {
        let ok: Option<ListFunctionsRequest> =
            decode(&request("MaxItems=10&Marker=a%2Bb", b""), &[], &LIST_IN).ok();
        assert_eq!(
            ok,
            Some(ListFunctionsRequest {
                max_items: Some(10),
                marker: Some("a+b".into()),
                function_version: None,
            })
        );
        let e = decode::<ListFunctionsRequest>(&request("MaxItems=hunter2", b""), &[], &LIST_IN)
            .err()
            .map(|e| (e.code.to_string(), e.message.unwrap_or_default()))
            .unwrap_or_default();
        assert_eq!(e.0, "SerializationException");
        assert!(!e.1.contains("hunter2"), "{}", e.1);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct CreateAliasRequest {
        function_name: String,
        name: String,
        function_version: String,
        description: Option<String>,
    }

    #[test]
    fn json_body_members_merge_with_labels() {
        let labels = label("f");
        let body = br#"{"Name":"live","FunctionVersion":"3"}"#;
        let ok: Option<CreateAliasRequest> = decode(&request("", body), &labels, &Shape::BODY).ok();
        assert_eq!(
            ok,
            Some(CreateAliasRequest {
                function_name: "f".into(),
                name: "live".into(),
                function_version: "3".into(),
                description: None,
            })
        );
        let code = |body: &[u8]| {
            decode::<CreateAliasRequest>(&request("", body), &labels, &Shape::BODY)
                .err()
                .map(|e| (e.code.to_string(), e.message.unwrap_or_default()))
                .unwrap_or_default()
        };
        assert_eq!(code(b"{").0, "SerializationException");
        assert_eq!(code(b"[1]").0, "SerializationException");
        assert_eq!(
            code(br#"{"Name":"live"}"#),
            (
                "ValidationException".to_string(),
                "1 validation error detected: Value null at 'functionVersion' failed to satisfy constraint: Member must not be null".to_string()
            )
        );
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct InvocationResponse {
        status_code: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        function_error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        executed_version: Option<String>,
        #[serde(with = "crate::blob::option", skip_serializing_if = "Option::is_none")]
        payload: Option<Vec<u8>>,
    }

    const INVOKE_OUT: Shape = Shape {
        bindings: &[
            Binding {
                member: "StatusCode",
                location: Location::StatusCode,
                kind: Kind::Integer,
            },
            Binding {
                member: "FunctionError",
                location: Location::Header("X-Amz-Function-Error"),
                kind: Kind::String,
            },
            Binding {
                member: "ExecutedVersion",
                location: Location::Header("X-Amz-Executed-Version"),
                kind: Kind::String,
            },
        ],
        payload: Payload::Blob("Payload"),
    };

    #[test]
    fn invoke_output_puts_members_in_status_headers_and_raw_body() {
        let r = encode(
            200,
            &InvocationResponse {
                status_code: 202,
                function_error: Some("Unhandled".into()),
                executed_version: None,
                payload: Some(b"\"hi\"".to_vec()),
            },
            &INVOKE_OUT,
        );
        assert_eq!(
            r.ok(),
            Some(Response {
                status: 202,
                headers: vec![
                    ("X-Amz-Function-Error".into(), "Unhandled".into()),
                    ("Content-Type".into(), "application/octet-stream".into()),
                ],
                body: b"\"hi\"".to_vec(),
            })
        );
    }

    #[test]
    fn json_output_is_a_json_body() {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Out {
            alias_arn: String,
        }
        let r = encode(
            201,
            &Out {
                alias_arn: "a".into(),
            },
            &Shape::BODY,
        );
        assert_eq!(
            r.ok(),
            Some(Response {
                status: 201,
                headers: vec![("Content-Type".into(), CONTENT_TYPE.into())],
                body: br#"{"AliasArn":"a"}"#.to_vec(),
            })
        );
        assert!(encode(200, &"text", &Shape::BODY).is_err());
    }

    #[test]
    fn a_204_has_no_body() {
        #[derive(Serialize)]
        struct Empty {}
        let r = encode(204, &Empty {}, &Shape::BODY);
        assert_eq!(
            r.ok(),
            Some(Response {
                status: 204,
                headers: vec![],
                body: vec![],
            })
        );
    }

    #[test]
    fn errors_carry_the_code_header_and_the_models_message_key() {
        let e = AwsError::new(
            "ResourceNotFoundException",
            404,
            "Function not found: arn:aws:lambda:us-east-1:123456789012:function:f",
        );
        let r = render_error(&e, crate::error::lambda_message_case(&e.code));
        assert_eq!(r.status, 404);
        assert!(
            r.headers
                .contains(&(ERROR_TYPE_HEADER.into(), "ResourceNotFoundException".into()))
        );
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            r#"{"Message":"Function not found: arn:aws:lambda:us-east-1:123456789012:function:f"}"#
        );
        let e = AwsError::new("TooManyRequestsException", 429, "Rate exceeded");
        let r = render_error(&e, crate::error::lambda_message_case(&e.code));
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            r#"{"message":"Rate exceeded"}"#
        );
        let r = render_error(
            &AwsError::bare("UnknownOperationException", 404),
            MessageCase::Upper,
        );
        assert_eq!(r.body, b"{}".to_vec());
    }

    proptest! {
        #[test]
        fn any_label_survives_percent_encoding(name in "\\PC{1,40}") {
            let encoded = percent_encoding::utf8_percent_encode(
                &name,
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string();
            let path = format!("/2015-03-31/functions/{encoded}");
            prop_assert_eq!(
                find("GET", &path, ""),
                Some((Op::GetFunction, label(&name)))
            );
        }
    }
}
