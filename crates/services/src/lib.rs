//! The AWS semantics of tresor: records, operations and errors of IAM, STS, KMS, Secrets
//! Manager and Parameter Store.
//!
//! Services never parse HTTP and never talk to a database directly: they get an
//! authenticated [`RequestCtx`], a decoded input (through `tresor-wire`'s codecs) and the
//! ordered key-value [`tresor_store::Store`]. Every write is one store transaction.

pub mod authz;
pub mod authz_impl;
pub mod bootstrap;
pub mod cache;
pub mod ctx;
pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod generation;
pub mod iam;
pub mod identity;
pub mod keys;
pub mod record;
pub mod sts;
#[cfg(feature = "testing")]
pub mod testing;

pub use ctx::{Caller, CallerKind, RequestCtx};
pub use dispatch::{JsonHandler, QueryHandler, Services, query_handler};
pub use identity::{CredentialError, ResolvedCredential};
