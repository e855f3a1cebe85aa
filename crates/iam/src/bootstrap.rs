//! First start of a deployment: an account, an administrator IAM user with
//! full access, and its access key — all in one transaction. `--dev` instead makes account
//! `000000000000` whose root answers to the local-emulator convention `test`/`test`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::{RootKey, SecretString, ids};
use tresor_store::Store;

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

/// Creates the deployment's account and administrator if the store has none yet.
pub fn ensure(
    store: &Arc<dyn Store>,
    root: &RootKey,
    opts: &BootstrapOptions,
    now: OffsetDateTime,
) -> Result<Bootstrap, ServiceError> {
    let mut txn = store.begin_write()?;
    if let Some(dep) = record::get::<DeploymentRecord>(&*txn, keys::deployment())? {
        let admin_arn = if opts.dev {
            format!("arn:aws:iam::{}:root", dep.default_account)
        } else {
            format!("arn:aws:iam::{}:user/{ADMIN_USER}", dep.default_account)
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
            admin_arn: format!("arn:aws:iam::{account}:root"),
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
        let access_key_id = ids::access_key_id("AKIA");
        let secret = ids::secret_access_key();
        let sealed = seal_secret(root, &access_key_id, secret.as_bytes())?;
        record::put(&mut *txn, &keys::user(&account, ADMIN_USER), &user)?;
        txn.put(
            &keys::unique_id(&account, &user.user_id),
            ADMIN_USER.as_bytes(),
        )?;
        record::put(
            &mut *txn,
            &keys::access_key(&access_key_id),
            &AccessKeyRecord {
                v: FORMAT,
                account: account.clone(),
                owner: KeyOwner::User {
                    name: ADMIN_USER.to_string(),
                },
                status: KeyStatus::Active,
                created: now,
                secret_sealed: sealed,
            },
        )?;
        txn.put(
            &keys::user_access_key(&account, ADMIN_USER, &access_key_id),
            b"",
        )?;
        Bootstrap {
            admin_arn: user.arn(&account),
            account,
            admin: Some(AdminCredentials {
                access_key_id,
                secret_access_key: SecretString::from(secret.to_string()),
            }),
        }
    };
    txn.commit()?;
    Ok(result)
}
