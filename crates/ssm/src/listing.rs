//! GetParametersByPath, DescribeParameters, GetParameterHistory: prefix scans over the
//! ordered store with opaque, never-repeating `NextToken`s (the AWS SDK paginators stop when
//! a token repeats; page sizes per the botocore model).
//!
//! A page may hold fewer than `MaxResults` items — even none — with a `NextToken` when the
//! scan budget runs out first, as AWS documents for both listing operations.

use crate::errors::SsmError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_core::{RequestCtx, Services};
use tresor_crypto::Zeroizing;
use tresor_store::ReadTxn;
use tresor_wire::validate::Validator;

use crate::access::{authorize, load_authorized, load_version};
use crate::errors;
use crate::filters::{Filters, ParameterStringFilter, ParametersFilter, Use};
use crate::model::{ParameterRecord, StoredValue, keys};
use crate::names::{self, Target};
use crate::params::render;
use crate::secure;
use crate::shapes::{InlinePolicy, ParameterOut, inline_policies};

/// Records examined per request before a page is cut short.
const SCAN_BUDGET: usize = 1000;
const BATCH: usize = 100;

fn encode_token(kind: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{position}"))
}

fn decode_token(kind: &str, token: &str) -> Result<String, SsmError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| errors::invalid_next_token())?;
    let text = String::from_utf8(bytes).map_err(|_| errors::invalid_next_token())?;
    text.strip_prefix(kind)
        .and_then(|r| r.strip_prefix(':'))
        .map(str::to_string)
        .ok_or_else(errors::invalid_next_token)
}

/// Scans parameter records under `prefix` from `after`, keeping those `keep` accepts (and
/// maps), until `max` are kept or the budget is spent. Returns the kept items and the
/// position to resume from, if anything may remain.
fn scan_records<T>(
    txn: &dyn ReadTxn,
    prefix: &str,
    after: Option<String>,
    max: usize,
    mut keep: impl FnMut(&str, ParameterRecord) -> Result<Option<T>, SsmError>,
) -> Result<(Vec<T>, Option<String>), SsmError> {
    let mut out = Vec::new();
    let mut position = after;
    let mut examined = 0;
    loop {
        let batch =
            tresor_core::record::scan::<ParameterRecord>(txn, prefix, position.as_deref(), BATCH)
                .map_err(errors::internal)?;
        let full_batch = batch.len() == BATCH;
        for (key, rec) in batch {
            examined += 1;
            let relative = key[prefix.len()..].to_string();
            if let Some(item) = keep(&relative, rec)? {
                out.push(item);
            }
            position = Some(key);
            if out.len() >= max || examined >= SCAN_BUDGET {
                // Anything left after this key?
                let more = !txn
                    .scan(prefix, position.as_deref(), 1)
                    .map_err(errors::internal)?
                    .is_empty();
                return Ok((out, position.filter(|_| more)));
            }
        }
        if !full_batch {
            return Ok((out, None));
        }
    }
}

// ---- GetParametersByPath --------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersByPathInput {
    pub path: String,
    pub recursive: Option<bool>,
    pub parameter_filters: Option<Vec<ParameterStringFilter>>,
    pub with_decryption: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersByPathOutput {
    pub parameters: Vec<ParameterOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

pub fn get_parameters_by_path(
    services: &Services,
    ctx: &RequestCtx,
    input: GetParametersByPathInput,
) -> Result<GetParametersByPathOutput, SsmError> {
    let mut v = Validator::new();
    v.length("Path", Some(&input.path), 1, 2048);
    v.range("MaxResults", input.max_results, 1, 10);
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)?;
    let path = names::path(&input.path)?;
    if names::is_reference_path(&path) {
        // The reference namespace cannot be listed (GetParameter and GetParameters only: AWS
        // Systems Manager User Guide, "Referencing AWS Secrets Manager secrets from Parameter
        // Store parameters"); AWS's exact answer is not public, so this one is unconfirmed.
        return Err(errors::validation(
            "GetParametersByPath is not supported for the /aws/reference/secretsmanager path. Use GetParameter or GetParameters.",
        ));
    }
    let filters = Filters::parse(
        input.parameter_filters.as_deref().unwrap_or_default(),
        Use::ByPath,
    )?;
    let after = input
        .next_token
        .as_deref()
        .map(|t| decode_token("p", t))
        .transpose()?;
    let max = usize::try_from(input.max_results.unwrap_or(10)).unwrap_or(10);
    let recursive = input.recursive.unwrap_or(false);
    let with_decryption = input.with_decryption.unwrap_or(false);
    let txn = services.store().begin_read().map_err(errors::internal)?;
    // Authorized once, on the path — not per returned parameter (AWS Systems Manager API
    // Reference, GetParametersByPath `Recursive`: a deny on `/a/b` does not hide it from a
    // recursive read of `/a`).
    let path_arn = if path == "/" {
        format!(
            "arn:{}:ssm:{}:{}:parameter/",
            tresor_policy::arn::partition_of_region(&ctx.region),
            ctx.region,
            ctx.caller.account
        )
    } else {
        names::arn_in(ctx, &path)
    };
    authorize(
        services,
        ctx,
        "ssm:GetParametersByPath",
        &path_arn,
        Vec::new(),
    )?;

    let base = keys::param_prefix(&ctx.caller.account, &ctx.region);
    let sub = names::path_prefix(&path);
    let prefix = format!("{base}{sub}");
    let after = after.map(|a| format!("{base}{a}"));
    let labels = filters.labels().map(<[String]>::to_vec);
    let (parameters, position) = scan_records(&*txn, &prefix, after, max, |relative, rec| {
        if !recursive && relative.contains('/') {
            return Ok(None);
        }
        if !filters.matches(&rec) {
            return Ok(None);
        }
        let version = match &labels {
            Some(wanted) => match wanted.iter().find_map(|l| rec.labels.get(l)) {
                Some(v) => *v,
                None => return Ok(None),
            },
            None => rec.version,
        };
        let Some(ver) = load_version(&*txn, ctx, &rec.name, version)? else {
            return Ok(None);
        };
        render(services, &*txn, ctx, &rec, &ver, with_decryption, None).map(Some)
    })?;
    Ok(GetParametersByPathOutput {
        parameters,
        next_token: position.map(|p| encode_token("p", &p[base.len()..])),
    })
}

// ---- DescribeParameters ------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeParametersInput {
    pub filters: Option<Vec<ParametersFilter>>,
    pub parameter_filters: Option<Vec<ParameterStringFilter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub shared: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterMetadata {
    pub name: String,
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(rename = "Type")]
    pub param_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(with = "tresor_wire::json::epoch_seconds")]
    pub last_modified_date: OffsetDateTime,
    pub last_modified_user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    pub version: i64,
    pub tier: String,
    pub policies: Vec<InlinePolicy>,
    pub data_type: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeParametersOutput {
    pub parameters: Vec<ParameterMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

pub fn describe_parameters(
    services: &Services,
    ctx: &RequestCtx,
    input: DescribeParametersInput,
) -> Result<DescribeParametersOutput, SsmError> {
    let mut v = Validator::new();
    v.range("MaxResults", input.max_results, 1, 50);
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)?;
    let legacy = input.filters.as_deref().unwrap_or_default();
    let modern = input.parameter_filters.as_deref().unwrap_or_default();
    if !legacy.is_empty() && !modern.is_empty() {
        // Moto's text, which moto reports measuring against AWS (unconfirmed).
        return Err(errors::validation(
            "You can use either Filters or ParameterFilters in a single request.",
        ));
    }
    let filters = if legacy.is_empty() {
        Filters::parse(modern, Use::Describe)?
    } else {
        Filters::parse_legacy(legacy)?
    };
    let after = input
        .next_token
        .as_deref()
        .map(|t| decode_token("d", t))
        .transpose()?;
    let txn = services.store().begin_read().map_err(errors::internal)?;
    // DescribeParameters has no resource type in the Service Authorization Reference: `*`.
    authorize(services, ctx, "ssm:DescribeParameters", "*", Vec::new())?;
    if input.shared.unwrap_or(false) {
        // Parameters shared through AWS RAM do not exist in tresor.
        return Ok(DescribeParametersOutput {
            parameters: Vec::new(),
            next_token: None,
        });
    }
    let max = usize::try_from(input.max_results.unwrap_or(50)).unwrap_or(50);
    let base = keys::param_prefix(&ctx.caller.account, &ctx.region);
    let after = after.map(|a| format!("{base}{a}"));
    let (parameters, position) = scan_records(&*txn, &base, after, max, |_, rec| {
        if !filters.matches(&rec) {
            return Ok(None);
        }
        Ok(Some(ParameterMetadata {
            arn: names::arn_in(ctx, &rec.name),
            param_type: rec.param_type.as_str().to_string(),
            key_id: rec.key_id.clone(),
            last_modified_date: rec.last_modified_date,
            last_modified_user: rec.last_modified_user.clone(),
            description: rec.description.clone(),
            allowed_pattern: rec.allowed_pattern.clone(),
            version: rec.version,
            tier: rec.tier.as_str().to_string(),
            policies: inline_policies(&rec.policies),
            data_type: rec.data_type.clone(),
            name: rec.name,
        }))
    })?;
    Ok(DescribeParametersOutput {
        parameters,
        next_token: position.map(|p| encode_token("d", &p[base.len()..])),
    })
}

// ---- GetParameterHistory ---------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterHistoryInput {
    pub name: String,
    pub with_decryption: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterHistory {
    pub name: String,
    #[serde(rename = "Type")]
    pub param_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(with = "tresor_wire::json::epoch_seconds")]
    pub last_modified_date: OffsetDateTime,
    pub last_modified_user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(serialize_with = "crate::shapes::ser_secret_str")]
    pub value: Zeroizing<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    pub version: i64,
    pub labels: Vec<String>,
    pub tier: String,
    pub policies: Vec<InlinePolicy>,
    pub data_type: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterHistoryOutput {
    pub parameters: Vec<ParameterHistory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

pub fn get_parameter_history(
    services: &Services,
    ctx: &RequestCtx,
    input: GetParameterHistoryInput,
) -> Result<GetParameterHistoryOutput, SsmError> {
    let mut v = Validator::new();
    v.length("Name", Some(&input.name), 1, 2048);
    v.range("MaxResults", input.max_results, 1, 50);
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)?;
    let name = match names::read_target(ctx, &input.name)? {
        Target::Parameter {
            name,
            selector: None,
            ..
        } => name,
        // A selector names one version; history takes the parameter.
        Target::Parameter { .. } => return Err(errors::invalid_name()),
        // History does not apply to references (AWS Systems Manager User Guide, "Referencing
        // AWS Secrets Manager secrets from Parameter Store parameters"); the answer is
        // unconfirmed.
        Target::Reference { .. } => return Err(errors::parameter_not_found()),
    };
    let from = match input.next_token.as_deref() {
        Some(t) => Some(
            decode_token("h", t)?
                .parse::<i64>()
                .map_err(|_| errors::invalid_next_token())?,
        ),
        None => None,
    };
    let with_decryption = input.with_decryption.unwrap_or(false);
    let max = input.max_results.unwrap_or(50);
    let txn = services.store().begin_read().map_err(errors::internal)?;
    let rec = load_authorized(
        services,
        &*txn,
        ctx,
        "ssm:GetParameterHistory",
        &name,
        vec![],
    )?;
    let arn = names::arn_in(ctx, &name);
    let rec = rec.ok_or_else(errors::parameter_not_found)?;
    let start = from.map_or(rec.oldest_version, |f| f.max(rec.oldest_version));
    let end = (start + max - 1).min(rec.version);
    let mut parameters = Vec::new();
    for version in start..=end {
        let Some(ver) = load_version(&*txn, ctx, &name, version)? else {
            continue;
        };
        let value = match (&ver.value, with_decryption) {
            (StoredValue::Sealed { .. }, true) => {
                secure::open(services, &*txn, ctx, &arn, version, &ver.value)?
            }
            (v, _) => Zeroizing::new(secure::ciphertext_text(v)),
        };
        parameters.push(ParameterHistory {
            name: rec.name.clone(),
            param_type: ver.param_type.as_str().to_string(),
            key_id: ver.key_id.clone(),
            last_modified_date: ver.last_modified_date,
            last_modified_user: ver.last_modified_user.clone(),
            description: ver.description.clone(),
            value,
            allowed_pattern: ver.allowed_pattern.clone(),
            version,
            labels: rec.labels_of(version),
            tier: ver.tier.as_str().to_string(),
            policies: inline_policies(&ver.policies),
            data_type: ver.data_type.clone(),
        });
    }
    Ok(GetParameterHistoryOutput {
        parameters,
        next_token: (end < rec.version).then(|| encode_token("h", &(end + 1).to_string())),
    })
}
