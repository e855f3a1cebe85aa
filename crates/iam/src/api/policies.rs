//! Managed policies and their versions: customer managed policies (`CreatePolicy` …
//! `SetDefaultPolicyVersion`) and the read-only AWS managed ones, plus
//! `ListEntitiesForPolicy`. A policy keeps at most 5 versions; it cannot be deleted while
//! attached, used as a permissions boundary, or holding non-default versions.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;
use tresor_policy::{MANAGED_POLICY_MAX_SIZE, Policy, PolicyKind};
use tresor_store::ReadTxn;

use super::arn::parse_iam_arn;
use super::aws_managed::{self, AwsManagedPolicy};
use super::check::{Check, check_tags};
use super::document::encode_document;
use super::entity::Entity;
use super::entity::{EntityKind, authorize, scan_all, scan_keys};
use super::errors::{delete_conflict, invalid_input, limit_exceeded, no_such_entity, policy_error};
use super::pagination::Page;
use crate::error::IamError;
use crate::identity::{FORMAT, UserRecord};
use crate::keys;
use crate::shapes::{Tag, TagInput};
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// Versions a managed policy may hold (IAM and AWS STS quotas).
const MAX_VERSIONS: usize = 5;

use crate::records::{GroupRecord, ManagedPolicyRecord, PolicyVersionRecord, RoleRecord};

/// A managed policy as operations see it, customer or AWS managed.
pub(crate) enum Managed {
    Local(ManagedPolicyRecord),
    Aws(&'static AwsManagedPolicy),
}

impl Managed {
    pub(crate) fn name(&self) -> &str {
        match self {
            Managed::Local(r) => &r.name,
            Managed::Aws(p) => p.name,
        }
    }

    pub(crate) fn path(&self) -> &str {
        match self {
            Managed::Local(r) => &r.path,
            Managed::Aws(p) => p.path,
        }
    }

    pub(crate) fn arn(&self, account: &str) -> String {
        match self {
            Managed::Local(r) => r.arn(account),
            Managed::Aws(p) => p.arn(),
        }
    }

    /// The index component ([`keys::policy_ref`]).
    pub(crate) fn index_ref(&self) -> String {
        keys::policy_ref(matches!(self, Managed::Aws(_)), self.name())
    }

    pub(crate) fn default_document(&self) -> Option<String> {
        match self {
            Managed::Local(r) => r.default_document().map(str::to_string),
            Managed::Aws(p) => Some(p.document.to_string()),
        }
    }
}

/// A syntactically valid policy ARN: the account (`aws` for AWS managed), path and name.
fn split_policy_arn(arn: &str) -> Result<(&str, String, &str), IamError> {
    match parse_iam_arn(arn) {
        Some((account, "policy", path, name)) => Ok((account, path, name)),
        _ => Err(invalid_input(format!("ARN {arn} is not valid."))),
    }
}

/// Finds the managed policy `arn` names, as seen from `account` (only the account's own
/// policies and AWS managed policies are visible). `Err(InvalidInput)` for a malformed ARN.
pub(crate) fn resolve(
    txn: &dyn ReadTxn,
    account: &str,
    arn: &str,
) -> Result<Option<Managed>, IamError> {
    let (owner, path, name) = split_policy_arn(arn)?;
    if owner == "aws" {
        return Ok(aws_managed::find(&path, name).map(Managed::Aws));
    }
    if owner != account {
        return Ok(None);
    }
    Ok(
        record::get::<ManagedPolicyRecord>(txn, &keys::policy(account, name))?
            .filter(|r| r.path == path && r.name == name)
            .map(Managed::Local),
    )
}

/// Checks a `PermissionsBoundary` ARN names an existing managed policy.
pub(crate) fn check_boundary(
    txn: &dyn ReadTxn,
    account: &str,
    arn: &str,
) -> Result<String, IamError> {
    match resolve(txn, account, arn)? {
        Some(m) => Ok(m.index_ref()),
        None => Err(no_such_entity(format!(
            "Scope ARN: {arn} does not exist or is not attachable."
        ))),
    }
}

/// The default version's document of the managed policy `arn` (for the Authorizer).
pub(crate) fn default_document(
    txn: &dyn ReadTxn,
    account: &str,
    arn: &str,
) -> Result<Option<String>, IamError> {
    match resolve(txn, account, arn) {
        Ok(found) => Ok(found.and_then(|m| m.default_document())),
        Err(e @ IamError::Internal(_)) => Err(e),
        Err(_) => Ok(None),
    }
}

fn not_found(arn: &str) -> IamError {
    no_such_entity(format!("Policy {arn} was not found."))
}

fn unmodifiable(arn: &str) -> IamError {
    // AWS managed policies belong to AWS; IAM refuses every change to them. The exact code
    // AWS answers is not documented; `UnmodifiableEntity` is IAM's modeled error for entities
    // the caller may not change.
    IamError::UnmodifiableEntity(format!(
        "Policy {arn} is an AWS managed policy and cannot be modified or deleted."
    ))
}

fn attachment_count(txn: &dyn ReadTxn, account: &str, m: &Managed) -> Result<usize, IamError> {
    Ok(scan_keys(
        txn,
        &keys::policy_attachment_prefix(account, &m.index_ref()),
    )?
    .len())
}

fn boundary_count(txn: &dyn ReadTxn, account: &str, m: &Managed) -> Result<usize, IamError> {
    Ok(scan_keys(txn, &keys::boundary_use_prefix(account, &m.index_ref()))?.len())
}

/// `Policy`. `full` adds `Description` and `Tags` (GetPolicy/CreatePolicy; not in
/// ListPolicies).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyShape {
    pub policy_name: String,
    pub policy_id: String,
    pub arn: String,
    pub path: String,
    pub default_version_id: String,
    pub attachment_count: usize,
    pub permissions_boundary_usage_count: usize,
    pub is_attachable: bool,
    pub description: Option<String>,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub create_date: OffsetDateTime,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub update_date: OffsetDateTime,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl PolicyShape {
    fn of(
        txn: &dyn ReadTxn,
        account: &str,
        m: &Managed,
        full: bool,
    ) -> Result<PolicyShape, IamError> {
        let attachment_count = attachment_count(txn, account, m)?;
        let permissions_boundary_usage_count = boundary_count(txn, account, m)?;
        Ok(match m {
            Managed::Local(r) => PolicyShape {
                policy_name: r.name.clone(),
                policy_id: r.policy_id.clone(),
                arn: r.arn(account),
                path: r.path.clone(),
                default_version_id: r.default_version.clone(),
                attachment_count,
                permissions_boundary_usage_count,
                is_attachable: true,
                description: if full { r.description.clone() } else { None },
                create_date: r.created,
                update_date: r.updated,
                tags: if full { Tag::list(&r.tags) } else { Vec::new() },
            },
            Managed::Aws(p) => PolicyShape {
                policy_name: p.name.to_string(),
                policy_id: p.policy_id.to_string(),
                arn: p.arn(),
                path: p.path.to_string(),
                default_version_id: p.default_version.to_string(),
                attachment_count,
                permissions_boundary_usage_count,
                is_attachable: true,
                description: full.then(|| p.description.to_string()),
                create_date: p.created,
                update_date: p.updated,
                tags: Vec::new(),
            },
        })
    }
}

/// `PolicyVersion`; `Document` (percent-encoded) only from GetPolicyVersion.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersion {
    pub document: Option<String>,
    pub version_id: String,
    pub is_default_version: bool,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub create_date: OffsetDateTime,
}

impl PolicyVersion {
    fn of(v: &PolicyVersionRecord, default: &str, with_document: bool) -> PolicyVersion {
        PolicyVersion {
            document: with_document.then(|| encode_document(&v.document)),
            version_id: v.id.clone(),
            is_default_version: v.id == default,
            create_date: v.created,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreatePolicyInput {
    pub policy_name: String,
    pub policy_document: String,
    pub path: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<TagInput>,
}

/// `CreatePolicy` and `GetPolicy`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyOutput {
    pub policy: PolicyShape,
}

/// `GetPolicy` and `DeletePolicy`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyArnInput {
    pub policy_arn: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPoliciesInput {
    pub scope: Option<String>,
    pub only_attached: Option<bool>,
    pub path_prefix: Option<String>,
    pub policy_usage_filter: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPoliciesOutput {
    pub policies: Vec<PolicyShape>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreatePolicyVersionInput {
    pub policy_document: String,
    pub set_as_default: Option<bool>,
    pub policy_arn: String,
}

/// `CreatePolicyVersion` and `GetPolicyVersion`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersionOutput {
    pub policy_version: PolicyVersion,
}

/// `GetPolicyVersion`, `DeletePolicyVersion` and `SetDefaultPolicyVersion`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersionInput {
    pub version_id: String,
    pub policy_arn: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPolicyVersionsInput {
    pub marker: Option<String>,
    pub max_items: Option<i64>,
    pub policy_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPolicyVersionsOutput {
    pub versions: Vec<PolicyVersion>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEntitiesForPolicyInput {
    pub entity_filter: Option<String>,
    pub path_prefix: Option<String>,
    pub policy_usage_filter: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
    pub policy_arn: String,
}

/// `PolicyGroup`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyGroup {
    pub group_name: String,
    pub group_id: String,
}

/// `PolicyUser`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyUser {
    pub user_name: String,
    pub user_id: String,
}

/// `PolicyRole`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyRole {
    pub role_name: String,
    pub role_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEntitiesForPolicyOutput {
    pub policy_groups: Vec<PolicyGroup>,
    pub policy_users: Vec<PolicyUser>,
    pub policy_roles: Vec<PolicyRole>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

fn aws_versions(p: &AwsManagedPolicy) -> Vec<PolicyVersionRecord> {
    vec![PolicyVersionRecord {
        id: p.default_version.to_string(),
        document: p.document.to_string(),
        created: p.updated,
    }]
}

fn validate_document(doc: &str) -> Result<(), IamError> {
    Policy::parse_with_limit(doc, PolicyKind::Identity, MANAGED_POLICY_MAX_SIZE)
        .map_err(policy_error::<IamError>)?;
    Ok(())
}

pub fn create_policy(
    s: &Services,
    ctx: &RequestCtx,
    input: CreatePolicyInput,
) -> Result<PolicyOutput, IamError> {
    let name = input.policy_name.as_str();
    let doc = input.policy_document.as_str();
    let path = input.path.as_deref().unwrap_or("/");
    let description = input.description.as_deref();
    let mut check = Check::new();
    check.name("PolicyName", Some(name), 128);
    check.policy_path("Path", Some(path));
    check.length("Description", description, 0, 1000);
    check.length("PolicyDocument", Some(doc), 1, 131_072);
    check.finish()?;
    let tags = check_tags("Tags", &input.tags)?;
    let account = &ctx.caller.account;
    let arn = format!(
        "arn:{}:iam::{account}:policy{path}{name}",
        tresor_policy::arn::partition()
    );
    let mut txn = s.store().begin_write()?;
    authorize(s, ctx, "iam:CreatePolicy", &arn)?;
    validate_document(doc)?;
    let key = keys::policy(account, name);
    if txn.get(&key)?.is_some() {
        return Err(super::errors::already_exists(format!(
            "A policy called {name} already exists. Duplicate names are not allowed."
        )));
    }
    let record = ManagedPolicyRecord {
        v: FORMAT,
        name: name.to_string(),
        path: path.to_string(),
        policy_id: ids::unique_id("ANPA"),
        created: ctx.now,
        updated: ctx.now,
        description: description.filter(|d| !d.is_empty()).map(str::to_string),
        tags,
        default_version: "v1".to_string(),
        versions: vec![PolicyVersionRecord {
            id: "v1".to_string(),
            document: doc.to_string(),
            created: ctx.now,
        }],
        next_version: 2,
    };
    record::put(&mut *txn, &key, &record)?;
    txn.put(
        &keys::unique_id(account, &record.policy_id),
        name.as_bytes(),
    )?;
    let policy = PolicyShape::of(&*txn, account, &Managed::Local(record), true)?;
    txn.commit()?;
    Ok(PolicyOutput { policy })
}

/// Reads the policy `arn` (the `PolicyArn` member) after authorizing `action` on it.
fn authorized_policy(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    arn: &str,
    action: &str,
) -> Result<(String, Managed), IamError> {
    let mut check = Check::new();
    check.length("PolicyArn", Some(arn), 20, 2048);
    check.finish()?;
    authorize(s, ctx, action, arn)?;
    let found = resolve(txn, &ctx.caller.account, arn)?.ok_or_else(|| not_found(arn))?;
    Ok((arn.to_string(), found))
}

pub fn get_policy(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyArnInput,
) -> Result<PolicyOutput, IamError> {
    let txn = s.store().begin_read()?;
    let (_, m) = authorized_policy(s, &*txn, ctx, &input.policy_arn, "iam:GetPolicy")?;
    Ok(PolicyOutput {
        policy: PolicyShape::of(&*txn, &ctx.caller.account, &m, true)?,
    })
}

pub fn delete_policy(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyArnInput,
) -> Result<(), IamError> {
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let (arn, m) = authorized_policy(s, &*txn, ctx, &input.policy_arn, "iam:DeletePolicy")?;
    let Managed::Local(record) = &m else {
        return Err(unmodifiable(&arn));
    };
    if attachment_count(&*txn, account, &m)? > 0 {
        return Err(delete_conflict(
            "Cannot delete a policy attached to entities.",
        ));
    }
    if boundary_count(&*txn, account, &m)? > 0 {
        return Err(delete_conflict(
            "Cannot delete a policy used as a permissions boundary by entities.",
        ));
    }
    if record.versions.len() > 1 {
        return Err(delete_conflict(
            "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
        ));
    }
    txn.delete(&keys::policy(account, &record.name))?;
    txn.delete(&keys::unique_id(account, &record.policy_id))?;
    txn.commit()?;
    Ok(())
}

pub fn list_policies(
    s: &Services,
    ctx: &RequestCtx,
    input: ListPoliciesInput,
) -> Result<ListPoliciesOutput, IamError> {
    let scope = input.scope.as_deref().unwrap_or("All");
    let only_attached = input.only_attached.unwrap_or(false);
    let prefix = input.path_prefix.as_deref().unwrap_or("/");
    let usage = input.policy_usage_filter.as_deref();
    let mut check = Check::new();
    check.enumeration("Scope", Some(scope), &["All", "AWS", "Local"]);
    check.policy_path("PathPrefix", Some(prefix));
    check.enumeration(
        "PolicyUsageFilter",
        usage,
        &["PermissionsPolicy", "PermissionsBoundary"],
    );
    check.finish()?;
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    authorize(
        s,
        ctx,
        "iam:ListPolicies",
        &format!(
            "arn:{}:iam::{account}:policy{prefix}",
            tresor_policy::arn::partition()
        ),
    )?;
    let mut all: Vec<Managed> = Vec::new();
    if scope != "Local" {
        all.extend(aws_managed::AWS_MANAGED_POLICIES.iter().map(Managed::Aws));
    }
    if scope != "AWS" {
        all.extend(
            scan_all::<ManagedPolicyRecord>(&*txn, &keys::policy_prefix(account))?
                .into_iter()
                .map(|(_, r)| Managed::Local(r)),
        );
    }
    let mut selected = Vec::new();
    for m in all {
        if !m.path().starts_with(prefix) {
            continue;
        }
        let attached = attachment_count(&*txn, account, &m)? > 0;
        let bounds = boundary_count(&*txn, account, &m)? > 0;
        let used = match usage {
            Some("PermissionsPolicy") => attached,
            Some("PermissionsBoundary") => bounds,
            _ => attached || bounds,
        };
        if only_attached && !used {
            continue;
        }
        selected.push(m);
    }
    let (items, next) = page.apply(selected, Managed::index_ref);
    let policies = items
        .iter()
        .map(|m| PolicyShape::of(&*txn, account, m, false))
        .collect::<Result<_, _>>()?;
    Ok(ListPoliciesOutput {
        policies,
        is_truncated: next.is_some(),
        marker: next,
    })
}

pub fn create_policy_version(
    s: &Services,
    ctx: &RequestCtx,
    input: CreatePolicyVersionInput,
) -> Result<PolicyVersionOutput, IamError> {
    let doc = input.policy_document.as_str();
    let set_default = input.set_as_default.unwrap_or(false);
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let (arn, m) = authorized_policy(s, &*txn, ctx, &input.policy_arn, "iam:CreatePolicyVersion")?;
    let Managed::Local(mut record) = m else {
        return Err(unmodifiable(&arn));
    };
    validate_document(doc)?;
    if record.versions.len() >= MAX_VERSIONS {
        return Err(limit_exceeded(
            "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
        ));
    }
    let version = PolicyVersionRecord {
        id: format!("v{}", record.next_version),
        document: doc.to_string(),
        created: ctx.now,
    };
    record.next_version += 1;
    if set_default {
        record.default_version = version.id.clone();
    }
    record.updated = ctx.now;
    record.versions.push(version.clone());
    record::put(&mut *txn, &keys::policy(account, &record.name), &record)?;
    txn.commit()?;
    Ok(PolicyVersionOutput {
        policy_version: PolicyVersion::of(&version, &record.default_version, false),
    })
}

/// Checks a `VersionId` against the model's pattern.
fn version_id(id: &str) -> Result<&str, IamError> {
    let ok = id
        .strip_prefix('v')
        .and_then(|n| n.split('.').next())
        .is_some_and(|n| {
            !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
        });
    if !ok {
        let mut check = Check::new();
        check.pattern("VersionId", id, r"v[1-9][0-9]*(\.[A-Za-z0-9-]*)?");
        check.finish()?;
    }
    Ok(id)
}

fn version_not_found(arn: &str, id: &str) -> IamError {
    no_such_entity(format!(
        "Policy {arn} version {id} does not exist or is not attachable."
    ))
}

pub fn get_policy_version(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyVersionInput,
) -> Result<PolicyVersionOutput, IamError> {
    let id = version_id(&input.version_id)?;
    let txn = s.store().begin_read()?;
    let (arn, m) = authorized_policy(s, &*txn, ctx, &input.policy_arn, "iam:GetPolicyVersion")?;
    let (versions, default) = match &m {
        Managed::Local(r) => (r.versions.clone(), r.default_version.clone()),
        Managed::Aws(a) => (aws_versions(a), a.default_version.to_string()),
    };
    let v = versions
        .iter()
        .find(|v| v.id == id)
        .ok_or_else(|| version_not_found(&arn, id))?;
    Ok(PolicyVersionOutput {
        policy_version: PolicyVersion::of(v, &default, true),
    })
}

pub fn list_policy_versions(
    s: &Services,
    ctx: &RequestCtx,
    input: ListPolicyVersionsInput,
) -> Result<ListPolicyVersionsOutput, IamError> {
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let txn = s.store().begin_read()?;
    let (_, m) = authorized_policy(s, &*txn, ctx, &input.policy_arn, "iam:ListPolicyVersions")?;
    let (versions, default) = match &m {
        Managed::Local(r) => (r.versions.clone(), r.default_version.clone()),
        Managed::Aws(a) => (aws_versions(a), a.default_version.to_string()),
    };
    // Newest first, as IAM lists them.
    let (items, next) = page.apply(versions, |v| {
        let n: u32 =
            v.id.trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        format!("{:010}", u32::MAX - n)
    });
    Ok(ListPolicyVersionsOutput {
        versions: items
            .iter()
            .map(|v| PolicyVersion::of(v, &default, false))
            .collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}

pub fn delete_policy_version(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyVersionInput,
) -> Result<(), IamError> {
    let id = version_id(&input.version_id)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let (arn, m) = authorized_policy(s, &*txn, ctx, &input.policy_arn, "iam:DeletePolicyVersion")?;
    let Managed::Local(mut record) = m else {
        return Err(unmodifiable(&arn));
    };
    if !record.versions.iter().any(|v| v.id == id) {
        return Err(version_not_found(&arn, id));
    }
    if record.default_version == id {
        return Err(delete_conflict(
            "Cannot delete the default version of a policy.",
        ));
    }
    record.versions.retain(|v| v.id != id);
    record::put(&mut *txn, &keys::policy(account, &record.name), &record)?;
    txn.commit()?;
    Ok(())
}

pub fn set_default_policy_version(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyVersionInput,
) -> Result<(), IamError> {
    let id = version_id(&input.version_id)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let (arn, m) = authorized_policy(
        s,
        &*txn,
        ctx,
        &input.policy_arn,
        "iam:SetDefaultPolicyVersion",
    )?;
    let Managed::Local(mut record) = m else {
        return Err(unmodifiable(&arn));
    };
    if !record.versions.iter().any(|v| v.id == id) {
        return Err(version_not_found(&arn, id));
    }
    record.default_version = id.to_string();
    record.updated = ctx.now;
    record::put(&mut *txn, &keys::policy(account, &record.name), &record)?;
    txn.commit()?;
    Ok(())
}

/// One entity that uses a policy.
struct Usage {
    kind: EntityKind,
    name: String,
    id: String,
    path: String,
}

fn usages(txn: &dyn ReadTxn, account: &str, prefix: &str) -> Result<Vec<Usage>, IamError> {
    let mut out = Vec::new();
    for (key, name) in scan_keys(txn, prefix)? {
        let rest = &key[prefix.len()..];
        let kind = match rest.split('/').next() {
            Some("user") => EntityKind::User,
            Some("group") => EntityKind::Group,
            Some("role") => EntityKind::Role,
            _ => continue,
        };
        let found = match kind {
            EntityKind::User => record::get::<UserRecord>(txn, &keys::user(account, &name))?
                .map(|r| (r.id().to_string(), r.path.clone())),
            EntityKind::Group => record::get::<GroupRecord>(txn, &keys::group(account, &name))?
                .map(|r| (r.id().to_string(), r.path.clone())),
            EntityKind::Role => record::get::<RoleRecord>(txn, &keys::role(account, &name))?
                .map(|r| (r.id().to_string(), r.path.clone())),
            EntityKind::InstanceProfile => None,
        };
        if let Some((id, path)) = found {
            out.push(Usage {
                kind,
                name,
                id,
                path,
            });
        }
    }
    Ok(out)
}

pub fn list_entities_for_policy(
    s: &Services,
    ctx: &RequestCtx,
    input: ListEntitiesForPolicyInput,
) -> Result<ListEntitiesForPolicyOutput, IamError> {
    let filter = input.entity_filter.as_deref();
    let prefix = input.path_prefix.as_deref().unwrap_or("/");
    let usage = input.policy_usage_filter.as_deref();
    let mut check = Check::new();
    check.enumeration(
        "EntityFilter",
        filter,
        &[
            "User",
            "Role",
            "Group",
            "LocalManagedPolicy",
            "AWSManagedPolicy",
        ],
    );
    check.path("PathPrefix", Some(prefix));
    check.enumeration(
        "PolicyUsageFilter",
        usage,
        &["PermissionsPolicy", "PermissionsBoundary"],
    );
    check.finish()?;
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let (_, m) = authorized_policy(
        s,
        &*txn,
        ctx,
        &input.policy_arn,
        "iam:ListEntitiesForPolicy",
    )?;
    let mut all = Vec::new();
    if usage != Some("PermissionsBoundary") {
        all.extend(usages(
            &*txn,
            account,
            &keys::policy_attachment_prefix(account, &m.index_ref()),
        )?);
    }
    if usage != Some("PermissionsPolicy") {
        for u in usages(
            &*txn,
            account,
            &keys::boundary_use_prefix(account, &m.index_ref()),
        )? {
            if !all
                .iter()
                .any(|a: &Usage| a.kind == u.kind && a.name == u.name)
            {
                all.push(u);
            }
        }
    }
    all.retain(|u| {
        u.path.starts_with(prefix)
            && match filter {
                Some("User") => u.kind == EntityKind::User,
                Some("Role") => u.kind == EntityKind::Role,
                Some("Group") => u.kind == EntityKind::Group,
                _ => true,
            }
    });
    let (items, next) = page.apply(all, |u| {
        format!("{}/{}", u.kind.word(), u.name.to_lowercase())
    });
    let of_kind = |kind: EntityKind| items.iter().filter(move |u| u.kind == kind);
    Ok(ListEntitiesForPolicyOutput {
        policy_groups: of_kind(EntityKind::Group)
            .map(|u| PolicyGroup {
                group_name: u.name.clone(),
                group_id: u.id.clone(),
            })
            .collect(),
        policy_users: of_kind(EntityKind::User)
            .map(|u| PolicyUser {
                user_name: u.name.clone(),
                user_id: u.id.clone(),
            })
            .collect(),
        policy_roles: of_kind(EntityKind::Role)
            .map(|u| PolicyRole {
                role_name: u.name.clone(),
                role_id: u.id.clone(),
            })
            .collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}
