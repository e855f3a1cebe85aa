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

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use serde_json::Value;
use tresor_policy::{
    Context, Effect, Policy, PolicyKind, PolicySet, PolicySource, PolicyType, Position, Principal,
    PrincipalKind, Request, ResourceKind, SourcePolicyType,
};
use tresor_store::ReadTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::validate::member_path;
use tresor_wire::xml::XmlWriter;

use super::groups::GroupRecord;
use super::pagination::{Page, write_page_end};
use super::roles::RoleRecord;
use super::{
    Check, EntityKind, OpResult, PolicyHolder, authorize, identity_policies, invalid_input,
    managed_policy_document, parse_iam_arn, policy_error, validation,
};
use crate::identity::UserRecord;
use crate::keys;
use tresor_core::Services;
use tresor_core::authz::{principal_of, resource_account, source_type_of};
use tresor_core::ctx::{Caller, CallerKind, RequestCtx};
use tresor_core::error::ServiceError;
use tresor_core::record;

/// `policyDocumentType` of the simulation inputs: 1–131,072 characters, whitespace included,
/// of `[\u0009\u000A\u000D\u0020-\u00FF]` (IAM API Reference, SimulateCustomPolicy).
const SIMULATION_POLICY_MAX: usize = 131_072;
const POLICY_PATTERN: &str = r"[\u0009\u000A\u000D\u0020-\u00FF]+";

/// tresor's own bounds on one simulation (the API sets none on these list sizes): beyond
/// them a request is refused with `InvalidInput` before anything is evaluated.
const MAX_ACTIONS: usize = 1000;
const MAX_RESOURCES: usize = 1000;
const MAX_CONTEXT_ENTRIES: usize = 1000;

/// Work and size of one page. Results are added while the page is within both budgets (at
/// least one per page); the rest follows through `Marker` ("IAM might return fewer results,
/// even when there are more results available", IAM API Reference, SimulateCustomPolicy).
const PAGE_TIME: std::time::Duration = std::time::Duration::from_millis(1000);
const PAGE_BYTES: usize = 2 << 20;
/// One action's result cannot be split across pages: beyond these it is refused.
const RESULT_TIME: std::time::Duration = std::time::Duration::from_secs(20);
const RESULT_BYTES: usize = 16 << 20;

/// The session name of a simulated role session (`aws:userid` = `AROA…:<this>`).
const SIMULATED_SESSION: &str = "SimulatedSession";

/// `SourcePolicyType` of `PolicyInputList` / `PermissionsBoundaryPolicyInputList` documents as
/// IAM reports it (outside the model's enum; SDKs keep it as an unknown value).
const INPUT_POLICY_TYPE: &str = "IAM Policy";

const CONTEXT_KEY_TYPES: &[&str] = &[
    "string",
    "stringList",
    "numeric",
    "numericList",
    "boolean",
    "booleanList",
    "ip",
    "ipList",
    "binary",
    "binaryList",
    "date",
    "dateList",
];

// ---------------------------------------------------------------------------------------
// Operations.

pub(crate) fn simulate_principal_policy(
    s: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> OpResult {
    require(p, &[("PolicySourceArn", false), ("ActionNames", true)])?;
    let source_arn = p.get("PolicySourceArn").unwrap_or_default();
    let mut check = Check::new();
    check.length("PolicySourceArn", Some(source_arn), 20, 2048);
    let input = Input::parse(p, check)?;
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

pub(crate) fn simulate_custom_policy(s: &Services, ctx: &RequestCtx, p: &QueryParams) -> OpResult {
    require(p, &[("PolicyInputList", true), ("ActionNames", true)])?;
    let input = Input::parse(p, Check::new())?;
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

// ---------------------------------------------------------------------------------------
// Input.

/// Required members: absent (and, for lists, not even sent as an empty `Name=`) is AWS's
/// `ValidationError` "Value null at 'x' … must not be null", one clause per member.
fn require(p: &QueryParams, members: &[(&str, bool)]) -> Result<(), ServiceError> {
    let missing: Vec<String> = members
        .iter()
        .filter(|(name, is_list)| p.get(name).is_none() && (!is_list || p.list(name).is_empty()))
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
struct Input<'a> {
    actions: Vec<&'a str>,
    resources: Vec<&'a str>,
    resource_policy: Option<&'a str>,
    /// `ResourceOwner`'s account id.
    owner: Option<String>,
    caller_arn: Option<&'a str>,
    policy_inputs: Vec<&'a str>,
    boundary_inputs: Vec<&'a str>,
    context: Context,
    page: Page,
}

impl<'a> Input<'a> {
    fn parse(p: &'a QueryParams, mut check: Check) -> Result<Input<'a>, ServiceError> {
        let actions = p.list("ActionNames");
        for (i, a) in actions.iter().enumerate() {
            check.length(&format!("ActionNames.{}.member", i + 1), Some(a), 3, 128);
        }
        let resources = p.list("ResourceArns");
        for (i, r) in resources.iter().enumerate() {
            check.length(&format!("ResourceArns.{}.member", i + 1), Some(r), 1, 2048);
        }
        let policy_inputs = p.list("PolicyInputList");
        for (i, d) in policy_inputs.iter().enumerate() {
            check_document(&mut check, &format!("PolicyInputList.{}.member", i + 1), d);
        }
        let boundary_inputs = p.list("PermissionsBoundaryPolicyInputList");
        for (i, d) in boundary_inputs.iter().enumerate() {
            let member = format!("PermissionsBoundaryPolicyInputList.{}.member", i + 1);
            check_document(&mut check, &member, d);
        }
        let resource_policy = p.get("ResourcePolicy");
        if let Some(d) = resource_policy {
            check_document(&mut check, "ResourcePolicy", d);
        }
        check.length(
            "ResourceHandlingOption",
            p.get("ResourceHandlingOption"),
            1,
            64,
        );
        let owner = p.get("ResourceOwner");
        check.length("ResourceOwner", owner, 1, 2048);
        let caller_arn = p.get("CallerArn");
        check.length("CallerArn", caller_arn, 1, 2048);
        let entries = p.struct_list("ContextEntries");
        for (i, e) in entries.iter().enumerate() {
            let at = format!("ContextEntries.{}.member", i + 1);
            let name = e.get("ContextKeyName").copied();
            check.length(&format!("{at}.contextKeyName"), name, 5, 256);
            let key_type = e.get("ContextKeyType").copied();
            check.enumeration(&format!("{at}.contextKeyType"), key_type, CONTEXT_KEY_TYPES);
        }
        if let Some(m) = p.get("Marker")
            && !m.chars().all(|c| ('\u{20}'..='\u{ff}').contains(&c))
        {
            check.pattern("Marker", m, r"[\u0020-\u00FF]+");
        }
        check.finish()?;
        let page = Page::from_params(p)?;
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
        let context = context_of(&entries)?;
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

    /// Adds the input documents to the principal's own policies, simulates every action on
    /// every resource and writes the page of results.
    fn finish(
        self,
        mut identity: Vec<Sim>,
        mut boundary: Option<Sim>,
        principal: Principal,
    ) -> OpResult {
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
                .map_err(|_| invalid_input("Invalid Marker."))?
                .saturating_add(1),
        };
        let started = Instant::now();
        let mut w = XmlWriter::new();
        w.open("EvaluationResults");
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
            write_result(&mut w, action, &self.resources, &outcomes, specific);
            // The action-wide lists repeat at most what the resources list.
            page_bytes += 2 * size;
        }
        w.close("EvaluationResults");
        write_page_end(&mut w, next.as_deref());
        Ok(Some(w.finish()))
    }
}

/// The `Marker` of the page that starts after action `index` (the listing's opaque marker).
fn marker_after(index: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{index:010}"))
}

fn too_large(action: &str) -> ServiceError {
    invalid_input(format!(
        "The simulation of {action} is too large to answer: simulate fewer resources or smaller policies at a time."
    ))
}

/// A `policyDocumentType` member: 1–131,072 characters of the policy character set. The
/// document is not echoed in the message.
fn check_document(check: &mut Check, member: &str, text: &str) {
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
fn is_action_name(a: &str) -> bool {
    a.split_once(':')
        .is_some_and(|(service, op)| !service.is_empty() && !op.is_empty() && !op.contains(':'))
}

fn is_resource_name(r: &str) -> bool {
    r == "*" || (r.starts_with("arn:") && r.splitn(6, ':').count() == 6)
}

fn is_kms_key(r: &str) -> bool {
    let mut f = r.splitn(6, ':');
    f.nth(2) == Some("kms") && f.nth(2).is_some_and(|res| res.starts_with("key/"))
}

/// `ResourceOwner`: an account id, or the account's ARN `arn:aws:iam::<account>:root`.
fn owner_account(owner: &str) -> Result<String, ServiceError> {
    let account = owner
        .strip_prefix("arn:aws:iam::")
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

/// `ContextEntries.member.N.{ContextKeyName, ContextKeyType, ContextKeyValues.member.M}` as
/// condition keys. Values are checked against their declared type; booleans are normalized.
fn context_of(entries: &[std::collections::BTreeMap<&str, &str>]) -> Result<Context, ServiceError> {
    let mut context = Context::new();
    for e in entries {
        let Some(name) = e.get("ContextKeyName").copied() else {
            return Err(invalid_input("Every context entry needs a ContextKeyName."));
        };
        let key_type = e.get("ContextKeyType").copied().unwrap_or("string");
        let mut values: Vec<(u32, &str)> = e
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("ContextKeyValues.member.")
                    .and_then(|n| n.parse::<u32>().ok())
                    .map(|n| (n, *v))
            })
            .collect();
        values.sort_by_key(|(n, _)| *n);
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
        for (_, v) in values {
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

fn parse_input(text: &str, kind: PolicyKind) -> Result<Arc<Policy>, ServiceError> {
    Policy::parse_with_limit(text, kind, SIMULATION_POLICY_MAX)
        .map(Arc::new)
        .map_err(policy_error)
}

/// A stored policy through the Authorizer's compiled-policy cache.
fn cached(s: &Services, kind: PolicyKind, text: &str) -> Result<Arc<Policy>, ServiceError> {
    s.policy_cache()
        .get(kind, text)
        .ok_or_else(|| ServiceError::Corrupt("a stored policy does not parse".to_string()))
}

/// `SourcePolicyId` and `SourcePolicyType` of a policy gathered by [`identity_policies`]: the
/// inline policy's name, or the managed policy's ARN.
fn source_of(label: &str) -> (String, &'static str) {
    let id = label
        .strip_prefix("inline policy ")
        .and_then(|rest| rest.split_once(" of "))
        .map_or(label, |(name, _)| name);
    (id.to_string(), source_type_of(label).as_str())
}

// ---------------------------------------------------------------------------------------
// Principals.

/// The user, group or role an IAM ARN names (account, record), path included in the match.
enum Entity {
    User(String, UserRecord),
    Group(String, GroupRecord),
    Role(String, RoleRecord),
}

impl Entity {
    /// `Ok(None)`: a well-formed user/group/role ARN naming nothing; `InvalidInput` for any
    /// other ARN.
    fn find(txn: &dyn ReadTxn, arn: &str) -> Result<Option<Entity>, ServiceError> {
        let Some((account, kind, path, name)) = parse_iam_arn(arn) else {
            return Err(invalid_arn(arn));
        };
        let a = account.to_string();
        Ok(match kind {
            "user" => record::get::<UserRecord>(txn, &keys::user(account, name))?
                .filter(|u| u.path == path && u.name == name)
                .map(|u| Entity::User(a, u)),
            "group" => record::get::<GroupRecord>(txn, &keys::group(account, name))?
                .filter(|g| g.path == path && g.name == name)
                .map(|g| Entity::Group(a, g)),
            "role" => record::get::<RoleRecord>(txn, &keys::role(account, name))?
                .filter(|r| r.path == path && r.name == name)
                .map(|r| Entity::Role(a, r)),
            _ => return Err(invalid_arn(arn)),
        })
    }

    /// The caller a request of this user, or of a session of this role, would have.
    fn caller(&self) -> Option<Caller> {
        match self {
            Entity::User(account, u) => Some(Caller {
                account: account.clone(),
                arn: EntityKind::User.arn(account, &u.path, &u.name),
                user_id: u.user_id.clone(),
                kind: CallerKind::User {
                    name: u.name.clone(),
                    path: u.path.clone(),
                    unique_id: u.user_id.clone(),
                },
                access_key_id: String::new(),
            }),
            Entity::Role(account, r) => Some(Caller {
                account: account.clone(),
                arn: format!(
                    "arn:aws:sts::{account}:assumed-role/{}/{SIMULATED_SESSION}",
                    r.name
                ),
                user_id: format!("{}:{SIMULATED_SESSION}", r.role_id),
                kind: CallerKind::AssumedRole {
                    role_name: r.name.clone(),
                    role_path: r.path.clone(),
                    role_id: r.role_id.clone(),
                    session_name: SIMULATED_SESSION.to_string(),
                },
                access_key_id: String::new(),
            }),
            Entity::Group(..) => None,
        }
    }

    fn principal(&self) -> Principal {
        match self {
            Entity::User(_, u) => self
                .caller()
                .map(|c| principal_of(&c, &u.tags))
                .unwrap_or_else(|| anonymous_user("")),
            Entity::Role(_, r) => self
                .caller()
                .map(|c| principal_of(&c, &r.tags))
                .unwrap_or_else(|| anonymous_user("")),
            // A group never calls anything; it is simulated as a member without a name of its
            // own: the group's ARN and id stand in for the caller's.
            Entity::Group(account, g) => Principal {
                arn: EntityKind::Group.arn(account, &g.path, &g.name),
                account: account.clone(),
                kind: PrincipalKind::User {
                    name: g.name.clone(),
                    unique_id: g.group_id.clone(),
                },
                user_id: g.group_id.clone(),
                tags: Vec::new(),
            },
        }
    }
}

/// The simulated caller `CallerArn` names. It need not exist ("You can simulate resources
/// that don't exist"); an existing user or role contributes its unique id and tags.
fn principal_for(txn: &dyn ReadTxn, arn: &str) -> Result<Principal, ServiceError> {
    if let Some(entity) = Entity::find(txn, arn)? {
        return Ok(entity.principal());
    }
    let Some((account, kind, path, name)) = parse_iam_arn(arn) else {
        return Err(invalid_arn(arn));
    };
    let path_and_name = format!("{}{name}", path.trim_start_matches('/'));
    Ok(match kind {
        "role" => Principal::assumed_role(account, &path_and_name, "", SIMULATED_SESSION),
        "group" => Principal {
            arn: arn.to_string(),
            account: account.to_string(),
            kind: PrincipalKind::User {
                name: name.to_string(),
                unique_id: String::new(),
            },
            user_id: String::new(),
            tags: Vec::new(),
        },
        _ => Principal::user(account, &path_and_name, ""),
    })
}

/// `SimulateCustomPolicy` without `CallerArn`: an unnamed IAM user of the caller's account.
fn anonymous_user(account: &str) -> Principal {
    Principal {
        arn: format!("arn:aws:iam::{account}:user/"),
        account: account.to_string(),
        kind: PrincipalKind::User {
            name: String::new(),
            unique_id: String::new(),
        },
        user_id: String::new(),
        tags: Vec::new(),
    }
}

fn add_group(
    s: &Services,
    txn: &dyn ReadTxn,
    account: &str,
    group: &GroupRecord,
    out: &mut Vec<Sim>,
) -> Result<(), ServiceError> {
    for (name, text) in group.inline() {
        out.push(Sim::new(
            cached(s, PolicyKind::Identity, text)?,
            name.clone(),
            SourcePolicyType::Group.as_str(),
        ));
    }
    for arn in group.attached() {
        if let Some(text) = managed_policy_document(txn, account, arn)? {
            out.push(Sim::new(
                cached(s, PolicyKind::Identity, &text)?,
                arn.clone(),
                source_type_of(arn).as_str(),
            ));
        }
    }
    Ok(())
}

fn invalid_arn(arn: &str) -> ServiceError {
    invalid_input(format!(
        "Invalid Entity Arn: {arn} does not clearly define entity type and name."
    ))
}

fn not_found(arn: &str) -> ServiceError {
    match parse_iam_arn(arn) {
        Some((_, "user", _, name)) => EntityKind::User.not_found(name),
        Some((_, "group", _, name)) => EntityKind::Group.not_found(name),
        Some((_, "role", _, name)) => EntityKind::Role.not_found(name),
        _ => invalid_arn(arn),
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation.

/// One policy in the simulation, with what the response needs to point into it.
struct Sim {
    policy: Arc<Policy>,
    /// `SourcePolicyId`.
    id: String,
    /// `SourcePolicyType`.
    source_type: &'static str,
    /// The policy without its conditions: which statements *could* apply, for
    /// `MissingContextValues`. `None` if it cannot be rebuilt (then nothing is reported).
    unconditional: Option<Policy>,
    /// Condition keys of each statement, as written.
    condition_keys: Vec<Vec<String>>,
    /// Each statement's braces: ((line, column), (line, column)), 1-based.
    spans: Vec<(Position, Position)>,
}

impl Sim {
    fn new(policy: Arc<Policy>, id: String, source_type: &'static str) -> Sim {
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

    fn statement(&self, index: usize) -> Matched {
        Matched {
            id: self.id.clone(),
            source_type: self.source_type,
            span: self.spans.get(index).copied(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Matched {
    id: String,
    source_type: &'static str,
    span: Option<(Position, Position)>,
}

/// The decision on one resource.
struct Outcome {
    resource: String,
    decision: &'static str,
    matched: Vec<Matched>,
    missing: Vec<String>,
    /// `AllowedByPermissionsBoundary`, when a boundary is in the simulation.
    boundary_allows: Option<bool>,
}

impl Outcome {
    /// An upper estimate of the bytes this outcome takes in the response.
    fn size(&self) -> usize {
        160 + self.resource.len()
            + self.matched.iter().map(|m| 240 + m.id.len()).sum::<usize>()
            + self.missing.iter().map(|k| 20 + k.len()).sum::<usize>()
    }
}

struct Simulation {
    principal: Principal,
    identity: Vec<Sim>,
    /// `PolicySource` ids of `identity`: their indexes, so a matched statement maps back to
    /// its policy even when two policies share a name.
    labels: Vec<String>,
    boundary: Option<Sim>,
    resource: Option<Sim>,
    /// The resource policy compiled as a key policy, for KMS key ARNs (mandatory there).
    resource_kms: Option<Sim>,
    context: Context,
    owner: Option<String>,
}

impl Simulation {
    fn evaluate(&self, action: &str, resource: &str) -> Outcome {
        let (resource_sim, resource_kind) = match (&self.resource, &self.resource_kms) {
            (Some(_), Some(kms)) if is_kms_key(resource) => (Some(kms), ResourceKind::KmsKey),
            (Some(generic), _) => (Some(generic), ResourceKind::Generic),
            (None, _) => (None, ResourceKind::None),
        };
        // The owner is the ARN's account; `ResourceOwner` for ARNs without one (and `*`);
        // otherwise the caller's own account.
        let account = resource_account(resource).or_else(|| self.owner.clone());
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

    fn identity_of(&self, label: Option<&str>) -> Option<&Sim> {
        let index = label?.parse::<usize>().ok()?;
        self.identity.get(index)
    }

    /// Is the key in `ContextEntries`, or one the engine derives from the principal?
    fn supplies(&self, key: &str) -> bool {
        if self.context.get(key).is_some() {
            return true;
        }
        let p = &self.principal;
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "aws:principalarn" | "aws:principalaccount" | "aws:principaltype" | "aws:userid" => {
                !matches!(p.kind, PrincipalKind::Service(_))
            }
            "aws:username" => matches!(p.kind, PrincipalKind::User { .. }),
            _ => lower
                .strip_prefix("aws:principaltag/")
                .is_some_and(|tag| p.tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(tag))),
        }
    }
}

fn identity_source(label: &str) -> PolicySource<'_> {
    PolicySource {
        id: label,
        source_type: SourcePolicyType::None,
    }
}

// ---------------------------------------------------------------------------------------
// Output.

fn write_result(
    w: &mut XmlWriter,
    action: &str,
    resources: &[&str],
    outcomes: &[Outcome],
    specific: bool,
) {
    let decision = outcomes
        .iter()
        .map(|o| o.decision)
        .max_by_key(|d| restrictiveness(d))
        .unwrap_or("implicitDeny");
    let mut matched: Vec<&Matched> = Vec::new();
    let mut seen: HashSet<&Matched> = HashSet::new();
    let mut missing: Vec<&str> = Vec::new();
    let mut seen_keys: HashSet<String> = HashSet::new();
    for o in outcomes {
        for m in &o.matched {
            if seen.insert(m) {
                matched.push(m);
            }
        }
        for k in &o.missing {
            if seen_keys.insert(k.to_ascii_lowercase()) {
                missing.push(k);
            }
        }
    }
    let boundary = outcomes
        .iter()
        .map(|o| o.boundary_allows)
        .try_fold(true, |all, b| b.map(|b| all && b));
    w.open("member")
        .elem("EvalActionName", action)
        .elem("EvalResourceName", &top_resource_name(resources))
        .elem("EvalDecision", decision);
    write_statements(w, matched.into_iter());
    write_keys(w, missing.into_iter());
    write_boundary_detail(w, boundary);
    if specific {
        // "If the simulation evaluates policies within the same account and includes a
        // resource ARN, then the parameter is present but the response is empty."
        w.open("EvalDecisionDetails").close("EvalDecisionDetails");
        w.open("ResourceSpecificResults");
        for o in outcomes {
            w.open("member")
                .elem("EvalResourceName", &o.resource)
                .elem("EvalResourceDecision", o.decision);
            write_statements(w, o.matched.iter());
            write_keys(w, o.missing.iter().map(String::as_str));
            write_boundary_detail(w, o.boundary_allows);
            w.close("member");
        }
        w.close("ResourceSpecificResults");
    }
    w.close("member");
}

fn restrictiveness(decision: &str) -> u8 {
    match decision {
        "explicitDeny" => 2,
        "implicitDeny" => 1,
        _ => 0,
    }
}

fn write_statements<'m>(w: &mut XmlWriter, statements: impl Iterator<Item = &'m Matched>) {
    w.open("MatchedStatements");
    for m in statements {
        w.open("member")
            .elem("SourcePolicyId", &m.id)
            .elem("SourcePolicyType", m.source_type);
        if let Some((start, end)) = m.span {
            for (tag, (line, column)) in [("StartPosition", start), ("EndPosition", end)] {
                w.open(tag)
                    .elem("Line", &line.to_string())
                    .elem("Column", &column.to_string())
                    .close(tag);
            }
        }
        w.close("member");
    }
    w.close("MatchedStatements");
}

fn write_keys<'k>(w: &mut XmlWriter, keys: impl Iterator<Item = &'k str>) {
    w.open("MissingContextValues");
    for k in keys {
        w.elem("member", k);
    }
    w.close("MissingContextValues");
}

fn write_boundary_detail(w: &mut XmlWriter, allowed: Option<bool>) {
    if let Some(allowed) = allowed {
        w.open("PermissionsBoundaryDecisionDetail")
            .elem(
                "AllowedByPermissionsBoundary",
                if allowed { "true" } else { "false" },
            )
            .close("PermissionsBoundaryDecisionDetail");
    }
}

/// The top-level `EvalResourceName`: the resource itself when only one was simulated (`*`
/// included); for several, the ARN template of their common resource type, else `*`.
fn top_resource_name(resources: &[&str]) -> String {
    if let [one] = resources {
        return (*one).to_string();
    }
    let templates: Option<Vec<&str>> = resources.iter().map(|r| arn_template(r)).collect();
    templates
        .and_then(|t| t.first().copied().filter(|f| t.iter().all(|x| x == f)))
        .unwrap_or("*")
        .to_string()
}

/// ARN formats of the resource types tresor serves (Service Authorization Reference).
fn arn_template(arn: &str) -> Option<&'static str> {
    let mut f = arn.splitn(6, ':');
    let service = f.nth(2)?;
    let resource = f.nth(2)?;
    let kind = resource.split(['/', ':']).next()?;
    Some(match (service, kind) {
        ("secretsmanager", "secret") => {
            "arn:${Partition}:secretsmanager:${Region}:${Account}:secret:${SecretId}"
        }
        ("kms", "key") => "arn:${Partition}:kms:${Region}:${Account}:key/${KeyId}",
        ("kms", "alias") => "arn:${Partition}:kms:${Region}:${Account}:alias/${Alias}",
        ("ssm", "parameter") => {
            "arn:${Partition}:ssm:${Region}:${Account}:parameter/${ParameterNameWithoutLeadingSlash}"
        }
        ("iam", "user") => "arn:${Partition}:iam::${Account}:user/${UserNameWithPath}",
        ("iam", "role") => "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}",
        ("iam", "group") => "arn:${Partition}:iam::${Account}:group/${GroupNameWithPath}",
        ("iam", "policy") => "arn:${Partition}:iam::${Account}:policy/${PolicyNameWithPath}",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Policy text: statement positions and condition keys.

fn statements_of(json: &Value) -> Vec<&Value> {
    match json.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// Each statement's condition keys (`Condition.<operator>.<key>`), in document order.
fn condition_keys(json: &Value) -> Vec<Vec<String>> {
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
fn without_conditions(mut json: Value, kind: PolicyKind) -> Option<Policy> {
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

#[cfg(test)]
mod tests {
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
        let q = QueryParams::parse(
            b"ContextEntries.member.1.ContextKeyName=aws%3ASourceIp&ContextEntries.member.1.ContextKeyType=ip&ContextEntries.member.1.ContextKeyValues.member.1=10.1.2.3&ContextEntries.member.2.ContextKeyName=aws%3ASecureTransport&ContextEntries.member.2.ContextKeyType=boolean&ContextEntries.member.2.ContextKeyValues.member.1=TRUE",
        )
        .unwrap_or_default();
        let ctx = context_of(&q.struct_list("ContextEntries")).unwrap_or_default();
        assert_eq!(ctx.get("aws:sourceip"), Some(&["10.1.2.3".to_string()][..]));
        assert_eq!(
            ctx.get("aws:SecureTransport"),
            Some(&["true".to_string()][..])
        );
        let q = QueryParams::parse(
            b"ContextEntries.member.1.ContextKeyName=aws%3ASourceIp&ContextEntries.member.1.ContextKeyType=ip&ContextEntries.member.1.ContextKeyValues.member.1=nope",
        )
        .unwrap_or_default();
        assert!(context_of(&q.struct_list("ContextEntries")).is_err());
    }
}
