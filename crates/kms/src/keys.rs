//! Keys as KMS sees them: resolving a `KeyId` (key id, key ARN, alias name, alias ARN) to a
//! key, creating customer and AWS-managed keys, asking the Authorizer about a key, key-state
//! rules, and the cryptographic core shared by the HTTP operations and the envelope API.
//!
//! Access is never decided here: every check goes through `Services::authorize` with the key
//! ARN as resource, the key policy as a `KmsKey` resource policy and KMS's condition keys.

use std::collections::BTreeMap;

use crate::errors::KmsError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::{Duration, OffsetDateTime};
use tresor_core::authz::{AuthzRequest, Condition, ResourcePolicy, cond};
use tresor_core::{RequestCtx, Services};
use tresor_crypto::{AeadKey, Zeroizing};
use tresor_store::{ReadTxn, WriteTxn};

use crate::blob::{self, BlobHeader};
use crate::errors::{self, internal};
use crate::model::{
    self, AliasRecord, JobKind, JobRecord, KeyManager, KeyRecord, KeyState, Material,
    RECORD_VERSION, Rotation,
};

/// The services that have an AWS-managed key (`alias/aws/<service>`) in tresor.
pub(crate) const MANAGED_SERVICES: [&str; 2] = ["secretsmanager", "ssm"];

/// AWS-managed keys rotate every year (KMS Developer Guide, "Rotating AWS KMS keys": "AWS
/// managed keys ... automatically rotated every year").
const MANAGED_ROTATION_DAYS: i64 = 365;

/// `<service>.<region>.amazonaws.com`, the value of `kms:ViaService` (AWS KMS Developer Guide,
/// "AWS KMS condition keys", kms:ViaService).
pub(crate) fn via_service(via: &str, region: &str) -> String {
    [via, ".", region, ".amazonaws.com"].concat()
}

/// The default key policy of a key created without `Policy`, byte for byte what GetKeyPolicy
/// returns on AWS (AWS KMS Developer Guide, "Default key policy",
/// https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).
pub(crate) fn default_key_policy(account: &str) -> String {
    let partition = tresor_policy::arn::partition();
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:{partition}:iam::{account}:root"
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#
    )
}

/// The key policy of an AWS-managed key (AWS KMS Developer Guide, "AWS managed keys",
/// and the Secrets Manager User Guide's policy of `aws/secretsmanager`): every principal of the
/// account, only through the service; metadata reads for the account.
pub(crate) fn managed_key_policy(account: &str, region: &str, service: &str) -> String {
    let (label, id) = match service {
        "ssm" => ("AWS Systems Manager", "auto-ssm-1"),
        _ => ("AWS Secrets Manager", "auto-secretsmanager-1"),
    };
    let via = via_service(service, region);
    let partition = tresor_policy::arn::partition_of_region(region);
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "{id}",
  "Statement" : [ {{
    "Sid" : "Allow access through {label} for all principals in the account that are authorized to use {label}",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "*"
    }},
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{
        "kms:ViaService" : "{via}",
        "kms:CallerAccount" : "{account}"
      }}
    }}
  }}, {{
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:{partition}:iam::{account}:root"
    }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant" ],
    "Resource" : "*"
  }} ]
}}"#
    )
}

fn managed_description(service: &str) -> &'static str {
    match service {
        "ssm" => "Default key that protects my SSM parameters when no other key is defined",
        _ => "Default key that protects my Secrets Manager data when no other key is defined",
    }
}

/// A new key record with fresh material sealed under the root key. Not stored.
pub(crate) fn new_key(
    services: &Services,
    account: &str,
    region: &str,
    now: OffsetDateTime,
    description: String,
    key_manager: KeyManager,
    policy: String,
) -> Result<KeyRecord, KmsError> {
    let key_id = tresor_crypto::ids::uuid_v4();
    let arn = model::key_arn(region, account, &key_id);
    let (material_id, sealed) = blob::new_material(services.root_key(), &arn).map_err(internal)?;
    Ok(KeyRecord {
        v: RECORD_VERSION,
        key_id,
        account: account.to_string(),
        region: region.to_string(),
        arn,
        creation_date: now,
        description,
        key_manager,
        state: KeyState::Enabled,
        deletion_date: None,
        pending_window_days: None,
        policy,
        tags: Vec::new(),
        rotation: Rotation::default(),
        materials: vec![Material {
            id: material_id,
            sealed: STANDARD.encode(sealed),
            created: now,
            rotation_type: None,
        }],
        aliases: Vec::new(),
    })
}

/// Adds a new generation of material to `key` (rotation); older generations stay for
/// decryption.
pub(crate) fn add_material(
    services: &Services,
    key: &mut KeyRecord,
    now: OffsetDateTime,
    rotation_type: &str,
) -> Result<(), KmsError> {
    let (id, sealed) = blob::new_material(services.root_key(), &key.arn).map_err(internal)?;
    key.materials.push(Material {
        id,
        sealed: STANDARD.encode(sealed),
        created: now,
        rotation_type: Some(rotation_type.to_string()),
    });
    Ok(())
}

/// Schedules the next automatic rotation of `key` (and records its job) from `now`.
pub(crate) fn schedule_rotation(
    txn: &mut dyn WriteTxn,
    key: &mut KeyRecord,
    period_days: i64,
    now: OffsetDateTime,
) -> Result<(), KmsError> {
    if let Some(old) = key.rotation.next_rotation.take() {
        model::delete_job(txn, old, key, JobKind::RotateKey)?;
    }
    let next = now + Duration::days(period_days);
    key.rotation.enabled = true;
    key.rotation.period_days = Some(period_days);
    key.rotation.next_rotation = Some(next);
    model::put_job(
        txn,
        &JobRecord {
            v: RECORD_VERSION,
            kind: JobKind::RotateKey,
            account: key.account.clone(),
            region: key.region.clone(),
            key_id: key.key_id.clone(),
            due: next,
        },
    )
}

/// The AWS-managed key `alias/aws/<service>` of the account and region, created (with its
/// alias, policy and rotation schedule) in `txn` on first use, as AWS does (AWS KMS API
/// Reference, DescribeKey: a predefined `alias/aws/…` gets its AWS managed key on first use).
pub(crate) fn ensure_managed_key(
    services: &Services,
    txn: &mut dyn WriteTxn,
    account: &str,
    region: &str,
    service: &str,
    now: OffsetDateTime,
) -> Result<KeyRecord, KmsError> {
    let alias_name = format!("alias/aws/{service}");
    let records = services.records();
    if let Some(alias) = model::find_alias(records, &*txn, account, region, &alias_name)? {
        return model::find_key(records, &*txn, account, region, &alias.target_key_id)?.ok_or_else(
            || errors::key_not_found(&model::key_arn(region, account, &alias.target_key_id)),
        );
    }
    let policy = managed_key_policy(account, region, service);
    let mut key = new_key(
        services,
        account,
        region,
        now,
        managed_description(service).to_string(),
        KeyManager::Aws,
        policy,
    )?;
    key.aliases.push(alias_name.clone());
    schedule_rotation(txn, &mut key, MANAGED_ROTATION_DAYS, now)?;
    model::save_key(txn, &key)?;
    model::save_alias(
        txn,
        account,
        region,
        &AliasRecord {
            v: RECORD_VERSION,
            name: alias_name,
            target_key_id: key.key_id.clone(),
            creation_date: now,
            last_updated: now,
        },
    )?;
    tracing::info!(key = %key.arn, service, "created AWS managed key");
    Ok(key)
}

/// A `KeyId` input, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyInput {
    Key {
        account: String,
        region: String,
        key_id: String,
    },
    /// `name` is the full `alias/<name>`.
    Alias {
        account: String,
        region: String,
        name: String,
    },
}

/// Parses a key id, key ARN, alias name or alias ARN (the last two only when `allow_alias`).
pub(crate) fn parse_key_input(
    input: &str,
    ctx: &RequestCtx,
    allow_alias: bool,
) -> Result<KeyInput, KmsError> {
    let own = |f: fn(String, String, String) -> KeyInput, rest: &str| {
        f(
            ctx.caller.account.clone(),
            ctx.region.clone(),
            rest.to_string(),
        )
    };
    if let Some(rest) = tresor_policy::arn::strip_service_prefix(input, "kms") {
        let mut parts = rest.splitn(3, ':');
        let (Some(region), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(errors::invalid_key_id(input));
        };
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || region.is_empty()
        {
            return Err(errors::invalid_key_id(input));
        }
        if let Some(id) = resource.strip_prefix("key/")
            && blob::is_key_id(id)
        {
            return Ok(KeyInput::Key {
                account: account.into(),
                region: region.into(),
                key_id: id.into(),
            });
        }
        if allow_alias && resource.starts_with("alias/") && resource.len() > 6 {
            return Ok(KeyInput::Alias {
                account: account.into(),
                region: region.into(),
                name: resource.into(),
            });
        }
        return Err(errors::invalid_key_id(input));
    }
    if blob::is_key_id(input) {
        return Ok(own(
            |account, region, key_id| KeyInput::Key {
                account,
                region,
                key_id,
            },
            input,
        ));
    }
    if allow_alias && input.starts_with("alias/") && input.len() > 6 {
        return Ok(own(
            |account, region, name| KeyInput::Alias {
                account,
                region,
                name,
            },
            input,
        ));
    }
    Err(errors::invalid_key_id(input))
}

/// A key found from a `KeyId`, and the alias name it was named by (for `kms:RequestAlias`).
#[derive(Debug)]
pub(crate) struct Resolved {
    pub key: KeyRecord,
    pub request_alias: Option<String>,
}

/// Finds the key a `KeyId` names (NotFoundException with AWS's texts otherwise).
pub(crate) fn resolve(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    input: &str,
    allow_alias: bool,
) -> Result<Resolved, KmsError> {
    match parse_key_input(input, ctx, allow_alias)? {
        KeyInput::Key {
            account,
            region,
            key_id,
        } => {
            let arn = model::key_arn(&region, &account, &key_id);
            if region != ctx.region {
                return Err(errors::key_not_found(&arn));
            }
            let key = model::find_key(services.records(), txn, &account, &region, &key_id)?
                .ok_or_else(|| errors::key_not_found(&arn))?;
            Ok(Resolved {
                key,
                request_alias: None,
            })
        }
        KeyInput::Alias {
            account,
            region,
            name,
        } => {
            let alias_arn = model::alias_arn(&region, &account, &name);
            if region != ctx.region {
                return Err(errors::alias_not_found(&alias_arn));
            }
            let alias = model::find_alias(services.records(), txn, &account, &region, &name)?
                .ok_or_else(|| errors::alias_not_found(&alias_arn))?;
            let key = model::find_key(
                services.records(),
                txn,
                &account,
                &region,
                &alias.target_key_id,
            )?
            .ok_or_else(|| {
                errors::key_not_found(&model::key_arn(&region, &account, &alias.target_key_id))
            })?;
            Ok(Resolved {
                key,
                request_alias: Some(name),
            })
        }
    }
}

/// The managed service whose predefined alias `input` names in the caller's own account and
/// the request's region, if any (`alias/aws/secretsmanager`, or its alias ARN).
pub(crate) fn predefined_alias_service(input: &str, ctx: &RequestCtx) -> Option<&'static str> {
    match parse_key_input(input, ctx, true).ok()? {
        KeyInput::Alias {
            account,
            region,
            name,
        } if account == ctx.caller.account && region == ctx.region => {
            let service = name.strip_prefix("alias/aws/")?;
            MANAGED_SERVICES.iter().copied().find(|s| *s == service)
        }
        _ => None,
    }
}

/// Like [`resolve`], creating the AWS-managed key first when `input` is a predefined alias
/// that has no key yet (DescribeKey and the cryptographic operations do this on AWS).
pub(crate) fn resolve_creating(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    input: &str,
    allow_alias: bool,
) -> Result<Resolved, KmsError> {
    if allow_alias && let Some(service) = predefined_alias_service(input, ctx) {
        ensure_managed_key(
            services,
            txn,
            &ctx.caller.account,
            &ctx.region,
            service,
            ctx.now,
        )?;
    }
    resolve(services, &*txn, ctx, input, allow_alias)
}

/// For operations that otherwise only read: makes sure a predefined alias named by `input` has
/// its key, in a short write transaction of its own, so the read that follows finds it.
pub(crate) fn prepare_predefined(
    services: &Services,
    ctx: &RequestCtx,
    input: Option<&str>,
) -> Result<(), KmsError> {
    let Some(service) = input.and_then(|i| predefined_alias_service(i, ctx)) else {
        return Ok(());
    };
    {
        let txn = services.store().begin_read().map_err(internal)?;
        if model::load_alias(
            &*txn,
            &ctx.caller.account,
            &ctx.region,
            &format!("alias/aws/{service}"),
        )?
        .is_some()
        {
            return Ok(());
        }
    }
    let mut txn = services.store().begin_write().map_err(internal)?;
    ensure_managed_key(
        services,
        &mut *txn,
        &ctx.caller.account,
        &ctx.region,
        service,
        ctx.now,
    )?;
    txn.commit().map_err(internal)
}

/// `kms:EncryptionContext:<k>` = v for each pair and one `kms:EncryptionContextKeys` per key
/// (a multi-valued key: the Authorizer gathers repeated entries into one list).
pub(crate) fn context_conditions(context: &BTreeMap<String, String>) -> Vec<Condition<'_>> {
    let mut out = Vec::with_capacity(context.len() * 2);
    for (k, v) in context {
        out.push(cond(["kms:EncryptionContext:", k].concat(), v.as_str()));
        out.push(cond("kms:EncryptionContextKeys", k.as_str()));
    }
    out
}

/// Asks the Authorizer whether the caller may perform `action` on `key`. The key policy is
/// the resource policy (required: IAM alone never suffices — AWS KMS Developer Guide, "Key
/// policies in AWS KMS"); the request's
/// resource is always the key ARN, so IAM statements naming an alias never match.
#[allow(clippy::too_many_arguments)]
pub(crate) fn authorize_key<'a>(
    services: &Services,
    ctx: &'a RequestCtx,
    action: &str,
    key: &'a KeyRecord,
    request_alias: Option<&'a str>,
    via: Option<&str>,
    extra: Vec<Condition<'a>>,
) -> Result<(), KmsError> {
    let mut context = Vec::with_capacity(8 + key.aliases.len() + extra.len());
    context.push(cond("kms:CallerAccount", ctx.caller.account.as_str()));
    if let Some(via) = via {
        context.push(cond("kms:ViaService", via_service(via, &ctx.region)));
    }
    if let Some(alias) = request_alias {
        context.push(cond("kms:RequestAlias", alias));
    }
    for alias in &key.aliases {
        context.push(cond("kms:ResourceAliases", alias.as_str()));
    }
    context.push(cond("kms:KeyOrigin", "AWS_KMS"));
    context.push(cond("kms:KeySpec", "SYMMETRIC_DEFAULT"));
    context.push(cond("kms:KeyUsage", "ENCRYPT_DECRYPT"));
    context.extend(extra);
    services
        .authorize(
            ctx,
            &AuthzRequest {
                action,
                resource: &key.arn,
                context,
                resource_policy: Some(ResourcePolicy::KmsKey(&key.policy)),
            },
        )
        .map_err(Into::into)
}

/// Asks the Authorizer about an action that IAM policies alone govern (`kms:CreateKey`,
/// `kms:ListKeys`, alias ARNs for alias operations).
pub(crate) fn authorize_identity<'a>(
    services: &Services,
    ctx: &'a RequestCtx,
    action: &str,
    resource: &str,
    extra: Vec<Condition<'a>>,
) -> Result<(), KmsError> {
    let mut context = vec![cond("kms:CallerAccount", ctx.caller.account.as_str())];
    context.extend(extra);
    services
        .authorize(
            ctx,
            &AuthzRequest {
                action,
                resource,
                context,
                resource_policy: None,
            },
        )
        .map_err(Into::into)
}

/// Cryptographic operations need an enabled key (AWS KMS Developer Guide, "Key states of AWS
/// KMS keys", https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html).
pub(crate) fn require_usable(key: &KeyRecord) -> Result<(), KmsError> {
    match key.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(errors::disabled(&key.arn)),
        KeyState::PendingDeletion => Err(errors::pending_deletion(&key.arn)),
    }
}

/// Management operations refuse keys pending deletion (AWS KMS Developer Guide, "Key states of
/// AWS KMS keys").
pub(crate) fn require_not_pending(key: &KeyRecord) -> Result<(), KmsError> {
    if key.state == KeyState::PendingDeletion {
        return Err(errors::pending_deletion(&key.arn));
    }
    Ok(())
}

fn open_material(
    services: &Services,
    key: &KeyRecord,
    material: &Material,
) -> Result<AeadKey, KmsError> {
    let sealed = STANDARD.decode(material.sealed.as_bytes()).map_err(|_| {
        tracing::error!(key = %key.arn, "stored key material is not base64");
        KmsError::Internal
    })?;
    blob::open_material(services.root_key(), &key.arn, &material.id, &sealed).map_err(internal)
}

/// Encrypts under the key's current material. Returns the blob and the material id.
pub(crate) fn encrypt_under(
    services: &Services,
    key: &KeyRecord,
    plaintext: &[u8],
    context: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, String), KmsError> {
    let material = key.current_material()?;
    let aead = open_material(services, key, material)?;
    let header = BlobHeader {
        account: key.account.clone(),
        key_id: key.key_id.clone(),
        material_id: material.id.clone(),
    };
    let blob = blob::seal(&header, &aead, plaintext, context).map_err(internal)?;
    Ok((blob, material.id.clone()))
}

/// What a successful decryption yields.
pub(crate) struct Opened {
    pub key: std::sync::Arc<KeyRecord>,
    pub plaintext: Zeroizing<Vec<u8>>,
    pub material_id: String,
}

/// The ciphertext names a key that is not there (or not visible): the historical AWS text
/// (observed behavior; newer AWS responses may word it differently).
fn ciphertext_key_unknown() -> KmsError {
    KmsError::AccessDenied(
        "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.".into(),
    )
}

/// Decrypts a blob as the caller: finds the key from the blob, checks `KeyId` when given
/// (IncorrectKeyException), authorizes `action` on the key found in the blob, checks its
/// state, then authenticates the blob with the context.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decrypt_blob<'a>(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    action: &str,
    ciphertext: &[u8],
    context: &'a BTreeMap<String, String>,
    key_id: Option<&str>,
    via: Option<&str>,
    mut extra: Vec<Condition<'a>>,
) -> Result<Opened, KmsError> {
    let header = blob::parse_header(ciphertext).ok_or_else(errors::invalid_ciphertext)?;
    let mut request_alias = None;
    if let Some(input) = key_id {
        let named = resolve(services, txn, ctx, input, true)?;
        if named.key.account != header.account || named.key.key_id != header.key_id {
            return Err(errors::incorrect_key());
        }
        request_alias = named.request_alias;
    }
    // The hot path of every envelope read: the decoded key record comes from the snapshot-
    // tagged record cache rather than from a JSON parse per request (shared, not copied).
    let key = services
        .records()
        .get::<KeyRecord>(
            txn,
            &model::key_key(&header.account, &ctx.region, &header.key_id),
        )
        .map_err(internal)?
        .ok_or_else(ciphertext_key_unknown)?;
    extra.extend(context_conditions(context));
    authorize_key(
        services,
        ctx,
        action,
        &key,
        request_alias.as_deref(),
        via,
        extra,
    )?;
    require_usable(&key)?;
    let material = key
        .materials
        .iter()
        .find(|m| m.id == header.material_id)
        .ok_or_else(errors::invalid_ciphertext)?;
    let plaintext = if via.is_some() {
        // An envelope read (a secret's or parameter's data key), authorized above and the key
        // usable: the data key unwrapped by an earlier read of the same blob and context under
        // the same key state and material is reused (see `tresor_core::cache::DataKeyCache`).
        let stamp = [key.state.as_str(), "/", &material.sealed].concat();
        let lookup = tresor_core::cache::DataKeyCache::lookup_key(ciphertext, context);
        match services.data_keys().get(&lookup, &key.arn, &stamp) {
            Some(plaintext) => plaintext,
            None => {
                let aead = open_material(services, &key, material)?;
                let plaintext = blob::open(ciphertext, &aead, context)
                    .map_err(|_| errors::invalid_ciphertext())?;
                services
                    .data_keys()
                    .insert(lookup, &key.arn, &stamp, &plaintext);
                plaintext
            }
        }
    } else {
        let aead = open_material(services, &key, material)?;
        blob::open(ciphertext, &aead, context).map_err(|_| errors::invalid_ciphertext())?
    };
    let material_id = material.id.clone();
    Ok(Opened {
        key,
        plaintext,
        material_id,
    })
}
