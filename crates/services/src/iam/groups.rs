//! IAM groups and membership. Membership is kept as two index keys (group → user and
//! user → group) written in the same transaction; a user is in at most 10 groups.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;
use tresor_store::ReadTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::pagination::{Page, write_page_end};
use super::users::{authorized_user, write_user};
use super::{
    Check, Entity, EntityKind, OpResult, PolicyHolder, authorize, delete_conflict, iso,
    limit_exceeded, lookup, scan_all, scan_keys,
};
use crate::ctx::RequestCtx;
use crate::dispatch::Services;
use crate::error::ServiceError;
use crate::identity::{FORMAT, UserRecord};
use crate::{keys, record};

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

impl Entity for GroupRecord {
    const KIND: EntityKind = EntityKind::Group;
    fn name(&self) -> &str {
        &self.name
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn id(&self) -> &str {
        &self.group_id
    }
}

impl PolicyHolder for GroupRecord {
    const INLINE_LIMIT: usize = tresor_policy::GROUP_INLINE_POLICIES_MAX_SIZE;
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
}

fn write_group(w: &mut XmlWriter, g: &GroupRecord, account: &str, tag: &str) {
    w.open(tag)
        .elem("Path", &g.path)
        .elem("GroupName", &g.name)
        .elem("GroupId", &g.group_id)
        .elem("Arn", &g.arn(account))
        .elem("CreateDate", &iso(g.created))
        .close(tag);
}

fn group_name(p: &QueryParams) -> Result<&str, ServiceError> {
    let name = p.required("GroupName")?;
    let mut check = Check::new();
    check.name("GroupName", Some(name), 128);
    check.finish()?;
    Ok(name)
}

fn authorized_group(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
) -> Result<GroupRecord, ServiceError> {
    let (group, arn) = lookup::<GroupRecord>(txn, &ctx.caller.account, name)?;
    authorize(s, txn, ctx, action, &arn)?;
    group.ok_or_else(|| EntityKind::Group.not_found(name))
}

/// The groups user `user` is in (for the Authorizer and ListGroupsForUser).
pub(crate) fn groups_of_user(
    txn: &dyn ReadTxn,
    account: &str,
    user: &str,
) -> Result<Vec<GroupRecord>, ServiceError> {
    let mut out = Vec::new();
    for (_, group) in scan_keys(txn, &keys::user_group_prefix(account, user))? {
        if let Some(g) = record::get::<GroupRecord>(txn, &keys::group(account, &group))? {
            out.push(g);
        }
    }
    Ok(out)
}

pub(crate) fn create_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = group_name(p)?;
    let path = p.get("Path").unwrap_or("/");
    let mut check = Check::new();
    check.path("Path", Some(path));
    check.finish()?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    authorize(
        s,
        &*txn,
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
    record::put(&mut *txn, &key, &group)?;
    txn.put(&keys::unique_id(account, &group.group_id), name.as_bytes())?;
    txn.commit()?;
    let mut w = XmlWriter::new();
    write_group(&mut w, &group, account, "Group");
    Ok(Some(w.finish()))
}

pub(crate) fn get_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = group_name(p)?;
    let page = Page::from_params(p)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let group = authorized_group(s, &*txn, ctx, name, "iam:GetGroup")?;
    let mut users = Vec::new();
    for (_, user) in scan_keys(&*txn, &keys::group_member_prefix(account, name))? {
        if let Some(u) = record::get::<UserRecord>(&*txn, &keys::user(account, &user))? {
            users.push(u);
        }
    }
    let (items, next) = page.apply(users, |u| u.name.to_lowercase());
    let mut w = XmlWriter::new();
    write_group(&mut w, &group, account, "Group");
    w.open("Users");
    for u in &items {
        write_user(&mut w, u, account, "member", false);
    }
    w.close("Users");
    write_page_end(&mut w, next.as_deref());
    Ok(Some(w.finish()))
}

pub(crate) fn delete_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = group_name(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let group = authorized_group(s, &*txn, ctx, name, "iam:DeleteGroup")?;
    if !scan_keys(&*txn, &keys::group_member_prefix(account, name))?.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must remove users from group first.",
        ));
    }
    if !group.inline_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !group.attached_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    txn.delete(&keys::group(account, name))?;
    txn.delete(&keys::unique_id(account, &group.group_id))?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_groups(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
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
        "iam:ListGroups",
        &format!("arn:aws:iam::{account}:group{prefix}"),
    )?;
    let groups: Vec<GroupRecord> = scan_all::<GroupRecord>(&*txn, &keys::group_prefix(account))?
        .into_iter()
        .map(|(_, g)| g)
        .filter(|g| g.path.starts_with(prefix))
        .collect();
    let (items, next) = page.apply(groups, |g| g.name.to_lowercase());
    let mut w = XmlWriter::new();
    w.open("Groups");
    for g in &items {
        write_group(&mut w, g, account, "member");
    }
    w.close("Groups");
    write_page_end(&mut w, next.as_deref());
    Ok(Some(w.finish()))
}

fn user_name(p: &QueryParams) -> Result<&str, ServiceError> {
    let name = p.required("UserName")?;
    let mut check = Check::new();
    check.name("UserName", Some(name), 128);
    check.finish()?;
    Ok(name)
}

pub(crate) fn add_user_to_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let group_name = group_name(p)?;
    let user_name = user_name(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let group = authorized_group(s, &*txn, ctx, group_name, "iam:AddUserToGroup")?;
    let user = record::get::<UserRecord>(&*txn, &keys::user(account, user_name))?
        .ok_or_else(|| EntityKind::User.not_found(user_name))?;
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

pub(crate) fn remove_user_from_group(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let group_name = group_name(p)?;
    let user_name = user_name(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let group = authorized_group(s, &*txn, ctx, group_name, "iam:RemoveUserFromGroup")?;
    let user = record::get::<UserRecord>(&*txn, &keys::user(account, user_name))?
        .ok_or_else(|| EntityKind::User.not_found(user_name))?;
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

pub(crate) fn list_groups_for_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = user_name(p)?;
    let page = Page::from_params(p)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let user = authorized_user(s, &*txn, ctx, name, "iam:ListGroupsForUser")?;
    let groups = groups_of_user(&*txn, account, &user.name)?;
    let (items, next) = page.apply(groups, |g| g.name.to_lowercase());
    let mut w = XmlWriter::new();
    w.open("Groups");
    for g in &items {
        write_group(&mut w, g, account, "member");
    }
    w.close("Groups");
    write_page_end(&mut w, next.as_deref());
    Ok(Some(w.finish()))
}
