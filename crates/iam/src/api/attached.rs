//! Managed policy attachments (`Attach/Detach/ListAttached{User,Group,Role}Policies`) and
//! permissions boundaries (`Put/Delete{User,Role}PermissionsBoundary`). An entity holds at
//! most 10 managed policies (IAM and AWS STS quotas, default); every attachment is mirrored
//! in the policy's attachment index in the same transaction.

use serde::Serialize;

use super::check::Check;
use super::entity::{PolicyHolder, authorized_in_context};
use super::errors::{limit_exceeded, no_such_entity};
use super::inline::{authorized_holder, check_holder_name};
use super::kind_input::kind_inputs;
use super::pagination::Page;
use super::policies::check_boundary;
use super::policies::resolve;
use crate::error::IamError;
use crate::keys;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// Managed policies per user, group or role (default quota).
const MAX_ATTACHED: usize = 10;

kind_inputs! {
    /// `Attach{User,Group,Role}Policy` and `Detach{User,Group,Role}Policy`.
    pub struct PolicyArnInput {
        pub policy_arn: String,
    }
    UserPolicyArnInput => "UserName",
    GroupPolicyArnInput => "GroupName",
    RolePolicyArnInput => "RoleName",
}

kind_inputs! {
    /// `ListAttached{User,Group,Role}Policies`.
    pub struct ListAttachedInput {
        pub path_prefix: Option<String>,
        pub marker: Option<String>,
        pub max_items: Option<i64>,
    }
    ListAttachedUserPoliciesInput => "UserName",
    ListAttachedGroupPoliciesInput => "GroupName",
    ListAttachedRolePoliciesInput => "RoleName",
}

kind_inputs! {
    /// `Put{User,Role}PermissionsBoundary`.
    pub struct PutBoundaryInput {
        pub permissions_boundary: String,
    }
    PutUserPermissionsBoundaryInput => "UserName",
    PutRolePermissionsBoundaryInput => "RoleName",
}

kind_inputs! {
    /// `Delete{User,Role}PermissionsBoundary`.
    pub struct DeleteBoundaryInput {}
    DeleteUserPermissionsBoundaryInput => "UserName",
    DeleteRolePermissionsBoundaryInput => "RoleName",
}

/// `AttachedPolicy`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachedPolicy {
    pub policy_name: String,
    pub policy_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAttachedOutput {
    pub attached_policies: Vec<AttachedPolicy>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

fn check_policy_arn(member: &str, arn: &str) -> Result<(), IamError> {
    let mut check = Check::new();
    check.length(member, Some(arn), 20, 2048);
    check.finish()
}

/// Authorizes `action` on the entity `name` with `iam:PolicyARN` (or
/// `iam:PermissionsBoundary`) in the request context, then reads it.
fn authorized_with_policy<E: PolicyHolder>(
    s: &Services,
    txn: &dyn tresor_store::ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
    context_key: &str,
    arn: &str,
) -> Result<E, IamError> {
    check_holder_name::<E>(name)?;
    let context = vec![(context_key.to_string(), arn.to_string())];
    authorized_in_context(s, txn, ctx, name, action, context)
}

pub fn attach<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyArnInput,
) -> Result<(), IamError> {
    let arn = input.policy_arn;
    check_policy_arn("PolicyArn", &arn)?;
    let action = format!("iam:Attach{}Policy", E::KIND.title());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut entity: E =
        authorized_with_policy(s, &*txn, ctx, &input.name, &action, "iam:PolicyARN", &arn)?;
    let policy = resolve(&*txn, account, &arn)?.ok_or_else(|| {
        no_such_entity(format!("Policy {arn} does not exist or is not attachable."))
    })?;
    let canonical = policy.arn(account);
    if entity.attached().iter().any(|a| a == &canonical) {
        return Ok(());
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
    Ok(())
}

pub fn detach<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyArnInput,
) -> Result<(), IamError> {
    let arn = input.policy_arn;
    check_policy_arn("PolicyArn", &arn)?;
    let action = format!("iam:Detach{}Policy", E::KIND.title());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut entity: E =
        authorized_with_policy(s, &*txn, ctx, &input.name, &action, "iam:PolicyARN", &arn)?;
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
    Ok(())
}

pub fn list_attached<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: ListAttachedInput,
) -> Result<ListAttachedOutput, IamError> {
    let prefix = input.path_prefix.as_deref().unwrap_or("/");
    let mut check = Check::new();
    check.policy_path("PathPrefix", Some(prefix));
    check.finish()?;
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let action = format!("iam:ListAttached{}Policies", E::KIND.title());
    let txn = s.store().begin_read()?;
    let entity: E = authorized_holder(s, &*txn, ctx, &input.name, &action)?;
    let mut attached = Vec::new();
    for arn in entity.attached() {
        if let Some(m) = resolve(&*txn, &ctx.caller.account, arn)?
            && m.path().starts_with(prefix)
        {
            attached.push((m.name().to_string(), arn.clone(), m.index_ref()));
        }
    }
    let (items, next) = page.apply(attached, |(_, _, r)| r.clone());
    Ok(ListAttachedOutput {
        attached_policies: items
            .into_iter()
            .map(|(policy_name, policy_arn, _)| AttachedPolicy {
                policy_name,
                policy_arn,
            })
            .collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}

pub fn put_boundary<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: PutBoundaryInput,
) -> Result<(), IamError> {
    let arn = input.permissions_boundary;
    check_policy_arn("PermissionsBoundary", &arn)?;
    let action = format!("iam:Put{}PermissionsBoundary", E::KIND.title());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_with_policy(
        s,
        &*txn,
        ctx,
        &input.name,
        &action,
        "iam:PermissionsBoundary",
        &arn,
    )?;
    let new_ref = check_boundary(&*txn, account, &arn)?;
    let name = entity.name().to_string();
    let Some(slot) = entity.boundary_mut() else {
        return Err(super::errors::invalid_input(
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
    Ok(())
}

pub fn delete_boundary<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: DeleteBoundaryInput,
) -> Result<(), IamError> {
    let action = format!("iam:Delete{}PermissionsBoundary", E::KIND.title());
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_holder(s, &*txn, ctx, &input.name, &action)?;
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
    Ok(())
}
