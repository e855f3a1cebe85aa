//! What the Authorizer and Secrets Manager need to know about principals: the identity
//! policies in force for a caller, roles by ARN, and the unique-id index that principal
//! capture resolves through (IAM User Guide, "Principal": ARNs of users and roles are bound
//! to unique ids when a resource policy is saved).

use tresor_store::ReadTxn;

use super::arn::parse_iam_arn;
use super::entity::{Entity, PolicyHolder};
use super::groups::groups_of_user;
use super::policies::default_document;
use crate::identity::{SessionPrincipal, SessionRecord, UserRecord};
use crate::keys;
use crate::records::{GroupRecord, InstanceProfileRecord, ManagedPolicyRecord, RoleRecord};
use tresor_core::ctx::{Caller, CallerKind};
use tresor_core::directory::IdentityPolicies;
use tresor_core::error::ServiceError;
use tresor_core::record;

fn add_holder<E: PolicyHolder>(
    out: &mut IdentityPolicies,
    txn: &dyn ReadTxn,
    account: &str,
    e: &E,
) -> Result<(), ServiceError> {
    for (name, doc) in e.inline() {
        out.policies.push((
            format!("inline policy {name} of {} {}", E::KIND.word(), e.name()),
            doc.clone(),
        ));
    }
    for arn in e.attached() {
        if let Some(doc) = default_document(txn, account, arn)? {
            out.policies.push((arn.clone(), doc));
        }
    }
    Ok(())
}

/// The identity policies of `caller`: for a user, its inline and attached policies and those
/// of its groups, and its boundary; for a role session, the role's policies and boundary plus
/// the session's policies and tags; for root, nothing (root is not governed by identity
/// policies).
pub fn identity_policies(
    txn: &dyn ReadTxn,
    caller: &Caller,
) -> Result<IdentityPolicies, ServiceError> {
    let mut out = IdentityPolicies::default();
    let account = caller.account.as_str();
    match &caller.kind {
        CallerKind::Root => {}
        CallerKind::User {
            name, unique_id, ..
        } => {
            let Some(user) = record::get::<UserRecord>(txn, &keys::user(account, name))? else {
                return Ok(out);
            };
            if &user.user_id != unique_id {
                return Ok(out);
            }
            add_holder(&mut out, txn, account, &user)?;
            for group in groups_of_user(txn, account, &user.name)? {
                add_holder::<GroupRecord>(&mut out, txn, account, &group)?;
            }
            if let Some(b) = &user.permissions_boundary {
                out.boundary = default_document(txn, account, b)?;
            }
            out.principal_tags = user.tags.clone();
        }
        CallerKind::AssumedRole {
            role_name, role_id, ..
        } => {
            let Some(role) = record::get::<RoleRecord>(txn, &keys::role(account, role_name))?
            else {
                return Ok(out);
            };
            if &role.role_id != role_id {
                return Ok(out);
            }
            add_holder(&mut out, txn, account, &role)?;
            if let Some(b) = &role.permissions_boundary {
                out.boundary = default_document(txn, account, b)?;
            }
            out.principal_tags = role.tags.clone();
            if let Some(session) =
                record::get::<SessionRecord>(txn, &keys::session(&caller.access_key_id))?
                && let SessionPrincipal::Role { policies, tags, .. } = session.principal
            {
                out.session_policies = policies.into_iter().map(|(_, doc)| doc).collect();
                super::check::merge_tags(&mut out.principal_tags, tags);
            }
        }
    }
    Ok(out)
}

/// The role an ARN names (`arn:aws:iam::<account>:role/<path><name>`; the path must match).
pub fn role_by_arn(txn: &dyn ReadTxn, arn: &str) -> Result<Option<RoleRecord>, ServiceError> {
    let Some((account, "role", path, name)) = parse_iam_arn(arn) else {
        return Ok(None);
    };
    Ok(record::get::<RoleRecord>(txn, &keys::role(account, name))?
        .filter(|r| r.path == path && r.name == name))
}

/// The current ARN of the entity with unique id `unique_id` in `account` (`AIDA…` user,
/// `AROA…` role, `AGPA…` group, `ANPA…` policy, `AIPA…` instance profile); `None` once
/// the entity is deleted.
pub fn arn_for_unique_id(
    txn: &dyn ReadTxn,
    account: &str,
    unique_id: &str,
) -> Result<Option<String>, ServiceError> {
    let Some(bytes) = txn.get(&keys::unique_id(account, unique_id))? else {
        return Ok(None);
    };
    let name = String::from_utf8_lossy(&bytes).into_owned();
    fn check<E: Entity>(r: Option<E>, id: &str, account: &str) -> Option<String> {
        r.filter(|r| r.id() == id).map(|r| r.arn(account))
    }
    Ok(match unique_id.get(..4) {
        Some("AIDA") => check(
            record::get::<UserRecord>(txn, &keys::user(account, &name))?,
            unique_id,
            account,
        ),
        Some("AROA") => check(
            record::get::<RoleRecord>(txn, &keys::role(account, &name))?,
            unique_id,
            account,
        ),
        Some("AGPA") => check(
            record::get::<GroupRecord>(txn, &keys::group(account, &name))?,
            unique_id,
            account,
        ),
        Some("AIPA") => check(
            record::get::<InstanceProfileRecord>(txn, &keys::instance_profile(account, &name))?,
            unique_id,
            account,
        ),
        Some("ANPA") => record::get::<ManagedPolicyRecord>(txn, &keys::policy(account, &name))?
            .filter(|p| p.policy_id == unique_id)
            .map(|p| p.arn(account)),
        _ => None,
    })
}

/// The unique id of the user, role, group, instance profile or customer managed policy an
/// ARN names; `None` when there is none (or the ARN names something else, e.g. a session).
pub fn unique_id_for_arn(txn: &dyn ReadTxn, arn: &str) -> Result<Option<String>, ServiceError> {
    let Some((account, kind, path, name)) = parse_iam_arn(arn) else {
        return Ok(None);
    };
    fn id_of<E: Entity>(r: Option<E>, path: &str, name: &str) -> Option<String> {
        r.filter(|r| r.path() == path && r.name() == name)
            .map(|r| r.id().to_string())
    }
    Ok(match kind {
        "user" => id_of(
            record::get::<UserRecord>(txn, &keys::user(account, name))?,
            &path,
            name,
        ),
        "role" => id_of(
            record::get::<RoleRecord>(txn, &keys::role(account, name))?,
            &path,
            name,
        ),
        "group" => id_of(
            record::get::<GroupRecord>(txn, &keys::group(account, name))?,
            &path,
            name,
        ),
        "instance-profile" => id_of(
            record::get::<InstanceProfileRecord>(txn, &keys::instance_profile(account, name))?,
            &path,
            name,
        ),
        "policy" => record::get::<ManagedPolicyRecord>(txn, &keys::policy(account, name))?
            .filter(|p| p.path == path && p.name == name)
            .map(|p| p.policy_id),
        _ => None,
    })
}
