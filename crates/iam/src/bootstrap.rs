//! First start of a deployment: an account, an administrator IAM user with
//! full access, and its access key — all in one transaction. `--dev` instead makes account
//! `000000000000` whose root answers to the local-emulator convention `test`/`test`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::{RootKey, SecretString, ids};
use tresor_policy::arn::partition;
use tresor_store::{Store, WriteTxn};

use crate::identity::{
    AccessKeyRecord, AccountRecord, FORMAT, KeyOwner, KeyStatus, UserRecord, seal_secret,
};
use crate::keys;
use tresor_core::error::ServiceError;
use tresor_core::record;

pub const DEV_ACCOUNT: &str = "000000000000";
pub const DEV_ACCESS_KEY_ID: &str = "test";
pub const DEV_SECRET_ACCESS_KEY: &str = "test";
pub const ADMIN_USER: &str = "tresor-admin";
/// The administrator's inline policy: full access, as AWS's `AdministratorAccess`.
pub const ADMIN_POLICY_NAME: &str = "AdministratorAccess";
pub const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub v: u32,
    pub default_account: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

/// What `ensure` found or made.
pub struct Bootstrap {
    pub account: String,
    /// Present only on the start that created the administrator: the one time its secret
    /// exists outside the store.
    pub admin: Option<AdminCredentials>,
    pub admin_arn: String,
}

pub struct AdminCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

pub struct BootstrapOptions {
    pub account_id: Option<String>,
    pub dev: bool,
}

/// Where the administrator's new secret goes before the transaction that creates it commits
/// (the server writes a staged `credentials` file): if it fails, nothing is committed, so a
/// committed administrator always has its secret written somewhere.
pub type StageSecret<'a> = &'a mut dyn FnMut(&AdminCredentials) -> Result<(), ServiceError>;

/// Creates the deployment's account and administrator if the store has none yet. The new
/// administrator's credentials are handed to `stage` before the commit.
pub fn ensure(
    store: &Arc<dyn Store>,
    root: &RootKey,
    opts: &BootstrapOptions,
    now: OffsetDateTime,
    stage: StageSecret<'_>,
) -> Result<Bootstrap, ServiceError> {
    let mut txn = store.begin_write()?;
    if let Some(dep) = record::get::<DeploymentRecord>(&*txn, keys::deployment())? {
        let admin_arn = if opts.dev {
            format!("arn:{}:iam::{}:root", partition(), dep.default_account)
        } else {
            format!(
                "arn:{}:iam::{}:user/{ADMIN_USER}",
                partition(),
                dep.default_account
            )
        };
        return Ok(Bootstrap {
            account: dep.default_account,
            admin: None,
            admin_arn,
        });
    }
    let account = if opts.dev {
        DEV_ACCOUNT.to_string()
    } else {
        opts.account_id.clone().unwrap_or_else(ids::account_id)
    };
    record::put(
        &mut *txn,
        keys::deployment(),
        &DeploymentRecord {
            v: FORMAT,
            default_account: account.clone(),
            created: now,
        },
    )?;
    record::put(
        &mut *txn,
        &keys::account(&account),
        &AccountRecord {
            v: FORMAT,
            account_id: account.clone(),
            created: now,
        },
    )?;

    let result = if opts.dev {
        let sealed = seal_secret(root, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY.as_bytes())?;
        record::put(
            &mut *txn,
            &keys::access_key(DEV_ACCESS_KEY_ID),
            &AccessKeyRecord {
                v: FORMAT,
                account: account.clone(),
                owner: KeyOwner::Root,
                status: KeyStatus::Active,
                created: now,
                secret_sealed: sealed,
            },
        )?;
        txn.put(&keys::root_access_key(&account, DEV_ACCESS_KEY_ID), b"")?;
        Bootstrap {
            admin_arn: format!("arn:{}:iam::{account}:root", partition()),
            account,
            admin: None,
        }
    } else {
        let user = UserRecord {
            v: FORMAT,
            name: ADMIN_USER.to_string(),
            path: "/".to_string(),
            user_id: ids::unique_id("AIDA"),
            created: now,
            tags: Vec::new(),
            inline_policies: [(ADMIN_POLICY_NAME.to_string(), ADMIN_POLICY.to_string())].into(),
            attached_policies: Vec::new(),
            permissions_boundary: None,
        };
        record::put(&mut *txn, &keys::user(&account, ADMIN_USER), &user)?;
        txn.put(
            &keys::unique_id(&account, &user.user_id),
            ADMIN_USER.as_bytes(),
        )?;
        let admin = put_admin_key(&mut *txn, root, &account, now)?;
        stage(&admin)?;
        Bootstrap {
            admin_arn: user.arn(&account),
            account,
            admin: Some(admin),
        }
    };
    txn.commit()?;
    Ok(result)
}

/// Writes a new active access key of the administrator into `txn`.
fn put_admin_key(
    txn: &mut dyn WriteTxn,
    root: &RootKey,
    account: &str,
    now: OffsetDateTime,
) -> Result<AdminCredentials, ServiceError> {
    let access_key_id = ids::access_key_id("AKIA");
    let secret = ids::secret_access_key();
    let sealed = seal_secret(root, &access_key_id, secret.as_bytes())?;
    record::put(
        txn,
        &keys::access_key(&access_key_id),
        &AccessKeyRecord {
            v: FORMAT,
            account: account.to_string(),
            owner: KeyOwner::User {
                name: ADMIN_USER.to_string(),
            },
            status: KeyStatus::Active,
            created: now,
            secret_sealed: sealed,
        },
    )?;
    txn.put(
        &keys::user_access_key(account, ADMIN_USER, &access_key_id),
        b"",
    )?;
    Ok(AdminCredentials {
        access_key_id,
        secret_access_key: SecretString::from(secret.to_string()),
    })
}

/// Why `new_admin_key` refused.
#[derive(Debug, thiserror::Error)]
pub enum NewKeyError {
    #[error("the store has no deployment yet: start `tresor serve` on it first")]
    NoDeployment,
    #[error("the administrator user {ADMIN_USER} no longer exists in account {0}")]
    NoAdministrator(String),
    #[error(
        "the administrator already has two access keys ({0}), the most IAM allows a user; \
         pass --revoke-existing to delete them and issue a new one"
    )]
    TwoKeys(String),
    #[error(transparent)]
    Store(#[from] ServiceError),
}

/// What `new_admin_key` issued.
pub struct NewAdminKey {
    pub account: String,
    pub admin_arn: String,
    pub credentials: AdminCredentials,
    /// The administrator's keys deleted with `revoke_existing`.
    pub revoked: Vec<String>,
}

/// Issues the administrator a new access key (the recovery of a lost profile), in one
/// transaction; `revoke_existing` deletes the administrator's other keys in it. The new
/// secret is handed to `stage` before the commit.
pub fn new_admin_key(
    store: &Arc<dyn Store>,
    root: &RootKey,
    revoke_existing: bool,
    now: OffsetDateTime,
    stage: StageSecret<'_>,
) -> Result<NewAdminKey, NewKeyError> {
    let mut txn = store.begin_write().map_err(ServiceError::from)?;
    let deployment: DeploymentRecord =
        record::get(&*txn, keys::deployment())?.ok_or(NewKeyError::NoDeployment)?;
    let account = deployment.default_account;
    let user: UserRecord = record::get(&*txn, &keys::user(&account, ADMIN_USER))?
        .ok_or_else(|| NewKeyError::NoAdministrator(account.clone()))?;
    let prefix = keys::user_access_key_prefix(&account, ADMIN_USER);
    let existing: Vec<String> = txn
        .scan(&prefix, None, 100)
        .map_err(ServiceError::from)?
        .into_iter()
        .filter_map(|(k, _)| k.rsplit('/').next().map(str::to_string))
        .collect();
    if revoke_existing {
        for id in &existing {
            txn.delete(&keys::access_key(id))
                .map_err(ServiceError::from)?;
            txn.delete(&keys::user_access_key(&account, ADMIN_USER, id))
                .map_err(ServiceError::from)?;
        }
    } else if existing.len() >= 2 {
        return Err(NewKeyError::TwoKeys(existing.join(", ")));
    }
    let credentials = put_admin_key(&mut *txn, root, &account, now)?;
    stage(&credentials)?;
    txn.commit().map_err(ServiceError::from)?;
    Ok(NewAdminKey {
        admin_arn: user.arn(&account),
        account,
        credentials,
        revoked: if revoke_existing {
            existing
        } else {
            Vec::new()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_store::MemoryStore;

    fn opts() -> BootstrapOptions {
        BootstrapOptions {
            account_id: Some("111122223333".into()),
            dev: false,
        }
    }

    #[test]
    fn a_failing_stage_commits_no_administrator() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let root = RootKey::from_bytes(&[7; 32]).unwrap();
        let now = OffsetDateTime::now_utc();
        let failed = ensure(&store, &root, &opts(), now, &mut |_| {
            Err(ServiceError::Corrupt("disk full".into()))
        });
        assert!(failed.is_err());
        let txn = store.begin_read().unwrap();
        assert!(
            record::get::<DeploymentRecord>(&*txn, keys::deployment())
                .unwrap()
                .is_none()
        );
        drop(txn);
        // The next start creates the deployment, handing the staged secret out exactly once.
        let mut staged = Vec::new();
        let boot = ensure(&store, &root, &opts(), now, &mut |admin| {
            staged.push(admin.access_key_id.clone());
            Ok(())
        })
        .unwrap();
        let admin = boot.admin.unwrap();
        assert_eq!(staged, vec![admin.access_key_id.clone()]);
        let again = ensure(&store, &root, &opts(), now, &mut |_| panic!("staged twice")).unwrap();
        assert!(again.admin.is_none());
        assert_eq!(
            again.admin_arn,
            "arn:aws:iam::111122223333:user/tresor-admin"
        );
    }

    #[test]
    fn new_admin_key_respects_the_two_key_limit_and_revokes_in_one_transaction() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let root = RootKey::from_bytes(&[8; 32]).unwrap();
        let now = OffsetDateTime::now_utc();
        let first = ensure(&store, &root, &opts(), now, &mut |_| Ok(())).unwrap();
        let first_key = first.admin.unwrap().access_key_id;
        let second = new_admin_key(&store, &root, false, now, &mut |_| Ok(())).unwrap();
        assert!(second.revoked.is_empty());
        assert!(matches!(
            new_admin_key(&store, &root, false, now, &mut |_| Ok(())),
            Err(NewKeyError::TwoKeys(_))
        ));
        // A failing stage leaves both keys in place.
        assert!(
            new_admin_key(&store, &root, true, now, &mut |_| {
                Err(ServiceError::Corrupt("disk full".into()))
            })
            .is_err()
        );
        let txn = store.begin_read().unwrap();
        assert!(txn.get(&keys::access_key(&first_key)).unwrap().is_some());
        drop(txn);
        let third = new_admin_key(&store, &root, true, now, &mut |_| Ok(())).unwrap();
        assert_eq!(third.revoked.len(), 2);
        assert!(third.revoked.contains(&first_key));
        let txn = store.begin_read().unwrap();
        assert!(txn.get(&keys::access_key(&first_key)).unwrap().is_none());
        assert!(
            txn.get(&keys::access_key(&third.credentials.access_key_id))
                .unwrap()
                .is_some()
        );
    }
}
