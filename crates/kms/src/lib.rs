//! KMS (awsJson1.1, target prefix `TrentService`): customer and AWS-managed keys, key
//! policies, and the envelope encryption every secret and SecureString rests on.
//!
//! - [`ops`]: the operations (typed inputs, outputs and handlers), named in the server's dispatch table.
//! - [`envelope`]: the service-to-service API Secrets Manager and Parameter Store call *as
//!   the original caller* (same Authorizer, `kms:ViaService`).
//! - [`run_due_jobs`]: the background work (key deletion, automatic rotation).
//!
//! This crate never decides access (it asks `Services::authorize` with the key policy), never
//! parses HTTP, and never lets key material or plaintext reach the store unsealed, a log line,
//! an error message or `Debug` output. Ciphertext and material formats are documented in
//! [`blob`].

pub mod blob;
pub mod envelope;
pub mod errors;
mod jobs;
mod keys;
mod model;
pub mod ops;

pub use envelope::{DataKey, decrypt, generate_data_key, resolve_key_arn};
pub use errors::KmsError;
pub use jobs::run_due_jobs;

#[cfg(test)]
mod tests;
