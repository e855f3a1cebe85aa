//! The kernel every service shares: the request context, the service registry
//! ([`Services`]: store wrapper, root key, caches), the Authorizer and typed internal errors.
//!
//! The kernel knows no single service: it never names an IAM record, a secret or a key.
//! Principals are looked up through the [`Directory`] trait, which the IAM crate implements.
//! Services never parse HTTP and never open a database: they get an authenticated
//! [`RequestCtx`], a typed input (decoded by `tresor-wire`) and the ordered key-value
//! [`tresor_store::Store`] through [`Services`]. Every write is one store transaction.

pub mod audit;
pub mod authz;
pub mod cache;
pub mod conditions;
pub mod credential;
pub mod ctx;
mod decisions;
pub mod directory;
pub mod error;
pub mod functions;
pub mod generation;
pub mod lease;
pub mod record;
pub mod registry;

pub use authz::{AuthzRequest, Condition, ResourcePolicy, cond, owned_conditions};
pub use credential::{CredentialError, ResolvedCredential, SessionValidity};
pub use ctx::{Caller, CallerKind, RequestCtx};
pub use directory::{Directory, IdentityPolicies};
pub use error::{AuthzError, ServiceError};
pub use functions::{FunctionError, Functions, ServiceInvoke};
pub use registry::Services;
