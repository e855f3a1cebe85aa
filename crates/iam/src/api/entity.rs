//! Entities: users, groups, roles and instance profiles share lookup, ARNs, errors and the
//! authorization of the operations on them; record scans.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tresor_store::ReadTxn;

use super::errors::{already_exists, no_such_entity};
use crate::error::IamError;
use crate::keys;
use crate::records::{GroupRecord, InstanceProfileRecord, RoleRecord, UserRecord};
use tresor_core::Services;
use tresor_core::authz::AuthzRequest;
use tresor_core::ctx::RequestCtx;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    User,
    Group,
    Role,
    InstanceProfile,
}

impl EntityKind {
    /// The ARN resource type and index word.
    pub(crate) fn word(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Group => "group",
            EntityKind::Role => "role",
            EntityKind::InstanceProfile => "instance-profile",
        }
    }

    /// As it appears in operation names (`PutRolePolicy`).
    pub(crate) fn title(self) -> &'static str {
        match self {
            EntityKind::User => "User",
            EntityKind::Group => "Group",
            EntityKind::Role => "Role",
            EntityKind::InstanceProfile => "InstanceProfile",
        }
    }

    /// The request member naming the entity (`RoleName`).
    pub(crate) fn name_member(self) -> &'static str {
        match self {
            EntityKind::User => "UserName",
            EntityKind::Group => "GroupName",
            EntityKind::Role => "RoleName",
            EntityKind::InstanceProfile => "InstanceProfileName",
        }
    }

    pub(crate) fn key(self, account: &str, name: &str) -> String {
        match self {
            EntityKind::User => keys::user(account, name),
            EntityKind::Group => keys::group(account, name),
            EntityKind::Role => keys::role(account, name),
            EntityKind::InstanceProfile => keys::instance_profile(account, name),
        }
    }

    /// The key prefix under which every entity of this kind is stored.
    pub(crate) fn prefix(self, account: &str) -> String {
        match self {
            EntityKind::User => keys::user_prefix(account),
            EntityKind::Group => keys::group_prefix(account),
            EntityKind::Role => keys::role_prefix(account),
            EntityKind::InstanceProfile => keys::instance_profile_prefix(account),
        }
    }

    /// The longest name an operation on an existing entity accepts (botocore
    /// `existingUserNameType`, `groupNameType`: 128; `roleNameType`: 64;
    /// `instanceProfileNameType`: 128). Creating a user allows only 64.
    pub(crate) fn name_max(self) -> usize {
        match self {
            EntityKind::Role => 64,
            EntityKind::User | EntityKind::Group | EntityKind::InstanceProfile => 128,
        }
    }

    pub(crate) fn arn(self, account: &str, path: &str, name: &str) -> String {
        format!(
            "arn:{}:iam::{account}:{}{path}{name}",
            tresor_policy::arn::partition(),
            self.word()
        )
    }

    /// `NoSuchEntity` in IAM's wording, as whichever error type the caller returns.
    pub(crate) fn not_found<E: From<IamError>>(self, name: &str) -> E {
        let e = match self {
            EntityKind::InstanceProfile => {
                no_such_entity(format!("Instance Profile {name} cannot be found."))
            }
            kind => no_such_entity(format!(
                "The {} with name {name} cannot be found.",
                kind.word()
            )),
        };
        e.into()
    }

    pub(crate) fn exists(self, name: &str) -> IamError {
        match self {
            EntityKind::InstanceProfile => {
                already_exists(format!("Instance Profile {name} already exists."))
            }
            kind => already_exists(format!("{} with name {name} already exists.", kind.title())),
        }
    }
}

/// A stored IAM entity.
pub trait Entity: Serialize + DeserializeOwned {
    const KIND: EntityKind;
    fn name(&self) -> &str;
    fn path(&self) -> &str;
    fn id(&self) -> &str;
    fn arn(&self, account: &str) -> String {
        Self::KIND.arn(account, self.path(), self.name())
    }
    /// The permissions boundary ARN (users and roles only).
    fn boundary(&self) -> Option<&str> {
        None
    }
}

/// An entity that carries inline and attached managed policies.
pub trait PolicyHolder: Entity {
    /// Aggregate inline policy size quota (characters, whitespace excluded).
    const INLINE_LIMIT: usize;
    fn inline(&self) -> &BTreeMap<String, String>;
    fn inline_mut(&mut self) -> &mut BTreeMap<String, String>;
    fn attached(&self) -> &[String];
    fn attached_mut(&mut self) -> &mut Vec<String>;
    /// The permissions boundary slot (users and roles only).
    fn boundary_mut(&mut self) -> Option<&mut Option<String>> {
        None
    }
}

/// An entity with `Tag<Kind>`/`Untag<Kind>`/`List<Kind>Tags` operations.
pub trait Tagged: Entity {
    fn tags_mut(&mut self) -> &mut Vec<(String, String)>;
}

/// Implements [`Entity`] for a record with `name`, `path` and `created` fields and the
/// given id field; `boundary` names its permissions boundary field, if it has one.
macro_rules! impl_entity {
    ($record:ty, $kind:ident, $id:ident $(, boundary = $boundary:ident)?) => {
        impl Entity for $record {
            const KIND: EntityKind = EntityKind::$kind;
            fn name(&self) -> &str {
                &self.name
            }
            fn path(&self) -> &str {
                &self.path
            }
            fn id(&self) -> &str {
                &self.$id
            }
            $(fn boundary(&self) -> Option<&str> {
                self.$boundary.as_deref()
            })?
        }
    };
}

/// Implements [`PolicyHolder`] for a record with `inline_policies` and `attached_policies`
/// fields; `boundary` names its permissions boundary field, if it has one.
macro_rules! impl_policy_holder {
    ($record:ty, $limit:expr $(, boundary = $boundary:ident)?) => {
        impl PolicyHolder for $record {
            const INLINE_LIMIT: usize = $limit;
            fn inline(&self) -> &::std::collections::BTreeMap<String, String> {
                &self.inline_policies
            }
            fn inline_mut(&mut self) -> &mut ::std::collections::BTreeMap<String, String> {
                &mut self.inline_policies
            }
            fn attached(&self) -> &[String] {
                &self.attached_policies
            }
            fn attached_mut(&mut self) -> &mut Vec<String> {
                &mut self.attached_policies
            }
            $(fn boundary_mut(&mut self) -> Option<&mut Option<String>> {
                Some(&mut self.$boundary)
            })?
        }
    };
}

impl_entity!(UserRecord, User, user_id, boundary = permissions_boundary);
impl_policy_holder!(
    UserRecord,
    tresor_policy::USER_INLINE_POLICIES_MAX_SIZE,
    boundary = permissions_boundary
);

impl Tagged for UserRecord {
    fn tags_mut(&mut self) -> &mut Vec<(String, String)> {
        &mut self.tags
    }
}

impl_entity!(GroupRecord, Group, group_id);
impl_policy_holder!(GroupRecord, tresor_policy::GROUP_INLINE_POLICIES_MAX_SIZE);

impl_entity!(RoleRecord, Role, role_id, boundary = permissions_boundary);
impl_policy_holder!(
    RoleRecord,
    tresor_policy::ROLE_INLINE_POLICIES_MAX_SIZE,
    boundary = permissions_boundary
);

impl Tagged for RoleRecord {
    fn tags_mut(&mut self) -> &mut Vec<(String, String)> {
        &mut self.tags
    }
}

impl_entity!(InstanceProfileRecord, InstanceProfile, instance_profile_id);

/// Reads the entity `name` after authorizing `action` on it (see [`lookup`]).
pub(crate) fn authorized<E: Entity>(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
) -> Result<E, IamError> {
    authorized_in_context(s, txn, ctx, name, action, Vec::new())
}

/// As [`authorized`], with condition keys in the request context.
pub(crate) fn authorized_in_context<E: Entity>(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
    context: Vec<(String, String)>,
) -> Result<E, IamError> {
    let (entity, arn) = lookup::<E>(txn, &ctx.caller.account, name)?;
    let mut req = AuthzRequest::new(action, &arn);
    req.context = tresor_core::owned_conditions(context);
    authorize_with(s, ctx, &req)?;
    entity.ok_or_else(|| E::KIND.not_found(name))
}

/// Reads an entity by name and returns it with the ARN to authorize against: the stored
/// entity's ARN (with its path), or the default-path ARN when it does not exist — IAM
/// authorizes before it reveals whether the entity exists.
pub(crate) fn lookup<T: Entity>(
    txn: &dyn ReadTxn,
    account: &str,
    name: &str,
) -> Result<(Option<T>, String), IamError> {
    let record = tresor_core::record::get::<T>(txn, &T::KIND.key(account, name))?;
    let arn = match &record {
        Some(r) => r.arn(account),
        None => T::KIND.arn(account, "/", name),
    };
    Ok((record, arn))
}

/// Asks the Authorizer about `action` on `resource`.
pub(crate) fn authorize(
    s: &Services,
    ctx: &RequestCtx,
    action: &str,
    resource: &str,
) -> Result<(), IamError> {
    s.authorize(ctx, &AuthzRequest::new(action, resource))?;
    Ok(())
}

pub(crate) fn authorize_with(
    s: &Services,
    ctx: &RequestCtx,
    req: &AuthzRequest<'_>,
) -> Result<(), IamError> {
    s.authorize(ctx, req)?;
    Ok(())
}

/// Scans every record under `prefix` (IAM listings are small; pagination is applied after
/// filtering).
pub(crate) fn scan_all<T: DeserializeOwned>(
    txn: &dyn ReadTxn,
    prefix: &str,
) -> Result<Vec<(String, T)>, IamError> {
    const CHUNK: usize = 1000;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = tresor_core::record::scan::<T>(txn, prefix, after.as_deref(), CHUNK)?;
        let n = batch.len();
        after = batch.last().map(|(k, _)| k.clone());
        out.extend(batch);
        if n < CHUNK {
            return Ok(out);
        }
    }
}

/// Keys (with raw values) under `prefix`.
pub(crate) fn scan_keys(
    txn: &dyn ReadTxn,
    prefix: &str,
) -> Result<Vec<(String, String)>, IamError> {
    const CHUNK: usize = 1000;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = txn.scan(prefix, after.as_deref(), CHUNK)?;
        let n = batch.len();
        after = batch.last().map(|(k, _)| k.clone());
        out.extend(
            batch
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())),
        );
        if n < CHUNK {
            return Ok(out);
        }
    }
}
