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
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::entities::{
    create_context, delete_entity, insert_entity, list_entities, refuse_if_any, refuse_if_policies,
};
use super::{
    Check, EntityKind, IamResult, Tagged, authorize_with, authorized, encode_document,
    limit_exceeded, malformed_policy, name_param, parse_iam_arn, parse_tags, write_boundary,
    write_entity_head, write_tags,
};
use crate::error::IamError;
use crate::identity::{FORMAT, UserRecord};
use crate::keys;
use tresor_core::Services;
use tresor_core::authz::AuthzRequest;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

pub const DEFAULT_MAX_SESSION_DURATION: i64 = 3600;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub role_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The trust policy, as given.
    pub assume_role_policy: String,
    #[serde(default)]
    pub description: Option<String>,
    pub max_session_duration: i64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    #[serde(default)]
    pub attached_policies: Vec<String>,
    #[serde(default)]
    pub permissions_boundary: Option<String>,
}

impl RoleRecord {
    pub fn arn(&self, account: &str) -> String {
        EntityKind::Role.arn(account, &self.path, &self.name)
    }
}

super::impl_entity!(RoleRecord, Role, role_id, boundary = permissions_boundary);
super::impl_policy_holder!(
    RoleRecord,
    tresor_policy::ROLE_INLINE_POLICIES_MAX_SIZE,
    boundary = permissions_boundary
);

impl Tagged for RoleRecord {
    fn tags_mut(&mut self) -> &mut Vec<(String, String)> {
        &mut self.tags
    }
}

/// The `Role` structure. `full` (GetRole, CreateRole) adds tags, the boundary and
/// `RoleLastUsed`; ListRoles leaves them out, as IAM does.
pub(crate) fn write_role(
    w: &mut XmlWriter,
    role: &RoleRecord,
    account: &str,
    tag: &str,
    full: bool,
) {
    write_entity_head(w, role, account, tag);
    w.elem(
        "AssumeRolePolicyDocument",
        &encode_document(&role.assume_role_policy),
    )
    .opt("Description", role.description.as_deref())
    .elem("MaxSessionDuration", &role.max_session_duration.to_string());
    if full {
        write_boundary(w, role.permissions_boundary.as_deref());
        write_tags(w, &role.tags);
        w.open("RoleLastUsed").close("RoleLastUsed");
    }
    w.close(tag);
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

/// Checks a `PermissionsBoundary` ARN names an existing managed policy.
pub(crate) fn check_boundary(
    txn: &dyn ReadTxn,
    account: &str,
    arn: &str,
) -> Result<String, IamError> {
    match super::policies::resolve(txn, account, arn)? {
        Some(m) => Ok(m.index_ref()),
        None => Err(super::no_such_entity(format!(
            "Scope ARN: {arn} does not exist or is not attachable."
        ))),
    }
}

pub(crate) fn create_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = p.required("RoleName")?;
    let doc = p.required("AssumeRolePolicyDocument")?;
    let path = p.get("Path").unwrap_or("/");
    let description = p.get("Description");
    let max_session = p.int("MaxSessionDuration")?;
    let boundary = p.get("PermissionsBoundary");
    let mut check = Check::new();
    check.name("RoleName", Some(name), 64);
    check.path("Path", Some(path));
    check.length("AssumeRolePolicyDocument", Some(doc), 1, 131_072);
    check.length("Description", description, 0, 1000);
    check.range("MaxSessionDuration", max_session, 3600, 43200);
    check.length("PermissionsBoundary", boundary, 20, 2048);
    check.finish()?;
    let tags = parse_tags(p, "Tags")?;
    let account = &ctx.caller.account;
    let arn = EntityKind::Role.arn(account, path, name);
    let mut txn = s.store().begin_write()?;
    let mut req = AuthzRequest::new("iam:CreateRole", &arn);
    req.context = create_context(boundary, &tags);
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
    let mut w = XmlWriter::new();
    write_role(&mut w, &role, account, "Role", true);
    Ok(Some(w.finish()))
}

fn role_name(p: &QueryParams) -> Result<&str, IamError> {
    name_param(p, "RoleName", EntityKind::Role.name_max())
}

pub(crate) fn get_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = role_name(p)?;
    let txn = s.store().begin_read()?;
    let role = authorized::<RoleRecord>(s, &*txn, ctx, name, "iam:GetRole")?;
    let mut w = XmlWriter::new();
    write_role(&mut w, &role, &ctx.caller.account, "Role", true);
    Ok(Some(w.finish()))
}

pub(crate) fn delete_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let account = &ctx.caller.account;
    delete_entity(s, ctx, p, |txn, role: &RoleRecord| {
        refuse_if_any(
            txn,
            &keys::role_instance_profile_prefix(account, &role.name),
            "Cannot delete entity, must remove roles from instance profile first.",
        )?;
        refuse_if_policies(role)
    })
}

pub(crate) fn list_roles(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    list_entities(s, ctx, p, |w, _, r: &RoleRecord, account| {
        write_role(w, r, account, "member", false);
        Ok(())
    })
}

pub(crate) fn update_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = role_name(p)?;
    let description = p.get("Description");
    let max_session = p.int("MaxSessionDuration")?;
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
    Ok(Some(String::new()))
}

pub(crate) fn update_role_description(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let name = role_name(p)?;
    let description = p.required("Description")?;
    let mut check = Check::new();
    check.length("Description", Some(description), 0, 1000);
    check.finish()?;
    let mut txn = s.store().begin_write()?;
    let mut role = authorized::<RoleRecord>(s, &*txn, ctx, name, "iam:UpdateRoleDescription")?;
    role.description = (!description.is_empty()).then(|| description.to_string());
    record::put(&mut *txn, &keys::role(&ctx.caller.account, name), &role)?;
    txn.commit()?;
    let mut w = XmlWriter::new();
    write_role(&mut w, &role, &ctx.caller.account, "Role", true);
    Ok(Some(w.finish()))
}

pub(crate) fn update_assume_role_policy(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let name = role_name(p)?;
    let doc = p.required("PolicyDocument")?;
    let mut txn = s.store().begin_write()?;
    let mut role = authorized::<RoleRecord>(s, &*txn, ctx, name, "iam:UpdateAssumeRolePolicy")?;
    validate_trust_policy(&*txn, doc)?;
    role.assume_role_policy = doc.to_string();
    record::put(&mut *txn, &keys::role(&ctx.caller.account, name), &role)?;
    txn.commit()?;
    Ok(None)
}
