//! Operations that are the same for every kind of IAM entity, but for names: listing by
//! path prefix, tags (`Tag/Untag/List{User,Role}Tags`) and deletion.

use tresor_store::{ReadTxn, WriteTxn};

use serde::Serialize;

use super::check::{Check, check_tags, merge_tags};
use super::entity::{Entity, PolicyHolder, Tagged, authorize, authorized, scan_all, scan_keys};
use super::errors::{delete_conflict, limit_exceeded};
use super::kind_input::kind_inputs;
use super::pagination::Page;
use crate::error::IamError;
use crate::keys;
use crate::shapes::Tag;
use tresor_core::Services;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

/// Tags per user or role (IAM and AWS STS quotas).
const MAX_TAGS: usize = 50;

/// `List{Users,Roles,Groups,InstanceProfiles}`: the page of entities whose path starts with
/// `path_prefix` (default `/`), by name, and the marker of the next page.
pub(crate) fn list_page<E: Entity>(
    s: &Services,
    ctx: &RequestCtx,
    path_prefix: Option<&str>,
    max_items: Option<i64>,
    marker: Option<&str>,
) -> Result<(Vec<E>, Option<String>), IamError> {
    let prefix = path_prefix.unwrap_or("/");
    let mut check = Check::new();
    check.path_prefix("PathPrefix", Some(prefix));
    check.finish()?;
    let page = Page::new(max_items, marker)?;
    let account = &ctx.caller.account;
    let plural = format!("{}s", E::KIND.title());
    let txn = s.store().begin_read()?;
    authorize(
        s,
        ctx,
        &format!("iam:List{plural}"),
        &format!(
            "arn:{}:iam::{account}:{}{prefix}",
            tresor_policy::arn::partition(),
            E::KIND.word()
        ),
    )?;
    let all: Vec<E> = scan_all::<E>(&*txn, &E::KIND.prefix(account))?
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.path().starts_with(prefix))
        .collect();
    Ok(page.apply(all, |e| e.name().to_lowercase()))
}

kind_inputs! {
    /// `Tag{User,Role}`.
    pub struct TagInput {
        #[serde(default)]
        pub tags: Vec<crate::shapes::TagInput>,
    }
    TagUserInput => "UserName",
    TagRoleInput => "RoleName",
}

kind_inputs! {
    /// `Untag{User,Role}`.
    pub struct UntagInput {
        #[serde(default)]
        pub tag_keys: Vec<String>,
    }
    UntagUserInput => "UserName",
    UntagRoleInput => "RoleName",
}

kind_inputs! {
    /// `List{User,Role}Tags`.
    pub struct ListTagsInput {
        pub marker: Option<String>,
        pub max_items: Option<i64>,
    }
    ListUserTagsInput => "UserName",
    ListRoleTagsInput => "RoleName",
}

/// `List{User,Role}Tags`' result. `<Tags>` is present even when there are none.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsOutput {
    pub tags: Vec<Tag>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

/// The entity name of a kind-generic input, validated against the kind's maximum.
fn check_name<E: Entity>(name: &str) -> Result<(), IamError> {
    let mut check = Check::new();
    check.name(E::KIND.name_member(), Some(name), E::KIND.name_max());
    check.finish()
}

/// `Tag{User,Role}`: adds or replaces tags, up to `TagsPer<Kind>`.
pub fn tag<E: Tagged>(s: &Services, ctx: &RequestCtx, input: TagInput) -> Result<(), IamError> {
    let name = input.name.as_str();
    check_name::<E>(name)?;
    let tags = check_tags("Tags", &input.tags)?;
    let action = format!("iam:Tag{}", E::KIND.title());
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized(s, &*txn, ctx, name, &action)?;
    merge_tags(entity.tags_mut(), tags);
    if entity.tags_mut().len() > MAX_TAGS {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for TagsPer{}: {MAX_TAGS}",
            E::KIND.title()
        )));
    }
    record::put(&mut *txn, &E::KIND.key(&ctx.caller.account, name), &entity)?;
    txn.commit()?;
    Ok(())
}

/// `Untag{User,Role}`: removes tags by key, case-insensitively.
pub fn untag<E: Tagged>(s: &Services, ctx: &RequestCtx, input: UntagInput) -> Result<(), IamError> {
    let name = input.name.as_str();
    check_name::<E>(name)?;
    let remove: Vec<String> = input.tag_keys.iter().map(|k| k.to_lowercase()).collect();
    let action = format!("iam:Untag{}", E::KIND.title());
    let mut txn = s.store().begin_write()?;
    let mut entity: E = authorized(s, &*txn, ctx, name, &action)?;
    entity
        .tags_mut()
        .retain(|(k, _)| !remove.contains(&k.to_lowercase()));
    record::put(&mut *txn, &E::KIND.key(&ctx.caller.account, name), &entity)?;
    txn.commit()?;
    Ok(())
}

/// `List{User,Role}Tags`, by key.
pub fn list_tags<E: Tagged>(
    s: &Services,
    ctx: &RequestCtx,
    input: ListTagsInput,
) -> Result<ListTagsOutput, IamError> {
    let name = input.name.as_str();
    check_name::<E>(name)?;
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let action = format!("iam:List{}Tags", E::KIND.title());
    let txn = s.store().begin_read()?;
    let mut entity: E = authorized(s, &*txn, ctx, name, &action)?;
    let (items, next) = page.apply(std::mem::take(entity.tags_mut()), |(k, _)| k.clone());
    Ok(ListTagsOutput {
        tags: Tag::list(&items),
        is_truncated: next.is_some(),
        marker: next,
    })
}

/// `Delete{User,Role,Group,InstanceProfile}` of the entity `name`: `conflicts` refuses (IAM's
/// `DeleteConflict`) while the entity still has what must go first; then its boundary use,
/// record and unique id are removed in one transaction.
pub(crate) fn delete_named<E: Entity>(
    s: &Services,
    ctx: &RequestCtx,
    name: &str,
    conflicts: impl FnOnce(&dyn ReadTxn, &E) -> Result<(), IamError>,
) -> Result<(), IamError> {
    let mut check = Check::new();
    check.name(E::KIND.name_member(), Some(name), E::KIND.name_max());
    check.finish()?;
    let account = &ctx.caller.account;
    let action = format!("iam:Delete{}", E::KIND.title());
    let mut txn = s.store().begin_write()?;
    let entity: E = authorized(s, &*txn, ctx, name, &action)?;
    conflicts(&*txn, &entity)?;
    release_boundary(&mut *txn, account, &entity)?;
    txn.delete(&E::KIND.key(account, name))?;
    txn.delete(&keys::unique_id(account, entity.id()))?;
    txn.commit()?;
    Ok(())
}

/// Drops `entity`'s entry in its permissions boundary's usage index, if it has one.
fn release_boundary<E: Entity>(
    txn: &mut dyn WriteTxn,
    account: &str,
    entity: &E,
) -> Result<(), IamError> {
    if let Some(b) = entity.boundary()
        && let Some(m) = super::policies::resolve(&*txn, account, b)?
    {
        txn.delete(&keys::boundary_use(
            account,
            &m.index_ref(),
            E::KIND.word(),
            entity.name(),
        ))?;
    }
    Ok(())
}

/// `DeleteConflict` with `message` while anything is stored under `prefix`.
pub(crate) fn refuse_if_any(
    txn: &dyn ReadTxn,
    prefix: &str,
    message: &str,
) -> Result<(), IamError> {
    if scan_keys(txn, prefix)?.is_empty() {
        Ok(())
    } else {
        Err(delete_conflict(message))
    }
}

/// `DeleteConflict` while the entity has inline or attached managed policies.
pub(crate) fn refuse_if_policies<E: PolicyHolder>(entity: &E) -> Result<(), IamError> {
    if !entity.inline().is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !entity.attached().is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    Ok(())
}

/// The condition keys of a `Create{User,Role}` request: `iam:PermissionsBoundary`, then
/// `aws:RequestTag/<key>` and `aws:TagKeys` for each tag.
pub(crate) fn create_context(
    boundary: Option<&str>,
    tags: &[(String, String)],
) -> Vec<(String, String)> {
    let mut context = Vec::new();
    if let Some(b) = boundary {
        context.push(("iam:PermissionsBoundary".to_string(), b.to_string()));
    }
    for (k, v) in tags {
        context.push((format!("aws:RequestTag/{k}"), v.clone()));
        context.push(("aws:TagKeys".to_string(), k.clone()));
    }
    context
}

/// Writes a new entity, its unique id and (with `boundary_ref`) its boundary use.
pub(crate) fn insert_entity<E: Entity>(
    txn: &mut dyn WriteTxn,
    account: &str,
    entity: &E,
    boundary_ref: Option<String>,
) -> Result<(), IamError> {
    let name = entity.name();
    record::put(txn, &E::KIND.key(account, name), entity)?;
    txn.put(&keys::unique_id(account, entity.id()), name.as_bytes())?;
    if let Some(r) = boundary_ref {
        txn.put(
            &keys::boundary_use(account, &r, E::KIND.word(), name),
            name.as_bytes(),
        )?;
    }
    Ok(())
}
