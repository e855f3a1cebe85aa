//! Inline policies of users, groups and roles (`Put/Get/Delete/List{User,Group,Role}Policies`).
//! The aggregate size of an entity's inline policies, whitespace excluded, is capped at
//! 2,048 (user), 5,120 (group) and 10,240 (role) characters (IAM and AWS STS quotas).

use tresor_policy::{Policy, PolicyKind, non_whitespace_len};
use tresor_store::ReadTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::pagination::{Page, write_page_end};
use super::{
    Check, OpResult, PolicyHolder, authorize, encode_document, limit_exceeded, lookup,
    no_such_entity, policy_error,
};
use crate::ctx::RequestCtx;
use crate::dispatch::Services;
use crate::error::ServiceError;
use crate::record;

/// The entity named by `<Kind>Name`, after authorizing `action` on it.
pub(crate) fn authorized_holder<E: PolicyHolder>(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    p: &QueryParams,
    action: &str,
) -> Result<E, ServiceError> {
    let member = E::KIND.name_member();
    let name = p.required(member)?;
    let mut check = Check::new();
    check.name(member, Some(name), 128);
    check.finish()?;
    let (entity, arn) = lookup::<E>(txn, &ctx.caller.account, name)?;
    authorize(s, txn, ctx, action, &arn)?;
    entity.ok_or_else(|| E::KIND.not_found(name))
}

fn policy_name(p: &QueryParams) -> Result<&str, ServiceError> {
    let name = p.required("PolicyName")?;
    let mut check = Check::new();
    check.name("PolicyName", Some(name), 128);
    check.finish()?;
    Ok(name)
}

fn not_found<E: PolicyHolder>(policy: &str) -> ServiceError {
    no_such_entity(format!(
        "The {} policy with name {policy} cannot be found.",
        E::KIND.word()
    ))
}

pub(crate) fn put_policy<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> OpResult {
    let name = policy_name(p)?;
    let doc = p.required("PolicyDocument")?;
    let mut check = Check::new();
    check.length("PolicyDocument", Some(doc), 1, 131_072);
    check.finish()?;
    let action = format!("iam:Put{}Policy", E::KIND.title());
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_holder(s, &*txn, ctx, p, &action)?;
    Policy::parse(doc, PolicyKind::Identity).map_err(policy_error)?;
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
) -> OpResult {
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
) -> OpResult {
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
) -> OpResult {
    let page = Page::from_params(p)?;
    let action = format!("iam:List{}Policies", E::KIND.title());
    let txn = s.store().begin_read()?;
    let entity: E = authorized_holder(s, &*txn, ctx, p, &action)?;
    let names: Vec<String> = entity.inline().keys().cloned().collect();
    let (items, next) = page.apply(names, Clone::clone);
    let mut w = XmlWriter::new();
    w.open("PolicyNames");
    for n in &items {
        w.elem("member", n);
    }
    w.close("PolicyNames");
    write_page_end(&mut w, next.as_deref());
    Ok(Some(w.finish()))
}
