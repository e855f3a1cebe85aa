//! Where the host's credentials come from, and the role session `imds` and
//! `credential-process` hand out.
//!
//! The source credentials (the one secret a host keeps) come from the environment or a
//! profile of the shared files — never from the instance metadata service, which on this host
//! may be `tresor imds` itself. `fetch` and `agent` instead use the SDK's full default chain,
//! which finds `tresor imds` (or a container endpoint, or a `credential_process`) like any
//! AWS client on an instance would, unless they are told to assume a role themselves.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::{Region, SdkConfig};
use clap::Args;
use time::OffsetDateTime;
use time::macros::format_description;

/// The region used when neither a flag, the environment nor the profile names one.
const FALLBACK_REGION: &str = "us-east-1";

/// How the host reaches tresor: flags shared by every host subcommand.
#[derive(Args, Clone, Debug, Default)]
pub struct ClientArgs {
    /// tresor's endpoint, e.g. https://tresor.internal:4566 [default: AWS_ENDPOINT_URL_<SERVICE>,
    /// AWS_ENDPOINT_URL or the profile's endpoint_url, as for any AWS SDK].
    #[arg(long, env = "TRESOR_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Region [default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1].
    #[arg(long)]
    pub region: Option<String>,
    /// Profile of the shared config/credentials files holding the host's source credentials
    /// [default: AWS_PROFILE, then "default"].
    #[arg(long)]
    pub profile: Option<String>,
}

/// The role a host acts as, and how long its sessions last.
#[derive(Args, Clone, Debug)]
pub struct RoleArgs {
    /// ARN of the role to assume (the instance role).
    #[arg(long)]
    pub role_arn: String,
    /// RoleSessionName of the sessions [default: the instance id, as EC2 names them].
    #[arg(long)]
    pub session_name: Option<String>,
    /// DurationSeconds of each session (900–43200, within the role's MaxSessionDuration).
    #[arg(long, default_value_t = 3600)]
    pub duration_seconds: u32,
    /// Renew a session this many seconds before it expires. The default leaves SDKs more than
    /// their 15-minute refresh window on every credential served.
    #[arg(long, default_value_t = 1200)]
    pub refresh_before: u32,
}

impl RoleArgs {
    /// `refresh_before` must leave a session some life, or every read would renew it.
    pub fn validate(&self) -> Result<(), String> {
        if self.refresh_before >= self.duration_seconds {
            return Err(format!(
                "--refresh-before ({}) must be less than --duration-seconds ({})",
                self.refresh_before, self.duration_seconds
            ));
        }
        Ok(())
    }
}

/// The region: the flag, then the environment, then the profile, then us-east-1.
pub async fn resolve_region(args: &ClientArgs) -> Region {
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(p) = &args.profile {
        profile = profile.profile_name(p);
    }
    RegionProviderChain::first_try(args.region.clone().map(Region::new))
        .or_else(EnvironmentVariableRegionProvider::new())
        .or_else(profile.build())
        .or_else(Region::new(FALLBACK_REGION))
        .region()
        .await
        .unwrap_or_else(|| Region::new(FALLBACK_REGION))
}

/// A config whose credentials are the host's source credentials only: the environment, then
/// the profile (static keys, `source_profile`/`role_arn` chains, `credential_process`).
pub async fn source_config(args: &ClientArgs) -> SdkConfig {
    let mut profile = ProfileFileCredentialsProvider::builder();
    if let Some(p) = &args.profile {
        profile = profile.profile_name(p);
    }
    let chain = CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("Profile", profile.build());
    loader(args).await.credentials_provider(chain).load().await
}

/// A config with the SDK's full default credential chain (environment, profile, web
/// identity, container endpoint, instance metadata) — what any AWS client on the host uses.
pub async fn default_config(args: &ClientArgs) -> SdkConfig {
    loader(args).await.load().await
}

async fn loader(args: &ClientArgs) -> aws_config::ConfigLoader {
    let mut l = aws_config::defaults(BehaviorVersion::latest()).region(resolve_region(args).await);
    if let Some(p) = &args.profile {
        l = l.profile_name(p);
    }
    if let Some(e) = &args.endpoint_url {
        l = l.endpoint_url(e);
    }
    l
}

/// One set of temporary credentials of the role. `Debug` leaves the secret parts out.
#[derive(Clone)]
pub struct Session {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: OffsetDateTime,
    pub last_updated: OffsetDateTime,
    /// The account of the assumed-role ARN.
    pub account: String,
    /// The role's unique id (`AROA…`), before the `:session` part of AssumedRoleId.
    pub role_id: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// ISO 8601 in UTC to the second, as EC2's metadata service and `credential_process` write it.
pub fn iso_seconds(t: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(f)
        .unwrap_or_default()
}

/// The role's sessions: assumed with the source credentials, renewed `refresh_before` seconds
/// before they expire; a failed renewal keeps serving the old session while it is valid and
/// is not tried again for [`RETRY_AFTER`].
pub struct RoleSession {
    sts: aws_sdk_sts::Client,
    pub role_arn: String,
    pub session_name: String,
    duration: u32,
    refresh_before: Duration,
    /// The session readers get, without waiting for a renewal in progress.
    current: parking_lot::RwLock<Option<Arc<Session>>>,
    /// Serializes renewals; holds when the next attempt may be made after a failure.
    renewal: tokio::sync::Mutex<Option<OffsetDateTime>>,
}

/// How long after a failed renewal the next one is tried.
pub const RETRY_AFTER: time::Duration = time::Duration::seconds(30);

/// Why the role could not be assumed (no credential in the text, just the service's words).
#[derive(Debug, Clone)]
pub struct AssumeError {
    /// AWS error code, or a short kind for a transport failure.
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for AssumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl RoleSession {
    pub fn new(source: &SdkConfig, role: &RoleArgs, default_session_name: &str) -> Self {
        RoleSession {
            sts: aws_sdk_sts::Client::new(source),
            role_arn: role.role_arn.clone(),
            session_name: role
                .session_name
                .clone()
                .unwrap_or_else(|| default_session_name.to_string()),
            duration: role.duration_seconds,
            refresh_before: Duration::from_secs(u64::from(role.refresh_before)),
            current: parking_lot::RwLock::new(None),
            renewal: tokio::sync::Mutex::new(None),
        }
    }

    /// The role's name: the last segment of its ARN's path.
    pub fn role_name(&self) -> &str {
        self.role_arn.rsplit('/').next().unwrap_or(&self.role_arn)
    }

    /// The session to hand out now: the current one while it has a minute left (renewal is
    /// the refresher's job, so a read never waits for STS), else a renewed one.
    pub async fn current(&self) -> Result<Arc<Session>, AssumeError> {
        let now = OffsetDateTime::now_utc();
        if let Some(s) = self.current.read().as_ref()
            && s.expiration - now > time::Duration::seconds(60)
        {
            return Ok(s.clone());
        }
        self.get().await
    }

    /// The current session, renewed first when it is due.
    pub async fn get(&self) -> Result<Arc<Session>, AssumeError> {
        let mut retry_at = self.renewal.lock().await;
        let now = OffsetDateTime::now_utc();
        let existing = self.current.read().clone();
        if let Some(s) = &existing
            && s.expiration - now > self.refresh_before
        {
            return Ok(s.clone());
        }
        let usable = existing.filter(|s| s.expiration > now + time::Duration::seconds(60));
        if let (Some(s), Some(at)) = (&usable, *retry_at)
            && now < at
        {
            return Ok(s.clone());
        }
        match self.assume().await {
            Ok(s) => {
                tracing::info!(
                    role = %self.role_arn,
                    access_key_id = %s.access_key_id,
                    expiration = %iso_seconds(s.expiration),
                    "assumed the role"
                );
                let s = Arc::new(s);
                *self.current.write() = Some(s.clone());
                *retry_at = None;
                Ok(s)
            }
            Err(e) => {
                *retry_at = Some(now + RETRY_AFTER);
                match usable {
                    Some(s) => {
                        tracing::warn!(role = %self.role_arn, error = %e, "could not renew the role session; serving the current one until it expires");
                        Ok(s)
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// When the current session is due for renewal (now when there is none), or the next
    /// attempt after a failed one.
    pub async fn renew_at(&self) -> OffsetDateTime {
        let retry_at = *self.renewal.lock().await;
        let due = match self.current.read().as_ref() {
            Some(s) => s.expiration - self.refresh_before,
            None => OffsetDateTime::now_utc(),
        };
        retry_at.map_or(due, |r| r.max(due))
    }

    async fn assume(&self) -> Result<Session, AssumeError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .duration_seconds(i32::try_from(self.duration).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| {
                let (code, message) = crate::errors::describe(&e);
                AssumeError { code, message }
            })?;
        let missing = |what: &str| AssumeError {
            code: "InvalidResponse".into(),
            message: format!("AssumeRole returned no {what}"),
        };
        let c = out.credentials().ok_or_else(|| missing("Credentials"))?;
        let user = out
            .assumed_role_user()
            .ok_or_else(|| missing("AssumedRoleUser"))?;
        let expiration = OffsetDateTime::from_unix_timestamp(c.expiration().secs())
            .map_err(|_| missing("valid Expiration"))?;
        Ok(Session {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().to_string(),
            expiration,
            last_updated: OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or_else(|_| OffsetDateTime::now_utc()),
            account: user.arn().split(':').nth(4).unwrap_or_default().to_string(),
            role_id: user
                .assumed_role_id()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// This host's instance id: `i-` and 17 hex digits derived from /etc/machine-id (or the host
/// name), stable across restarts like an EC2 instance's.
pub fn instance_id() -> String {
    let seed = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_else(|| "tresor-host".to_string());
    let d = ring::digest::digest(&ring::digest::SHA256, seed.trim().as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("i-{}", &hex[..17])
}
