//! `tresor imds`: the EC2 instance metadata service's credential paths for one host, and the
//! container-credentials endpoint, serving one role's short-lived sessions.
//!
//! The paths, headers and JSON follow the EC2 User Guide ("Use the Instance Metadata Service
//! to access instance metadata", "Retrieve security credentials from instance metadata",
//! "Instance identity documents"): IMDSv2 session tokens from `PUT /latest/api/token` with
//! `X-aws-ec2-metadata-token-ttl-seconds` (1–21600), presented in `X-aws-ec2-metadata-token`;
//! a missing or invalid token is 401 when IMDSv1 is not allowed; a PUT carrying
//! `X-Forwarded-For` is refused. The container route answers as the ECS/EKS credential
//! endpoints do (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`, `RoleArn`) to a
//! request whose `Authorization` header carries the configured token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use http::request::Parts;
use http::{HeaderValue, Method};
use time::OffsetDateTime;

use crate::http::{Resp, respond, token_matches};
use crate::source::{self, ClientArgs, RoleArgs, RoleSession, Session, iso_seconds};

/// Longest IMDSv2 session token life EC2 allows (6 hours).
const MAX_TOKEN_TTL: u64 = 21_600;
const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// The container-credentials path (the one the EKS Pod Identity agent serves).
pub const CONTAINER_PATH: &str = "/v1/credentials";

#[derive(Args, Debug)]
pub struct ImdsArgs {
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Address to listen on. Point SDKs at it with AWS_EC2_METADATA_SERVICE_ENDPOINT, or
    /// route 169.254.169.254:80 to it.
    #[arg(long, default_value = "127.0.0.1:1338", env = "TRESOR_IMDS_LISTEN")]
    pub listen: SocketAddr,
    /// Also answer reads without an IMDSv2 session token (IMDSv1). Off by default, as EC2's
    /// `HttpTokens=required`.
    #[arg(long)]
    pub allow_imdsv1: bool,
    /// Listen on a non-loopback address (only behind a firewall that limits who can reach it).
    #[arg(long)]
    pub allow_remote: bool,
    /// File holding the token a container-credentials client presents
    /// (AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]); without it the container route is off.
    #[arg(long, env = "TRESOR_CONTAINER_TOKEN_FILE")]
    pub container_token_file: Option<PathBuf>,
    /// Instance id served (and the default session name) [default: derived from /etc/machine-id].
    #[arg(long)]
    pub instance_id: Option<String>,
}

/// What the metadata service serves.
struct Imds {
    role: RoleSession,
    region: String,
    instance_id: String,
    allow_v1: bool,
    container_token: Option<String>,
    token_key: ring::hmac::Key,
    started: OffsetDateTime,
}

/// Runs `tresor imds` until the process is stopped.
pub async fn run(args: ImdsArgs) -> Result<(), String> {
    args.role.validate()?;
    let container_token = match &args.container_token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
                .trim()
                .to_string();
            if t.is_empty() {
                return Err(format!("{} is empty", p.display()));
            }
            Some(t)
        }
        None => None,
    };
    let instance_id = args.instance_id.clone().unwrap_or_else(source::instance_id);
    let source = source::source_config(&args.client).await;
    let region = source.region().map(|r| r.to_string()).unwrap_or_default();
    let rng = ring::rand::SystemRandom::new();
    let token_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
        .map_err(|_| "cannot generate a token key".to_string())?;
    let imds = Arc::new(Imds {
        role: RoleSession::new(&source, &args.role, &instance_id),
        region,
        instance_id,
        allow_v1: args.allow_imdsv1,
        container_token,
        token_key,
        started: OffsetDateTime::now_utc(),
    });
    // The first session before listening: a role that cannot be assumed is a start-up error
    // an operator sees at once, not an empty credential later.
    imds.role
        .get()
        .await
        .map_err(|e| format!("cannot assume {}: {e}", imds.role.role_arn))?;
    let listener = crate::http::bind(args.listen, args.allow_remote).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(refresher(imds.clone()));
    tracing::info!(role = %imds.role.role_arn, imdsv1 = imds.allow_v1, container = imds.container_token.is_some(), "instance metadata for {}", imds.role.role_name());
    // One plain line on stdout for scripts and tests that wait for readiness.
    println!("tresor imds listening on http://{addr}");
    let handler = move |parts: Parts| {
        let imds = imds.clone();
        async move { imds.handle(&parts).await }
    };
    crate::http::serve(listener, handler).await;
    Ok(())
}

/// Renews the role's session ahead of its expiry, so reads never wait for STS.
async fn refresher(imds: Arc<Imds>) {
    loop {
        let due = imds.role.renew_at().await - OffsetDateTime::now_utc();
        let wait = Duration::try_from(due).unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
        // A failure is logged by get() when an old session is still served; without one,
        // reads report it, and the next attempt waits RETRY_AFTER.
        if let Err(e) = imds.role.get().await {
            tracing::warn!(role = %imds.role.role_arn, error = %e, "cannot assume the role");
        }
    }
}

impl Imds {
    async fn handle(&self, parts: &Parts) -> Resp {
        let path = parts.uri.path();
        if path == "/latest/api/token" {
            return self.issue_token(parts);
        }
        if path == CONTAINER_PATH {
            return self.container(parts).await;
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return with_server(html_status(405, "Method Not Allowed"));
        }
        match parts.headers.get(TOKEN_HEADER) {
            Some(t) if self.token_valid(t.as_bytes()) => {}
            None if self.allow_v1 => {}
            _ => return with_server(html_status(401, "Unauthorized")),
        }
        // EC2 answers a path with or without a trailing slash alike (botocore asks for
        // `placement/availability-zone/`).
        let r = match path.trim_end_matches('/') {
            "/latest/meta-data" => text("iam/\ninstance-id\nplacement/\nservices/"),
            "/latest/meta-data/instance-id" => text(&self.instance_id),
            "/latest/meta-data/iam" => text("info\nsecurity-credentials/"),
            "/latest/meta-data/iam/info" => self.info().await,
            "/latest/meta-data/iam/security-credentials" => text(self.role.role_name()),
            "/latest/meta-data/placement" => text("availability-zone\nregion"),
            "/latest/meta-data/placement/region" => text(&self.region),
            "/latest/meta-data/placement/availability-zone" => text(&self.zone()),
            "/latest/meta-data/services" => text("domain\npartition"),
            "/latest/meta-data/services/domain" => text("amazonaws.com"),
            "/latest/meta-data/services/partition" => text("aws"),
            "/latest/dynamic" => text("instance-identity/"),
            "/latest/dynamic/instance-identity" => text("document"),
            "/latest/dynamic/instance-identity/document" => self.identity_document().await,
            p => match p.strip_prefix("/latest/meta-data/iam/security-credentials/") {
                Some(name) if name == self.role.role_name() => self.credentials().await,
                _ => html_status(404, "Not Found"),
            },
        };
        with_server(r)
    }

    /// `PUT /latest/api/token`.
    fn issue_token(&self, parts: &Parts) -> Resp {
        if parts.method != Method::PUT {
            return with_server(html_status(405, "Method Not Allowed"));
        }
        if parts.headers.contains_key("x-forwarded-for") {
            return with_server(html_status(403, "Forbidden"));
        }
        let ttl = parts
            .headers
            .get(TOKEN_TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|t| (1..=MAX_TOKEN_TTL).contains(t));
        let Some(ttl) = ttl else {
            return with_server(html_status(400, "Bad Request"));
        };
        let mut r = respond(200, "text/plain", issue(&self.token_key, ttl, unix_now()));
        if let Ok(v) = HeaderValue::from_str(&ttl.to_string()) {
            r.headers_mut().insert(TOKEN_TTL_HEADER, v);
        }
        with_server(r)
    }

    fn token_valid(&self, token: &[u8]) -> bool {
        token_valid(&self.token_key, token, unix_now())
    }

    fn zone(&self) -> String {
        format!("{}a", self.region)
    }

    /// `iam/security-credentials/<role>`, formatted as EC2 formats it.
    async fn credentials(&self) -> Resp {
        match self.role.current().await {
            Ok(s) => {
                let body = ec2_json(&[
                    ("Code", Some("Success")),
                    ("LastUpdated", Some(&iso_seconds(s.last_updated))),
                    ("Type", Some("AWS-HMAC")),
                    ("AccessKeyId", Some(&s.access_key_id)),
                    ("SecretAccessKey", Some(&s.secret_access_key)),
                    ("Token", Some(&s.session_token)),
                    ("Expiration", Some(&iso_seconds(s.expiration))),
                ]);
                respond(200, "text/plain", body)
            }
            Err(e) => self.failure(&e),
        }
    }

    /// What EC2 serves when the role cannot be assumed: a `Code` other than Success.
    fn failure(&self, e: &source::AssumeError) -> Resp {
        let message = format!("tresor could not assume {}: {}", self.role.role_arn, e.code);
        let body = ec2_json(&[
            ("Code", Some("AssumeRoleUnauthorizedAccess")),
            ("Message", Some(&message)),
            ("LastUpdated", Some(&iso_seconds(OffsetDateTime::now_utc()))),
        ]);
        respond(200, "text/plain", body)
    }

    /// `iam/info`: the instance profile is named after the role (tresor has no instance
    /// profiles); its id takes the role id's unique part with EC2's `AIPA` prefix.
    async fn info(&self) -> Resp {
        match self.role.current().await {
            Ok(s) => {
                let arn = format!(
                    "arn:aws:iam::{}:instance-profile/{}",
                    s.account,
                    self.role.role_name()
                );
                let id = profile_id(&s);
                let body = ec2_json(&[
                    ("Code", Some("Success")),
                    ("LastUpdated", Some(&iso_seconds(s.last_updated))),
                    ("InstanceProfileArn", Some(&arn)),
                    ("InstanceProfileId", Some(&id)),
                ]);
                respond(200, "text/plain", body)
            }
            Err(e) => self.failure(&e),
        }
    }

    /// `dynamic/instance-identity/document`; fields tresor cannot know are null.
    async fn identity_document(&self) -> Resp {
        let account = match self.role.current().await {
            Ok(s) => s.account.clone(),
            Err(e) => return self.failure(&e),
        };
        let zone = self.zone();
        let pending = iso_seconds(self.started);
        let arch = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            a => a,
        };
        let body = ec2_json(&[
            ("accountId", Some(&account)),
            ("architecture", Some(arch)),
            ("availabilityZone", Some(&zone)),
            ("billingProducts", None),
            ("devpayProductCodes", None),
            ("marketplaceProductCodes", None),
            ("imageId", None),
            ("instanceId", Some(&self.instance_id)),
            ("instanceType", None),
            ("kernelId", None),
            ("pendingTime", Some(&pending)),
            ("privateIp", None),
            ("ramdiskId", None),
            ("region", Some(&self.region)),
            ("version", Some("2017-09-30")),
        ]);
        respond(200, "text/plain", body)
    }

    /// The container-credentials route.
    async fn container(&self, parts: &Parts) -> Resp {
        let Some(expected) = &self.container_token else {
            return container_error(
                404,
                "NotFound",
                "the container-credentials route is not enabled",
            );
        };
        if parts.method != Method::GET {
            return container_error(405, "MethodNotAllowed", "only GET is allowed");
        }
        let presented = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !token_matches(presented, expected.as_bytes()) {
            return container_error(401, "AccessDenied", "missing or wrong authorization token");
        }
        match self.role.current().await {
            Ok(s) => {
                let body = serde_json::json!({
                    "AccessKeyId": s.access_key_id,
                    "Expiration": iso_seconds(s.expiration),
                    "RoleArn": self.role.role_arn,
                    "SecretAccessKey": s.secret_access_key,
                    "Token": s.session_token,
                });
                respond(200, "application/json", body.to_string())
            }
            Err(e) => container_error(
                500,
                "ServerException",
                &format!("cannot assume the role: {}", e.code),
            ),
        }
    }
}

/// Now, in milliseconds since the epoch (a 1-second token lives a whole second).
fn unix_now() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// An IMDSv2 session token: its expiry time (ms) and an HMAC over it with a key that lives only
/// in this process — nothing is stored per token, and a restart invalidates them all.
fn issue(key: &ring::hmac::Key, ttl_seconds: u64, now: u64) -> String {
    let expires = now + ttl_seconds * 1000;
    let tag = ring::hmac::sign(key, &expires.to_be_bytes());
    let mut raw = expires.to_be_bytes().to_vec();
    raw.extend_from_slice(tag.as_ref());
    URL_SAFE_NO_PAD.encode(raw)
}

/// Whether `token` was issued with `key` and has not expired at `now`.
fn token_valid(key: &ring::hmac::Key, token: &[u8], now: u64) -> bool {
    let Ok(raw) = URL_SAFE_NO_PAD.decode(token) else {
        return false;
    };
    if raw.len() != 8 + 32 {
        return false;
    }
    let (exp, tag) = raw.split_at(8);
    if ring::hmac::verify(key, exp, tag).is_err() {
        return false;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(exp);
    u64::from_be_bytes(b) > now
}

fn container_error(status: u16, code: &str, message: &str) -> Resp {
    let body = serde_json::json!({"code": code, "message": message});
    respond(status, "application/json", body.to_string())
}

/// `AIPA` and the role id's unique part (after its four-letter prefix).
fn profile_id(s: &Session) -> String {
    format!("AIPA{}", s.role_id.get(4..).unwrap_or_default())
}

fn text(s: &str) -> Resp {
    respond(200, "text/plain", s.to_string())
}

fn with_server(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert(http::header::SERVER, HeaderValue::from_static("EC2ws"));
    r
}

/// EC2's error page.
fn html_status(status: u16, reason: &str) -> Resp {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
         <!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
         \t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n \
         <head>\n  <title>{status} - {reason}</title>\n </head>\n \
         <body>\n  <h1>{status} - {reason}</h1>\n </body>\n</html>\n"
    );
    respond(status, "text/html", body)
}

/// A JSON object laid out as EC2's metadata service lays it out: two-space indent, `" : "`.
fn ec2_json(fields: &[(&str, Option<&str>)]) -> String {
    let mut out = String::from("{\n");
    for (i, (k, v)) in fields.iter().enumerate() {
        let value = match v {
            Some(v) => serde_json::Value::from(*v).to_string(),
            None => "null".to_string(),
        };
        out.push_str(&format!("  \"{k}\" : {value}"));
        out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_cannot_be_forged() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k1");
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k2");
        let t = issue(&key, 60, 1_000);
        assert!(token_valid(&key, t.as_bytes(), 60_999));
        assert!(!token_valid(&key, t.as_bytes(), 61_000));
        assert!(!token_valid(&other, t.as_bytes(), 1_000));
        // A later expiry with the old tag: refused.
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap_or_default();
        raw[7] ^= 0xff;
        assert!(!token_valid(
            &key,
            URL_SAFE_NO_PAD.encode(raw).as_bytes(),
            1_000
        ));
        assert!(!token_valid(&key, b"", 1_000));
        assert!(!token_valid(&key, b"not base64!", 1_000));
    }

    #[test]
    fn ec2_layout() {
        let j = ec2_json(&[("Code", Some("Success")), ("kernelId", None)]);
        assert_eq!(j, "{\n  \"Code\" : \"Success\",\n  \"kernelId\" : null\n}");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
        assert_eq!(v["Code"], "Success");
    }
}
