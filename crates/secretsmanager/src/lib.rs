//! Secrets Manager (awsJson1.1, target prefix `secretsmanager`): secrets, versions and staging
//! labels, envelope encryption through KMS, resource policies with principal capture, and the
//! deletion lifecycle with its durable purge job.
//!
//! Each operation resolves the `SecretId`, names its IAM action (`secretsmanager:<Op>`), the
//! secret ARN and the condition keys to the Authorizer together with the secret's resource
//! policy, and never decides access itself ([`access`]). Every write is one store transaction,
//! KMS data-key generation included. No secret value reaches a log line, an error, a `Debug`
//! output or the store unencrypted.
//!
//! Rotation (RotateSecret, CancelRotateSecret) configures a schedule ([`schedule`]) and writes
//! durable rotation jobs ([`rotation`]) that the server's rotation worker runs through
//! [`rotation_run`], invoking the rotation function via [`tresor_core::Functions`].
//! Multi-Region replication ([`replication`]: ReplicateSecretToRegions,
//! RemoveRegionsFromReplication, StopReplicationToReplica) copies a primary to read-only
//! replicas in other regions — of this deployment or of a peer deployment — through durable
//! jobs run by [`replication_sync`].

mod access;
pub mod deletion;
mod envelope;
pub mod errors;
mod jobs;
pub mod listing;
mod model;
pub mod password;
pub mod policy;
pub mod replication;
pub mod replication_outbox;
pub mod replication_sync;
#[cfg(test)]
mod replication_tests;
pub mod rotation;
pub mod rotation_run;
#[cfg(test)]
mod rotation_tests;
pub mod schedule;
pub mod secrets;
pub mod shapes;
pub mod tags;
mod validate;
pub mod versions;

pub use errors::SecretsManagerError;
pub use jobs::run_due_jobs;
pub use versions::{SecretValue, read_secret_value};
