//! The `[federation]` table of the config file: how `AssumeRoleWithWebIdentity` reaches the
//! OpenID Connect issuers whose tokens it accepts.
//!
//! ```toml
//! [federation]
//! ca_bundle = "/etc/tresor/issuer-ca.pem"   # extra CAs for issuer HTTPS (system roots too)
//! jwks_refetch_seconds = 30                  # least interval between key fetches per issuer
//!
//! [[federation.offline_jwks]]                # air-gapped: this issuer is never contacted
//! issuer = "https://ci.internal.example"
//! jwks_file = "/etc/tresor/ci-jwks.json"
//!
//! [[federation.upstream]]                    # identities of an upstream AWS account
//! name = "aws-prod"
//! endpoint = "https://sts.amazonaws.com"
//! allowed_accounts = ["111122223333"]
//! server_id = "tresor.internal"              # must be signed as X-Tresor-Server-ID
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::ServerError;

/// The `[federation]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FederationFile {
    ca_bundle: Option<PathBuf>,
    jwks_refetch_seconds: Option<u64>,
    #[serde(default)]
    offline_jwks: Vec<OfflineJwksFile>,
    #[serde(default)]
    upstream: Vec<UpstreamFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamFile {
    name: String,
    endpoint: String,
    allowed_accounts: Vec<String>,
    server_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OfflineJwksFile {
    issuer: String,
    jwks_file: PathBuf,
}

/// Validated federation settings.
#[derive(Clone, Debug, Default)]
pub struct FederationConfig {
    pub ca_bundle: Option<PathBuf>,
    pub jwks_refetch: Option<Duration>,
    /// (issuer URL, JWK Set file).
    pub offline_jwks: Vec<(String, PathBuf)>,
    /// Upstream STS endpoints whose callers may log in (`AssumeRoleWithCallerIdentity`).
    pub upstreams: Vec<tresor_iam::upstream::Upstream>,
}

impl FederationConfig {
    /// The `[federation]` table checked; an error says what is wrong with it.
    pub(crate) fn from_file(file: Option<FederationFile>) -> Result<FederationConfig, String> {
        let file = file.unwrap_or_default();
        let mut offline_jwks = Vec::new();
        for o in file.offline_jwks {
            if !o.issuer.starts_with("https://") {
                return Err(format!(
                    "federation.offline_jwks issuer '{}' is not an https:// URL",
                    o.issuer
                ));
            }
            offline_jwks.push((o.issuer, o.jwks_file));
        }
        let mut upstreams = Vec::new();
        for u in file.upstream {
            if let Some(bad) = u
                .allowed_accounts
                .iter()
                .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(format!(
                    "federation.upstream {}: allowed account '{bad}' is not 12 digits",
                    u.name
                ));
            }
            upstreams.push(tresor_iam::upstream::Upstream {
                name: u.name,
                endpoint: u.endpoint,
                allowed_accounts: u.allowed_accounts,
                server_id: u.server_id.filter(|s| !s.is_empty()),
            });
        }
        Ok(FederationConfig {
            ca_bundle: file.ca_bundle,
            jwks_refetch: file.jwks_refetch_seconds.map(Duration::from_secs),
            offline_jwks,
            upstreams,
        })
    }
}

/// Installs the issuer key cache in the deployment's services; an unreadable CA bundle or
/// offline JWK Set stops the start.
pub(crate) fn install(
    services: &tresor_core::Services,
    config: &FederationConfig,
) -> Result<(), ServerError> {
    let mut offline = Vec::new();
    for (issuer, path) in &config.offline_jwks {
        let doc = std::fs::read_to_string(path).map_err(|e| {
            ServerError::Setup(format!(
                "cannot read the JWK Set {} of {issuer}: {e}",
                path.display()
            ))
        })?;
        offline.push((issuer.clone(), doc));
    }
    tresor_iam::oidc::install(
        services,
        tresor_iam::oidc::KeySettings {
            ca_bundle: config.ca_bundle.clone(),
            offline,
            refetch_interval: config.jwks_refetch,
        },
    )
    .map_err(|e| ServerError::Setup(format!("federation: {e}")))?;
    if !config.upstreams.is_empty() {
        let upstreams = tresor_iam::upstream::Upstreams::new(
            config.upstreams.clone(),
            config.ca_bundle.as_ref(),
        )
        .map_err(|e| ServerError::Setup(format!("federation: {e}")))?;
        tresor_iam::upstream::install(services, upstreams);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_issuers_must_be_https() {
        let bad: FederationFile =
            toml::from_str("[[offline_jwks]]\nissuer = \"http://x\"\njwks_file = \"/j\"\n")
                .expect("parses");
        assert!(FederationConfig::from_file(Some(bad)).is_err());
        let good: FederationFile = toml::from_str(
            "jwks_refetch_seconds = 5\n[[offline_jwks]]\nissuer = \"https://x\"\njwks_file = \"/j\"\n",
        )
        .expect("parses");
        let c = FederationConfig::from_file(Some(good)).expect("valid");
        assert_eq!(c.jwks_refetch, Some(Duration::from_secs(5)));
        assert_eq!(c.offline_jwks.len(), 1);
        assert!(toml::from_str::<FederationFile>("unknown = 1").is_err());
        let up: FederationFile = toml::from_str(
            "[[upstream]]\nname = \"a\"\nendpoint = \"https://sts.amazonaws.com\"\nallowed_accounts = [\"12\"]\n",
        )
        .expect("parses");
        assert!(FederationConfig::from_file(Some(up)).is_err());
    }
}
