//! TLS with rustls (ring provider) from PEM certificate-chain and private-key files.

use std::sync::Arc;

use crate::ServerError;
use crate::config::TlsFiles;

pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    let cert_pem = std::fs::read(&files.cert).map_err(|e| {
        ServerError::Tls(format!(
            "cannot read certificate {}: {e}",
            files.cert.display()
        ))
    })?;
    let key_pem = std::fs::read(&files.key).map_err(|e| {
        ServerError::Tls(format!(
            "cannot read private key {}: {e}",
            files.key.display()
        ))
    })?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ServerError::Tls(format!("bad certificate PEM {}: {e}", files.cert.display()))
        })?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "no certificate in {}",
            files.cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServerError::Tls(format!("bad private key PEM {}: {e}", files.key.display())))?
        .ok_or_else(|| ServerError::Tls(format!("no private key in {}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ServerError::Tls(format!(
                "certificate and key do not form a usable pair: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
