//! The layout of tresor's keys in the ordered key-value store.
//!
//! `acct/<account>/iam/…` holds IAM (global per account); `acct/<account>/region/<r>/<svc>/…`
//! regional services; `sys/…` the deployment itself. Names that AWS treats
//! case-insensitively (users, roles, policies) are keyed by their lowercase form.

pub fn deployment() -> &'static str {
    "sys/deployment"
}

pub fn account(account: &str) -> String {
    format!("sys/account/{account}")
}

pub fn access_key(access_key_id: &str) -> String {
    format!("sys/accesskey/{access_key_id}")
}

pub fn session(access_key_id: &str) -> String {
    format!("sys/session/{access_key_id}")
}

pub fn user(account: &str, name: &str) -> String {
    format!("acct/{account}/iam/user/{}", name.to_lowercase())
}

pub fn user_prefix(account: &str) -> String {
    format!("acct/{account}/iam/user/")
}

pub fn user_access_key(account: &str, user: &str, access_key_id: &str) -> String {
    format!(
        "acct/{account}/iam/userkey/{}/{access_key_id}",
        user.to_lowercase()
    )
}

pub fn user_access_key_prefix(account: &str, user: &str) -> String {
    format!("acct/{account}/iam/userkey/{}/", user.to_lowercase())
}

/// The index entry of an access key of the account root (CreateAccessKey without a user name,
/// signed by root).
pub fn root_access_key(account: &str, access_key_id: &str) -> String {
    format!("acct/{account}/iam/rootkey/{access_key_id}")
}

pub fn root_access_key_prefix(account: &str) -> String {
    format!("acct/{account}/iam/rootkey/")
}

pub fn role(account: &str, name: &str) -> String {
    format!("acct/{account}/iam/role/{}", name.to_lowercase())
}

pub fn role_prefix(account: &str) -> String {
    format!("acct/{account}/iam/role/")
}

pub fn unique_id(account: &str, id: &str) -> String {
    format!("acct/{account}/iam/uid/{id}")
}

pub fn group(account: &str, name: &str) -> String {
    format!("acct/{account}/iam/group/{}", name.to_lowercase())
}

pub fn group_prefix(account: &str) -> String {
    format!("acct/{account}/iam/group/")
}

/// Membership index, both directions: `groupmember/<group>/<user>` and
/// `usergroup/<user>/<group>`; values are the case-preserved name of the last segment.
pub fn group_member(account: &str, group: &str, user: &str) -> String {
    format!(
        "acct/{account}/iam/groupmember/{}/{}",
        group.to_lowercase(),
        user.to_lowercase()
    )
}

pub fn group_member_prefix(account: &str, group: &str) -> String {
    format!("acct/{account}/iam/groupmember/{}/", group.to_lowercase())
}

pub fn user_group(account: &str, user: &str, group: &str) -> String {
    format!(
        "acct/{account}/iam/usergroup/{}/{}",
        user.to_lowercase(),
        group.to_lowercase()
    )
}

pub fn user_group_prefix(account: &str, user: &str) -> String {
    format!("acct/{account}/iam/usergroup/{}/", user.to_lowercase())
}

/// Customer managed policies, by lowercase name (names are unique per account regardless
/// of path).
pub fn policy(account: &str, name: &str) -> String {
    format!("acct/{account}/iam/policy/{}", name.to_lowercase())
}

pub fn policy_prefix(account: &str) -> String {
    format!("acct/{account}/iam/policy/")
}

/// Attachment index of a managed policy: `policyattach/<policy>/<kind>/<entity>`, where
/// `<policy>` is [`policy_ref`] and `<kind>` is `group`, `role` or `user`; the value is the
/// entity's case-preserved name.
pub fn policy_attachment(account: &str, policy_ref: &str, kind: &str, entity: &str) -> String {
    format!(
        "acct/{account}/iam/policyattach/{policy_ref}/{kind}/{}",
        entity.to_lowercase()
    )
}

pub fn policy_attachment_prefix(account: &str, policy_ref: &str) -> String {
    format!("acct/{account}/iam/policyattach/{policy_ref}/")
}

/// Which entities use a managed policy as their permissions boundary (same layout as
/// [`policy_attachment`]).
pub fn boundary_use(account: &str, policy_ref: &str, kind: &str, entity: &str) -> String {
    format!(
        "acct/{account}/iam/boundaryuse/{policy_ref}/{kind}/{}",
        entity.to_lowercase()
    )
}

pub fn boundary_use_prefix(account: &str, policy_ref: &str) -> String {
    format!("acct/{account}/iam/boundaryuse/{policy_ref}/")
}

/// The index component naming a managed policy: `local/<lowercase name>` for customer
/// managed policies, `aws/<lowercase name>` for AWS managed ones.
pub fn policy_ref(aws_managed: bool, name: &str) -> String {
    let scope = if aws_managed { "aws" } else { "local" };
    format!("{scope}/{}", name.to_lowercase())
}

pub fn instance_profile(account: &str, name: &str) -> String {
    format!("acct/{account}/iam/instanceprofile/{}", name.to_lowercase())
}

pub fn instance_profile_prefix(account: &str) -> String {
    format!("acct/{account}/iam/instanceprofile/")
}

/// Index: the instance profiles a role is in (value: the profile's case-preserved name).
pub fn role_instance_profile(account: &str, role: &str, profile: &str) -> String {
    format!(
        "acct/{account}/iam/roleprofile/{}/{}",
        role.to_lowercase(),
        profile.to_lowercase()
    )
}

pub fn role_instance_profile_prefix(account: &str, role: &str) -> String {
    format!("acct/{account}/iam/roleprofile/{}/", role.to_lowercase())
}

/// An OpenID Connect provider by its URL without the scheme (`<host/path>`).
pub fn oidc_provider(account: &str, host_path: &str) -> String {
    format!("acct/{account}/iam/oidc/{host_path}")
}

pub fn oidc_provider_prefix(account: &str) -> String {
    format!("acct/{account}/iam/oidc/")
}
