//! Instance profiles: containers for one role (IAM and AWS STS quotas: roles per instance
//! profile, 1). Adding a role also needs `iam:PassRole` on it, as on AWS.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;
use tresor_store::ReadTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::entities::{delete_entity, insert_entity, list_entities};
use super::pagination::{Page, write_list};
use super::roles::{RoleRecord, write_role};
use super::{
    Check, EntityKind, IamResult, authorize, authorized, delete_conflict, limit_exceeded,
    name_param, no_such_entity, parse_tags, scan_keys, write_entity_head, write_tags,
};
use crate::error::IamError;
use crate::identity::FORMAT;
use crate::keys;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceProfileRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub instance_profile_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Names of the roles in the profile (at most one).
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

super::impl_entity!(InstanceProfileRecord, InstanceProfile, instance_profile_id);

fn write_profile(
    w: &mut XmlWriter,
    txn: &dyn ReadTxn,
    ip: &InstanceProfileRecord,
    account: &str,
    tag: &str,
) -> Result<(), IamError> {
    write_entity_head(w, ip, account, tag);
    w.open("Roles");
    for r in &ip.roles {
        if let Some(role) = record::get::<RoleRecord>(txn, &keys::role(account, r))? {
            write_role(w, &role, account, "member", false);
        }
    }
    w.close("Roles");
    write_tags(w, &ip.tags);
    w.close(tag);
    Ok(())
}

fn profile_name(p: &QueryParams) -> Result<&str, IamError> {
    name_param(
        p,
        "InstanceProfileName",
        EntityKind::InstanceProfile.name_max(),
    )
}

pub(crate) fn create_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let name = profile_name(p)?;
    let path = p.get("Path").unwrap_or("/");
    let mut check = Check::new();
    check.path("Path", Some(path));
    check.finish()?;
    let tags = parse_tags(p, "Tags")?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    authorize(
        s,
        ctx,
        "iam:CreateInstanceProfile",
        &EntityKind::InstanceProfile.arn(account, path, name),
    )?;
    let key = keys::instance_profile(account, name);
    if txn.get(&key)?.is_some() {
        return Err(EntityKind::InstanceProfile.exists(name));
    }
    let ip = InstanceProfileRecord {
        v: FORMAT,
        name: name.to_string(),
        path: path.to_string(),
        instance_profile_id: ids::unique_id("AIPA"),
        created: ctx.now,
        roles: Vec::new(),
        tags,
    };
    insert_entity(&mut *txn, account, &ip, None)?;
    let mut w = XmlWriter::new();
    write_profile(&mut w, &*txn, &ip, account, "InstanceProfile")?;
    txn.commit()?;
    Ok(Some(w.finish()))
}

pub(crate) fn get_instance_profile(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = profile_name(p)?;
    let txn = s.store().begin_read()?;
    let ip = authorized::<InstanceProfileRecord>(s, &*txn, ctx, name, "iam:GetInstanceProfile")?;
    let mut w = XmlWriter::new();
    write_profile(&mut w, &*txn, &ip, &ctx.caller.account, "InstanceProfile")?;
    Ok(Some(w.finish()))
}

pub(crate) fn delete_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    delete_entity(s, ctx, p, |_, ip: &InstanceProfileRecord| {
        if ip.roles.is_empty() {
            Ok(())
        } else {
            Err(delete_conflict(
                "Cannot delete entity, must remove roles from instance profile first.",
            ))
        }
    })
}

pub(crate) fn list_instance_profiles(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    list_entities(s, ctx, p, |w, txn, ip: &InstanceProfileRecord, account| {
        write_profile(w, txn, ip, account, "member")
    })
}

fn role_param(p: &QueryParams) -> Result<&str, IamError> {
    name_param(p, "RoleName", EntityKind::Role.name_max())
}

pub(crate) fn add_role_to_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let name = profile_name(p)?;
    let role_name = role_param(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut ip =
        authorized::<InstanceProfileRecord>(s, &*txn, ctx, name, "iam:AddRoleToInstanceProfile")?;
    // Putting a role in an instance profile passes it to whatever uses the profile.
    let role = authorized::<RoleRecord>(s, &*txn, ctx, role_name, "iam:PassRole")?;
    // Even re-adding the role already in it exceeds the quota of one role per profile.
    if !ip.roles.is_empty() {
        return Err(limit_exceeded(
            "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1",
        ));
    }
    ip.roles.push(role.name.clone());
    record::put(&mut *txn, &keys::instance_profile(account, name), &ip)?;
    txn.put(
        &keys::role_instance_profile(account, &role.name, &ip.name),
        ip.name.as_bytes(),
    )?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn remove_role_from_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let name = profile_name(p)?;
    let role_name = role_param(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut ip = authorized::<InstanceProfileRecord>(
        s,
        &*txn,
        ctx,
        name,
        "iam:RemoveRoleFromInstanceProfile",
    )?;
    let before = ip.roles.len();
    ip.roles.retain(|r| !r.eq_ignore_ascii_case(role_name));
    if ip.roles.len() == before {
        return Err(no_such_entity(format!(
            "The role with name {role_name} cannot be found."
        )));
    }
    record::put(&mut *txn, &keys::instance_profile(account, name), &ip)?;
    txn.delete(&keys::role_instance_profile(account, role_name, &ip.name))?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_instance_profiles_for_role(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let role_name = role_param(p)?;
    let page = Page::from_params(p)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let role =
        authorized::<RoleRecord>(s, &*txn, ctx, role_name, "iam:ListInstanceProfilesForRole")?;
    let mut found = Vec::new();
    for (_, profile) in scan_keys(
        &*txn,
        &keys::role_instance_profile_prefix(account, &role.name),
    )? {
        if let Some(ip) =
            record::get::<InstanceProfileRecord>(&*txn, &keys::instance_profile(account, &profile))?
        {
            found.push(ip);
        }
    }
    let (items, next) = page.apply(found, |ip| ip.name.to_lowercase());
    let mut w = XmlWriter::new();
    write_list(
        &mut w,
        "InstanceProfiles",
        &items,
        next.as_deref(),
        |w, ip| write_profile(w, &*txn, ip, account, "member"),
    )?;
    Ok(Some(w.finish()))
}
