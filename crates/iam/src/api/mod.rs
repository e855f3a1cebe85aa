//! IAM (awsQuery, version 2010-05-08): users, access keys, groups, roles, inline and managed
//! policies, instance profiles and permissions boundaries, with AWS's errors, limits and
//! unique ids (spec §7.1–7.2).
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
mod attached;
mod aws_managed;
mod entities;
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

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tresor_policy::PolicyError;
use tresor_store::ReadTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::validate::Validator;
use tresor_wire::{AwsError, Protocol};

use crate::error::IamError;
use crate::identity::UserRecord;
use crate::keys;
use crate::shapes::TagInput;
use tresor_core::Services;
use tresor_core::authz::AuthzRequest;
use tresor_core::ctx::RequestCtx;

pub use aws_managed::{AWS_MANAGED_POLICIES, AwsManagedPolicy};
pub use groups::GroupRecord;
pub use instance_profiles::InstanceProfileRecord;
pub use policies::{ManagedPolicyRecord, PolicyVersionRecord};
pub use principals::{arn_for_unique_id, identity_policies, role_by_arn, unique_id_for_arn};
pub use roles::RoleRecord;

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
    use groups::GroupRecord as G;
    use roles::RoleRecord as R;
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

// ---------------------------------------------------------------------------------------
// Errors, in IAM's codes and statuses (botocore model) and wording (spec §7.2).

pub(crate) fn no_such_entity(message: impl Into<String>) -> IamError {
    IamError::NoSuchEntity(message.into())
}

pub(crate) fn already_exists(message: impl Into<String>) -> IamError {
    IamError::EntityAlreadyExists(message.into())
}

pub(crate) fn delete_conflict(message: impl Into<String>) -> IamError {
    IamError::DeleteConflict(message.into())
}

pub(crate) fn limit_exceeded(message: impl Into<String>) -> IamError {
    IamError::LimitExceeded(message.into())
}

/// `InvalidInput`, as whichever error type the caller returns.
pub(crate) fn invalid_input<E: From<IamError>>(message: impl Into<String>) -> E {
    IamError::InvalidInput(message.into()).into()
}

pub(crate) fn malformed_policy(message: impl Into<String>) -> IamError {
    IamError::MalformedPolicyDocument(message.into())
}

/// awsQuery's `ValidationError`, as whichever error type the caller returns.
pub(crate) fn validation<E: From<IamError>>(message: impl Into<String>) -> E {
    IamError::ValidationError(message.into()).into()
}

/// A policy-engine refusal as IAM reports it: grammar errors are `MalformedPolicyDocument`,
/// size quotas `LimitExceeded` (`Cannot exceed quota for PolicySize: 6144`).
pub(crate) fn policy_error<E: From<IamError>>(e: PolicyError) -> E {
    match e {
        PolicyError::Malformed(m) => malformed_policy(m),
        too_large @ PolicyError::TooLarge { .. } => limit_exceeded(too_large.to_string()),
    }
    .into()
}

// ---------------------------------------------------------------------------------------
// Input validation: AWS's constraint wording through `Validator`.

const NAME_PATTERN: &str = r"[\w+=,.@-]+";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// Collects violations of one request's constraints.
#[derive(Default)]
pub(crate) struct Check(Validator);

impl Check {
    pub(crate) fn new() -> Self {
        Check(Validator::new())
    }

    /// An entity or policy name: `[\w+=,.@-]+`, 1..=max characters.
    pub(crate) fn name(&mut self, member: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            let before = self.0.is_empty();
            self.0.length(member, Some(v), 1, max);
            if before == self.0.is_empty() && !v.chars().all(is_name_char) {
                self.pattern(member, v, NAME_PATTERN);
            }
        }
    }

    /// `(\u002F)|(\u002F[\u0021-\u007E]+\u002F)`, 1–512.
    pub(crate) fn path(&mut self, member: &str, value: Option<&str>) {
        if let Some(v) = value {
            let ok = v == "/"
                || (v.len() >= 2
                    && v.starts_with('/')
                    && v.ends_with('/')
                    && v.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c)));
            if v.is_empty() || v.chars().count() > 512 {
                self.0.length(member, Some(v), 1, 512);
            } else if !ok {
                self.pattern(member, v, r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)");
            }
        }
    }

    /// `\u002F[\u0021-\u007F]*`, 1–512.
    pub(crate) fn path_prefix(&mut self, member: &str, value: Option<&str>) {
        if let Some(v) = value {
            if v.is_empty() || v.chars().count() > 512 {
                self.0.length(member, Some(v), 1, 512);
            } else if !(v.starts_with('/') && v.chars().all(|c| ('\u{21}'..='\u{7f}').contains(&c)))
            {
                self.pattern(member, v, r"\u002F[\u0021-\u007F]*");
            }
        }
    }

    /// Managed policy paths: `((/[A-Za-z0-9\.,\+@=_-]+)*)/`, 1–512.
    pub(crate) fn policy_path(&mut self, member: &str, value: Option<&str>) {
        if let Some(v) = value {
            let ok = v.starts_with('/')
                && v.ends_with('/')
                && !v.contains("//")
                && v.chars()
                    .all(|c| c == '/' || c.is_ascii_alphanumeric() || ".,+@=_-".contains(c));
            if v.is_empty() || v.chars().count() > 512 {
                self.0.length(member, Some(v), 1, 512);
            } else if !ok {
                self.pattern(member, v, r"((/[A-Za-z0-9\.,\+@=_-]+)*)/");
            }
        }
    }

    pub(crate) fn length(&mut self, member: &str, value: Option<&str>, min: usize, max: usize) {
        self.0.length(member, value, min, max);
    }

    pub(crate) fn range(&mut self, member: &str, value: Option<i64>, min: i64, max: i64) {
        self.0.range(member, value, min, max);
    }

    pub(crate) fn pattern(&mut self, member: &str, value: &str, pattern: &str) {
        self.0.fail(
            member,
            Some(value),
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        );
    }

    pub(crate) fn enumeration(&mut self, member: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.0.fail(
                member,
                Some(v),
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
    }

    pub(crate) fn fail(&mut self, member: &str, value: Option<&str>, constraint: &str) {
        self.0.fail(member, value, constraint);
    }

    pub(crate) fn finish(self) -> Result<(), IamError> {
        self.0.finish(Protocol::AwsQuery).map_err(IamError::from)
    }
}

/// A tag list (`Tags.member.N.Key/Value`): ≤ 50 tags, keys 1–128, values 0–256, keys unique
/// case-insensitively.
pub(crate) fn check_tags(
    member: &str,
    raw: &[TagInput],
) -> Result<Vec<(String, String)>, IamError> {
    let mut check = Check::new();
    if raw.len() > 50 {
        check.fail(
            member,
            Some(&format!("{} tags", raw.len())),
            "Member must have length less than or equal to 50",
        );
    }
    let mut tags = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let field = format!("{member}.{}.member.key", i + 1);
        match m.key.as_deref() {
            None => check.fail(&field, None, "Member must not be null"),
            Some(k) => {
                check.length(&field, Some(k), 1, 128);
                check.length(
                    &format!("{member}.{}.member.value", i + 1),
                    Some(&m.value),
                    0,
                    256,
                );
                tags.push((k.to_string(), m.value.clone()));
            }
        }
    }
    check.finish()?;
    let mut seen: Vec<String> = tags.iter().map(|(k, _)| k.to_lowercase()).collect();
    seen.sort();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid_input(
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        ));
    }
    Ok(tags)
}

/// Adds or replaces `new` tags in `tags` (keys compared case-insensitively, as IAM does).
pub(crate) fn merge_tags(tags: &mut Vec<(String, String)>, new: Vec<(String, String)>) {
    for (k, v) in new {
        match tags.iter_mut().find(|(ek, _)| ek.eq_ignore_ascii_case(&k)) {
            Some(slot) => *slot = (k, v),
            None => tags.push((k, v)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Output helpers.

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (spec §1.2).
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A policy document as IAM returns it in XML: percent-encoded JSON.
pub(crate) fn encode_document(doc: &str) -> String {
    utf8_percent_encode(doc, RFC3986).to_string()
}

// ---------------------------------------------------------------------------------------
// Entities: users, groups, roles and instance profiles share lookup, ARNs and errors.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntityKind {
    User,
    Group,
    Role,
    InstanceProfile,
}

impl EntityKind {
    /// The ARN resource type and index word.
    pub(crate) fn word(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Group => "group",
            EntityKind::Role => "role",
            EntityKind::InstanceProfile => "instance-profile",
        }
    }

    /// As it appears in operation names (`PutRolePolicy`).
    pub(crate) fn title(self) -> &'static str {
        match self {
            EntityKind::User => "User",
            EntityKind::Group => "Group",
            EntityKind::Role => "Role",
            EntityKind::InstanceProfile => "InstanceProfile",
        }
    }

    /// The request member naming the entity (`RoleName`).
    pub(crate) fn name_member(self) -> &'static str {
        match self {
            EntityKind::User => "UserName",
            EntityKind::Group => "GroupName",
            EntityKind::Role => "RoleName",
            EntityKind::InstanceProfile => "InstanceProfileName",
        }
    }

    pub(crate) fn key(self, account: &str, name: &str) -> String {
        match self {
            EntityKind::User => keys::user(account, name),
            EntityKind::Group => keys::group(account, name),
            EntityKind::Role => keys::role(account, name),
            EntityKind::InstanceProfile => keys::instance_profile(account, name),
        }
    }

    /// The key prefix under which every entity of this kind is stored.
    pub(crate) fn prefix(self, account: &str) -> String {
        match self {
            EntityKind::User => keys::user_prefix(account),
            EntityKind::Group => keys::group_prefix(account),
            EntityKind::Role => keys::role_prefix(account),
            EntityKind::InstanceProfile => keys::instance_profile_prefix(account),
        }
    }

    /// The longest name an operation on an existing entity accepts (botocore
    /// `existingUserNameType`, `groupNameType`: 128; `roleNameType`: 64;
    /// `instanceProfileNameType`: 128). Creating a user allows only 64.
    pub(crate) fn name_max(self) -> usize {
        match self {
            EntityKind::Role => 64,
            EntityKind::User | EntityKind::Group | EntityKind::InstanceProfile => 128,
        }
    }

    pub(crate) fn arn(self, account: &str, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{account}:{}{path}{name}", self.word())
    }

    /// `NoSuchEntity` in IAM's wording, as whichever error type the caller returns.
    pub(crate) fn not_found<E: From<IamError>>(self, name: &str) -> E {
        let e = match self {
            EntityKind::InstanceProfile => {
                no_such_entity(format!("Instance Profile {name} cannot be found."))
            }
            kind => no_such_entity(format!(
                "The {} with name {name} cannot be found.",
                kind.word()
            )),
        };
        e.into()
    }

    pub(crate) fn exists(self, name: &str) -> IamError {
        match self {
            EntityKind::InstanceProfile => {
                already_exists(format!("Instance Profile {name} already exists."))
            }
            kind => already_exists(format!("{} with name {name} already exists.", kind.title())),
        }
    }
}

/// A stored IAM entity.
pub(crate) trait Entity: Serialize + DeserializeOwned {
    const KIND: EntityKind;
    fn name(&self) -> &str;
    fn path(&self) -> &str;
    fn id(&self) -> &str;
    fn arn(&self, account: &str) -> String {
        Self::KIND.arn(account, self.path(), self.name())
    }
    /// The permissions boundary ARN (users and roles only).
    fn boundary(&self) -> Option<&str> {
        None
    }
}

/// An entity that carries inline and attached managed policies.
pub(crate) trait PolicyHolder: Entity {
    /// Aggregate inline policy size quota (characters, whitespace excluded).
    const INLINE_LIMIT: usize;
    fn inline(&self) -> &BTreeMap<String, String>;
    fn inline_mut(&mut self) -> &mut BTreeMap<String, String>;
    fn attached(&self) -> &[String];
    fn attached_mut(&mut self) -> &mut Vec<String>;
    /// The permissions boundary slot (users and roles only).
    fn boundary_mut(&mut self) -> Option<&mut Option<String>> {
        None
    }
}

/// An entity with `Tag<Kind>`/`Untag<Kind>`/`List<Kind>Tags` operations.
pub(crate) trait Tagged: Entity {
    fn tags_mut(&mut self) -> &mut Vec<(String, String)>;
}

/// Implements [`Entity`] for a record with `name`, `path` and `created` fields and the
/// given id field; `boundary` names its permissions boundary field, if it has one.
macro_rules! impl_entity {
    ($record:ty, $kind:ident, $id:ident $(, boundary = $boundary:ident)?) => {
        impl $crate::api::Entity for $record {
            const KIND: $crate::api::EntityKind = $crate::api::EntityKind::$kind;
            fn name(&self) -> &str {
                &self.name
            }
            fn path(&self) -> &str {
                &self.path
            }
            fn id(&self) -> &str {
                &self.$id
            }
            $(fn boundary(&self) -> Option<&str> {
                self.$boundary.as_deref()
            })?
        }
    };
}
pub(crate) use impl_entity;

/// Implements [`PolicyHolder`] for a record with `inline_policies` and `attached_policies`
/// fields; `boundary` names its permissions boundary field, if it has one.
macro_rules! impl_policy_holder {
    ($record:ty, $limit:expr $(, boundary = $boundary:ident)?) => {
        impl $crate::api::PolicyHolder for $record {
            const INLINE_LIMIT: usize = $limit;
            fn inline(&self) -> &::std::collections::BTreeMap<String, String> {
                &self.inline_policies
            }
            fn inline_mut(&mut self) -> &mut ::std::collections::BTreeMap<String, String> {
                &mut self.inline_policies
            }
            fn attached(&self) -> &[String] {
                &self.attached_policies
            }
            fn attached_mut(&mut self) -> &mut Vec<String> {
                &mut self.attached_policies
            }
            $(fn boundary_mut(&mut self) -> Option<&mut Option<String>> {
                Some(&mut self.$boundary)
            })?
        }
    };
}
pub(crate) use impl_policy_holder;

impl_entity!(UserRecord, User, user_id, boundary = permissions_boundary);
impl_policy_holder!(
    UserRecord,
    tresor_policy::USER_INLINE_POLICIES_MAX_SIZE,
    boundary = permissions_boundary
);

impl Tagged for UserRecord {
    fn tags_mut(&mut self) -> &mut Vec<(String, String)> {
        &mut self.tags
    }
}

/// Reads the entity `name` after authorizing `action` on it (see [`lookup`]).
pub(crate) fn authorized<E: Entity>(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
) -> Result<E, IamError> {
    authorized_in_context(s, txn, ctx, name, action, Vec::new())
}

/// As [`authorized`], with condition keys in the request context.
pub(crate) fn authorized_in_context<E: Entity>(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
    context: Vec<(String, String)>,
) -> Result<E, IamError> {
    let (entity, arn) = lookup::<E>(txn, &ctx.caller.account, name)?;
    let mut req = AuthzRequest::new(action, &arn);
    req.context = context;
    authorize_with(s, ctx, &req)?;
    entity.ok_or_else(|| E::KIND.not_found(name))
}

/// Reads an entity by name and returns it with the ARN to authorize against: the stored
/// entity's ARN (with its path), or the default-path ARN when it does not exist — IAM
/// authorizes before it reveals whether the entity exists.
pub(crate) fn lookup<T: Entity>(
    txn: &dyn ReadTxn,
    account: &str,
    name: &str,
) -> Result<(Option<T>, String), IamError> {
    let record = tresor_core::record::get::<T>(txn, &T::KIND.key(account, name))?;
    let arn = match &record {
        Some(r) => r.arn(account),
        None => T::KIND.arn(account, "/", name),
    };
    Ok((record, arn))
}

/// Asks the Authorizer about `action` on `resource`.
pub(crate) fn authorize(
    s: &Services,
    ctx: &RequestCtx,
    action: &str,
    resource: &str,
) -> Result<(), IamError> {
    s.authorize(ctx, &AuthzRequest::new(action, resource))?;
    Ok(())
}

pub(crate) fn authorize_with(
    s: &Services,
    ctx: &RequestCtx,
    req: &AuthzRequest<'_>,
) -> Result<(), IamError> {
    s.authorize(ctx, req)?;
    Ok(())
}

/// Scans every record under `prefix` (IAM listings are small; pagination is applied after
/// filtering).
pub(crate) fn scan_all<T: DeserializeOwned>(
    txn: &dyn ReadTxn,
    prefix: &str,
) -> Result<Vec<(String, T)>, IamError> {
    const CHUNK: usize = 1000;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = tresor_core::record::scan::<T>(txn, prefix, after.as_deref(), CHUNK)?;
        let n = batch.len();
        after = batch.last().map(|(k, _)| k.clone());
        out.extend(batch);
        if n < CHUNK {
            return Ok(out);
        }
    }
}

/// Keys (with raw values) under `prefix`.
pub(crate) fn scan_keys(
    txn: &dyn ReadTxn,
    prefix: &str,
) -> Result<Vec<(String, String)>, IamError> {
    const CHUNK: usize = 1000;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = txn.scan(prefix, after.as_deref(), CHUNK)?;
        let n = batch.len();
        after = batch.last().map(|(k, _)| k.clone());
        out.extend(
            batch
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())),
        );
        if n < CHUNK {
            return Ok(out);
        }
    }
}

/// The parts of an IAM ARN `arn:aws:iam::<account>:<type>/<path…><name>`: account, type,
/// path (`/` or `/a/b/`) and name. `None` when it is not one.
pub(crate) fn parse_iam_arn(arn: &str) -> Option<(&str, &str, String, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let (kind, tail) = resource.split_once('/')?;
    let (path, name) = match tail.rfind('/') {
        Some(i) => (format!("/{}", &tail[..=i]), &tail[i + 1..]),
        None => ("/".to_string(), tail),
    };
    if account.is_empty() || name.is_empty() {
        return None;
    }
    Some((account, kind, path, name))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_percent_encoded_as_rfc_3986() {
        assert_eq!(
            encode_document(r#"{"Version": "2012-10-17", "a~b": "*"}"#),
            "%7B%22Version%22%3A%20%222012-10-17%22%2C%20%22a~b%22%3A%20%22%2A%22%7D"
        );
    }

    #[test]
    fn iam_arns_split_into_account_type_path_and_name() {
        assert_eq!(
            parse_iam_arn("arn:aws:iam::123456789012:role/a/b/ci"),
            Some(("123456789012", "role", "/a/b/".to_string(), "ci"))
        );
        assert_eq!(
            parse_iam_arn("arn:aws:iam::aws:policy/AdministratorAccess"),
            Some(("aws", "policy", "/".to_string(), "AdministratorAccess"))
        );
        assert_eq!(parse_iam_arn("arn:aws:iam::1:root"), None);
        assert_eq!(
            parse_iam_arn("arn:aws:sts::1:assumed-role/r/s").map(|x| x.1),
            None
        );
    }

    #[test]
    fn names_and_paths_follow_the_model_patterns() {
        let mut c = Check::new();
        c.name("RoleName", Some("ok+=,.@-_9"), 64);
        c.path("Path", Some("/a/b/"));
        c.path("Path", Some("/"));
        assert!(c.finish().is_ok());
        let mut c = Check::new();
        c.name("RoleName", Some("bad name"), 64);
        let e = c.finish().err().map(AwsError::from);
        let m = e.and_then(|e| e.message).unwrap_or_default();
        assert!(m.contains("Value 'bad name' at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern"), "{m}");
        let mut c = Check::new();
        c.path("Path", Some("/a"));
        assert!(c.finish().is_err());
    }
}
