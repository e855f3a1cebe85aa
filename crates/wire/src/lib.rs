//! The wire layer: AWS's awsJson1.1, awsQuery and restJson1 protocols — which service and
//! operation a request names, decoding its input, encoding outputs and rendering AWS's error
//! shapes.
//!
//! Service crates see only typed structs and typed errors: inputs are
//! `#[derive(Deserialize)]` structs decoded by [`json::decode`], [`query::decode`] or
//! [`rest_json::decode`]; outputs are `#[derive(Serialize)]` structs encoded by
//! [`json::encode`], [`xml::encode`] or [`rest_json::encode`]; errors implement
//! [`ServiceError`] and become an [`AwsError`] through [`to_aws_error`]. No service touches
//! XML, query strings or HTTP types.
//!
//! It knows the protocols and nothing of any service's semantics: no secrets, keys or
//! policies live here. SigV4 verification math is in the sibling crate `tresor-sigv4`.
//!
//! Module dependencies run one way: `service` and `escape` are leaves; `error` uses them;
//! the protocol modules use `error`.

pub mod blob;
pub mod error;
pub mod escape;
pub mod json;
mod json_out;
pub mod query;
pub mod rest_json;
pub mod route;
mod ser_error;
pub mod service;
pub mod timefmt;
pub mod validate;
pub mod xml;

pub use error::{AwsError, MessageCase, ServiceError, to_aws_error};
pub use service::{Protocol, ServiceId};
