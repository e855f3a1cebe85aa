//! The KMS HTTP operations (target `TrentService.<Op>`), one file per group, and the shapes
//! they share. Member names are the botocore model's (kms 2014-11-01).

pub mod aliases;
pub mod crypto;
pub mod keys;
pub mod policy;
pub mod rotation;
pub mod tags;

use crate::errors::KmsError;
use serde::Serialize;
use time::OffsetDateTime;
use tresor_core::Condition;
use tresor_core::{RequestCtx, Services};
use tresor_store::{ReadTxn, WriteTxn};
use tresor_wire::json::epoch_seconds;
use tresor_wire::validate::Validator;

use crate::errors::internal;
use crate::model::{KeyRecord, KeyState};

pub(crate) const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";
pub(crate) const ENCRYPT_DECRYPT: &str = "ENCRYPT_DECRYPT";

pub(crate) fn read(services: &Services) -> Result<Box<dyn ReadTxn + '_>, KmsError> {
    // Lazy: a read served from the record cache runs no SQL.
    services.store().begin_read_lazy().map_err(internal)
}

pub(crate) fn write(services: &Services) -> Result<Box<dyn WriteTxn + '_>, KmsError> {
    services.store().begin_write().map_err(internal)
}

/// Begins the write transaction of an operation only for a caller who passes `check`.
///
/// `check` loads what the operation needs and asks the Authorizer; it runs first on a read
/// snapshot, so a request that will be refused never waits for — or holds — the store's one
/// writer. It then runs again inside the write transaction, so a change committed in between
/// (a key policy, a grant, a deletion) cannot slip through; the second run is what the
/// caller gets. Both runs are cheap: the Authorizer caches its policies.
pub(crate) fn write_authorized<'s, T>(
    services: &'s Services,
    check: impl Fn(&dyn ReadTxn) -> Result<T, KmsError>,
) -> Result<(Box<dyn WriteTxn + 's>, T), KmsError> {
    {
        let snapshot = read(services)?;
        check(&*snapshot)?;
    }
    let txn = write(services)?;
    let out = check(&*txn)?;
    Ok((txn, out))
}

pub(crate) fn commit(txn: Box<dyn WriteTxn + '_>) -> Result<(), KmsError> {
    txn.commit().map_err(internal)
}

/// Resolves `key_id` (a key id or key ARN; no alias) and authorizes `action` on the key with
/// `extra` condition keys.
pub(crate) fn authorized_key(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    key_id: &str,
    action: &str,
    extra: Vec<Condition<'_>>,
) -> Result<KeyRecord, KmsError> {
    let key = crate::keys::resolve(services, txn, ctx, key_id, false)?.key;
    crate::keys::authorize_key(services, ctx, action, &key, None, None, extra)?;
    Ok(key)
}

/// [`authorized_key`] for the operations that also accept an alias name or alias ARN, which
/// becomes the `kms:RequestAlias` condition key.
pub(crate) fn authorized_key_or_alias(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    key_id: &str,
    action: &str,
    extra: Vec<Condition<'_>>,
) -> Result<KeyRecord, KmsError> {
    let resolved = crate::keys::resolve(services, txn, ctx, key_id, true)?;
    crate::keys::authorize_key(
        services,
        ctx,
        action,
        &resolved.key,
        resolved.request_alias.as_deref(),
        None,
        extra,
    )?;
    Ok(resolved.key)
}

/// Saves the key record and commits the transaction.
pub(crate) fn save_and_commit(
    mut txn: Box<dyn WriteTxn + '_>,
    key: &KeyRecord,
) -> Result<(), KmsError> {
    crate::model::save_key(&mut *txn, key)?;
    commit(txn)
}

pub(crate) fn validate_key_id(v: &mut Validator, member: &str, key_id: Option<&str>) {
    v.length(member, key_id, 1, 2048);
}

/// AWS-managed keys cannot be changed by anyone (KMS Developer Guide, "AWS managed keys"). Their key policy already denies
/// these actions, so this only guards against a future policy change.
pub(crate) fn refuse_aws_managed(key: &KeyRecord) -> Result<(), KmsError> {
    if key.is_aws_managed() {
        return Err(crate::errors::unsupported(format!(
            "{} is an AWS managed key and cannot be modified.",
            key.arn
        )));
    }
    Ok(())
}

pub(crate) fn finish(v: Validator) -> Result<(), KmsError> {
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)
}

/// A member the operation needs but the model does not mark required: AWS's null wording.
/// The members of the list operations about one key: `KeyId`, `Limit` and `Marker`.
pub(crate) fn validate_key_page(
    key_id: &str,
    limit: Option<i64>,
    marker: Option<&str>,
) -> Result<(), KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(key_id));
    v.range("Limit", limit, 1, 1000);
    v.length("Marker", marker, 1, 1024);
    finish(v)
}

pub(crate) fn null_member(member: &str) -> KmsError {
    crate::errors::validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        tresor_wire::validate::member_path(member)
    ))
}

/// AWS's enum constraint: `Member must satisfy enum value set: [A, B]`.
pub(crate) fn check_enum(v: &mut Validator, member: &str, value: Option<&str>, allowed: &[&str]) {
    if let Some(value) = value
        && !allowed.contains(&value)
    {
        v.fail(
            member,
            Some(value),
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        );
    }
}

/// The model's pattern `[\u0009\u000A\u000D\u0020-\u00FF]+` for policies and markers.
pub(crate) fn check_latin1(
    v: &mut Validator,
    member: &str,
    value: Option<&str>,
    pattern: &str,
    show: bool,
) {
    if let Some(value) = value
        && value
            .chars()
            .any(|c| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'))
    {
        let shown = show.then_some(value);
        v.fail(
            member,
            shown,
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        );
    }
}

/// A `PolicyType` member (1–131072 characters of `[\u0009\u000A\u000D\u0020-\u00FF]`). The
/// document is not quoted back: it can be long, and it is the caller's, not ours, to log.
pub(crate) fn check_policy_text(v: &mut Validator, member: &str, value: Option<&str>) {
    if let Some(text) = value {
        let n = text.chars().count();
        if n == 0 {
            v.fail(
                member,
                None,
                "Member must have length greater than or equal to 1",
            );
        } else if n > 131_072 {
            v.fail(
                member,
                None,
                "Member must have length less than or equal to 131072",
            );
        }
    }
    check_latin1(
        v,
        member,
        value,
        r"[\u0009\u000A\u000D\u0020-\u00FF]+",
        false,
    );
}

pub(crate) const ENCRYPTION_ALGORITHMS: [&str; 4] = [
    "SYMMETRIC_DEFAULT",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "SM2PKE",
];

/// `KeyMetadata` (AWS KMS API Reference, "KeyMetadata" data type).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    pub key_id: String,
    pub arn: String,
    #[serde(with = "epoch_seconds")]
    pub creation_date: OffsetDateTime,
    pub enabled: bool,
    pub description: String,
    pub key_usage: &'static str,
    pub key_state: &'static str,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub deletion_date: Option<OffsetDateTime>,
    pub origin: &'static str,
    pub key_manager: &'static str,
    pub customer_master_key_spec: &'static str,
    pub key_spec: &'static str,
    pub encryption_algorithms: Vec<&'static str>,
    pub multi_region: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_deletion_window_in_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_key_material_id: Option<String>,
}

pub(crate) fn key_metadata(key: &KeyRecord) -> KeyMetadata {
    KeyMetadata {
        aws_account_id: key.account.clone(),
        key_id: key.key_id.clone(),
        arn: key.arn.clone(),
        creation_date: key.creation_date,
        enabled: key.state == KeyState::Enabled,
        description: key.description.clone(),
        key_usage: ENCRYPT_DECRYPT,
        key_state: key.state.as_str(),
        deletion_date: key.deletion_date,
        origin: "AWS_KMS",
        key_manager: key.key_manager.as_str(),
        customer_master_key_spec: SYMMETRIC_DEFAULT,
        key_spec: SYMMETRIC_DEFAULT,
        encryption_algorithms: vec![SYMMETRIC_DEFAULT],
        multi_region: false,
        pending_deletion_window_in_days: key.pending_window_days,
        current_key_material_id: key.materials.last().map(|m| m.id.clone()),
    }
}

/// An operation without output members: AWS sends an empty body, `{}` parses as well.
#[derive(Serialize)]
pub struct Empty {}

/// `Limit` of the List operations: validated against the model's range, then capped at the
/// documented page maximum.
pub(crate) fn page_limit(limit: Option<i64>, default: usize, max: usize) -> usize {
    limit.map_or(default, |l| {
        usize::try_from(l).unwrap_or(default).clamp(1, max)
    })
}
