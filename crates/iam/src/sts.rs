//! STS (awsQuery, version 2011-06-15): `GetCallerIdentity`, `AssumeRole` and
//! `GetSessionToken` (spec §7.3).
//!
//! Temporary credentials are an `ASIA…` key id, a 40-character secret sealed under the root
//! key like long-term secrets, and an opaque random session token of which only the SHA-256
//! is stored. `identity::resolve_credential` checks token, expiry and that the role (by
//! unique id) still exists on every request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::{Duration, OffsetDateTime};
use tresor_crypto::{ids, random_bytes};
use tresor_policy::{Policy, PolicyError, PolicyKind};
use tresor_store::WriteTxn;
use tresor_wire::query::QueryParams;
use tresor_wire::validate::Validator;
use tresor_wire::xml::XmlWriter;
use tresor_wire::{AwsError, Protocol};

use crate::api::{self, RoleRecord};
use crate::identity::{
    FORMAT, SessionPrincipal, SessionRecord, assumed_role_caller, seal_secret, token_digest,
};
use crate::keys;
use tresor_core::Services;
use tresor_core::authz::{AuthzRequest, ResourcePolicy};
use tresor_core::ctx::{CallerKind, RequestCtx};
use tresor_core::error::{AuthzError, ServiceError};
use tresor_core::record;

/// Role sessions assumed with temporary credentials ("role chaining") last at most an hour
/// (IAM User Guide, "Roles terms and concepts: Role chaining").
const ROLE_CHAINING_MAX: i64 = 3600;
/// Random bytes in a session token (base64 on the wire).
const TOKEN_BYTES: usize = 96;
/// The budget `PackedPolicySize` is a percentage of (the session policy length limit).
const PACKED_POLICY_BUDGET: usize = 2048;

/// `GetCallerIdentity`: no permission needed; an explicit deny does not apply (botocore
/// model documentation of the operation).
pub fn get_caller_identity(
    _services: &Services,
    ctx: &RequestCtx,
    _input: &QueryParams,
) -> Result<Option<String>, AwsError> {
    let caller = &ctx.caller;
    let mut w = XmlWriter::new();
    w.elem("UserId", &caller.user_id)
        .elem("Account", &caller.account)
        .elem("Arn", &caller.arn);
    Ok(Some(w.finish()))
}

pub fn assume_role(
    services: &Services,
    ctx: &RequestCtx,
    input: &QueryParams,
) -> Result<Option<String>, AwsError> {
    assume_role_inner(services, ctx, input).map_err(|e| e.into_aws(Protocol::AwsQuery))
}

pub fn get_session_token(
    services: &Services,
    ctx: &RequestCtx,
    input: &QueryParams,
) -> Result<Option<String>, AwsError> {
    get_session_token_inner(services, ctx, input).map_err(|e| e.into_aws(Protocol::AwsQuery))
}

fn sts_error(code: &'static str, status: u16, message: impl Into<String>) -> ServiceError {
    ServiceError::Aws(AwsError::new(code, status, message))
}

fn access_denied(message: impl Into<String>) -> ServiceError {
    ServiceError::Aws(AwsError::access_denied(Protocol::AwsQuery, message))
}

fn validation(message: impl Into<String>) -> ServiceError {
    ServiceError::Aws(AwsError::validation(Protocol::AwsQuery, message))
}

fn pattern_ok(v: &str, extra: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) || extra.contains(c))
}

/// Issued temporary credentials.
struct Issued {
    access_key_id: String,
    secret: String,
    token: String,
    expiration: OffsetDateTime,
}

/// Creates a session record (in `txn`) and returns its credentials.
fn issue(
    services: &Services,
    txn: &mut dyn WriteTxn,
    account: &str,
    principal: SessionPrincipal,
    duration: i64,
    now: OffsetDateTime,
) -> Result<Issued, ServiceError> {
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

fn write_credentials(w: &mut XmlWriter, c: &Issued) {
    w.open("Credentials")
        .elem("AccessKeyId", &c.access_key_id)
        .elem("SecretAccessKey", &c.secret)
        .elem("SessionToken", &c.token)
        .elem("Expiration", &tresor_wire::timefmt::iso8601(c.expiration))
        .close("Credentials");
}

fn session_policy_error(e: PolicyError) -> ServiceError {
    match e {
        PolicyError::Malformed(m) => sts_error("MalformedPolicyDocument", 400, m),
        PolicyError::TooLarge { size, limit } => packed_too_large(size, limit),
    }
}

fn packed_too_large(size: usize, limit: usize) -> ServiceError {
    let percent = size * 100 / limit.max(1);
    sts_error(
        "PackedPolicyTooLarge",
        400,
        format!("Packed policy consumes {percent}% of allotted space, please use smaller policy."),
    )
}

fn assume_role_inner(
    services: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> Result<Option<String>, ServiceError> {
    let role_arn = p.required("RoleArn")?;
    let session_name = p.required("RoleSessionName")?;
    let duration = p.int("DurationSeconds")?;
    let external_id = p.get("ExternalId");
    let source_identity = p.get("SourceIdentity");
    let policy = p.get("Policy");
    let policy_arns: Vec<String> = p
        .struct_list("PolicyArns")
        .iter()
        .filter_map(|m| m.get("arn").map(|a| a.to_string()))
        .collect();
    let transitive: Vec<String> = p
        .list("TransitiveTagKeys")
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut v = Validator::new();
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
    v.length("Policy", policy, 1, usize::MAX);
    if policy_arns.len() > 10 {
        v.fail(
            "PolicyArns",
            None,
            "Member must have length less than or equal to 10",
        );
    }
    v.finish(Protocol::AwsQuery)?;
    let tags = api::parse_tags(p, "Tags")?;
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
    req.context
        .push(("sts:RoleSessionName".to_string(), session_name.to_string()));
    if let Some(e) = external_id {
        req.context
            .push(("sts:ExternalId".to_string(), e.to_string()));
    }
    if let Some(s) = source_identity {
        req.context
            .push(("sts:SourceIdentity".to_string(), s.to_string()));
    }
    for (k, v) in &tags {
        req.context.push((format!("aws:RequestTag/{k}"), v.clone()));
        req.context.push(("aws:TagKeys".to_string(), k.clone()));
    }
    for k in &transitive {
        req.context
            .push(("sts:TransitiveTagKeys".to_string(), k.clone()));
    }
    let authorize = |action: &'static str| -> Result<(), ServiceError> {
        let mut r = AuthzRequest::new(action, role_arn);
        r.resource_policy = Some(ResourcePolicy::RoleTrust(&role.assume_role_policy));
        r.context = req.context.clone();
        services.authorize(ctx, &r).map_err(|e| match e {
            // AWS reports every refused AssumeRole with the plain message, whatever the reason.
            AuthzError::Denied { .. } => denied(),
            other => ServiceError::from(other),
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

    // Session policies narrow the session; they are validated and frozen now.
    let mut session_policies: Vec<(String, String)> = Vec::new();
    if let Some(doc) = policy {
        Policy::parse(doc, PolicyKind::Session).map_err(session_policy_error)?;
        session_policies.push(("session policy".to_string(), doc.to_string()));
    }
    for arn in &policy_arns {
        let doc = api::managed_policy_document(&*txn, &role_account, arn)?.ok_or_else(|| {
            sts_error(
                "MalformedPolicyDocument",
                400,
                format!("Policy {arn} does not exist or is not attachable."),
            )
        })?;
        session_policies.push((arn.clone(), doc));
    }
    let mut session_tags = carried_tags;
    api::merge_tags(&mut session_tags, tags.clone());
    let mut transitive_keys = carried_keys;
    for k in transitive {
        if !transitive_keys.iter().any(|t| t.eq_ignore_ascii_case(&k)) {
            transitive_keys.push(k);
        }
    }
    let packed = if policy.is_some() || !policy_arns.is_empty() || !tags.is_empty() {
        let size = policy.map_or(0, tresor_policy::non_whitespace_len)
            + policy_arns.iter().map(String::len).sum::<usize>()
            + session_tags
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > PACKED_POLICY_BUDGET {
            return Err(packed_too_large(size, PACKED_POLICY_BUDGET));
        }
        Some(size.saturating_mul(100).div_ceil(PACKED_POLICY_BUDGET))
    } else {
        None
    };
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
        },
        duration,
        ctx.now,
    )?;
    txn.commit()?;
    let session_caller =
        assumed_role_caller(&role_account, &role, session_name, &issued.access_key_id);
    let mut w = XmlWriter::new();
    write_credentials(&mut w, &issued);
    w.open("AssumedRoleUser")
        .elem("AssumedRoleId", &session_caller.user_id)
        .elem("Arn", &session_caller.arn)
        .close("AssumedRoleUser");
    if let Some(pp) = packed {
        w.elem("PackedPolicySize", &pp.to_string());
    }
    w.opt("SourceIdentity", source.as_deref());
    Ok(Some(w.finish()))
}

fn parse_account(arn: &str) -> Option<String> {
    arn.strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(':'))
        .map(|(a, _)| a.to_string())
}

fn get_session_token_inner(
    services: &Services,
    ctx: &RequestCtx,
    p: &QueryParams,
) -> Result<Option<String>, ServiceError> {
    let duration = p.int("DurationSeconds")?;
    let mut v = Validator::new();
    v.range("DurationSeconds", duration, 900, 129_600);
    v.length("SerialNumber", p.get("SerialNumber"), 9, 256);
    v.length("TokenCode", p.get("TokenCode"), 6, 6);
    v.finish(Protocol::AwsQuery)?;
    let caller = &ctx.caller;
    // "No permissions are required for users to perform this operation" (STS API reference,
    // GetSessionToken), but session credentials cannot call it.
    if caller.access_key_id.starts_with("ASIA") {
        return Err(access_denied(
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    if p.get("SerialNumber").is_some() {
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
    let mut w = XmlWriter::new();
    write_credentials(&mut w, &issued);
    Ok(Some(w.finish()))
}
