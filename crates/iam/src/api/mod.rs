//! IAM (awsQuery, version 2010-05-08): users, access keys, groups, roles, inline and managed
//! policies, instance profiles and permissions boundaries, with AWS's errors, limits and
//! unique ids (IAM API Reference; IAM User Guide, "IAM identifiers").
//!
//! Every operation names its IAM action (`iam:<Op>`) and the target's ARN to the Authorizer
//! before it reads or writes anything the caller could learn from; it never decides access
//! itself. Every write is one store transaction. Policy documents are validated with the
//! policy engine and returned percent-encoded (RFC 3986), as IAM does.
//!
//! This module also answers the Authorizer's questions about principals
//! ([`identity_policies`], [`role_by_arn`]) and Secrets Manager's unique-id capture
//! ([`arn_for_unique_id`], [`unique_id_for_arn`]).

pub mod access_keys;
mod arn;
pub mod attached;
mod aws_managed;
mod check;
mod document;
pub mod entities;
pub mod entity;
mod errors;
pub mod groups;
pub mod inline;
pub mod instance_profiles;
mod kind_input;
pub mod oidc_providers;
mod pagination;
pub mod policies;
mod principals;
pub mod roles;
pub mod simulate;
pub mod users;

use tresor_store::ReadTxn;
use tresor_wire::AwsError;

use crate::error::IamError;
use tresor_core::ctx::RequestCtx;

pub use crate::records::{
    GroupRecord, InstanceProfileRecord, ManagedPolicyRecord, PolicyVersionRecord, RoleRecord,
};
pub use aws_managed::{AWS_MANAGED_POLICIES, AwsManagedPolicy};
pub(crate) use check::{check_tags, merge_tags};
pub use principals::{arn_for_unique_id, identity_policies, role_by_arn, unique_id_for_arn};

/// Temporary credentials from `GetSessionToken` (root or an IAM user signing with an `ASIA`
/// key) carry no MFA context in tresor, which has no MFA devices; such credentials "cannot
/// call IAM API operations unless MFA information is included" (IAM User Guide, "Comparing
/// the AWS STS API operations"). AWS refuses them as it refuses an unknown token: observed
/// behavior is `InvalidClientTokenId` (403) "The security token included in the request is
/// invalid", before the request is looked at.
pub fn session_may_call_iam(ctx: &RequestCtx) -> Result<(), AwsError> {
    let from_get_session_token = ctx.caller.access_key_id.starts_with("ASIA")
        && matches!(
            ctx.caller.kind,
            tresor_core::ctx::CallerKind::Root | tresor_core::ctx::CallerKind::User { .. }
        );
    if from_get_session_token {
        return Err(AwsError::new(
            "InvalidClientTokenId",
            403,
            "The security token included in the request is invalid",
        ));
    }
    Ok(())
}

/// The default version's document of a managed policy visible from `account` (`None` when
/// the ARN names no such policy). For STS session `PolicyArns`.
pub(crate) fn managed_policy_document(
    txn: &dyn ReadTxn,
    account: &str,
    arn: &str,
) -> Result<Option<String>, IamError> {
    policies::default_document(txn, account, arn)
}
