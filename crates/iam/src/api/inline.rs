//! Inline policies of users, groups and roles (`Put/Get/Delete/List{User,Group,Role}Policies`).
//! The aggregate size of an entity's inline policies, whitespace excluded, is capped at
//! 2,048 (user), 5,120 (group) and 10,240 (role) characters (IAM and AWS STS quotas).

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use tresor_policy::{Policy, PolicyKind, non_whitespace_len};
use tresor_store::ReadTxn;

use super::check::Check;
use super::document::encode_document;
use super::entity::{PolicyHolder, authorized};
use super::errors::{limit_exceeded, no_such_entity, policy_error};
use super::kind_input::kind_inputs;
use super::pagination::Page;
use crate::error::IamError;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

kind_inputs! {
    /// `Put{User,Group,Role}Policy`.
    pub struct PutPolicyInput {
        pub policy_name: String,
        pub policy_document: String,
    }
    PutUserPolicyInput => "UserName",
    PutGroupPolicyInput => "GroupName",
    PutRolePolicyInput => "RoleName",
}

kind_inputs! {
    /// `Get{User,Group,Role}Policy` and `Delete{User,Group,Role}Policy`.
    pub struct PolicyNameInput {
        pub policy_name: String,
    }
    UserPolicyNameInput => "UserName",
    GroupPolicyNameInput => "GroupName",
    RolePolicyNameInput => "RoleName",
}

kind_inputs! {
    /// `List{User,Group,Role}Policies`.
    pub struct ListPoliciesInput {
        pub marker: Option<String>,
        pub max_items: Option<i64>,
    }
    ListUserPoliciesInput => "UserName",
    ListGroupPoliciesInput => "GroupName",
    ListRolePoliciesInput => "RoleName",
}

/// `Get{User,Group,Role}Policy`'s result: `<{Kind}Name>`, `PolicyName` and the
/// percent-encoded `PolicyDocument`.
#[derive(Debug)]
pub struct GetPolicyOutput {
    /// The kind's name member (`UserName`, …).
    pub name_member: &'static str,
    pub name: String,
    pub policy_name: String,
    pub policy_document: String,
}

impl Serialize for GetPolicyOutput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("GetPolicyOutput", 3)?;
        st.serialize_field(self.name_member, &self.name)?;
        st.serialize_field("PolicyName", &self.policy_name)?;
        st.serialize_field("PolicyDocument", &self.policy_document)?;
        st.end()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPoliciesOutput {
    pub policy_names: Vec<String>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

/// The `<Kind>Name` of a policy operation. Checked against 128 characters for every kind
/// (roles included), as tresor always has.
pub(crate) fn check_holder_name<E: PolicyHolder>(name: &str) -> Result<(), IamError> {
    let mut check = Check::new();
    check.name(E::KIND.name_member(), Some(name), 128);
    check.finish()
}

/// The entity `name`, after checking the name and authorizing `action` on it.
pub(crate) fn authorized_holder<E: PolicyHolder>(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    name: &str,
    action: &str,
) -> Result<E, IamError> {
    check_holder_name::<E>(name)?;
    authorized(s, txn, ctx, name, action)
}

fn check_policy_name(name: &str) -> Result<(), IamError> {
    let mut check = Check::new();
    check.name("PolicyName", Some(name), 128);
    check.finish()
}

fn not_found<E: PolicyHolder>(policy: &str) -> IamError {
    no_such_entity(format!(
        "The {} policy with name {policy} cannot be found.",
        E::KIND.word()
    ))
}

pub fn put_policy<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: PutPolicyInput,
) -> Result<(), IamError> {
    let name = input.policy_name.as_str();
    check_policy_name(name)?;
    let doc = input.policy_document.as_str();
    let mut check = Check::new();
    check.length("PolicyDocument", Some(doc), 1, 131_072);
    check.finish()?;
    let action = format!("iam:Put{}Policy", E::KIND.title());
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_holder(s, &*txn, ctx, &input.name, &action)?;
    Policy::parse(doc, PolicyKind::Identity).map_err(policy_error::<IamError>)?;
    let others: usize = entity
        .inline()
        .iter()
        .filter(|(n, _)| n.as_str() != name)
        .map(|(n, d)| non_whitespace_len(n) + non_whitespace_len(d))
        .sum();
    if others + non_whitespace_len(name) + non_whitespace_len(doc) > E::INLINE_LIMIT {
        return Err(limit_exceeded(format!(
            "Maximum policy size of {} bytes exceeded for {} {}.",
            E::INLINE_LIMIT,
            E::KIND.word(),
            entity.name()
        )));
    }
    entity
        .inline_mut()
        .insert(name.to_string(), doc.to_string());
    let key = E::KIND.key(&ctx.caller.account, entity.name());
    record::put(&mut *txn, &key, &entity)?;
    txn.commit()?;
    Ok(())
}

pub fn get_policy<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyNameInput,
) -> Result<GetPolicyOutput, IamError> {
    let name = input.policy_name.as_str();
    check_policy_name(name)?;
    let action = format!("iam:Get{}Policy", E::KIND.title());
    let txn = s.store().begin_read()?;
    let entity: E = authorized_holder(s, &*txn, ctx, &input.name, &action)?;
    let doc = entity
        .inline()
        .get(name)
        .ok_or_else(|| not_found::<E>(name))?;
    Ok(GetPolicyOutput {
        name_member: E::KIND.name_member(),
        name: entity.name().to_string(),
        policy_name: name.to_string(),
        policy_document: encode_document(doc),
    })
}

pub fn delete_policy<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: PolicyNameInput,
) -> Result<(), IamError> {
    let name = input.policy_name.as_str();
    check_policy_name(name)?;
    let action = format!("iam:Delete{}Policy", E::KIND.title());
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized_holder(s, &*txn, ctx, &input.name, &action)?;
    if entity.inline_mut().remove(name).is_none() {
        return Err(not_found::<E>(name));
    }
    let key = E::KIND.key(&ctx.caller.account, entity.name());
    record::put(&mut *txn, &key, &entity)?;
    txn.commit()?;
    Ok(())
}

pub fn list_policies<E: PolicyHolder>(
    s: &Services,
    ctx: &RequestCtx,
    input: ListPoliciesInput,
) -> Result<ListPoliciesOutput, IamError> {
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let action = format!("iam:List{}Policies", E::KIND.title());
    let txn = s.store().begin_read()?;
    let entity: E = authorized_holder(s, &*txn, ctx, &input.name, &action)?;
    let names: Vec<String> = entity.inline().keys().cloned().collect();
    let (items, next) = page.apply(names, Clone::clone);
    Ok(ListPoliciesOutput {
        policy_names: items,
        is_truncated: next.is_some(),
        marker: next,
    })
}
