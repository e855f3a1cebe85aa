//! Request members: AWS's constraints, tresor's bounds, context entries.

use serde::Deserialize;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use tresor_policy::{Context, Policy, PolicyKind};
use tresor_wire::validate::member_path;

use super::super::arn::parse_iam_arn;
use super::super::check::Check;
use super::super::errors::{invalid_input, policy_error, validation};
use super::super::pagination::Page;
use crate::error::IamError;
use tresor_core::Services;
use tresor_core::authz::source_type_of;

use super::limits::*;

// ---------------------------------------------------------------------------------------
// Input.

/// A context entry (`ContextEntries.member.N`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContextEntry {
    pub context_key_name: Option<String>,
    #[serde(default)]
    pub context_key_values: Vec<String>,
    pub context_key_type: Option<String>,
}

/// `SimulatePrincipalPolicy`'s request. Required members are optional here so that every
/// missing one is reported at once, as AWS does.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SimulatePrincipalPolicyInput {
    pub policy_source_arn: Option<String>,
    #[serde(default)]
    pub policy_input_list: Vec<String>,
    #[serde(default)]
    pub permissions_boundary_policy_input_list: Vec<String>,
    pub action_names: Option<Vec<String>>,
    #[serde(default)]
    pub resource_arns: Vec<String>,
    pub resource_policy: Option<String>,
    pub resource_owner: Option<String>,
    pub caller_arn: Option<String>,
    #[serde(default)]
    pub context_entries: Vec<ContextEntry>,
    pub resource_handling_option: Option<String>,
    pub max_items: Option<i64>,
    pub marker: Option<String>,
}

/// `SimulateCustomPolicy`'s request (required members optional, as above).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SimulateCustomPolicyInput {
    pub policy_input_list: Option<Vec<String>>,
    #[serde(default)]
    pub permissions_boundary_policy_input_list: Vec<String>,
    pub action_names: Option<Vec<String>>,
    #[serde(default)]
    pub resource_arns: Vec<String>,
    pub resource_policy: Option<String>,
    pub resource_owner: Option<String>,
    pub caller_arn: Option<String>,
    #[serde(default)]
    pub context_entries: Vec<ContextEntry>,
    pub resource_handling_option: Option<String>,
    pub max_items: Option<i64>,
    pub marker: Option<String>,
}

/// The members both requests share.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) policy_input_list: Vec<String>,
    pub(super) permissions_boundary_policy_input_list: Vec<String>,
    pub(super) action_names: Vec<String>,
    pub(super) resource_arns: Vec<String>,
    pub(super) resource_policy: Option<String>,
    pub(super) resource_owner: Option<String>,
    pub(super) caller_arn: Option<String>,
    pub(super) context_entries: Vec<ContextEntry>,
    pub(super) resource_handling_option: Option<String>,
    pub(super) max_items: Option<i64>,
    pub(super) marker: Option<String>,
}

impl SimulatePrincipalPolicyInput {
    /// The policy source ARN and the shared members, once the required ones are present.
    pub(super) fn split(self) -> Result<(String, Shared), IamError> {
        require(&[
            ("PolicySourceArn", self.policy_source_arn.is_some()),
            ("ActionNames", self.action_names.is_some()),
        ])?;
        Ok((
            self.policy_source_arn.unwrap_or_default(),
            Shared {
                policy_input_list: self.policy_input_list,
                permissions_boundary_policy_input_list: self.permissions_boundary_policy_input_list,
                action_names: self.action_names.unwrap_or_default(),
                resource_arns: self.resource_arns,
                resource_policy: self.resource_policy,
                resource_owner: self.resource_owner,
                caller_arn: self.caller_arn,
                context_entries: self.context_entries,
                resource_handling_option: self.resource_handling_option,
                max_items: self.max_items,
                marker: self.marker,
            },
        ))
    }
}

impl SimulateCustomPolicyInput {
    /// The shared members, once the required ones are present.
    pub(super) fn shared(self) -> Result<Shared, IamError> {
        require(&[
            ("PolicyInputList", self.policy_input_list.is_some()),
            ("ActionNames", self.action_names.is_some()),
        ])?;
        Ok(Shared {
            policy_input_list: self.policy_input_list.unwrap_or_default(),
            permissions_boundary_policy_input_list: self.permissions_boundary_policy_input_list,
            action_names: self.action_names.unwrap_or_default(),
            resource_arns: self.resource_arns,
            resource_policy: self.resource_policy,
            resource_owner: self.resource_owner,
            caller_arn: self.caller_arn,
            context_entries: self.context_entries,
            resource_handling_option: self.resource_handling_option,
            max_items: self.max_items,
            marker: self.marker,
        })
    }
}

/// Required members (`(name, present)`): absent (and, for lists, not even sent as an empty
/// `Name=`) is AWS's `ValidationError` "Value null at 'x' … must not be null", one clause per
/// member.
fn require(members: &[(&str, bool)]) -> Result<(), IamError> {
    let missing: Vec<String> = members
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| {
            format!(
                "Value null at '{}' failed to satisfy constraint: Member must not be null",
                member_path(name)
            )
        })
        .collect();
    match missing.len() {
        0 => Ok(()),
        1 => Err(validation(format!(
            "1 validation error detected: {}",
            missing.join("; ")
        ))),
        n => Err(validation(format!(
            "{n} validation errors detected: {}",
            missing.join("; ")
        ))),
    }
}

/// The members both operations share, validated.
pub(super) struct Input<'a> {
    pub(super) actions: Vec<&'a str>,
    pub(super) resources: Vec<&'a str>,
    pub(super) resource_policy: Option<&'a str>,
    /// `ResourceOwner`'s account id.
    pub(super) owner: Option<String>,
    pub(super) caller_arn: Option<&'a str>,
    pub(super) policy_inputs: Vec<&'a str>,
    pub(super) boundary_inputs: Vec<&'a str>,
    pub(super) context: Context,
    pub(super) page: Page,
}

fn strs(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

impl<'a> Input<'a> {
    pub(super) fn parse(p: &'a Shared, mut check: Check) -> Result<Input<'a>, IamError> {
        let actions = strs(&p.action_names);
        for (i, a) in actions.iter().enumerate() {
            check.length(&format!("ActionNames.{}.member", i + 1), Some(a), 3, 128);
        }
        let resources = strs(&p.resource_arns);
        for (i, r) in resources.iter().enumerate() {
            check.length(&format!("ResourceArns.{}.member", i + 1), Some(r), 1, 2048);
        }
        let policy_inputs = strs(&p.policy_input_list);
        for (i, d) in policy_inputs.iter().enumerate() {
            check_document(&mut check, &format!("PolicyInputList.{}.member", i + 1), d);
        }
        let boundary_inputs = strs(&p.permissions_boundary_policy_input_list);
        for (i, d) in boundary_inputs.iter().enumerate() {
            let member = format!("PermissionsBoundaryPolicyInputList.{}.member", i + 1);
            check_document(&mut check, &member, d);
        }
        let resource_policy = p.resource_policy.as_deref();
        if let Some(d) = resource_policy {
            check_document(&mut check, "ResourcePolicy", d);
        }
        check.length(
            "ResourceHandlingOption",
            p.resource_handling_option.as_deref(),
            1,
            64,
        );
        let owner = p.resource_owner.as_deref();
        check.length("ResourceOwner", owner, 1, 2048);
        let caller_arn = p.caller_arn.as_deref();
        check.length("CallerArn", caller_arn, 1, 2048);
        let entries = &p.context_entries;
        for (i, e) in entries.iter().enumerate() {
            let at = format!("ContextEntries.{}.member", i + 1);
            let name = e.context_key_name.as_deref();
            check.length(&format!("{at}.contextKeyName"), name, 5, 256);
            let key_type = e.context_key_type.as_deref();
            check.enumeration(&format!("{at}.contextKeyType"), key_type, CONTEXT_KEY_TYPES);
        }
        if let Some(m) = p.marker.as_deref()
            && !m.chars().all(|c| ('\u{20}'..='\u{ff}').contains(&c))
        {
            check.pattern("Marker", m, r"[\u0020-\u00FF]+");
        }
        check.finish()?;
        let page = Page::new(p.max_items, p.marker.as_deref())?;
        for (member, n, max) in [
            ("ActionNames", actions.len(), MAX_ACTIONS),
            ("ResourceArns", resources.len(), MAX_RESOURCES),
            ("ContextEntries", entries.len(), MAX_CONTEXT_ENTRIES),
        ] {
            if n > max {
                return Err(invalid_input(format!(
                    "{member} has {n} members; a simulation takes at most {max}."
                )));
            }
        }

        if actions.is_empty() {
            return Err(invalid_input("ActionNames must name at least one action."));
        }
        if let Some(a) = actions.iter().find(|a| !is_action_name(a)) {
            return Err(invalid_input(format!(
                "Action {a} is not valid: actions are named service:action."
            )));
        }
        if let Some(r) = resources.iter().find(|r| !is_resource_name(r)) {
            return Err(invalid_input(format!(
                "Resource {r} is not valid: resources are ARNs or \"*\"."
            )));
        }
        if boundary_inputs.len() > 1 {
            return Err(invalid_input(
                "Only one permissions boundary can be simulated at a time.",
            ));
        }
        let owner = owner.map(owner_account).transpose()?;
        if let Some(arn) = caller_arn {
            match parse_iam_arn(arn) {
                Some((_, "user" | "group" | "role", _, _)) => {}
                _ => {
                    return Err(invalid_input(format!(
                        "Invalid CallerArn {arn}: it must be the ARN of an IAM user, group or role."
                    )));
                }
            }
        }
        let context = context_of(entries)?;
        Ok(Input {
            actions,
            resources: if resources.is_empty() {
                vec!["*"]
            } else {
                resources
            },
            resource_policy,
            owner,
            caller_arn,
            policy_inputs,
            boundary_inputs,
            context,
            page,
        })
    }
}

/// The `Marker` of the page that starts after action `index` (the listing's opaque marker).
pub(super) fn marker_after(index: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{index:010}"))
}

pub(super) fn too_large(action: &str) -> IamError {
    invalid_input(format!(
        "The simulation of {action} is too large to answer: simulate fewer resources or smaller policies at a time."
    ))
}

/// A `policyDocumentType` member: 1–131,072 characters of the policy character set. The
/// document is not echoed in the message.
pub(super) fn check_document(check: &mut Check, member: &str, text: &str) {
    let n = text.chars().count();
    if n < 1 {
        check.fail(
            member,
            None,
            "Member must have length greater than or equal to 1",
        );
    } else if n > SIMULATION_POLICY_MAX {
        check.fail(
            member,
            None,
            &format!("Member must have length less than or equal to {SIMULATION_POLICY_MAX}"),
        );
    } else if !text
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'))
    {
        check.fail(
            member,
            None,
            &format!("Member must satisfy regular expression pattern: {POLICY_PATTERN}"),
        );
    }
}

/// `service:action` (wildcards allowed; the engine matches them like any action name).
pub(super) fn is_action_name(a: &str) -> bool {
    a.split_once(':')
        .is_some_and(|(service, op)| !service.is_empty() && !op.is_empty() && !op.contains(':'))
}

pub(super) fn is_resource_name(r: &str) -> bool {
    r == "*" || (r.starts_with("arn:") && r.splitn(6, ':').count() == 6)
}

pub(super) fn is_kms_key(r: &str) -> bool {
    let mut f = r.splitn(6, ':');
    f.nth(2) == Some("kms") && f.nth(2).is_some_and(|res| res.starts_with("key/"))
}

/// `ResourceOwner`: an account id, or the account's ARN `arn:aws:iam::<account>:root`.
pub(super) fn owner_account(owner: &str) -> Result<String, IamError> {
    let account = tresor_policy::arn::strip_service_prefix(owner, "iam")
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.strip_suffix(":root"))
        .unwrap_or(owner);
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(account.to_string())
    } else {
        Err(invalid_input(format!(
            "Invalid ResourceOwner {owner}: it must be an account id or arn:aws:iam::<account>:root."
        )))
    }
}

/// `ContextEntries` as condition keys. Values are checked against their declared type;
/// booleans are normalized.
pub(super) fn context_of(entries: &[ContextEntry]) -> Result<Context, IamError> {
    let mut context = Context::new();
    for e in entries {
        let Some(name) = e.context_key_name.as_deref() else {
            return Err(invalid_input("Every context entry needs a ContextKeyName."));
        };
        let key_type = e.context_key_type.as_deref().unwrap_or("string");
        let values = &e.context_key_values;
        let bad = |v: &str| {
            invalid_input(format!(
                "Invalid value {v} for context key {name} of type {key_type}."
            ))
        };
        if !key_type.ends_with("List") && values.len() > 1 {
            return Err(invalid_input(format!(
                "Context key {name} of type {key_type} takes a single value."
            )));
        }
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let v = v.as_str();
            let value = match key_type.trim_end_matches("List") {
                "boolean" => match v.to_ascii_lowercase().as_str() {
                    b @ ("true" | "false") => b.to_string(),
                    _ => return Err(bad(v)),
                },
                "numeric" if v.trim().parse::<f64>().is_err() => return Err(bad(v)),
                "ip" if v
                    .split('/')
                    .next()
                    .is_none_or(|ip| ip.parse::<std::net::IpAddr>().is_err()) =>
                {
                    return Err(bad(v));
                }
                _ => v.to_string(),
            };
            out.push(value);
        }
        context.set(name, out);
    }
    Ok(context)
}

pub(super) fn parse_input(text: &str, kind: PolicyKind) -> Result<Arc<Policy>, IamError> {
    Policy::parse_with_limit(text, kind, SIMULATION_POLICY_MAX)
        .map(Arc::new)
        .map_err(policy_error)
}

/// A stored policy through the Authorizer's compiled-policy cache.
pub(super) fn cached(s: &Services, kind: PolicyKind, text: &str) -> Result<Arc<Policy>, IamError> {
    s.policy_cache().get(kind, text).ok_or_else(|| {
        IamError::Internal(tresor_core::error::ServiceError::Corrupt(
            "a stored policy does not parse".to_string(),
        ))
    })
}

/// `SourcePolicyId` and `SourcePolicyType` of a policy gathered by [`identity_policies`](crate::api::identity_policies): the
/// inline policy's name, or the managed policy's ARN.
pub(super) fn source_of(label: &str) -> (String, &'static str) {
    let id = label
        .strip_prefix("inline policy ")
        .and_then(|rest| rest.split_once(" of "))
        .map_or(label, |(name, _)| name);
    (id.to_string(), source_type_of(label).as_str())
}
