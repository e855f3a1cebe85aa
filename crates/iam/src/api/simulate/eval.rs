//! Evaluation: every action on every resource, paged within the work and size budgets.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tresor_policy::{
    Context, Effect, Policy, PolicyKind, PolicySet, PolicySource, PolicyType, Position, Principal,
    PrincipalKind, Request, ResourceKind, SourcePolicyType,
};

use super::super::errors::invalid_input;
use crate::error::IamError;
use tresor_core::authz::resource_account;

use super::input::*;
use super::limits::*;
use super::outcome::*;
use super::output::*;

// ---------------------------------------------------------------------------------------
// Evaluation.

/// One policy in the simulation, with what the response needs to point into it.
pub(super) struct Sim {
    pub(super) policy: Arc<Policy>,
    /// `SourcePolicyId`.
    pub(super) id: String,
    /// `SourcePolicyType`.
    pub(super) source_type: &'static str,
    /// The policy without its conditions: which statements *could* apply, for
    /// `MissingContextValues`. `None` if it cannot be rebuilt (then nothing is reported).
    pub(super) unconditional: Option<Policy>,
    /// Condition keys of each statement, as written.
    pub(super) condition_keys: Vec<Vec<String>>,
    /// Each statement's braces: ((line, column), (line, column)), 1-based.
    pub(super) spans: Vec<(Position, Position)>,
}

impl Sim {
    pub(super) fn new(policy: Arc<Policy>, id: String, source_type: &'static str) -> Sim {
        let text = policy.text();
        let json: Option<Value> = serde_json::from_str(text).ok();
        let condition_keys = json.as_ref().map(condition_keys).unwrap_or_default();
        let unconditional = json.and_then(|j| without_conditions(j, policy.kind()));
        let spans = tresor_policy::statement_positions(text);
        Sim {
            policy,
            id,
            source_type,
            unconditional,
            condition_keys,
            spans,
        }
    }

    pub(super) fn statement(&self, index: usize) -> Matched {
        Matched {
            id: self.id.clone(),
            source_type: self.source_type,
            span: self.spans.get(index).copied(),
        }
    }
}

pub(super) struct Simulation {
    pub(super) principal: Principal,
    pub(super) identity: Vec<Sim>,
    /// `PolicySource` ids of `identity`: their indexes, so a matched statement maps back to
    /// its policy even when two policies share a name.
    pub(super) labels: Vec<String>,
    pub(super) boundary: Option<Sim>,
    pub(super) resource: Option<Sim>,
    /// The resource policy compiled as a key policy, for KMS key ARNs (mandatory there).
    pub(super) resource_kms: Option<Sim>,
    pub(super) context: Context,
    pub(super) owner: Option<String>,
}

impl Simulation {
    pub(super) fn evaluate(&self, action: &str, resource: &str) -> Outcome {
        let (resource_sim, resource_kind) = match (&self.resource, &self.resource_kms) {
            (Some(_), Some(kms)) if is_kms_key(resource) => (Some(kms), ResourceKind::KmsKey),
            (Some(generic), _) => (Some(generic), ResourceKind::Generic),
            (None, _) => (None, ResourceKind::None),
        };
        // The owner is the ARN's account; `ResourceOwner` for ARNs without one (and `*`);
        // otherwise the caller's own account.
        let account = resource_account(resource)
            .map(str::to_owned)
            .or_else(|| self.owner.clone());
        let request = Request {
            principal: &self.principal,
            action,
            resource,
            resource_account: account.as_deref(),
            context: &self.context,
        };
        let source = |id: &'static str| PolicySource {
            id,
            source_type: SourcePolicyType::Resource,
        };
        let set = PolicySet {
            identity: self
                .identity
                .iter()
                .zip(&self.labels)
                .map(|(sim, label)| (identity_source(label), sim.policy.as_ref()))
                .collect(),
            boundary: self.boundary.as_ref().map(|b| b.policy.as_ref()),
            session: Vec::new(),
            resource: resource_sim.map(|r| (source("resource"), r.policy.as_ref())),
            resource_kind,
        };
        let decision = tresor_policy::evaluate(&request, &set);
        let wanted = match decision.eval_decision() {
            "allowed" => Some(Effect::Allow),
            "explicitDeny" => Some(Effect::Deny),
            _ => None,
        };
        let mut matched: Vec<Matched> = Vec::new();
        let mut seen: HashSet<Matched> = HashSet::new();
        for m in &decision.matched {
            if Some(m.effect) != wanted {
                continue;
            }
            let sim = match m.policy_type {
                PolicyType::Identity => self.identity_of(m.source_id.as_deref()),
                PolicyType::Resource => resource_sim,
                PolicyType::Boundary | PolicyType::Session => None,
            };
            if let Some(statement) = sim.map(|s| s.statement(m.statement_index))
                && seen.insert(statement.clone())
            {
                matched.push(statement);
            }
        }
        let boundary_allows = self.boundary.as_ref().map(|_| {
            let boundary = |effect: Effect| {
                decision
                    .matched
                    .iter()
                    .any(|m| m.policy_type == PolicyType::Boundary && m.effect == effect)
            };
            boundary(Effect::Allow) && !boundary(Effect::Deny)
        });

        // Statements that would apply but for their conditions: their keys must be supplied.
        let unconditional = PolicySet {
            identity: self
                .identity
                .iter()
                .zip(&self.labels)
                .filter_map(|(sim, label)| {
                    sim.unconditional
                        .as_ref()
                        .map(|p| (identity_source(label), p))
                })
                .collect(),
            boundary: self
                .boundary
                .as_ref()
                .and_then(|b| b.unconditional.as_ref()),
            session: Vec::new(),
            resource: resource_sim
                .and_then(|r| r.unconditional.as_ref())
                .map(|p| (source("resource"), p)),
            resource_kind,
        };
        let mut missing: Vec<String> = Vec::new();
        let mut missing_seen: HashSet<String> = HashSet::new();
        for m in tresor_policy::evaluate(&request, &unconditional).matched {
            let sim = match m.policy_type {
                PolicyType::Identity => self.identity_of(m.source_id.as_deref()),
                PolicyType::Resource => resource_sim,
                PolicyType::Boundary => self.boundary.as_ref(),
                PolicyType::Session => None,
            };
            let keys = sim.and_then(|s| s.condition_keys.get(m.statement_index));
            for key in keys.into_iter().flatten() {
                if !self.supplies(key) && missing_seen.insert(key.to_ascii_lowercase()) {
                    missing.push(key.clone());
                }
            }
        }
        Outcome {
            resource: resource.to_string(),
            decision: decision.eval_decision(),
            matched,
            missing,
            boundary_allows,
        }
    }

    pub(super) fn identity_of(&self, label: Option<&str>) -> Option<&Sim> {
        let index = label?.parse::<usize>().ok()?;
        self.identity.get(index)
    }

    /// Is the key in `ContextEntries`, or one the engine derives from the principal?
    pub(super) fn supplies(&self, key: &str) -> bool {
        if self.context.get(key).is_some() {
            return true;
        }
        let p = &self.principal;
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "aws:principalarn" | "aws:principalaccount" | "aws:principaltype" | "aws:userid" => {
                !matches!(
                    p.kind,
                    PrincipalKind::Service(_) | PrincipalKind::Federated(_)
                )
            }
            "aws:username" => matches!(p.kind, PrincipalKind::User { .. }),
            _ => lower
                .strip_prefix("aws:principaltag/")
                .is_some_and(|tag| p.tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(tag))),
        }
    }
}

pub(super) fn identity_source(label: &str) -> PolicySource<'_> {
    PolicySource {
        id: label,
        source_type: SourcePolicyType::None,
    }
}

// ---------------------------------------------------------------------------------------

impl Input<'_> {
    /// Adds the input documents to the principal's own policies, simulates every action on
    /// every resource and writes the page of results.
    pub(super) fn finish(
        self,
        mut identity: Vec<Sim>,
        mut boundary: Option<Sim>,
        principal: Principal,
    ) -> Result<SimulatePolicyResponse, IamError> {
        for (i, text) in self.policy_inputs.iter().enumerate() {
            let policy = parse_input(text, PolicyKind::Identity)?;
            identity.push(Sim::new(
                policy,
                format!("PolicyInputList.{}", i + 1),
                INPUT_POLICY_TYPE,
            ));
        }
        // "If a permissions boundary is attached to an entity and you pass in a different
        // permissions boundary policy using this parameter, then the new permissions boundary
        // policy is used for the simulation" (SimulatePrincipalPolicy).
        if let Some(text) = self.boundary_inputs.first() {
            let policy = parse_input(text, PolicyKind::Boundary)?;
            boundary = Some(Sim::new(
                policy,
                "PermissionsBoundaryPolicyInputList.1".to_string(),
                INPUT_POLICY_TYPE,
            ));
        }
        let (resource, resource_kms) = match self.resource_policy {
            None => (None, None),
            Some(text) => {
                let generic = parse_input(text, PolicyKind::Resource)?;
                let kms = if self.resources.iter().any(|r| is_kms_key(r)) {
                    Some(Sim::new(
                        parse_input(text, PolicyKind::KeyPolicy)?,
                        "ResourcePolicy".to_string(),
                        "resource",
                    ))
                } else {
                    None
                };
                (
                    Some(Sim::new(generic, "ResourcePolicy".to_string(), "resource")),
                    kms,
                )
            }
        };
        let labels = (0..identity.len()).map(|i| i.to_string()).collect();
        let sim = Simulation {
            principal,
            identity,
            labels,
            boundary,
            resource,
            resource_kms,
            context: self.context,
            owner: self.owner,
        };
        let specific = self.resources != ["*"];
        let first = match &self.page.after {
            None => 0,
            Some(key) => key
                .parse::<usize>()
                .map_err(|_| invalid_input::<IamError>("Invalid Marker."))?
                .saturating_add(1),
        };
        let started = Instant::now();
        let mut results = Vec::new();
        let mut next = None;
        let mut page_bytes = 0usize;
        let remaining = self.actions.iter().enumerate().skip(first);
        for (written, (i, action)) in remaining.enumerate() {
            let page_full = written >= self.page.max_items
                || (written > 0 && (started.elapsed() >= PAGE_TIME || page_bytes >= PAGE_BYTES));
            if page_full {
                next = Some(marker_after(i - 1));
                break;
            }
            let item_started = Instant::now();
            let mut size = 0usize;
            let mut outcomes = Vec::with_capacity(self.resources.len());
            for r in &self.resources {
                let outcome = sim.evaluate(action, r);
                size += outcome.size();
                outcomes.push(outcome);
                if size > RESULT_BYTES || item_started.elapsed() > RESULT_TIME {
                    return Err(too_large(action));
                }
            }
            results.push(result_of(action, &self.resources, outcomes, specific));
            // The action-wide lists repeat at most what the resources list.
            page_bytes += 2 * size;
        }
        Ok(SimulatePolicyResponse {
            evaluation_results: results,
            is_truncated: next.is_some(),
            marker: next,
        })
    }
}

// Policy text: statement positions and condition keys.

pub(super) fn statements_of(json: &Value) -> Vec<&Value> {
    match json.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// Each statement's condition keys (`Condition.<operator>.<key>`), in document order.
pub(super) fn condition_keys(json: &Value) -> Vec<Vec<String>> {
    statements_of(json)
        .into_iter()
        .map(|s| {
            s.get("Condition")
                .and_then(Value::as_object)
                .map(|ops| {
                    ops.values()
                        .filter_map(Value::as_object)
                        .flat_map(|keys| keys.keys().cloned())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// The policy with every `Condition` removed (statement order kept).
pub(super) fn without_conditions(mut json: Value, kind: PolicyKind) -> Option<Policy> {
    match json.get_mut("Statement")? {
        Value::Array(list) => {
            for s in list {
                if let Some(o) = s.as_object_mut() {
                    o.remove("Condition");
                }
            }
        }
        Value::Object(o) => {
            o.remove("Condition");
        }
        _ => return None,
    }
    Policy::parse_with_limit(&json.to_string(), kind, usize::MAX).ok()
}
