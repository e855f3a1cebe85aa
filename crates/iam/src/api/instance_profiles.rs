//! Instance profiles: containers for one role (IAM and AWS STS quotas: roles per instance
//! profile, 1). Adding a role also needs `iam:PassRole` on it, as on AWS.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;
use tresor_store::ReadTxn;

use super::check::{Check, check_tags};
use super::entities::{delete_named, insert_entity, list_page};
use super::entity::{Entity, EntityKind, authorize, authorized, scan_keys};
use super::errors::{delete_conflict, limit_exceeded, no_such_entity};
use super::pagination::Page;
use super::roles::Role;
use crate::error::IamError;
use crate::identity::FORMAT;
use crate::keys;
use crate::records::{InstanceProfileRecord, RoleRecord};
use crate::shapes::{Tag, TagInput};
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// `InstanceProfile`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfile {
    pub path: String,
    pub instance_profile_name: String,
    pub instance_profile_id: String,
    pub arn: String,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub create_date: OffsetDateTime,
    pub roles: Vec<Role>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl InstanceProfile {
    /// The structure of `ip`, with its roles as ListRoles describes them.
    fn of(
        txn: &dyn ReadTxn,
        ip: &InstanceProfileRecord,
        account: &str,
    ) -> Result<InstanceProfile, IamError> {
        let mut roles = Vec::new();
        for r in &ip.roles {
            if let Some(role) = record::get::<RoleRecord>(txn, &keys::role(account, r))? {
                roles.push(Role::of(&role, account, false));
            }
        }
        Ok(InstanceProfile {
            path: ip.path.clone(),
            instance_profile_name: ip.name.clone(),
            instance_profile_id: ip.instance_profile_id.clone(),
            arn: ip.arn(account),
            create_date: ip.created,
            roles,
            tags: Tag::list(&ip.tags),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateInstanceProfileInput {
    pub instance_profile_name: String,
    pub path: Option<String>,
    #[serde(default)]
    pub tags: Vec<TagInput>,
}

/// `CreateInstanceProfile` and `GetInstanceProfile`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfileOutput {
    pub instance_profile: InstanceProfile,
}

/// `GetInstanceProfile` and `DeleteInstanceProfile`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfileNameInput {
    pub instance_profile_name: String,
}

pub type ListInstanceProfilesInput = crate::shapes::PathListInput;

/// `ListInstanceProfiles` and `ListInstanceProfilesForRole`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInstanceProfilesOutput {
    pub instance_profiles: Vec<InstanceProfile>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

/// `AddRoleToInstanceProfile` and `RemoveRoleFromInstanceProfile`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfileRoleInput {
    pub instance_profile_name: String,
    pub role_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInstanceProfilesForRoleInput {
    pub role_name: String,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

fn check_profile_name(name: &str) -> Result<(), IamError> {
    let mut check = Check::new();
    check.name(
        "InstanceProfileName",
        Some(name),
        EntityKind::InstanceProfile.name_max(),
    );
    check.finish()
}

fn check_role_name(name: &str) -> Result<(), IamError> {
    let mut check = Check::new();
    check.name("RoleName", Some(name), EntityKind::Role.name_max());
    check.finish()
}

pub fn create_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    input: CreateInstanceProfileInput,
) -> Result<InstanceProfileOutput, IamError> {
    let name = input.instance_profile_name.as_str();
    check_profile_name(name)?;
    let path = input.path.as_deref().unwrap_or("/");
    let mut check = Check::new();
    check.path("Path", Some(path));
    check.finish()?;
    let tags = check_tags("Tags", &input.tags)?;
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
    let instance_profile = InstanceProfile::of(&*txn, &ip, account)?;
    txn.commit()?;
    Ok(InstanceProfileOutput { instance_profile })
}

pub fn get_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    input: InstanceProfileNameInput,
) -> Result<InstanceProfileOutput, IamError> {
    let name = input.instance_profile_name.as_str();
    check_profile_name(name)?;
    let txn = s.store().begin_read()?;
    let ip = authorized::<InstanceProfileRecord>(s, &*txn, ctx, name, "iam:GetInstanceProfile")?;
    Ok(InstanceProfileOutput {
        instance_profile: InstanceProfile::of(&*txn, &ip, &ctx.caller.account)?,
    })
}

pub fn delete_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    input: InstanceProfileNameInput,
) -> Result<(), IamError> {
    delete_named(
        s,
        ctx,
        &input.instance_profile_name,
        |_, ip: &InstanceProfileRecord| {
            if ip.roles.is_empty() {
                Ok(())
            } else {
                Err(delete_conflict(
                    "Cannot delete entity, must remove roles from instance profile first.",
                ))
            }
        },
    )
}

pub fn list_instance_profiles(
    s: &Services,
    ctx: &RequestCtx,
    input: ListInstanceProfilesInput,
) -> Result<ListInstanceProfilesOutput, IamError> {
    let (profiles, next) = list_page::<InstanceProfileRecord>(
        s,
        ctx,
        input.path_prefix.as_deref(),
        input.max_items,
        input.marker.as_deref(),
    )?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let instance_profiles = profiles
        .iter()
        .map(|ip| InstanceProfile::of(&*txn, ip, account))
        .collect::<Result<_, _>>()?;
    Ok(ListInstanceProfilesOutput {
        instance_profiles,
        is_truncated: next.is_some(),
        marker: next,
    })
}

pub fn add_role_to_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    input: InstanceProfileRoleInput,
) -> Result<(), IamError> {
    let name = input.instance_profile_name.as_str();
    check_profile_name(name)?;
    let role_name = input.role_name.as_str();
    check_role_name(role_name)?;
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
    Ok(())
}

pub fn remove_role_from_instance_profile(
    s: &Services,
    ctx: &RequestCtx,
    input: InstanceProfileRoleInput,
) -> Result<(), IamError> {
    let name = input.instance_profile_name.as_str();
    check_profile_name(name)?;
    let role_name = input.role_name.as_str();
    check_role_name(role_name)?;
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
    Ok(())
}

pub fn list_instance_profiles_for_role(
    s: &Services,
    ctx: &RequestCtx,
    input: ListInstanceProfilesForRoleInput,
) -> Result<ListInstanceProfilesOutput, IamError> {
    let role_name = input.role_name.as_str();
    check_role_name(role_name)?;
    let page = Page::new(input.max_items, input.marker.as_deref())?;
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
    let instance_profiles = items
        .iter()
        .map(|ip| InstanceProfile::of(&*txn, ip, account))
        .collect::<Result<_, _>>()?;
    Ok(ListInstanceProfilesOutput {
        instance_profiles,
        is_truncated: next.is_some(),
        marker: next,
    })
}
