//! Configuration: flags, then `TRESOR_*` environment variables (both resolved by the CLI),
//! then a TOML file, then the defaults below — in that order of precedence. The file is
//! strict (`deny_unknown_fields`): a misspelled key is an error, not a silently ignored one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4566";
/// Larger than any input AWS accepts for these services (Secrets Manager's 64 KiB secret
/// value, base64-encoded, is the largest), small enough to refuse abuse early.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_DATA_DIR_NAME: &str = "tresor";
/// How long a client may take to send a request's headers, from the moment the connection
/// opens or its first byte arrives.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// How long a connection may sit without traffic (between keep-alive requests, or a stalled
/// body) before the server closes it. 60 s, as common load balancers do.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// The most connections served at once; the default is further lowered to fit the
/// process's open-file limit (see [`default_max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// One hour of a rotation schedule, in seconds: AWS's clock. The testing knob
/// `rotation_hour_seconds` shortens it (see [`Config::rotation_hour_seconds`]).
pub const DEFAULT_ROTATION_HOUR_SECONDS: u64 = 3600;
/// File descriptors kept free for everything else (the store's files, TLS, logs).
const RESERVED_FDS: usize = 128;

/// AWS's commercial regions (partition `aws`), served by default.
pub const DEFAULT_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
];

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `tresor.db` in the data directory (the default).
    Sqlite,
    /// A PostgreSQL database shared by every node (`postgres://…`).
    Postgres(String),
}

impl std::fmt::Debug for StoreLocation {
    /// Never the URL itself: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite => f.write_str("Sqlite"),
            StoreLocation::Postgres(_) => f.write_str("Postgres([redacted])"),
        }
    }
}

/// Values given on the command line or in `TRESOR_*` variables (None = not given).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `--store` / `TRESOR_STORE`: `postgres://…` for the shared PostgreSQL backend; absent
    /// (or `sqlite`) for the embedded SQLite file in the data directory.
    pub store: Option<String>,
    pub dev: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub insecure_http: Option<bool>,
    pub account_id: Option<String>,
    pub regions: Option<Vec<String>>,
    pub max_body_bytes: Option<usize>,
    pub header_read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    /// `--writer-nice` / `TRESOR_WRITER_NICE`: the writer threads' nice value.
    pub writer_nice: Option<i32>,
    /// `TRESOR_ROOT_KEY`: the root key itself (hex or base64), instead of the key file.
    pub root_key: Option<String>,
    /// Testing only: seconds per hour of a `rate()` rotation schedule.
    pub rotation_hour_seconds: Option<u64>,
    /// `--lambda-python` / `TRESOR_LAMBDA_PYTHON`: the interpreter of Python functions.
    pub lambda_python: Option<String>,
    /// `--lambda-node` / `TRESOR_LAMBDA_NODE`: the interpreter of Node.js functions.
    pub lambda_node: Option<String>,
    /// `--audit-file` / `TRESOR_AUDIT_FILE`: a JSON-lines copy of the audit log.
    pub audit_file: Option<PathBuf>,
    /// `--audit-retention-days` / `TRESOR_AUDIT_RETENTION_DAYS`.
    pub audit_retention_days: Option<u64>,
    /// `--no-audit` / `TRESOR_NO_AUDIT`: Some(false) turns the audit log off.
    pub audit_enabled: Option<bool>,
    /// `--audit-sync` / `TRESOR_AUDIT_SYNC`: `batch` or `always` ([`crate::audit::AuditSync`]).
    pub audit_sync: Option<String>,
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure_http: Option<bool>,
    account_id: Option<String>,
    regions: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
    header_read_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    max_connections: Option<usize>,
    writer_nice: Option<i32>,
    rotation_hour_seconds: Option<u64>,
    lambda: Option<LambdaFile>,
    federation: Option<crate::federation::FederationFile>,
    replication: Option<crate::peer::ReplicationFile>,
    audit: Option<AuditFile>,
}

/// The `[audit]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditFile {
    enabled: Option<bool>,
    file: Option<PathBuf>,
    retention_days: Option<u64>,
    sync: Option<String>,
}

/// The `[lambda]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LambdaFile {
    python: Option<String>,
    node: Option<String>,
    max_concurrency: Option<usize>,
    #[serde(default)]
    http: Vec<LambdaHttpFile>,
}

/// One `[[lambda.http]]` entry: a function (by name) or every function of a runtime routed
/// to an HTTP endpoint speaking the Lambda Invoke API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LambdaHttpFile {
    function: Option<String>,
    runtime: Option<String>,
    url: String,
}

/// How Lambda functions run (`[lambda]` in the config file).
#[derive(Clone, Debug)]
pub struct LambdaConfig {
    pub python: String,
    pub node: String,
    pub max_concurrency: usize,
    pub http_routes: Vec<tresor_lambda::HttpRoute>,
}

impl Default for LambdaConfig {
    fn default() -> Self {
        LambdaConfig {
            python: "python3".into(),
            node: "node".into(),
            max_concurrency: tresor_lambda::exec::DEFAULT_MAX_CONCURRENCY,
            http_routes: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The validated configuration the server runs with.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the records live: `Sqlite` (the data directory's file) or a PostgreSQL URL.
    pub store: StoreLocation,
    /// `None` in `--dev` mode: a throwaway store in a temporary directory.
    pub data_dir: Option<PathBuf>,
    pub dev: bool,
    pub tls: Option<TlsFiles>,
    pub account_id: Option<String>,
    pub regions: Vec<String>,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// The writer threads' nice value, 0 (the request workers' priority) to 19
    /// ([`crate::writes`]).
    pub writer_nice: i32,
    pub root_key: Option<String>,
    /// Testing and development only: how many seconds one hour of a Secrets Manager rotation
    /// schedule (`rate(…)`, `AutomaticallyAfterDays`) lasts, so a test can watch a schedule
    /// fire; rotation retry backoff shrinks with it. 3600 (AWS's clock) by default.
    pub rotation_hour_seconds: u64,
    pub lambda: LambdaConfig,
    /// `[federation]`: OpenID Connect issuers' keys.
    pub federation: crate::federation::FederationConfig,
    /// `[replication]`: regions served by peer deployments (see [`crate::peer`]).
    pub replication: crate::peer::ReplicationConfig,
    /// The audit log (`[audit]`): on by default, 90 days, no file.
    pub audit: crate::audit::AuditConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("store", &self.store)
            .field("data_dir", &self.data_dir)
            .field("dev", &self.dev)
            .field("tls", &self.tls)
            .field("account_id", &self.account_id)
            .field("regions", &self.regions.len())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("writer_nice", &self.writer_nice)
            .field("rotation_hour_seconds", &self.rotation_hour_seconds)
            .field("lambda", &self.lambda)
            .field("federation", &self.federation)
            .field("replication", &self.replication)
            .field("audit", &self.audit)
            .field("root_key", &self.root_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn resolve(o: Overrides) -> Result<Config, ConfigError> {
        let file = match &o.config_file {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let listen_text = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::Invalid(format!("listen address '{listen_text}' is not an IP:port"))
        })?;
        let tls = match (o.tls_cert.or(file.tls_cert), o.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_cert and tls_key must be given together".into(),
                ));
            }
        };
        let insecure_http = o.insecure_http.or(file.insecure_http).unwrap_or(false);
        if tls.is_none() && !listen.ip().is_loopback() && !insecure_http {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {listen} without TLS: SigV4 protects request integrity but not \
                 confidentiality, so secret values and new secret access keys would cross the network in \
                 the clear. Give --tls-cert and --tls-key, listen on a loopback address, or pass \
                 --insecure-http if a TLS-terminating proxy sits in front."
            )));
        }
        let account_id = o.account_id.or(file.account_id);
        if let Some(a) = &account_id
            && (a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConfigError::Invalid(format!(
                "account id '{a}' is not 12 digits"
            )));
        }
        let regions = o
            .regions
            .or(file.regions)
            .unwrap_or_else(|| DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect());
        if regions.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one region must be served".into(),
            ));
        }
        for r in &regions {
            let ok = !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(ConfigError::Invalid(format!("'{r}' is not a region name")));
            }
        }
        // One deployment serves one partition, as an AWS account lives in one: its ARNs say
        // which (`aws`, `aws-cn`, `aws-us-gov`).
        let partition = tresor_policy::arn::partition_of_region(&regions[0]);
        if let Some(other) = regions
            .iter()
            .find(|r| tresor_policy::arn::partition_of_region(r) != partition)
        {
            return Err(ConfigError::Invalid(format!(
                "regions {} and {other} are in different partitions ({partition} and {}); one \
                 deployment serves the regions of one partition",
                regions[0],
                tresor_policy::arn::partition_of_region(other)
            )));
        }
        let max_body_bytes = o
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        let secs = |name: &str, v: u64| {
            if v == 0 {
                Err(ConfigError::Invalid(format!(
                    "{name} must be at least 1 second"
                )))
            } else {
                Ok(Duration::from_secs(v))
            }
        };
        let header_read_timeout = secs(
            "header_read_timeout",
            o.header_read_timeout_secs
                .or(file.header_read_timeout)
                .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_SECS),
        )?;
        let idle_timeout = secs(
            "idle_timeout",
            o.idle_timeout_secs
                .or(file.idle_timeout)
                .unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
        )?;
        let max_connections = match o.max_connections.or(file.max_connections) {
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "max_connections must be at least 1".into(),
                ));
            }
            Some(n) => n,
            None => default_max_connections(),
        };
        let writer_nice = o
            .writer_nice
            .or(file.writer_nice)
            .unwrap_or(crate::writes::WRITER_NICE);
        if !(0..=19).contains(&writer_nice) {
            return Err(ConfigError::Invalid(format!(
                "writer_nice must be 0 to 19, not {writer_nice}"
            )));
        }
        let rotation_hour_seconds = o
            .rotation_hour_seconds
            .or(file.rotation_hour_seconds)
            .unwrap_or(DEFAULT_ROTATION_HOUR_SECONDS);
        if !(1..=DEFAULT_ROTATION_HOUR_SECONDS).contains(&rotation_hour_seconds) {
            return Err(ConfigError::Invalid(
                "rotation_hour_seconds must be between 1 and 3600".into(),
            ));
        }
        if rotation_hour_seconds != DEFAULT_ROTATION_HOUR_SECONDS {
            tracing::warn!(
                rotation_hour_seconds,
                "testing knob: rotation schedules run on a shortened clock"
            );
        }
        let lambda = lambda_config(o.lambda_python, o.lambda_node, file.lambda)?;
        let federation = crate::federation::FederationConfig::from_file(file.federation)
            .map_err(ConfigError::Invalid)?;
        let replication =
            crate::peer::replication_config(file.replication).map_err(ConfigError::Invalid)?;
        let audit_file = file.audit.unwrap_or_default();
        let audit = crate::audit::AuditConfig {
            enabled: o.audit_enabled.or(audit_file.enabled).unwrap_or(true),
            file: o.audit_file.or(audit_file.file),
            retention_days: o
                .audit_retention_days
                .or(audit_file.retention_days)
                .unwrap_or(crate::audit::DEFAULT_RETENTION_DAYS),
            sync: match o.audit_sync.or(audit_file.sync) {
                Some(s) => s.parse().map_err(ConfigError::Invalid)?,
                None => crate::audit::AuditSync::default(),
            },
        };
        if audit.retention_days == 0 {
            return Err(ConfigError::Invalid(
                "audit retention_days must be at least 1".into(),
            ));
        }
        let data_dir = if o.dev {
            None
        } else {
            Some(
                o.data_dir
                    .or(file.data_dir)
                    .unwrap_or_else(default_data_dir),
            )
        };
        let store = match o.store.or(file.store).as_deref() {
            None | Some("") | Some("sqlite") => StoreLocation::Sqlite,
            Some(url) if tresor_store::is_postgres_url(url) => {
                if o.dev {
                    return Err(ConfigError::Invalid(
                        "--dev runs on a throwaway SQLite store; it cannot use --store".into(),
                    ));
                }
                StoreLocation::Postgres(url.to_string())
            }
            Some(_) => {
                return Err(ConfigError::Invalid(
                    "store must be \"sqlite\" or a postgres:// URL".into(),
                ));
            }
        };
        Ok(Config {
            listen,
            store,
            data_dir,
            dev: o.dev,
            tls,
            account_id,
            regions,
            max_body_bytes,
            header_read_timeout,
            idle_timeout,
            max_connections,
            writer_nice,
            root_key: o.root_key,
            rotation_hour_seconds,
            lambda,
            federation,
            replication,
            audit,
        })
    }
}

fn lambda_config(
    python: Option<String>,
    node: Option<String>,
    file: Option<LambdaFile>,
) -> Result<LambdaConfig, ConfigError> {
    let file = file.unwrap_or_default();
    let defaults = LambdaConfig::default();
    let max_concurrency = file.max_concurrency.unwrap_or(defaults.max_concurrency);
    if max_concurrency == 0 {
        return Err(ConfigError::Invalid(
            "lambda.max_concurrency must be at least 1".into(),
        ));
    }
    let mut http_routes = Vec::new();
    for route in file.http {
        if route.function.is_some() == route.runtime.is_some() {
            return Err(ConfigError::Invalid(
                "each [[lambda.http]] entry names either a function or a runtime".into(),
            ));
        }
        if !route.url.starts_with("http://") && !route.url.starts_with("https://") {
            return Err(ConfigError::Invalid(format!(
                "lambda.http url '{}' is not an http:// or https:// URL",
                route.url
            )));
        }
        http_routes.push(tresor_lambda::HttpRoute {
            function: route.function,
            runtime: route.runtime,
            url: route.url,
        });
    }
    Ok(LambdaConfig {
        python: python.or(file.python).unwrap_or(defaults.python),
        node: node.or(file.node).unwrap_or(defaults.node),
        max_concurrency,
        http_routes,
    })
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// [`DEFAULT_MAX_CONNECTIONS`], lowered to fit the soft open-file limit (less a reserve for
/// the store and everything else), so that the cap is reached before `accept` starts failing.
pub fn default_max_connections() -> usize {
    match open_file_limit() {
        Some(limit) => DEFAULT_MAX_CONNECTIONS.min(limit.saturating_sub(RESERVED_FDS).max(16)),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux); `None` elsewhere or unlimited.
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `$XDG_DATA_HOME/tresor`, else `~/.local/share/tresor`, else `./tresor-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join(DEFAULT_DATA_DIR_NAME);
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h)
            .join(".local/share")
            .join(DEFAULT_DATA_DIR_NAME);
    }
    PathBuf::from("tresor-data")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::NamedTempFile, PathBuf) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        let p = f.path().to_path_buf();
        (f, p)
    }

    #[test]
    fn the_lambda_table_routes_functions_and_is_checked() {
        let (_f, p) = file(
            "[lambda]\npython = \"/opt/py/bin/python3\"\nmax_concurrency = 3\n\
             [[lambda.http]]\nfunction = \"rotate\"\nurl = \"http://127.0.0.1:9000\"\n\
             [[lambda.http]]\nruntime = \"nodejs20.x\"\nurl = \"http://127.0.0.1:9001\"\n",
        );
        let c = Config::resolve(Overrides {
            config_file: Some(p),
            lambda_node: Some("/usr/bin/node".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.lambda.python, "/opt/py/bin/python3");
        assert_eq!(c.lambda.node, "/usr/bin/node");
        assert_eq!(c.lambda.max_concurrency, 3);
        assert_eq!(c.lambda.http_routes.len(), 2);
        assert_eq!(c.lambda.http_routes[0].function.as_deref(), Some("rotate"));
        assert_eq!(
            c.lambda.http_routes[1].runtime.as_deref(),
            Some("nodejs20.x")
        );
        let defaults = Config::resolve(Overrides::default()).unwrap();
        assert_eq!(defaults.lambda.python, "python3");
        assert_eq!(defaults.lambda.max_concurrency, 10);
        for bad in [
            "[lambda]\nmax_concurrency = 0\n",
            "[[lambda.http]]\nurl = \"http://x\"\n",
            "[[lambda.http]]\nfunction = \"f\"\nruntime = \"python3.12\"\nurl = \"http://x\"\n",
            "[[lambda.http]]\nfunction = \"f\"\nurl = \"ftp://x\"\n",
            "[lambda]\npyhton = \"x\"\n",
        ] {
            let (_f, p) = file(bad);
            assert!(
                Config::resolve(Overrides {
                    config_file: Some(p),
                    ..Default::default()
                })
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_audit_table_is_read_and_checked() {
        let c = Config::resolve(Overrides::default()).unwrap();
        assert!(c.audit.enabled);
        assert_eq!(c.audit.retention_days, 90);
        assert!(c.audit.file.is_none());
        let (_f, p) = file("[audit]\nfile = \"/var/log/tresor.jsonl\"\nretention_days = 7\n");
        let c = Config::resolve(Overrides {
            config_file: Some(p),
            audit_retention_days: Some(30),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.audit.file.as_deref(),
            Some(Path::new("/var/log/tresor.jsonl"))
        );
        assert_eq!(c.audit.retention_days, 30);
        assert_eq!(c.audit.sync, crate::audit::AuditSync::Batch);
        let (_f, p) = file("[audit]\nsync = \"always\"\n");
        let c = Config::resolve(Overrides {
            config_file: Some(p),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.audit.sync, crate::audit::AuditSync::Always);
        let c = Config::resolve(Overrides {
            audit_sync: Some("batch".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.audit.sync, crate::audit::AuditSync::Batch);
        for bad in [
            "[audit]\nretention_days = 0\n",
            "[audit]\nfiles = \"x\"\n",
            "[audit]\nsync = \"never\"\n",
        ] {
            let (_f, p) = file(bad);
            assert!(
                Config::resolve(Overrides {
                    config_file: Some(p),
                    ..Default::default()
                })
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn defaults_just_work() {
        let c = Config::resolve(Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.regions.iter().any(|r| r == "us-east-1"));
        assert!(c.tls.is_none());
        assert!(c.data_dir.is_some());
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let (_f, p) = file(
            "listen = \"127.0.0.1:9000\"\nregions = [\"eu-west-1\"]\naccount_id = \"111122223333\"\n",
        );
        let c = Config::resolve(Overrides {
            config_file: Some(p.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.regions, vec!["eu-west-1"]);
        let c = Config::resolve(Overrides {
            config_file: Some(p),
            listen: Some("127.0.0.1:9100".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.account_id.as_deref(), Some("111122223333"));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let (_f, p) = file("listn = \"127.0.0.1:9000\"\n");
        let e = Config::resolve(Overrides {
            config_file: Some(p),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("listn"), "{e}");
    }

    #[test]
    fn non_loopback_without_tls_is_refused_with_a_reason() {
        let e = Config::resolve(Overrides {
            listen: Some("0.0.0.0:4566".into()),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("without TLS"), "{e}");
        assert!(e.to_string().contains("--insecure-http"), "{e}");
        let ok = Config::resolve(Overrides {
            listen: Some("0.0.0.0:4566".into()),
            insecure_http: Some(true),
            ..Default::default()
        });
        assert!(ok.is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        for o in [
            Overrides {
                account_id: Some("12345".into()),
                ..Default::default()
            },
            Overrides {
                listen: Some("localhost".into()),
                ..Default::default()
            },
            Overrides {
                regions: Some(vec![]),
                ..Default::default()
            },
            Overrides {
                regions: Some(vec!["US East".into()]),
                ..Default::default()
            },
            Overrides {
                tls_cert: Some("c.pem".into()),
                ..Default::default()
            },
        ] {
            assert!(Config::resolve(o).is_err());
        }
    }

    #[test]
    fn connection_limits_have_defaults_and_are_configurable() {
        let c = Config::resolve(Overrides::default()).unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert!(c.max_connections >= 16 && c.max_connections <= DEFAULT_MAX_CONNECTIONS);
        let (_f, p) = file("header_read_timeout = 3\nidle_timeout = 7\nmax_connections = 50\n");
        let c = Config::resolve(Overrides {
            config_file: Some(p),
            idle_timeout_secs: Some(9),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(3));
        assert_eq!(c.idle_timeout, Duration::from_secs(9));
        assert_eq!(c.max_connections, 50);
        for o in [
            Overrides {
                max_connections: Some(0),
                ..Default::default()
            },
            Overrides {
                writer_nice: Some(20),
                ..Default::default()
            },
            Overrides {
                writer_nice: Some(-1),
                ..Default::default()
            },
            Overrides {
                header_read_timeout_secs: Some(0),
                ..Default::default()
            },
        ] {
            assert!(Config::resolve(o).is_err());
        }
    }

    #[test]
    fn the_writer_priority_defaults_to_nice_10_and_the_flag_wins_over_the_file() {
        assert_eq!(
            Config::resolve(Overrides::default()).unwrap().writer_nice,
            10
        );
        let (_f, p) = file("writer_nice = 0\n");
        let from_file = Config::resolve(Overrides {
            config_file: Some(p.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_file.writer_nice, 0);
        let flag = Config::resolve(Overrides {
            config_file: Some(p),
            writer_nice: Some(19),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(flag.writer_nice, 19);
    }

    #[test]
    fn the_rotation_clock_knob_defaults_to_real_hours_and_is_bounded() {
        let c = Config::resolve(Overrides::default()).unwrap();
        assert_eq!(c.rotation_hour_seconds, 3600);
        let (_f, p) = file("rotation_hour_seconds = 2\n");
        let c = Config::resolve(Overrides {
            config_file: Some(p),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.rotation_hour_seconds, 2);
        for bad in [0, 3601] {
            assert!(
                Config::resolve(Overrides {
                    rotation_hour_seconds: Some(bad),
                    ..Default::default()
                })
                .is_err()
            );
        }
    }

    #[test]
    fn debug_output_redacts_the_root_key() {
        let c = Config::resolve(Overrides {
            root_key: Some("00".repeat(32)),
            ..Default::default()
        })
        .unwrap();
        assert!(!format!("{c:?}").contains(&"00".repeat(32)));
    }
}
