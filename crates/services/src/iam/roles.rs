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

use super::pagination::{Page, write_page_end};
use super::{
    Check, Entity, EntityKind, OpResult, PolicyHolder, authorize, authorize_with, delete_conflict,
    encode_document, iso, limit_exceeded, lookup, malformed_policy, merge_tags, parse_iam_arn,
    parse_tags, scan_all, scan_keys, write_boundary, write_tags,
};
use crate::authz::AuthzRequest;
use crate::ctx::RequestCtx;
use crate::dispatch::Services;
use crate::error::ServiceError;
use crate::identity::{FORMAT, UserRecord};
use crate::{keys, record};

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

impl Entity for RoleRecord {
    const KIND: EntityKind = EntityKind::Role;
    fn name(&self) -> &str {
        &self.name
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn id(&self) -> &str {
        &self.role_id
    }
}

impl PolicyHolder for RoleRecord {
    const INLINE_LIMIT: usize = tresor_policy::ROLE_INLINE_POLICIES_MAX_SIZE;
    fn inline(&self) -> &BTreeMap<String, String> {
        &self.inline_policies
    }
    fn inline_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.inline_policies
    }
    fn attached(&self) -> &[String] {
        &self.attached_policies
    }
    fn attached_mut(&mut self) -> &mut Vec<String> {
        &mut self.attached_policies
    }
    fn boundary_mut(&mut self) -> Option<&mut Option<String>> {
        Some(&mut self.permissions_boundary)
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
    w.open(tag)
        .elem("Path", &role.path)
        .elem("RoleName", &role.name)
        .elem("RoleId", &role.role_id)
        .elem("Arn", &role.arn(account))
        .elem("CreateDate", &iso(role.created))
        .elem(
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
pub(crate) fn validate_trust_policy(txn: &dyn ReadTxn, doc: &str) -> Result<(), ServiceError> {
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
) -> Result<String, ServiceError> {
    match super::policies::resolve(txn, account, arn)? {
        Some(m) => Ok(m.index_ref()),
        None => Err(super::no_such_entity(format!(
            "Scope ARN: {arn} does not exist or is not attachable."
        ))),
    }
}

pub(crate) fn create_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
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
    if let Some(b) = boundary {
        req.context
            .push(("iam:PermissionsBoundary".to_string(), b.to_string()));
    }
    for (k, v) in &tags {
        req.context.push((format!("aws:RequestTag/{k}"), v.clone()));
        req.context.push(("aws:TagKeys".to_string(), k.clone()));
    }
    authorize_with(s, &*txn, ctx, &req)?;
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
    record::put(&mut *txn, &key, &role)?;
    txn.put(&keys::unique_id(account, &role.role_id), name.as_bytes())?;
    if let Some(r) = boundary_ref {
        txn.put(
            &keys::boundary_use(account, &r, "role", name),
            name.as_bytes(),
        )?;
    }
    txn.commit()?;
    let mut w = XmlWriter::new();
    write_role(&mut w, &role, account, "Role", true);
    Ok(Some(w.finish()))
}

fn role_name(p: &QueryParams) -> Result<&str, ServiceError> {
    let name = p.required("RoleName")?;
    let mut check = Check::new();
    check.name("RoleName", Some(name), 64);
    check.finish()?;
    Ok(name)
}

/// Reads the role named by `RoleName` after authorizing `action` on it.
pub(crate) fn authorized_role(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
) -> Result<RoleRecord, ServiceError> {
    let (role, arn) = lookup::<RoleRecord>(txn, &ctx.caller.account, name)?;
    authorize(s, txn, ctx, action, &arn)?;
    role.ok_or_else(|| EntityKind::Role.not_found(name))
}

pub(crate) fn get_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = role_name(p)?;
    let txn = s.store().begin_read()?;
    let role = authorized_role(s, &*txn, ctx, name, "iam:GetRole")?;
    let mut w = XmlWriter::new();
    write_role(&mut w, &role, &ctx.caller.account, "Role", true);
    Ok(Some(w.finish()))
}

pub(crate) fn delete_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = role_name(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let role = authorized_role(s, &*txn, ctx, name, "iam:DeleteRole")?;
    if !scan_keys(&*txn, &keys::role_instance_profile_prefix(account, name))?.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must remove roles from instance profile first.",
        ));
    }
    if !role.inline_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !role.attached_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    if let Some(b) = &role.permissions_boundary
        && let Some(m) = super::policies::resolve(&*txn, account, b)?
    {
        txn.delete(&keys::boundary_use(account, &m.index_ref(), "role", name))?;
    }
    txn.delete(&keys::role(account, name))?;
    txn.delete(&keys::unique_id(account, &role.role_id))?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_roles(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let prefix = p.get("PathPrefix").unwrap_or("/");
    let mut check = Check::new();
    check.path_prefix("PathPrefix", Some(prefix));
    check.finish()?;
    let page = Page::from_params(p)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    authorize(
        s,
        &*txn,
        ctx,
        "iam:ListRoles",
        &format!("arn:aws:iam::{account}:role{prefix}"),
    )?;
    let roles: Vec<RoleRecord> = scan_all::<RoleRecord>(&*txn, &keys::role_prefix(account))?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.path.starts_with(prefix))
        .collect();
    let (items, next) = page.apply(roles, |r| r.name.to_lowercase());
    let mut w = XmlWriter::new();
    w.open("Roles");
    for r in &items {
        write_role(&mut w, r, account, "member", false);
    }
    w.close("Roles");
    write_page_end(&mut w, next.as_deref());
    Ok(Some(w.finish()))
}

pub(crate) fn update_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = role_name(p)?;
    let description = p.get("Description");
    let max_session = p.int("MaxSessionDuration")?;
    let mut check = Check::new();
    check.length("Description", description, 0, 1000);
    check.range("MaxSessionDuration", max_session, 3600, 43200);
    check.finish()?;
    let mut txn = s.store().begin_write()?;
    let mut role = authorized_role(s, &*txn, ctx, name, "iam:UpdateRole")?;
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

pub(crate) fn update_role_description(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = role_name(p)?;
    let description = p.required("Description")?;
    let mut check = Check::new();
    check.length("Description", Some(description), 0, 1000);
    check.finish()?;
    let mut txn = s.store().begin_write()?;
    let mut role = authorized_role(s, &*txn, ctx, name, "iam:UpdateRoleDescription")?;
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
) -> OpResult {
    let name = role_name(p)?;
    let doc = p.required("PolicyDocument")?;
    let mut txn = s.store().begin_write()?;
    let mut role = authorized_role(s, &*txn, ctx, name, "iam:UpdateAssumeRolePolicy")?;
    validate_trust_policy(&*txn, doc)?;
    role.assume_role_policy = doc.to_string();
    record::put(&mut *txn, &keys::role(&ctx.caller.account, name), &role)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn tag_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = role_name(p)?;
    let tags = parse_tags(p, "Tags")?;
    let mut txn = s.store().begin_write()?;
    let mut role = authorized_role(s, &*txn, ctx, name, "iam:TagRole")?;
    merge_tags(&mut role.tags, tags);
    if role.tags.len() > 50 {
        return Err(limit_exceeded("Cannot exceed quota for TagsPerRole: 50"));
    }
    record::put(&mut *txn, &keys::role(&ctx.caller.account, name), &role)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn untag_role(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = role_name(p)?;
    let remove: Vec<String> = p.list("TagKeys").iter().map(|k| k.to_lowercase()).collect();
    let mut txn = s.store().begin_write()?;
    let mut role = authorized_role(s, &*txn, ctx, name, "iam:UntagRole")?;
    role.tags
        .retain(|(k, _)| !remove.contains(&k.to_lowercase()));
    record::put(&mut *txn, &keys::role(&ctx.caller.account, name), &role)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_role_tags(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = role_name(p)?;
    let page = Page::from_params(p)?;
    let txn = s.store().begin_read()?;
    let role = authorized_role(s, &*txn, ctx, name, "iam:ListRoleTags")?;
    let (items, next) = page.apply(role.tags, |(k, _)| k.clone());
    let mut w = XmlWriter::new();
    w.open("Tags");
    for (k, v) in &items {
        w.open("member")
            .elem("Key", k)
            .elem("Value", v)
            .close("member");
    }
    w.close("Tags");
    write_page_end(&mut w, next.as_deref());
    Ok(Some(w.finish()))
}
