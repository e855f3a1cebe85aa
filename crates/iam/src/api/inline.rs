//! Inline policies of users, groups and roles (`Put/Get/Delete/List{User,Group,Role}Policies`).
//! The aggregate size of an entity's inline policies, whitespace excluded, is capped at
//! 2,048 (user), 5,120 (group) and 10,240 (role) characters (IAM and AWS STS quotas).

use tresor_policy::{Policy, PolicyKind, non_whitespace_len};
use tresor_store::ReadTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::pagination::{Page, write_list};
use super::{
    Check, IamResult, PolicyHolder, authorized, encode_document, limit_exceeded, name_param,
    no_such_entity, policy_error,
};
use crate::error::IamError;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// The `<Kind>Name` request member of a policy operation. Checked against 128 characters
/// for every kind (roles included), as tresor always has.
pub(crate) fn holder_name<E: PolicyHolder>(p: &QueryParams) -> Result<&str, IamError> {
    name_param(p, E::KIND.name_member(), 128)
}

/// The entity named by `<Kind>Name`, after authorizing `action` on it.
pub(crate) fn authorized_holder<E: PolicyHolder>(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    p: &QueryParams,
    action: &str,
) -> Result<E, IamError> {
    authorized(s, txn, ctx, holder_name::<E>(p)?, action)
}

fn policy_name(p: &QueryParams) -> Result<&str, IamError> {
    name_param(p, "PolicyName", 128)
}

fn not_found<E: PolicyHolder>(policy: &str) -> IamError {
    no_such_entity(format!(
        "The {} policy with name {policy} cannot be found.",
        E::KIND.word()
    ))
}

pub(crate) fn put_policy<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let name = policy_name(p)?;
    let doc = p.required("PolicyDocument")?;
    let mut check = Check::new();
    check.length("PolicyDocument", Some(doc), 1, 131_072);
    check.finish()?;
    let action = format!("iam:Put{}Policy", E::KIND.title());
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_holder(s, &*txn, ctx, p, &action)?;
    Policy::parse(doc, PolicyKind::Identity).map_err(policy_error::<IamError>)?;
    let others: usize = entity
        .inline()
        .iter()
        .filter(|(n, _)| n.as_str() != name)
        .map(|(n, d)| non_whitespace_len(n) + non_whitespace_len(d))
        .sum();
    if others + non_whitespace_len(name) + non_whitespace_len(doc) > E::INLINE_LIMIT {
        return Err(limit_exceeded(format!(
            "Maximum policy size of {} bytes exceeded for {} {}.",
            E::INLINE_LIMIT,
            E::KIND.word(),
            entity.name()
        )));
    }
    entity
        .inline_mut()
        .insert(name.to_string(), doc.to_string());
    let key = E::KIND.key(&ctx.caller.account, entity.name());
    record::put(&mut *txn, &key, &entity)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn get_policy<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let name = policy_name(p)?;
    let action = format!("iam:Get{}Policy", E::KIND.title());
    let txn = s.store().begin_read()?;
    let entity: E = authorized_holder(s, &*txn, ctx, p, &action)?;
    let doc = entity
        .inline()
        .get(name)
        .ok_or_else(|| not_found::<E>(name))?;
    let mut w = XmlWriter::new();
    w.elem(E::KIND.name_member(), entity.name())
        .elem("PolicyName", name)
        .elem("PolicyDocument", &encode_document(doc));
    Ok(Some(w.finish()))
}

pub(crate) fn delete_policy<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let name = policy_name(p)?;
    let action = format!("iam:Delete{}Policy", E::KIND.title());
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_holder(s, &*txn, ctx, p, &action)?;
    if entity.inline_mut().remove(name).is_none() {
        return Err(not_found::<E>(name));
    }
    let key = E::KIND.key(&ctx.caller.account, entity.name());
    record::put(&mut *txn, &key, &entity)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_policies<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let page = Page::from_params(p)?;
    let action = format!("iam:List{}Policies", E::KIND.title());
    let txn = s.store().begin_read()?;
    let entity: E = authorized_holder(s, &*txn, ctx, p, &action)?;
    let names: Vec<String> = entity.inline().keys().cloned().collect();
    let (items, next) = page.apply(names, Clone::clone);
    let mut w = XmlWriter::new();
    write_list(&mut w, "PolicyNames", &items, next.as_deref(), |w, n| {
        w.elem("member", n);
        Ok(())
    })?;
    Ok(Some(w.finish()))
}
