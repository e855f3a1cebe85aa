//! One SigV4-signed awsJson1.1 call for an operation no AWS SDK crate carries (tresor's
//! CloudTrail extension `ListSecretReaders`), made the way the SDKs make theirs: credentials,
//! region and endpoint from the SDK's own configuration chain (environment, profile,
//! `credential_process`, web identity, container and instance metadata), the request signed
//! by `aws-sigv4`, sent over HTTP or HTTPS (system roots plus `AWS_CA_BUNDLE`, as the AWS CLI
//! reads it).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::source::{self, ClientArgs};

/// Where the call goes when neither a flag, the environment nor the profile names an endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";

/// The answer: the HTTP status and the body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// POSTs `body` to the endpoint as `target` (`X-Amz-Target`), signed for `signing_name`.
pub async fn json_call(
    client: &ClientArgs,
    signing_name: &str,
    target: &str,
    body: &str,
) -> Result<Answer, String> {
    let config = source::default_config(client).await;
    let endpoint = config
        .endpoint_url()
        .unwrap_or(DEFAULT_ENDPOINT)
        .trim_end_matches('/')
        .to_string();
    let region = config
        .region()
        .map(|r| r.as_ref().to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let provider = config
        .credentials_provider()
        .ok_or("no credentials: none of the AWS SDK's credential sources is configured")?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| format!("no credentials: {e}"))?;
    let url = format!("{endpoint}/");
    let host = endpoint
        .split_once("://")
        .map_or(endpoint.as_str(), |(_, rest)| rest)
        .to_string();
    let headers = [
        ("host", host),
        ("content-type", "application/x-amz-json-1.1".to_string()),
        ("x-amz-target", target.to_string()),
    ];
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name(signing_name)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    let (signature_headers, _) = instructions.into_parts();

    let agent = agent()?;
    let body = body.to_string();
    let endpoint_for_errors = endpoint.clone();
    tokio::task::spawn_blocking(move || {
        let mut request = agent.post(&url);
        for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
            request = request.header(*k, v.as_str());
        }
        for h in &signature_headers {
            request = request.header(h.name(), h.value());
        }
        let mut response = request
            .send(body.as_bytes())
            .map_err(|e| format!("cannot reach {endpoint_for_errors}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok(Answer { status, body: text })
    })
    .await
    .map_err(|e| format!("the request did not finish: {e}"))?
}

/// An agent trusting the system roots and, when set, the PEM bundle `AWS_CA_BUNDLE`; it
/// follows no redirects and answers every status (the caller reads AWS's error shape).
fn agent() -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
    let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
        let pem = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read AWS_CA_BUNDLE {}: {e}",
                std::path::Path::new(&path).display()
            )
        })?;
        roots.extend(ureq::tls::parse_pem(&pem).filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c.to_owned()),
            _ => None,
        }));
    }
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    Ok(ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .tls_config(tls)
        .build()
        .into())
}
