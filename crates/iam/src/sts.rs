//! STS (awsQuery, version 2011-06-15): `GetCallerIdentity`, `AssumeRole` and
//! `GetSessionToken` (AWS STS API Reference).
//!
//! Temporary credentials are an `ASIA…` key id, a 40-character secret sealed under the root
//! key like long-term secrets, and an opaque random session token of which only the SHA-256
//! is stored. `identity::resolve_credential` checks token, expiry and that the role (by
//! unique id) still exists on every request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tresor_crypto::{ids, random_bytes};
use tresor_policy::{Policy, PolicyError, PolicyKind};
use tresor_store::WriteTxn;
use tresor_wire::Protocol;
use tresor_wire::validate::Validator;

use crate::api::{self, RoleRecord};
use crate::error::StsError;
use crate::identity::{
    FORMAT, SessionPrincipal, SessionRecord, assumed_role_caller, seal_secret, token_digest,
};
use crate::keys;
use crate::shapes::TagInput;
use tresor_core::Services;
use tresor_core::authz::{AuthzRequest, ResourcePolicy};
use tresor_core::ctx::{CallerKind, RequestCtx};
use tresor_core::error::AuthzError;
use tresor_core::record;

/// Role sessions assumed with temporary credentials ("role chaining") last at most an hour
/// (IAM User Guide, "Roles terms and concepts: Role chaining").
pub(crate) const ROLE_CHAINING_MAX: i64 = 3600;
/// Random bytes in a session token (base64 on the wire).
const TOKEN_BYTES: usize = 96;
/// The budget `PackedPolicySize` is a percentage of (the session policy length limit).
const PACKED_POLICY_BUDGET: usize = 2048;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetCallerIdentityInput {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetCallerIdentityOutput {
    pub user_id: String,
    pub account: String,
    pub arn: String,
}

/// `GetCallerIdentity`: no permission needed; an explicit deny does not apply (botocore
/// model documentation of the operation).
pub fn get_caller_identity(
    _services: &Services,
    ctx: &RequestCtx,
    _input: GetCallerIdentityInput,
) -> Result<GetCallerIdentityOutput, StsError> {
    let caller = &ctx.caller;
    Ok(GetCallerIdentityOutput {
        user_id: caller.user_id.clone(),
        account: caller.account.clone(),
        arn: caller.arn.clone(),
    })
}

/// `PolicyDescriptorType`: a managed policy used as a session policy.
#[derive(Debug, Default, Deserialize)]
pub struct PolicyDescriptorType {
    pub arn: Option<String>,
}

/// `ProvidedContext` (accepted, not evaluated: tresor trusts no context providers).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvidedContext {
    pub provider_arn: Option<String>,
    pub context_assertion: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleInput {
    pub role_arn: String,
    pub role_session_name: String,
    #[serde(default)]
    pub policy_arns: Vec<PolicyDescriptorType>,
    pub policy: Option<String>,
    pub duration_seconds: Option<i64>,
    #[serde(default)]
    pub tags: Vec<TagInput>,
    #[serde(default)]
    pub transitive_tag_keys: Vec<String>,
    pub external_id: Option<String>,
    pub serial_number: Option<String>,
    pub token_code: Option<String>,
    pub source_identity: Option<String>,
    #[serde(default)]
    pub provided_contexts: Vec<ProvidedContext>,
}

/// Temporary credentials. `Debug` leaves the secret and the token out.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub expiration: OffsetDateTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumedRoleUser {
    pub assumed_role_id: String,
    pub arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleOutput {
    pub credentials: Credentials,
    pub assumed_role_user: AssumedRoleUser,
    pub packed_policy_size: Option<usize>,
    pub source_identity: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSessionTokenInput {
    pub duration_seconds: Option<i64>,
    pub serial_number: Option<String>,
    pub token_code: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSessionTokenOutput {
    pub credentials: Credentials,
}

pub(crate) fn access_denied(message: impl Into<String>) -> StsError {
    StsError::AccessDenied(message.into())
}

pub(crate) fn validation(message: impl Into<String>) -> StsError {
    StsError::ValidationError(message.into())
}

/// The members every `AssumeRole*` request shares: the role, the session name, the duration
/// and the session policies.
pub(crate) fn check_role_request(
    v: &mut Validator,
    role_arn: &str,
    session_name: &str,
    duration: Option<i64>,
    policy: Option<&str>,
    policy_arns: &[String],
) {
    v.length("RoleArn", Some(role_arn), 20, 2048);
    v.length("RoleSessionName", Some(session_name), 2, 64);
    if !pattern_ok(session_name, "") {
        v.fail(
            "RoleSessionName",
            Some(session_name),
            r"Member must satisfy regular expression pattern: [\w+=,.@-]*",
        );
    }
    v.range("DurationSeconds", duration, 900, 43200);
    v.length("Policy", policy, 1, usize::MAX);
    if policy_arns.len() > 10 {
        v.fail(
            "PolicyArns",
            None,
            "Member must have length less than or equal to 10",
        );
    }
}

fn pattern_ok(v: &str, extra: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) || extra.contains(c))
}

/// Issued temporary credentials.
pub(crate) struct Issued {
    pub(crate) access_key_id: String,
    secret: String,
    token: String,
    expiration: OffsetDateTime,
}

/// Creates a session record (in `txn`) and returns its credentials.
pub(crate) fn issue(
    services: &Services,
    txn: &mut dyn WriteTxn,
    account: &str,
    principal: SessionPrincipal,
    duration: i64,
    now: OffsetDateTime,
) -> Result<Issued, StsError> {
    let access_key_id = ids::access_key_id("ASIA");
    let secret = ids::secret_access_key();
    let token = STANDARD.encode(random_bytes(TOKEN_BYTES)?.as_slice());
    let expiration = now + Duration::seconds(duration);
    let record = SessionRecord {
        v: FORMAT,
        account: account.to_string(),
        secret_sealed: seal_secret(services.root_key(), &access_key_id, secret.as_bytes())?,
        token_sha256: token_digest(&token),
        created: now,
        expiration,
        principal,
    };
    record::put(txn, &keys::session(&access_key_id), &record)?;
    Ok(Issued {
        access_key_id,
        secret: secret.to_string(),
        token,
        expiration,
    })
}

impl From<Issued> for Credentials {
    fn from(c: Issued) -> Credentials {
        Credentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret,
            session_token: c.token,
            expiration: c.expiration,
        }
    }
}

fn session_policy_error(e: PolicyError) -> StsError {
    match e {
        PolicyError::Malformed(m) => StsError::MalformedPolicyDocument(m),
        PolicyError::TooLarge { size, limit } => packed_too_large(size, limit),
    }
}

fn packed_too_large(size: usize, limit: usize) -> StsError {
    let percent = size * 100 / limit.max(1);
    StsError::PackedPolicyTooLarge(format!(
        "Packed policy consumes {percent}% of allotted space, please use smaller policy."
    ))
}

/// `AssumeRole`: temporary credentials for a role whose trust policy lets the caller in.
pub fn assume_role(
    services: &Services,
    ctx: &RequestCtx,
    input: AssumeRoleInput,
) -> Result<AssumeRoleOutput, StsError> {
    let role_arn = input.role_arn.as_str();
    let session_name = input.role_session_name.as_str();
    let duration = input.duration_seconds;
    let external_id = input.external_id.as_deref();
    let source_identity = input.source_identity.as_deref();
    let policy = input.policy.as_deref();
    let policy_arns = policy_arn_list(&input.policy_arns);
    let transitive = input.transitive_tag_keys;
    let mut v = Validator::new();
    check_role_request(
        &mut v,
        role_arn,
        session_name,
        duration,
        policy,
        &policy_arns,
    );
    v.length("ExternalId", external_id, 2, 1224);
    if let Some(e) = external_id.filter(|e| !pattern_ok(e, ":/")) {
        v.fail(
            "ExternalId",
            Some(e),
            r"Member must satisfy regular expression pattern: [\w+=,.@:\/-]*",
        );
    }
    v.length("SourceIdentity", source_identity, 2, 64);
    if let Some(s) = source_identity.filter(|s| !pattern_ok(s, "")) {
        v.fail(
            "SourceIdentity",
            Some(s),
            r"Member must satisfy regular expression pattern: [\w+=,.@-]*",
        );
    }
    v.finish(Protocol::AwsQuery)?;
    let tags = api::check_tags("Tags", &input.tags)?;
    let caller = &ctx.caller;
    if caller.kind == CallerKind::Root {
        return Err(access_denied("Roles may not be assumed by root accounts."));
    }

    let mut txn = services.store().begin_write()?;
    let denied = || {
        access_denied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            caller.arn
        ))
    };
    // A role that does not exist is reported exactly like one the caller may not assume.
    let role: RoleRecord = api::role_by_arn(&*txn, role_arn)?.ok_or_else(denied)?;
    let role_account = parse_account(role_arn).unwrap_or_default();

    // Session tags and source identity carried over from the calling role session.
    let mut carried_tags: Vec<(String, String)> = Vec::new();
    let mut carried_keys: Vec<String> = Vec::new();
    let mut carried_source: Option<String> = None;
    if matches!(caller.kind, CallerKind::AssumedRole { .. })
        && let Some(s) = record::get::<SessionRecord>(&*txn, &keys::session(&caller.access_key_id))?
        && let SessionPrincipal::Role {
            tags,
            transitive_tag_keys,
            source_identity,
            ..
        } = s.principal
    {
        carried_tags = tags
            .into_iter()
            .filter(|(k, _)| {
                transitive_tag_keys
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(k))
            })
            .collect();
        carried_keys = transitive_tag_keys;
        carried_source = source_identity;
    }
    if let (Some(old), Some(new)) = (&carried_source, source_identity)
        && old != new
    {
        return Err(access_denied(format!(
            "User: {} is not authorized to perform: sts:SetSourceIdentity on resource: {role_arn}",
            caller.arn
        )));
    }

    let mut req = AuthzRequest::new("sts:AssumeRole", role_arn);
    req.resource_policy = Some(ResourcePolicy::RoleTrust(&role.assume_role_policy));
    req.context.push(tresor_core::cond(
        "sts:RoleSessionName",
        session_name.to_string(),
    ));
    if let Some(e) = external_id {
        req.context
            .push(tresor_core::cond("sts:ExternalId", e.to_string()));
    }
    if let Some(s) = source_identity {
        req.context
            .push(tresor_core::cond("sts:SourceIdentity", s.to_string()));
    }
    for (k, v) in &tags {
        req.context
            .push(tresor_core::cond(format!("aws:RequestTag/{k}"), v.clone()));
        req.context
            .push(tresor_core::cond("aws:TagKeys", k.clone()));
    }
    for k in &transitive {
        req.context
            .push(tresor_core::cond("sts:TransitiveTagKeys", k.clone()));
    }
    let authorize = |action: &'static str| -> Result<(), StsError> {
        let mut r = AuthzRequest::new(action, role_arn);
        r.resource_policy = Some(ResourcePolicy::RoleTrust(&role.assume_role_policy));
        r.context = req.context.clone();
        services.authorize(ctx, &r).map_err(|e| match e {
            // AWS reports every refused AssumeRole with the plain message, whatever the reason.
            AuthzError::Denied { .. } => denied(),
            other => StsError::from(other),
        })
    };
    authorize("sts:AssumeRole")?;
    if !tags.is_empty() {
        authorize("sts:TagSession")?;
    }
    if source_identity.is_some() && carried_source.is_none() {
        authorize("sts:SetSourceIdentity")?;
    }

    let is_chained = caller.access_key_id.starts_with("ASIA");
    let duration = duration.unwrap_or(3600);
    if is_chained && duration > ROLE_CHAINING_MAX {
        return Err(validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    if duration > role.max_session_duration {
        return Err(validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }

    let session_policies = frozen_session_policies(&*txn, &role_account, policy, &policy_arns)?;
    let mut session_tags = carried_tags;
    api::merge_tags(&mut session_tags, tags.clone());
    let mut transitive_keys = carried_keys;
    for k in transitive {
        if !transitive_keys.iter().any(|t| t.eq_ignore_ascii_case(&k)) {
            transitive_keys.push(k);
        }
    }
    let packed = packed_policy_size(policy, &policy_arns, &session_tags, !tags.is_empty())?;
    let source = carried_source.or(source_identity.map(str::to_string));

    let issued = issue(
        services,
        &mut *txn,
        &role_account,
        SessionPrincipal::Role {
            role_name: role.name.clone(),
            role_id: role.role_id.clone(),
            session_name: session_name.to_string(),
            policies: session_policies,
            tags: session_tags,
            transitive_tag_keys: transitive_keys,
            source_identity: source.clone(),
            federated: None,
        },
        duration,
        ctx.now,
    )?;
    txn.commit()?;
    let session_caller =
        assumed_role_caller(&role_account, &role, session_name, &issued.access_key_id);
    Ok(AssumeRoleOutput {
        credentials: issued.into(),
        assumed_role_user: AssumedRoleUser {
            assumed_role_id: session_caller.user_id,
            arn: session_caller.arn,
        },
        packed_policy_size: packed,
        source_identity: source,
    })
}

/// Session policies narrow a session; they are validated and frozen when it is created:
/// (label, document) of `Policy` and of each `PolicyArns` entry.
pub(crate) fn frozen_session_policies(
    txn: &dyn tresor_store::ReadTxn,
    role_account: &str,
    policy: Option<&str>,
    policy_arns: &[String],
) -> Result<Vec<(String, String)>, StsError> {
    let mut session_policies: Vec<(String, String)> = Vec::new();
    if let Some(doc) = policy {
        Policy::parse(doc, PolicyKind::Session).map_err(session_policy_error)?;
        session_policies.push(("session policy".to_string(), doc.to_string()));
    }
    for arn in policy_arns {
        let doc = api::managed_policy_document(txn, role_account, arn)?.ok_or_else(|| {
            StsError::MalformedPolicyDocument(format!(
                "Policy {arn} does not exist or is not attachable."
            ))
        })?;
        session_policies.push((arn.clone(), doc));
    }
    Ok(session_policies)
}

/// `PackedPolicySize`: the share (percent) of the packed budget the session policies and
/// tags use, when the request has any; too large is `PackedPolicyTooLarge`.
pub(crate) fn packed_policy_size(
    policy: Option<&str>,
    policy_arns: &[String],
    session_tags: &[(String, String)],
    new_tags: bool,
) -> Result<Option<usize>, StsError> {
    if policy.is_none() && policy_arns.is_empty() && !new_tags {
        return Ok(None);
    }
    let size = policy.map_or(0, tresor_policy::non_whitespace_len)
        + policy_arns.iter().map(String::len).sum::<usize>()
        + session_tags
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if size > PACKED_POLICY_BUDGET {
        return Err(packed_too_large(size, PACKED_POLICY_BUDGET));
    }
    Ok(Some(
        size.saturating_mul(100).div_ceil(PACKED_POLICY_BUDGET),
    ))
}

/// The ARNs of a request's `PolicyArns`.
pub(crate) fn policy_arn_list(items: &[PolicyDescriptorType]) -> Vec<String> {
    items.iter().filter_map(|m| m.arn.clone()).collect()
}

/// A role session for a caller from outside tresor's own identities (a web identity, an
/// upstream AWS principal) whose trust-policy check has passed.
pub(crate) struct OutsideSession<'a> {
    pub(crate) account: &'a str,
    pub(crate) role: &'a RoleRecord,
    pub(crate) session_name: &'a str,
    pub(crate) duration: Option<i64>,
    pub(crate) policy: Option<&'a str>,
    pub(crate) policy_arns: &'a [String],
    pub(crate) federated: crate::identity::FederatedIdentity,
}

/// Issues an [`OutsideSession`] in `txn` and commits: the duration within the role's
/// `MaxSessionDuration`, session policies frozen. Returns the credentials, the session's
/// user and the `PackedPolicySize`.
pub(crate) fn issue_outside_session(
    services: &Services,
    mut txn: Box<dyn WriteTxn + '_>,
    now: OffsetDateTime,
    s: OutsideSession<'_>,
) -> Result<(Credentials, AssumedRoleUser, Option<usize>), StsError> {
    let duration = s.duration.unwrap_or(3600);
    if duration > s.role.max_session_duration {
        return Err(validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    let session_policies = frozen_session_policies(&*txn, s.account, s.policy, s.policy_arns)?;
    let packed = packed_policy_size(s.policy, s.policy_arns, &[], false)?;
    let issued = issue(
        services,
        &mut *txn,
        s.account,
        SessionPrincipal::Role {
            role_name: s.role.name.clone(),
            role_id: s.role.role_id.clone(),
            session_name: s.session_name.to_string(),
            policies: session_policies,
            tags: Vec::new(),
            transitive_tag_keys: Vec::new(),
            source_identity: None,
            federated: Some(Box::new(s.federated)),
        },
        duration,
        now,
    )?;
    txn.commit()?;
    let caller = assumed_role_caller(s.account, s.role, s.session_name, &issued.access_key_id);
    Ok((
        issued.into(),
        AssumedRoleUser {
            assumed_role_id: caller.user_id,
            arn: caller.arn,
        },
        packed,
    ))
}

pub(crate) fn parse_account(arn: &str) -> Option<String> {
    tresor_policy::arn::strip_service_prefix(arn, "iam")
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.split_once(':'))
        .map(|(a, _)| a.to_string())
}

/// `GetSessionToken`: temporary credentials for root or an IAM user, with the caller's own
/// permissions. tresor has no MFA devices, so these sessions never carry MFA context.
pub fn get_session_token(
    services: &Services,
    ctx: &RequestCtx,
    input: GetSessionTokenInput,
) -> Result<GetSessionTokenOutput, StsError> {
    let duration = input.duration_seconds;
    let mut v = Validator::new();
    v.range("DurationSeconds", duration, 900, 129_600);
    v.length("SerialNumber", input.serial_number.as_deref(), 9, 256);
    v.length("TokenCode", input.token_code.as_deref(), 6, 6);
    v.finish(Protocol::AwsQuery)?;
    let caller = &ctx.caller;
    // "No permissions are required for users to perform this operation" (STS API reference,
    // GetSessionToken), but session credentials cannot call it.
    if caller.access_key_id.starts_with("ASIA") {
        return Err(access_denied(
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    if input.serial_number.is_some() {
        // tresor has no MFA devices, so no MFA code can be valid.
        return Err(access_denied(
            "MultiFactorAuthentication failed with invalid MFA one time pass code. ",
        ));
    }
    let (principal, duration) = match &caller.kind {
        // Root sessions last at most an hour; longer requests are shortened (STS API
        // reference, GetSessionToken DurationSeconds).
        CallerKind::Root => (SessionPrincipal::Root, duration.unwrap_or(3600).min(3600)),
        CallerKind::User {
            name, unique_id, ..
        } => (
            SessionPrincipal::User {
                name: name.clone(),
                user_id: unique_id.clone(),
            },
            duration.unwrap_or(43_200),
        ),
        CallerKind::AssumedRole { .. } => {
            return Err(access_denied(
                "Cannot call GetSessionToken with session credentials",
            ));
        }
    };
    let mut txn = services.store().begin_write()?;
    let issued = issue(
        services,
        &mut *txn,
        &caller.account,
        principal,
        duration,
        ctx.now,
    )?;
    txn.commit()?;
    Ok(GetSessionTokenOutput {
        credentials: issued.into(),
    })
}

/// Whether the trust policy of the role `role_arn` lets the AWS service principal
/// `service_principal` (e.g. `lambda.amazonaws.com`) call `sts:AssumeRole`: the check
/// Lambda makes when a function's execution role is set. A missing role is `Ok(false)`.
pub fn service_may_assume_role(
    services: &Services,
    role_arn: &str,
    service_principal: &str,
    now: OffsetDateTime,
) -> Result<bool, StsError> {
    let txn = services.store().begin_read()?;
    let Some(role) = api::role_by_arn(&*txn, role_arn)? else {
        return Ok(false);
    };
    drop(txn);
    Ok(trust_allows_service(
        services,
        &role,
        role_arn,
        service_principal,
        now,
    ))
}

/// The trust-policy decision for a service principal, by the policy engine.
fn trust_allows_service(
    services: &Services,
    role: &RoleRecord,
    role_arn: &str,
    service_principal: &str,
    now: OffsetDateTime,
) -> bool {
    let principal = tresor_policy::Principal::service(service_principal);
    let context = tresor_policy::Context::new().with_current_time(now);
    trust_allows(
        services,
        role,
        role_arn,
        &principal,
        "sts:AssumeRole",
        &context,
    )
}

/// Whether the trust policy of `role` allows `principal` (a service or a federated caller,
/// which have no identity policies) to perform `action` on it, in `context`.
pub(crate) fn trust_allows(
    services: &Services,
    role: &RoleRecord,
    role_arn: &str,
    principal: &tresor_policy::Principal,
    action: &str,
    context: &tresor_policy::Context,
) -> bool {
    let account = parse_account(role_arn);
    trust_allows_in(
        services,
        role,
        role_arn,
        account.as_deref(),
        principal,
        action,
        context,
    )
}

/// [`trust_allows`] with the resource account given: `None` evaluates the principal as one
/// of the role's own account, for callers whose own account authorized them elsewhere.
pub(crate) fn trust_allows_in(
    services: &Services,
    role: &RoleRecord,
    role_arn: &str,
    resource_account: Option<&str>,
    principal: &tresor_policy::Principal,
    action: &str,
    context: &tresor_policy::Context,
) -> bool {
    let Some(trust) = services
        .policy_cache()
        .get(PolicyKind::Trust, &role.assume_role_policy)
    else {
        tracing::error!(role = role_arn, "a stored trust policy does not parse");
        return false;
    };
    let set = tresor_policy::PolicySet {
        resource: Some((
            tresor_policy::PolicySource {
                id: role_arn,
                source_type: tresor_policy::SourcePolicyType::Resource,
            },
            trust.as_ref(),
        )),
        resource_kind: tresor_policy::ResourceKind::RoleTrust,
        ..tresor_policy::PolicySet::default()
    };
    let request = tresor_policy::Request {
        principal,
        action,
        resource: role_arn,
        resource_account,
        context,
    };
    tresor_policy::evaluate(&request, &set).allowed
}

/// Temporary credentials of the role `role_arn` for a session that an AWS service principal
/// starts on its own behalf — Lambda running a function with its execution role, the
/// session named after the function (AWS Lambda Developer Guide, "Lambda execution role").
/// The role's trust policy must allow `service_principal` to `sts:AssumeRole`; the session
/// is minted by the same code as `AssumeRole`'s, in one store transaction.
pub fn assume_role_for_service(
    services: &Services,
    role_arn: &str,
    service_principal: &str,
    session_name: &str,
    duration_seconds: i64,
    now: OffsetDateTime,
) -> Result<(Credentials, AssumedRoleUser), StsError> {
    let denied = || {
        access_denied(format!(
            "{service_principal} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        ))
    };
    let mut txn = services.store().begin_write()?;
    let role: RoleRecord = api::role_by_arn(&*txn, role_arn)?.ok_or_else(denied)?;
    if !trust_allows_service(services, &role, role_arn, service_principal, now) {
        return Err(denied());
    }
    let role_account = parse_account(role_arn).unwrap_or_default();
    let session_name: String = session_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(*c))
        .take(64)
        .collect();
    let duration = duration_seconds.clamp(900, role.max_session_duration.max(900));
    let issued = issue(
        services,
        &mut *txn,
        &role_account,
        SessionPrincipal::Role {
            role_name: role.name.clone(),
            role_id: role.role_id.clone(),
            session_name: session_name.clone(),
            policies: Vec::new(),
            tags: Vec::new(),
            transitive_tag_keys: Vec::new(),
            source_identity: None,
            federated: None,
        },
        duration,
        now,
    )?;
    txn.commit()?;
    let caller = assumed_role_caller(&role_account, &role, &session_name, &issued.access_key_id);
    Ok((
        issued.into(),
        AssumedRoleUser {
            assumed_role_id: caller.user_id,
            arn: caller.arn,
        },
    ))
}
