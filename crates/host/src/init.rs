//! `tresor host init`: the configuration a host needs to act as a role, printed (or written
//! with mode 0600): the environment for its AWS clients, a systemd unit for `tresor imds`, the
//! `credential_process` profile, and optionally the boot-time fetch of the agent token.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::fetch::write_atomic;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Mode {
    /// `tresor imds` as a service; clients find it through AWS_EC2_METADATA_SERVICE_ENDPOINT.
    Imds,
    /// A `credential_process` profile in the AWS config file; no service.
    CredentialProcess,
}

#[derive(Args, Debug)]
pub struct HostInitArgs {
    /// ARN of the role the host acts as.
    #[arg(long)]
    pub role_arn: String,
    /// tresor's endpoint.
    #[arg(long)]
    pub endpoint_url: String,
    /// Region.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// How clients get the role's credentials.
    #[arg(long, value_enum, default_value = "imds")]
    pub mode: Mode,
    /// Profile of the host's source credential in the credentials file.
    #[arg(long, default_value = "tresor-host")]
    pub source_profile: String,
    /// Shared credentials file holding the source credential (mode 0600, root only).
    #[arg(long, default_value = "/etc/tresor/host-credentials")]
    pub credentials_file: PathBuf,
    /// Address `tresor imds` listens on.
    #[arg(long, default_value = "127.0.0.1:1338")]
    pub imds_listen: String,
    /// Parameter (or /aws/reference/secretsmanager/<id>) holding the Buildkite agent token:
    /// adds the boot-time fetch into the agent's config file.
    #[arg(long)]
    pub token_path: Option<String>,
    /// The Buildkite agent's config file.
    #[arg(long, default_value = "/etc/buildkite-agent/buildkite-agent.cfg")]
    pub agent_config: PathBuf,
    /// Write the files into this directory (mode 0600) instead of printing them.
    #[arg(long)]
    pub write_dir: Option<PathBuf>,
}

/// The files of a host's setup: (file name, contents).
pub fn render(args: &HostInitArgs, tresor: &str) -> Vec<(&'static str, String)> {
    let creds = args.credentials_file.display();
    let mut files = Vec::new();
    let client_env = format!(
        "AWS_ENDPOINT_URL={endpoint}\nAWS_REGION={region}\nAWS_DEFAULT_REGION={region}\n",
        endpoint = args.endpoint_url,
        region = args.region
    );
    match args.mode {
        Mode::Imds => {
            files.push((
                "host.env",
                format!(
                    "# /etc/tresor/host.env: the environment of AWS clients on this host (or /etc/environment).\n\
                     AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{listen}\n{client_env}",
                    listen = args.imds_listen
                ),
            ));
            files.push((
                "tresor-imds.service",
                format!(
                    "# /etc/systemd/system/tresor-imds.service\n\
                     [Unit]\n\
                     Description=Instance metadata credentials for {role} (tresor imds)\n\
                     After=network-online.target\nWants=network-online.target\n\
                     Before=cloud-final.service\n\n\
                     [Service]\n\
                     LoadCredential=host-credentials:{creds}\n\
                     Environment=AWS_SHARED_CREDENTIALS_FILE=%d/host-credentials\n\
                     Environment=AWS_CONFIG_FILE=/dev/null\n\
                     ExecStart={tresor} imds --role-arn {role} --endpoint-url {endpoint} --region {region} --profile {profile} --listen {listen}\n\
                     Restart=always\nRestartSec=2\n\
                     DynamicUser=yes\n\
                     NoNewPrivileges=yes\nProtectSystem=strict\nProtectHome=yes\nPrivateTmp=yes\n\n\
                     [Install]\nWantedBy=multi-user.target\n",
                    role = args.role_arn,
                    endpoint = args.endpoint_url,
                    region = args.region,
                    profile = args.source_profile,
                    listen = args.imds_listen,
                ),
            ));
        }
        Mode::CredentialProcess => {
            files.push((
                "aws-config",
                format!(
                    "# Append to the AWS config file (~/.aws/config or AWS_CONFIG_FILE), then\n\
                     # use AWS_PROFILE=instance.\n\
                     [profile instance]\n\
                     credential_process = {tresor} credential-process --role-arn {role} --endpoint-url {endpoint} --region {region} --profile {profile}\n\
                     region = {region}\nendpoint_url = {endpoint}\n",
                    role = args.role_arn,
                    endpoint = args.endpoint_url,
                    region = args.region,
                    profile = args.source_profile,
                ),
            ));
            files.push((
                "host.env",
                format!(
                    "# /etc/tresor/host.env: the environment of AWS clients on this host.\n\
                     AWS_PROFILE=instance\nAWS_SHARED_CREDENTIALS_FILE={creds}\n{client_env}"
                ),
            ));
        }
    }
    if let Some(path) = &args.token_path {
        files.push((
            "boot-fetch.sh",
            format!(
                "# At boot, before the agent starts: exit codes 3 denied, 4 not found, 5 unreachable.\n\
                 set -a; . /etc/tresor/host.env; set +a\n\
                 {tresor} fetch {path} --out {cfg} --format line --key token --deadline 120\n\
                 # Keep the token current across rotations:\n\
                 # {tresor} fetch {path} --out {cfg} --format line --key token --watch -- systemctl restart buildkite-agent\n",
                cfg = args.agent_config.display(),
            ),
        ));
    }
    files
}

/// Prints or writes the setup.
pub fn run(args: &HostInitArgs) -> Result<(), String> {
    let tresor = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "tresor".to_string());
    let files = render(args, &tresor);
    match &args.write_dir {
        None => {
            println!(
                "# The host's only stored secret is its source credential: put the access key of\n\
                 # an IAM user allowed to assume {role} into {creds} (mode 0600):\n\
                 #   [{profile}]\n#   aws_access_key_id = AKIA…\n#   aws_secret_access_key = …\n",
                role = args.role_arn,
                creds = args.credentials_file.display(),
                profile = args.source_profile
            );
            for (name, body) in files {
                println!("# ---- {name}\n{body}");
            }
        }
        Some(dir) => {
            for (name, body) in files {
                let path = dir.join(name);
                write_atomic(&path, body.as_bytes(), None).map_err(|e| e.reason)?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
