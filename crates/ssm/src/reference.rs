//! `/aws/reference/secretsmanager/<secret-id>[:<version id or staging label>]` (spec §4):
//! GetParameter and GetParameters read a Secrets Manager secret through Parameter Store, as
//! a stateless pass-through.
//!
//! The authorization chain is the caller's, hop by hop, with no back door (DESIGN.md §2):
//! 1. `ssm:GetParameter` (or `ssm:GetParameters`) on the reference parameter's ARN
//!    (`arn:aws:ssm:<r>:<a>:parameter/aws/reference/secretsmanager/<id>`);
//! 2. `secretsmanager:GetSecretValue` on the secret — identity policies and the secret's
//!    resource policy (with its captured unique ids) — done by Secrets Manager itself;
//! 3. `kms:Decrypt` on the secret's key, with `kms:ViaService =
//!    secretsmanager.<region>.amazonaws.com`, done by Secrets Manager through KMS.
//!
//! Hops 2 and 3 are Secrets Manager's own `GetSecretValue` operation, called through its
//! public handler with the caller's request context — the same code path, Authorizer and
//! KMS calls as a direct `GetSecretValue` (and the same `LastAccessedDate` bookkeeping).
//!
//! `SourceResult` is that operation's JSON result, as the Systems Manager User Guide's
//! example shows (ARN, Name, VersionId, SecretString, VersionStages, CreatedDate; spec §4.4).
//!
//! Failures of hops 2 and 3 surface as Parameter Store reports them [E]: a missing secret or
//! selector is `ParameterNotFound` with the "when referencing Secrets Manager" text; a
//! refusal (permission, KMS) is the "dependency service" `ValidationException` — so a
//! missing secret and a forbidden one look different only when the caller may read it.

use serde_json::{Value, json};
use time::OffsetDateTime;
use tresor_core::{RequestCtx, Services};
use tresor_wire::AwsError;

use crate::access::authorize;
use crate::errors;
use crate::names;
use crate::shapes::ParameterOut;

/// [O/E] spec §4.3.
const NEEDS_DECRYPTION: &str =
    "WithDecryption flag must be True for retrieving a Secret Manager secret.";

/// [E] spec §4.6.
const DEPENDENCY_FAILURE: &str = "An error occurred while calling one AWS dependency service.";

fn dependency_failure() -> AwsError {
    errors::validation(DEPENDENCY_FAILURE)
}

/// Whether `e` is the dependency-service failure (which fails a whole GetParameters call).
pub fn is_dependency_failure(e: &AwsError) -> bool {
    e.code == "ValidationException" && e.message.as_deref() == Some(DEPENDENCY_FAILURE)
}

/// [O] `An error occurred (ParameterNotFound) when referencing Secrets Manager: Secret
/// aws/reference/secretsmanager/shared-secret-alphanull not found.` — AWS names the path
/// without its leading slash and appends the selector, or the literal `null` when there is
/// none (aws/aws-cli#10518).
fn secret_not_found(secret_id: &str, selector: Option<&str>) -> AwsError {
    AwsError::client(
        "ParameterNotFound",
        format!(
            "An error occurred (ParameterNotFound) when referencing Secrets Manager: Secret {}{}{} not found.",
            names::canonical(names::REFERENCE_PREFIX),
            secret_id,
            selector.unwrap_or("null")
        ),
    )
}

/// A selector is a version id when it looks like one (Secrets Manager version ids are
/// 32–64 characters, UUIDs in practice), a staging label otherwise.
fn is_version_id(selector: &str) -> bool {
    selector.len() >= 32 && selector.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Secrets Manager → Parameter Store error mapping (module docs).
fn map_secrets_manager_error(e: AwsError, secret_id: &str, selector: Option<&str>) -> AwsError {
    match &*e.code {
        _ if e.is_server_fault() => e,
        "ResourceNotFoundException" => secret_not_found(secret_id, selector),
        // [E] A secret scheduled for deletion.
        "InvalidRequestException" => errors::validation("Invalid Request to Secrets Manager"),
        _ => {
            tracing::info!(code = %e.code, "Secrets Manager refused a reference read");
            dependency_failure()
        }
    }
}

/// Reads a reference for GetParameter (`action` `ssm:GetParameter`) or GetParameters
/// (`ssm:GetParameters`).
pub fn get(
    services: &Services,
    ctx: &RequestCtx,
    action: &str,
    name: &str,
    secret_id: &str,
    selector: Option<&str>,
    with_decryption: bool,
) -> Result<ParameterOut, AwsError> {
    // Checked before authorization and existence [O/E].
    if !with_decryption {
        return Err(errors::validation(NEEDS_DECRYPTION));
    }
    authorize(services, ctx, action, &names::arn_in(ctx, name), Vec::new())?;
    let (version_id, version_stage) = match selector {
        Some(s) if is_version_id(s) => (Some(s), None),
        Some(s) => (None, Some(s)),
        None => (None, None),
    };
    let read = read_secret(services, ctx, secret_id, version_id, version_stage)
        .map_err(|e| map_secrets_manager_error(e, secret_id, selector))?;
    Ok(ParameterOut {
        name: name.to_string(),
        param_type: "SecureString".to_string(),
        value: read.secret_string,
        version: 0,
        selector: selector.map(|s| format!(":{s}")),
        source_result: Some(read.source_result),
        last_modified_date: read.created_date,
        arn: read.arn,
        data_type: None,
    })
}

/// What a reference read needs from Secrets Manager. Not `Debug`: it holds the value.
struct ReferencedSecret {
    arn: String,
    secret_string: Option<String>,
    created_date: OffsetDateTime,
    source_result: String,
}

/// Secrets Manager `GetSecretValue` as the caller (module docs).
fn read_secret(
    services: &Services,
    ctx: &RequestCtx,
    secret_id: &str,
    version_id: Option<&str>,
    version_stage: Option<&str>,
) -> Result<ReferencedSecret, AwsError> {
    let internal = || AwsError::internal(tresor_wire::Protocol::AwsJson11);
    let get_secret_value = tresor_secretsmanager::handler("GetSecretValue").ok_or_else(|| {
        tracing::error!("Secrets Manager has no GetSecretValue handler");
        internal()
    })?;
    let mut body = json!({ "SecretId": secret_id });
    if let Some(v) = version_id {
        body["VersionId"] = json!(v);
    }
    if let Some(s) = version_stage {
        body["VersionStage"] = json!(s);
    }
    let body = serde_json::to_vec(&body).map_err(|_| internal())?;
    let out = get_secret_value(services, ctx, &body)?;
    let result: Value = serde_json::from_slice(&out).map_err(|_| internal())?;
    let arn = result["ARN"].as_str().ok_or_else(internal)?.to_string();
    let created_date = result["CreatedDate"]
        .as_f64()
        .and_then(tresor_wire::timefmt::from_epoch_seconds)
        .ok_or_else(internal)?;
    Ok(ReferencedSecret {
        arn,
        secret_string: result["SecretString"].as_str().map(str::to_string),
        created_date,
        source_result: String::from_utf8(out).map_err(|_| internal())?,
    })
}
