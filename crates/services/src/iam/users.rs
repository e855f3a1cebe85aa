//! IAM users: `CreateUser` … `UpdateUser` and user tags. `GetUser` without a name answers for
//! the caller. A user cannot be deleted while it has access keys, policies or group
//! memberships (IAM's `DeleteConflict`).

use std::collections::BTreeMap;

use tresor_crypto::ids;
use tresor_store::ReadTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::pagination::{Page, write_page_end};
use super::roles::check_boundary;
use super::{
    Check, EntityKind, OpResult, authorize, authorize_with, delete_conflict, iso, limit_exceeded,
    lookup, merge_tags, parse_tags, scan_all, scan_keys, validation, write_boundary, write_tags,
};
use crate::authz::AuthzRequest;
use crate::ctx::{CallerKind, RequestCtx};
use crate::dispatch::Services;
use crate::error::ServiceError;
use crate::identity::{AccessKeyRecord, FORMAT, KeyOwner, UserRecord};
use crate::{keys, record};

/// The `User` structure; `full` (GetUser) adds the boundary and tags.
pub(crate) fn write_user(
    w: &mut XmlWriter,
    user: &UserRecord,
    account: &str,
    tag: &str,
    full: bool,
) {
    w.open(tag)
        .elem("Path", &user.path)
        .elem("UserName", &user.name)
        .elem("UserId", &user.user_id)
        .elem("Arn", &user.arn(account))
        .elem("CreateDate", &iso(user.created));
    if full {
        write_boundary(w, user.permissions_boundary.as_deref());
        write_tags(w, &user.tags);
    }
    w.close(tag);
}

fn user_name<'a>(p: &'a QueryParams, member: &str) -> Result<&'a str, ServiceError> {
    let name = p.required(member)?;
    let mut check = Check::new();
    check.name(member, Some(name), 128);
    check.finish()?;
    Ok(name)
}

/// Reads the user `name` after authorizing `action` on it.
pub(crate) fn authorized_user(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
) -> Result<UserRecord, ServiceError> {
    let (user, arn) = lookup::<UserRecord>(txn, &ctx.caller.account, name)?;
    authorize(s, txn, ctx, action, &arn)?;
    user.ok_or_else(|| EntityKind::User.not_found(name))
}

pub(crate) fn create_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = p.required("UserName")?;
    let path = p.get("Path").unwrap_or("/");
    let boundary = p.get("PermissionsBoundary");
    let mut check = Check::new();
    check.name("UserName", Some(name), 64);
    check.path("Path", Some(path));
    check.length("PermissionsBoundary", boundary, 20, 2048);
    check.finish()?;
    let tags = parse_tags(p, "Tags")?;
    let account = &ctx.caller.account;
    let arn = EntityKind::User.arn(account, path, name);
    let mut txn = s.store().begin_write()?;
    let mut req = AuthzRequest::new("iam:CreateUser", &arn);
    if let Some(b) = boundary {
        req.context
            .push(("iam:PermissionsBoundary".to_string(), b.to_string()));
    }
    for (k, v) in &tags {
        req.context.push((format!("aws:RequestTag/{k}"), v.clone()));
        req.context.push(("aws:TagKeys".to_string(), k.clone()));
    }
    authorize_with(s, &*txn, ctx, &req)?;
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
    record::put(&mut *txn, &key, &user)?;
    txn.put(&keys::unique_id(account, &user.user_id), name.as_bytes())?;
    if let Some(r) = boundary_ref {
        txn.put(
            &keys::boundary_use(account, &r, "user", name),
            name.as_bytes(),
        )?;
    }
    txn.commit()?;
    let mut w = XmlWriter::new();
    write_user(&mut w, &user, account, "User", true);
    Ok(Some(w.finish()))
}

pub(crate) fn get_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let name = match (p.get("UserName"), &ctx.caller.kind) {
        (Some(n), _) => {
            let mut check = Check::new();
            check.name("UserName", Some(n), 128);
            check.finish()?;
            n.to_string()
        }
        (None, CallerKind::User { name, .. }) => name.clone(),
        (None, CallerKind::Root) => {
            // The root user is described by its account (IAM API reference, GetUser).
            authorize(s, &*txn, ctx, "iam:GetUser", &ctx.caller.arn)?;
            let created =
                record::get::<crate::identity::AccountRecord>(&*txn, &keys::account(account))?
                    .map_or(ctx.now, |a| a.created);
            let mut w = XmlWriter::new();
            w.open("User")
                .elem("UserId", account)
                .elem("Arn", &ctx.caller.arn)
                .elem("CreateDate", &iso(created))
                .close("User");
            return Ok(Some(w.finish()));
        }
        (None, CallerKind::AssumedRole { .. }) => {
            return Err(validation(
                "Must specify userName when calling with non-User credentials",
            ));
        }
    };
    let user = authorized_user(s, &*txn, ctx, &name, "iam:GetUser")?;
    let mut w = XmlWriter::new();
    write_user(&mut w, &user, account, "User", true);
    Ok(Some(w.finish()))
}

pub(crate) fn delete_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = user_name(p, "UserName")?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let user = authorized_user(s, &*txn, ctx, name, "iam:DeleteUser")?;
    if !scan_keys(&*txn, &keys::user_access_key_prefix(account, name))?.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete access keys first.",
        ));
    }
    if !user.inline_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !user.attached_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    if !scan_keys(&*txn, &keys::user_group_prefix(account, name))?.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must remove user from all groups first.",
        ));
    }
    if let Some(b) = &user.permissions_boundary
        && let Some(m) = super::policies::resolve(&*txn, account, b)?
    {
        txn.delete(&keys::boundary_use(account, &m.index_ref(), "user", name))?;
    }
    txn.delete(&keys::user(account, name))?;
    txn.delete(&keys::unique_id(account, &user.user_id))?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_users(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
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
        "iam:ListUsers",
        &format!("arn:aws:iam::{account}:user{prefix}"),
    )?;
    let users: Vec<UserRecord> = scan_all::<UserRecord>(&*txn, &keys::user_prefix(account))?
        .into_iter()
        .map(|(_, u)| u)
        .filter(|u| u.path.starts_with(prefix))
        .collect();
    let (items, next) = page.apply(users, |u| u.name.to_lowercase());
    let mut w = XmlWriter::new();
    w.open("Users");
    for u in &items {
        write_user(&mut w, u, account, "member", false);
    }
    w.close("Users");
    write_page_end(&mut w, next.as_deref());
    Ok(Some(w.finish()))
}

/// `UpdateUser`: a new path and/or a new name. Renaming moves every record and index that is
/// keyed by the user's name, in the same transaction.
pub(crate) fn update_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = user_name(p, "UserName")?;
    let new_path = p.get("NewPath");
    let new_name = p.get("NewUserName");
    let mut check = Check::new();
    check.path("NewPath", new_path);
    check.name("NewUserName", new_name, 64);
    check.finish()?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut user = authorized_user(s, &*txn, ctx, name, "iam:UpdateUser")?;
    let old_name = user.name.clone();
    if let Some(path) = new_path {
        user.path = path.to_string();
    }
    let renamed = new_name.filter(|n| *n != old_name.as_str());
    if let Some(n) = renamed {
        // IAM requires permission on both the source and the target of a rename.
        authorize(
            s,
            &*txn,
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
    Ok(None)
}

pub(crate) fn tag_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = user_name(p, "UserName")?;
    let tags = parse_tags(p, "Tags")?;
    let mut txn = s.store().begin_write()?;
    let mut user = authorized_user(s, &*txn, ctx, name, "iam:TagUser")?;
    merge_tags(&mut user.tags, tags);
    if user.tags.len() > 50 {
        return Err(limit_exceeded("Cannot exceed quota for TagsPerUser: 50"));
    }
    record::put(&mut *txn, &keys::user(&ctx.caller.account, name), &user)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn untag_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = user_name(p, "UserName")?;
    let remove: Vec<String> = p.list("TagKeys").iter().map(|k| k.to_lowercase()).collect();
    let mut txn = s.store().begin_write()?;
    let mut user = authorized_user(s, &*txn, ctx, name, "iam:UntagUser")?;
    user.tags
        .retain(|(k, _)| !remove.contains(&k.to_lowercase()));
    record::put(&mut *txn, &keys::user(&ctx.caller.account, name), &user)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_user_tags(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    let name = user_name(p, "UserName")?;
    let page = Page::from_params(p)?;
    let txn = s.store().begin_read()?;
    let user = authorized_user(s, &*txn, ctx, name, "iam:ListUserTags")?;
    let (items, next) = page.apply(user.tags, |(k, _)| k.clone());
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
