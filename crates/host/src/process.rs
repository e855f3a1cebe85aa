//! `tresor credential-process`: the role's credentials for `credential_process` in
//! `~/.aws/config` (AWS SDKs and Tools Reference Guide, "Sourcing credentials with an external
//! process"): one JSON object with `Version` 1 on stdout, nothing else; errors on stderr.

use clap::Args;

use crate::source::{self, ClientArgs, RoleArgs, RoleSession, iso_seconds};

#[derive(Args, Debug)]
pub struct CredentialProcessArgs {
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The `credential_process` JSON of a fresh session of the role.
pub async fn run(args: CredentialProcessArgs) -> Result<String, String> {
    let source = source::source_config(&args.client).await;
    let role = RoleSession::new(&source, &args.role, &source::instance_id());
    let s = role
        .get()
        .await
        .map_err(|e| format!("cannot assume {}: {e}", role.role_arn))?;
    let body = serde_json::json!({
        "Version": 1,
        "AccessKeyId": s.access_key_id,
        "SecretAccessKey": s.secret_access_key,
        "SessionToken": s.session_token,
        "Expiration": iso_seconds(s.expiration),
    });
    Ok(body.to_string())
}
