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

mod access_keys;
mod arn;
mod attached;
mod aws_managed;
mod check;
mod document;
mod entities;
mod entity;
mod errors;
#[cfg(test)]
mod golden_tests;
mod groups;
mod inline;
mod instance_profiles;
mod kind_input;
mod pagination;
mod policies;
mod principals;
mod roles;
mod simulate;
mod users;

use tresor_store::ReadTxn;
use tresor_wire::AwsError;
use tresor_wire::query::QueryParams;

use crate::error::IamError;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;

pub use crate::records::{
    GroupRecord, InstanceProfileRecord, ManagedPolicyRecord, PolicyVersionRecord, RoleRecord,
};
pub use aws_managed::{AWS_MANAGED_POLICIES, AwsManagedPolicy};
pub(crate) use check::{check_tags, merge_tags};
pub use principals::{arn_for_unique_id, identity_policies, role_by_arn, unique_id_for_arn};

/// The handler signature of the dispatch table.
pub type QueryOp = fn(&Services, &RequestCtx, &QueryParams) -> Result<Option<String>, AwsError>;

/// The IAM operation named `op`, if tresor implements it.
pub fn handler(op: &str) -> Option<QueryOp> {
    // A typed operation: decode the parameters into its input, run it, encode its output.
    macro_rules! typed {
        ($f:expr) => {{
            let h: QueryOp = |s: &Services, c: &RequestCtx, p: &QueryParams| {
                session_may_call_iam(c)?;
                let input = tresor_wire::query::decode(p)?;
                let output = $f(s, c, input).map_err(|e: IamError| AwsError::from(e))?;
                tresor_wire::xml::encode(&output)
            };
            Some(h)
        }};
    }
    // A typed operation whose result element AWS sends even without members.
    macro_rules! typed_empty_result {
        ($f:expr) => {{
            let h: QueryOp = |s: &Services, c: &RequestCtx, p: &QueryParams| {
                session_may_call_iam(c)?;
                let input = tresor_wire::query::decode(p)?;
                $f(s, c, input).map_err(|e: IamError| AwsError::from(e))?;
                Ok(Some(String::new()))
            };
            Some(h)
        }};
    }
    // A kind-generic operation: decode the kind's wire input, run the generic handler.
    macro_rules! kind {
        ($f:expr, $input:ty) => {
            typed!(|s: &Services, c: &RequestCtx, i: $input| $f(s, c, i.into()))
        };
    }
    use crate::identity::UserRecord as U;
    use crate::records::GroupRecord as G;
    use crate::records::RoleRecord as R;
    match op {
        // users
        "CreateUser" => typed!(users::create_user),
        "GetUser" => typed!(users::get_user),
        "DeleteUser" => typed!(users::delete_user),
        "ListUsers" => typed!(users::list_users),
        "UpdateUser" => typed!(users::update_user),
        "TagUser" => kind!(entities::tag::<U>, entities::TagUserInput),
        "UntagUser" => kind!(entities::untag::<U>, entities::UntagUserInput),
        "ListUserTags" => kind!(entities::list_tags::<U>, entities::ListUserTagsInput),
        // access keys
        "CreateAccessKey" => typed!(access_keys::create_access_key),
        "DeleteAccessKey" => typed!(access_keys::delete_access_key),
        "UpdateAccessKey" => typed!(access_keys::update_access_key),
        "ListAccessKeys" => typed!(access_keys::list_access_keys),
        "GetAccessKeyLastUsed" => typed!(access_keys::get_access_key_last_used),
        // groups
        "CreateGroup" => typed!(groups::create_group),
        "GetGroup" => typed!(groups::get_group),
        "DeleteGroup" => typed!(groups::delete_group),
        "ListGroups" => typed!(groups::list_groups),
        "AddUserToGroup" => typed!(groups::add_user_to_group),
        "RemoveUserFromGroup" => typed!(groups::remove_user_from_group),
        "ListGroupsForUser" => typed!(groups::list_groups_for_user),
        // roles
        "CreateRole" => typed!(roles::create_role),
        "GetRole" => typed!(roles::get_role),
        "DeleteRole" => typed!(roles::delete_role),
        "ListRoles" => typed!(roles::list_roles),
        "UpdateRole" => typed_empty_result!(roles::update_role),
        "UpdateRoleDescription" => typed!(roles::update_role_description),
        "UpdateAssumeRolePolicy" => typed!(roles::update_assume_role_policy),
        "TagRole" => kind!(entities::tag::<R>, entities::TagRoleInput),
        "UntagRole" => kind!(entities::untag::<R>, entities::UntagRoleInput),
        "ListRoleTags" => kind!(entities::list_tags::<R>, entities::ListRoleTagsInput),
        // inline policies
        "PutUserPolicy" => kind!(inline::put_policy::<U>, inline::PutUserPolicyInput),
        "PutGroupPolicy" => kind!(inline::put_policy::<G>, inline::PutGroupPolicyInput),
        "PutRolePolicy" => kind!(inline::put_policy::<R>, inline::PutRolePolicyInput),
        "GetUserPolicy" => kind!(inline::get_policy::<U>, inline::UserPolicyNameInput),
        "GetGroupPolicy" => kind!(inline::get_policy::<G>, inline::GroupPolicyNameInput),
        "GetRolePolicy" => kind!(inline::get_policy::<R>, inline::RolePolicyNameInput),
        "DeleteUserPolicy" => kind!(inline::delete_policy::<U>, inline::UserPolicyNameInput),
        "DeleteGroupPolicy" => kind!(inline::delete_policy::<G>, inline::GroupPolicyNameInput),
        "DeleteRolePolicy" => kind!(inline::delete_policy::<R>, inline::RolePolicyNameInput),
        "ListUserPolicies" => kind!(inline::list_policies::<U>, inline::ListUserPoliciesInput),
        "ListGroupPolicies" => kind!(inline::list_policies::<G>, inline::ListGroupPoliciesInput),
        "ListRolePolicies" => kind!(inline::list_policies::<R>, inline::ListRolePoliciesInput),
        // managed policy attachments and permissions boundaries
        "AttachUserPolicy" => kind!(attached::attach::<U>, attached::UserPolicyArnInput),
        "AttachGroupPolicy" => kind!(attached::attach::<G>, attached::GroupPolicyArnInput),
        "AttachRolePolicy" => kind!(attached::attach::<R>, attached::RolePolicyArnInput),
        "DetachUserPolicy" => kind!(attached::detach::<U>, attached::UserPolicyArnInput),
        "DetachGroupPolicy" => kind!(attached::detach::<G>, attached::GroupPolicyArnInput),
        "DetachRolePolicy" => kind!(attached::detach::<R>, attached::RolePolicyArnInput),
        "ListAttachedUserPolicies" => kind!(
            attached::list_attached::<U>,
            attached::ListAttachedUserPoliciesInput
        ),
        "ListAttachedGroupPolicies" => kind!(
            attached::list_attached::<G>,
            attached::ListAttachedGroupPoliciesInput
        ),
        "ListAttachedRolePolicies" => kind!(
            attached::list_attached::<R>,
            attached::ListAttachedRolePoliciesInput
        ),
        "PutUserPermissionsBoundary" => kind!(
            attached::put_boundary::<U>,
            attached::PutUserPermissionsBoundaryInput
        ),
        "PutRolePermissionsBoundary" => kind!(
            attached::put_boundary::<R>,
            attached::PutRolePermissionsBoundaryInput
        ),
        "DeleteUserPermissionsBoundary" => kind!(
            attached::delete_boundary::<U>,
            attached::DeleteUserPermissionsBoundaryInput
        ),
        "DeleteRolePermissionsBoundary" => kind!(
            attached::delete_boundary::<R>,
            attached::DeleteRolePermissionsBoundaryInput
        ),
        // managed policies and versions
        "CreatePolicy" => typed!(policies::create_policy),
        "GetPolicy" => typed!(policies::get_policy),
        "DeletePolicy" => typed!(policies::delete_policy),
        "ListPolicies" => typed!(policies::list_policies),
        "CreatePolicyVersion" => typed!(policies::create_policy_version),
        "GetPolicyVersion" => typed!(policies::get_policy_version),
        "ListPolicyVersions" => typed!(policies::list_policy_versions),
        "DeletePolicyVersion" => typed!(policies::delete_policy_version),
        "SetDefaultPolicyVersion" => typed!(policies::set_default_policy_version),
        "ListEntitiesForPolicy" => typed!(policies::list_entities_for_policy),
        // instance profiles
        "CreateInstanceProfile" => typed!(instance_profiles::create_instance_profile),
        "GetInstanceProfile" => typed!(instance_profiles::get_instance_profile),
        "DeleteInstanceProfile" => typed!(instance_profiles::delete_instance_profile),
        "ListInstanceProfiles" => typed!(instance_profiles::list_instance_profiles),
        "AddRoleToInstanceProfile" => typed!(instance_profiles::add_role_to_instance_profile),
        "RemoveRoleFromInstanceProfile" => {
            typed!(instance_profiles::remove_role_from_instance_profile)
        }
        "ListInstanceProfilesForRole" => typed!(instance_profiles::list_instance_profiles_for_role),
        // the policy simulator
        "SimulatePrincipalPolicy" => typed!(simulate::simulate_principal_policy),
        "SimulateCustomPolicy" => typed!(simulate::simulate_custom_policy),
        _ => None,
    }
}

/// Temporary credentials from `GetSessionToken` (root or an IAM user signing with an `ASIA`
/// key) carry no MFA context in tresor, which has no MFA devices; such credentials "cannot
/// call IAM API operations unless MFA information is included" (IAM User Guide, "Comparing
/// the AWS STS API operations"). AWS refuses them as it refuses an unknown token: observed
/// behavior is `InvalidClientTokenId` (403) "The security token included in the request is
/// invalid", before the request is looked at.
fn session_may_call_iam(ctx: &RequestCtx) -> Result<(), AwsError> {
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
