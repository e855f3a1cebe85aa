//! The simulated principal and the policies it carries.

use tresor_policy::{PolicyKind, Principal, PrincipalKind, SourcePolicyType};
use tresor_store::ReadTxn;

use super::super::arn::parse_iam_arn;
use super::super::entity::{EntityKind, PolicyHolder};
use super::super::errors::invalid_input;
use super::super::policies::default_document;
use crate::error::IamError;
use crate::identity::UserRecord;
use crate::keys;
use crate::records::GroupRecord;
use crate::records::RoleRecord;
use tresor_core::Services;
use tresor_core::authz::{principal_of, source_type_of};
use tresor_core::ctx::{Caller, CallerKind};
use tresor_core::record;

use super::eval::*;
use super::input::*;
use super::limits::*;

// ---------------------------------------------------------------------------------------
// Principals.

/// The user, group or role an IAM ARN names (account, record), path included in the match.
pub(super) enum Entity {
    User(String, UserRecord),
    Group(String, GroupRecord),
    Role(String, RoleRecord),
}

impl Entity {
    /// `Ok(None)`: a well-formed user/group/role ARN naming nothing; `InvalidInput` for any
    /// other ARN.
    pub(super) fn find(txn: &dyn ReadTxn, arn: &str) -> Result<Option<Entity>, IamError> {
        let Some((account, kind, path, name)) = parse_iam_arn(arn) else {
            return Err(invalid_arn(arn));
        };
        let a = account.to_string();
        Ok(match kind {
            "user" => record::get::<UserRecord>(txn, &keys::user(account, name))?
                .filter(|u| u.path == path && u.name == name)
                .map(|u| Entity::User(a, u)),
            "group" => record::get::<GroupRecord>(txn, &keys::group(account, name))?
                .filter(|g| g.path == path && g.name == name)
                .map(|g| Entity::Group(a, g)),
            "role" => record::get::<RoleRecord>(txn, &keys::role(account, name))?
                .filter(|r| r.path == path && r.name == name)
                .map(|r| Entity::Role(a, r)),
            _ => return Err(invalid_arn(arn)),
        })
    }

    /// The caller a request of this user, or of a session of this role, would have.
    pub(super) fn caller(&self) -> Option<Caller> {
        match self {
            Entity::User(account, u) => Some(Caller {
                account: account.clone(),
                arn: EntityKind::User.arn(account, &u.path, &u.name),
                user_id: u.user_id.clone(),
                kind: CallerKind::User {
                    name: u.name.clone(),
                    path: u.path.clone(),
                    unique_id: u.user_id.clone(),
                },
                access_key_id: String::new(),
            }),
            Entity::Role(account, r) => Some(Caller {
                account: account.clone(),
                arn: format!(
                    "arn:{}:sts::{account}:assumed-role/{}/{SIMULATED_SESSION}",
                    tresor_policy::arn::partition(),
                    r.name
                ),
                user_id: format!("{}:{SIMULATED_SESSION}", r.role_id),
                kind: CallerKind::AssumedRole {
                    role_name: r.name.clone(),
                    role_path: r.path.clone(),
                    role_id: r.role_id.clone(),
                    session_name: SIMULATED_SESSION.to_string(),
                },
                access_key_id: String::new(),
            }),
            Entity::Group(..) => None,
        }
    }

    pub(super) fn principal(&self) -> Principal {
        match self {
            Entity::User(_, u) => self
                .caller()
                .map(|c| principal_of(&c, &u.tags))
                .unwrap_or_else(|| anonymous_user("")),
            Entity::Role(_, r) => self
                .caller()
                .map(|c| principal_of(&c, &r.tags))
                .unwrap_or_else(|| anonymous_user("")),
            // A group never calls anything; it is simulated as a member without a name of its
            // own: the group's ARN and id stand in for the caller's.
            Entity::Group(account, g) => Principal {
                arn: EntityKind::Group.arn(account, &g.path, &g.name),
                account: account.clone(),
                kind: PrincipalKind::User {
                    name: g.name.clone(),
                    unique_id: g.group_id.clone(),
                },
                user_id: g.group_id.clone(),
                tags: Vec::new(),
            },
        }
    }
}

/// The simulated caller `CallerArn` names. It need not exist ("You can simulate resources
/// that don't exist"); an existing user or role contributes its unique id and tags.
pub(super) fn principal_for(txn: &dyn ReadTxn, arn: &str) -> Result<Principal, IamError> {
    if let Some(entity) = Entity::find(txn, arn)? {
        return Ok(entity.principal());
    }
    let Some((account, kind, path, name)) = parse_iam_arn(arn) else {
        return Err(invalid_arn(arn));
    };
    let path_and_name = format!("{}{name}", path.trim_start_matches('/'));
    Ok(match kind {
        "role" => Principal::assumed_role(account, &path_and_name, "", SIMULATED_SESSION),
        "group" => Principal {
            arn: arn.to_string(),
            account: account.to_string(),
            kind: PrincipalKind::User {
                name: name.to_string(),
                unique_id: String::new(),
            },
            user_id: String::new(),
            tags: Vec::new(),
        },
        _ => Principal::user(account, &path_and_name, ""),
    })
}

/// `SimulateCustomPolicy` without `CallerArn`: an unnamed IAM user of the caller's account.
pub(super) fn anonymous_user(account: &str) -> Principal {
    Principal {
        arn: format!(
            "arn:{}:iam::{account}:user/",
            tresor_policy::arn::partition()
        ),
        account: account.to_string(),
        kind: PrincipalKind::User {
            name: String::new(),
            unique_id: String::new(),
        },
        user_id: String::new(),
        tags: Vec::new(),
    }
}

pub(super) fn add_group(
    s: &Services,
    txn: &dyn ReadTxn,
    account: &str,
    group: &GroupRecord,
    out: &mut Vec<Sim>,
) -> Result<(), IamError> {
    for (name, text) in group.inline() {
        out.push(Sim::new(
            cached(s, PolicyKind::Identity, text)?,
            name.clone(),
            SourcePolicyType::Group.as_str(),
        ));
    }
    for arn in group.attached() {
        if let Some(text) = default_document(txn, account, arn)? {
            out.push(Sim::new(
                cached(s, PolicyKind::Identity, &text)?,
                arn.clone(),
                source_type_of(arn).as_str(),
            ));
        }
    }
    Ok(())
}

pub(super) fn invalid_arn(arn: &str) -> IamError {
    invalid_input(format!(
        "Invalid Entity Arn: {arn} does not clearly define entity type and name."
    ))
}

pub(super) fn not_found(arn: &str) -> IamError {
    match parse_iam_arn(arn) {
        Some((_, "user", _, name)) => EntityKind::User.not_found(name),
        Some((_, "group", _, name)) => EntityKind::Group.not_found(name),
        Some((_, "role", _, name)) => EntityKind::Role.not_found(name),
        _ => invalid_arn(arn),
    }
}
