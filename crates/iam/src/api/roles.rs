//! Roles: `CreateRole` … `UpdateAssumeRolePolicy` and role tags. A role's trust policy
//! (`AssumeRolePolicyDocument`) is validated as a trust policy and every IAM user or role it
//! names must exist, as IAM requires. Deleting a role removes its unique id; re-creating it
//! gives a new one, so sessions and captured policies of the old role stop matching.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;
use tresor_policy::{Policy, PolicyError, PolicyKind};
use tresor_store::ReadTxn;

use super::arn::parse_iam_arn;
use super::check::{Check, check_tags};
use super::document::encode_document;
use super::entities::{
    create_context, delete_named, insert_entity, list_page, refuse_if_any, refuse_if_policies,
};
use super::entity::{EntityKind, authorize_with, authorized};
use super::errors::{limit_exceeded, malformed_policy};
use super::policies::check_boundary;
use crate::error::IamError;
use crate::identity::{FORMAT, UserRecord};
use crate::keys;
use crate::shapes::{AttachedPermissionsBoundary, Tag, TagInput};
use tresor_core::Services;
use tresor_core::authz::AuthzRequest;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

pub const DEFAULT_MAX_SESSION_DURATION: i64 = 3600;

use crate::records::RoleRecord;

/// `Role`. `full` (GetRole, CreateRole) adds tags, the boundary and `RoleLastUsed`;
/// ListRoles leaves them out, as IAM does.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    pub path: String,
    pub role_name: String,
    pub role_id: String,
    pub arn: String,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub create_date: OffsetDateTime,
    /// Percent-encoded, as IAM returns policy documents.
    pub assume_role_policy_document: String,
    pub description: Option<String>,
    pub max_session_duration: i64,
    pub permissions_boundary: Option<AttachedPermissionsBoundary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    pub role_last_used: Option<RoleLastUsed>,
}

/// `RoleLastUsed`: tresor does not track it, so it is always empty.
#[derive(Debug, Serialize)]
pub struct RoleLastUsed {}

impl Role {
    pub(crate) fn of(role: &RoleRecord, account: &str, full: bool) -> Role {
        Role {
            path: role.path.clone(),
            role_name: role.name.clone(),
            role_id: role.role_id.clone(),
            arn: role.arn(account),
            create_date: role.created,
            assume_role_policy_document: encode_document(&role.assume_role_policy),
            description: role.description.clone(),
            max_session_duration: role.max_session_duration,
            permissions_boundary: if full {
                AttachedPermissionsBoundary::of(role.permissions_boundary.as_deref())
            } else {
                None
            },
            tags: if full {
                Tag::list(&role.tags)
            } else {
                Vec::new()
            },
            role_last_used: full.then_some(RoleLastUsed {}),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRoleInput {
    pub role_name: String,
    pub assume_role_policy_document: String,
    pub path: Option<String>,
    pub description: Option<String>,
    pub max_session_duration: Option<i64>,
    pub permissions_boundary: Option<String>,
    #[serde(default)]
    pub tags: Vec<TagInput>,
}

/// `CreateRole`, `GetRole` and `UpdateRoleDescription`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleOutput {
    pub role: Role,
}

/// `GetRole` and `DeleteRole`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleNameInput {
    pub role_name: String,
}

pub type ListRolesInput = crate::shapes::PathListInput;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRolesOutput {
    pub roles: Vec<Role>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateRoleInput {
    pub role_name: String,
    pub description: Option<String>,
    pub max_session_duration: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateRoleDescriptionInput {
    pub role_name: String,
    pub description: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAssumeRolePolicyInput {
    pub role_name: String,
    pub policy_document: String,
}

/// Validates a trust policy: grammar (a principal, no `Resource`), size, and that each IAM
/// user or role ARN it names exists ("Invalid principal in policy", IAM User Guide,
/// "Principal": IAM validates named users and roles when the policy is saved).
pub(crate) fn validate_trust_policy(txn: &dyn ReadTxn, doc: &str) -> Result<(), IamError> {
    let policy = Policy::parse(doc, PolicyKind::Trust).map_err(|e| match e {
        PolicyError::Malformed(m) => malformed_policy(m),
        PolicyError::TooLarge { limit, .. } => {
            limit_exceeded(format!("Cannot exceed quota for ACLSizePerRole: {limit}"))
        }
    })?;
    for principal in policy.aws_principals() {
        if principal.contains('*') {
            continue;
        }
        let exists = match parse_iam_arn(principal) {
            // An account this deployment does not hold (an upstream AWS account): its users
            // and roles cannot be checked here.
            Some((account, _, _, _)) if txn.get(&keys::account(account))?.is_none() => true,
            Some((account, "user", path, name)) => {
                record::get::<UserRecord>(txn, &keys::user(account, name))?
                    .is_some_and(|u| u.path == path && u.name == name)
            }
            Some((account, "role", path, name)) => {
                record::get::<RoleRecord>(txn, &keys::role(account, name))?
                    .is_some_and(|r| r.path == path && r.name == name)
            }
            _ => true,
        };
        if !exists {
            return Err(malformed_policy(format!(
                "Invalid principal in policy: \"AWS\":\"{principal}\""
            )));
        }
    }
    Ok(())
}

pub fn create_role(
    s: &Services,
    ctx: &RequestCtx,
    input: CreateRoleInput,
) -> Result<RoleOutput, IamError> {
    let name = input.role_name.as_str();
    let doc = input.assume_role_policy_document.as_str();
    let path = input.path.as_deref().unwrap_or("/");
    let description = input.description.as_deref();
    let max_session = input.max_session_duration;
    let boundary = input.permissions_boundary.as_deref();
    let mut check = Check::new();
    check.name("RoleName", Some(name), 64);
    check.path("Path", Some(path));
    check.length("AssumeRolePolicyDocument", Some(doc), 1, 131_072);
    check.length("Description", description, 0, 1000);
    check.range("MaxSessionDuration", max_session, 3600, 43200);
    check.length("PermissionsBoundary", boundary, 20, 2048);
    check.finish()?;
    let tags = check_tags("Tags", &input.tags)?;
    let account = &ctx.caller.account;
    let arn = EntityKind::Role.arn(account, path, name);
    let mut txn = s.store().begin_write()?;
    let mut req = AuthzRequest::new("iam:CreateRole", &arn);
    req.context = tresor_core::owned_conditions(create_context(boundary, &tags));
    authorize_with(s, ctx, &req)?;
    let key = keys::role(account, name);
    if txn.get(&key)?.is_some() {
        return Err(EntityKind::Role.exists(name));
    }
    validate_trust_policy(&*txn, doc)?;
    let boundary_ref = boundary
        .map(|b| check_boundary(&*txn, account, b))
        .transpose()?;
    let role = RoleRecord {
        v: FORMAT,
        name: name.to_string(),
        path: path.to_string(),
        role_id: ids::unique_id("AROA"),
        created: ctx.now,
        assume_role_policy: doc.to_string(),
        description: description.filter(|d| !d.is_empty()).map(str::to_string),
        max_session_duration: max_session.unwrap_or(DEFAULT_MAX_SESSION_DURATION),
        tags,
        inline_policies: BTreeMap::new(),
        attached_policies: Vec::new(),
        permissions_boundary: boundary.map(str::to_string),
    };
    insert_entity(&mut *txn, account, &role, boundary_ref)?;
    txn.commit()?;
    Ok(RoleOutput {
        role: Role::of(&role, account, true),
    })
}

fn check_role_name(name: &str) -> Result<(), IamError> {
    let mut check = Check::new();
    check.name("RoleName", Some(name), EntityKind::Role.name_max());
    check.finish()
}

pub fn get_role(
    s: &Services,
    ctx: &RequestCtx,
    input: RoleNameInput,
) -> Result<RoleOutput, IamError> {
    let name = input.role_name.as_str();
    check_role_name(name)?;
    let txn = s.store().begin_read()?;
    let role = authorized::<RoleRecord>(s, &*txn, ctx, name, "iam:GetRole")?;
    Ok(RoleOutput {
        role: Role::of(&role, &ctx.caller.account, true),
    })
}

pub fn delete_role(s: &Services, ctx: &RequestCtx, input: RoleNameInput) -> Result<(), IamError> {
    let account = &ctx.caller.account;
    delete_named(s, ctx, &input.role_name, |txn, role: &RoleRecord| {
        refuse_if_any(
            txn,
            &keys::role_instance_profile_prefix(account, &role.name),
            "Cannot delete entity, must remove roles from instance profile first.",
        )?;
        refuse_if_policies(role)
    })
}

pub fn list_roles(
    s: &Services,
    ctx: &RequestCtx,
    input: ListRolesInput,
) -> Result<ListRolesOutput, IamError> {
    let (roles, next) = list_page::<RoleRecord>(
        s,
        ctx,
        input.path_prefix.as_deref(),
        input.max_items,
        input.marker.as_deref(),
    )?;
    let account = &ctx.caller.account;
    Ok(ListRolesOutput {
        roles: roles.iter().map(|r| Role::of(r, account, false)).collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}

/// `UpdateRole`; its result element is sent even though it has no members.
pub fn update_role(s: &Services, ctx: &RequestCtx, input: UpdateRoleInput) -> Result<(), IamError> {
    let name = input.role_name.as_str();
    check_role_name(name)?;
    let description = input.description.as_deref();
    let max_session = input.max_session_duration;
    let mut check = Check::new();
    check.length("Description", description, 0, 1000);
    check.range("MaxSessionDuration", max_session, 3600, 43200);
    check.finish()?;
    let mut txn = s.store().begin_write()?;
    let mut role = authorized::<RoleRecord>(s, &*txn, ctx, name, "iam:UpdateRole")?;
    if let Some(d) = description {
        role.description = (!d.is_empty()).then(|| d.to_string());
    }
    if let Some(m) = max_session {
        role.max_session_duration = m;
    }
    record::put(&mut *txn, &keys::role(&ctx.caller.account, name), &role)?;
    txn.commit()?;
    Ok(())
}

pub fn update_role_description(
    s: &Services,
    ctx: &RequestCtx,
    input: UpdateRoleDescriptionInput,
) -> Result<RoleOutput, IamError> {
    let name = input.role_name.as_str();
    check_role_name(name)?;
    let description = input.description.as_str();
    let mut check = Check::new();
    check.length("Description", Some(description), 0, 1000);
    check.finish()?;
    let mut txn = s.store().begin_write()?;
    let mut role = authorized::<RoleRecord>(s, &*txn, ctx, name, "iam:UpdateRoleDescription")?;
    role.description = (!description.is_empty()).then(|| description.to_string());
    record::put(&mut *txn, &keys::role(&ctx.caller.account, name), &role)?;
    txn.commit()?;
    Ok(RoleOutput {
        role: Role::of(&role, &ctx.caller.account, true),
    })
}

pub fn update_assume_role_policy(
    s: &Services,
    ctx: &RequestCtx,
    input: UpdateAssumeRolePolicyInput,
) -> Result<(), IamError> {
    let name = input.role_name.as_str();
    check_role_name(name)?;
    let doc = input.policy_document.as_str();
    let mut txn = s.store().begin_write()?;
    let mut role = authorized::<RoleRecord>(s, &*txn, ctx, name, "iam:UpdateAssumeRolePolicy")?;
    validate_trust_policy(&*txn, doc)?;
    role.assume_role_policy = doc.to_string();
    record::put(&mut *txn, &keys::role(&ctx.caller.account, name), &role)?;
    txn.commit()?;
    Ok(())
}
