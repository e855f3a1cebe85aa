//! Opening a deployment: the data directory, the root key, the store, first-start identity
//! and the AWS CLI profile written for the administrator.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;
use tresor_core::Services;
use tresor_crypto::RootKey;
use tresor_iam::bootstrap::{self, BootstrapOptions};
use tresor_store::{SqliteStore, Store};

use crate::ServerError;
use crate::config::Config;

pub const DB_FILE: &str = "tresor.db";
pub const CREDENTIALS_FILE: &str = "credentials";
pub const AWS_CONFIG_FILE: &str = "config";
pub const PROFILE: &str = "tresor";

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
    /// The new administrator's key, until it is written to the profile once the listener's
    /// address is known.
    pending_admin: Option<bootstrap::AdminCredentials>,
    /// Keeps the `--dev` throwaway directory alive; removed on drop.
    _temp: Option<tempfile::TempDir>,
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
}

impl Deployment {
    /// Writes the administrator's AWS CLI profile (first start only), pointing at `addr`.
    pub fn write_profile(&mut self, addr: SocketAddr, tls: bool) -> Result<(), ServerError> {
        if let Some(admin) = self.pending_admin.take() {
            write_profile(
                &self.data_dir,
                &admin.access_key_id,
                admin.secret_access_key.expose(),
                addr,
                tls,
                &self.regions,
            )?;
        }
        Ok(())
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
        }
    }
}

pub fn open(config: &Config) -> Result<Deployment, ServerError> {
    let (data_dir, temp) = match &config.data_dir {
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
    create_private_dir(&data_dir)?;
    let root = match &config.root_key {
        Some(encoded) => RootKey::from_encoded(encoded)
            .map_err(|e| ServerError::Setup(format!("TRESOR_ROOT_KEY: {e}")))?,
        None => {
            RootKey::load_or_create(&data_dir)
                .map_err(|e| {
                    ServerError::Setup(format!("root key in {}: {e}", data_dir.display()))
                })?
                .0
        }
    };
    let db_path = data_dir.join(DB_FILE);
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&db_path)
            .map_err(|e| ServerError::Setup(format!("store {}: {e}", db_path.display())))?,
    );
    let now = OffsetDateTime::now_utc();
    let boot = bootstrap::ensure(
        &store,
        &root,
        &BootstrapOptions {
            account_id: config.account_id.clone(),
            dev: config.dev,
        },
        now,
    )
    .map_err(|e| ServerError::Setup(format!("first-start set-up: {e}")))?;
    if let Some(account) = &config.account_id
        && account != &boot.account
    {
        return Err(ServerError::Setup(format!(
            "--account-id {account} differs from this data directory's account {}",
            boot.account
        )));
    }
    let created = boot.admin.is_some();
    Ok(Deployment {
        services: Arc::new(Services::new(
            store.clone(),
            Arc::new(root),
            Arc::new(tresor_iam::IamDirectory),
        )),
        account: boot.account,
        admin_arn: boot.admin_arn,
        store_description: store.describe(),
        data_dir,
        dev: config.dev,
        created,
        regions: config.regions.clone(),
        pending_admin: boot.admin,
        _temp: temp,
    })
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
    })
}

/// Writes the administrator's AWS CLI `credentials` and `config` files (mode 0600).
fn write_profile(
    dir: &Path,
    access_key_id: &str,
    secret: &str,
    addr: SocketAddr,
    tls: bool,
    regions: &[String],
) -> Result<(), ServerError> {
    let endpoint = endpoint_url(addr, tls);
    let region = if regions.iter().any(|r| r == "us-east-1") {
        "us-east-1"
    } else {
        regions.first().map(String::as_str).unwrap_or("us-east-1")
    };
    let credentials = format!(
        "[{PROFILE}]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n"
    );
    let aws_config = format!("[profile {PROFILE}]\nregion = {region}\nendpoint_url = {endpoint}\n");
    write_private(&dir.join(CREDENTIALS_FILE), credentials.as_bytes())?;
    write_private(&dir.join(AWS_CONFIG_FILE), aws_config.as_bytes())
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), ServerError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| ServerError::Setup(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| ServerError::Setup(format!("cannot write {}: {e}", path.display())))
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
