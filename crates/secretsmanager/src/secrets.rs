//! Secrets: CreateSecret, DescribeSecret and UpdateSecret (deletion, tags and listing have
//! their own modules).
//!
//! Every write is one store transaction, including the KMS data-key generation.

use crate::errors::SecretsManagerError;
use serde::{Deserialize, Serialize};
use tresor_core::authz::AuthzRequest;
use tresor_core::{RequestCtx, Services, record};
use tresor_crypto::{SecretBytes, SecretString};
use tresor_store::WriteTxn;
use tresor_wire::validate::Validator;

use crate::access::{
    begin_authorized_write, load_authorized, load_live, refuse_replica, save_changed,
};
use crate::errors::{self, OrInternal};
use crate::model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretRecord, ValueRecord, keys};
use crate::shapes::{self, SecretDescription, Tag};
use crate::validate;
use crate::versions::{AddOutcome, add_version};

// ---------------------------------------------------------------------------------------
// CreateSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretInput {
    pub name: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    #[serde(default, with = "tresor_wire::blob::option")]
    pub secret_binary: Option<SecretBytes>,
    #[serde(default, deserialize_with = "shapes::secret_string")]
    pub secret_string: Option<SecretString>,
    pub tags: Option<Vec<Tag>>,
    pub add_replica_regions: Option<Vec<crate::replication::ReplicaRegion>>,
    pub force_overwrite_replica_secret: Option<bool>,
    pub r#type: Option<String>,
    #[serde(rename = "CrossAccountPrimaryARN")]
    pub cross_account_primary_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<Vec<shapes::ReplicationStatusOut>>,
}

pub(crate) fn request_tag_context(tags: &[Tag]) -> Vec<(String, String)> {
    let mut c = Vec::new();
    for t in tags {
        c.push((format!("aws:RequestTag/{}", t.key), t.value.clone()));
        c.push(("aws:TagKeys".to_string(), t.key.clone()));
    }
    c
}

pub fn create_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: CreateSecretInput,
) -> Result<CreateSecretOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::name(&mut v, &input.name)?;
    validate::client_request_token(&mut v, input.client_request_token.as_deref());
    validate::description(&mut v, input.description.as_deref());
    validate::kms_key_id(&mut v, input.kms_key_id.as_deref());
    v.length("Type", input.r#type.as_deref(), 0, 256);
    let tags = input.tags.unwrap_or_default();
    validate::tags(&mut v, &tags)?;
    let value = validate::new_value(&mut v, input.secret_string, input.secret_binary, false)?;
    let replicas = match &input.add_replica_regions {
        Some(regions) => {
            crate::replication::check_add_regions(services, &mut v, regions, &ctx.region)?
        }
        None => Vec::new(),
    };
    validate::finish(v)?;
    if input.cross_account_primary_arn.is_some() {
        // Cross-account replication is not built; refusing is better than silently ignoring.
        return Err(errors::invalid_request(
            "Cross-account replication isn't available on this server.",
        ));
    }
    let force_overwrite = input.force_overwrite_replica_secret.unwrap_or(false);
    let token = input
        .client_request_token
        .unwrap_or_else(tresor_crypto::ids::uuid_v4);
    let account = ctx.caller.account.clone();
    let region = ctx.region.clone();

    // Drawn once, so both authorization runs name the same ARN.
    let suffix = tresor_crypto::ids::secret_suffix();
    let key = keys::secret(&account, &region, &input.name);
    let (mut txn, (existing, arn)) = begin_authorized_write(services, |txn| {
        let existing: Option<SecretRecord> = record::get(txn, &key).or_internal()?;
        let arn = match &existing {
            Some(rec) => rec.arn.clone(),
            None => format!(
                "arn:{}:secretsmanager:{region}:{account}:secret:{}-{suffix}",
                tresor_policy::arn::partition_of_region(&region),
                input.name
            ),
        };
        let mut context = vec![
            ("secretsmanager:Name".to_string(), input.name.clone()),
            ("secretsmanager:SecretId".to_string(), arn.clone()),
        ];
        if let Some(d) = &input.description {
            context.push(("secretsmanager:Description".to_string(), d.clone()));
        }
        if let Some(k) = &input.kms_key_id {
            context.push(("secretsmanager:KmsKeyId".to_string(), k.clone()));
        }
        context.extend(request_tag_context(&tags));
        services.authorize(
            ctx,
            &AuthzRequest {
                action: "secretsmanager:CreateSecret",
                resource: &arn,
                context: tresor_core::owned_conditions(context.clone()),
                resource_policy: None,
            },
        )?;
        if !tags.is_empty() {
            // Tags on create need TagResource too (CreateSecret API reference).
            services.authorize(
                ctx,
                &AuthzRequest {
                    action: "secretsmanager:TagResource",
                    resource: &arn,
                    context: tresor_core::owned_conditions(context.clone()),
                    resource_policy: None,
                },
            )?;
        }
        if !replicas.is_empty() {
            let mut context = context;
            context.extend(crate::replication::add_regions_context(
                &replicas,
                force_overwrite,
            ));
            crate::replication::authorize_create_replicas(services, ctx, &arn, context)?;
        }
        Ok((existing, arn))
    })?;

    if let Some(mut rec) = existing {
        if rec.is_scheduled_for_deletion() {
            // AWS's text (observed behavior).
            return Err(errors::invalid_request(
                "You can't create this secret because a secret with this name is already scheduled for deletion.",
            ));
        }
        // A replayed request (same token, same value) returns the existing secret
        // (CreateSecret ClientRequestToken: "the request is ignored").
        if let Some(value) = &value
            && rec.versions.get(&token).is_some_and(|m| m.has_value)
        {
            let outcome = add_version(services, &mut *txn, ctx, &mut rec, &token, value, None)?;
            if outcome == AddOutcome::Replayed {
                let replication_status = (!rec.replication_status.is_empty()).then(|| {
                    rec.replication_status
                        .iter()
                        .map(shapes::ReplicationStatusOut::from)
                        .collect()
                });
                return Ok(CreateSecretOutput {
                    arn: rec.arn,
                    name: rec.name,
                    version_id: Some(token),
                    replication_status,
                });
            }
        }
        // Moto's wording (unconfirmed).
        return Err(SecretsManagerError::ResourceExists(format!(
            "The operation failed because the secret {} already exists.",
            input.name
        )));
    }

    let now = ctx.now;
    let mut rec = SecretRecord {
        description: input.description.filter(|d| !d.is_empty()),
        kms_key_id: input.kms_key_id.filter(|k| !k.is_empty()),
        secret_type: input.r#type.filter(|t| !t.is_empty()),
        ..SecretRecord::new(&account, &region, &input.name, &arn, now)
    };
    set_tags(&mut rec.tags, &tags);
    let version_id = match &value {
        Some(value) => {
            add_version(services, &mut *txn, ctx, &mut rec, &token, value, None)?;
            Some(token)
        }
        None => {
            if rec.kms_key_id.is_some() {
                // Setting a key validates access to it (AWS Secrets Manager User Guide, "Secret
                // encryption and decryption in AWS Secrets Manager").
                crate::envelope::resolve_key(services, &mut *txn, ctx, rec.kms_key_id.as_deref())?;
            }
            None
        }
    };
    let replication_status = (!replicas.is_empty())
        .then(|| crate::replication::add_regions(ctx, &mut rec, &replicas, force_overwrite));
    // Saved through the outbox hook: replica regions get their jobs in this transaction.
    crate::access::save(&mut *txn, &rec)?;
    txn.commit().or_internal()?;
    if replication_status.is_some() {
        crate::replication_outbox::wake();
    }
    Ok(CreateSecretOutput {
        arn,
        name: rec.name,
        version_id,
        replication_status,
    })
}

/// Upserts tags: same key overwrites, order of first appearance kept.
pub(crate) fn set_tags(current: &mut Vec<(String, String)>, new: &[Tag]) {
    for t in new {
        match current.iter_mut().find(|(k, _)| *k == t.key) {
            Some(slot) => slot.1 = t.value.clone(),
            None => current.push((t.key.clone(), t.value.clone())),
        }
    }
}

// ---------------------------------------------------------------------------------------
// DescribeSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretIdInput {
    pub secret_id: String,
}

pub fn describe_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: SecretIdInput,
) -> Result<SecretDescription, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::finish(v)?;
    let txn = services.store().begin_read().or_internal()?;
    // DescribeSecret works on a secret scheduled for deletion and shows DeletedDate.
    let rec = load_authorized(
        services,
        &*txn,
        ctx,
        "secretsmanager:DescribeSecret",
        &input.secret_id,
        vec![],
    )?;
    let mut rec = rec;
    crate::replication::fill_replica_access(&*txn, &mut rec)?;
    Ok(SecretDescription::of(&rec, false))
}

// ---------------------------------------------------------------------------------------
// UpdateSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretInput {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    #[serde(default, with = "tresor_wire::blob::option")]
    pub secret_binary: Option<SecretBytes>,
    #[serde(default, deserialize_with = "shapes::secret_string")]
    pub secret_string: Option<SecretString>,
    pub r#type: Option<String>,
}

pub fn update_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: UpdateSecretInput,
) -> Result<CreateSecretOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::client_request_token(&mut v, input.client_request_token.as_deref());
    validate::description(&mut v, input.description.as_deref());
    validate::kms_key_id(&mut v, input.kms_key_id.as_deref());
    v.length("Type", input.r#type.as_deref(), 0, 256);
    let value = validate::new_value(&mut v, input.secret_string, input.secret_binary, false)?;
    validate::finish(v)?;
    let token = input
        .client_request_token
        .unwrap_or_else(tresor_crypto::ids::uuid_v4);

    let mut context = Vec::new();
    if let Some(d) = &input.description {
        context.push(("secretsmanager:Description".to_string(), d.clone()));
    }
    if let Some(k) = &input.kms_key_id {
        context.push(("secretsmanager:KmsKeyId".to_string(), k.clone()));
    }
    let (mut txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:UpdateSecret",
            &input.secret_id,
            context.clone(),
        )
    })?;
    refuse_replica(&rec)?;
    if let Some(d) = input.description {
        rec.description = (!d.is_empty()).then_some(d);
    }
    if let Some(t) = input.r#type {
        rec.secret_type = (!t.is_empty()).then_some(t);
    }
    if let Some(k) = input.kms_key_id {
        let new_key = (!k.is_empty()).then_some(k);
        if new_key != rec.kms_key_id {
            change_key(services, &mut *txn, ctx, &mut rec, new_key)?;
        }
    }
    let mut version_id = None;
    if let Some(value) = &value {
        if add_version(services, &mut *txn, ctx, &mut rec, &token, value, None)?
            != AddOutcome::Replayed
        {
            crate::rotation::value_changed_by_hand(&mut *txn, &mut rec, ctx.now)?;
        }
        version_id = Some(token);
    }
    save_changed(txn, &mut rec, ctx.now)?;
    Ok(CreateSecretOutput {
        arn: rec.arn,
        name: rec.name,
        version_id,
        replication_status: None,
    })
}

/// Switches the secret to `new_key` and re-encrypts the versions labelled AWSCURRENT,
/// AWSPENDING or AWSPREVIOUS under it — unless the caller may not use the new key for
/// encryption, in which case existing versions stay as they are (UpdateSecret `KmsKeyId`).
fn change_key(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    rec: &mut SecretRecord,
    new_key: Option<String>,
) -> Result<(), SecretsManagerError> {
    // Validate the new key first: a key that does not exist or is unusable is an error.
    if new_key.is_some() {
        crate::envelope::resolve_key(services, txn, ctx, new_key.as_deref())?;
    }
    let labelled: Vec<String> = rec
        .versions
        .iter()
        .filter(|(_, m)| {
            m.has_value
                && m.stages
                    .iter()
                    .any(|s| s == AWSCURRENT || s == AWSPENDING || s == AWSPREVIOUS)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for version_id in labelled {
        let key = keys::value(&rec.account, &rec.region, &rec.arn, &version_id);
        let Some(stored) = record::get::<ValueRecord>(&*txn, &key).or_internal()? else {
            continue;
        };
        let plain = crate::envelope::open(services, &*txn, ctx, rec, &version_id, &stored)?;
        match crate::envelope::seal(
            services,
            txn,
            ctx,
            rec,
            Some(new_key.as_deref()),
            &version_id,
            (stored.kind, plain.expose()),
        ) {
            Ok((sealed, key_arn)) => {
                record::put(txn, &key, &sealed).or_internal()?;
                if let Some(m) = rec.versions.get_mut(&version_id) {
                    m.kms_key_arn = Some(key_arn);
                    m.default_key = new_key.is_none();
                }
            }
            Err(SecretsManagerError::AccessDenied(_)) => {
                tracing::info!(secret = %rec.arn, "caller may not encrypt under the new key; existing versions keep their key");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    rec.kms_key_id = new_key;
    Ok(())
}
