//! The Authorizer every operation asks (DESIGN.md §1): principal + action + resource ARN +
//! condition keys + optional resource policy → allow, or AWS's access-denied error naming the
//! caller, action, resource and reason. Operations never decide access themselves.

use crate::ctx::RequestCtx;
use crate::dispatch::Services;
use crate::error::AuthzError;

/// One authorization question.
pub struct AuthzRequest<'a> {
    /// `service:Action`, e.g. `iam:CreateRole`.
    pub action: &'a str,
    /// The resource ARN, or `*` for actions without a resource.
    pub resource: &'a str,
    /// Service-specific condition keys (`kms:ViaService`, `secretsmanager:SecretId`, …).
    pub context: Vec<(String, String)>,
    /// The resource-based policy document of the target, if it has one, and what kind it is.
    pub resource_policy: Option<ResourcePolicy<'a>>,
}

pub enum ResourcePolicy<'a> {
    /// A secret's resource policy.
    Generic(&'a str),
    /// A KMS key policy: required; IAM alone never suffices.
    KmsKey(&'a str),
    /// A role's trust policy, for `sts:AssumeRole`.
    RoleTrust(&'a str),
}

impl<'a> AuthzRequest<'a> {
    pub fn new(action: &'a str, resource: &'a str) -> Self {
        AuthzRequest {
            action,
            resource,
            context: Vec::new(),
            resource_policy: None,
        }
    }
}

impl Services {
    /// Decides `req` for the caller of `ctx`. Identity policies come from the
    /// generation-tagged identity cache (a change committed by the previous request is seen
    /// by the next one); no transaction of the caller's is needed, so an operation can ask
    /// before it takes the store's writer.
    pub fn authorize(&self, ctx: &RequestCtx, req: &AuthzRequest<'_>) -> Result<(), AuthzError> {
        crate::authz_impl::authorize(self, ctx, req)
    }
}
