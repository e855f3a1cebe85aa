//! `tresor agent`: a loopback caching agent with the AWS Secrets Manager Agent's HTTP API and
//! the Parameters and Secrets Lambda Extension's parameter path.
//!
//! Requests, checks and answers follow the agent's documentation and observed behavior:
//! `GET /secretsmanager/get?secretId=…[&versionId=…][&versionStage=…][&refreshNow=…]` and
//! `GET <prefix><secretId>` answer GetSecretValue's fields as JSON (`CreatedDate` as epoch
//! seconds in a string); `/ping` answers `healthy`; a request other than `/ping` needs the
//! SSRF token in `X-Aws-Parameters-Secrets-Token` (or `X-Vault-Token`) — 403 `Bad Token` —
//! and no `X-Forwarded-For` — 400 `Forwarded`; a method other than GET is 405 `Not allowed`;
//! an unknown path 404 `Not found`; a service error keeps its status with
//! `{"__type":"<code>", "message":"<message>"}`; a timeout is 504, a connection failure 502.
//!
//! Unlike AWS's agent, which serves a cached value until its TTL (300 s) passes, this one
//! checks every `--refresh-interval` seconds whether the cached version still carries the
//! requested stage (DescribeSecret's `VersionIdsToStages`, as the caching libraries do after
//! their TTL) and fetches the new version as soon as it does not: a rotated secret is served
//! within the interval. `--ttl` stays a ceiling after which the value is read again anyway.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::Args;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use parking_lot::Mutex;

use crate::clients::{Clients, REFERENCE_PREFIX, current_version_id};
use crate::errors::{Failure, classify};
use crate::http::{Resp, query_pairs, token_from_value, token_matches};
use crate::source::ClientArgs;

/// The headers that carry the SSRF token (the agent's defaults).
const SSRF_HEADERS: [&str; 2] = ["X-Aws-Parameters-Secrets-Token", "X-Vault-Token"];
/// The variables the token is read from, first set wins; a value `file://path` names a file.
const SSRF_ENV_VARIABLES: [&str; 3] = [
    "AWS_TOKEN",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Port on 127.0.0.1 (the agent's default port).
    #[arg(long, default_value_t = 2773, env = "TRESOR_AGENT_PORT")]
    pub port: u16,
    /// Loopback address to bind (127.0.0.1 or ::1); nothing else is accepted.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Most seconds a value is served before it is read again, whatever its version.
    #[arg(long, default_value_t = 300)]
    pub ttl: u64,
    /// Seconds between checks that a cached value is still the current version.
    #[arg(long, default_value_t = 5)]
    pub refresh_interval: u64,
    /// File holding the SSRF token [default: AWS_TOKEN, AWS_SESSION_TOKEN or
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN, whose value may be file://path].
    #[arg(long, env = "TRESOR_AGENT_TOKEN_FILE")]
    pub ssrf_token_file: Option<PathBuf>,
    /// Prefix of path-style requests (`GET /v1/<secretId>`).
    #[arg(long, default_value = "/v1/")]
    pub path_prefix: String,
    /// Most cached entries (the least recently fetched goes first).
    #[arg(long, default_value_t = 1000)]
    pub cache_size: usize,
    /// Most requests served at once; more are answered 429 (`/ping` has two more).
    #[arg(long, default_value_t = 800)]
    pub max_conn: usize,
    /// Skip the start-up check of the credentials (sts:GetCallerIdentity).
    #[arg(long)]
    pub no_validate_credentials: bool,
    /// Assume this role (with the default credential chain) instead of using the chain's
    /// own identity.
    #[arg(long)]
    pub role_arn: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// One cached answer.
struct Entry {
    body: Arc<String>,
    /// ARN and version the answer is (for the version check); the secret id of a reference.
    check: Option<(String, String)>,
    /// The parameter's version, for a parameter read without a selector.
    param_version: Option<i64>,
    fetched: Instant,
    checked: Instant,
}

impl Entry {
    fn new(body: String, check: Option<(String, String)>, param_version: Option<i64>) -> Self {
        let now = Instant::now();
        Entry {
            body: Arc::new(body),
            check,
            param_version,
            fetched: now,
            checked: now,
        }
    }
}

#[derive(Hash, PartialEq, Eq, Clone, Debug)]
enum Key {
    Secret {
        id: String,
        version_id: Option<String>,
        stage: Option<String>,
    },
    Parameter {
        name: String,
        decrypt: bool,
    },
}

struct Agent {
    clients: Clients,
    token: String,
    ttl: Duration,
    refresh: Duration,
    prefix: String,
    cache_size: usize,
    cache: Mutex<HashMap<Key, Entry>>,
    max_conn: usize,
    in_flight: AtomicUsize,
}

/// An answer: status and body, as the agent sends them (no content type).
struct Answer(u16, String);

fn plain(status: u16, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// The SSRF token: the file, else the first variable set.
fn ssrf_token(args: &AgentArgs) -> Result<String, String> {
    let token = match &args.ssrf_token_file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?
            .trim()
            .to_string(),
        None => {
            let value = SSRF_ENV_VARIABLES
                .iter()
                .find_map(|n| std::env::var(n).ok())
                .ok_or_else(|| {
                    "no SSRF token: set AWS_TOKEN (a value or file://path) or --ssrf-token-file"
                        .to_string()
                })?;
            token_from_value(&value)?
        }
    };
    if token.is_empty() {
        return Err("the SSRF token is empty".into());
    }
    Ok(token)
}

/// Runs `tresor agent` until the process is stopped.
pub async fn run(args: AgentArgs) -> Result<(), String> {
    if !args.path_prefix.starts_with('/') {
        return Err("--path-prefix must begin with /".into());
    }
    if args.max_conn == 0 {
        return Err("--max-conn must be at least 1".into());
    }
    if args.cache_size == 0 {
        return Err("--cache-size must be at least 1".into());
    }
    let token = ssrf_token(&args)?;
    let clients = Clients::new(&args.client, args.role_arn.as_deref()).await;
    if !args.no_validate_credentials {
        validate_credentials(&clients).await?;
    }
    let listener = crate::http::bind(SocketAddr::new(args.bind, args.port), false).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let agent = Arc::new(Agent {
        clients,
        token,
        ttl: Duration::from_secs(args.ttl),
        refresh: Duration::from_secs(args.refresh_interval),
        prefix: args.path_prefix.clone(),
        cache_size: args.cache_size,
        cache: Mutex::new(HashMap::new()),
        max_conn: args.max_conn,
        in_flight: AtomicUsize::new(0),
    });
    tracing::info!(
        ttl = args.ttl,
        refresh_interval = args.refresh_interval,
        "caching agent"
    );
    println!("tresor agent listening on http://{addr}");
    let handler = move |parts: Parts| {
        let agent = agent.clone();
        async move {
            let Answer(status, body) = agent.handle(&parts).await;
            plain(status, body)
        }
    };
    crate::http::serve(listener, handler).await;
    Ok(())
}

/// One request being served: counted while it lives, also when its connection drops it.
struct InFlight<'a> {
    counter: &'a AtomicUsize,
    count: usize,
}

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
        InFlight { counter, count }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The agent's start-up check: the credentials work (sts:GetCallerIdentity). A transient
/// failure (tresor or the metadata endpoint not up yet) only warns.
async fn validate_credentials(clients: &Clients) -> Result<(), String> {
    match clients.sts.get_caller_identity().send().await {
        Ok(out) => {
            tracing::info!(
                identity = out.arn().unwrap_or_default(),
                "credentials validated"
            );
            Ok(())
        }
        Err(e) => {
            let f = classify(&e);
            if f.is_transient() {
                tracing::warn!(error = %f.summary(), "could not validate the credentials; starting anyway");
                Ok(())
            } else {
                Err(format!("the credentials do not work: {}", f.summary()))
            }
        }
    }
}

fn bad(msg: impl Into<String>) -> Answer {
    Answer(400, msg.into())
}

fn parse_refresh(v: &str) -> Result<bool, Answer> {
    match v.to_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad("invalid refreshNow value")),
    }
}

impl Agent {
    async fn handle(&self, parts: &Parts) -> Answer {
        let guard = InFlight::enter(&self.in_flight);
        self.handle_counted(parts, guard.count).await
    }

    async fn handle_counted(&self, parts: &Parts, count: usize) -> Answer {
        let limit = if parts.uri.path() == "/ping" {
            self.max_conn + 2
        } else {
            self.max_conn
        };
        if count > limit {
            return Answer(429, "Connection limit exceeded".into());
        }
        let path = parts.uri.path();
        if path != "/ping" {
            if parts.headers.contains_key("x-forwarded-for") {
                return bad("Forwarded");
            }
            let ok = SSRF_HEADERS.iter().any(|h| {
                parts
                    .headers
                    .get(*h)
                    .is_some_and(|v| token_matches(v.as_bytes(), self.token.as_bytes()))
            });
            if !ok {
                tracing::warn!("rejecting a request without the SSRF token");
                return Answer(403, "Bad Token".into());
            }
        }
        if parts.method != Method::GET {
            return Answer(405, "Not allowed".into());
        }
        let result = match path {
            "/ping" => return Answer(200, "healthy".into()),
            "/secretsmanager/get" => self.secret_query(parts, None).await,
            "/systemsmanager/parameters/get" => self.parameter_query(parts).await,
            p if p.starts_with(self.prefix.as_str()) => {
                let id = p[self.prefix.len()..].to_string();
                if id.is_empty() {
                    return bad("missing secret ID");
                }
                self.secret_query(parts, Some(id)).await
            }
            _ => return Answer(404, "Not found".into()),
        };
        match result {
            Ok(body) => Answer(200, body.as_ref().clone()),
            Err(a) => a,
        }
    }

    async fn secret_query(
        &self,
        parts: &Parts,
        path_id: Option<String>,
    ) -> Result<Arc<String>, Answer> {
        let mut id = path_id.clone().unwrap_or_default();
        let (mut version_id, mut stage, mut refresh_now) = (None, None, false);
        for (k, v) in query_pairs(parts) {
            match k.as_str() {
                "secretId" if path_id.is_none() => id = v,
                "versionId" => version_id = Some(v),
                "versionStage" => stage = Some(v),
                "refreshNow" => refresh_now = parse_refresh(&v)?,
                other => return Err(bad(format!("unknown parameter: {other}"))),
            }
        }
        if id.is_empty() {
            return Err(bad("missing parameter secretId"));
        }
        let key = Key::Secret {
            id,
            version_id,
            stage,
        };
        self.get(key, refresh_now).await
    }

    async fn parameter_query(&self, parts: &Parts) -> Result<Arc<String>, Answer> {
        let (mut name, mut decrypt, mut version, mut label) = (String::new(), false, None, None);
        for (k, v) in query_pairs(parts) {
            match k.as_str() {
                "name" => name = v,
                "withDecryption" => {
                    decrypt = match v.to_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("invalid withDecryption value")),
                    }
                }
                "version" => version = Some(v),
                "label" => label = Some(v),
                other => return Err(bad(format!("unknown parameter: {other}"))),
            }
        }
        if name.is_empty() {
            return Err(bad("missing parameter name"));
        }
        match (version, label) {
            (Some(_), Some(_)) => return Err(bad("version and label cannot both be given")),
            (Some(s), None) | (None, Some(s)) => name = format!("{name}:{s}"),
            (None, None) => {}
        }
        self.get(Key::Parameter { name, decrypt }, false).await
    }

    /// A cached answer, checked or fetched as its age asks.
    async fn get(&self, key: Key, refresh_now: bool) -> Result<Arc<String>, Answer> {
        let now = Instant::now();
        let cached = {
            let cache = self.cache.lock();
            cache.get(&key).map(|e| {
                (
                    e.body.clone(),
                    e.check.clone(),
                    e.param_version,
                    now.duration_since(e.fetched),
                    now.duration_since(e.checked),
                )
            })
        };
        let Some((body, check, param_version, age, since_check)) = cached else {
            return self.fetch(&key, None).await;
        };
        if refresh_now || age >= self.ttl {
            return self.fetch(&key, Some(body)).await;
        }
        let pinned = matches!(
            &key,
            Key::Secret {
                version_id: Some(_),
                ..
            }
        );
        if pinned || since_check < self.refresh {
            return Ok(body);
        }
        match self.still_current(&key, check, param_version).await {
            Ok(true) => {
                if let Some(e) = self.cache.lock().get_mut(&key) {
                    e.checked = Instant::now();
                }
                Ok(body)
            }
            Ok(false) => self.fetch(&key, Some(body)).await,
            Err(f) if f.is_transient() => {
                tracing::warn!(error = %f.summary(), "version check failed; serving the cached value");
                if let Some(e) = self.cache.lock().get_mut(&key) {
                    e.checked = Instant::now();
                }
                Ok(body)
            }
            // No DescribeSecret permission (or the like): read the value again.
            Err(_) => self.fetch(&key, Some(body)).await,
        }
    }

    /// Whether the cached version is still the one asked for.
    async fn still_current(
        &self,
        key: &Key,
        check: Option<(String, String)>,
        param_version: Option<i64>,
    ) -> Result<bool, Failure> {
        match (key, check, param_version) {
            (Key::Secret { stage, .. }, Some((arn, version)), _) => {
                let stage = stage.as_deref().unwrap_or("AWSCURRENT");
                Ok(current_version_id(&self.clients.sm, &arn, stage).await? == Some(version))
            }
            (Key::Parameter { .. }, Some((id, version)), _) => {
                Ok(current_version_id(&self.clients.sm, &id, "AWSCURRENT").await? == Some(version))
            }
            (Key::Parameter { name, .. }, None, Some(v)) => {
                Ok(self.clients.get_parameter(name, false).await?.version() == v)
            }
            // A parameter with a selector: the TTL alone decides.
            _ => Ok(true),
        }
    }

    /// Reads the value; on a transient failure serves `stale` when there is one.
    async fn fetch(&self, key: &Key, stale: Option<Arc<String>>) -> Result<Arc<String>, Answer> {
        let result = match key {
            Key::Secret {
                id,
                version_id,
                stage,
            } => {
                self.fetch_secret(id, version_id.as_deref(), stage.as_deref())
                    .await
            }
            Key::Parameter { name, decrypt } => self.fetch_parameter(name, *decrypt).await,
        };
        let entry = match result {
            Ok(e) => e,
            Err(f) => {
                if let (true, Some(body)) = (f.is_transient(), stale) {
                    tracing::warn!(error = %f.summary(), "read failed; serving the cached value");
                    return Ok(body);
                }
                return Err(error_answer(&f));
            }
        };
        let body = entry.body.clone();
        let mut cache = self.cache.lock();
        if cache.len() >= self.cache_size
            && !cache.contains_key(key)
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, e)| e.fetched)
                .map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
        cache.insert(key.clone(), entry);
        Ok(body)
    }

    async fn fetch_secret(
        &self,
        id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Entry, Failure> {
        let out = self
            .clients
            .sm
            .get_secret_value()
            .secret_id(id)
            .set_version_id(version_id.map(str::to_string))
            .set_version_stage(stage.map(str::to_string))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let created = out.created_date().map(|d| {
            Duration::new(u64::try_from(d.secs()).unwrap_or(0), d.subsec_nanos())
                .as_secs_f64()
                .to_string()
        });
        let mut fields = vec![
            ("ARN", json_opt(out.arn())),
            ("Name", json_opt(out.name())),
            ("VersionId", json_opt(out.version_id())),
        ];
        if let Some(s) = out.secret_string() {
            fields.push(("SecretString", json_str(s)));
        }
        if let Some(b) = out.secret_binary() {
            let encoded = base64::engine::general_purpose::STANDARD.encode(b.as_ref());
            fields.push(("SecretBinary", json_str(&encoded)));
        }
        if let Some(stages) = out.version_stages.as_ref() {
            let v = serde_json::to_string(stages).unwrap_or_else(|_| "[]".into());
            fields.push(("VersionStages", v));
        }
        fields.push(("CreatedDate", json_opt(created.as_deref())));
        let body = json_object(&fields);
        let check = match (out.arn(), out.version_id()) {
            (Some(a), Some(v)) => Some((a.to_string(), v.to_string())),
            _ => None,
        };
        Ok(Entry::new(body, check, None))
    }

    async fn fetch_parameter(&self, name: &str, decrypt: bool) -> Result<Entry, Failure> {
        let p = self.clients.get_parameter(name, decrypt).await?;
        let modified = p.last_modified_date().map(|d| {
            d.fmt(aws_sdk_ssm::primitives::DateTimeFormat::DateTimeWithOffset)
                .unwrap_or_default()
        });
        let parameter = json_object(&[
            ("ARN", json_opt(p.arn())),
            ("DataType", json_opt(p.data_type())),
            ("LastModifiedDate", json_opt(modified.as_deref())),
            ("Name", json_opt(p.name())),
            ("Selector", json_opt(p.selector())),
            ("SourceResult", json_opt(p.source_result())),
            ("Type", json_opt(p.r#type().map(|t| t.as_str()))),
            ("Value", json_opt(p.value())),
            ("Version", p.version().to_string()),
        ]);
        let body = format!("{{\"Parameter\":{parameter},\"ResultMetadata\":{{}}}}");
        let reference = name.strip_prefix(REFERENCE_PREFIX).is_some();
        let has_selector = name
            .rsplit('/')
            .next()
            .is_some_and(|leaf| leaf.contains(':'));
        let check = match (reference, p.source_result(), p.arn()) {
            (true, Some(src), Some(arn)) => serde_json::from_str::<serde_json::Value>(src)
                .ok()
                .and_then(|v| {
                    v.get("VersionId")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                })
                .map(|v| (arn.to_string(), v)),
            _ => None,
        };
        Ok(Entry::new(
            body,
            check,
            (!reference && !has_selector).then_some(p.version()),
        ))
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn json_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_string(), json_str)
}

/// A JSON object of already-encoded values, in the given order, without spaces.
fn json_object(fields: &[(&str, String)]) -> String {
    let members: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// The agent's error answer for a failed read.
fn error_answer(f: &Failure) -> Answer {
    match f {
        Failure::Service {
            status,
            code,
            message,
        } if !message.is_empty() && code != "InternalFailure" => {
            // The agent writes the message between quotes as it is; escaping keeps the body
            // JSON when a message holds a quote.
            let m = json_str(message);
            Answer(
                *status,
                format!("{{\"__type\":\"{code}\", \"message\":{m}}}"),
            )
        }
        Failure::Timeout => Answer(
            504,
            "{\"__type\":\"TimeoutError\", \"message\":\"Timeout\"}".into(),
        ),
        Failure::Io(_) => Answer(
            502,
            "{\"__type\":\"ConnectionError\", \"message\":\"Read Error\"}".into(),
        ),
        Failure::Response(_) => Answer(
            502,
            "{\"__type\":\"ConnectionError\", \"message\":\"Response Error\"}".into(),
        ),
        _ => Answer(500, "{\"__type\":\"InternalFailure\"}".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_as_the_agent_writes_them() {
        let svc = Failure::Service {
            status: 400,
            code: "ResourceNotFoundException".into(),
            message: "Secrets Manager can't find the specified secret.".into(),
        };
        let Answer(status, body) = error_answer(&svc);
        assert_eq!(status, 400);
        assert_eq!(
            body,
            r#"{"__type":"ResourceNotFoundException", "message":"Secrets Manager can't find the specified secret."}"#
        );
        let Answer(status, body) = error_answer(&Failure::Timeout);
        assert_eq!(
            (status, body.as_str()),
            (504, r#"{"__type":"TimeoutError", "message":"Timeout"}"#)
        );
        let Answer(status, body) = error_answer(&Failure::Io("refused".into()));
        assert_eq!(
            (status, body.as_str()),
            (
                502,
                r#"{"__type":"ConnectionError", "message":"Read Error"}"#
            )
        );
        let empty = Failure::Service {
            status: 500,
            code: "InternalFailure".into(),
            message: "x".into(),
        };
        assert_eq!(error_answer(&empty).1, r#"{"__type":"InternalFailure"}"#);
    }

    fn agent(max_conn: usize, clients: Clients) -> Agent {
        Agent {
            clients,
            token: "t".into(),
            ttl: Duration::from_secs(300),
            refresh: Duration::from_secs(5),
            prefix: "/v1/".into(),
            cache_size: 10,
            cache: Mutex::new(HashMap::new()),
            max_conn,
            in_flight: AtomicUsize::new(0),
        }
    }

    fn request(path: &str, token: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri(path);
        if let Some(t) = token {
            b = b.header("X-Aws-Parameters-Secrets-Token", t);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| unreachable!())
    }

    #[tokio::test]
    async fn connection_limit_before_the_token_check() {
        let clients = Clients::new(&ClientArgs::default(), None).await;
        let a = agent(2, clients);
        let Answer(status, body) = a.handle_counted(&request("/v1/x", None), 3).await;
        assert_eq!((status, body.as_str()), (429, "Connection limit exceeded"));
        // /ping has two more.
        let Answer(status, body) = a.handle_counted(&request("/ping", None), 4).await;
        assert_eq!((status, body.as_str()), (200, "healthy"));
        let Answer(status, _) = a.handle_counted(&request("/ping", None), 5).await;
        assert_eq!(status, 429);
        // Within the limit, the token decides.
        let Answer(status, body) = a.handle_counted(&request("/v1/x", Some("u")), 2).await;
        assert_eq!((status, body.as_str()), (403, "Bad Token"));
        // A dropped request gives its place back.
        drop(InFlight::enter(&a.in_flight));
        assert_eq!(a.in_flight.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn refresh_now_values() {
        assert!(matches!(parse_refresh("TRUE"), Ok(true)));
        assert!(matches!(parse_refresh("1"), Ok(true)));
        assert!(matches!(parse_refresh("0"), Ok(false)));
        assert!(
            matches!(parse_refresh("yes"), Err(Answer(400, m)) if m == "invalid refreshNow value")
        );
    }
}
