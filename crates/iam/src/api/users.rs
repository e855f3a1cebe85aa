//! IAM users: `CreateUser` … `UpdateUser` and user tags. `GetUser` without a name answers for
//! the caller. A user cannot be deleted while it has access keys, policies or group
//! memberships (IAM's `DeleteConflict`).

use std::collections::BTreeMap;

use tresor_crypto::ids;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::entities::{
    create_context, delete_entity, insert_entity, list_entities, refuse_if_any, refuse_if_policies,
};
use super::roles::check_boundary;
use super::{
    Check, EntityKind, IamResult, authorize, authorize_with, authorized, iso, name_param,
    parse_tags, scan_keys, validation, write_boundary, write_entity_head, write_tags,
};
use crate::error::IamError;
use crate::identity::{AccessKeyRecord, FORMAT, KeyOwner, UserRecord};
use crate::keys;
use tresor_core::Services;
use tresor_core::authz::AuthzRequest;
use tresor_core::ctx::{CallerKind, RequestCtx};
use tresor_core::record;

/// The `User` structure; `full` (GetUser) adds the boundary and tags.
pub(crate) fn write_user(
    w: &mut XmlWriter,
    user: &UserRecord,
    account: &str,
    tag: &str,
    full: bool,
) {
    write_entity_head(w, user, account, tag);
    if full {
        write_boundary(w, user.permissions_boundary.as_deref());
        write_tags(w, &user.tags);
    }
    w.close(tag);
}

fn user_name(p: &QueryParams) -> Result<&str, IamError> {
    name_param(p, "UserName", EntityKind::User.name_max())
}

pub(crate) fn create_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
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
    req.context = create_context(boundary, &tags);
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
    let mut w = XmlWriter::new();
    write_user(&mut w, &user, account, "User", true);
    Ok(Some(w.finish()))
}

pub(crate) fn get_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
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
            authorize(s, ctx, "iam:GetUser", &ctx.caller.arn)?;
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
    let user = authorized::<UserRecord>(s, &*txn, ctx, &name, "iam:GetUser")?;
    let mut w = XmlWriter::new();
    write_user(&mut w, &user, account, "User", true);
    Ok(Some(w.finish()))
}

pub(crate) fn delete_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let account = &ctx.caller.account;
    delete_entity(s, ctx, p, |txn, user: &UserRecord| {
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

pub(crate) fn list_users(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    list_entities(s, ctx, p, |w, _, u: &UserRecord, account| {
        write_user(w, u, account, "member", false);
        Ok(())
    })
}

/// `UpdateUser`: a new path and/or a new name. Renaming moves every record and index that is
/// keyed by the user's name, in the same transaction.
pub(crate) fn update_user(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = user_name(p)?;
    let new_path = p.get("NewPath");
    let new_name = p.get("NewUserName");
    let mut check = Check::new();
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
    Ok(None)
}
