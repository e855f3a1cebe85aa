//! AWS Lambda (restJson1, signing name `lambda`, API version 2015-03-31), the subset that
//! Secrets Manager rotation and its users need: functions with zip packages, their resource
//! policies, and `Invoke`, executed on the host by the runtime found there (`python3`,
//! `node`) or routed to an HTTP endpoint speaking the Lambda Invoke API.
//!
//! Each operation names its IAM action (`lambda:<Op>`, `lambda:InvokeFunction` for Invoke)
//! and the function ARN to the Authorizer with the function's resource policy; setting a
//! role also authorizes `iam:PassRole`. Every write is one store transaction. Packages are
//! sealed under the root key. Functions get credentials of their execution role from
//! tresor's STS ([`tresor_iam::sts::assume_role_for_service`]) and reach tresor only through
//! its public API.
//!
//! Other services invoke functions through the kernel's `Functions` seam
//! ([`service::LambdaFunctions`]).

pub mod errors;
pub mod exec;
pub mod functions;
pub mod invoke;
pub mod model;
pub mod permissions;
pub mod service;
pub mod shapes;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Weak};

pub use errors::LambdaError;
pub use exec::{ExecutorConfig, HttpRoute};
pub use service::LambdaFunctions;

/// A weak handle of the kernel on itself, for work that outlives a request (asynchronous
/// invocations).
pub struct SelfHandle(Weak<tresor_core::Services>);

impl SelfHandle {
    pub fn get(&self) -> Option<Arc<tresor_core::Services>> {
        self.0.upgrade()
    }
}

/// Plugs Lambda into a deployment: the executor (creating its private work directory), the
/// kernel's `Functions` seam, and the handle asynchronous invocations use.
pub fn install(
    services: &Arc<tresor_core::Services>,
    config: ExecutorConfig,
) -> Result<(), std::io::Error> {
    let executor = exec::Executor::new(config)?;
    services.set_extension(Arc::new(executor));
    services.set_extension(Arc::new(SelfHandle(Arc::downgrade(services))));
    services.set_functions(Arc::new(LambdaFunctions));
    Ok(())
}
