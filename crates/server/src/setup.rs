//! Opening a deployment: the data directory (created private, locked against a second
//! process), the root key (never created for an existing store, checked against the store),
//! the store, first-start identity and the AWS CLI profile written for the administrator;
//! and `tresor admin new-key`, which recovers a lost administrator profile.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use time::OffsetDateTime;
use tresor_core::{ServiceError, Services};
use tresor_crypto::{ROOT_KEY_FILE, RootKey};
use tresor_iam::bootstrap::{self, AdminCredentials, BootstrapOptions, NewKeyError};
use tresor_iam::identity::{AccessKeyRecord, secret_aad};
use tresor_store::{SqliteOptions, SqliteStore, Store, StoreError};

use crate::ServerError;
use crate::config::Config;

pub const DB_FILE: &str = "tresor.db";
/// The audit log's records of requests that changed nothing (reads, denials).
pub const AUDIT_DB_FILE: &str = "audit.db";
/// The page size of a new `audit.db`.
const AUDIT_DB_PAGE_SIZE: u32 = 16384;
pub const CREDENTIALS_FILE: &str = "credentials";
pub const AWS_CONFIG_FILE: &str = "config";
pub const PROFILE: &str = "tresor";

/// The lock file in the data directory: held (`flock`) by the one process that serves it, and
/// holding that process's id for the message another process gets.
pub const LOCK_FILE: &str = "tresor.lock";
/// The key-check value: a known constant sealed under the root key when the store is created,
/// so that a start with a different root key is refused instead of serving errors.
pub const KEY_CHECK: &str = "sys/rootkey-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"tresor root key check v1";
const KEY_CHECK_AAD: &[u8] = b"tresor/rootkey-check";

/// A data directory this process holds exclusively, until dropped.
pub struct DataDir {
    pub path: PathBuf,
    pub dev: bool,
    _lock: std::fs::File,
    /// Keeps the `--dev` throwaway directory alive; removed on drop.
    _temp: Option<tempfile::TempDir>,
}

/// An opened deployment.
pub struct Deployment {
    pub services: Arc<Services>,
    pub account: String,
    pub admin_arn: String,
    pub data_dir: PathBuf,
    pub store_description: String,
    pub dev: bool,
    /// Whether this start created the account and administrator.
    pub created: bool,
    pub regions: Vec<String>,
    /// Whether the administrator's `credentials` file was missing (a later start).
    profile_missing: bool,
    /// Whether the store is shared by several nodes (PostgreSQL): the audit log's records of
    /// reads then go into it too, so that every node's LookupEvents sees every node's reads.
    shared_store: bool,
    /// The exclusive hold on the data directory; released when the deployment is dropped.
    _dir: DataDir,
}

/// What the start-up log and banner say.
#[derive(Clone, Debug)]
pub struct StartupReport {
    pub endpoint: String,
    pub account: String,
    pub admin_arn: String,
    pub store: String,
    pub regions: Vec<String>,
    pub dev: bool,
    pub created: bool,
    pub credentials_file: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    /// A later start found no administrator `credentials` file: say how to issue a new key.
    pub profile_missing: bool,
    pub data_dir: PathBuf,
}

impl StartupReport {
    /// The exact command that proves the generated profile works.
    pub fn try_it_command(&self) -> String {
        match (&self.credentials_file, &self.config_file) {
            (Some(c), Some(f)) => format!(
                "AWS_SHARED_CREDENTIALS_FILE={} AWS_CONFIG_FILE={} AWS_PROFILE={PROFILE} aws --endpoint-url {} sts get-caller-identity",
                c.display(),
                f.display(),
                self.endpoint
            ),
            _ => format!(
                "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 aws --endpoint-url {} sts get-caller-identity",
                self.endpoint
            ),
        }
    }

    /// How to recover a lost administrator profile.
    pub fn recovery_command(&self) -> String {
        new_key_command(&self.data_dir)
    }
}

/// The command that issues the administrator a new access key on a stopped server.
pub fn new_key_command(data_dir: &Path) -> String {
    format!("tresor admin new-key --data-dir {}", data_dir.display())
}

impl Deployment {
    /// The files that hold the store and the audit log (for their size in the metrics).
    pub fn store_files(&self) -> Vec<PathBuf> {
        [DB_FILE, AUDIT_DB_FILE]
            .iter()
            .flat_map(|f| {
                [
                    self.data_dir.join(f),
                    self.data_dir.join(format!("{f}-wal")),
                ]
            })
            .collect()
    }

    /// The store that gets the audit log's records of requests that changed nothing (see
    /// [`tresor_core::audit::AuditLogStore`]): on a single node, a SQLite database of its own
    /// (`audit.db`, apart from the main store); on a shared store (PostgreSQL, several nodes)
    /// the shared store itself, so that LookupEvents and `ListSecretReaders` on any node see
    /// the reads served by every node, once the node that served them has indexed its
    /// segment (in the background, within about a second; see [`crate::audit::segment`]).
    pub fn open_audit_log(&self) -> Result<Arc<dyn Store>, ServerError> {
        if self.shared_store {
            return Ok(self.services.store().clone());
        }
        let path = self.data_dir.join(AUDIT_DB_FILE);
        // 16 KiB pages: a read's record (about 2 KB) stays in the B-tree's leaf pages; with
        // SQLite's 4 KiB default every record over about 1 KB takes an overflow page of its
        // own, which each commit writes to the WAL (and each checkpoint to the database).
        // Its own rowid table for the values: the indexer stores records many to an entry
        // (chunks of up to ~100 KiB), which the key-clustered layout would read whole at
        // every comparison on the way to a key.
        let options = SqliteOptions {
            page_size: Some(AUDIT_DB_PAGE_SIZE),
            large_values: true,
            // Appended to all the time and seldom read: a map would keep its first 16 MiB
            // resident.
            memory_map: false,
            ..SqliteOptions::default()
        };
        SqliteStore::open_with(&path, options)
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|e| ServerError::Setup(format!("audit log {}: {e}", path.display())))
    }

    /// Writes the AWS CLI `config` file of the administrator's profile on every start, so
    /// that its `endpoint_url` follows the address this start listens on (the `credentials`
    /// file was written before the first start's commit).
    pub fn write_profile(&mut self, addr: SocketAddr, tls: bool) -> Result<(), ServerError> {
        if self.dev {
            return Ok(());
        }
        write_aws_config(&self.data_dir, &endpoint_url(addr, tls), &self.regions)
    }

    pub fn report(&self, addr: SocketAddr, tls: bool) -> StartupReport {
        let (credentials_file, config_file) = if self.dev {
            (None, None)
        } else {
            (
                Some(self.data_dir.join(CREDENTIALS_FILE)),
                Some(self.data_dir.join(AWS_CONFIG_FILE)),
            )
        };
        StartupReport {
            endpoint: endpoint_url(addr, tls),
            account: self.account.clone(),
            admin_arn: self.admin_arn.clone(),
            store: self.store_description.clone(),
            regions: self.regions.clone(),
            dev: self.dev,
            created: self.created,
            credentials_file,
            config_file,
            profile_missing: self.profile_missing,
            data_dir: self.data_dir.clone(),
        }
    }
}

/// Creates (or tightens) the data directory and takes the exclusive lock on it: the first
/// step of a start, before anything else is created.
pub fn prepare(config: &Config) -> Result<DataDir, ServerError> {
    let (path, temp) = match &config.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("tresor-dev-")
                .tempdir()
                .map_err(|e| {
                    ServerError::Setup(format!("cannot create a temporary directory: {e}"))
                })?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    create_private_dir(&path)?;
    let lock = lock_data_dir(&path)?;
    Ok(DataDir {
        path,
        dev: config.dev,
        _lock: lock,
        _temp: temp,
    })
}

/// Opens the store in a prepared data directory and runs first-start set-up.
pub fn open(dir: DataDir, config: &Config) -> Result<Deployment, ServerError> {
    // The node's identity for job leases: kept in the data directory, which one process
    // holds at a time, so a restarted node resumes its own interrupted jobs at once.
    let node_file = dir.path.join("node-id");
    let node_id = match std::fs::read_to_string(&node_file) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => {
            let id = tresor_crypto::ids::uuid_v4();
            let write = || -> std::io::Result<()> {
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&node_file)?;
                f.write_all(id.as_bytes())?;
                f.sync_all()
            };
            write().map_err(|e| {
                ServerError::Setup(format!("cannot write {}: {e}", node_file.display()))
            })?;
            id
        }
    };
    tresor_core::lease::set_node_id(&node_id);
    let (store, root) = open_store(&dir.path, config, true)?;
    let now = OffsetDateTime::now_utc();
    // The administrator's secret is written (staged) before the account commits, so a
    // crash can never leave an administrator whose secret exists nowhere.
    let staged = staged_credentials(&dir.path);
    let boot = bootstrap::ensure(
        &store,
        &root,
        &BootstrapOptions {
            account_id: config.account_id.clone(),
            dev: config.dev,
        },
        now,
        &mut |admin| stage_credentials(&staged, admin),
    )
    .map_err(|e| {
        let _ = std::fs::remove_file(&staged);
        ServerError::Setup(format!("first-start set-up: {e}"))
    })?;
    let created = boot.admin.is_some();
    // This start's staged file, or one a crash left between the commit and the rename (its
    // key is in the store: a staged file of an uncommitted start is replaced above).
    if !config.dev && (created || !dir.path.join(CREDENTIALS_FILE).is_file()) && staged.is_file() {
        promote_staged_credentials(&dir.path).map_err(|e| {
            ServerError::Setup(format!(
                "moving {} into place failed: {e}",
                staged.display()
            ))
        })?;
    }
    if let Some(account) = &config.account_id
        && account != &boot.account
    {
        return Err(ServerError::Setup(format!(
            "--account-id {account} differs from this data directory's account {}",
            boot.account
        )));
    }
    let profile_missing = !config.dev && !created && !dir.path.join(CREDENTIALS_FILE).is_file();
    Ok(Deployment {
        services: Arc::new(Services::new(
            store.clone(),
            Arc::new(root),
            Arc::new(tresor_iam::IamDirectory),
        )),
        account: boot.account,
        admin_arn: boot.admin_arn,
        store_description: store.describe(),
        data_dir: dir.path.clone(),
        dev: config.dev,
        created,
        regions: config.regions.clone(),
        profile_missing,
        shared_store: matches!(config.store, crate::config::StoreLocation::Postgres(_)),
        _dir: dir,
    })
}

/// Plugs Lambda in: functions run with their package unpacked under `<data dir>/lambda`
/// (0700) and reach tresor back at the address the listener is bound to.
pub fn install_lambda(
    deployment: &Deployment,
    config: &Config,
    addr: SocketAddr,
    tls: bool,
) -> Result<(), ServerError> {
    let lambda = &config.lambda;
    tresor_lambda::install(
        &deployment.services,
        tresor_lambda::ExecutorConfig {
            python: lambda.python.clone(),
            node: lambda.node.clone(),
            work_dir: deployment.data_dir.join("lambda"),
            endpoint: endpoint_url(addr, tls),
            max_concurrency: lambda.max_concurrency,
            ca_bundle: config.tls.as_ref().map(|t| t.cert.clone()),
            http_routes: lambda.http_routes.clone(),
        },
    )
    .map_err(|e| ServerError::Setup(format!("cannot create the Lambda work directory: {e}")))
}

/// The root key and the store of a locked data directory. The root key is never created for
/// a directory that already has a store, and a key that does not open the store's key-check
/// value is refused. `may_create`: whether a missing store may be created.
fn open_store(
    dir: &Path,
    config: &Config,
    may_create: bool,
) -> Result<(Arc<dyn Store>, RootKey), ServerError> {
    if let crate::config::StoreLocation::Postgres(url) = &config.store {
        return open_postgres_store(dir, config, url);
    }
    let db_path = dir.join(DB_FILE);
    let existing = match std::fs::metadata(&db_path) {
        Ok(m) if m.len() == 0 => {
            return Err(ServerError::Setup(format!(
                "{} is empty (0 bytes): it is not a tresor store, and tresor does not start a new \
                 deployment over it (was a copy or restore interrupted?). Restore the file, or \
                 remove it to start a new deployment.",
                db_path.display()
            )));
        }
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(ServerError::Setup(format!(
                "store {}: {e}",
                db_path.display()
            )));
        }
    };
    if !existing && !may_create {
        return Err(ServerError::Setup(format!(
            "{} has no store ({DB_FILE}): start `tresor serve` on it first",
            dir.display()
        )));
    }
    let root = match &config.root_key {
        Some(encoded) => RootKey::from_encoded(encoded)
            .map_err(|e| ServerError::Setup(format!("TRESOR_ROOT_KEY: {e}")))?,
        None if existing => RootKey::load_existing(dir)
            .map_err(|e| ServerError::Setup(format!("root key in {}: {e}", dir.display())))?
            .ok_or_else(|| {
                ServerError::Setup(format!(
                    "{} holds a store but no root key ({ROOT_KEY_FILE}): everything in the store \
                     is sealed under that key, so tresor will not create a new one. Restore \
                     {ROOT_KEY_FILE} from your backup, or give the key in TRESOR_ROOT_KEY.",
                    dir.display()
                ))
            })?,
        None => {
            RootKey::load_or_create(dir)
                .map_err(|e| ServerError::Setup(format!("root key in {}: {e}", dir.display())))?
                .0
        }
    };
    // A new store keeps its values apart from its keys: the audit records that go into the
    // transaction of each write (about 2 KB) spill out of a 4 KiB page's share of a cell,
    // and in the key-clustered layout SQLite read those whole at every comparison on the way
    // to a key (measured: ~150,000 instructions of a PutParameter's ~750,000). An existing
    // store keeps its layout (both work with the same statements).
    let options = SqliteOptions {
        large_values: true,
        // No memory map: in WAL mode SQLite drops a connection's map (and its page cache)
        // whenever a commit came between two of its read transactions, so under writes
        // every read unmapped and remapped the file and faulted its pages in again (measured
        // under 16 writers: 17 % more reads and 25 % more writes a second without it; reads
        // alone no slower).
        memory_map: false,
        ..SqliteOptions::default()
    };
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open_with(&db_path, options)
            .map_err(|e| ServerError::Setup(format!("store {}: {e}", db_path.display())))?,
    );
    if let Err(e) = check_root_key(&store, &root) {
        let _ = store.close();
        let source = if config.root_key.is_some() {
            "TRESOR_ROOT_KEY".to_string()
        } else {
            dir.join(ROOT_KEY_FILE).display().to_string()
        };
        return Err(match e {
            KeyCheck::Wrong => ServerError::Setup(format!(
                "the root key ({source}) does not open the store {}: it is not the key this \
                 store was created with. Restore the right {ROOT_KEY_FILE} or TRESOR_ROOT_KEY.",
                db_path.display()
            )),
            KeyCheck::Store(m) => ServerError::Setup(format!("store {}: {m}", db_path.display())),
        });
    }
    Ok((store, root))
}

enum KeyCheck {
    Wrong,
    Store(String),
}

/// The shared PostgreSQL store and the root key every node must share. The first node of a
/// new database creates the key in its data directory (or takes `TRESOR_ROOT_KEY`); a node
/// joining a database that already holds a deployment must be given the same key, and is
/// refused otherwise (the key check below).
fn open_postgres_store(
    dir: &Path,
    config: &Config,
    url: &str,
) -> Result<(Arc<dyn Store>, RootKey), ServerError> {
    let pg = tresor_store::PostgresStore::open(url)
        .map_err(|e| ServerError::Setup(format!("store {}: {e}", redacted_url(url))))?;
    let description = pg.describe();
    let store: Arc<dyn Store> = Arc::new(pg);
    let existing = {
        let storage = |e: StoreError| ServerError::Setup(format!("store {description}: {e}"));
        let txn = store.begin_read().map_err(storage)?;
        txn.get(KEY_CHECK).map_err(storage)?.is_some()
            || !txn
                .scan("sys/accesskey/", None, 1)
                .map_err(storage)?
                .is_empty()
    };
    let root = match &config.root_key {
        Some(encoded) => RootKey::from_encoded(encoded)
            .map_err(|e| ServerError::Setup(format!("TRESOR_ROOT_KEY: {e}")))?,
        None if existing => RootKey::load_existing(dir)
            .map_err(|e| ServerError::Setup(format!("root key in {}: {e}", dir.display())))?
            .ok_or_else(|| {
                ServerError::Setup(format!(
                    "the database {description} already holds a deployment, and this node has no root key: every node of a deployment needs the same root \
                     key. Copy {ROOT_KEY_FILE} from the first node's data directory into {} (mode 0600), \
                     or give the key in TRESOR_ROOT_KEY.",
                    dir.display()
                ))
            })?,
        None => {
            RootKey::load_or_create(dir)
                .map_err(|e| ServerError::Setup(format!("root key in {}: {e}", dir.display())))?
                .0
        }
    };
    if let Err(e) = check_root_key(&store, &root) {
        let _ = store.close();
        return Err(match e {
            KeyCheck::Wrong => ServerError::Setup(format!(
                "the root key does not open the store {description}: it is not the key this \
                 deployment was created with. Every node needs the first node's \
                 {ROOT_KEY_FILE} or TRESOR_ROOT_KEY."
            )),
            KeyCheck::Store(m) => ServerError::Setup(format!("store {description}: {m}")),
        });
    }
    Ok((store, root))
}

/// A database URL without its password (or anything after the path).
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[invalid URL]".into();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => rest.to_string(),
    };
    format!("{scheme}://{rest}")
}

/// Verifies the root key against the store's key-check value, writing that value into a new
/// store. A store created before the value existed is checked against its first access key's
/// sealed secret instead, then given the value.
fn check_root_key(store: &Arc<dyn Store>, root: &RootKey) -> Result<(), KeyCheck> {
    let storage = |e: tresor_store::StoreError| KeyCheck::Store(e.to_string());
    let mut txn = store.begin_write().map_err(storage)?;
    if let Some(sealed) = txn.get(KEY_CHECK).map_err(storage)? {
        return match root.open(&sealed, KEY_CHECK_AAD) {
            Ok(p) if p.as_slice() == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(KeyCheck::Wrong),
        };
    }
    let keys = txn.scan("sys/accesskey/", None, 1).map_err(storage)?;
    if let Some((key, value)) = keys.first() {
        let id = key.trim_start_matches("sys/accesskey/");
        let record: AccessKeyRecord = serde_json::from_slice(value)
            .map_err(|e| KeyCheck::Store(format!("record {key}: {e}")))?;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&record.secret_sealed)
            .map_err(|e| KeyCheck::Store(format!("record {key}: {e}")))?;
        if root.open(&sealed, &secret_aad(id)).is_err() {
            return Err(KeyCheck::Wrong);
        }
    }
    let sealed = root
        .seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)
        .map_err(|e| KeyCheck::Store(e.to_string()))?;
    txn.put(KEY_CHECK, &sealed).map_err(storage)?;
    txn.commit().map_err(storage)
}

/// Takes the exclusive lock on `dir` and records this process's id in the lock file, or
/// says which process holds it.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, ServerError> {
    use std::io::{Read, Seek};
    let path = dir.join(LOCK_FILE);
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(&path)
        .map_err(|e| ServerError::Setup(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if !holder.is_empty() && holder.bytes().all(|b| b.is_ascii_digit()) {
                format!("another tresor process (PID {holder})")
            } else {
                "another tresor process".to_string()
            };
            return Err(ServerError::Setup(format!(
                "data directory {} is in use by {who}; stop it first (one process per data \
                 directory)",
                dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(ServerError::Setup(format!(
                "cannot lock {}: {e}",
                path.display()
            )));
        }
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(|e| ServerError::Setup(format!("cannot write {}: {e}", path.display())))?;
    Ok(file)
}

fn create_private_dir(dir: &Path) -> Result<(), ServerError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| {
        ServerError::Setup(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .map_err(|e| ServerError::Setup(format!("data directory {}: {e}", dir.display())))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                ServerError::Setup(format!(
                    "data directory {} is accessible by group or others (mode {mode:03o}) \
                         and cannot be restricted: {e}",
                    dir.display()
                ))
            })?;
            tracing::warn!(
                "data directory {} was accessible by group or others (mode {mode:03o}); \
                 restricted it to 0700",
                dir.display()
            );
        }
    }
    Ok(())
}

/// What `tresor admin new-key` did.
#[derive(Debug)]
pub struct NewKey {
    pub access_key_id: String,
    pub admin_arn: String,
    pub credentials_file: PathBuf,
    pub config_file: PathBuf,
    pub revoked: Vec<String>,
}

/// Issues the administrator a new access key directly on a stopped server's data directory
/// (the lock proves it is stopped) and writes it to the `credentials` file, replacing the
/// one there. `revoke_existing` deletes the administrator's other access keys in the same
/// transaction; without it, an administrator who already has IAM's maximum of two keys is
/// refused.
pub fn admin_new_key(config: &Config, revoke_existing: bool) -> Result<NewKey, ServerError> {
    if config.dev {
        return Err(ServerError::Setup(
            "--dev stores are throwaway; there is no administrator to recover".into(),
        ));
    }
    let dir = prepare(config)?;
    let (store, root) = open_store(&dir.path, config, false)?;
    let result = issue_admin_key(&store, &root, &dir.path, config, revoke_existing);
    let _ = store.close();
    result
}

fn issue_admin_key(
    store: &Arc<dyn Store>,
    root: &RootKey,
    dir: &Path,
    config: &Config,
    revoke_existing: bool,
) -> Result<NewKey, ServerError> {
    // The new credentials file is staged before the commit and moved into place after it:
    // a failed write leaves the store unchanged, a failed commit leaves the old file.
    let staged = staged_credentials(dir);
    let issued = bootstrap::new_admin_key(
        store,
        root,
        revoke_existing,
        OffsetDateTime::now_utc(),
        &mut |admin| stage_credentials(&staged, admin),
    );
    let issued = match issued {
        Ok(issued) => issued,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(match e {
                NewKeyError::NoDeployment => ServerError::Setup(format!(
                    "{} has no deployment yet: start `tresor serve` on it first",
                    dir.display()
                )),
                other => ServerError::Setup(other.to_string()),
            });
        }
    };
    let access_key_id = issued.credentials.access_key_id.clone();
    let credentials_file = promote_staged_credentials(dir).map_err(|e| {
        ServerError::Setup(format!(
            "the key {access_key_id} was issued, but moving {} into place failed: {e}",
            staged.display(),
        ))
    })?;
    let config_file = dir.join(AWS_CONFIG_FILE);
    write_aws_config(
        dir,
        &endpoint_url(config.listen, config.tls.is_some()),
        &config.regions,
    )?;
    Ok(NewKey {
        access_key_id,
        admin_arn: issued.admin_arn,
        credentials_file,
        config_file,
        revoked: issued.revoked,
    })
}

/// Where a new administrator secret is written before the transaction that creates it
/// commits.
fn staged_credentials(dir: &Path) -> PathBuf {
    dir.join(format!(".{CREDENTIALS_FILE}.new"))
}

/// Writes the staged `credentials` file (mode 0600); an error aborts the transaction.
fn stage_credentials(staged: &Path, admin: &AdminCredentials) -> Result<(), ServiceError> {
    write_private_io(
        staged,
        credentials_text(&admin.access_key_id, admin.secret_access_key.expose()).as_bytes(),
    )
    .map_err(|source| {
        ServiceError::Store(StoreError::Io {
            path: staged.to_path_buf(),
            source,
        })
    })
}

/// Moves the staged `credentials` file into place (after its commit).
fn promote_staged_credentials(dir: &Path) -> std::io::Result<PathBuf> {
    let credentials_file = dir.join(CREDENTIALS_FILE);
    std::fs::rename(staged_credentials(dir), &credentials_file)?;
    Ok(credentials_file)
}

fn credentials_text(access_key_id: &str, secret: &str) -> String {
    format!("[{PROFILE}]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n")
}

/// Writes the AWS CLI `config` file for the `tresor` profile (mode 0600), unless it already
/// says exactly this.
fn write_aws_config(dir: &Path, endpoint: &str, regions: &[String]) -> Result<(), ServerError> {
    let region = if regions.iter().any(|r| r == "us-east-1") {
        "us-east-1"
    } else {
        regions.first().map(String::as_str).unwrap_or("us-east-1")
    };
    let aws_config = format!("[profile {PROFILE}]\nregion = {region}\nendpoint_url = {endpoint}\n");
    let path = dir.join(AWS_CONFIG_FILE);
    if std::fs::read(&path).is_ok_and(|old| old == aws_config.as_bytes()) {
        return Ok(());
    }
    write_private(&path, aws_config.as_bytes())
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), ServerError> {
    write_private_io(path, contents)
        .map_err(|e| ServerError::Setup(format!("cannot write {}: {e}", path.display())))
}

/// Writes `contents` to a new mode-0600 file and syncs it to disk.
fn write_private_io(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// The URL clients use: an unspecified listen address (0.0.0.0) is reached via loopback.
pub fn endpoint_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn check_value(store: &Arc<dyn Store>) -> Option<Vec<u8>> {
        store.begin_read().unwrap().get(KEY_CHECK).unwrap()
    }

    fn store_in(dir: &Path) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&dir.join(DB_FILE)).unwrap())
    }

    #[test]
    fn a_store_from_before_the_key_check_is_checked_against_its_access_keys() {
        let dir = tempfile::tempdir().unwrap();
        let right = RootKey::from_bytes(&[1; 32]).unwrap();
        let wrong = RootKey::from_bytes(&[2; 32]).unwrap();
        let store = store_in(dir.path());
        let opts = BootstrapOptions {
            account_id: None,
            dev: false,
        };
        bootstrap::ensure(
            &store,
            &right,
            &opts,
            OffsetDateTime::now_utc(),
            &mut |_| Ok(()),
        )
        .unwrap();
        // No key-check value yet, as in a store created by an earlier build.
        assert!(check_value(&store).is_none());
        assert!(matches!(
            check_root_key(&store, &wrong),
            Err(KeyCheck::Wrong)
        ));
        assert!(check_value(&store).is_none(), "a wrong key was pinned");
        assert!(check_root_key(&store, &right).is_ok());
        assert!(check_value(&store).is_some());
        assert!(matches!(
            check_root_key(&store, &wrong),
            Err(KeyCheck::Wrong)
        ));
        assert!(check_root_key(&store, &right).is_ok());
    }

    #[test]
    fn a_new_store_is_pinned_to_its_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let first = RootKey::from_bytes(&[3; 32]).unwrap();
        assert!(check_root_key(&store, &first).is_ok());
        let other = RootKey::from_bytes(&[4; 32]).unwrap();
        assert!(matches!(
            check_root_key(&store, &other),
            Err(KeyCheck::Wrong)
        ));
    }
}

/// What `tresor migrate` copied.
#[derive(Debug)]
pub struct Migrated {
    pub records: usize,
    pub database: String,
}

/// Copies the SQLite store of the stopped deployment in `data_dir` into the PostgreSQL
/// database at `url`: every key with its value as stored (sealed values stay sealed under the
/// same root key, so the PostgreSQL nodes need that deployment's root key). The target must
/// hold no records yet; the copy is one transaction, so a failure leaves it empty. The read
/// audit log (`audit.db`) stays where it is.
pub fn migrate_to_postgres(data_dir: &Path, url: &str) -> Result<Migrated, ServerError> {
    let _lock = lock_data_dir(data_dir)?;
    let db_path = data_dir.join(DB_FILE);
    if !db_path.is_file() {
        return Err(ServerError::Setup(format!(
            "{} has no store ({DB_FILE})",
            data_dir.display()
        )));
    }
    let source = SqliteStore::open(&db_path)
        .map_err(|e| ServerError::Setup(format!("store {}: {e}", db_path.display())))?;
    let target = tresor_store::PostgresStore::open_with(
        url,
        tresor_store::PostgresOptions {
            busy_timeout: std::time::Duration::from_secs(30),
            ..Default::default()
        },
    )
    .map_err(|e| ServerError::Setup(format!("store {}: {e}", redacted_url(url))))?;
    let database = target.describe();
    let err = |e: StoreError| ServerError::Setup(format!("copying into {database}: {e}"));
    let mut out = target.begin_write().map_err(err)?;
    if !out.scan("", None, 1).map_err(err)?.is_empty() {
        return Err(ServerError::Setup(format!(
            "{database} already holds records: tresor migrate copies into an empty database only"
        )));
    }
    let read = source.begin_read().map_err(err)?;
    let mut after: Option<String> = None;
    let mut records = 0;
    loop {
        let page = read.scan("", after.as_deref(), 1000).map_err(err)?;
        for (k, v) in &page {
            out.put(k, v).map_err(err)?;
        }
        records += page.len();
        match page.last() {
            Some((k, _)) if page.len() == 1000 => after = Some(k.clone()),
            _ => break,
        }
    }
    drop(read);
    out.commit().map_err(err)?;
    let _ = source.close();
    let _ = target.close();
    Ok(Migrated { records, database })
}
