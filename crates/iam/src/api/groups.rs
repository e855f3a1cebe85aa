//! IAM groups and membership. Membership is kept as two index keys (group → user and
//! user → group) written in the same transaction; a user is in at most 10 groups.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;
use tresor_store::ReadTxn;

use super::check::Check;
use super::entities::{delete_named, insert_entity, list_page, refuse_if_any, refuse_if_policies};
use super::entity::{EntityKind, authorize, authorized, scan_keys};
use super::errors::limit_exceeded;
use super::pagination::Page;
use super::users::User;
use crate::error::IamError;
use crate::identity::{FORMAT, UserRecord};
use crate::keys;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// Groups an IAM user may be in (IAM and AWS STS quotas).
const MAX_GROUPS_PER_USER: usize = 10;

use crate::records::GroupRecord;

/// `Group`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Group {
    pub path: String,
    pub group_name: String,
    pub group_id: String,
    pub arn: String,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub create_date: OffsetDateTime,
}

impl Group {
    pub(crate) fn of(g: &GroupRecord, account: &str) -> Group {
        Group {
            path: g.path.clone(),
            group_name: g.name.clone(),
            group_id: g.group_id.clone(),
            arn: g.arn(account),
            create_date: g.created,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateGroupInput {
    pub group_name: String,
    pub path: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateGroupOutput {
    pub group: Group,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetGroupInput {
    pub group_name: String,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetGroupOutput {
    pub group: Group,
    pub users: Vec<User>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteGroupInput {
    pub group_name: String,
}

pub type ListGroupsInput = crate::shapes::PathListInput;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGroupsOutput {
    pub groups: Vec<Group>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

/// `AddUserToGroup` and `RemoveUserFromGroup`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupMembershipInput {
    pub group_name: String,
    pub user_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGroupsForUserInput {
    pub user_name: String,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
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

fn check_group_name(check: &mut Check, name: &str) {
    check.name("GroupName", Some(name), EntityKind::Group.name_max());
}

pub fn create_group(
    s: &Services,
    ctx: &RequestCtx,
    input: CreateGroupInput,
) -> Result<CreateGroupOutput, IamError> {
    let name = input.group_name.as_str();
    let path = input.path.as_deref().unwrap_or("/");
    let mut check = Check::new();
    check_group_name(&mut check, name);
    check.finish()?;
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
    Ok(CreateGroupOutput {
        group: Group::of(&group, account),
    })
}

pub fn get_group(
    s: &Services,
    ctx: &RequestCtx,
    input: GetGroupInput,
) -> Result<GetGroupOutput, IamError> {
    let name = input.group_name.as_str();
    let mut check = Check::new();
    check_group_name(&mut check, name);
    check.finish()?;
    let page = Page::new(input.max_items, input.marker.as_deref())?;
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
    Ok(GetGroupOutput {
        group: Group::of(&group, account),
        users: items.iter().map(|u| User::of(u, account, false)).collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}

pub fn delete_group(
    s: &Services,
    ctx: &RequestCtx,
    input: DeleteGroupInput,
) -> Result<(), IamError> {
    let account = &ctx.caller.account;
    delete_named(s, ctx, &input.group_name, |txn, group: &GroupRecord| {
        refuse_if_any(
            txn,
            &keys::group_member_prefix(account, &group.name),
            "Cannot delete entity, must remove users from group first.",
        )?;
        refuse_if_policies(group)
    })
}

pub fn list_groups(
    s: &Services,
    ctx: &RequestCtx,
    input: ListGroupsInput,
) -> Result<ListGroupsOutput, IamError> {
    let (groups, next) = list_page::<GroupRecord>(
        s,
        ctx,
        input.path_prefix.as_deref(),
        input.max_items,
        input.marker.as_deref(),
    )?;
    let account = &ctx.caller.account;
    Ok(ListGroupsOutput {
        groups: groups.iter().map(|g| Group::of(g, account)).collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}

/// Both names of a membership operation, group first, as IAM reports them.
fn check_membership(input: &GroupMembershipInput) -> Result<(), IamError> {
    let mut check = Check::new();
    check_group_name(&mut check, &input.group_name);
    check.finish()?;
    let mut check = Check::new();
    check.name(
        "UserName",
        Some(&input.user_name),
        EntityKind::User.name_max(),
    );
    check.finish()
}

pub fn add_user_to_group(
    s: &Services,
    ctx: &RequestCtx,
    input: GroupMembershipInput,
) -> Result<(), IamError> {
    check_membership(&input)?;
    let (group_name, user_name) = (input.group_name.as_str(), input.user_name.as_str());
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
    Ok(())
}

pub fn remove_user_from_group(
    s: &Services,
    ctx: &RequestCtx,
    input: GroupMembershipInput,
) -> Result<(), IamError> {
    check_membership(&input)?;
    let (group_name, user_name) = (input.group_name.as_str(), input.user_name.as_str());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let group = authorized::<GroupRecord>(s, &*txn, ctx, group_name, "iam:RemoveUserFromGroup")?;
    let user = record::get::<UserRecord>(&*txn, &keys::user(account, user_name))?
        .ok_or_else(|| EntityKind::User.not_found::<IamError>(user_name))?;
    if !txn.delete(&keys::group_member(account, &group.name, &user.name))? {
        return Err(super::errors::no_such_entity(format!(
            "The user with name {} cannot be found in group {}.",
            user.name, group.name
        )));
    }
    txn.delete(&keys::user_group(account, &user.name, &group.name))?;
    txn.commit()?;
    Ok(())
}

pub fn list_groups_for_user(
    s: &Services,
    ctx: &RequestCtx,
    input: ListGroupsForUserInput,
) -> Result<ListGroupsOutput, IamError> {
    let name = input.user_name.as_str();
    let mut check = Check::new();
    check.name("UserName", Some(name), EntityKind::User.name_max());
    check.finish()?;
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let user = authorized::<UserRecord>(s, &*txn, ctx, name, "iam:ListGroupsForUser")?;
    let groups = groups_of_user(&*txn, account, &user.name)?;
    let (items, next) = page.apply(groups, |g| g.name.to_lowercase());
    Ok(ListGroupsOutput {
        groups: items.iter().map(|g| Group::of(g, account)).collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}
