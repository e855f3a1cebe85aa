//! Long-term access keys of IAM users: at most two per user; the secret is returned once,
//! by `CreateAccessKey`, and stored sealed under the root key. An `Inactive` key stops
//! authenticating at once (`identity::resolve_credential` checks the status).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_crypto::ids;
use tresor_store::ReadTxn;

use super::check::Check;
use super::entity::{authorize, authorized, scan_keys};
use super::errors::{limit_exceeded, no_such_entity, validation};
use super::pagination::Page;
use crate::error::IamError;
use crate::identity::{AccessKeyRecord, FORMAT, KeyOwner, KeyStatus, UserRecord, seal_secret};
use crate::keys;
use tresor_core::Services;
use tresor_core::ctx::{CallerKind, RequestCtx};
use tresor_core::record;

/// Access keys per user, and per account root (IAM and AWS STS quotas).
const MAX_KEYS_PER_USER: usize = 2;

/// `statusType`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum StatusType {
    Active,
    Inactive,
    Expired,
}

impl From<KeyStatus> for StatusType {
    fn from(s: KeyStatus) -> StatusType {
        match s {
            KeyStatus::Active => StatusType::Active,
            KeyStatus::Inactive => StatusType::Inactive,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccessKeyInput {
    pub user_name: Option<String>,
}

/// A new access key. `Debug` leaves the secret out.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKey {
    pub user_name: String,
    pub access_key_id: String,
    pub status: StatusType,
    pub secret_access_key: String,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub create_date: OffsetDateTime,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("user_name", &self.user_name)
            .field("access_key_id", &self.access_key_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccessKeyOutput {
    pub access_key: AccessKey,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteAccessKeyInput {
    pub user_name: Option<String>,
    pub access_key_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAccessKeyInput {
    pub user_name: Option<String>,
    pub access_key_id: String,
    pub status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccessKeysInput {
    pub user_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyMetadata {
    pub user_name: String,
    pub access_key_id: String,
    pub status: StatusType,
    #[serde(with = "tresor_wire::xml::iso8601")]
    pub create_date: OffsetDateTime,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccessKeysOutput {
    pub access_key_metadata: Vec<AccessKeyMetadata>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAccessKeyLastUsedInput {
    pub access_key_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyLastUsed {
    #[serde(with = "tresor_wire::xml::iso8601::option")]
    pub last_used_date: Option<OffsetDateTime>,
    pub service_name: String,
    pub region: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAccessKeyLastUsedOutput {
    pub user_name: Option<String>,
    pub access_key_last_used: Option<AccessKeyLastUsed>,
}

/// Whose keys an operation acts on: a named user, or — without `UserName`, signed by the
/// account root — root's own keys ("If you do not specify a user name, IAM determines the
/// user name implicitly based on the AWS access key ID signing the request. This operation
/// works for access keys under the AWS account", IAM API reference, CreateAccessKey).
enum Owner {
    Root,
    User(UserRecord),
}

impl Owner {
    /// Resolves and authorizes `action` on the owner (`UserName` when given, else the caller).
    fn resolve(
        s: &Services,
        txn: &dyn ReadTxn,
        ctx: &RequestCtx,
        given: Option<&str>,
        action: &str,
    ) -> Result<Owner, IamError> {
        let mut check = Check::new();
        check.name("UserName", given, 128);
        check.finish()?;
        let name = match (given, &ctx.caller.kind) {
            (Some(n), _) => n.to_string(),
            (None, CallerKind::User { name, .. }) => name.clone(),
            (None, CallerKind::Root) => {
                authorize(s, ctx, action, &ctx.caller.arn)?;
                return Ok(Owner::Root);
            }
            (None, CallerKind::AssumedRole { .. }) => {
                return Err(validation(
                    "Must specify userName when calling with non-User credentials",
                ));
            }
        };
        Ok(Owner::User(authorized::<UserRecord>(
            s, txn, ctx, &name, action,
        )?))
    }

    /// The name responses carry: the user's, or for root the account id.
    fn user_name(&self, account: &str) -> String {
        match self {
            Owner::Root => account.to_string(),
            Owner::User(u) => u.name.clone(),
        }
    }

    fn index_prefix(&self, account: &str) -> String {
        match self {
            Owner::Root => keys::root_access_key_prefix(account),
            Owner::User(u) => keys::user_access_key_prefix(account, &u.name),
        }
    }

    fn index_key(&self, account: &str, id: &str) -> String {
        match self {
            Owner::Root => keys::root_access_key(account, id),
            Owner::User(u) => keys::user_access_key(account, &u.name, id),
        }
    }

    fn key_owner(&self) -> KeyOwner {
        match self {
            Owner::Root => KeyOwner::Root,
            Owner::User(u) => KeyOwner::User {
                name: u.name.clone(),
            },
        }
    }

    fn owns(&self, k: &KeyOwner) -> bool {
        match (self, k) {
            (Owner::Root, KeyOwner::Root) => true,
            (Owner::User(u), KeyOwner::User { name }) => name.eq_ignore_ascii_case(&u.name),
            _ => false,
        }
    }
}

fn check_key_id(id: &str) -> Result<(), IamError> {
    let mut check = Check::new();
    check.length("AccessKeyId", Some(id), 16, 128);
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        check.pattern("AccessKeyId", id, r"[\w]+");
    }
    check.finish()
}

fn key_not_found(id: &str) -> IamError {
    no_such_entity(format!("The Access Key with id {id} cannot be found."))
}

/// The key `id` if it belongs to `owner` in `account`.
fn owned_key(
    txn: &dyn ReadTxn,
    account: &str,
    owner: &Owner,
    id: &str,
) -> Result<AccessKeyRecord, IamError> {
    match record::get::<AccessKeyRecord>(txn, &keys::access_key(id))? {
        Some(k) if k.account == account && owner.owns(&k.owner) => Ok(k),
        _ => Err(key_not_found(id)),
    }
}

pub fn create_access_key(
    s: &Services,
    ctx: &RequestCtx,
    input: CreateAccessKeyInput,
) -> Result<CreateAccessKeyOutput, IamError> {
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let owner = Owner::resolve(
        s,
        &*txn,
        ctx,
        input.user_name.as_deref(),
        "iam:CreateAccessKey",
    )?;
    if scan_keys(&*txn, &owner.index_prefix(account))?.len() >= MAX_KEYS_PER_USER {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"
        )));
    }
    let access_key_id = ids::access_key_id("AKIA");
    let secret = ids::secret_access_key();
    let sealed = seal_secret(s.root_key(), &access_key_id, secret.as_bytes())?;
    record::put(
        &mut *txn,
        &keys::access_key(&access_key_id),
        &AccessKeyRecord {
            v: FORMAT,
            account: account.clone(),
            owner: owner.key_owner(),
            status: KeyStatus::Active,
            created: ctx.now,
            secret_sealed: sealed,
        },
    )?;
    txn.put(&owner.index_key(account, &access_key_id), b"")?;
    txn.commit()?;
    Ok(CreateAccessKeyOutput {
        access_key: AccessKey {
            user_name: owner.user_name(account),
            access_key_id,
            status: StatusType::Active,
            secret_access_key: secret.to_string(),
            create_date: ctx.now,
        },
    })
}

pub fn delete_access_key(
    s: &Services,
    ctx: &RequestCtx,
    input: DeleteAccessKeyInput,
) -> Result<(), IamError> {
    let id = input.access_key_id.as_str();
    let mut check = Check::new();
    check.name("UserName", input.user_name.as_deref(), 128);
    check.finish()?;
    check_key_id(id)?;
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let owner = Owner::resolve(
        s,
        &*txn,
        ctx,
        input.user_name.as_deref(),
        "iam:DeleteAccessKey",
    )?;
    owned_key(&*txn, account, &owner, id)?;
    txn.delete(&keys::access_key(id))?;
    txn.delete(&owner.index_key(account, id))?;
    txn.commit()?;
    Ok(())
}

pub fn update_access_key(
    s: &Services,
    ctx: &RequestCtx,
    input: UpdateAccessKeyInput,
) -> Result<(), IamError> {
    let id = input.access_key_id.as_str();
    let mut check = Check::new();
    check.name("UserName", input.user_name.as_deref(), 128);
    check.finish()?;
    check_key_id(id)?;
    let mut check = Check::new();
    check.enumeration(
        "Status",
        Some(&input.status),
        &["Active", "Inactive", "Expired"],
    );
    check.finish()?;
    let status = match input.status.as_str() {
        "Active" => KeyStatus::Active,
        "Inactive" => KeyStatus::Inactive,
        _ => {
            return Err(IamError::InvalidInput(
                "The Status Expired cannot be set on an access key.".to_string(),
            ));
        }
    };
    let account = &ctx.caller.account;
    let mut txn = s.store().begin_write()?;
    let owner = Owner::resolve(
        s,
        &*txn,
        ctx,
        input.user_name.as_deref(),
        "iam:UpdateAccessKey",
    )?;
    let mut key = owned_key(&*txn, account, &owner, id)?;
    key.status = status;
    record::put(&mut *txn, &keys::access_key(id), &key)?;
    txn.commit()?;
    Ok(())
}

pub fn list_access_keys(
    s: &Services,
    ctx: &RequestCtx,
    input: ListAccessKeysInput,
) -> Result<ListAccessKeysOutput, IamError> {
    let mut check = Check::new();
    check.name("UserName", input.user_name.as_deref(), 128);
    check.finish()?;
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let owner = Owner::resolve(
        s,
        &*txn,
        ctx,
        input.user_name.as_deref(),
        "iam:ListAccessKeys",
    )?;
    let mut found = Vec::new();
    for (key, _) in scan_keys(&*txn, &owner.index_prefix(account))? {
        let Some(id) = key.rsplit('/').next() else {
            continue;
        };
        if let Some(k) = record::get::<AccessKeyRecord>(&*txn, &keys::access_key(id))? {
            found.push((id.to_string(), k));
        }
    }
    let (items, next) = page.apply(found, |(id, _)| id.clone());
    let user_name = owner.user_name(account);
    Ok(ListAccessKeysOutput {
        access_key_metadata: items
            .into_iter()
            .map(|(id, k)| AccessKeyMetadata {
                user_name: user_name.clone(),
                access_key_id: id,
                status: k.status.into(),
                create_date: k.created,
            })
            .collect(),
        is_truncated: next.is_some(),
        marker: next,
    })
}

/// `GetAccessKeyLastUsed`. tresor does not record key use (that would be a write on every
/// request), so every key reports what IAM reports for a key never used: `ServiceName` and
/// `Region` `N/A` and no `LastUsedDate` (IAM API reference, AccessKeyLastUsed).
pub fn get_access_key_last_used(
    s: &Services,
    ctx: &RequestCtx,
    input: GetAccessKeyLastUsedInput,
) -> Result<GetAccessKeyLastUsedOutput, IamError> {
    let id = input.access_key_id.as_str();
    check_key_id(id)?;
    let account = &ctx.caller.account;
    let txn = s.store().begin_read()?;
    let key = record::get::<AccessKeyRecord>(&*txn, &keys::access_key(id))?
        .filter(|k| &k.account == account);
    let owner = match key.as_ref().map(|k| &k.owner) {
        Some(KeyOwner::User { name }) => Some(name.clone()),
        _ => None,
    };
    let Some(owner) = owner else {
        authorize(
            s,
            ctx,
            "iam:GetAccessKeyLastUsed",
            &format!(
                "arn:{}:iam::{account}:user/*",
                tresor_policy::arn::partition()
            ),
        )?;
        return Err(key_not_found(id));
    };
    let user = authorized::<UserRecord>(s, &*txn, ctx, &owner, "iam:GetAccessKeyLastUsed")?;
    Ok(GetAccessKeyLastUsedOutput {
        user_name: Some(user.name),
        access_key_last_used: Some(AccessKeyLastUsed {
            last_used_date: None,
            service_name: "N/A".to_string(),
            region: "N/A".to_string(),
        }),
    })
}
