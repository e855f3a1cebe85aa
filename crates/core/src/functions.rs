//! Calls into Lambda made by another service on its own behalf — Secrets Manager invoking a
//! rotation function as the service principal `secretsmanager.amazonaws.com`.
//!
//! The kernel knows no Lambda record: the Lambda crate implements [`Functions`] and the server
//! plugs it in with [`crate::Services::set_functions`], as it does for the
//! [`crate::Directory`]. A caller service matches the typed [`FunctionError`], never a string.
//!
//! Invoking is blocking and may take up to the function's timeout, and the function calls
//! back into tresor's public API (with its execution role): never invoke while holding a store
//! transaction.

/// One invocation by an AWS service principal.
#[derive(Clone, Copy, Debug)]
pub struct ServiceInvoke<'a> {
    /// The function's ARN (`arn:aws:lambda:<region>:<account>:function:<name>`, optionally
    /// with a `:<qualifier>`), as the calling service stored it.
    pub function_arn: &'a str,
    /// The invoking service principal, e.g. `secretsmanager.amazonaws.com`.
    pub service_principal: &'a str,
    /// `aws:SourceAccount`: the account of the resource the service acts for.
    pub source_account: &'a str,
    /// `aws:SourceArn`: the resource the service acts for (the secret's ARN).
    pub source_arn: &'a str,
}

/// Why a service's call into a function failed.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// No function with this ARN (or qualifier).
    #[error("function not found: {0}")]
    NotFound(String),
    /// The function's resource policy does not allow the service principal to invoke it.
    #[error("the function's resource policy does not allow {0} to invoke it")]
    AccessDenied(String),
    /// The function ran and failed: an unhandled exception, `Task timed out after …`, a
    /// runtime that exited. `error_type` and `error_message` are what Lambda would put in the
    /// error payload (`errorType`, `errorMessage`); they never carry a secret value.
    #[error("function error {error_type}: {error_message}")]
    Failed {
        error_type: String,
        error_message: String,
    },
    /// Lambda could not run the function at all (no runtime on the host, no Lambda service
    /// configured, the store failed).
    #[error("function could not run: {0}")]
    Unavailable(String),
}

/// Lambda as other services need it.
pub trait Functions: Send + Sync {
    /// Whether `call.service_principal` may invoke the function (its resource policy, with
    /// `aws:SourceAccount` / `aws:SourceArn`), without invoking it.
    fn check_service_invoke(
        &self,
        services: &crate::Services,
        call: &ServiceInvoke<'_>,
    ) -> Result<(), FunctionError>;

    /// Invokes the function synchronously (`RequestResponse`) with the JSON `payload`, after
    /// the same check as [`Functions::check_service_invoke`]; returns the function's result
    /// payload. Blocks until the function returns or times out.
    fn invoke_as_service(
        &self,
        services: &crate::Services,
        call: &ServiceInvoke<'_>,
        payload: &[u8],
    ) -> Result<Vec<u8>, FunctionError>;
}
