//! Replication between deployments: the `[[replication.peers]]` configuration and the link
//! that carries replica updates to a peer deployment.
//!
//! A peer serves one or more regions. Replication to such a region goes to the peer's own API
//! as the internal operation `secretsmanager.TresorApplyReplicaUpdate`, SigV4-signed with the
//! credentials of a *replication principal* of the peer (an IAM user or role of the peer's
//! deployment, allowed `secretsmanager:TresorApplyReplicaUpdate` and the KMS use its replica
//! keys need), so the peer decides with its own IAM. The credentials come from a file or from
//! environment variables — never from a command-line argument — and are never logged.
//!
//! The HTTP client is deliberately small: one `POST /` per update over HTTP/1.1 with
//! `Connection: close`, over TLS (rustls, trusting only the configured CA file) for `https://`
//! endpoints. Plain `http://` is accepted for loopback endpoints only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tresor_crypto::SecretString;
use tresor_secretsmanager::replication::{PeerError, PeerLink, Topology};
use tresor_secretsmanager::replication_sync::PEER_OPERATION;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read from a peer.
const MAX_ANSWER: u64 = 1024 * 1024;

/// The `[replication]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationFile {
    #[serde(default)]
    peers: Vec<PeerFile>,
}

/// One `[[replication.peers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    /// The regions the peer serves.
    regions: Vec<String>,
    /// `https://host:port` (or `http://` on a loopback address).
    endpoint: String,
    /// PEM file of the CA (or certificate) the peer's TLS certificate must chain to.
    ca_file: Option<PathBuf>,
    /// A file with `aws_access_key_id`, `aws_secret_access_key` (and optionally
    /// `aws_session_token`) lines, as in an AWS shared credentials file.
    credentials_file: Option<PathBuf>,
    /// A prefix: the credentials are read from `<prefix>_ACCESS_KEY_ID`,
    /// `<prefix>_SECRET_ACCESS_KEY` (and optionally `<prefix>_SESSION_TOKEN`).
    credentials_env: Option<String>,
}

/// A replication principal's credentials (never shown in Debug).
struct PeerCredentials {
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
}

/// A configured peer deployment.
pub struct Peer {
    regions: Vec<String>,
    endpoint: String,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    credentials: PeerCredentials,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("regions", &self.regions)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.credentials.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The validated `[replication]` configuration.
#[derive(Clone, Debug, Default)]
pub struct ReplicationConfig {
    pub peers: Vec<Arc<Peer>>,
}

impl ReplicationConfig {
    /// Where each region is served, for the replication worker.
    pub fn topology(&self, local: &[String]) -> Topology {
        let mut peers: BTreeMap<String, Arc<dyn PeerLink>> = BTreeMap::new();
        for p in &self.peers {
            for r in &p.regions {
                peers.insert(r.clone(), p.clone());
            }
        }
        Topology {
            local: local.to_vec(),
            peers,
        }
    }
}

/// A configuration error: the message for `ConfigError::Invalid`.
type ConfigError = String;

fn invalid(message: String) -> ConfigError {
    message
}

/// Validates `[replication]`: endpoints, CA files and credentials are read now, so a broken
/// peer configuration stops the start instead of failing every replication later.
pub fn replication_config(file: Option<ReplicationFile>) -> Result<ReplicationConfig, ConfigError> {
    let mut peers = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for p in file.unwrap_or_default().peers {
        if p.regions.is_empty() {
            return Err(invalid(
                "each [[replication.peers]] entry names at least one region".into(),
            ));
        }
        for r in &p.regions {
            if seen.contains(r) {
                return Err(invalid(format!(
                    "region {r} is given to two replication peers"
                )));
            }
            seen.push(r.clone());
        }
        let (tls, rest) = if let Some(rest) = p.endpoint.strip_prefix("https://") {
            let Some(ca) = &p.ca_file else {
                return Err(invalid(format!(
                    "replication peer {} needs ca_file: the peer's certificate is checked against it",
                    p.endpoint
                )));
            };
            (Some(client_tls(ca)?), rest)
        } else if let Some(rest) = p.endpoint.strip_prefix("http://") {
            (None, rest)
        } else {
            return Err(invalid(format!(
                "replication peer endpoint '{}' is not an http:// or https:// URL",
                p.endpoint
            )));
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                port.parse::<u16>().map_err(|_| {
                    invalid(format!(
                        "replication peer endpoint '{}' has a bad port",
                        p.endpoint
                    ))
                })?,
            ),
            _ => (authority.to_string(), if tls.is_some() { 443 } else { 80 }),
        };
        if tls.is_none() && !is_loopback(&host) {
            return Err(invalid(format!(
                "replication peer endpoint '{}' is plain HTTP on a non-loopback address: secret \
                 values would cross the network in the clear; use https:// with ca_file",
                p.endpoint
            )));
        }
        let credentials = match (&p.credentials_file, &p.credentials_env) {
            (Some(path), None) => credentials_from_file(path)?,
            (None, Some(prefix)) => credentials_from_env(prefix)?,
            _ => {
                return Err(invalid(format!(
                    "replication peer {} needs exactly one of credentials_file or credentials_env",
                    p.endpoint
                )));
            }
        };
        tracing::info!(endpoint = %p.endpoint, regions = ?p.regions, access_key_id = %credentials.access_key_id, "replication peer configured");
        peers.push(Arc::new(Peer {
            regions: p.regions,
            endpoint: p.endpoint.trim_end_matches('/').to_string(),
            host,
            port,
            tls,
            credentials,
        }));
    }
    Ok(ReplicationConfig { peers })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn client_tls(ca: &Path) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let pem = std::fs::read(ca).map_err(|e| {
        invalid(format!(
            "cannot read replication CA file {}: {e}",
            ca.display()
        ))
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert =
            cert.map_err(|e| invalid(format!("bad certificate PEM in {}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("unusable certificate in {}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(invalid(format!("no certificate in {}", ca.display())));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn credentials_from_file(path: &Path) -> Result<PeerCredentials, ConfigError> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the replication credentials file is readable by group or others; restrict it to 0600");
        }
    }
    let text = SecretString::from(std::fs::read_to_string(path).map_err(|e| {
        invalid(format!(
            "cannot read replication credentials file {}: {e}",
            path.display()
        ))
    })?);
    let mut fields: BTreeMap<String, SecretString> = BTreeMap::new();
    for line in text.expose().lines() {
        if let Some((k, v)) = line.split_once('=') {
            fields.insert(
                k.trim().to_ascii_lowercase(),
                SecretString::from(v.trim().to_string()),
            );
        }
    }
    let missing = |k: &str| {
        invalid(format!(
            "replication credentials file {} has no {k}",
            path.display()
        ))
    };
    Ok(PeerCredentials {
        access_key_id: fields
            .get("aws_access_key_id")
            .ok_or_else(|| missing("aws_access_key_id"))?
            .expose()
            .to_string(),
        secret_access_key: fields
            .remove("aws_secret_access_key")
            .ok_or_else(|| missing("aws_secret_access_key"))?,
        session_token: fields.remove("aws_session_token"),
    })
}

fn credentials_from_env(prefix: &str) -> Result<PeerCredentials, ConfigError> {
    let var = |suffix: &str| std::env::var(format!("{prefix}_{suffix}")).ok();
    let (Some(id), Some(secret)) = (var("ACCESS_KEY_ID"), var("SECRET_ACCESS_KEY")) else {
        return Err(invalid(format!(
            "replication credentials: {prefix}_ACCESS_KEY_ID and {prefix}_SECRET_ACCESS_KEY must be set"
        )));
    };
    Ok(PeerCredentials {
        access_key_id: id,
        secret_access_key: SecretString::from(secret),
        session_token: var("SESSION_TOKEN").map(SecretString::from),
    })
}

impl Peer {
    /// The SigV4 headers of a `POST /` with `body` to this peer, for `region`.
    fn signed_headers(
        &self,
        region: &str,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, PeerError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;
        let host = if (self.tls.is_some() && self.port == 443)
            || (self.tls.is_none() && self.port == 80)
        {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut headers = vec![
            ("host".to_string(), host),
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            (
                "x-amz-target".to_string(),
                format!("secretsmanager.{PEER_OPERATION}"),
            ),
        ];
        let identity = aws_credential_types::Credentials::new(
            self.credentials.access_key_id.clone(),
            self.credentials.secret_access_key.expose().to_string(),
            self.credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            None,
            "tresor-replication",
        )
        .into();
        let failed =
            |what: &str| PeerError::Unreachable(format!("cannot sign the request ({what})"));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("secretsmanager")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| failed("parameters"))?
            .into();
        let url = format!("{}/", self.endpoint);
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|_| failed("request"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|_| failed("signature"))?
            .into_parts();
        for (name, value) in instructions.headers() {
            headers.push((name.to_string(), value.to_string()));
        }
        Ok(headers)
    }

    fn connect(&self) -> Result<TcpStream, PeerError> {
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| PeerError::Unreachable(format!("cannot resolve {}: {e}", self.host)))?
            .collect();
        let mut last = String::from("no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
                    return Ok(s);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(PeerError::Unreachable(last))
    }

    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, PeerError> {
        let tcp = self.connect()?;
        let io_error = |e: std::io::Error| PeerError::Unreachable(e.to_string());
        let mut response = Vec::new();
        match &self.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| PeerError::Unreachable(format!("bad TLS name: {e}")))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| PeerError::Unreachable(format!("TLS: {e}")))?;
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                tls.write_all(request).map_err(io_error)?;
                tls.flush().map_err(io_error)?;
                read_all(&mut tls, &mut response).map_err(io_error)?;
            }
            None => {
                let mut tcp = tcp;
                tcp.write_all(request).map_err(io_error)?;
                read_all(&mut tcp, &mut response).map_err(io_error)?;
            }
        }
        Ok(response)
    }
}

/// Reads until the peer closes (the request asked for `Connection: close`); a TLS peer
/// that closes without `close_notify` still delivered everything before it.
fn read_all(r: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    match r.take(MAX_ANSWER).read_to_end(out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Splits an HTTP/1.1 response into status and body (chunked bodies decoded).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = &raw[end + 4..];
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

impl PeerLink for Peer {
    fn send(&self, region: &str, body: &[u8]) -> Result<Vec<u8>, PeerError> {
        let headers = self.signed_headers(region, body)?;
        let mut request = Vec::with_capacity(body.len() + 1024);
        request.extend_from_slice(b"POST / HTTP/1.1\r\n");
        for (k, v) in &headers {
            request.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        request.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body);
        let raw = self.exchange(&request);
        // The request holds secret values: clear it before anything else happens.
        zeroize_vec(&mut request);
        let raw = raw?;
        let Some((status, body)) = parse_response(&raw) else {
            return Err(PeerError::Unreachable("the answer is not HTTP".into()));
        };
        if status == 200 {
            return Ok(body);
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            #[serde(rename = "__type", default)]
            code: String,
            #[serde(alias = "Message", default)]
            message: String,
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) if status < 500 => Err(PeerError::Refused {
                code: e.code.rsplit('#').next().unwrap_or_default().to_string(),
                message: e.message,
            }),
            _ => Err(PeerError::Unreachable(format!(
                "the peer answered HTTP {status}"
            ))),
        }
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

fn zeroize_vec(v: &mut Vec<u8>) {
    for b in v.iter_mut() {
        // Volatile-free best effort: the buffer is dropped right after.
        *b = 0;
    }
    v.clear();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, b"{}".as_slice()));
        let (s, b) = parse_response(
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (400, b"abcde".as_slice()));
        assert!(parse_response(b"garbage").is_none());
    }

    #[test]
    fn plain_http_is_refused_off_loopback_and_credentials_are_required() {
        let file: ReplicationFile = toml::from_str(
            "[[peers]]\nregions = [\"eu-west-1\"]\nendpoint = \"http://10.0.0.5:4566\"\ncredentials_env = \"X\"\n",
        )
        .unwrap();
        let err = replication_config(Some(file)).unwrap_err().to_string();
        assert!(err.contains("in the clear"), "{err}");
        let file: ReplicationFile = toml::from_str(
            "[[peers]]\nregions = [\"eu-west-1\"]\nendpoint = \"http://127.0.0.1:4566\"\n",
        )
        .unwrap();
        let err = replication_config(Some(file)).unwrap_err().to_string();
        assert!(err.contains("credentials_file or credentials_env"), "{err}");
    }

    #[test]
    fn credentials_files_are_read_and_never_debug_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = AKIAPEER\naws_secret_access_key = s3cr3t-value\n",
        )
        .unwrap();
        let file: ReplicationFile = toml::from_str(&format!(
            "[[peers]]\nregions = [\"eu-west-1\"]\nendpoint = \"http://127.0.0.1:4566\"\ncredentials_file = {:?}\n",
            path.display().to_string()
        ))
        .unwrap();
        let config = replication_config(Some(file)).unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("AKIAPEER"));
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        let topology = config.topology(&["us-east-1".to_string()]);
        assert!(topology.peers.contains_key("eu-west-1"));
        assert!(topology.is_local("us-east-1"));
        assert!(!topology.is_local("eu-west-1"));
    }
}
