//! IAM groups and membership. Membership is kept as two index keys (group → user and
//! user → group) written in the same transaction; a user is in at most 10 groups.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;
use tresor_store::ReadTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::entities::{
    delete_entity, insert_entity, list_entities, refuse_if_any, refuse_if_policies,
};
use super::pagination::{Page, write_list};
use super::users::write_user;
use super::{
    Check, EntityKind, IamResult, authorize, authorized, limit_exceeded, name_param, scan_keys,
    write_entity_head,
};
use crate::error::IamError;
use crate::identity::{FORMAT, UserRecord};
use crate::keys;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// Groups an IAM user may be in (IAM and AWS STS quotas).
const MAX_GROUPS_PER_USER: usize = 10;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub group_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    #[serde(default)]
    pub attached_policies: Vec<String>,
}

super::impl_entity!(GroupRecord, Group, group_id);
super::impl_policy_holder!(GroupRecord, tresor_policy::GROUP_INLINE_POLICIES_MAX_SIZE);

fn write_group(w: &mut XmlWriter, g: &GroupRecord, account: &str, tag: &str) {
    write_entity_head(w, g, account, tag);
    w.close(tag);
}

fn group_name(p: &QueryParams) -> Result<&str, IamError> {
    name_param(p, "GroupName", EntityKind::Group.name_max())
}

/// The groups user `user` is in (for the Authorizer and ListGroupsForUser).
pub(crate) fn groups_of_user(
    txn: &dyn ReadTxn,
    account: &str,
    user: &str,
) -> Result<Vec<GroupRecord>, IamError> {
    let mut out = Vec::new();
    for (_, group) in scan_keys(txn, &keys::user_group_prefix(account, user))? {
        if let Some(g) = record::get::<GroupRecord>(txn, &keys::group(account, &group))? {
            out.push(g);
        }
    }
    Ok(out)
}

pub(crate) fn create_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = group_name(p)?;
    let path = p.get("Path").unwrap_or("/");
    let mut check = Check::new();
    check.path("Path", Some(path));
    check.finish()?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    authorize(
        s,
        ctx,
        "iam:CreateGroup",
        &EntityKind::Group.arn(account, path, name),
    )?;
    let key = keys::group(account, name);
    if txn.get(&key)?.is_some() {
        return Err(EntityKind::Group.exists(name));
    }
    let group = GroupRecord {
        v: FORMAT,
        name: name.to_string(),
        path: path.to_string(),
        group_id: ids::unique_id("AGPA"),
        created: ctx.now,
        inline_policies: BTreeMap::new(),
        attached_policies: Vec::new(),
    };
    insert_entity(&mut *txn, account, &group, None)?;
    txn.commit()?;
    let mut w = XmlWriter::new();
    write_group(&mut w, &group, account, "Group");
    Ok(Some(w.finish()))
}

pub(crate) fn get_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = group_name(p)?;
    let page = Page::from_params(p)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let group = authorized::<GroupRecord>(s, &*txn, ctx, name, "iam:GetGroup")?;
    let mut users = Vec::new();
    for (_, user) in scan_keys(&*txn, &keys::group_member_prefix(account, name))? {
        if let Some(u) = record::get::<UserRecord>(&*txn, &keys::user(account, &user))? {
            users.push(u);
        }
    }
    let (items, next) = page.apply(users, |u| u.name.to_lowercase());
    let mut w = XmlWriter::new();
    write_group(&mut w, &group, account, "Group");
    write_list(&mut w, "Users", &items, next.as_deref(), |w, u| {
        write_user(w, u, account, "member", false);
        Ok(())
    })?;
    Ok(Some(w.finish()))
}

pub(crate) fn delete_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let account = &ctx.caller.account;
    delete_entity(s, ctx, p, |txn, group: &GroupRecord| {
        refuse_if_any(
            txn,
            &keys::group_member_prefix(account, &group.name),
            "Cannot delete entity, must remove users from group first.",
        )?;
        refuse_if_policies(group)
    })
}

pub(crate) fn list_groups(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    list_entities(s, ctx, p, |w, _, g: &GroupRecord, account| {
        write_group(w, g, account, "member");
        Ok(())
    })
}

fn user_name(p: &QueryParams) -> Result<&str, IamError> {
    name_param(p, "UserName", EntityKind::User.name_max())
}

pub(crate) fn add_user_to_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let group_name = group_name(p)?;
    let user_name = user_name(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let group = authorized::<GroupRecord>(s, &*txn, ctx, group_name, "iam:AddUserToGroup")?;
    let user = record::get::<UserRecord>(&*txn, &keys::user(account, user_name))?
        .ok_or_else(|| EntityKind::User.not_found::<IamError>(user_name))?;
    let member_key = keys::group_member(account, &group.name, &user.name);
    if txn.get(&member_key)?.is_none() {
        if scan_keys(&*txn, &keys::user_group_prefix(account, &user.name))?.len()
            >= MAX_GROUPS_PER_USER
        {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for GroupsPerUser: {MAX_GROUPS_PER_USER}"
            )));
        }
        txn.put(&member_key, user.name.as_bytes())?;
        txn.put(
            &keys::user_group(account, &user.name, &group.name),
            group.name.as_bytes(),
        )?;
    }
    txn.commit()?;
    Ok(None)
}

pub(crate) fn remove_user_from_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let group_name = group_name(p)?;
    let user_name = user_name(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let group = authorized::<GroupRecord>(s, &*txn, ctx, group_name, "iam:RemoveUserFromGroup")?;
    let user = record::get::<UserRecord>(&*txn, &keys::user(account, user_name))?
        .ok_or_else(|| EntityKind::User.not_found::<IamError>(user_name))?;
    if !txn.delete(&keys::group_member(account, &group.name, &user.name))? {
        return Err(super::no_such_entity(format!(
            "The user with name {} cannot be found in group {}.",
            user.name, group.name
        )));
    }
    txn.delete(&keys::user_group(account, &user.name, &group.name))?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_groups_for_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = user_name(p)?;
    let page = Page::from_params(p)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let user = authorized::<UserRecord>(s, &*txn, ctx, name, "iam:ListGroupsForUser")?;
    let groups = groups_of_user(&*txn, account, &user.name)?;
    let (items, next) = page.apply(groups, |g| g.name.to_lowercase());
    let mut w = XmlWriter::new();
    write_list(&mut w, "Groups", &items, next.as_deref(), |w, g| {
        write_group(w, g, account, "member");
        Ok(())
    })?;
    Ok(Some(w.finish()))
}
