//! The signing keys of OpenID Connect issuers: found through the issuer's discovery document
//! (`<issuer>/.well-known/openid-configuration`, OpenID Connect Discovery 1.0 §4) and its
//! `jwks_uri`, both over HTTPS, and cached per issuer. A token whose `kid` is not in the cache
//! triggers one refetch, at most once per `refetch_interval` per issuer, so a flood of tokens
//! with made-up key ids cannot turn tresor into a load generator against the issuer.
//!
//! Air-gapped sites configure a JWK Set per issuer instead (`offline`): those issuers are
//! never contacted. TLS is verified against the system's roots plus an optional extra CA
//! bundle; plain HTTP is refused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::jwt::{Jwk, Jwt, parse_jwks, select_key};

/// How long fetched keys are used before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// The default least interval between two fetches for one issuer.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The time budget of one HTTPS request to an issuer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes read of a discovery document or a JWK Set.
pub(crate) const MAX_DOCUMENT: u64 = 256 * 1024;

/// Where keys come from (the server's `[federation]` configuration).
#[derive(Clone, Debug, Default)]
pub struct KeySettings {
    /// PEM file of extra trusted CAs for issuer HTTPS (beside the system roots).
    pub ca_bundle: Option<PathBuf>,
    /// Issuer URL → its JWK Set document, for issuers tresor must not contact.
    pub offline: Vec<(String, String)>,
    /// The least interval between fetches for one issuer (`None`: the default).
    pub refetch_interval: Option<Duration>,
}

/// Why no key was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The issuer could not be reached (connection refused, DNS, timeout).
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    /// The issuer answered, but without a usable key for the token (HTTP error, not a
    /// discovery document or JWK Set, TLS verification failed, no such `kid`).
    #[error("no verification key: {0}")]
    NoKey(String),
}

struct Entry {
    keys: Vec<Jwk>,
    fetched: Instant,
}

/// The per-deployment key cache (a `Services` extension).
pub struct KeyCache {
    settings: KeySettings,
    offline: HashMap<String, Vec<Jwk>>,
    agent: ureq::Agent,
    entries: Mutex<HashMap<String, Entry>>,
    /// Per issuer: when it was last fetched, and the failure if that fetch failed.
    attempts: Mutex<HashMap<String, (Instant, Option<KeyError>)>>,
}

/// An issuer URL compared without a trailing slash.
fn issuer_key(issuer: &str) -> String {
    issuer.trim_end_matches('/').to_string()
}

impl KeyCache {
    /// A cache with `settings`; an unreadable CA bundle or offline JWK Set is an error.
    pub fn new(settings: KeySettings) -> Result<KeyCache, String> {
        let mut offline = HashMap::new();
        for (issuer, doc) in &settings.offline {
            let keys = parse_jwks(doc.as_bytes())
                .ok_or_else(|| format!("the offline JWK Set of {issuer} is not a JWK Set"))?;
            offline.insert(issuer_key(issuer), keys);
        }
        let extra = match &settings.ca_bundle {
            Some(path) => read_ca_bundle(path)?,
            None => Vec::new(),
        };
        let agent = agent(extra);
        Ok(KeyCache {
            settings,
            offline,
            agent,
            entries: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
        })
    }

    /// A cache with the default settings: system roots, no offline keys.
    pub fn with_defaults() -> KeyCache {
        KeyCache {
            settings: KeySettings::default(),
            offline: HashMap::new(),
            agent: agent(Vec::new()),
            entries: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn refetch_interval(&self) -> Duration {
        self.settings
            .refetch_interval
            .unwrap_or(DEFAULT_REFETCH_INTERVAL)
    }

    /// The key that verifies `jwt`, whose issuer is `issuer` (a registered provider's URL).
    /// Blocking: may fetch over the network.
    pub fn key_for(&self, issuer: &str, jwt: &Jwt) -> Result<Jwk, KeyError> {
        let issuer = issuer_key(issuer);
        if let Some(keys) = self.offline.get(&issuer) {
            return select_key(keys, jwt).cloned().ok_or_else(|| {
                KeyError::NoKey("no key with this kid in the offline JWK Set".into())
            });
        }
        // The cached key for the token, and whether the cache is still fresh.
        let (cached, fresh) = {
            let entries = self.entries.lock();
            match entries.get(&issuer) {
                Some(e) => (
                    select_key(&e.keys, jwt).cloned(),
                    e.fetched.elapsed() < KEYS_TTL,
                ),
                None => (None, false),
            }
        };
        if let (Some(key), true) = (&cached, fresh) {
            return Ok(key.clone());
        }
        // An unknown kid or stale keys: fetch — unless this issuer was tried very recently,
        // then answer from what is known (stale keys, or the last failure).
        {
            let mut attempts = self.attempts.lock();
            if let Some((at, failure)) = attempts.get(&issuer)
                && at.elapsed() < self.refetch_interval()
            {
                return cached.ok_or_else(|| {
                    failure
                        .clone()
                        .unwrap_or_else(|| KeyError::NoKey("no key with this kid".into()))
                });
            }
            attempts.insert(issuer.clone(), (Instant::now(), None));
        }
        match self.fetch(&issuer) {
            Ok(keys) => {
                let key = select_key(&keys, jwt).cloned();
                self.entries.lock().insert(
                    issuer,
                    Entry {
                        keys,
                        fetched: Instant::now(),
                    },
                );
                key.ok_or_else(|| KeyError::NoKey("no key with this kid".into()))
            }
            Err(e) => {
                self.attempts
                    .lock()
                    .insert(issuer, (Instant::now(), Some(e.clone())));
                // Keys past their TTL still serve while the issuer cannot be reached.
                cached.ok_or(e)
            }
        }
    }

    /// Discovery document, then the JWK Set it names.
    fn fetch(&self, issuer: &str) -> Result<Vec<Jwk>, KeyError> {
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        let doc = self.get(&discovery)?;
        let config: serde_json::Value = serde_json::from_slice(&doc)
            .map_err(|_| KeyError::NoKey("the discovery document is not JSON".into()))?;
        let jwks_uri = config
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .filter(|u| u.starts_with("https://"))
            .ok_or_else(|| KeyError::NoKey("the discovery document has no https jwks_uri".into()))?
            .to_string();
        let doc = self.get(&jwks_uri)?;
        parse_jwks(&doc).ok_or_else(|| KeyError::NoKey("jwks_uri did not return a JWK Set".into()))
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, KeyError> {
        let mut resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| fetch_error(url, &e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(if status >= 500 {
                KeyError::Unreachable(format!("{url} answered HTTP {status}"))
            } else {
                KeyError::NoKey(format!("{url} answered HTTP {status}"))
            });
        }
        resp.body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .map_err(|e| fetch_error(url, &e))
    }
}

fn fetch_error(url: &str, e: &ureq::Error) -> KeyError {
    match e {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Timeout(_)
        | ureq::Error::Io(_) => KeyError::Unreachable(format!("{url}: {e}")),
        other => KeyError::NoKey(format!("{url}: {other}")),
    }
}

/// The certificates of a PEM CA bundle.
pub(crate) fn read_ca_bundle(
    path: &PathBuf,
) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    use ureq::tls::PemItem;
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the CA bundle {}: {e}", path.display()))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "no certificate in the CA bundle {}",
            path.display()
        ));
    }
    Ok(certs)
}

/// An HTTPS-only agent trusting the system roots and `extra`; redirects are not followed
/// (a redirect could lead off HTTPS or to another host).
fn agent(extra: Vec<ureq::tls::Certificate<'static>>) -> ureq::Agent {
    http_agent(extra, true)
}

/// An agent trusting the system roots and `extra`, HTTPS-only if `https_only`; it follows no
/// redirects and gives up after [`FETCH_TIMEOUT`].
pub(crate) fn http_agent(
    extra: Vec<ureq::tls::Certificate<'static>>,
    https_only: bool,
) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    roots.extend(extra);
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    ureq::Agent::config_builder()
        .https_only(https_only)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(FETCH_TIMEOUT))
        .tls_config(tls)
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::super::jwt::tests::{Signer, claims};
    use super::*;

    #[test]
    fn offline_keys_are_used_without_the_network() {
        let s = Signer::ec();
        let jwks = serde_json::json!({"keys": [s.jwk("k1")]}).to_string();
        let cache = KeyCache::new(KeySettings {
            offline: vec![("https://issuer.example/".into(), jwks)],
            ..KeySettings::default()
        })
        .expect("cache");
        let jwt = Jwt::parse(&s.token("k1", &claims(1))).expect("jwt");
        let key = cache.key_for("https://issuer.example", &jwt).expect("key");
        assert_eq!(jwt.verify(&key), Ok(()));
        let unknown = Jwt::parse(&s.token("k2", &claims(1))).expect("jwt");
        assert!(matches!(
            cache.key_for("https://issuer.example", &unknown),
            Err(KeyError::NoKey(_))
        ));
    }

    #[test]
    fn an_unreachable_issuer_is_reported_and_refetches_are_rate_limited() {
        let s = Signer::ec();
        let cache = KeyCache::with_defaults();
        let jwt = Jwt::parse(&s.token("k1", &claims(1))).expect("jwt");
        // Port 1 on loopback: connection refused.
        let first = cache.key_for("https://127.0.0.1:1", &jwt);
        assert!(matches!(first, Err(KeyError::Unreachable(_))), "{first:?}");
        // Within the refetch interval the failure is answered again without a new attempt
        // (a down issuer must not tie up a thread per request).
        let started = Instant::now();
        let again = cache.key_for("https://127.0.0.1:1", &jwt);
        assert!(matches!(again, Err(KeyError::Unreachable(_))), "{again:?}");
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            KeyCache::new(KeySettings {
                offline: vec![("https://i".into(), "[]".into())],
                ..KeySettings::default()
            })
            .is_err()
        );
        assert!(
            KeyCache::new(KeySettings {
                ca_bundle: Some("/nonexistent/ca.pem".into()),
                ..KeySettings::default()
            })
            .is_err()
        );
    }
}
