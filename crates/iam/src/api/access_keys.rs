//! Long-term access keys of IAM users: at most two per user; the secret is returned once,
//! by `CreateAccessKey`, and stored sealed under the root key. An `Inactive` key stops
//! authenticating at once (`identity::resolve_credential` checks the status).

use tresor_crypto::ids;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::pagination::{Page, write_page_end};
use super::{
    Check, IamResult, authorized, caller_user_name, iso, limit_exceeded, no_such_entity, scan_keys,
};
use crate::error::IamError;
use crate::identity::{AccessKeyRecord, FORMAT, KeyOwner, KeyStatus, UserRecord, seal_secret};
use crate::keys;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// Access keys per user (IAM and AWS STS quotas).
const MAX_KEYS_PER_USER: usize = 2;

fn status_str(s: KeyStatus) -> &'static str {
    match s {
        KeyStatus::Active => "Active",
        KeyStatus::Inactive => "Inactive",
    }
}

fn user_param(ctx: &RequestCtx, p: &QueryParams) -> Result<String, IamError> {
    let given = p.get("UserName");
    let mut check = Check::new();
    check.name("UserName", given, 128);
    check.finish()?;
    caller_user_name(ctx, given)
}

fn key_id(p: &QueryParams) -> Result<&str, IamError> {
    let id = p.required("AccessKeyId")?;
    let mut check = Check::new();
    check.length("AccessKeyId", Some(id), 16, 128);
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        check.pattern("AccessKeyId", id, r"[\w]+");
    }
    check.finish()?;
    Ok(id)
}

fn key_not_found(id: &str) -> IamError {
    no_such_entity(format!("The Access Key with id {id} cannot be found."))
}

/// The key `id` if it belongs to user `user` of `account`.
fn owned_key(
    txn: &dyn tresor_store::ReadTxn,
    account: &str,
    user: &str,
    id: &str,
) -> Result<AccessKeyRecord, IamError> {
    let key = record::get::<AccessKeyRecord>(txn, &keys::access_key(id))?;
    match key {
        Some(k)
            if k.account == account
                && matches!(&k.owner, KeyOwner::User { name } if name.eq_ignore_ascii_case(user)) =>
        {
            Ok(k)
        }
        _ => Err(key_not_found(id)),
    }
}

pub(crate) fn create_access_key(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = user_param(ctx, p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let user = authorized::<UserRecord>(s, &*txn, ctx, &name, "iam:CreateAccessKey")?;
    if scan_keys(&*txn, &keys::user_access_key_prefix(account, &user.name))?.len()
        >= MAX_KEYS_PER_USER
    {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"
        )));
    }
    let access_key_id = ids::access_key_id("AKIA");
    let secret = ids::secret_access_key();
    let sealed = seal_secret(s.root_key(), &access_key_id, secret.as_bytes())?;
    record::put(
        &mut *txn,
        &keys::access_key(&access_key_id),
        &AccessKeyRecord {
            v: FORMAT,
            account: account.clone(),
            owner: KeyOwner::User {
                name: user.name.clone(),
            },
            status: KeyStatus::Active,
            created: ctx.now,
            secret_sealed: sealed,
        },
    )?;
    txn.put(
        &keys::user_access_key(account, &user.name, &access_key_id),
        b"",
    )?;
    txn.commit()?;
    let mut w = XmlWriter::new();
    w.open("AccessKey")
        .elem("UserName", &user.name)
        .elem("AccessKeyId", &access_key_id)
        .elem("Status", "Active")
        .elem("SecretAccessKey", secret.as_str())
        .elem("CreateDate", &iso(ctx.now))
        .close("AccessKey");
    Ok(Some(w.finish()))
}

pub(crate) fn delete_access_key(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = user_param(ctx, p)?;
    let id = key_id(p)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let user = authorized::<UserRecord>(s, &*txn, ctx, &name, "iam:DeleteAccessKey")?;
    owned_key(&*txn, account, &user.name, id)?;
    txn.delete(&keys::access_key(id))?;
    txn.delete(&keys::user_access_key(account, &user.name, id))?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn update_access_key(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = user_param(ctx, p)?;
    let id = key_id(p)?;
    let status = p.required("Status")?;
    let mut check = Check::new();
    check.enumeration("Status", Some(status), &["Active", "Inactive", "Expired"]);
    check.finish()?;
    let status = match status {
        "Active" => KeyStatus::Active,
        "Inactive" => KeyStatus::Inactive,
        _ => {
            return Err(super::invalid_input(
                "The Status Expired cannot be set on an access key.",
            ));
        }
    };
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let user = authorized::<UserRecord>(s, &*txn, ctx, &name, "iam:UpdateAccessKey")?;
    let mut key = owned_key(&*txn, account, &user.name, id)?;
    key.status = status;
    record::put(&mut *txn, &keys::access_key(id), &key)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_access_keys(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> IamResult {
    let name = user_param(ctx, p)?;
    let page = Page::from_params(p)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let user = authorized::<UserRecord>(s, &*txn, ctx, &name, "iam:ListAccessKeys")?;
    let mut found = Vec::new();
    for (key, _) in scan_keys(&*txn, &keys::user_access_key_prefix(account, &user.name))? {
        let Some(id) = key.rsplit('/').next() else {
            continue;
        };
        if let Some(k) = record::get::<AccessKeyRecord>(&*txn, &keys::access_key(id))? {
            found.push((id.to_string(), k));
        }
    }
    let (items, next) = page.apply(found, |(id, _)| id.clone());
    let mut w = XmlWriter::new();
    w.open("AccessKeyMetadata");
    for (id, k) in &items {
        w.open("member")
            .elem("UserName", &user.name)
            .elem("AccessKeyId", id)
            .elem("Status", status_str(k.status))
            .elem("CreateDate", &iso(k.created))
            .close("member");
    }
    w.close("AccessKeyMetadata");
    write_page_end(&mut w, next.as_deref());
    Ok(Some(w.finish()))
}

/// `GetAccessKeyLastUsed`. tresor does not record key use (that would be a write on every
/// request), so every key reports what IAM reports for a key never used: `ServiceName` and
/// `Region` `N/A` and no `LastUsedDate` (IAM API reference, AccessKeyLastUsed).
pub(crate) fn get_access_key_last_used(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let id = key_id(p)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let key = record::get::<AccessKeyRecord>(&*txn, &keys::access_key(id))?
        .filter(|k| &k.account == account);
    let owner = match key.as_ref().map(|k| &k.owner) {
        Some(KeyOwner::User { name }) => Some(name.clone()),
        _ => None,
    };
    let Some(owner) = owner else {
        super::authorize(
            s,
            ctx,
            "iam:GetAccessKeyLastUsed",
            &format!("arn:aws:iam::{account}:user/*"),
        )?;
        return Err(key_not_found(id));
    };
    let user = authorized::<UserRecord>(s, &*txn, ctx, &owner, "iam:GetAccessKeyLastUsed")?;
    let mut w = XmlWriter::new();
    w.elem("UserName", &user.name);
    w.open("AccessKeyLastUsed")
        .elem("ServiceName", "N/A")
        .elem("Region", "N/A")
        .close("AccessKeyLastUsed");
    Ok(Some(w.finish()))
}
