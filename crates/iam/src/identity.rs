//! Identity records — accounts, IAM users, access keys and STS sessions — and the lookup the
//! server's SigV4 check uses to turn an access key id into a secret and a [`Caller`].
//!
//! Secret access keys are stored sealed under the root key (AAD binds each to its key id),
//! never in the clear; a resolved secret lives in a zeroizing buffer. Session tokens of
//! temporary credentials are stored only as their SHA-256 and compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use time::OffsetDateTime;
use tresor_crypto::{RootKey, SecretBytes, constant_time_eq};
use tresor_store::{ReadTxn, Store};

use crate::keys;
pub use crate::records::{
    AccessKeyRecord, AccountRecord, FORMAT, FederatedIdentity, KeyOwner, KeyStatus,
    SessionPrincipal, SessionRecord, UserRecord,
};
use tresor_core::credential::{CredentialError, ResolvedCredential, SessionValidity};
use tresor_core::ctx::{Caller, CallerKind};
use tresor_core::error::ServiceError;
use tresor_core::record;

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

/// Hex SHA-256 of a session token, as stored in [`SessionRecord::token_sha256`].
pub fn token_digest(token: &str) -> String {
    tresor_crypto::sha256_hex(token.as_bytes())
}

/// Looks up an access key (and checks its session token for temporary credentials).
pub fn resolve_credential(
    store: &dyn Store,
    root: &RootKey,
    access_key_id: &str,
    session_token: Option<&str>,
    now: OffsetDateTime,
) -> Result<ResolvedCredential, CredentialError> {
    let txn = store.begin_read().map_err(ServiceError::from)?;
    resolve_in(&*txn, root, access_key_id, session_token, now)
}

/// [`resolve_credential`] inside a read transaction, with the clock injected.
pub fn resolve_in(
    txn: &dyn ReadTxn,
    root: &RootKey,
    access_key_id: &str,
    session_token: Option<&str>,
    now: OffsetDateTime,
) -> Result<ResolvedCredential, CredentialError> {
    if let Some(session) = record::get::<SessionRecord>(txn, &keys::session(access_key_id))? {
        return resolve_session(txn, root, access_key_id, &session, session_token, now);
    }
    let Some(key) = record::get::<AccessKeyRecord>(txn, &keys::access_key(access_key_id))? else {
        return Err(CredentialError::Invalid);
    };
    // Long-term keys carry no session token; a token sent with one is not "their" token.
    if session_token.is_some() || key.status != KeyStatus::Active {
        return Err(CredentialError::Invalid);
    }
    let secret = open_secret(root, access_key_id, &key.secret_sealed)?;
    let caller = caller_for_key(txn, access_key_id, &key)?;
    Ok(ResolvedCredential {
        secret,
        caller: caller.into(),
        session: None,
    })
}

fn open_secret(
    root: &RootKey,
    access_key_id: &str,
    sealed_b64: &str,
) -> Result<SecretBytes, ServiceError> {
    let sealed = STANDARD.decode(sealed_b64.as_bytes()).map_err(|_| {
        ServiceError::Corrupt(format!("access key {access_key_id}: secret encoding"))
    })?;
    let secret = root.open(&sealed, &secret_aad(access_key_id))?;
    Ok(SecretBytes::from(secret.to_vec()))
}

/// A temporary credential: the token must be the session's (else `Invalid`), the session
/// unexpired (else `Expired`), and its principal still the same entity — a deleted or
/// re-created role (new unique id) or user ends every session it had (`Invalid`).
fn resolve_session(
    txn: &dyn ReadTxn,
    root: &RootKey,
    access_key_id: &str,
    session: &SessionRecord,
    session_token: Option<&str>,
    now: OffsetDateTime,
) -> Result<ResolvedCredential, CredentialError> {
    let Some(token) = session_token else {
        return Err(CredentialError::Invalid);
    };
    if !constant_time_eq(
        token_digest(token).as_bytes(),
        session.token_sha256.as_bytes(),
    ) {
        return Err(CredentialError::Invalid);
    }
    if now >= session.expiration {
        return Err(CredentialError::Expired);
    }
    let account = session.account.as_str();
    let caller = match &session.principal {
        SessionPrincipal::Root => Caller::root(account, access_key_id),
        SessionPrincipal::User { user_id, .. } => {
            let Some(name) = txn
                .get(&keys::unique_id(account, user_id))
                .map_err(ServiceError::from)?
            else {
                return Err(CredentialError::Invalid);
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            let Some(user) = record::get::<UserRecord>(txn, &keys::user(account, &name))? else {
                return Err(CredentialError::Invalid);
            };
            if &user.user_id != user_id {
                return Err(CredentialError::Invalid);
            }
            user_caller(account, &user, access_key_id)
        }
        SessionPrincipal::Role {
            role_name,
            role_id,
            session_name,
            ..
        } => {
            let Some(role) =
                record::get::<crate::records::RoleRecord>(txn, &keys::role(account, role_name))?
            else {
                return Err(CredentialError::Invalid);
            };
            if &role.role_id != role_id {
                return Err(CredentialError::Invalid);
            }
            assumed_role_caller(account, &role, session_name, access_key_id)
        }
    };
    let secret = open_secret(root, access_key_id, &session.secret_sealed)?;
    Ok(ResolvedCredential {
        secret,
        caller: caller.into(),
        session: Some(SessionValidity {
            expiration: session.expiration,
            token_sha256: session.token_sha256.clone(),
            created: Some(session.created),
            federation: federation_of(&session.principal),
        }),
    })
}

/// The outside identity of a role session, for the audit records of requests signed with it.
fn federation_of(principal: &SessionPrincipal) -> Option<tresor_core::credential::Federation> {
    let SessionPrincipal::Role {
        federated: Some(f), ..
    } = principal
    else {
        return None;
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    Some(match f.as_ref() {
        FederatedIdentity::WebIdentity {
            provider_arn,
            issuer,
            subject,
            audience,
        } => tresor_core::credential::Federation {
            federated_provider: provider_arn.clone(),
            attributes: vec![
                pair("iss", issuer),
                pair("sub", subject),
                pair("aud", audience),
            ],
        },
        FederatedIdentity::Upstream {
            upstream,
            arn,
            account,
        } => tresor_core::credential::Federation {
            federated_provider: format!("upstream:{upstream}"),
            attributes: vec![pair("arn", arn), pair("accountId", account)],
        },
    })
}

/// The outside identity (web identity: provider, issuer, subject, audience) a temporary
/// credential was issued to, if any — for audit records of requests signed with it.
pub fn federated_identity(
    txn: &dyn ReadTxn,
    access_key_id: &str,
) -> Result<Option<FederatedIdentity>, ServiceError> {
    Ok(
        match record::get::<SessionRecord>(txn, &keys::session(access_key_id))? {
            Some(SessionRecord {
                principal: SessionPrincipal::Role { federated, .. },
                ..
            }) => federated.map(|f| *f),
            _ => None,
        },
    )
}

/// The caller of a role session: `arn:aws:sts::<account>:assumed-role/<role>/<session>`
/// (no path), user id `<role id>:<session>` (IAM User Guide, "IAM identifiers": unique
/// ids, and "Policy variables": `aws:userid` of a role session).
pub fn assumed_role_caller(
    account: &str,
    role: &crate::records::RoleRecord,
    session_name: &str,
    access_key_id: &str,
) -> Caller {
    Caller {
        account: account.to_string(),
        arn: format!(
            "arn:{}:sts::{account}:assumed-role/{}/{session_name}",
            tresor_policy::arn::partition(),
            role.name
        ),
        user_id: format!("{}:{session_name}", role.role_id),
        kind: CallerKind::AssumedRole {
            role_name: role.name.clone(),
            role_path: role.path.clone(),
            role_id: role.role_id.clone(),
            session_name: session_name.to_string(),
        },
        access_key_id: access_key_id.to_string(),
    }
}

fn user_caller(account: &str, user: &UserRecord, access_key_id: &str) -> Caller {
    Caller {
        account: account.to_string(),
        arn: user.arn(account),
        user_id: user.user_id.clone(),
        kind: CallerKind::User {
            name: user.name.clone(),
            path: user.path.clone(),
            unique_id: user.user_id.clone(),
        },
        access_key_id: access_key_id.to_string(),
    }
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
            Ok(user_caller(&key.account, &user, access_key_id))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use time::macros::datetime;
    use tresor_store::MemoryStore;

    use super::*;
    use crate::records::RoleRecord;

    const ACCOUNT: &str = "111122223333";
    const AKID: &str = "ASIAEXAMPLEEXAMPLE12";
    const TOKEN: &str = "session-token-value";

    fn root() -> RootKey {
        RootKey::from_bytes(&[7u8; 32]).expect("root key")
    }

    fn role(id: &str) -> RoleRecord {
        RoleRecord {
            v: FORMAT,
            name: "ci-agent".into(),
            path: "/".into(),
            role_id: id.into(),
            created: datetime!(2026-01-01 0:00 UTC),
            assume_role_policy: "{}".into(),
            description: None,
            max_session_duration: 3600,
            tags: Vec::new(),
            inline_policies: BTreeMap::new(),
            attached_policies: Vec::new(),
            permissions_boundary: None,
        }
    }

    /// A store holding role `ci-agent` (id `AROA…1`) and one session of it expiring at 01:00.
    fn store_with_session(root: &RootKey) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut txn = store.begin_write().expect("write");
        record::put(
            &mut *txn,
            &keys::role(ACCOUNT, "ci-agent"),
            &role("AROAAAAAAAAAAAAAAAAA1"),
        )
        .expect("role");
        let session = SessionRecord {
            v: FORMAT,
            account: ACCOUNT.into(),
            secret_sealed: seal_secret(root, AKID, b"0123456789012345678901234567890123456789")
                .expect("seal"),
            token_sha256: token_digest(TOKEN),
            created: datetime!(2026-01-01 0:00 UTC),
            expiration: datetime!(2026-01-01 1:00 UTC),
            principal: SessionPrincipal::Role {
                role_name: "ci-agent".into(),
                role_id: "AROAAAAAAAAAAAAAAAAA1".into(),
                session_name: "build-42".into(),
                policies: Vec::new(),
                tags: Vec::new(),
                transitive_tag_keys: Vec::new(),
                source_identity: None,
                federated: None,
            },
        };
        record::put(&mut *txn, &keys::session(AKID), &session).expect("session");
        txn.commit().expect("commit");
        store
    }

    fn outcome(r: Result<ResolvedCredential, CredentialError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(CredentialError::Invalid) => "invalid",
            Err(CredentialError::Expired) => "expired",
            Err(CredentialError::Internal(_)) => "internal",
        }
    }

    #[test]
    fn sha256_matches_the_fips_180_vectors() {
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            token_digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            token_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn role_session_resolves_to_the_assumed_role_caller_until_it_expires() {
        let root = root();
        let store = store_with_session(&root);
        let at = datetime!(2026-01-01 0:30 UTC);
        let ok = resolve_credential(&*store, &root, AKID, Some(TOKEN), at).expect("resolves");
        assert_eq!(
            ok.caller.arn,
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/ci-agent/build-42")
        );
        assert_eq!(ok.caller.user_id, "AROAAAAAAAAAAAAAAAAA1:build-42");
        assert_eq!(
            ok.secret.as_bytes(),
            b"0123456789012345678901234567890123456789"
        );
        // Exactly at the expiration and after it: expired.
        assert_eq!(
            outcome(resolve_credential(
                &*store,
                &root,
                AKID,
                Some(TOKEN),
                datetime!(2026-01-01 1:00 UTC)
            )),
            "expired"
        );
        assert_eq!(
            outcome(resolve_credential(
                &*store,
                &root,
                AKID,
                Some(TOKEN),
                datetime!(2026-01-02 0:00 UTC)
            )),
            "expired"
        );
    }

    #[test]
    fn temporary_key_needs_its_own_token() {
        let root = root();
        let store = store_with_session(&root);
        let at = datetime!(2026-01-01 0:30 UTC);
        assert_eq!(
            outcome(resolve_credential(&*store, &root, AKID, None, at)),
            "invalid"
        );
        assert_eq!(
            outcome(resolve_credential(&*store, &root, AKID, Some("other"), at)),
            "invalid"
        );
        // A wrong token is invalid even once the session has expired.
        assert_eq!(
            outcome(resolve_credential(
                &*store,
                &root,
                AKID,
                Some("other"),
                datetime!(2026-01-02 0:00 UTC)
            )),
            "invalid"
        );
    }

    #[test]
    fn deleted_or_recreated_role_ends_its_sessions() {
        let root = root();
        let store = store_with_session(&root);
        let at = datetime!(2026-01-01 0:30 UTC);
        let mut txn = store.begin_write().expect("write");
        record::put(
            &mut *txn,
            &keys::role(ACCOUNT, "ci-agent"),
            &role("AROABBBBBBBBBBBBBBBB2"),
        )
        .expect("role");
        txn.commit().expect("commit");
        assert_eq!(
            outcome(resolve_credential(&*store, &root, AKID, Some(TOKEN), at)),
            "invalid"
        );
        let mut txn = store.begin_write().expect("write");
        txn.delete(&keys::role(ACCOUNT, "ci-agent"))
            .expect("delete");
        txn.commit().expect("commit");
        assert_eq!(
            outcome(resolve_credential(&*store, &root, AKID, Some(TOKEN), at)),
            "invalid"
        );
    }

    #[test]
    fn inactive_long_term_key_does_not_authenticate() {
        let root = root();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut txn = store.begin_write().expect("write");
        let mut key = AccessKeyRecord {
            v: FORMAT,
            account: ACCOUNT.into(),
            owner: KeyOwner::Root,
            status: KeyStatus::Active,
            created: datetime!(2026-01-01 0:00 UTC),
            secret_sealed: seal_secret(&root, "AKIAEXAMPLE", b"secret").expect("seal"),
        };
        record::put(&mut *txn, &keys::access_key("AKIAEXAMPLE"), &key).expect("key");
        txn.commit().expect("commit");
        let at = datetime!(2026-01-01 0:30 UTC);
        assert_eq!(
            outcome(resolve_credential(&*store, &root, "AKIAEXAMPLE", None, at)),
            "ok"
        );
        key.status = KeyStatus::Inactive;
        let mut txn = store.begin_write().expect("write");
        record::put(&mut *txn, &keys::access_key("AKIAEXAMPLE"), &key).expect("key");
        txn.commit().expect("commit");
        assert_eq!(
            outcome(resolve_credential(&*store, &root, "AKIAEXAMPLE", None, at)),
            "invalid"
        );
    }
}
