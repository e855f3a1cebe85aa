//! The SSM and Secrets Manager clients `fetch` and `agent` read with, and the cheap version
//! check both use to notice a rotation.

use aws_config::SdkConfig;

use crate::errors::{Failure, classify};
use crate::source::{self, ClientArgs};

/// The prefix of a Parameter Store reference to a Secrets Manager secret.
pub const REFERENCE_PREFIX: &str = "/aws/reference/secretsmanager/";

/// The clients, built once.
pub struct Clients {
    pub ssm: aws_sdk_ssm::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Clients {
    /// GetParameter: the parameter, or why not.
    pub async fn get_parameter(
        &self,
        name: &str,
        decrypt: bool,
    ) -> Result<aws_sdk_ssm::types::Parameter, Failure> {
        self.ssm
            .get_parameter()
            .name(name)
            .with_decryption(decrypt)
            .send()
            .await
            .map_err(|e| classify(&e))?
            .parameter
            .ok_or_else(|| Failure::Response("GetParameter returned no Parameter".into()))
    }

    pub async fn new(client: &ClientArgs, role_arn: Option<&str>) -> Self {
        let base = source::default_config(client).await;
        let config = match role_arn {
            Some(arn) => assumed(&base, arn).await,
            None => base,
        };
        Clients {
            ssm: aws_sdk_ssm::Client::new(&config),
            sm: aws_sdk_secretsmanager::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
        }
    }
}

async fn assumed(base: &SdkConfig, role_arn: &str) -> SdkConfig {
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(source::instance_id())
        .configure(base)
        .build()
        .await;
    base.clone()
        .into_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .build()
}

/// The version of secret `id` that carries `stage` now, from DescribeSecret.
pub async fn current_version_id(
    sm: &aws_sdk_secretsmanager::Client,
    id: &str,
    stage: &str,
) -> Result<Option<String>, Failure> {
    let out = sm
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    Ok(out.version_ids_to_stages().and_then(|m| {
        m.iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(v, _)| v.clone())
    }))
}
