//! The IAM policy simulator: `SimulatePrincipalPolicy` and `SimulateCustomPolicy`.
//!
//! Decisions come from the very pieces the Authorizer uses for real requests — the
//! principal's identity policies as [`identity_policies`] gathers them, the caller model of
//! [`principal_of`], the compiled-policy cache and [`tresor_policy::evaluate`] — so a
//! simulation of a role's session agrees with what that session is actually allowed to do
//! (given the same condition keys). Nothing is performed; only the authorization is decided.
//!
//! Result shape (IAM API Reference, `EvaluationResult`, current version): one
//! `EvaluationResult` per action; its `EvalDecision` is the most restrictive decision across
//! the requested resources and `ResourceSpecificResults` holds one entry per resource when
//! specific ARNs were given. `MatchedStatements` lists only identity- and resource-policy
//! statements that produced the decision (the deny statements for `explicitDeny`, the allow
//! statements for `allowed`, none for `implicitDeny`); `SourcePolicyId` is the inline policy's
//! name or the managed policy's ARN (`PolicyInputList.N` / `ResourcePolicy` for input
//! documents, whose `SourcePolicyType` is `IAM Policy` / `resource` as IAM reports them);
//! positions are the 1-based line and column of the statement's braces.
//! `MissingContextValues` are the condition keys of statements that match the action,
//! resource (and, for resource policies, principal) but that neither `ContextEntries` nor the
//! simulated principal supply.

use tresor_policy::PolicyKind;

use super::check::Check;
use super::entity::authorize;
use super::errors::invalid_input;
use super::principals::identity_policies;
use crate::error::IamError;
use tresor_core::Services;
use tresor_core::authz::principal_of;
use tresor_core::ctx::RequestCtx;

mod eval;
mod input;
mod limits;
mod outcome;
mod output;
mod principals;

use eval::*;
use input::*;
pub use output::*;
use principals::*;

// ---------------------------------------------------------------------------------------
// Operations.

/// `SimulatePrincipalPolicy`.
pub fn simulate_principal_policy(
    s: &Services,
    ctx: &RequestCtx,
    input: SimulatePrincipalPolicyInput,
) -> Result<SimulatePolicyResponse, IamError> {
    let (source_arn, shared) = input.split()?;
    let source_arn = source_arn.as_str();
    let mut check = Check::new();
    check.length("PolicySourceArn", Some(source_arn), 20, 2048);
    let input = Input::parse(&shared, check)?;
    let txn = s.store().begin_read()?;
    authorize(s, ctx, "iam:SimulatePrincipalPolicy", source_arn)?;

    let entity = Entity::find(&*txn, source_arn)?.ok_or_else(|| not_found(source_arn))?;
    let mut identity = Vec::new();
    let mut boundary = None;
    let source_principal = match &entity {
        Entity::Group(account, group) => {
            add_group(s, &*txn, account, group, &mut identity)?;
            None
        }
        Entity::User(..) | Entity::Role(..) => {
            let Some(caller) = entity.caller() else {
                return Err(not_found(source_arn));
            };
            let gathered = identity_policies(&*txn, &caller)?;
            for (label, text) in &gathered.policies {
                let policy = cached(s, PolicyKind::Identity, text)?;
                let (id, source_type) = source_of(label);
                identity.push(Sim::new(policy, id, source_type));
            }
            if let Some(text) = &gathered.boundary {
                let policy = cached(s, PolicyKind::Boundary, text)?;
                boundary = Some(Sim::new(policy, String::new(), "none"));
            }
            Some(principal_of(&caller, &gathered.principal_tags))
        }
    };
    let principal = match (input.caller_arn, source_principal) {
        (Some(arn), _) => principal_for(&*txn, arn)?,
        (None, Some(p)) => p,
        (None, None) if input.resource_policy.is_some() => {
            return Err(invalid_input(
                "CallerArn is required when a ResourcePolicy is simulated for a group.",
            ));
        }
        (None, None) => entity.principal(),
    };
    drop(txn);
    input.finish(identity, boundary, principal)
}

/// `SimulateCustomPolicy`.
pub fn simulate_custom_policy(
    s: &Services,
    ctx: &RequestCtx,
    input: SimulateCustomPolicyInput,
) -> Result<SimulatePolicyResponse, IamError> {
    let shared = input.shared()?;
    let input = Input::parse(&shared, Check::new())?;
    if let Some(a) = input.actions.iter().find(|a| a.contains(['*', '?'])) {
        return Err(invalid_input(format!(
            "Action {a} is not valid: SimulateCustomPolicy does not support wildcards in action names."
        )));
    }
    let txn = s.store().begin_read()?;
    authorize(s, ctx, "iam:SimulateCustomPolicy", "*")?;
    let principal = match input.caller_arn {
        Some(arn) => principal_for(&*txn, arn)?,
        None if input.resource_policy.is_some() => {
            return Err(invalid_input(
                "CallerArn is required when a ResourcePolicy is included in the simulation.",
            ));
        }
        None => anonymous_user(&ctx.caller.account),
    };
    drop(txn);
    input.finish(Vec::new(), None, principal)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn condition_keys_and_unconditional_policies() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"},{"Effect":"Allow","Action":"a:c","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"StringEquals":{"aws:PrincipalTag/team":"x"}}}]}"#;
        let json: Value = serde_json::from_str(doc).unwrap_or_default();
        assert_eq!(
            condition_keys(&json),
            vec![
                Vec::<String>::new(),
                vec![
                    "aws:SourceIp".to_string(),
                    "aws:PrincipalTag/team".to_string()
                ]
            ]
        );
        let stripped = without_conditions(json, PolicyKind::Identity);
        assert_eq!(stripped.map(|p| p.statements().len()), Some(2));
    }

    #[test]
    fn names_owners_and_templates() {
        assert!(is_action_name("secretsmanager:GetSecretValue"));
        assert!(!is_action_name("GetSecretValue"));
        assert!(!is_action_name(":x"));
        assert!(is_resource_name("*"));
        assert!(is_resource_name("arn:aws:s3:::bucket"));
        assert!(!is_resource_name("secret"));
        assert!(is_kms_key("arn:aws:kms:us-east-1:111122223333:key/abc"));
        assert!(!is_kms_key("arn:aws:kms:us-east-1:111122223333:alias/abc"));
        assert_eq!(
            owner_account("arn:aws:iam::111122223333:root").ok(),
            Some("111122223333".to_string())
        );
        assert!(owner_account("12").is_err());
        let a = "arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf";
        let b = "arn:aws:secretsmanager:us-east-1:111122223333:secret:b-AbCdEf";
        assert_eq!(top_resource_name(&[a]), a);
        assert_eq!(
            top_resource_name(&[a, b]),
            "arn:${Partition}:secretsmanager:${Region}:${Account}:secret:${SecretId}"
        );
        assert_eq!(top_resource_name(&[a, "arn:aws:s3:::x"]), "*");
        assert_eq!(
            source_of("inline policy read of group devs"),
            ("read".to_string(), "group")
        );
        assert_eq!(
            source_of("arn:aws:iam::aws:policy/ReadOnlyAccess").1,
            "aws-managed"
        );
    }

    #[test]
    fn context_entries_are_typed() {
        let entries = |form: &[u8]| {
            let q = tresor_wire::query::QueryParams::parse(form).unwrap_or_default();
            tresor_wire::query::decode::<SimulateCustomPolicyInput>(&q)
                .map(|i| i.context_entries)
                .unwrap_or_default()
        };
        let ctx = context_of(&entries(
            b"ContextEntries.member.1.ContextKeyName=aws%3ASourceIp&ContextEntries.member.1.ContextKeyType=ip&ContextEntries.member.1.ContextKeyValues.member.1=10.1.2.3&ContextEntries.member.2.ContextKeyName=aws%3ASecureTransport&ContextEntries.member.2.ContextKeyType=boolean&ContextEntries.member.2.ContextKeyValues.member.1=TRUE",
        ))
        .unwrap_or_default();
        assert_eq!(ctx.get("aws:sourceip"), Some(&["10.1.2.3".to_string()][..]));
        assert_eq!(
            ctx.get("aws:SecureTransport"),
            Some(&["true".to_string()][..])
        );
        assert!(context_of(&entries(
            b"ContextEntries.member.1.ContextKeyName=aws%3ASourceIp&ContextEntries.member.1.ContextKeyType=ip&ContextEntries.member.1.ContextKeyValues.member.1=nope",
        ))
        .is_err());
    }
}
