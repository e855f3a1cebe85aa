//! `/aws/reference/secretsmanager/<secret-id>[:<version id or staging label>]` (AWS Systems
//! Manager User Guide, "Referencing AWS Secrets Manager secrets from Parameter Store
//! parameters"):
//! GetParameter and GetParameters read a Secrets Manager secret through Parameter Store, as
//! a stateless pass-through.
//!
//! The authorization chain is the caller's, hop by hop, with no back door:
//! 1. `ssm:GetParameter` (or `ssm:GetParameters`) on the reference parameter's ARN
//!    (`arn:aws:ssm:<r>:<a>:parameter/aws/reference/secretsmanager/<id>`);
//! 2. `secretsmanager:GetSecretValue` on the secret — identity policies and the secret's
//!    resource policy (with its captured unique ids) — done by Secrets Manager itself;
//! 3. `kms:Decrypt` on the secret's key, with `kms:ViaService =
//!    secretsmanager.<region>.amazonaws.com`, done by Secrets Manager through KMS.
//!
//! Hops 2 and 3 are Secrets Manager's own typed read, [`tresor_secretsmanager::read_secret_value`],
//! called with the caller's request context — the same code path, Authorizer and KMS calls as
//! a direct `GetSecretValue` (and the same `LastAccessedDate` bookkeeping).
//!
//! `SourceResult` is that operation's JSON result, as the Systems Manager User Guide's
//! example shows (ARN, Name, VersionId, SecretString, VersionStages, CreatedDate).
//!
//! Failures of hops 2 and 3 surface as Parameter Store reports them (observed behavior): a
//! missing secret or selector is `ParameterNotFound` with the "when referencing Secrets
//! Manager" text; a refusal (permission, KMS) is the "dependency service"
//! `ValidationException` — so a missing secret and a forbidden one look different only when
//! the caller may read it.

use tresor_core::{RequestCtx, Services};
use tresor_crypto::Zeroizing;
use tresor_secretsmanager::{SecretValue, SecretsManagerError};

use crate::access::authorize;
use crate::errors::{self, SsmError};
use crate::names;
use crate::shapes::ParameterOut;

/// Observed behavior: the text for a reference read without `WithDecryption`.
const NEEDS_DECRYPTION: &str =
    "WithDecryption flag must be True for retrieving a Secret Manager secret.";

/// `An error occurred (ParameterNotFound) when referencing Secrets Manager: Secret
/// aws/reference/secretsmanager/shared-secret-alphanull not found.` — AWS names the path
/// without its leading slash and appends the selector, or the literal `null` when there is
/// none (aws/aws-cli#10518).
fn secret_not_found(secret_id: &str, selector: Option<&str>) -> SsmError {
    SsmError::ReferencedSecretNotFound(format!(
        "An error occurred (ParameterNotFound) when referencing Secrets Manager: Secret {}{}{} not found.",
        names::canonical(names::REFERENCE_PREFIX),
        secret_id,
        selector.unwrap_or("null")
    ))
}

/// A selector is a version id when it looks like one (Secrets Manager version ids are
/// 32–64 characters, UUIDs in practice), a staging label otherwise.
fn is_version_id(selector: &str) -> bool {
    selector.len() >= 32 && selector.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Secrets Manager → Parameter Store error mapping (module docs).
fn map_secrets_manager_error(
    e: SecretsManagerError,
    secret_id: &str,
    selector: Option<&str>,
) -> SsmError {
    match e {
        SecretsManagerError::Internal => SsmError::Internal,
        SecretsManagerError::ResourceNotFound(_) => secret_not_found(secret_id, selector),
        // Observed behavior: a secret scheduled for deletion.
        SecretsManagerError::InvalidRequest(_) => {
            errors::validation("Invalid Request to Secrets Manager")
        }
        other => {
            tracing::info!(
                code = other.code(),
                "Secrets Manager refused a reference read"
            );
            SsmError::DependencyFailure
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
) -> Result<ParameterOut, SsmError> {
    // Checked before authorization and existence (observed behavior).
    if !with_decryption {
        return Err(errors::validation(NEEDS_DECRYPTION));
    }
    authorize(services, ctx, action, &names::arn_in(ctx, name), Vec::new())?;
    let (version_id, version_stage) = match selector {
        Some(s) if is_version_id(s) => (Some(s), None),
        Some(s) => (None, Some(s)),
        None => (None, None),
    };
    let read = tresor_secretsmanager::read_secret_value(
        services,
        ctx,
        secret_id,
        version_id,
        version_stage,
    );
    note_secrets_manager_hop(ctx, secret_id, version_id, version_stage, &read);
    let secret = read.map_err(|e| map_secrets_manager_error(e, secret_id, selector))?;
    let source_result = source_result(&secret)?;
    Ok(ParameterOut {
        name: name.to_string(),
        param_type: "SecureString".to_string(),
        value: secret
            .secret_string
            .as_ref()
            .map(|s| Zeroizing::new(s.expose().to_string())),
        version: 0,
        selector: selector.map(|s| format!(":{s}")),
        source_result: Some(source_result),
        last_modified_date: secret.created_date,
        arn: secret.arn,
        data_type: None,
    })
}

/// Notes hop 2 for the request's audit record: Secrets Manager's `GetSecretValue` on the
/// caller's behalf (`invokedBy` Parameter Store), with the version it returned.
fn note_secrets_manager_hop(
    ctx: &RequestCtx,
    secret_id: &str,
    version_id: Option<&str>,
    version_stage: Option<&str>,
    read: &Result<SecretValue, SecretsManagerError>,
) {
    let request = HopRequest {
        secret_id,
        version_id,
        version_stage,
    };
    let (resources, additional, error_code) = match read {
        Ok(s) => (
            vec![tresor_core::audit::AuditResource {
                resource_type: "AWS::SecretsManager::Secret".into(),
                arn: s.arn.clone(),
            }],
            // Strings only: serializing cannot fail.
            tresor_wire::json::to_string(&HopReads {
                secret_versions: [HopRead {
                    secret_arn: &s.arn,
                    version_id: &s.version_id,
                    version_stages: &s.version_stages,
                }],
            })
            .ok(),
            None,
        ),
        Err(e) => (Vec::new(), None, Some(e.code().to_string())),
    };
    ctx.audit.hop(tresor_core::audit::Hop {
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: "GetSecretValue".into(),
        invoked_by: "ssm.amazonaws.com".into(),
        read_only: true,
        resources,
        // Strings only: serializing cannot fail.
        request_parameters: tresor_wire::json::to_string(&request).unwrap_or_else(|_| "{}".into()),
        additional_event_data: additional,
        error_code,
    });
}

/// The `requestParameters` of Secrets Manager's `GetSecretValue` on the caller's behalf,
/// members in byte order of their names (the order CloudTrail's JSON is written in throughout
/// the log).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HopRequest<'a> {
    secret_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_stage: Option<&'a str>,
}

/// The `additionalEventData` of that call: the version it returned.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HopReads<'a> {
    secret_versions: [HopRead<'a>; 1],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HopRead<'a> {
    secret_arn: &'a str,
    version_id: &'a str,
    version_stages: &'a [String],
}

/// `SourceResult`: the GetSecretValue result as JSON, encoded straight into a zeroizing
/// buffer sized so that it never reallocates (a reallocation would leave an unzeroized copy).
fn source_result(secret: &SecretValue) -> Result<Zeroizing<String>, SsmError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(source_result_capacity(secret)));
    tresor_wire::json::write_into(&mut buf, secret).map_err(|e| {
        tracing::error!(error = %e, "could not encode a reference's SourceResult");
        SsmError::Internal
    })?;
    // The buffer becomes the string (no second copy to zeroize); JSON written from `str`s is
    // UTF-8, and should it not be, the bytes are zeroized before the error.
    match String::from_utf8(std::mem::take(&mut *buf)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(SsmError::Internal)
        }
    }
}

/// At least the length of `secret` as JSON: every string member's exact escaped length, the
/// base64 of a binary value, and room for the member names, punctuation and the date. Exact
/// for the value rather than six bytes per byte (the worst case of `\u00XX` escapes): the
/// whole buffer is zeroized when dropped, and zeroizing 6 KiB for a 1 KiB value cost more
/// than the rest of the encoding.
fn source_result_capacity(secret: &SecretValue) -> usize {
    use tresor_wire::json::escaped_len;
    // `{"ARN":,"Name":,"VersionId":,"SecretBinary":,"SecretString":,"VersionStages":[],
    // "CreatedDate":}` is 90 bytes; an epoch-seconds float at most 24.
    256 + escaped_len(&secret.arn)
        + escaped_len(&secret.name)
        + escaped_len(&secret.version_id)
        + secret
            .version_stages
            .iter()
            .map(|s| escaped_len(s) + 1)
            .sum::<usize>()
        + secret
            .secret_string
            .as_ref()
            .map_or(0, |s| escaped_len(s.expose()))
        + secret
            .secret_binary
            .as_ref()
            .map_or(0, |b| b.expose().len().div_ceil(3) * 4 + 2)
}

#[cfg(test)]
mod hop_tests {
    use super::*;

    #[test]
    fn the_source_result_buffer_never_has_to_grow() {
        let awkward: String = (0u8..128)
            .map(char::from)
            .chain(['\u{e9}', '\u{1f600}'])
            .collect();
        let now = time::OffsetDateTime::from_unix_timestamp(1_764_201_600).unwrap();
        for value in [
            "",
            "plain",
            "\"\\\u{0}\u{1f}",
            awkward.as_str(),
            &"\u{1}".repeat(2000),
        ] {
            for binary in [None, Some(vec![0u8; 0]), Some(vec![7u8; 1025])] {
                let secret = SecretValue {
                    arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:a\"b-AbCdEf".into(),
                    name: "a\"b\u{2}".into(),
                    version_id: "v\\1".into(),
                    secret_binary: binary.clone().map(tresor_crypto::SecretBytes::from),
                    secret_string: Some(tresor_crypto::SecretString::from(value.to_string())),
                    version_stages: vec!["AWSCURRENT".into(), "l\u{7}".into()],
                    created_date: now + time::Duration::nanoseconds(123_456_789),
                };
                let written = tresor_wire::json::to_vec(&secret).unwrap();
                let capacity = source_result_capacity(&secret);
                assert!(written.len() <= capacity, "{} > {capacity}", written.len());
                // Sized to the value, not six times it.
                assert!(
                    capacity <= written.len() + 512,
                    "{capacity} for {}",
                    written.len()
                );
                assert_eq!(
                    source_result(&secret).unwrap().as_bytes(),
                    written.as_slice()
                );
            }
        }
    }

    /// The text is what a `serde_json` map of the same members writes (the log's order).
    #[test]
    fn hop_request_parameters_are_the_text_a_json_map_of_them_writes() {
        for version_id in [None, Some("v-\"1\"")] {
            for version_stage in [None, Some("AWSPREVIOUS")] {
                let secret_id = "arn:aws:secretsmanager:us-east-1:1:secret:tok\u{e9}\\";
                let mut map = serde_json::Map::new();
                map.insert("secretId".into(), secret_id.into());
                if let Some(id) = version_id {
                    map.insert("versionId".into(), id.into());
                }
                if let Some(stage) = version_stage {
                    map.insert("versionStage".into(), stage.into());
                }
                let request = HopRequest {
                    secret_id,
                    version_id,
                    version_stage,
                };
                assert_eq!(
                    serde_json::to_string(&request).unwrap(),
                    serde_json::Value::Object(map).to_string()
                );
            }
        }
    }

    #[test]
    fn hop_additional_event_data_is_the_text_a_json_map_of_it_writes() {
        for stages in [
            vec![],
            vec!["AWSCURRENT".to_string(), "l\"1\u{1}".to_string()],
        ] {
            let text = serde_json::to_string(&HopReads {
                secret_versions: [HopRead {
                    secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:t\u{e9}",
                    version_id: "v\\1",
                    version_stages: &stages,
                }],
            })
            .unwrap();
            let map = serde_json::json!({
                "secretVersions": [{
                    "secretArn": "arn:aws:secretsmanager:us-east-1:1:secret:t\u{e9}",
                    "versionId": "v\\1",
                    "versionStages": stages,
                }]
            });
            assert_eq!(text, map.to_string());
        }
    }
}
