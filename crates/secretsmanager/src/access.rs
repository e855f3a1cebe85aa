//! Finding the secret a `SecretId` names and asking the Authorizer about it.
//!
//! `SecretId` is a name, a full ARN, or a partial ARN (the ARN without the `-xxxxxx` suffix)
//! (API reference, "Finding a secret from a partial ARN"). Names are case-sensitive. A full
//! ARN of another account reaches that account's secret (cross-account access needs an ARN).
//!
//! Every operation names its action, the secret ARN and the condition keys
//! (`secretsmanager:SecretId`, `secretsmanager:ResourceTag/<k>`, `aws:ResourceTag/<k>`, …) and
//! passes the secret's resource policy; it never decides access itself. When the secret does
//! not exist the question is asked about the ARN as supplied, so a caller without permission
//! learns nothing about existence.

use std::sync::Arc;

use crate::errors::SecretsManagerError;
use time::OffsetDateTime;
use tresor_core::authz::{AuthzRequest, Condition, ResourcePolicy, cond, owned_conditions};
use tresor_core::{RequestCtx, Services, record};
use tresor_store::{ReadTxn, WriteTxn};

use crate::errors::{self, OrInternal};
use crate::model::{SecretRecord, keys};

/// Where a `SecretId` points.
pub struct Target {
    pub account: String,
    pub region: String,
    /// The ARN to name to the Authorizer when nothing is found.
    pub shown_arn: String,
    candidates: Vec<(String, Option<String>)>,
}

/// Parses `secret_id` into the account/region/names to look for.
pub fn target(ctx: &RequestCtx, secret_id: &str) -> Target {
    if secret_id.starts_with("arn:") {
        return arn_target(secret_id).unwrap_or_else(|| Target {
            account: ctx.caller.account.clone(),
            region: ctx.region.clone(),
            shown_arn: secret_id.to_string(),
            candidates: Vec::new(),
        });
    }
    Target {
        account: ctx.caller.account.clone(),
        region: ctx.region.clone(),
        shown_arn: [
            "arn:",
            tresor_policy::arn::partition_of_region(&ctx.region),
            ":secretsmanager:",
            &ctx.region,
            ":",
            &ctx.caller.account,
            ":secret:",
            secret_id,
        ]
        .concat(),
        candidates: vec![(secret_id.to_string(), None)],
    }
}

/// Where a secret's ARN (`arn:<partition>:secretsmanager:<region>:<account>:secret:<resource>`)
/// points: a full ARN (name + "-" + 6 random characters, matched exactly) or a partial one
/// (the resource is the whole name). `None` when `arn` is not a secret's ARN.
pub(crate) fn arn_target(arn: &str) -> Option<Target> {
    let rest = arn.strip_prefix("arn:")?;
    let parts: Vec<&str> = rest.splitn(6, ':').collect();
    let [
        _partition,
        "secretsmanager",
        region,
        account,
        "secret",
        resource,
    ] = parts.as_slice()
    else {
        return None;
    };
    let mut candidates = Vec::new();
    if let Some((name, suffix)) = resource.rsplit_once('-')
        && suffix.len() == 6
        && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        && !name.is_empty()
    {
        candidates.push((name.to_string(), Some(arn.to_string())));
    }
    candidates.push((resource.to_string(), None));
    Some(Target {
        account: account.to_string(),
        region: region.to_string(),
        shown_arn: arn.to_string(),
        candidates,
    })
}

/// The record a secret's ARN names exactly, if any (no authorization: for the operator's
/// views, e.g. the replication metrics).
pub(crate) fn find_by_arn(
    txn: &dyn ReadTxn,
    arn: &str,
) -> Result<Option<SecretRecord>, tresor_core::error::ServiceError> {
    let Some(t) = arn_target(arn) else {
        return Ok(None);
    };
    for (name, exact) in &t.candidates {
        if exact.is_none() {
            continue;
        }
        let key = keys::secret(&t.account, &t.region, name);
        if let Some(rec) = tresor_core::record::get::<SecretRecord>(txn, &key)?
            && rec.arn == arn
        {
            return Ok(Some(rec));
        }
    }
    Ok(None)
}

/// The secret `secret_id` names, if it exists in the request's region: the decoded record
/// of the record cache, shared rather than copied (a secret record carries up to 100
/// versions' metadata).
pub fn find_shared(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    secret_id: &str,
) -> Result<(Target, Option<Arc<SecretRecord>>), SecretsManagerError> {
    let t = target(ctx, secret_id);
    // A secret lives in one region; an ARN of another region names nothing here.
    if t.region != ctx.region {
        return Ok((t, None));
    }
    for (name, exact_arn) in &t.candidates {
        // Decoded once per snapshot generation (the record cache), not parsed per request.
        let rec = services
            .records()
            .get::<SecretRecord>(txn, &keys::secret(&t.account, &t.region, name))
            .or_internal()?;
        if let Some(rec) = rec
            && exact_arn.as_deref().is_none_or(|a| a == rec.arn)
        {
            return Ok((t, Some(rec)));
        }
    }
    Ok((t, None))
}

/// The condition keys every request about an existing secret carries.
pub fn secret_context(rec: &SecretRecord) -> Vec<Condition<'_>> {
    let mut c = Vec::with_capacity(1 + 2 * rec.tags.len() + 1);
    c.push(cond("secretsmanager:SecretId", rec.arn.as_str()));
    for (k, v) in &rec.tags {
        c.push(cond(
            ["secretsmanager:ResourceTag/", k].concat(),
            v.as_str(),
        ));
        c.push(cond(["aws:ResourceTag/", k].concat(), v.as_str()));
    }
    if let Some(lambda) = &rec.rotation_lambda_arn {
        c.push(cond(
            "secretsmanager:resource/AllowRotationLambdaArn",
            lambda.as_str(),
        ));
    }
    c
}

/// Asks the Authorizer whether the caller may do `action` on `rec`, with `extra` condition
/// keys, evaluating the secret's resource policy.
pub fn authorize(
    services: &Services,
    ctx: &RequestCtx,
    action: &str,
    rec: &SecretRecord,
    extra: Vec<(String, String)>,
) -> Result<(), SecretsManagerError> {
    let mut context = secret_context(rec);
    context.extend(owned_conditions(extra));
    services
        .authorize(
            ctx,
            &AuthzRequest {
                action,
                resource: &rec.arn,
                context,
                resource_policy: rec.policy.as_deref().map(ResourcePolicy::Generic),
            },
        )
        .map_err(Into::into)
}

/// Resolves `secret_id` and authorizes `action` on it. A missing secret is
/// `ResourceNotFoundException`, but only for a caller who would be allowed the action on the
/// ARN as supplied (AWS answers AccessDenied first, naming the resource as supplied).
pub fn load_authorized(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    action: &str,
    secret_id: &str,
    extra: Vec<(String, String)>,
) -> Result<SecretRecord, SecretsManagerError> {
    load_authorized_shared(services, txn, ctx, action, secret_id, extra).map(Arc::unwrap_or_clone)
}

/// [`load_authorized`] sharing the cached record (see [`find_shared`]).
pub fn load_authorized_shared(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    action: &str,
    secret_id: &str,
    extra: Vec<(String, String)>,
) -> Result<Arc<SecretRecord>, SecretsManagerError> {
    let (t, rec) = find_shared(services, txn, ctx, secret_id)?;
    match rec {
        Some(rec) => {
            authorize(services, ctx, action, &rec, extra)?;
            Ok(rec)
        }
        None => {
            let mut context = vec![cond("secretsmanager:SecretId", t.shown_arn.as_str())];
            context.extend(owned_conditions(extra));
            services.authorize(
                ctx,
                &AuthzRequest {
                    action,
                    resource: &t.shown_arn,
                    context,
                    resource_policy: None,
                },
            )?;
            Err(errors::secret_not_found())
        }
    }
}

/// [`load_authorized`] for an operation that changes or reads a live secret: a secret
/// scheduled for deletion is refused with `InvalidRequestException`, after authorization.
pub fn load_live(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    action: &str,
    secret_id: &str,
    extra: Vec<(String, String)>,
) -> Result<SecretRecord, SecretsManagerError> {
    load_live_shared(services, txn, ctx, action, secret_id, extra).map(Arc::unwrap_or_clone)
}

/// [`load_live`] sharing the cached record (see [`find_shared`]).
pub fn load_live_shared(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    action: &str,
    secret_id: &str,
    extra: Vec<(String, String)>,
) -> Result<Arc<SecretRecord>, SecretsManagerError> {
    let rec = load_authorized_shared(services, txn, ctx, action, secret_id, extra)?;
    if rec.is_scheduled_for_deletion() {
        return Err(errors::marked_for_deletion());
    }
    Ok(rec)
}

/// Replicas are read-only: every write is made to the primary, in its region.
pub(crate) fn refuse_replica(rec: &SecretRecord) -> Result<(), SecretsManagerError> {
    match rec.primary_region {
        Some(_) => Err(errors::replica_write()),
        None => Ok(()),
    }
}

/// Authorizes an action that has no resource (`ListSecrets`, `GetRandomPassword`, …).
pub fn authorize_star(
    services: &Services,
    ctx: &RequestCtx,
    action: &str,
) -> Result<(), SecretsManagerError> {
    services
        .authorize(ctx, &AuthzRequest::new(action, "*"))
        .map_err(Into::into)
}

/// Begins the write transaction of an operation only for a caller who passes `check`.
///
/// `check` loads what the operation needs and asks the Authorizer; it runs first on a read
/// snapshot, so a request that will be refused never waits for — or holds — the store's one
/// writer. It then runs again inside the write transaction, so a change committed in between
/// (a policy or a tag revoking access, a deletion) cannot slip through; the second run is
/// what the caller gets. Both runs are cheap: records come from the cache, and the
/// Authorizer caches its policies.
pub(crate) fn begin_authorized_write<'s, T>(
    services: &'s Services,
    check: impl Fn(&dyn ReadTxn) -> Result<T, SecretsManagerError>,
) -> Result<(Box<dyn WriteTxn + 's>, T), SecretsManagerError> {
    {
        let snapshot = services.store().begin_read().or_internal()?;
        check(&*snapshot)?;
    }
    let txn = services.store().begin_write().or_internal()?;
    let out = check(&*txn)?;
    Ok((txn, out))
}

/// The write transaction of an operation whose only input is `SecretId` (validated here),
/// for a caller allowed `action` on it (see [`begin_authorized_write`]).
pub(crate) fn begin_write_on<'s>(
    services: &'s Services,
    ctx: &RequestCtx,
    action: &str,
    secret_id: &str,
) -> Result<(Box<dyn WriteTxn + 's>, SecretRecord), SecretsManagerError> {
    let mut v = tresor_wire::validate::Validator::new();
    crate::validate::secret_id(&mut v, secret_id);
    crate::validate::finish(v)?;
    begin_authorized_write(services, |txn| {
        load_authorized(services, txn, ctx, action, secret_id, vec![])
    })
}

/// Stores `rec` under its key. A primary with replicas gets its next replication sequence
/// number and a replication job per replica region, in the same transaction (the outbox; see
/// [`crate::replication_outbox::enqueue`]).
pub(crate) fn save(txn: &mut dyn WriteTxn, rec: &SecretRecord) -> Result<(), SecretsManagerError> {
    let key = keys::secret(&rec.account, &rec.region, &rec.name);
    if rec.primary_region.is_none() && !rec.replication_status.is_empty() {
        let mut rec = rec.clone();
        crate::replication_outbox::enqueue(txn, &mut rec)?;
        return record::put(txn, &key, &rec).or_internal();
    }
    record::put(txn, &key, rec).or_internal()
}

/// Stamps `rec` as changed at `now`, saves it and commits the transaction.
pub(crate) fn save_changed(
    mut txn: Box<dyn WriteTxn + '_>,
    rec: &mut SecretRecord,
    now: OffsetDateTime,
) -> Result<(), SecretsManagerError> {
    rec.last_changed = now;
    save(&mut *txn, rec)?;
    txn.commit().or_internal()?;
    crate::replication_outbox::committed(rec);
    Ok(())
}

/// Deletes the purge job DeleteSecret scheduled for `rec` at `due`.
pub(crate) fn delete_purge_job(
    txn: &mut dyn WriteTxn,
    rec: &SecretRecord,
    due: OffsetDateTime,
) -> Result<(), SecretsManagerError> {
    txn.delete(&keys::purge_job(
        due.unix_timestamp(),
        &rec.account,
        &rec.region,
        &rec.name,
    ))
    .or_internal()?;
    Ok(())
}

/// Removes a secret, its values and its pending purge job, inside `txn`.
pub(crate) fn purge(txn: &mut dyn WriteTxn, rec: &SecretRecord) -> Result<(), SecretsManagerError> {
    for (version_id, meta) in &rec.versions {
        if meta.has_value {
            txn.delete(&keys::value(
                &rec.account,
                &rec.region,
                &rec.arn,
                version_id,
            ))
            .or_internal()?;
        }
    }
    if let Some(due) = rec.deletion_due {
        delete_purge_job(txn, rec, due)?;
    }
    if let Some(job) = &rec.rotation_job {
        txn.delete(job).or_internal()?;
    }
    txn.delete(&keys::secret(&rec.account, &rec.region, &rec.name))
        .or_internal()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_core::Caller;

    fn ctx() -> RequestCtx {
        RequestCtx {
            request_id: "r".into(),
            region: "eu-west-1".into(),
            now: time::OffsetDateTime::UNIX_EPOCH,
            source_ip: None,
            secure_transport: false,
            caller: std::sync::Arc::new(Caller::root("111122223333", "AKIA")),
            deferred: Default::default(),
            audit: Default::default(),
        }
    }

    #[test]
    fn full_arns_try_the_suffixless_name_first_then_the_partial_form() {
        let t = target(
            &ctx(),
            "arn:aws:secretsmanager:eu-west-1:444455556666:secret:ci/token-AbC123",
        );
        assert_eq!(t.account, "444455556666");
        assert_eq!(t.region, "eu-west-1");
        assert_eq!(t.candidates[0].0, "ci/token");
        assert!(t.candidates[0].1.is_some());
        assert_eq!(t.candidates[1], ("ci/token-AbC123".to_string(), None));
    }

    #[test]
    fn partial_arns_and_names_look_up_the_name() {
        let t = target(
            &ctx(),
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/agent",
        );
        assert_eq!(t.candidates, vec![("ci/agent".to_string(), None)]);
        let t = target(&ctx(), "ci/agent");
        assert_eq!(t.candidates, vec![("ci/agent".to_string(), None)]);
        assert_eq!(
            t.shown_arn,
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/agent"
        );
        assert!(
            target(&ctx(), "arn:aws:ssm:eu-west-1:1:parameter/x")
                .candidates
                .is_empty()
        );
    }
}
