//! The IAM records as stored: accounts, users, access keys, STS sessions, groups, roles,
//! instance profiles and managed policies, side by side. A leaf module: it depends on nothing
//! else in the crate, so every other module can use the records without an import cycle.
//! Behavior on records (ARNs aside) lives with the operations that use them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_policy::arn::partition;

pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountRecord {
    pub v: u32,
    pub account_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub user_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Inline policies by name (document text as given).
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    /// ARNs of attached managed policies.
    #[serde(default)]
    pub attached_policies: Vec<String>,
    #[serde(default)]
    pub permissions_boundary: Option<String>,
}

impl UserRecord {
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:{}:iam::{account}:user{}{}",
            partition(),
            self.path,
            self.name
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Inactive,
}

/// Who an access key belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyOwner {
    /// The account root (only the `--dev` well-known key `test`).
    Root,
    User {
        name: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub v: u32,
    pub account: String,
    pub owner: KeyOwner,
    pub status: KeyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The secret access key sealed under the root key, base64.
    pub secret_sealed: String,
}

/// A temporary credential issued by STS (`AssumeRole`, `GetSessionToken`), keyed by its
/// `ASIA…` access key id under `keys::session`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub v: u32,
    pub account: String,
    /// The secret access key sealed under the root key, base64 (AAD: `identity::secret_aad`).
    pub secret_sealed: String,
    /// Hex SHA-256 of the session token; the token itself is never stored.
    pub token_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expiration: OffsetDateTime,
    pub principal: SessionPrincipal,
}

/// Whose session a temporary credential is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionPrincipal {
    /// `GetSessionToken` by the account root.
    Root,
    /// `GetSessionToken` by an IAM user (checked against the user's unique id at use).
    User { name: String, user_id: String },
    /// `AssumeRole`: valid only while the role with this unique id exists.
    Role {
        role_name: String,
        role_id: String,
        session_name: String,
        /// Session policies: (label, document) of `Policy` and each `PolicyArns` entry, as
        /// they were when the session was created (AWS packs them into the token).
        #[serde(default)]
        policies: Vec<(String, String)>,
        /// Session tags (`aws:PrincipalTag/*`).
        #[serde(default)]
        tags: Vec<(String, String)>,
        #[serde(default)]
        transitive_tag_keys: Vec<String>,
        #[serde(default)]
        source_identity: Option<String>,
        /// Who the session was issued to when it came from outside tresor's own identities
        /// (`AssumeRoleWithWebIdentity`, `AssumeRoleWithCallerIdentity`): for the audit record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        federated: Option<Box<FederatedIdentity>>,
    },
}

/// The outside identity a role session was issued to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederatedIdentity {
    /// An OpenID Connect ID token (`AssumeRoleWithWebIdentity`).
    WebIdentity {
        /// `arn:aws:iam::<account>:oidc-provider/<host/path>`.
        provider_arn: String,
        /// The token's `iss`, `sub` and the audience (client id) it was accepted for.
        issuer: String,
        subject: String,
        audience: String,
    },
    /// An identity of an upstream AWS account (`AssumeRoleWithCallerIdentity`).
    Upstream {
        /// The configured upstream's name.
        upstream: String,
        /// The caller's ARN and account as the upstream STS reported them.
        arn: String,
        account: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub role_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The trust policy, as given.
    pub assume_role_policy: String,
    #[serde(default)]
    pub description: Option<String>,
    pub max_session_duration: i64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    #[serde(default)]
    pub attached_policies: Vec<String>,
    #[serde(default)]
    pub permissions_boundary: Option<String>,
}

impl RoleRecord {
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:{}:iam::{account}:role{}{}",
            partition(),
            self.path,
            self.name
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub group_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    #[serde(default)]
    pub attached_policies: Vec<String>,
}

impl GroupRecord {
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:{}:iam::{account}:group{}{}",
            partition(),
            self.path,
            self.name
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceProfileRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub instance_profile_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Names of the roles in the profile (at most one).
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyVersionRecord {
    pub id: String,
    pub document: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManagedPolicyRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub policy_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated: OffsetDateTime,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    pub default_version: String,
    pub versions: Vec<PolicyVersionRecord>,
    /// The number of the next version (`v<n>`); version ids are never reused.
    pub next_version: u32,
}

impl ManagedPolicyRecord {
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:{}:iam::{account}:policy{}{}",
            partition(),
            self.path,
            self.name
        )
    }

    pub fn default_document(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.id == self.default_version)
            .map(|v| v.document.as_str())
    }
}

/// An IAM OpenID Connect provider, keyed by its URL without the scheme (`<host/path>`, the
/// last part of its ARN) under `keys::oidc_provider`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OidcProviderRecord {
    pub v: u32,
    /// `https://<host/path>` as registered; the issuer (`iss`) of the provider's tokens.
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The audiences (`aud`) a token may be issued for.
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// SHA-1 thumbprints of the provider's certificates (stored and returned).
    #[serde(default)]
    pub thumbprints: Vec<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

impl OidcProviderRecord {
    /// The URL without its scheme: the ARN's resource and the condition keys' prefix
    /// (`<host/path>:sub`).
    pub fn host_path(&self) -> &str {
        self.url.strip_prefix("https://").unwrap_or(&self.url)
    }

    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:{}:iam::{account}:oidc-provider/{}",
            partition(),
            self.host_path()
        )
    }
}
