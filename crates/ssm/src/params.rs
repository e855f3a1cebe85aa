//! PutParameter, GetParameter, GetParameters, DeleteParameter, DeleteParameters (AWS Systems
//! Manager API Reference).
//! Every write is one store transaction: the version record, the parameter record, the
//! dropped oldest version, the KMS data key (a managed key created on first use) and the
//! expiration job commit together or not at all.

use crate::errors::SsmError;
use serde::{Deserialize, Serialize};
use tresor_core::{RequestCtx, ServiceError, Services};
use tresor_crypto::Zeroizing;
use tresor_kms::envelope::DeferredNote;
use tresor_store::{ReadTxn, WriteTxn};
use tresor_wire::validate::Validator;

use crate::access::{self, authorize, begin_authorized_write, load_authorized, select_version};
use crate::errors;
use crate::model::{
    ExpirationJob, MAX_VERSIONS, ParameterRecord, ParameterType, RECORD_VERSION, StoredValue,
    VersionRecord, keys,
};
use crate::names::{self, Target};
use crate::policies;
use crate::secure;
use crate::shapes::{Empty, ParameterOut, Tag};
use crate::values;

// ---- PutParameter ------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutParameterInput {
    pub name: String,
    pub value: String,
    #[serde(rename = "Type")]
    pub param_type: Option<String>,
    pub description: Option<String>,
    pub key_id: Option<String>,
    pub overwrite: Option<bool>,
    pub allowed_pattern: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub tier: Option<String>,
    pub policies: Option<String>,
    pub data_type: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutParameterOutput {
    pub version: i64,
    pub tier: String,
}

const KEY_ID_PATTERN: &str = "Member must satisfy regular expression pattern: ^([a-zA-Z0-9:/_-]+)$";

fn validate_put(input: &PutParameterInput) -> Result<(), SsmError> {
    let mut v = Validator::new();
    v.length("Name", Some(&input.name), 1, 2048);
    if input.value.is_empty() {
        v.fail(
            "Value",
            None,
            "Member must have length greater than or equal to 1",
        );
    }
    if let Some(t) = &input.param_type
        && ParameterType::parse(t).is_none()
    {
        v.fail(
            "Type",
            Some(t),
            &format!(
                "Member must satisfy enum value set: {}",
                ParameterType::NAMES
            ),
        );
    }
    v.length("Description", input.description.as_deref(), 0, 1024);
    if let Some(k) = &input.key_id {
        v.length("KeyId", Some(k), 1, 256);
        let ok = k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'));
        if !ok {
            v.fail("KeyId", Some(k), KEY_ID_PATTERN);
        }
    }
    v.length("AllowedPattern", input.allowed_pattern.as_deref(), 0, 1024);
    if let Some(tags) = &input.tags {
        values::check_tags(&mut v, tags)?;
    }
    if let Some(t) = &input.tier
        && !matches!(t.as_str(), "Standard" | "Advanced" | "Intelligent-Tiering")
    {
        v.fail(
            "Tier",
            Some(t),
            "Member must satisfy enum value set: [Standard, Advanced, Intelligent-Tiering]",
        );
    }
    v.length("Policies", input.policies.as_deref(), 1, 4096);
    v.length("DataType", input.data_type.as_deref(), 0, 128);
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)
}

/// `{{…}}` would be a parameter reference: values may not contain one (PutParameter
/// `Value` documentation); what exactly AWS treats as one is unconfirmed.
fn has_nested_reference(value: &str) -> bool {
    value
        .find("{{")
        .is_some_and(|i| value[i + 2..].contains("}}"))
}

pub fn put_parameter(
    services: &Services,
    ctx: &RequestCtx,
    input: PutParameterInput,
) -> Result<PutParameterOutput, SsmError> {
    validate_put(&input)?;
    let overwrite = input.overwrite.unwrap_or(false);
    let tags = input.tags.as_deref().unwrap_or_default();
    if overwrite && !tags.is_empty() {
        // Moto's text, which moto reports measuring against AWS (unconfirmed).
        return Err(errors::validation(
            "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
        ));
    }
    let name = names::write_name(ctx, &input.name)?;
    if has_nested_reference(&input.value) {
        return Err(errors::validation(
            "Parameter value can't nest another parameter. Do not use \"{{}}\" in the value.",
        ));
    }
    let arn = names::arn_in(ctx, name);
    let head_key = keys::param(&ctx.caller.account, &ctx.region, name);
    // The parameter's record as read (a snapshot's or the write transaction's), once the
    // caller is allowed to put it.
    let authorized_head = |raw: Option<&[u8]>| {
        let existing = decode_head(&head_key, raw)?;
        let mut context = vec![("ssm:Overwrite".to_string(), overwrite.to_string())];
        context.extend(access::request_tag_context(
            tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
        ));
        context.extend(access::resource_tag_context(existing.as_ref()));
        authorize(services, ctx, "ssm:PutParameter", &arn, context)?;
        Ok::<_, SsmError>(existing)
    };
    let request = PutRequest {
        input: &input,
        name,
        arn: &arn,
        overwrite,
        tags,
    };

    // The whole write — authorization, the data key from KMS, the encryption, the records'
    // encoding — is first worked out on a read snapshot, outside the store's one writer: on a
    // busy server the writer is the bottleneck, and work done while holding it delays every
    // other write. A refused caller is answered from the snapshot without waiting for the
    // writer. The write transaction then stores the prepared records only if the parameter's
    // record (which every change of the parameter rewrites: versions, labels, tags,
    // deletion) is byte for byte the one the snapshot had, and no identity data changed in
    // between (the Authorizer's answer stands); otherwise, or if preparing failed, it works
    // the write out again inside the transaction, whose answer is final. Either way the
    // version number, the version limit and the labels are decided on the state the
    // transaction commits on.
    let identity = services.identity_generation();
    let prepared = {
        let snapshot = services.store().begin_read().map_err(errors::internal)?;
        let raw = snapshot.get(&head_key).map_err(errors::internal)?;
        let existing = authorized_head(raw.as_deref())?;
        plan_put(
            services,
            ctx,
            &request,
            existing.as_ref(),
            Sealer::Snapshot(&*snapshot),
        )
        .ok()
        .flatten()
        .map(|plan| (raw, plan))
    };

    let mut txn = services.store().begin_write().map_err(errors::internal)?;
    let raw = txn.get(&head_key).map_err(errors::internal)?;
    let plan = match prepared {
        Some((seen, plan)) if seen == raw && services.identity_generation() == identity => plan,
        _ => {
            let existing = authorized_head(raw.as_deref())?;
            plan_put(
                services,
                ctx,
                &request,
                existing.as_ref(),
                Sealer::Write(&mut *txn),
            )?
            .ok_or(SsmError::Internal)?
        }
    };
    for op in &plan.ops {
        match op {
            StoreOp::Delete(key) => {
                txn.delete(key).map_err(errors::internal)?;
            }
            StoreOp::Put(key, bytes) => txn.put(key, bytes).map_err(errors::internal)?,
        }
    }
    if let Some(note) = plan.note {
        // Before the commit, which writes the request's audit record into the transaction.
        note.note(ctx);
    }
    txn.commit().map_err(errors::internal)?;
    Ok(plan.output)
}

/// A PutParameter request after validation.
struct PutRequest<'a> {
    input: &'a PutParameterInput,
    /// The name as written (validated).
    name: &'a str,
    arn: &'a str,
    overwrite: bool,
    tags: &'a [Tag],
}

/// Where a write seals its value: on a read snapshot (the write is prepared before it takes
/// the writer), or in the write transaction, which may create the AWS-managed key.
enum Sealer<'a> {
    Snapshot(&'a dyn ReadTxn),
    Write(&'a mut dyn WriteTxn),
}

enum StoreOp {
    Delete(String),
    Put(String, Vec<u8>),
}

/// A PutParameter worked out in full from the parameter's current record: the store changes
/// in order, and the answer.
struct PutPlan {
    ops: Vec<StoreOp>,
    /// The GenerateDataKey call of a value sealed on a snapshot, noted once it is stored.
    note: Option<DeferredNote>,
    output: PutParameterOutput,
}

fn decode_head(key: &str, raw: Option<&[u8]>) -> Result<Option<ParameterRecord>, SsmError> {
    raw.map(|bytes| {
        serde_json::from_slice(bytes)
            .map_err(|e| errors::internal(ServiceError::Corrupt(format!("record {key}: {e}"))))
    })
    .transpose()
}

fn encode<T: Serialize>(key: String, value: &T) -> Result<StoreOp, SsmError> {
    let bytes = tresor_wire::json::to_vec(value)
        .map_err(|e| errors::internal(ServiceError::Corrupt(format!("encode {key}: {e}"))))?;
    Ok(StoreOp::Put(key, bytes))
}

/// Works out the write of `request` on a parameter whose record is `prev`. `Ok(None)` only
/// when sealing on a snapshot is not possible.
fn plan_put(
    services: &Services,
    ctx: &RequestCtx,
    request: &PutRequest<'_>,
    prev: Option<&ParameterRecord>,
    sealer: Sealer<'_>,
) -> Result<Option<PutPlan>, SsmError> {
    let PutRequest {
        input,
        name,
        arn,
        overwrite,
        tags,
    } = *request;
    let (account, region) = (ctx.caller.account.as_str(), ctx.region.as_str());
    if prev.is_some() && !overwrite {
        return Err(errors::already_exists());
    }
    let mut ops = Vec::new();

    let param_type = match (&input.param_type, prev) {
        (Some(t), _) => ParameterType::parse(t)
            .ok_or_else(|| errors::validation("Unsupported parameter type."))?,
        (None, Some(p)) => p.param_type,
        // Moto's text (unconfirmed).
        (None, None) => {
            return Err(errors::validation(
                "A parameter type is required when you create a parameter.",
            ));
        }
    };
    let key_id = if param_type == ParameterType::SecureString {
        Some(
            input
                .key_id
                .clone()
                .or_else(|| {
                    prev.filter(|p| p.param_type == ParameterType::SecureString)
                        .and_then(|p| p.key_id.clone())
                })
                .unwrap_or_else(|| secure::DEFAULT_KEY_ID.to_string()),
        )
    } else if input.key_id.is_some() {
        // Unconfirmed: a key only makes sense for SecureString, so tresor refuses one elsewhere.
        return Err(errors::validation(
            "KeyId is valid only for parameters of type SecureString.",
        ));
    } else {
        None
    };
    // Unspecified optional fields keep their previous values on overwrite (moto's behavior;
    // unconfirmed).
    let description = input
        .description
        .clone()
        .or_else(|| prev.and_then(|p| p.description.clone()));
    let allowed_pattern = input
        .allowed_pattern
        .clone()
        .or_else(|| prev.and_then(|p| p.allowed_pattern.clone()))
        .filter(|p| !p.is_empty());
    let data_type = input
        .data_type
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| prev.map(|p| p.data_type.clone()))
        .unwrap_or_else(|| "text".to_string());
    values::check_data_type(&data_type, param_type.as_str(), &input.value)?;
    if let Some(pattern) = &allowed_pattern {
        let re = values::compile_pattern(pattern)?;
        if !re.is_match(&input.value) {
            return Err(errors::pattern_mismatch(pattern));
        }
    }
    let new_policies = input
        .policies
        .as_deref()
        .map(|text| policies::parse(text, ctx.now))
        .transpose()?;
    let policy_records = match &new_policies {
        Some(p) => p.policies.clone(),
        None => prev.map(|p| p.policies.clone()).unwrap_or_default(),
    };
    let tier = values::resolve_tier(
        input.tier.as_deref(),
        prev.map(|p| p.tier),
        input.value.len(),
        !policy_records.is_empty(),
        &data_type,
    )?;

    let version = prev.map_or(1, |p| p.version + 1);
    let mut oldest_version = prev.map_or(1, |p| p.oldest_version);
    if let Some(p) = prev
        && version - oldest_version >= MAX_VERSIONS
    {
        // The 101st version drops the oldest — unless a label holds it (botocore model,
        // ParameterMaxVersionLimitExceeded).
        if p.labels.values().any(|v| *v == oldest_version) {
            return Err(errors::max_versions(&p.name, oldest_version));
        }
        ops.push(StoreOp::Delete(keys::version(
            account,
            region,
            name,
            oldest_version,
        )));
        oldest_version += 1;
    }

    let mut note = None;
    let value = if param_type == ParameterType::SecureString {
        let key = key_id.as_deref().filter(|k| *k != secure::DEFAULT_KEY_ID);
        let plaintext = input.value.as_bytes();
        match sealer {
            Sealer::Snapshot(snapshot) => {
                let Some((value, call)) =
                    secure::seal_on_snapshot(services, snapshot, ctx, arn, version, key, plaintext)
                else {
                    return Ok(None);
                };
                note = Some(call);
                value
            }
            // Writes the AWS-managed key into the transaction when it is created.
            Sealer::Write(txn) => secure::seal(services, txn, ctx, arn, version, key, plaintext)?,
        }
    } else {
        StoredValue::Plain(input.value.clone())
    };

    let mut expiration_job = prev.and_then(|p| p.expiration_job.clone());
    if let Some(parsed) = &new_policies {
        // New policies replace the old ones, and with them any pending expiration.
        if let Some(old) = expiration_job.take() {
            ops.push(StoreOp::Delete(old));
        }
        if let Some(at) = parsed.expiration {
            let job_key = keys::job(at.unix_timestamp(), account, region, name);
            let job = ExpirationJob {
                v: RECORD_VERSION,
                account: account.to_string(),
                region: region.to_string(),
                canonical: names::canonical(name).to_string(),
            };
            ops.push(encode(job_key.clone(), &job)?);
            expiration_job = Some(job_key);
        }
    }

    let version_record = VersionRecord {
        v: RECORD_VERSION,
        version,
        param_type,
        value,
        key_id: key_id.clone(),
        description: description.clone(),
        allowed_pattern: allowed_pattern.clone(),
        tier,
        policies: policy_records.clone(),
        data_type: data_type.clone(),
        last_modified_date: ctx.now,
        last_modified_user: ctx.caller.arn.clone(),
    };
    let head = ParameterRecord {
        v: RECORD_VERSION,
        name: prev.map_or_else(|| name.to_string(), |p| p.name.clone()),
        param_type,
        version,
        oldest_version,
        tier,
        data_type,
        description,
        allowed_pattern,
        key_id,
        policies: policy_records,
        last_modified_date: ctx.now,
        last_modified_user: ctx.caller.arn.clone(),
        labels: prev.map(|p| p.labels.clone()).unwrap_or_default(),
        tags: match prev {
            Some(p) => p.tags.clone(),
            None => dedupe_tags(tags),
        },
        expiration_job,
    };
    ops.push(encode(
        keys::version(account, region, name, version),
        &version_record,
    )?);
    ops.push(encode(keys::param(account, region, name), &head)?);
    Ok(Some(PutPlan {
        ops,
        note,
        output: PutParameterOutput {
            version,
            tier: tier.as_str().to_string(),
        },
    }))
}

/// Tags in request order, a later duplicate key replacing an earlier one.
pub fn dedupe_tags(tags: &[Tag]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in tags {
        match out.iter_mut().find(|(k, _)| *k == t.key) {
            Some(slot) => slot.1 = t.value.clone(),
            None => out.push((t.key.clone(), t.value.clone())),
        }
    }
    out
}

// ---- reads --------------------------------------------------------------------------------

/// A version as GetParameter & co. show it: the value decrypted as the caller when asked,
/// the ciphertext otherwise (AWS KMS Developer Guide, "How AWS Systems Manager Parameter
/// Store uses AWS KMS").
pub fn render(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    rec: &ParameterRecord,
    ver: &VersionRecord,
    with_decryption: bool,
    selector: Option<String>,
) -> Result<ParameterOut, SsmError> {
    let arn = names::arn_in(ctx, &rec.name);
    let value = match (&ver.value, with_decryption) {
        (StoredValue::Sealed { .. }, true) => {
            secure::open(services, txn, ctx, &arn, ver.version, &ver.value)?
        }
        (v, _) => Zeroizing::new(secure::ciphertext_text(v)),
    };
    Ok(ParameterOut {
        name: rec.name.clone(),
        param_type: ver.param_type.as_str().to_string(),
        value: Some(value),
        version: ver.version,
        selector,
        source_result: None,
        last_modified_date: ver.last_modified_date,
        arn,
        data_type: Some(ver.data_type.clone()),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterInput {
    pub name: String,
    pub with_decryption: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterOutput {
    pub parameter: ParameterOut,
}

/// The outcome of reading one name: found, or not found in one of AWS's ways.
struct ReadRequest<'a> {
    action: &'a str,
    name: &'a str,
    selector: Option<&'a names::Selector>,
    selector_text: Option<&'a str>,
    with_decryption: bool,
}

fn read_one(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    req: ReadRequest<'_>,
) -> Result<ParameterOut, SsmError> {
    let ReadRequest {
        action,
        name,
        selector,
        selector_text,
        with_decryption,
    } = req;
    let rec = load_authorized(services, txn, ctx, action, name, vec![])?;
    let rec = rec.ok_or_else(errors::parameter_not_found)?;
    let version = select_version(&rec, selector)?;
    let ver = services
        .records()
        .get::<VersionRecord>(
            txn,
            &keys::version(&ctx.caller.account, &ctx.region, name, version),
        )
        .map_err(errors::internal)?
        .map(|v| (*v).clone())
        .ok_or_else(|| errors::version_not_found(&rec.name, version))?;
    render(
        services,
        txn,
        ctx,
        &rec,
        &ver,
        with_decryption,
        selector_text.map(str::to_string),
    )
}

pub fn get_parameter(
    services: &Services,
    ctx: &RequestCtx,
    input: GetParameterInput,
) -> Result<GetParameterOutput, SsmError> {
    let mut v = Validator::new();
    v.length("Name", Some(&input.name), 1, 2048);
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)?;
    let with_decryption = input.with_decryption.unwrap_or(false);
    let parameter = match names::read_target(ctx, &input.name)? {
        Target::Reference {
            name,
            secret_id,
            selector,
        } => crate::reference::get(
            services,
            ctx,
            "ssm:GetParameter",
            &name,
            &secret_id,
            selector.as_deref(),
            with_decryption,
        )?,
        Target::Parameter {
            name,
            selector,
            selector_text,
        } => {
            // Lazy: a read served from the record cache runs no SQL.
            let txn = services
                .store()
                .begin_read_lazy()
                .map_err(errors::internal)?;
            read_one(
                services,
                &*txn,
                ctx,
                ReadRequest {
                    action: "ssm:GetParameter",
                    name: &name,
                    selector: selector.as_ref(),
                    selector_text: selector_text.as_deref(),
                    with_decryption,
                },
            )?
        }
    };
    Ok(GetParameterOutput { parameter })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersInput {
    pub names: Vec<String>,
    pub with_decryption: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersOutput {
    pub parameters: Vec<ParameterOut>,
    pub invalid_parameters: Vec<String>,
}

fn validate_names(names: &[String]) -> Result<(), SsmError> {
    let mut v = Validator::new();
    if names.is_empty() {
        v.fail(
            "Names",
            Some("[]"),
            "Member must have length greater than or equal to 1",
        );
    } else if names.len() > 10 {
        v.fail(
            "Names",
            None,
            "Member must have length less than or equal to 10",
        );
    }
    for n in names {
        v.length("Names.member", Some(n), 1, 2048);
    }
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)
}

/// Errors that put a name into `InvalidParameters` instead of failing the call. Permission
/// failures (and internal errors) fail the whole call.
fn is_per_name(e: &SsmError) -> bool {
    matches!(
        e,
        SsmError::ParameterNotFound
            | SsmError::ReferencedSecretNotFound(_)
            | SsmError::ParameterVersionNotFound(_)
            | SsmError::Validation(_)
            | SsmError::HierarchyLevelLimitExceeded(_)
    )
}

pub fn get_parameters(
    services: &Services,
    ctx: &RequestCtx,
    input: GetParametersInput,
) -> Result<GetParametersOutput, SsmError> {
    validate_names(&input.names)?;
    let with_decryption = input.with_decryption.unwrap_or(false);
    let mut parameters: Vec<ParameterOut> = Vec::new();
    let mut invalid = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let txn = services.store().begin_read().map_err(errors::internal)?;
    for raw in &input.names {
        if seen.contains(&raw.as_str()) {
            continue;
        }
        seen.push(raw);
        let result = names::read_target(ctx, raw).and_then(|target| match target {
            Target::Reference {
                name,
                secret_id,
                selector,
            } => crate::reference::get(
                services,
                ctx,
                "ssm:GetParameters",
                &name,
                &secret_id,
                selector.as_deref(),
                with_decryption,
            ),
            Target::Parameter {
                name,
                selector,
                selector_text,
            } => read_one(
                services,
                &*txn,
                ctx,
                ReadRequest {
                    action: "ssm:GetParameters",
                    name: &name,
                    selector: selector.as_ref(),
                    selector_text: selector_text.as_deref(),
                    with_decryption,
                },
            ),
        });
        match result {
            Ok(p) => parameters.push(p),
            Err(e) if is_per_name(&e) => invalid.push(raw.clone()),
            Err(e) => return Err(e),
        }
    }
    parameters.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(GetParametersOutput {
        parameters,
        invalid_parameters: invalid,
    })
}

// ---- deletes ------------------------------------------------------------------------------

/// Removes a parameter: every retained version, the record and its pending job.
pub fn remove(
    txn: &mut dyn WriteTxn,
    account: &str,
    region: &str,
    rec: &ParameterRecord,
) -> Result<(), SsmError> {
    let prefix = keys::version_prefix(account, region, &rec.name);
    loop {
        let batch = txn.scan(&prefix, None, 200).map_err(errors::internal)?;
        if batch.is_empty() {
            break;
        }
        for (k, _) in batch {
            txn.delete(&k).map_err(errors::internal)?;
        }
    }
    if let Some(job) = &rec.expiration_job {
        txn.delete(job).map_err(errors::internal)?;
    }
    txn.delete(&keys::param(account, region, &rec.name))
        .map_err(errors::internal)?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteParameterInput {
    pub name: String,
}

pub fn delete_parameter(
    services: &Services,
    ctx: &RequestCtx,
    input: DeleteParameterInput,
) -> Result<Empty, SsmError> {
    let mut v = Validator::new();
    v.length("Name", Some(&input.name), 1, 2048);
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)?;
    let name = names::write_name(ctx, &input.name)?;
    let (mut txn, rec) = begin_authorized_write(services, |txn| {
        load_authorized(services, txn, ctx, "ssm:DeleteParameter", name, vec![])
    })?;
    let rec = rec.ok_or_else(errors::parameter_not_found)?;
    remove(&mut *txn, &ctx.caller.account, &ctx.region, &rec)?;
    txn.commit().map_err(errors::internal)?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteParametersInput {
    pub names: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteParametersOutput {
    pub deleted_parameters: Vec<String>,
    pub invalid_parameters: Vec<String>,
}

pub fn delete_parameters(
    services: &Services,
    ctx: &RequestCtx,
    input: DeleteParametersInput,
) -> Result<DeleteParametersOutput, SsmError> {
    validate_names(&input.names)?;
    // Every name is authorized (and its parameter found) before anything is removed.
    let (mut txn, found) = begin_authorized_write(services, |txn| {
        let mut found: Vec<(&String, Option<ParameterRecord>)> = Vec::new();
        for raw in &input.names {
            if found.iter().any(|(seen, _)| *seen == raw) {
                continue;
            }
            let rec = match names::write_name(ctx, raw) {
                Ok(name) => {
                    load_authorized(services, txn, ctx, "ssm:DeleteParameters", name, vec![])?
                }
                Err(e @ SsmError::AccessDenied(_)) => return Err(e),
                Err(_) => None,
            };
            found.push((raw, rec));
        }
        Ok(found)
    })?;
    let mut deleted = Vec::new();
    let mut invalid = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    for (raw, rec) in found {
        match rec {
            // Two spellings of one name: the second finds it gone, as it would have in order.
            Some(rec) if removed.contains(&rec.name) => invalid.push(raw.clone()),
            Some(rec) => {
                removed.push(rec.name.clone());
                remove(&mut *txn, &ctx.caller.account, &ctx.region, &rec)?;
                deleted.push(raw.clone());
            }
            None => invalid.push(raw.clone()),
        }
    }
    txn.commit().map_err(errors::internal)?;
    Ok(DeleteParametersOutput {
        deleted_parameters: deleted,
        invalid_parameters: invalid,
    })
}
