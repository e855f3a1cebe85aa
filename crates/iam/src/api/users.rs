//! IAM users: `CreateUser` … `UpdateUser` and user tags. `GetUser` without a name answers for
//! the caller. A user cannot be deleted while it has access keys, policies or group
//! memberships (IAM's `DeleteConflict`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;

use super::check::{Check, check_tags};
use super::entities::{
    create_context, delete_named, insert_entity, list_page, refuse_if_any, refuse_if_policies,
};
use super::entity::{EntityKind, authorize, authorize_with, authorized, scan_keys};
use super::errors::validation;
use super::policies::check_boundary;
use crate::error::IamError;
use crate::identity::{AccessKeyRecord, FORMAT, KeyOwner, UserRecord};
use crate::keys;
use crate::shapes::{AttachedPermissionsBoundary, Tag, TagInput};
use tresor_core::Services;
use tresor_core::authz::AuthzRequest;
use tresor_core::ctx::{CallerKind, RequestCtx};
use tresor_core::record;

/// `User`. `Path` and `UserName` are absent only when the account root describes itself.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct User {
    pub path: Option<String>,
    pub user_name: Option<String>,
    pub user_id: String,
    pub arn: String,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub create_date: OffsetDateTime,
    pub permissions_boundary: Option<AttachedPermissionsBoundary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl User {
    /// The `User` structure; `full` (CreateUser, GetUser) adds the boundary and tags.
    pub(crate) fn of(user: &UserRecord, account: &str, full: bool) -> User {
        User {
            path: Some(user.path.clone()),
            user_name: Some(user.name.clone()),
            user_id: user.user_id.clone(),
            arn: user.arn(account),
            create_date: user.created,
            permissions_boundary: if full {
                AttachedPermissionsBoundary::of(user.permissions_boundary.as_deref())
            } else {
                None
            },
            tags: if full {
                Tag::list(&user.tags)
            } else {
                Vec::new()
            },
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateUserInput {
    pub path: Option<String>,
    pub user_name: String,
    pub permissions_boundary: Option<String>,
    #[serde(default)]
    pub tags: Vec<TagInput>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateUserOutput {
    pub user: User,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetUserInput {
    pub user_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetUserOutput {
    pub user: User,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteUserInput {
    pub user_name: String,
}

pub type ListUsersInput = crate::shapes::PathListInput;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUsersOutput {
    pub users: Vec<User>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateUserInput {
    pub user_name: String,
    pub new_path: Option<String>,
    pub new_user_name: Option<String>,
}

pub fn create_user(
    s: &Services,
    ctx: &RequestCtx,
    input: CreateUserInput,
) -> Result<CreateUserOutput, IamError> {
    let name = input.user_name.as_str();
    let path = input.path.as_deref().unwrap_or("/");
    let boundary = input.permissions_boundary.as_deref();
    let mut check = Check::new();
    check.name("UserName", Some(name), 64);
    check.path("Path", Some(path));
    check.length("PermissionsBoundary", boundary, 20, 2048);
    check.finish()?;
    let tags = check_tags("Tags", &input.tags)?;
    let account = &ctx.caller.account;
    let arn = EntityKind::User.arn(account, path, name);
    let mut txn = s.store().begin_write()?;
    let mut req = AuthzRequest::new("iam:CreateUser", &arn);
    req.context = tresor_core::owned_conditions(create_context(boundary, &tags));
    authorize_with(s, ctx, &req)?;
    let key = keys::user(account, name);
    if txn.get(&key)?.is_some() {
        return Err(EntityKind::User.exists(name));
    }
    let boundary_ref = boundary
        .map(|b| check_boundary(&*txn, account, b))
        .transpose()?;
    let user = UserRecord {
        v: FORMAT,
        name: name.to_string(),
        path: path.to_string(),
        user_id: ids::unique_id("AIDA"),
        created: ctx.now,
        tags,
        inline_policies: BTreeMap::new(),
        attached_policies: Vec::new(),
        permissions_boundary: boundary.map(str::to_string),
    };
    insert_entity(&mut *txn, account, &user, boundary_ref)?;
    txn.commit()?;
    Ok(CreateUserOutput {
        user: User::of(&user, account, true),
    })
}

/// `GetUser`; without a name, the caller (root is described by its account, IAM API
/// reference, GetUser).
pub fn get_user(
    s: &Services,
    ctx: &RequestCtx,
    input: GetUserInput,
) -> Result<GetUserOutput, IamError> {
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let name = match (input.user_name, &ctx.caller.kind) {
        (Some(n), _) => {
            let mut check = Check::new();
            check.name("UserName", Some(&n), 128);
            check.finish()?;
            n
        }
        (None, CallerKind::User { name, .. }) => name.clone(),
        (None, CallerKind::Root) => {
            authorize(s, ctx, "iam:GetUser", &ctx.caller.arn)?;
            let created =
                record::get::<crate::identity::AccountRecord>(&*txn, &keys::account(account))?
                    .map_or(ctx.now, |a| a.created);
            return Ok(GetUserOutput {
                user: User {
                    path: None,
                    user_name: None,
                    user_id: account.clone(),
                    arn: ctx.caller.arn.clone(),
                    create_date: created,
                    permissions_boundary: None,
                    tags: Vec::new(),
                },
            });
        }
        (None, CallerKind::AssumedRole { .. }) => {
            return Err(validation(
                "Must specify userName when calling with non-User credentials",
            ));
        }
    };
    let user = authorized::<UserRecord>(s, &*txn, ctx, &name, "iam:GetUser")?;
    Ok(GetUserOutput {
        user: User::of(&user, account, true),
    })
}

/// `DeleteUser`: refused while the user has access keys, policies or group memberships.
pub fn delete_user(s: &Services, ctx: &RequestCtx, input: DeleteUserInput) -> Result<(), IamError> {
    let account = &ctx.caller.account;
    delete_named(s, ctx, &input.user_name, |txn, user: &UserRecord| {
        refuse_if_any(
            txn,
            &keys::user_access_key_prefix(account, &user.name),
            "Cannot delete entity, must delete access keys first.",
        )?;
        refuse_if_policies(user)?;
        refuse_if_any(
            txn,
            &keys::user_group_prefix(account, &user.name),
            "Cannot delete entity, must remove user from all groups first.",
        )
    })
}

pub fn list_users(
    s: &Services,
    ctx: &RequestCtx,
    input: ListUsersInput,
) -> Result<ListUsersOutput, IamError> {
    let (users, next) = list_page::<UserRecord>(
        s,
        ctx,
        input.path_prefix.as_deref(),
        input.max_items,
        input.marker.as_deref(),
    )?;
    let account = &ctx.caller.account;
    Ok(ListUsersOutput {
        users: users.iter().map(|u| User::of(u, account, false)).collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}

/// `UpdateUser`: a new path and/or a new name. Renaming moves every record and index that is
/// keyed by the user's name, in the same transaction.
pub fn update_user(s: &Services, ctx: &RequestCtx, input: UpdateUserInput) -> Result<(), IamError> {
    let name = input.user_name.as_str();
    let new_path = input.new_path.as_deref();
    let new_name = input.new_user_name.as_deref();
    let mut check = Check::new();
    check.name("UserName", Some(name), EntityKind::User.name_max());
    check.path("NewPath", new_path);
    check.name("NewUserName", new_name, 64);
    check.finish()?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut user = authorized::<UserRecord>(s, &*txn, ctx, name, "iam:UpdateUser")?;
    let old_name = user.name.clone();
    if let Some(path) = new_path {
        user.path = path.to_string();
    }
    let renamed = new_name.filter(|n| *n != old_name.as_str());
    if let Some(n) = renamed {
        // IAM requires permission on both the source and the target of a rename.
        authorize(
            s,
            ctx,
            "iam:UpdateUser",
            &EntityKind::User.arn(account, &user.path, n),
        )?;
        if !n.eq_ignore_ascii_case(&old_name) && txn.get(&keys::user(account, n))?.is_some() {
            return Err(EntityKind::User.exists(n));
        }
        user.name = n.to_string();
        txn.delete(&keys::user(account, &old_name))?;
        txn.put(&keys::unique_id(account, &user.user_id), n.as_bytes())?;
        for (key, _) in scan_keys(&*txn, &keys::user_access_key_prefix(account, &old_name))? {
            let Some(akid) = key.rsplit('/').next().map(str::to_string) else {
                continue;
            };
            txn.delete(&key)?;
            txn.put(&keys::user_access_key(account, n, &akid), b"")?;
            if let Some(mut k) = record::get::<AccessKeyRecord>(&*txn, &keys::access_key(&akid))? {
                k.owner = KeyOwner::User {
                    name: n.to_string(),
                };
                record::put(&mut *txn, &keys::access_key(&akid), &k)?;
            }
        }
        for (key, group) in scan_keys(&*txn, &keys::user_group_prefix(account, &old_name))? {
            txn.delete(&key)?;
            txn.put(&keys::user_group(account, n, &group), group.as_bytes())?;
            txn.delete(&keys::group_member(account, &group, &old_name))?;
            txn.put(&keys::group_member(account, &group, n), n.as_bytes())?;
        }
        for arn in user.attached_policies.clone() {
            if let Some(m) = super::policies::resolve(&*txn, account, &arn)? {
                txn.delete(&keys::policy_attachment(
                    account,
                    &m.index_ref(),
                    "user",
                    &old_name,
                ))?;
                txn.put(
                    &keys::policy_attachment(account, &m.index_ref(), "user", n),
                    n.as_bytes(),
                )?;
            }
        }
        if let Some(b) = user.permissions_boundary.clone()
            && let Some(m) = super::policies::resolve(&*txn, account, &b)?
        {
            txn.delete(&keys::boundary_use(
                account,
                &m.index_ref(),
                "user",
                &old_name,
            ))?;
            txn.put(
                &keys::boundary_use(account, &m.index_ref(), "user", n),
                n.as_bytes(),
            )?;
        }
    }
    record::put(&mut *txn, &keys::user(account, &user.name), &user)?;
    txn.commit()?;
    Ok(())
}
