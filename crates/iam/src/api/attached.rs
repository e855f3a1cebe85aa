//! Managed policy attachments (`Attach/Detach/ListAttached{User,Group,Role}Policies`) and
//! permissions boundaries (`Put/Delete{User,Role}PermissionsBoundary`). An entity holds at
//! most 10 managed policies (IAM and AWS STS quotas, default); every attachment is mirrored
//! in the policy's attachment index in the same transaction.

use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use super::inline::{authorized_holder, holder_name};
use super::pagination::{Page, write_list};
use super::policies::resolve;
use super::roles::check_boundary;
use super::{
    Check, IamResult, PolicyHolder, authorized_in_context, limit_exceeded, no_such_entity,
};
use crate::error::IamError;
use crate::keys;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// Managed policies per user, group or role (default quota).
const MAX_ATTACHED: usize = 10;

fn policy_arn(p: &QueryParams, member: &str) -> Result<String, IamError> {
    let arn = p.required(member)?;
    let mut check = Check::new();
    check.length(member, Some(arn), 20, 2048);
    check.finish()?;
    Ok(arn.to_string())
}

/// Authorizes `action` on the entity with `iam:PolicyARN` (or `iam:PermissionsBoundary`) in
/// the request context, then reads it.
fn authorized_with_policy<E: PolicyHolder>(
    s: &Services,
    txn: &dyn tresor_store::ReadTxn,
    ctx: &RequestCtx,
    p: &QueryParams,
    action: &str,
    context_key: &str,
    arn: &str,
) -> Result<E, IamError> {
    let context = vec![(context_key.to_string(), arn.to_string())];
    authorized_in_context(s, txn, ctx, holder_name::<E>(p)?, action, context)
}

pub(crate) fn attach<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let arn = policy_arn(p, "PolicyArn")?;
    let action = format!("iam:Attach{}Policy", E::KIND.title());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_with_policy(s, &*txn, ctx, p, &action, "iam:PolicyARN", &arn)?;
    let policy = resolve(&*txn, account, &arn)?.ok_or_else(|| {
        no_such_entity(format!("Policy {arn} does not exist or is not attachable."))
    })?;
    let canonical = policy.arn(account);
    if entity.attached().iter().any(|a| a == &canonical) {
        return Ok(None);
    }
    if entity.attached().len() >= MAX_ATTACHED {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for PoliciesPer{}: {MAX_ATTACHED}",
            E::KIND.title()
        )));
    }
    entity.attached_mut().push(canonical);
    let name = entity.name().to_string();
    record::put(&mut *txn, &E::KIND.key(account, &name), &entity)?;
    txn.put(
        &keys::policy_attachment(account, &policy.index_ref(), E::KIND.word(), &name),
        name.as_bytes(),
    )?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn detach<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let arn = policy_arn(p, "PolicyArn")?;
    let action = format!("iam:Detach{}Policy", E::KIND.title());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_with_policy(s, &*txn, ctx, p, &action, "iam:PolicyARN", &arn)?;
    let before = entity.attached().len();
    entity.attached_mut().retain(|a| a != &arn);
    if entity.attached().len() == before {
        return Err(no_such_entity(format!("Policy {arn} was not found.")));
    }
    let name = entity.name().to_string();
    record::put(&mut *txn, &E::KIND.key(account, &name), &entity)?;
    if let Some(policy) = resolve(&*txn, account, &arn)? {
        txn.delete(&keys::policy_attachment(
            account,
            &policy.index_ref(),
            E::KIND.word(),
            &name,
        ))?;
    }
    txn.commit()?;
    Ok(None)
}

pub(crate) fn list_attached<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let prefix = p.get("PathPrefix").unwrap_or("/");
    let mut check = Check::new();
    check.policy_path("PathPrefix", Some(prefix));
    check.finish()?;
    let page = Page::from_params(p)?;
    let action = format!("iam:ListAttached{}Policies", E::KIND.title());
    let txn = s.store().begin_read()?;
    let entity: E = authorized_holder(s, &*txn, ctx, p, &action)?;
    let mut attached = Vec::new();
    for arn in entity.attached() {
        if let Some(m) = resolve(&*txn, &ctx.caller.account, arn)?
            && m.path().starts_with(prefix)
        {
            attached.push((m.name().to_string(), arn.clone(), m.index_ref()));
        }
    }
    let (items, next) = page.apply(attached, |(_, _, r)| r.clone());
    let mut w = XmlWriter::new();
    write_list(
        &mut w,
        "AttachedPolicies",
        &items,
        next.as_deref(),
        |w, (name, arn, _)| {
            w.open("member")
                .elem("PolicyName", name)
                .elem("PolicyArn", arn)
                .close("member");
            Ok(())
        },
    )?;
    Ok(Some(w.finish()))
}

pub(crate) fn put_boundary<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let arn = policy_arn(p, "PermissionsBoundary")?;
    let action = format!("iam:Put{}PermissionsBoundary", E::KIND.title());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut entity: E =
        authorized_with_policy(s, &*txn, ctx, p, &action, "iam:PermissionsBoundary", &arn)?;
    let new_ref = check_boundary(&*txn, account, &arn)?;
    let name = entity.name().to_string();
    let Some(slot) = entity.boundary_mut() else {
        return Err(super::invalid_input(
            "Permissions boundaries apply only to users and roles.",
        ));
    };
    let old = slot.replace(arn.clone());
    if let Some(old) = old
        && let Some(m) = resolve(&*txn, account, &old)?
    {
        txn.delete(&keys::boundary_use(
            account,
            &m.index_ref(),
            E::KIND.word(),
            &name,
        ))?;
    }
    txn.put(
        &keys::boundary_use(account, &new_ref, E::KIND.word(), &name),
        name.as_bytes(),
    )?;
    record::put(&mut *txn, &E::KIND.key(account, &name), &entity)?;
    txn.commit()?;
    Ok(None)
}

pub(crate) fn delete_boundary<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> IamResult {
    let action = format!("iam:Delete{}PermissionsBoundary", E::KIND.title());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_holder(s, &*txn, ctx, p, &action)?;
    let name = entity.name().to_string();
    let old = entity.boundary_mut().and_then(Option::take);
    if let Some(old) = old {
        if let Some(m) = resolve(&*txn, account, &old)? {
            txn.delete(&keys::boundary_use(
                account,
                &m.index_ref(),
                E::KIND.word(),
                &name,
            ))?;
        }
        record::put(&mut *txn, &E::KIND.key(account, &name), &entity)?;
    }
    txn.commit()?;
    Ok(None)
}
