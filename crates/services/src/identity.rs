//! Identity records — accounts, IAM users, access keys and STS sessions — and the lookup the
//! server's SigV4 check uses to turn an access key id into a secret and a [`Caller`].
//!
//! Secret access keys are stored sealed under the root key (AAD binds each to its key id),
//! never in the clear; a resolved secret lives in a zeroizing buffer.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::{RootKey, SecretBytes};
use tresor_store::{ReadTxn, Store};

use crate::ctx::{Caller, CallerKind};
use crate::error::ServiceError;
use crate::{keys, record};

pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountRecord {
    pub v: u32,
    pub account_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    pub v: u32,
    pub name: String,
    pub path: String,
    pub user_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Inline policies by name (document text as given).
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    /// ARNs of attached managed policies.
    #[serde(default)]
    pub attached_policies: Vec<String>,
    #[serde(default)]
    pub permissions_boundary: Option<String>,
}

impl UserRecord {
    pub fn arn(&self, account: &str) -> String {
        format!("arn:aws:iam::{account}:user{}{}", self.path, self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Inactive,
}

/// Who an access key belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyOwner {
    /// The account root (only the `--dev` well-known key `test`).
    Root,
    User {
        name: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub v: u32,
    pub account: String,
    pub owner: KeyOwner,
    pub status: KeyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The secret access key sealed under the root key, base64.
    pub secret_sealed: String,
}

/// The associated data binding a sealed secret access key to its key id.
pub fn secret_aad(access_key_id: &str) -> Vec<u8> {
    format!("tresor/accesskey/{access_key_id}").into_bytes()
}

pub fn seal_secret(
    root: &RootKey,
    access_key_id: &str,
    secret: &[u8],
) -> Result<String, ServiceError> {
    Ok(STANDARD.encode(root.seal(secret, &secret_aad(access_key_id))?))
}

/// What the SigV4 check needs: the secret to verify with and the principal it proves.
pub struct ResolvedCredential {
    pub secret: SecretBytes,
    pub caller: Caller,
}

impl std::fmt::Debug for ResolvedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedCredential")
            .field("secret", &"[redacted]")
            .field("caller", &self.caller)
            .finish()
    }
}

/// Why a credential was refused, in AWS's terms (spec §2.5).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Unknown or inactive key, or a session token that does not belong to it:
    /// `UnrecognizedClientException` / `InvalidClientTokenId`.
    #[error("The security token included in the request is invalid.")]
    Invalid,
    /// A temporary credential past its expiration: `ExpiredTokenException` / `ExpiredToken`.
    #[error("The security token included in the request is expired")]
    Expired,
    #[error(transparent)]
    Internal(#[from] ServiceError),
}

/// Looks up an access key (and checks its session token for temporary credentials).
pub fn resolve_credential(
    store: &Arc<dyn Store>,
    root: &RootKey,
    access_key_id: &str,
    session_token: Option<&str>,
    _now: OffsetDateTime,
) -> Result<ResolvedCredential, CredentialError> {
    let txn = store.begin_read().map_err(ServiceError::from)?;
    let Some(key) = record::get::<AccessKeyRecord>(&*txn, &keys::access_key(access_key_id))? else {
        return Err(CredentialError::Invalid);
    };
    // Long-term keys carry no session token; a token sent with one is not "their" token.
    if session_token.is_some() || key.status != KeyStatus::Active {
        return Err(CredentialError::Invalid);
    }
    let sealed = STANDARD.decode(key.secret_sealed.as_bytes()).map_err(|_| {
        ServiceError::Corrupt(format!("access key {access_key_id}: secret encoding"))
    })?;
    let secret = root
        .open(&sealed, &secret_aad(access_key_id))
        .map_err(ServiceError::from)?;
    let caller = caller_for_key(&*txn, access_key_id, &key)?;
    Ok(ResolvedCredential {
        secret: SecretBytes::from(secret.to_vec()),
        caller,
    })
}

fn caller_for_key(
    txn: &dyn ReadTxn,
    access_key_id: &str,
    key: &AccessKeyRecord,
) -> Result<Caller, CredentialError> {
    match &key.owner {
        KeyOwner::Root => Ok(Caller::root(&key.account, access_key_id)),
        KeyOwner::User { name } => {
            let Some(user) = record::get::<UserRecord>(txn, &keys::user(&key.account, name))?
            else {
                // A key whose user is gone is no credential at all.
                return Err(CredentialError::Invalid);
            };
            Ok(Caller {
                account: key.account.clone(),
                arn: user.arn(&key.account),
                user_id: user.user_id.clone(),
                kind: CallerKind::User {
                    name: user.name.clone(),
                    path: user.path.clone(),
                    unique_id: user.user_id.clone(),
                },
                access_key_id: access_key_id.to_string(),
            })
        }
    }
}
