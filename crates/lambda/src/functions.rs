//! The function lifecycle: CreateFunction, GetFunction, GetFunctionConfiguration,
//! ListFunctions, UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction.
//!
//! Each operation names its IAM action (`lambda:<Op>`) and the function ARN to the
//! Authorizer together with the function's resource policy; setting an execution role also
//! authorizes `iam:PassRole` on it (AWS Lambda Developer Guide, "Lambda execution role").
//! Every write is one store transaction; the package is sealed under the root key.

use std::collections::BTreeMap;
use std::io::Cursor;

use tresor_core::authz::{AuthzRequest, ResourcePolicy};
use tresor_core::{RequestCtx, Services, record};
use tresor_store::ReadTxn;

use crate::errors::{LambdaError, function_not_found, invalid_parameter};
use crate::model::{
    self, CodeRecord, DEFAULT_MEMORY, DEFAULT_TIMEOUT, FunctionRecord, FunctionRef, MAX_TIMEOUT,
    RECORD_VERSION, keys,
};
use crate::shapes::*;

pub use crate::model::{LAMBDA_PRINCIPAL, UNZIP_MESSAGE};

/// Direct-upload limit of a zipped package (Lambda quotas: 50 MB).
const MAX_ZIP_BYTES: usize = 50 * 1024 * 1024;

/// The resource policy document of a function, as `GetPolicy` returns it.
pub fn policy_document(statements: &[serde_json::Value]) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": statements,
    })
    .to_string()
}

/// Asks the Authorizer whether the caller may `action` on `arn`, with the function's resource
/// policy when it has one.
pub(crate) fn authorize(
    services: &Services,
    ctx: &RequestCtx,
    action: &str,
    arn: &str,
    record: Option<&FunctionRecord>,
) -> Result<(), LambdaError> {
    let doc = record
        .filter(|r| !r.policy.is_empty())
        .map(|r| policy_document(&r.policy));
    let mut req = AuthzRequest::new(action, arn);
    req.resource_policy = doc.as_deref().map(ResourcePolicy::Generic);
    services.authorize(ctx, &req)?;
    Ok(())
}

/// Resolves `FunctionName` (and `Qualifier`), reads the record, authorizes `action`: the
/// common start of every operation on one function. A missing function is reported only to a
/// caller the policies allow.
pub(crate) fn load(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    action: &str,
    function_name: &str,
    qualifier: Option<&str>,
) -> Result<(FunctionRef, FunctionRecord), LambdaError> {
    let f = model::parse_function_name(function_name, &ctx.caller.account, &ctx.region)?;
    let record: Option<FunctionRecord> =
        record::get(txn, &keys::function(&f.account, &f.region, &f.name))?;
    authorize(services, ctx, action, &f.arn(), record.as_ref())?;
    model::check_qualifier(&f, qualifier)?;
    if f.region != ctx.region {
        return Err(function_not_found(&f.qualified_arn()));
    }
    let record = record.ok_or_else(|| function_not_found(&f.qualified_arn()))?;
    Ok((f, record))
}

/// [`load`] in a read snapshot of its own, for a write that re-reads the record inside its
/// write transaction.
pub(crate) fn load_checked(
    services: &Services,
    ctx: &RequestCtx,
    action: &str,
    function_name: &str,
    qualifier: Option<&str>,
) -> Result<(FunctionRef, FunctionRecord), LambdaError> {
    let txn = services.store().begin_read()?;
    load(services, &*txn, ctx, action, function_name, qualifier)
}

/// The package, unsealed.
pub(crate) fn open_code(
    services: &Services,
    txn: &dyn ReadTxn,
    record: &FunctionRecord,
) -> Result<zeroize::Zeroizing<Vec<u8>>, LambdaError> {
    let code: CodeRecord = record::get(
        txn,
        &keys::code(&record.account, &record.region, &record.name),
    )?
    .ok_or_else(|| {
        tracing::error!(function = %record.arn, "the function's code record is missing");
        LambdaError::Internal
    })?;
    Ok(services.root_key().open(
        &code.sealed,
        &model::code_aad(&record.arn, &code.code_sha256),
    )?)
}

fn configuration(r: &FunctionRecord) -> FunctionConfiguration {
    FunctionConfiguration {
        function_name: r.name.clone(),
        function_arn: r.arn.clone(),
        runtime: r.runtime.clone(),
        role: r.role.clone(),
        handler: r.handler.clone(),
        code_size: r.code_size,
        description: r.description.clone(),
        timeout: r.timeout,
        memory_size: r.memory_size,
        last_modified: r.last_modified.clone(),
        code_sha256: r.code_sha256.clone(),
        version: "$LATEST",
        environment: r.environment.as_ref().map(|v| Environment {
            variables: Some(v.clone()),
        }),
        tracing_config: TracingConfig {
            mode: "PassThrough",
        },
        revision_id: r.revision_id.clone(),
        state: "Active",
        last_update_status: "Successful",
        package_type: "Zip",
        architectures: vec!["x86_64"],
        ephemeral_storage: EphemeralStorage { size: 512 },
        snap_start: SnapStartResponse {
            apply_on: "None",
            optimization_status: "Off",
        },
        logging_config: LoggingConfig {
            log_format: "Text",
            log_group: format!("/aws/lambda/{}", r.name),
        },
    }
}

/// Checks that `zip` is a readable zip archive.
pub fn validate_zip(zip: &[u8]) -> Result<(), LambdaError> {
    if zip.len() > MAX_ZIP_BYTES {
        return Err(LambdaError::RequestTooLarge(
            "Request must be smaller than 70167211 bytes for the CreateFunction operation".into(),
        ));
    }
    let archive =
        zip::ZipArchive::new(Cursor::new(zip)).map_err(|_| invalid_parameter(UNZIP_MESSAGE))?;
    if archive.is_empty() {
        return Err(invalid_parameter(UNZIP_MESSAGE));
    }
    Ok(())
}

fn check_runtime(runtime: &str) -> Result<(), LambdaError> {
    if model::runtime_family(runtime).is_none() {
        // Lambda's wording for a runtime it does not accept (observed behavior), listing
        // the runtimes tresor runs.
        let mut all: Vec<&str> = model::PYTHON_RUNTIMES.to_vec();
        all.extend_from_slice(model::NODE_RUNTIMES);
        return Err(invalid_parameter(format!(
            "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}] or be a valid ARN",
            all.join(", ")
        )));
    }
    Ok(())
}

fn check_handler(handler: &str) -> Result<(), LambdaError> {
    if handler.len() > 128 || model::parse_handler(handler).is_none() {
        return Err(model::pattern_error("handler", handler));
    }
    Ok(())
}

fn check_timeout_memory(timeout: i64, memory: i64) -> Result<(), LambdaError> {
    if !(1..=MAX_TIMEOUT).contains(&timeout) {
        return Err(LambdaError::Validation(format!(
            "1 validation error detected: Value '{timeout}' at 'timeout' failed to satisfy constraint: Member must have value {}",
            if timeout < 1 {
                "greater than or equal to 1"
            } else {
                "less than or equal to 900"
            }
        )));
    }
    if !(128..=10240).contains(&memory) {
        return Err(LambdaError::Validation(format!(
            "1 validation error detected: Value '{memory}' at 'memorySize' failed to satisfy constraint: Member must have value {}",
            if memory < 128 {
                "greater than or equal to 128"
            } else {
                "less than or equal to 10240"
            }
        )));
    }
    Ok(())
}

fn check_environment(env: &BTreeMap<String, String>) -> Result<(), LambdaError> {
    let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > 4096 {
        return Err(invalid_parameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {size}"
        )));
    }
    for k in env.keys() {
        let ok = k.len() >= 2
            && k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(LambdaError::Validation(
                "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]".into(),
            ));
        }
        // Reserved keys (Lambda Developer Guide, "Defined runtime environment variables").
        if RESERVED_ENV.contains(&k.as_str()) {
            return Err(invalid_parameter(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {k}"
            )));
        }
    }
    Ok(())
}

const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// `iam:PassRole` on the execution role, then the role's trust policy must let Lambda in.
fn check_role(services: &Services, ctx: &RequestCtx, role: &str) -> Result<(), LambdaError> {
    let parsed = tresor_policy::arn::strip_service_prefix(role, "iam")
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.split_once(":role/"))
        .filter(|(acct, name)| {
            acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
        });
    if parsed.is_none() {
        return Err(model::pattern_error("role", role));
    }
    let mut req = AuthzRequest::new("iam:PassRole", role);
    req.context
        .push(tresor_core::cond("iam:PassedToService", LAMBDA_PRINCIPAL));
    services.authorize(ctx, &req)?;
    let assumable =
        tresor_iam::sts::service_may_assume_role(services, role, LAMBDA_PRINCIPAL, ctx.now)
            .map_err(|e| {
                tracing::error!(error = %e, "reading the execution role failed");
                LambdaError::Internal
            })?;
    if !assumable {
        return Err(invalid_parameter(
            "The role defined for the function cannot be assumed by Lambda.",
        ));
    }
    Ok(())
}

fn seal_code(
    services: &Services,
    arn: &str,
    zip: &[u8],
) -> Result<(CodeRecord, String, u64), LambdaError> {
    let sha = model::code_sha256(zip);
    let sealed = services.root_key().seal(zip, &model::code_aad(arn, &sha))?;
    Ok((
        CodeRecord {
            v: RECORD_VERSION,
            code_sha256: sha.clone(),
            sealed,
        },
        sha,
        zip.len() as u64,
    ))
}

fn unsupported_code_source() -> LambdaError {
    invalid_parameter(
        "tresor accepts deployment packages only as Code.ZipFile (no S3 or container images).",
    )
}

/// `CreateFunction` (201).
pub fn create_function(
    services: &Services,
    ctx: &RequestCtx,
    input: CreateFunctionInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let f = model::parse_function_name(&input.function_name, &ctx.caller.account, &ctx.region)?;
    if f.qualifier.is_some() || f.region != ctx.region || f.account != ctx.caller.account {
        return Err(model::pattern_error("functionName", &input.function_name));
    }
    let arn = f.arn();
    authorize(services, ctx, "lambda:CreateFunction", &arn, None)?;
    if input.package_type.as_deref().is_some_and(|p| p != "Zip") {
        return Err(invalid_parameter("tresor runs only Zip packages."));
    }
    let runtime = input
        .runtime
        .ok_or_else(|| invalid_parameter("Runtime and Handler are mandatory parameters for functions created with deployment packages."))?;
    check_runtime(&runtime)?;
    let handler = input
        .handler
        .ok_or_else(|| invalid_parameter("Runtime and Handler are mandatory parameters for functions created with deployment packages."))?;
    check_handler(&handler)?;
    let timeout = input.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let memory = input.memory_size.unwrap_or(DEFAULT_MEMORY);
    check_timeout_memory(timeout, memory)?;
    let description = input.description.unwrap_or_default();
    if description.chars().count() > 256 {
        return Err(LambdaError::Validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256".into(),
        ));
    }
    let environment = input.environment.and_then(|e| e.variables);
    if let Some(env) = &environment {
        check_environment(env)?;
    }
    if input.layers.is_some_and(|l| !l.is_empty()) || input.vpc_config.is_some() {
        return Err(invalid_parameter(
            "tresor does not support layers or VPC configuration.",
        ));
    }
    if input
        .architectures
        .is_some_and(|a| a.iter().any(|x| x != "x86_64" && x != "arm64"))
    {
        return Err(invalid_parameter("Architectures must be x86_64 or arm64."));
    }
    let code = &input.code;
    if code.s3_bucket.is_some() || code.s3_key.is_some() || code.image_uri.is_some() {
        return Err(unsupported_code_source());
    }
    let zip = code
        .zip_file
        .as_ref()
        .ok_or_else(|| invalid_parameter("Please provide a source for function code."))?;
    validate_zip(&zip.0)?;
    check_role(services, ctx, &input.role)?;
    let (code_record, sha, size) = seal_code(services, &arn, &zip.0)?;

    let record = FunctionRecord {
        v: RECORD_VERSION,
        name: f.name.clone(),
        arn: arn.clone(),
        account: f.account.clone(),
        region: f.region.clone(),
        runtime,
        handler,
        role: input.role,
        description,
        timeout,
        memory_size: memory,
        environment,
        tags: input.tags,
        code_sha256: sha,
        code_size: size,
        last_modified: model::last_modified(ctx.now),
        revision_id: uuid::Uuid::new_v4().to_string(),
        policy: Vec::new(),
    };
    let mut txn = services.store().begin_write()?;
    let key = keys::function(&f.account, &f.region, &f.name);
    if txn.get(&key)?.is_some() {
        return Err(LambdaError::ResourceConflict(format!(
            "Function already exist: {}",
            f.name
        )));
    }
    record::put(&mut *txn, &key, &record)?;
    record::put(
        &mut *txn,
        &keys::code(&f.account, &f.region, &f.name),
        &code_record,
    )?;
    txn.commit()?;
    tracing::info!(function = %arn, request_id = %ctx.request_id, "lambda: function created");
    Ok(configuration(&record))
}

/// `GetFunction`.
pub fn get_function(
    services: &Services,
    ctx: &RequestCtx,
    input: GetFunctionInput,
) -> Result<GetFunctionOutput, LambdaError> {
    let txn = services.store().begin_read()?;
    let (_, record) = load(
        services,
        &*txn,
        ctx,
        "lambda:GetFunction",
        &input.function_name,
        input.qualifier.as_deref(),
    )?;
    Ok(GetFunctionOutput {
        tags: (!record.tags.is_empty()).then(|| record.tags.clone()),
        configuration: configuration(&record),
        code: FunctionCodeLocation {
            repository_type: "S3",
        },
    })
}

/// `GetFunctionConfiguration`.
pub fn get_function_configuration(
    services: &Services,
    ctx: &RequestCtx,
    input: GetFunctionInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let txn = services.store().begin_read()?;
    let (_, record) = load(
        services,
        &*txn,
        ctx,
        "lambda:GetFunctionConfiguration",
        &input.function_name,
        input.qualifier.as_deref(),
    )?;
    Ok(configuration(&record))
}

/// `ListFunctions`: the caller's account and region, by name, `MaxItems` (1–10000, default
/// 50) per page, `NextMarker` the last name returned.
pub fn list_functions(
    services: &Services,
    ctx: &RequestCtx,
    input: ListFunctionsInput,
) -> Result<ListFunctionsOutput, LambdaError> {
    services.authorize(ctx, &AuthzRequest::new("lambda:ListFunctions", "*"))?;
    if input.master_region.is_some() {
        return Err(invalid_parameter(
            "tresor has no Lambda@Edge replicas (MasterRegion).",
        ));
    }
    if let Some(v) = input.function_version.as_deref()
        && v != "ALL"
    {
        return Err(model::pattern_error("functionVersion", v));
    }
    let max = input.max_items.unwrap_or(50);
    if !(1..=10_000).contains(&max) {
        return Err(LambdaError::Validation(format!(
            "1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy constraint: Member must have value {}",
            if max < 1 {
                "greater than or equal to 1"
            } else {
                "less than or equal to 10000"
            }
        )));
    }
    let max = usize::try_from(max).unwrap_or(50);
    let prefix = keys::function_prefix(&ctx.caller.account, &ctx.region);
    let start_after = match input.marker.as_deref() {
        Some(m) if !m.is_empty() => {
            if !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid_parameter("Invalid marker."));
            }
            Some(format!("{prefix}{m}"))
        }
        _ => None,
    };
    let txn = services.store().begin_read()?;
    let mut page: Vec<(String, FunctionRecord)> =
        record::scan(&*txn, &prefix, start_after.as_deref(), max + 1)?;
    let next_marker = if page.len() > max {
        page.truncate(max);
        page.last().map(|(_, r)| r.name.clone())
    } else {
        None
    };
    Ok(ListFunctionsOutput {
        functions: page.iter().map(|(_, r)| configuration(r)).collect(),
        next_marker,
    })
}

/// `RevisionId` of an update must match the stored one; `api` is the call AWS's message
/// names for reading the current one (`GetFunction/GetAlias`, `GetPolicy`).
pub(crate) fn check_revision(
    record: &FunctionRecord,
    expected: Option<&str>,
    api: &str,
) -> Result<(), LambdaError> {
    if let Some(rev) = expected
        && rev != record.revision_id
    {
        return Err(LambdaError::InvalidParameterValue(format!(
            "The Revision Id provided does not match the latest Revision Id. Call the {api} API to retrieve the latest Revision Id"
        )));
    }
    Ok(())
}

/// Re-reads the record in the write transaction: the update applies to what is stored now.
fn reread(txn: &dyn ReadTxn, f: &FunctionRef) -> Result<FunctionRecord, LambdaError> {
    record::get(txn, &keys::function(&f.account, &f.region, &f.name))?
        .ok_or_else(|| function_not_found(&f.arn()))
}

/// `UpdateFunctionCode`.
pub fn update_function_code(
    services: &Services,
    ctx: &RequestCtx,
    input: UpdateFunctionCodeInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let f = load_checked(
        services,
        ctx,
        "lambda:UpdateFunctionCode",
        &input.function_name,
        None,
    )?
    .0;
    if f.qualifier.is_some() {
        return Err(model::pattern_error("functionName", &input.function_name));
    }
    if input.s3_bucket.is_some() || input.s3_key.is_some() || input.image_uri.is_some() {
        return Err(unsupported_code_source());
    }
    let zip = input
        .zip_file
        .as_ref()
        .ok_or_else(|| invalid_parameter("Please provide a source for function code."))?;
    validate_zip(&zip.0)?;
    let mut txn = services.store().begin_write()?;
    let mut record = reread(&*txn, &f)?;
    check_revision(
        &record,
        input.revision_id.as_deref(),
        "GetFunction/GetAlias",
    )?;
    let (code_record, sha, size) = seal_code(services, &record.arn, &zip.0)?;
    if input.dry_run == Some(true) {
        record.code_sha256 = sha;
        record.code_size = size;
        return Ok(configuration(&record));
    }
    record.code_sha256 = sha;
    record.code_size = size;
    record.last_modified = model::last_modified(ctx.now);
    record.revision_id = uuid::Uuid::new_v4().to_string();
    record::put(
        &mut *txn,
        &keys::function(&f.account, &f.region, &f.name),
        &record,
    )?;
    record::put(
        &mut *txn,
        &keys::code(&f.account, &f.region, &f.name),
        &code_record,
    )?;
    txn.commit()?;
    Ok(configuration(&record))
}

/// `UpdateFunctionConfiguration`.
pub fn update_function_configuration(
    services: &Services,
    ctx: &RequestCtx,
    input: UpdateFunctionConfigurationInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let (f, current) = load_checked(
        services,
        ctx,
        "lambda:UpdateFunctionConfiguration",
        &input.function_name,
        None,
    )?;
    if f.qualifier.is_some() {
        return Err(model::pattern_error("functionName", &input.function_name));
    }
    if let Some(r) = &input.runtime {
        check_runtime(r)?;
    }
    if let Some(h) = &input.handler {
        check_handler(h)?;
    }
    check_timeout_memory(
        input.timeout.unwrap_or(current.timeout),
        input.memory_size.unwrap_or(current.memory_size),
    )?;
    if input
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 256)
    {
        return Err(LambdaError::Validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256".into(),
        ));
    }
    let environment = input.environment.map(|e| e.variables.unwrap_or_default());
    if let Some(env) = &environment {
        check_environment(env)?;
    }
    if let Some(role) = &input.role {
        check_role(services, ctx, role)?;
    }
    let mut txn = services.store().begin_write()?;
    let mut record = reread(&*txn, &f)?;
    check_revision(
        &record,
        input.revision_id.as_deref(),
        "GetFunction/GetAlias",
    )?;
    if let Some(r) = input.runtime {
        record.runtime = r;
    }
    if let Some(h) = input.handler {
        record.handler = h;
    }
    if let Some(d) = input.description {
        record.description = d;
    }
    if let Some(t) = input.timeout {
        record.timeout = t;
    }
    if let Some(m) = input.memory_size {
        record.memory_size = m;
    }
    if let Some(env) = environment {
        record.environment = (!env.is_empty()).then_some(env);
    }
    if let Some(role) = input.role {
        record.role = role;
    }
    record.last_modified = model::last_modified(ctx.now);
    record.revision_id = uuid::Uuid::new_v4().to_string();
    record::put(
        &mut *txn,
        &keys::function(&f.account, &f.region, &f.name),
        &record,
    )?;
    txn.commit()?;
    Ok(configuration(&record))
}

/// `DeleteFunction` (the function, its code and its policy).
pub fn delete_function(
    services: &Services,
    ctx: &RequestCtx,
    input: DeleteFunctionInput,
) -> Result<Empty, LambdaError> {
    let f = load_checked(
        services,
        ctx,
        "lambda:DeleteFunction",
        &input.function_name,
        input.qualifier.as_deref(),
    )?
    .0;
    if f.qualifier.is_some() || input.qualifier.is_some() {
        return Err(invalid_parameter(
            "Deletion of $LATEST version is not allowed.",
        ));
    }
    let mut txn = services.store().begin_write()?;
    let existed = txn.delete(&keys::function(&f.account, &f.region, &f.name))?;
    txn.delete(&keys::code(&f.account, &f.region, &f.name))?;
    if !existed {
        return Err(function_not_found(&f.arn()));
    }
    txn.commit()?;
    if let Some(exec) = services.extension::<crate::exec::Executor>() {
        exec.forget(&f.arn());
    }
    tracing::info!(function = %f.arn(), request_id = %ctx.request_id, "lambda: function deleted");
    Ok(Empty {})
}
