//! Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, and the validation CreateKey
//! shares — grammar (policy engine), principals, and the lockout safety check.

use crate::errors::KmsError;
use serde::{Deserialize, Serialize};
use tresor_core::{RequestCtx, Services};
use tresor_policy::arn::strip_service_prefix;
use tresor_policy::{Policy, PolicyError, PolicyKind};
use tresor_store::ReadTxn;
use tresor_wire::validate::Validator;

use super::{
    Empty, authorized_key, check_policy_text, finish, page_limit, read, refuse_aws_managed,
    save_and_commit, validate_key_id, validate_key_page, write_authorized,
};
use crate::errors::{self, internal};
use crate::keys::authorize_key;
use crate::model::KeyRecord;

/// The only policy name of a key (KMS API reference, GetKeyPolicy: "The only valid name is
/// default").
const DEFAULT_POLICY_NAME: &str = "default";

fn invalid_principals() -> KmsError {
    errors::malformed_policy("Policy contains a statement with one or more invalid principals.")
}

/// Is `p` a principal KMS accepts in a key policy? ARNs of users and roles of an account held
/// by this deployment must name existing entities, as AWS resolves them when the policy is
/// saved; accounts this deployment does not hold cannot be checked and are accepted.
fn principal_ok(txn: &dyn ReadTxn, p: &str) -> Result<bool, KmsError> {
    let digits12 = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    if p == "*" || digits12(p) {
        return Ok(true);
    }
    // Unique ids (AIDA…, AROA…) appear in policies whose principal was deleted.
    if (p.starts_with("AIDA") || p.starts_with("AROA"))
        && p.len() >= 16
        && p.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Ok(true);
    }
    let (service, rest) = if let Some(rest) =
        strip_service_prefix(p, "iam").and_then(|r| r.strip_prefix(':'))
    {
        ("iam", rest)
    } else if let Some(rest) = strip_service_prefix(p, "sts").and_then(|r| r.strip_prefix(':')) {
        ("sts", rest)
    } else {
        return Ok(false);
    };
    let Some((account, resource)) = rest.split_once(':') else {
        return Ok(false);
    };
    if !digits12(account) {
        return Ok(false);
    }
    let known_account = txn
        .get(&tresor_iam::keys::account(account))
        .map_err(internal)?
        .is_some();
    let name = |r: &str| r.rsplit('/').next().unwrap_or_default().to_string();
    Ok(match (service, resource) {
        ("iam", "root") => true,
        ("iam", r) if r.starts_with("user/") => {
            !known_account
                || txn
                    .get(&tresor_iam::keys::user(account, &name(r)))
                    .map_err(internal)?
                    .is_some()
        }
        ("iam", r) if r.starts_with("role/") => {
            !known_account
                || txn
                    .get(&tresor_iam::keys::role(account, &name(r)))
                    .map_err(internal)?
                    .is_some()
        }
        ("sts", r) => r.starts_with("assumed-role/") && r.split('/').count() >= 3,
        _ => false,
    })
}

/// Validates `key.policy` as the key's new policy: grammar and size (the policy engine),
/// principals, and — unless bypassed — that the caller could still call PutKeyPolicy under
/// it (KMS API reference, PutKeyPolicy `BypassPolicyLockoutSafetyCheck`). The lockout check
/// asks the Authorizer with the new policy; it decides nothing itself.
pub(crate) fn check_new_policy(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    key: &KeyRecord,
    bypass: bool,
) -> Result<(), KmsError> {
    let parsed = Policy::parse(&key.policy, PolicyKind::KeyPolicy).map_err(|e| match e {
        PolicyError::Malformed(m) => errors::malformed_policy(m),
        PolicyError::TooLarge { limit, .. } => errors::limit_exceeded(format!(
            "The key policy exceeds the maximum size of {limit} bytes."
        )),
    })?;
    for p in parsed.aws_principals() {
        if !principal_ok(txn, p)? {
            return Err(invalid_principals());
        }
    }
    if !bypass {
        match authorize_key(
            services,
            ctx,
            "kms:PutKeyPolicy",
            key,
            None,
            None,
            Vec::new(),
        ) {
            Ok(()) => {}
            Err(KmsError::AccessDenied(_)) => return Err(errors::policy_lockout()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn check_policy_name(v: &mut Validator, name: Option<&str>) {
    v.length("PolicyName", name, 1, 128);
    if let Some(n) = name
        && !n.chars().all(|c| c.is_alphanumeric() || c == '_')
    {
        v.fail(
            "PolicyName",
            Some(n),
            r"Member must satisfy regular expression pattern: [\w]+",
        );
    }
}

fn require_default_name(name: Option<&str>) -> Result<(), KmsError> {
    match name {
        None | Some(DEFAULT_POLICY_NAME) => Ok(()),
        Some(_) => Err(KmsError::NotFound("No such policy exists".into())),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyInput {
    pub key_id: String,
    pub policy_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyOutput {
    pub policy: String,
    pub policy_name: &'static str,
}

pub fn get_key_policy(
    services: &Services,
    ctx: &RequestCtx,
    input: GetKeyPolicyInput,
) -> Result<GetKeyPolicyOutput, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(&input.key_id));
    check_policy_name(&mut v, input.policy_name.as_deref());
    finish(v)?;
    let txn = read(services)?;
    let key = authorized_key(
        services,
        &*txn,
        ctx,
        &input.key_id,
        "kms:GetKeyPolicy",
        Vec::new(),
    )?;
    require_default_name(input.policy_name.as_deref())?;
    Ok(GetKeyPolicyOutput {
        policy: key.policy,
        policy_name: DEFAULT_POLICY_NAME,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutKeyPolicyInput {
    pub key_id: String,
    pub policy_name: Option<String>,
    pub policy: String,
    pub bypass_policy_lockout_safety_check: Option<bool>,
}

pub fn put_key_policy(
    services: &Services,
    ctx: &RequestCtx,
    input: PutKeyPolicyInput,
) -> Result<Empty, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(&input.key_id));
    check_policy_name(&mut v, input.policy_name.as_deref());
    check_policy_text(&mut v, "Policy", Some(&input.policy));
    finish(v)?;
    let bypass = input.bypass_policy_lockout_safety_check.unwrap_or(false);
    let mut extra = Vec::new();
    if input.bypass_policy_lockout_safety_check.is_some() {
        extra.push((
            "kms:BypassPolicyLockoutSafetyCheck".to_string(),
            bypass.to_string(),
        ));
    }
    let (txn, mut key) = write_authorized(services, |txn| {
        authorized_key(
            services,
            txn,
            ctx,
            &input.key_id,
            "kms:PutKeyPolicy",
            tresor_core::owned_conditions(extra.clone()),
        )
    })?;
    refuse_aws_managed(&key)?;
    require_default_name(input.policy_name.as_deref())?;
    key.policy = input.policy;
    check_new_policy(services, &*txn, ctx, &key, bypass)?;
    save_and_commit(txn, &key)?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyPoliciesInput {
    pub key_id: String,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyPoliciesOutput {
    pub policy_names: Vec<&'static str>,
    pub truncated: bool,
}

pub fn list_key_policies(
    services: &Services,
    ctx: &RequestCtx,
    input: ListKeyPoliciesInput,
) -> Result<ListKeyPoliciesOutput, KmsError> {
    validate_key_page(&input.key_id, input.limit, input.marker.as_deref())?;
    let _ = page_limit(input.limit, 100, 1000);
    // There is one policy, so no page ever ends early: any marker is one we never issued.
    if input.marker.is_some() {
        return Err(errors::invalid_marker());
    }
    let txn = read(services)?;
    authorized_key(
        services,
        &*txn,
        ctx,
        &input.key_id,
        "kms:ListKeyPolicies",
        Vec::new(),
    )?;
    Ok(ListKeyPoliciesOutput {
        policy_names: vec![DEFAULT_POLICY_NAME],
        truncated: false,
    })
}
