//! The wire layer: AWS's awsJson1.1 and awsQuery protocols — which service and operation a
//! request names, decoding its input, encoding outputs and rendering AWS's error shapes.
//!
//! It knows the protocols and nothing of any service's semantics: no secrets, keys or
//! policies live here. SigV4 verification math is in the sibling crate `tresor-sigv4`.

pub mod blob;
pub mod error;
pub mod escape;
pub mod json;
pub mod query;
pub mod route;
pub mod service;
pub mod timefmt;
pub mod validate;
pub mod xml;

pub use error::{AwsError, MessageCase, ServiceError, to_aws_error};
pub use service::{Protocol, ServiceId};
