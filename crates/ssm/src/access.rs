//! Loading parameters and asking the Authorizer. Every operation names its IAM action
//! (`ssm:<Op>`), the parameter ARN and the condition keys; access is decided by
//! [`Services::authorize`], never here.
//!
//! Authorization comes before existence: a caller without permission gets
//! `AccessDeniedException` whether or not the parameter exists, and the resource in the
//! message is the ARN derived from the name as supplied.

use crate::errors::SsmError;
use tresor_core::authz::AuthzRequest;
use tresor_core::record;
use tresor_core::{RequestCtx, Services};
use tresor_store::{ReadTxn, WriteTxn};

use crate::errors;
use crate::model::{ParameterRecord, VersionRecord, keys};
use crate::names::{Selector, arn_in};

pub fn load_version(
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    version: i64,
) -> Result<Option<VersionRecord>, SsmError> {
    record::get(
        txn,
        &keys::version(&ctx.caller.account, &ctx.region, name, version),
    )
    .map_err(errors::internal)
}

/// `aws:ResourceTag/<k>` and `ssm:resourceTag/<k>` of an existing parameter (Service
/// Authorization Reference, Systems Manager condition keys).
pub fn resource_tag_context(rec: Option<&ParameterRecord>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in rec.map(|r| r.tags.as_slice()).unwrap_or_default() {
        out.push((format!("aws:ResourceTag/{k}"), v.clone()));
        out.push((format!("ssm:resourceTag/{k}"), v.clone()));
    }
    out
}

/// `aws:RequestTag/<k>` and `aws:TagKeys` of tags in a request.
pub fn request_tag_context<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in tags {
        out.push((format!("aws:RequestTag/{k}"), v.to_string()));
        out.push(("aws:TagKeys".to_string(), k.to_string()));
    }
    out
}

pub fn authorize(
    services: &Services,
    ctx: &RequestCtx,
    action: &str,
    resource: &str,
    context: Vec<(String, String)>,
) -> Result<(), SsmError> {
    services
        .authorize(
            ctx,
            &AuthzRequest {
                action,
                resource,
                context: tresor_core::owned_conditions(context),
                resource_policy: None,
            },
        )
        .map_err(Into::into)
}

/// Loads parameter `name` and authorizes `action` on its ARN (derived from the name as
/// supplied, so before existence is known) with the parameter's resource-tag condition keys
/// and `extra`.
pub fn load_authorized(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    action: &str,
    name: &str,
    extra: Vec<(String, String)>,
) -> Result<Option<ParameterRecord>, SsmError> {
    // Through the snapshot-tagged record cache: decoded once per committed change, not per
    // read (a write transaction always reads the store itself).
    let rec = services
        .records()
        .get::<ParameterRecord>(txn, &keys::param(&ctx.caller.account, &ctx.region, name))
        .map_err(errors::internal)?
        .map(|r| (*r).clone());
    let mut context = resource_tag_context(rec.as_ref());
    context.extend(extra);
    authorize(services, ctx, action, &arn_in(ctx, name), context)?;
    Ok(rec)
}

/// Begins the write transaction of an operation only for a caller who passes `check`.
///
/// `check` loads what the operation needs and asks the Authorizer; it runs first on a read
/// snapshot, so a request that will be refused never waits for — or holds — the store's one
/// writer. It then runs again inside the write transaction, so a change committed in between
/// (a tag revoking access, a deletion) cannot slip through; the second run is what the
/// caller gets. Both runs are cheap: records come from the cache, and the Authorizer caches
/// its policies.
pub fn begin_authorized_write<'s, T>(
    services: &'s Services,
    check: impl Fn(&dyn ReadTxn) -> Result<T, SsmError>,
) -> Result<(Box<dyn WriteTxn + 's>, T), SsmError> {
    {
        let snapshot = services.store().begin_read().map_err(errors::internal)?;
        check(&*snapshot)?;
    }
    let txn = services.store().begin_write().map_err(errors::internal)?;
    let out = check(&*txn)?;
    Ok((txn, out))
}

/// Stores the parameter record of `name` and commits the transaction.
pub fn save_and_commit(
    mut txn: Box<dyn WriteTxn + '_>,
    ctx: &RequestCtx,
    name: &str,
    rec: &ParameterRecord,
) -> Result<(), SsmError> {
    record::put(
        &mut *txn,
        &keys::param(&ctx.caller.account, &ctx.region, name),
        rec,
    )
    .map_err(errors::internal)?;
    txn.commit().map_err(errors::internal)
}

/// The version a selector names (the latest without one).
pub fn select_version(rec: &ParameterRecord, selector: Option<&Selector>) -> Result<i64, SsmError> {
    match selector {
        None => Ok(rec.version),
        Some(Selector::Version(v)) => {
            if *v >= rec.oldest_version && *v <= rec.version {
                Ok(*v)
            } else {
                Err(errors::version_not_found(&rec.name, *v))
            }
        }
        Some(Selector::Label(l)) => rec
            .labels
            .get(l)
            .copied()
            .ok_or_else(|| errors::label_not_found(&rec.name, l)),
    }
}
