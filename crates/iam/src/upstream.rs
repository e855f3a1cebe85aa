//! Identities from an upstream AWS account (what Vault's AWS auth method does for hybrid
//! fleets): a host on real AWS presents a SigV4-presigned `sts:GetCallerIdentity` request for
//! its own identity; tresor forwards it to the configured upstream STS endpoint, reads the
//! caller's ARN and account from the answer, and — if a tresor role's trust policy names that
//! upstream principal — returns credentials for the role.
//!
//! The operation is tresor's own STS action `AssumeRoleWithCallerIdentity` (unsigned: the
//! presigned request is the credential). Against replay to another server, an upstream can
//! require the header `X-Tresor-Server-ID` to be among the request's signed headers: tresor
//! sends its own configured value, so a request presigned for another server's id fails the
//! upstream's signature check.
//!
//! The upstream principal is evaluated against the trust policy as a principal of its own
//! account: `{"AWS": "arn:aws:iam::<upstream account>:role/<name>"}` admits every session of
//! that upstream role, a user ARN or exact session ARN admits that one. Naming only the
//! upstream account admits nobody (tresor holds none of the upstream account's identity
//! policies to delegate to).

use serde::{Deserialize, Serialize};
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_wire::Protocol;
use tresor_wire::query::QueryParams;
use tresor_wire::validate::Validator;

use crate::api;
use crate::error::StsError;
use crate::identity::FederatedIdentity;
use crate::oidc::jwks::{MAX_DOCUMENT, http_agent, read_ca_bundle};
use crate::sts::{
    AssumedRoleUser, Credentials, OutsideSession, PolicyDescriptorType, access_denied,
    check_role_request, issue_outside_session, parse_account, policy_arn_list, trust_allows_in,
    validation,
};

/// The header a presigned request must sign when its upstream has a server id.
pub const SERVER_ID_HEADER: &str = "X-Tresor-Server-ID";

/// One configured upstream STS.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// A name for logs and audit (`aws-prod`).
    pub name: String,
    /// The STS endpoint a presigned request must be for (`https://sts.amazonaws.com`).
    pub endpoint: String,
    /// Accounts whose identities may log in; others are refused.
    pub allowed_accounts: Vec<String>,
    /// The value tresor sends in `X-Tresor-Server-ID`; when set, the header must be signed.
    pub server_id: Option<String>,
}

/// The configured upstreams and the HTTP agent that reaches them (a `Services` extension).
pub struct Upstreams {
    list: Vec<Upstream>,
    agent: ureq::Agent,
}

impl Upstreams {
    /// `ca_bundle`: extra CAs for upstream HTTPS. Plain-HTTP endpoints are allowed only on
    /// loopback (a local stand-in for testing).
    pub fn new(
        list: Vec<Upstream>,
        ca_bundle: Option<&std::path::PathBuf>,
    ) -> Result<Upstreams, String> {
        for u in &list {
            let loopback_http = u.endpoint.starts_with("http://127.0.0.1")
                || u.endpoint.starts_with("http://[::1]")
                || u.endpoint.starts_with("http://localhost");
            if !u.endpoint.starts_with("https://") && !loopback_http {
                return Err(format!(
                    "upstream {}: endpoint {} is not https:// (plain http only on loopback)",
                    u.name, u.endpoint
                ));
            }
            if u.allowed_accounts.is_empty() {
                return Err(format!("upstream {}: allowed_accounts is empty", u.name));
            }
        }
        let extra = match ca_bundle {
            Some(p) => read_ca_bundle(p)?,
            None => Vec::new(),
        };
        Ok(Upstreams {
            list,
            agent: http_agent(extra, false),
        })
    }
}

/// Installs the upstreams in the deployment's services.
pub fn install(services: &Services, upstreams: Upstreams) {
    services.set_extension(std::sync::Arc::new(upstreams));
}

/// `Debug` leaves the presigned URL out: it is a credential.
#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleWithCallerIdentityInput {
    pub role_arn: String,
    pub role_session_name: String,
    /// The presigned `GetCallerIdentity` URL (query-string SigV4).
    pub presigned_url: String,
    #[serde(default)]
    pub policy_arns: Vec<PolicyDescriptorType>,
    pub policy: Option<String>,
    pub duration_seconds: Option<i64>,
}

impl std::fmt::Debug for AssumeRoleWithCallerIdentityInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRoleWithCallerIdentityInput")
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("duration_seconds", &self.duration_seconds)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleWithCallerIdentityOutput {
    pub credentials: Credentials,
    pub assumed_role_user: AssumedRoleUser,
    pub packed_policy_size: Option<usize>,
    /// The upstream caller's ARN and account, as its STS reported them.
    pub upstream_arn: String,
    pub upstream_account: String,
}

fn denied(message: impl Into<String>) -> StsError {
    access_denied(message)
}

/// The upstream whose endpoint `url` is for, and the URL's query.
fn upstream_of<'a>(list: &'a [Upstream], url: &'a str) -> Option<(&'a Upstream, &'a str)> {
    list.iter().find_map(|u| {
        let rest = url.strip_prefix(u.endpoint.trim_end_matches('/'))?;
        let query = rest.strip_prefix("/?").or_else(|| rest.strip_prefix('?'))?;
        Some((u, query))
    })
}

/// Checks that `query` is a presigned `GetCallerIdentity` that signs the server-id header
/// when the upstream requires it.
fn check_presigned(upstream: &Upstream, query: &str) -> Result<(), StsError> {
    let bad = |why: &str| validation(format!("PresignedUrl: {why}"));
    if query.contains('#') {
        return Err(bad("a URL fragment is not allowed"));
    }
    let params = QueryParams::parse(query.as_bytes()).map_err(|_| bad("malformed query"))?;
    if params.get("Action") != Some("GetCallerIdentity") {
        return Err(bad("not an sts:GetCallerIdentity request"));
    }
    if params.get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(bad("not presigned with SigV4 (X-Amz-Algorithm)"));
    }
    let credential = params.get("X-Amz-Credential").unwrap_or_default();
    if !credential.ends_with("/sts/aws4_request") {
        return Err(bad("not signed for sts"));
    }
    if upstream.server_id.is_some() {
        let signed = params.get("X-Amz-SignedHeaders").unwrap_or_default();
        if !signed
            .split(';')
            .any(|h| h.eq_ignore_ascii_case(SERVER_ID_HEADER))
        {
            return Err(denied(format!(
                "The presigned request must sign the {SERVER_ID_HEADER} header."
            )));
        }
    }
    Ok(())
}

/// Who the upstream says the caller is.
struct UpstreamCaller {
    arn: String,
    account: String,
    user_id: String,
}

/// Sends the presigned request to the upstream and reads its `GetCallerIdentity` answer.
fn forward(
    agent: &ureq::Agent,
    upstream: &Upstream,
    url: &str,
) -> Result<UpstreamCaller, StsError> {
    let mut req = agent.get(url);
    if let Some(id) = &upstream.server_id {
        req = req.header(SERVER_ID_HEADER, id);
    }
    let mut resp = req.call().map_err(|e| {
        tracing::warn!(upstream = %upstream.name, error = %e, "the upstream STS could not be reached");
        StsError::IdpCommunicationError(format!(
            "The upstream STS {} could not be reached.",
            upstream.name
        ))
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT)
        .read_to_string()
        .map_err(|_| {
            StsError::IdpCommunicationError(format!(
                "The upstream STS {} sent an unreadable answer.",
                upstream.name
            ))
        })?;
    if status != 200 {
        let code = tresor_wire::xml::element_text(&body, "Code").unwrap_or_default();
        return Err(denied(format!(
            "The upstream STS refused the presigned request ({status} {code})."
        )));
    }
    let field = |name: &str| {
        tresor_wire::xml::element_text(&body, name).ok_or_else(|| {
            StsError::IdpCommunicationError(format!(
                "The upstream STS {} sent no {name}.",
                upstream.name
            ))
        })
    };
    Ok(UpstreamCaller {
        arn: field("Arn")?,
        account: field("Account")?,
        user_id: field("UserId")?,
    })
}

/// The policy-engine principal of an upstream caller: a user or a role session of its
/// account. Roots and other kinds of callers are refused.
fn principal_of(c: &UpstreamCaller) -> Option<tresor_policy::Principal> {
    let (_, rest) = c
        .arn
        .split_once(":iam::")
        .or_else(|| c.arn.split_once(":sts::"))?;
    let (account, resource) = rest.split_once(':')?;
    if account != c.account {
        return None;
    }
    if let Some(path_and_name) = resource.strip_prefix("user/") {
        return Some(tresor_policy::Principal::user(
            account,
            path_and_name,
            &c.user_id,
        ));
    }
    let (role, session) = resource.strip_prefix("assumed-role/")?.split_once('/')?;
    let role_id = c.user_id.split(':').next().unwrap_or_default();
    Some(tresor_policy::Principal::assumed_role(
        account, role, role_id, session,
    ))
}

pub fn assume_role_with_caller_identity(
    services: &Services,
    ctx: &RequestCtx,
    input: AssumeRoleWithCallerIdentityInput,
) -> Result<AssumeRoleWithCallerIdentityOutput, StsError> {
    let role_arn = input.role_arn.as_str();
    let session_name = input.role_session_name.as_str();
    let policy = input.policy.as_deref();
    let policy_arns = policy_arn_list(&input.policy_arns);
    let mut v = Validator::new();
    check_role_request(
        &mut v,
        role_arn,
        session_name,
        input.duration_seconds,
        policy,
        &policy_arns,
    );
    // The presigned URL is a credential: its value never appears in an error.
    if !(20..=8192).contains(&input.presigned_url.len()) {
        v.fail(
            "PresignedUrl",
            None,
            "Member must have length between 20 and 8192",
        );
    }
    v.finish(Protocol::AwsQuery)?;
    let Some(upstreams) = services.extension::<Upstreams>() else {
        return Err(denied("No upstream STS is configured."));
    };
    let (upstream, query) = upstream_of(&upstreams.list, &input.presigned_url)
        .ok_or_else(|| denied("The presigned request is not for a configured upstream STS."))?;
    check_presigned(upstream, query)?;
    // The network, outside any store transaction.
    let caller = forward(&upstreams.agent, upstream, &input.presigned_url)?;
    let refused = || {
        denied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            caller.arn
        ))
    };
    if !upstream.allowed_accounts.contains(&caller.account) {
        tracing::info!(upstream = %upstream.name, account = %caller.account, "an upstream account that is not allowed");
        return Err(refused());
    }
    let principal = principal_of(&caller).ok_or_else(refused)?;
    let account = parse_account(role_arn).unwrap_or_default();

    let txn = services.store().begin_write()?;
    let role = api::role_by_arn(&*txn, role_arn)?.ok_or_else(refused)?;
    let mut context = tresor_policy::Context::new()
        .with_current_time(ctx.now)
        .with("sts:RoleSessionName", session_name.to_string());
    if let Some(ip) = ctx.source_ip {
        context = context.with("aws:SourceIp", ip.to_string());
    }
    // Evaluated as if in the role's account: the upstream account already authenticated the
    // caller, and tresor has no identity policies of it to consult.
    if !trust_allows_in(
        services,
        &role,
        role_arn,
        None,
        &principal,
        "sts:AssumeRole",
        &context,
    ) {
        return Err(refused());
    }
    let (credentials, assumed_role_user, packed) = issue_outside_session(
        services,
        txn,
        ctx.now,
        OutsideSession {
            account: &account,
            role: &role,
            session_name,
            duration: input.duration_seconds,
            policy,
            policy_arns: &policy_arns,
            federated: FederatedIdentity::Upstream {
                upstream: upstream.name.clone(),
                arn: caller.arn.clone(),
                account: caller.account.clone(),
            },
        },
    )?;
    Ok(AssumeRoleWithCallerIdentityOutput {
        credentials,
        assumed_role_user,
        packed_policy_size: packed,
        upstream_arn: caller.arn,
        upstream_account: caller.account,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(server_id: Option<&str>) -> Upstream {
        Upstream {
            name: "aws".into(),
            endpoint: "https://sts.amazonaws.com/".into(),
            allowed_accounts: vec!["111122223333".into()],
            server_id: server_id.map(str::to_string),
        }
    }

    const Q: &str = "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA%2F20261126%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-SignedHeaders=host%3Bx-tresor-server-id&X-Amz-Signature=00";

    #[test]
    fn presigned_urls_must_be_for_a_configured_endpoint() {
        let list = vec![upstream(None)];
        let url = format!("https://sts.amazonaws.com/?{Q}");
        assert!(upstream_of(&list, &url).is_some());
        assert!(upstream_of(&list, &format!("https://sts.amazonaws.com?{Q}")).is_some());
        assert!(upstream_of(&list, &format!("https://sts.amazonaws.com.evil/?{Q}")).is_none());
        assert!(upstream_of(&list, &format!("https://evil.example/?{Q}")).is_none());
        assert!(upstream_of(&list, &format!("https://sts.amazonaws.com/x?{Q}")).is_none());
    }

    #[test]
    fn only_presigned_get_caller_identity_signing_the_server_id() {
        let u = upstream(Some("tresor-a"));
        assert!(check_presigned(&u, Q).is_ok());
        let other = Q.replace("GetCallerIdentity", "AssumeRole");
        assert!(matches!(
            check_presigned(&u, &other),
            Err(StsError::ValidationError(_))
        ));
        let unsigned = Q.replace("host%3Bx-tresor-server-id", "host");
        assert!(matches!(
            check_presigned(&u, &unsigned),
            Err(StsError::AccessDenied(_))
        ));
        assert!(check_presigned(&upstream(None), &unsigned).is_ok());
        let iam = Q.replace("%2Fsts%2F", "%2Fiam%2F");
        assert!(check_presigned(&u, &iam).is_err());
    }

    #[test]
    fn upstream_callers_map_to_principals_of_their_account() {
        let c = UpstreamCaller {
            arn: "arn:aws:sts::111122223333:assumed-role/host-role/i-0abc".into(),
            account: "111122223333".into(),
            user_id: "AROAEXAMPLE:i-0abc".into(),
        };
        let p = principal_of(&c).expect("session");
        assert_eq!(
            p.principal_arn(),
            "arn:aws:iam::111122223333:role/host-role"
        );
        let u = UpstreamCaller {
            arn: "arn:aws:iam::111122223333:user/ops/bob".into(),
            account: "111122223333".into(),
            user_id: "AIDAEXAMPLE".into(),
        };
        assert_eq!(
            principal_of(&u).map(|p| p.arn),
            Some("arn:aws:iam::111122223333:user/ops/bob".to_string())
        );
        let root = UpstreamCaller {
            arn: "arn:aws:iam::111122223333:root".into(),
            account: "111122223333".into(),
            user_id: "111122223333".into(),
        };
        assert!(principal_of(&root).is_none());
        let mismatched = UpstreamCaller {
            account: "444455556666".into(),
            ..c
        };
        assert!(principal_of(&mismatched).is_none());
    }
}
