//! `AssumeRoleWithWebIdentity` (AWS STS API Reference): role credentials for the holder of an
//! OpenID Connect ID token — a CI job (GitHub Actions, Buildkite, GitLab), a Kubernetes
//! service account — with no stored secret. The call is unsigned; the token is the
//! credential.
//!
//! The token is checked in this order: it is a JWT signed with RS256 or ES256; its `iss` is
//! a registered IAM OIDC provider of the role's account; its signature verifies with the key
//! (`kid`) from the issuer's JWK Set; `exp`/`nbf`/`iat` hold (with [`CLOCK_SKEW`]); an `aud`
//! is one of the provider's client ids. Then the role's trust policy must allow
//! the principal `{"Federated": "<provider ARN>"}` the action `sts:AssumeRoleWithWebIdentity`
//! with the condition keys AWS sets for OIDC federation (IAM User Guide, "Available keys for
//! AWS OIDC federation"): `<host/path>:aud`, `:oaud`, `:sub`, `:amr`, plus
//! `aws:FederatedProvider` and `sts:RoleSessionName`.

use serde::{Deserialize, Serialize};
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_wire::Protocol;
use tresor_wire::validate::Validator;

use crate::api;
use crate::error::StsError;
use crate::identity::FederatedIdentity;
use crate::oidc::jwt::{Jwt, JwtError};
use crate::oidc::{KeyError, key_cache};
use crate::sts::{
    AssumedRoleUser, Credentials, OutsideSession, PolicyDescriptorType, access_denied,
    check_role_request, issue_outside_session, parse_account, policy_arn_list, trust_allows,
};

/// Tolerance for clocks that disagree, on `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW: i64 = 60;

/// `Debug` leaves the token out: it is a credential.
#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleWithWebIdentityInput {
    pub role_arn: String,
    pub role_session_name: String,
    pub web_identity_token: String,
    pub provider_id: Option<String>,
    #[serde(default)]
    pub policy_arns: Vec<PolicyDescriptorType>,
    pub policy: Option<String>,
    pub duration_seconds: Option<i64>,
}

impl std::fmt::Debug for AssumeRoleWithWebIdentityInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRoleWithWebIdentityInput")
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("duration_seconds", &self.duration_seconds)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleWithWebIdentityOutput {
    pub credentials: Credentials,
    pub subject_from_web_identity_token: String,
    pub assumed_role_user: AssumedRoleUser,
    pub packed_policy_size: Option<usize>,
    pub provider: String,
    pub audience: String,
}

fn invalid_token(message: impl Into<String>) -> StsError {
    StsError::InvalidIdentityToken(message.into())
}

/// AWS's message when the issuer's key cannot be had (observed behavior; two spaces as AWS
/// sends them).
const NO_KEY: &str = "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements";
/// AWS's message for a token that is not a JWT (observed behavior).
const NOT_A_JWT: &str = "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)";

fn jwt_error(e: JwtError) -> StsError {
    match e {
        JwtError::Malformed => invalid_token(NOT_A_JWT),
        JwtError::Algorithm => invalid_token(
            "The web identity token is signed with an unsupported algorithm; only RS256 and ES256 are accepted.",
        ),
        JwtError::Signature => invalid_token(
            "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.",
        ),
        // The wording AWS STS uses (observed behavior), its missing space included.
        JwtError::Expired { now, exp } => StsError::ExpiredTokenException(format!(
            "Token expired: current date/time {now} must be before the expiration date/time{exp}"
        )),
        JwtError::NotYetValid => invalid_token("The web identity token is not yet valid."),
    }
}

fn key_error(e: KeyError) -> StsError {
    match e {
        KeyError::Unreachable(detail) => {
            tracing::warn!(%detail, "an OpenID Connect issuer could not be reached");
            StsError::IdpCommunicationError(NO_KEY.to_string())
        }
        KeyError::NoKey(detail) => {
            tracing::debug!(%detail, "no verification key for a web identity token");
            invalid_token(NO_KEY)
        }
    }
}

/// The audience a token is accepted for: the first `aud` value that is one of the provider's
/// client ids; `None` if none is.
fn accepted_audience(jwt: &Jwt, client_ids: &[String]) -> Option<String> {
    jwt.claims
        .aud
        .iter()
        .find(|a| client_ids.contains(a))
        .cloned()
}

pub fn assume_role_with_web_identity(
    services: &Services,
    ctx: &RequestCtx,
    input: AssumeRoleWithWebIdentityInput,
) -> Result<AssumeRoleWithWebIdentityOutput, StsError> {
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
    // The token is sensitive: its value never appears in an error.
    if !(4..=20_000).contains(&input.web_identity_token.len()) {
        v.fail(
            "WebIdentityToken",
            None,
            "Member must have length between 4 and 20000",
        );
    }
    v.length("ProviderId", input.provider_id.as_deref(), 4, 2048);
    v.finish(Protocol::AwsQuery)?;

    let jwt = Jwt::parse(&input.web_identity_token).map_err(jwt_error)?;
    let issuer = jwt.claims.iss.clone();
    let account = parse_account(role_arn).unwrap_or_default();
    let provider = {
        let txn = services.store().begin_read()?;
        api::oidc_providers::provider_for_issuer(&*txn, &account, &issuer)?
    }
    .ok_or_else(|| {
        invalid_token(format!(
            "No OpenIDConnect provider found in your account for {issuer}"
        ))
    })?;
    // The network, if at all, outside any store transaction.
    let key = key_cache(services)
        .key_for(&provider.url, &jwt)
        .map_err(key_error)?;
    jwt.verify(&key).map_err(jwt_error)?;
    jwt.check_times(ctx.now.unix_timestamp(), CLOCK_SKEW)
        .map_err(jwt_error)?;
    let audience = accepted_audience(&jwt, &provider.client_ids)
        .ok_or_else(|| invalid_token("Incorrect token audience"))?;
    let subject = jwt
        .claims
        .sub
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid_token("The web identity token has no subject (sub)."))?;
    let provider_arn = provider.arn(&account);
    let host_path = provider.host_path();
    ctx.audit
        .web_identity_user(tresor_core::audit::WebIdentityUser {
            identity_provider: host_path.to_string(),
            principal_id: format!("{host_path}:{audience}:{subject}"),
            user_name: subject.clone(),
            account: account.clone(),
        });

    let txn = services.store().begin_write()?;
    let denied = || access_denied("Not authorized to perform sts:AssumeRoleWithWebIdentity");
    let role = api::role_by_arn(&*txn, role_arn)?.ok_or_else(denied)?;
    let others: Vec<String> = jwt
        .claims
        .aud
        .iter()
        .filter(|a| **a != audience)
        .cloned()
        .collect();
    let mut context = tresor_policy::Context::new()
        .with_current_time(ctx.now)
        .with(&format!("{host_path}:aud"), audience.clone())
        .with(&format!("{host_path}:sub"), subject.clone())
        .with("aws:FederatedProvider", provider_arn.clone())
        .with("sts:RoleSessionName", session_name.to_string());
    if !others.is_empty() {
        context = context.with_values(&format!("{host_path}:oaud"), others);
    }
    if !jwt.claims.amr.is_empty() {
        context = context.with_values(&format!("{host_path}:amr"), jwt.claims.amr.clone());
    }
    if let Some(ip) = ctx.source_ip {
        context = context.with("aws:SourceIp", ip.to_string());
    }
    let principal = tresor_policy::Principal::federated(&provider_arn, &account);
    if !trust_allows(
        services,
        &role,
        role_arn,
        &principal,
        "sts:AssumeRoleWithWebIdentity",
        &context,
    ) {
        return Err(denied());
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
            federated: FederatedIdentity::WebIdentity {
                provider_arn,
                issuer: issuer.clone(),
                subject: subject.clone(),
                audience: audience.clone(),
            },
        },
    )?;
    Ok(AssumeRoleWithWebIdentityOutput {
        credentials,
        subject_from_web_identity_token: subject,
        assumed_role_user,
        packed_policy_size: packed,
        provider: issuer,
        audience,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::jwt::tests::{Signer, claims};

    #[test]
    fn the_audience_must_be_a_client_id() {
        let s = Signer::ec();
        let ids = vec!["sts.amazonaws.com".to_string()];
        let mut c = claims(1000);
        c["aud"] = serde_json::json!(["other", "sts.amazonaws.com"]);
        c["azp"] = serde_json::json!("sts.amazonaws.com");
        let jwt = Jwt::parse(&s.token("k", &c)).expect("jwt");
        assert_eq!(
            accepted_audience(&jwt, &ids).as_deref(),
            Some("sts.amazonaws.com")
        );
        // `azp` alone does not make a token for this provider.
        c["aud"] = serde_json::json!("other");
        let jwt = Jwt::parse(&s.token("k", &c)).expect("jwt");
        assert_eq!(accepted_audience(&jwt, &ids), None);
        assert_eq!(accepted_audience(&jwt, &[]), None);
    }

    #[test]
    fn token_errors_map_to_aws_codes_without_the_token() {
        use tresor_wire::error::ServiceError;
        for (e, code) in [
            (JwtError::Malformed, "InvalidIdentityToken"),
            (JwtError::Algorithm, "InvalidIdentityToken"),
            (JwtError::Signature, "InvalidIdentityToken"),
            (JwtError::NotYetValid, "InvalidIdentityToken"),
            (
                JwtError::Expired { now: 2, exp: 1 },
                "ExpiredTokenException",
            ),
        ] {
            let err = jwt_error(e);
            assert_eq!(err.code(), code);
            assert_eq!(err.http_status(), 400);
        }
        let down = key_error(KeyError::Unreachable("x".into()));
        assert_eq!(
            (down.code(), down.http_status()),
            ("IDPCommunicationError", 400)
        );
        assert_eq!(
            key_error(KeyError::NoKey("x".into())).code(),
            "InvalidIdentityToken"
        );
    }
}
