//! Shared test helpers: locating the vendored SigV4 vectors and turning raw HTTP/1.1 text into
//! the parts `tresor_sigv4::HttpRequest` borrows.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tresor_sigv4::{HttpRequest, UriPathMode, VerifyOptions};

/// The vendored aws-c-auth vectors, `tests/data/aws-c-auth` in this crate. Missing vectors are
/// a failure, never a skip.
pub fn vectors_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/aws-c-auth");
    assert!(
        dir.join("README.md").is_file(),
        "SigV4 test vectors not found in {}",
        dir.display()
    );
    dir
}

/// One vector folder.
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
    pub timestamp: OffsetDateTime,
    pub normalize: bool,
    pub omit_session_token: bool,
}

impl Case {
    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap_or_else(|e| panic!("{}: {file}: {e}", self.name))
    }

    pub fn read_string(&self, file: &str) -> String {
        String::from_utf8(self.read(file)).unwrap()
    }

    pub fn options(&self) -> VerifyOptions {
        VerifyOptions {
            uri_path: if self.normalize {
                UriPathMode::NormalizeAndEncodeAgain
            } else {
                UriPathMode::AsIsEncodeOnce
            },
        }
    }
}

pub fn load_cases() -> Vec<Case> {
    let dir = vectors_dir();
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("context.json").is_file())
        .map(|path| {
            let context: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path.join("context.json")).unwrap()).unwrap();
            let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
            let credentials = &context["credentials"];
            Case {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                access_key_id: text(&credentials["access_key_id"]),
                secret_access_key: text(&credentials["secret_access_key"]),
                session_token: credentials.get("token").map(text),
                region: text(&context["region"]),
                service: text(&context["service"]),
                timestamp: OffsetDateTime::parse(context["timestamp"].as_str().unwrap(), &Rfc3339)
                    .unwrap(),
                normalize: context["normalize"].as_bool().unwrap(),
                omit_session_token: context
                    .get("omit_session_token")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
                dir: path,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        cases.len() >= 30,
        "expected the full suite in {}, found {}",
        dir.display(),
        cases.len()
    );
    cases
}

/// An owned request in the shape a hyper server hands over.
#[derive(Clone, Debug)]
pub struct OwnedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl OwnedRequest {
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    pub fn with<T>(&self, f: impl FnOnce(&HttpRequest<'_>) -> T) -> T {
        let headers = self.header_map();
        f(&HttpRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            body: &self.body,
        })
    }
}

/// Parses the raw HTTP/1.1 text of a vector file the way hyper would hand it to the server:
/// header values with surrounding whitespace removed (httparse trims them), repeated headers in
/// order, the body as the bytes after the blank line.
///
/// Two vectors hold requests hyper cannot receive as written:
/// - `get-header-value-multiline` uses obsolete line folding, which hyper rejects in requests
///   (400). RFC 7230 §3.2.4 lets a recipient instead replace each fold with spaces; that
///   unfolded value is what this parser produces, and what the verifier must accept.
/// - `get-space-*` have a literal space in the request target; hyper rejects that request line.
///   This parser keeps the target as written (the request line's first and last spaces delimit
///   it) so that the verifier's canonicalization is checked against the vector; the form real
///   clients send (`%20` on the wire) is checked separately in `vectors.rs`.
pub fn parse_raw_request(raw: &[u8]) -> OwnedRequest {
    let text_end = find(raw, b"\n\n").map_or(raw.len(), |i| i + 1);
    let head = std::str::from_utf8(&raw[..text_end]).unwrap();
    let body = raw.get(text_end + 1..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let (target, _version) = rest.rsplit_once(' ').unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = headers.last_mut().unwrap();
            value.push(b' ');
            value.extend_from_slice(line.trim_end().as_bytes());
            continue;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_owned(), value.trim().as_bytes().to_vec()));
    }
    OwnedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
