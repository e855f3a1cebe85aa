//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.
//!
//! Alias operations need permission on the alias ARN (IAM policy) **and** on the key (key
//! policy) — AWS KMS Developer Guide, "Controlling access to aliases"
//! (https://docs.aws.amazon.com/kms/latest/developerguide/alias-access.html). The key record
//! keeps the names of its aliases, updated in the same transaction, for `kms:ResourceAliases`.

use crate::errors::KmsError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_core::{RequestCtx, Services};
use tresor_wire::json::epoch_seconds;
use tresor_wire::validate::Validator;

use super::{Empty, commit, finish, page_limit, read, validate_key_id, write_authorized};
use crate::errors::{self, internal};
use crate::keys::{
    self as k, MANAGED_SERVICES, authorize_identity, authorize_key, require_not_pending,
};
use crate::model::{self, AliasRecord, KeyRecord, RECORD_VERSION};

const ALIAS_PATTERN: &str = "^[a-zA-Z0-9:/_-]+$";

/// Aliases per key (KMS Developer Guide, "Quotas": aliases per KMS key, 50).
const MAX_ALIASES_PER_KEY: usize = 50;

fn validate_alias_name(v: &mut Validator, name: &str) {
    v.length("AliasName", Some(name), 1, 256);
    if !name.is_empty()
        && !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '-'))
    {
        v.fail(
            "AliasName",
            Some(name),
            &format!("Member must satisfy regular expression pattern: {ALIAS_PATTERN}"),
        );
    }
}

/// The checks after the model's constraints: the `alias/` prefix (AWS's text: observed
/// behavior) and the reserved `alias/aws/` prefix (moto answers `NotAuthorizedException`
/// without a message; the code is not modeled, so AWS's answer is unconfirmed).
fn check_alias_name(name: &str) -> Result<(), KmsError> {
    if !name.starts_with("alias/") || name.len() == 6 {
        return Err(errors::validation(
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        ));
    }
    if name.starts_with("alias/aws/") {
        return Err(KmsError::NotAuthorized);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasTargetInput {
    pub alias_name: String,
    pub target_key_id: String,
}

fn detach(key: &mut KeyRecord, alias: &str) {
    key.aliases.retain(|a| a != alias);
}

fn attach(key: &mut KeyRecord, alias: &str) -> Result<(), KmsError> {
    if key.aliases.len() >= MAX_ALIASES_PER_KEY {
        return Err(errors::limit_exceeded(format!(
            "The number of aliases exceeds the limit of {MAX_ALIASES_PER_KEY} for {}.",
            key.arn
        )));
    }
    key.aliases.push(alias.to_string());
    key.aliases.sort();
    Ok(())
}

/// The checks CreateAlias and UpdateAlias make of their input.
fn validate_target(input: &AliasTargetInput) -> Result<(), KmsError> {
    let mut v = Validator::new();
    validate_alias_name(&mut v, &input.alias_name);
    validate_key_id(&mut v, "TargetKeyId", Some(&input.target_key_id));
    finish(v)?;
    check_alias_name(&input.alias_name)
}

pub fn create_alias(
    services: &Services,
    ctx: &RequestCtx,
    input: AliasTargetInput,
) -> Result<Empty, KmsError> {
    validate_target(&input)?;
    let (account, region) = (ctx.caller.account.as_str(), ctx.region.as_str());
    let alias_arn = model::alias_arn(region, account, &input.alias_name);
    let (mut txn, mut key) = write_authorized(services, |txn| {
        let key = k::resolve(services, txn, ctx, &input.target_key_id, false)?.key;
        authorize_identity(services, ctx, "kms:CreateAlias", &alias_arn, Vec::new())?;
        authorize_key(
            services,
            ctx,
            "kms:CreateAlias",
            &key,
            None,
            None,
            Vec::new(),
        )?;
        Ok(key)
    })?;
    // An alias and its key are always in the same account (KMS API reference, CreateAlias).
    if key.account != account {
        return Err(errors::key_not_found(&key.arn));
    }
    if model::load_alias(&*txn, account, region, &input.alias_name)?.is_some() {
        return Err(errors::already_exists(format!(
            "An alias with the name {alias_arn} already exists"
        )));
    }
    require_not_pending(&key)?;
    attach(&mut key, &input.alias_name)?;
    let alias = AliasRecord {
        v: RECORD_VERSION,
        name: input.alias_name,
        target_key_id: key.key_id.clone(),
        creation_date: ctx.now,
        last_updated: ctx.now,
    };
    model::save_alias(&mut *txn, account, region, &alias)?;
    model::save_key(&mut *txn, &key)?;
    commit(txn).map(|()| Empty {})
}

pub fn update_alias(
    services: &Services,
    ctx: &RequestCtx,
    input: AliasTargetInput,
) -> Result<Empty, KmsError> {
    validate_target(&input)?;
    let (account, region) = (ctx.caller.account.as_str(), ctx.region.as_str());
    let alias_arn = model::alias_arn(region, account, &input.alias_name);
    let (mut txn, (mut alias, mut new_key, old_key)) = write_authorized(services, |txn| {
        let alias = model::load_alias(txn, account, region, &input.alias_name)?
            .ok_or_else(|| errors::alias_not_found(&alias_arn))?;
        let new_key = k::resolve(services, txn, ctx, &input.target_key_id, false)?.key;
        let old_key = model::load_key(txn, account, region, &alias.target_key_id)?;
        authorize_identity(services, ctx, "kms:UpdateAlias", &alias_arn, Vec::new())?;
        if let Some(old) = &old_key {
            authorize_key(
                services,
                ctx,
                "kms:UpdateAlias",
                old,
                None,
                None,
                Vec::new(),
            )?;
        }
        authorize_key(
            services,
            ctx,
            "kms:UpdateAlias",
            &new_key,
            None,
            None,
            Vec::new(),
        )?;
        Ok((alias, new_key, old_key))
    })?;
    if new_key.account != account {
        return Err(errors::key_not_found(&new_key.arn));
    }
    if new_key.is_aws_managed() {
        return Err(errors::unsupported(format!(
            "{} is an AWS managed key; an alias cannot point to it.",
            new_key.arn
        )));
    }
    // The new target may not be pending deletion; the old one may (KMS API reference).
    require_not_pending(&new_key)?;
    match old_key {
        Some(mut old) if old.key_id != new_key.key_id => {
            detach(&mut old, &alias.name);
            model::save_key(&mut *txn, &old)?;
            attach(&mut new_key, &alias.name)?;
        }
        Some(_) => {}
        None => attach(&mut new_key, &alias.name)?,
    }
    alias.target_key_id = new_key.key_id.clone();
    alias.last_updated = ctx.now;
    model::save_key(&mut *txn, &new_key)?;
    model::save_alias(&mut *txn, account, region, &alias)?;
    commit(txn).map(|()| Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteAliasInput {
    pub alias_name: String,
}

pub fn delete_alias(
    services: &Services,
    ctx: &RequestCtx,
    input: DeleteAliasInput,
) -> Result<Empty, KmsError> {
    let mut v = Validator::new();
    validate_alias_name(&mut v, &input.alias_name);
    finish(v)?;
    check_alias_name(&input.alias_name)?;
    let (account, region) = (ctx.caller.account.as_str(), ctx.region.as_str());
    let alias_arn = model::alias_arn(region, account, &input.alias_name);
    let (mut txn, (alias, key)) = write_authorized(services, |txn| {
        let alias = model::load_alias(txn, account, region, &input.alias_name)?
            .ok_or_else(|| errors::alias_not_found(&alias_arn))?;
        authorize_identity(services, ctx, "kms:DeleteAlias", &alias_arn, Vec::new())?;
        let key = model::load_key(txn, account, region, &alias.target_key_id)?;
        if let Some(key) = &key {
            authorize_key(
                services,
                ctx,
                "kms:DeleteAlias",
                key,
                None,
                None,
                Vec::new(),
            )?;
        }
        Ok((alias, key))
    })?;
    if let Some(mut key) = key {
        detach(&mut key, &alias.name);
        model::save_key(&mut *txn, &key)?;
    }
    txn.delete(&model::alias_key(account, region, &alias.name))
        .map_err(internal)?;
    commit(txn).map(|()| Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesInput {
    pub key_id: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasListEntry {
    pub alias_name: String,
    pub alias_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_key_id: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub creation_date: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub last_updated_date: Option<OffsetDateTime>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesOutput {
    pub aliases: Vec<AliasListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

pub fn list_aliases(
    services: &Services,
    ctx: &RequestCtx,
    input: ListAliasesInput,
) -> Result<ListAliasesOutput, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", input.key_id.as_deref());
    v.range("Limit", input.limit, 1, 1000);
    v.length("Marker", input.marker.as_deref(), 1, 1024);
    finish(v)?;
    if input
        .marker
        .as_deref()
        .is_some_and(|m| !m.starts_with("alias/"))
    {
        return Err(errors::invalid_marker());
    }
    // Documented range 1–100, default 50 (AWS KMS API Reference, ListAliases; the botocore
    // model allows up to 1000).
    let limit = page_limit(input.limit, 50, 100);
    let (account, region) = (ctx.caller.account.as_str(), ctx.region.as_str());
    let txn = read(services)?;
    authorize_identity(services, ctx, "kms:ListAliases", "*", Vec::new())?;
    let filter = match &input.key_id {
        Some(id) => Some(k::resolve(services, &*txn, ctx, id, false)?.key.key_id),
        None => None,
    };
    let prefix = model::alias_prefix(account, region);
    let mut records: Vec<AliasRecord> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = tresor_core::record::scan::<AliasRecord>(&*txn, &prefix, after.as_deref(), 1000)
            .map_err(internal)?;
        let done = page.len() < 1000;
        after = page.last().map(|(key, _)| key.clone());
        records.extend(page.into_iter().map(|(_, r)| r));
        if done {
            break;
        }
    }
    let mut entries: Vec<AliasListEntry> = records
        .into_iter()
        .filter(|a| filter.as_ref().is_none_or(|f| &a.target_key_id == f))
        .map(|a| AliasListEntry {
            alias_arn: model::alias_arn(region, account, &a.name),
            alias_name: a.name,
            target_key_id: Some(a.target_key_id),
            creation_date: Some(a.creation_date),
            last_updated_date: Some(a.last_updated),
        })
        .collect();
    // Predefined aliases of AWS-managed keys are listed before their key exists, without a
    // target (KMS API reference, ListAliases).
    if filter.is_none() {
        for service in MANAGED_SERVICES {
            let name = format!("alias/aws/{service}");
            if !entries.iter().any(|e| e.alias_name == name) {
                entries.push(AliasListEntry {
                    alias_arn: model::alias_arn(region, account, &name),
                    alias_name: name,
                    target_key_id: None,
                    creation_date: None,
                    last_updated_date: None,
                });
            }
        }
    }
    entries.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
    if let Some(m) = &input.marker {
        entries.retain(|e| e.alias_name.as_str() > m.as_str());
    }
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    let next_marker = truncated
        .then(|| entries.last().map(|e| e.alias_name.clone()))
        .flatten();
    Ok(ListAliasesOutput {
        aliases: entries,
        next_marker,
        truncated,
    })
}
