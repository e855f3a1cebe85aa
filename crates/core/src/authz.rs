//! The Authorizer every operation asks: principal + action + resource ARN +
//! condition keys + optional resource policy → allow, or AWS's access-denied error naming the
//! caller, action, resource and reason. Operations never decide access themselves.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use tresor_policy::{
    Context, Policy, PolicyKind, PolicySet, PolicySource, Principal, Request, ResourceKind,
    SourcePolicyType,
};
use tresor_store::Store;
use tresor_wire::Protocol;

use crate::cache::{CompiledIdentity, FastHash, IdentityCache};
pub use crate::conditions::{Condition, cond, owned_conditions};
use crate::ctx::{Caller, CallerKind, RequestCtx};
use crate::decisions::{DecisionCache, Question};
use crate::directory::Directory;
use crate::error::AuthzError;

/// One authorization question.
pub struct AuthzRequest<'a> {
    /// `service:Action`, e.g. `iam:CreateRole`.
    pub action: &'a str,
    /// The resource ARN, or `*` for actions without a resource.
    pub resource: &'a str,
    /// Service-specific condition keys (`kms:ViaService`, `secretsmanager:SecretId`, …),
    /// borrowed from the request, the caller and the target where they can be: the hot reads
    /// build them on every request.
    pub context: Vec<Condition<'a>>,
    /// The resource-based policy document of the target, if it has one, and what kind it is.
    pub resource_policy: Option<ResourcePolicy<'a>>,
}

pub enum ResourcePolicy<'a> {
    /// A secret's resource policy.
    Generic(&'a str),
    /// A KMS key policy: required; IAM alone never suffices.
    KmsKey(&'a str),
    /// A role's trust policy, for `sts:AssumeRole`.
    RoleTrust(&'a str),
}

impl<'a> AuthzRequest<'a> {
    pub fn new(action: &'a str, resource: &'a str) -> Self {
        AuthzRequest {
            action,
            resource,
            context: Vec::new(),
            resource_policy: None,
        }
    }
}

/// The Authorizer: the caller's identity policies (from the [`Directory`], compiled and cached
/// per access key until the next identity change commits), the target's resource policy and
/// the request's condition keys, evaluated by the pure policy engine.
pub struct Authorizer {
    store: Arc<dyn Store>,
    directory: Arc<dyn Directory>,
    identity_generation: Arc<AtomicU64>,
    policies: PolicyCache,
    identities: IdentityCache,
    decisions: DecisionCache,
}

impl Authorizer {
    pub fn new(
        store: Arc<dyn Store>,
        directory: Arc<dyn Directory>,
        identity_generation: Arc<AtomicU64>,
    ) -> Self {
        Authorizer {
            store,
            directory,
            identity_generation,
            policies: PolicyCache::default(),
            identities: IdentityCache::default(),
            decisions: DecisionCache::default(),
        }
    }

    /// Compiled policies by document text (shared with the policy simulator).
    pub fn policy_cache(&self) -> &PolicyCache {
        &self.policies
    }

    /// Decides `req` for the caller of `ctx`. No transaction of the caller's is needed, so an
    /// operation can ask before it takes the store's writer.
    pub fn authorize(&self, ctx: &RequestCtx, req: &AuthzRequest<'_>) -> Result<(), AuthzError> {
        authorize(self, ctx, req)
    }
}

/// The protocol of the service an IAM action belongs to (`iam:CreateRole` → awsQuery), for
/// rendering errors raised while authorizing it.
pub fn protocol_of_action(action: &str) -> Protocol {
    match action.split(':').next() {
        Some("iam") | Some("sts") => Protocol::AwsQuery,
        _ => Protocol::AwsJson11,
    }
}

/// Compiled policies by kind and document text. Parsing is the expensive part of evaluation;
/// documents are immutable values, so a text-keyed cache can never serve a stale policy.
///
/// Every authorization looks its resource policy up by its whole text, hence the faster
/// hasher ([`FastHash`]).
#[derive(Default)]
pub struct PolicyCache {
    maps: [RwLock<HashMap<String, Arc<Policy>, FastHash>>; 6],
}

/// Bound on each kind's map; on overflow it is cleared (cheap to refill, never stale).
const POLICY_CACHE_MAX: usize = 16_384;

impl PolicyCache {
    pub fn get(&self, kind: PolicyKind, text: &str) -> Option<Arc<Policy>> {
        let map = &self.maps[usize::from(kind_tag(kind))];
        if let Some(p) = map.read().get(text) {
            return Some(p.clone());
        }
        let parsed = Arc::new(Policy::parse(text, kind).ok()?);
        let mut map = map.write();
        if map.len() >= POLICY_CACHE_MAX {
            map.clear();
        }
        map.insert(text.to_string(), parsed.clone());
        Some(parsed)
    }
}

fn kind_tag(kind: PolicyKind) -> u8 {
    match kind {
        PolicyKind::Identity => 0,
        PolicyKind::Resource => 1,
        PolicyKind::Trust => 2,
        PolicyKind::KeyPolicy => 3,
        PolicyKind::Session => 4,
        PolicyKind::Boundary => 5,
    }
}

/// The policy engine's view of a caller.
pub fn principal_of(caller: &Caller, tags: &[(String, String)]) -> Principal {
    let mut p = match &caller.kind {
        CallerKind::Root => Principal::root(&caller.account),
        CallerKind::User {
            name,
            path,
            unique_id,
        } => Principal::user(
            &caller.account,
            &format!("{}{name}", path.trim_start_matches('/')),
            unique_id,
        ),
        CallerKind::AssumedRole {
            role_name,
            role_path,
            role_id,
            session_name,
            ..
        } => Principal::assumed_role(
            &caller.account,
            &format!("{}{role_name}", role_path.trim_start_matches('/')),
            role_id,
            session_name,
        ),
    };
    p.tags = tags.to_vec();
    p
}

/// Identity data is read through the generation-tagged cache (see [`compiled_identity`]), so
/// that a cached entry is never staler than its tag.
fn authorize(
    services: &Authorizer,
    ctx: &RequestCtx,
    req: &AuthzRequest<'_>,
) -> Result<(), AuthzError> {
    let caller = &ctx.caller;
    let protocol = protocol_of_action(req.action);
    let compiled = compiled_identity(services, caller)?;
    let compile = |kind, text: &str| compile(services, kind, text);
    let (resource, resource_kind) = match &req.resource_policy {
        None => (None, ResourceKind::None),
        Some(ResourcePolicy::Generic(t)) => (
            Some(compile(PolicyKind::Resource, t)?),
            ResourceKind::Generic,
        ),
        Some(ResourcePolicy::KmsKey(t)) => (
            Some(compile(PolicyKind::KeyPolicy, t)?),
            ResourceKind::KmsKey,
        ),
        Some(ResourcePolicy::RoleTrust(t)) => (
            Some(compile(PolicyKind::Trust, t)?),
            ResourceKind::RoleTrust,
        ),
    };

    let built;
    // The cached entry usually holds the very caller the credential cache shares.
    let same_caller =
        Arc::ptr_eq(&compiled.principal.0, caller) || *compiled.principal.0 == **caller;
    let principal = if same_caller {
        &compiled.principal.1
    } else {
        built = principal_of(caller, &compiled.principal_tags);
        &built
    };
    // An identical question allowed before is allowed again without evaluating (see
    // `decisions`): every input of the evaluation is part of the question, except the clock.
    let remembered = (same_caller
        && !compiled.reads_clock()
        && !resource.as_ref().is_some_and(|p| p.reads_clock()))
    .then(|| Question {
        identity: &compiled,
        resource_policy: resource.as_ref(),
        resource_kind,
        action: req.action,
        resource: req.resource,
        region: &ctx.region,
        secure_transport: ctx.secure_transport,
        source_ip: ctx.source_ip,
        context: &req.context,
    });
    let miss = match &remembered {
        Some(q) => match services.decisions.allowed(q) {
            Ok(()) => return Ok(()),
            Err(hash) => Some(hash),
        },
        None => None,
    };
    let mut context = Context::new()
        .with_current_time(ctx.now)
        .with("aws:RequestedRegion", ctx.region.clone())
        .with_bool("aws:SecureTransport", ctx.secure_transport);
    if let Some(ip) = ctx.source_ip {
        context = context.with("aws:SourceIp", ip_text(ip));
    }
    context.append_all(req.context.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
    let resource_account = resource_account(req.resource);
    let set = PolicySet {
        identity: compiled
            .identity
            .iter()
            .map(|(label, p)| {
                (
                    PolicySource {
                        id: label,
                        source_type: source_type_of(label),
                    },
                    p.as_ref(),
                )
            })
            .collect(),
        boundary: compiled.boundary.as_deref(),
        session: compiled.session.iter().map(Arc::as_ref).collect(),
        resource: resource.as_deref().map(|p| {
            (
                PolicySource {
                    id: req.resource,
                    source_type: SourcePolicyType::Resource,
                },
                p,
            )
        }),
        resource_kind,
    };
    let request = Request {
        principal,
        action: req.action,
        resource: req.resource,
        resource_account,
        context: &context,
    };
    let decision = tresor_policy::evaluate(&request, &set);
    if decision.allowed {
        if let (Some(q), Some(hash)) = (&remembered, miss) {
            services.decisions.remember(hash, q);
        }
        return Ok(());
    }
    let shown = (req.resource != "*").then_some(req.resource);
    Err(AuthzError::Denied {
        protocol,
        message: decision.denial_message(&caller.arn, req.action, shown),
    })
}

/// The account field of an ARN (`arn:aws:iam::123456789012:role/x` → `123456789012`).
pub fn resource_account(resource: &str) -> Option<&str> {
    // After `arn:`: partition, service, region, account.
    let account = resource.strip_prefix("arn:")?.split(':').nth(3)?;
    // AWS-managed policies (`arn:aws:iam::aws:policy/…`) belong to no account: reading them
    // is not a cross-account request.
    (!account.is_empty() && account != "aws").then_some(account)
}

/// An address as `IpAddr`'s `Display` writes it, without the formatting machinery for the
/// common IPv4 case (`aws:SourceIp` of every authorization, the audit record of every request).
pub fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text
        }
        std::net::IpAddr::V6(v6) => v6.to_string(),
    }
}

/// The simulation API's `SourcePolicyType` of an identity policy, from its label (a managed
/// policy ARN, or "inline policy <name> of <user|group|role> <name>").
pub fn source_type_of(label: &str) -> SourcePolicyType {
    if tresor_policy::arn::strip_service_prefix(label, "iam")
        .is_some_and(|rest| rest.starts_with(":aws:policy/"))
    {
        SourcePolicyType::AwsManaged
    } else if label.starts_with("arn:") {
        SourcePolicyType::UserManaged
    } else if label.contains(" of role ") {
        SourcePolicyType::Role
    } else if label.contains(" of group ") {
        SourcePolicyType::Group
    } else {
        SourcePolicyType::User
    }
}

/// The caller's identity policies, compiled, from the identity cache or — on a miss — from a
/// read transaction of its own begun after the generation was read (so the entry is never
/// older than its tag, whatever snapshot the operation's own transaction holds).
fn compiled_identity(
    services: &Authorizer,
    caller: &Arc<Caller>,
) -> Result<Arc<CompiledIdentity>, AuthzError> {
    let generation = services.identity_generation.load(Ordering::SeqCst);
    if let Some(hit) = services.identities.get(&caller.access_key_id, generation) {
        return Ok(hit);
    }
    let txn = services.store.begin_read().map_err(|e| {
        tracing::error!(error = %e, "reading identity policies failed");
        AuthzError::Internal
    })?;
    let gathered = services
        .directory
        .identity_policies(&*txn, caller)
        .map_err(|e| {
            tracing::error!(error = %e, "reading identity policies failed");
            AuthzError::Internal
        })?;
    drop(txn);
    let compile = |kind, text: &str| compile(services, kind, text);
    let compiled = Arc::new(CompiledIdentity {
        identity: gathered
            .policies
            .iter()
            .map(|(label, text)| compile(PolicyKind::Identity, text).map(|p| (label.clone(), p)))
            .collect::<Result<_, _>>()?,
        boundary: gathered
            .boundary
            .as_deref()
            .map(|t| compile(PolicyKind::Boundary, t))
            .transpose()?,
        session: gathered
            .session_policies
            .iter()
            .map(|t| compile(PolicyKind::Session, t))
            .collect::<Result<_, _>>()?,
        principal: (
            caller.clone(),
            principal_of(caller, &gathered.principal_tags),
        ),
        principal_tags: gathered.principal_tags,
    });
    services
        .identities
        .insert(&caller.access_key_id, generation, compiled.clone());
    Ok(compiled)
}

/// A stored policy in compiled form, from the policy cache. A stored policy that no longer
/// parses is a server fault, not the caller's.
fn compile(services: &Authorizer, kind: PolicyKind, text: &str) -> Result<Arc<Policy>, AuthzError> {
    services.policies.get(kind, text).ok_or_else(|| {
        tracing::error!(?kind, "a stored policy does not parse");
        AuthzError::Internal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_is_the_display_form() {
        for octets in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [10, 9, 99, 100],
            [255, 255, 255, 255],
            [192, 168, 1, 20],
            [1, 10, 101, 250],
        ] {
            let ip = std::net::IpAddr::from(octets);
            assert_eq!(ip_text(ip), ip.to_string());
        }
        for n in 0..=255u8 {
            let ip = std::net::IpAddr::from([n, n / 3, n.wrapping_mul(7), 255 - n]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

    #[test]
    fn resource_account_is_the_fifth_field_of_an_arn() {
        assert_eq!(
            resource_account("arn:aws:iam::123456789012:role/x"),
            Some("123456789012")
        );
        assert_eq!(
            resource_account("arn:aws:kms:us-east-1:111122223333:key/abc:def"),
            Some("111122223333")
        );
        assert_eq!(resource_account("arn:aws:s3:::bucket"), None);
        assert_eq!(resource_account("arn:aws:iam::aws:policy/ReadOnly"), None);
        assert_eq!(
            resource_account("arn:aws:iam::123456789012"),
            Some("123456789012")
        );
        assert_eq!(resource_account("arn:aws:iam:"), None);
        assert_eq!(resource_account("arnx:aws:iam::123456789012:x"), None);
        assert_eq!(resource_account("*"), None);
    }
}
