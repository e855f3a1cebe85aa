//! Server-side AWS Signature Version 4 verification, as described in the IAM User Guide's
//! "AWS Signature Version 4 for API requests"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html>).
//!
//! This crate owns the SigV4 math: reading the credentials of a request ([`parse`], phase 1,
//! no secret needed), deriving and caching signing keys ([`derive_signing_key`],
//! [`SigningKeyCache`]), and checking time, scope and signature ([`verify`], phase 2). It must
//! not look up access keys, judge session tokens, know any service's semantics or do I/O — the
//! server does that between the two phases — and it must never put a secret, a signing key, a
//! session token or the signature it computed into an error message or `Debug` output.
//!
//! ```text
//! let auth = tresor_sigv4::parse(&req)?;                 // Missing / Incomplete
//! let secret = look_up(&auth.access_key_id, auth.session_token.as_deref())?;
//! let key = cache.get_or_derive(&auth.access_key_id, secret, &auth.scope_date,
//!                               &auth.region, &auth.service);
//! tresor_sigv4::verify(&auth, &req, &key, "ssm", now)?;  // Skew / Scope / Mismatch / …
//! ```

// Module dependencies point one way: `query` and `time_format` are leaves, `parse` uses them,
// `canonical` uses `parse` and `query`, `key` uses `parse`, and `verify` uses all of them.
mod canonical;
mod error;
mod key;
mod parse;
mod query;
mod time_format;
mod verify;

pub use canonical::{CanonicalForm, UriPathMode, VerifyOptions, canonical_form, canonical_forms};
pub use error::{MISMATCH_MESSAGE, MISSING_MESSAGE, PRESIGNED_EXPIRED_MESSAGE, SigV4Error};
pub use key::{
    DEFAULT_SIGNING_KEY_CACHE_CAPACITY, SigningKey, SigningKeyCache, derive_signing_key,
};
pub use parse::{MAX_PRESIGNED_EXPIRES_SECONDS, ParsedAuth, is_presign_parameter, parse};
pub use time_format::format_amz_date;
pub use verify::{MAX_CLOCK_SKEW, verify, verify_with};

/// Lower-case header names (what `http::HeaderMap` looks up).
pub(crate) const X_AMZ_DATE_HEADER: &str = "x-amz-date";
pub(crate) const X_AMZ_SECURITY_TOKEN_HEADER: &str = "x-amz-security-token";

/// The parts of an HTTP request that verification needs.
///
/// `path` and `query` are exactly as on the wire (raw, still percent-encoded; `query` without
/// the `?`). `headers` must hold every header as received, repeated headers in arrival order;
/// `host` must be among them (hyper's HTTP/1.1 server keeps it).
///
/// Deliberately not `Debug`: the headers carry the `Authorization` header and session tokens.
#[derive(Clone, Copy)]
pub struct HttpRequest<'a> {
    /// The request method, e.g. `POST`.
    pub method: &'a str,
    /// The raw request path, e.g. `/`.
    pub path: &'a str,
    /// The raw query string without `?`, empty when there is none.
    pub query: &'a str,
    /// All request headers.
    pub headers: &'a http::HeaderMap,
    /// The complete request body.
    pub body: &'a [u8],
}
