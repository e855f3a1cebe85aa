//! Systems Manager Parameter Store (awsJson1.1, target prefix `AmazonSSM`): String,
//! StringList and SecureString parameters with hierarchies, versions, labels, tiers,
//! parameter policies and tags, and the `/aws/reference/secretsmanager/…` path that reads
//! Secrets Manager secrets through Parameter Store (AWS Systems Manager User Guide, "AWS
//! Systems Manager Parameter Store").
//!
//! Each operation names its IAM action (`ssm:<Op>`), the parameter ARN and the condition
//! keys to the Authorizer and never decides access itself ([`access`]). SecureString values
//! are sealed under a fresh data key per version that KMS generates *as the caller*
//! ([`secure`]). Every write is one store transaction. No SecureString value reaches a log
//! line, an error, a `Debug` output or the store unencrypted.
//!
//! - the operations (typed inputs, outputs and handlers), named in the server's dispatch table.
//! - [`run_due_jobs`]: the background work (parameters whose Expiration policy is due).

mod access;
pub mod errors;
pub mod filters;
mod jobs;
pub mod labels;
pub mod listing;
mod model;
mod names;
pub mod params;
mod policies;
mod reference;
mod secure;
pub mod shapes;
pub mod tags;
mod values;

pub use errors::SsmError;
pub use jobs::run_due_jobs;

#[cfg(test)]
mod tests;
