//! OpenID Connect for `sts:AssumeRoleWithWebIdentity`: ID tokens ([`jwt`]) and the issuers'
//! signing keys ([`jwks`]).

pub mod jwks;
pub mod jwt;

use std::sync::{Arc, LazyLock};

use tresor_core::Services;

pub use jwks::{KeyCache, KeyError, KeySettings};

/// Installs the deployment's key cache (the server does, from its `[federation]` settings).
pub fn install(services: &Services, settings: KeySettings) -> Result<(), String> {
    services.set_extension(Arc::new(KeyCache::new(settings)?));
    Ok(())
}

/// The deployment's key cache; without one installed, a default one shared by the process
/// (system roots, no offline keys).
pub fn key_cache(services: &Services) -> Arc<KeyCache> {
    static DEFAULT: LazyLock<Arc<KeyCache>> = LazyLock::new(|| Arc::new(KeyCache::with_defaults()));
    services
        .extension::<KeyCache>()
        .unwrap_or_else(|| DEFAULT.clone())
}
