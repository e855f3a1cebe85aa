//! Key tags: TagResource, UntagResource, ListResourceTags (and the validation CreateKey
//! shares). Tags are kept sorted by key, so a page marker is simply the last key returned.

use crate::errors::KmsError;
use serde::{Deserialize, Serialize};
use tresor_core::{RequestCtx, Services};
use tresor_wire::validate::Validator;

use super::{
    Empty, authorized_key, finish, page_limit, read, refuse_aws_managed, save_and_commit,
    validate_key_id, validate_key_page, write_authorized,
};
use crate::errors;
use crate::keys::require_not_pending;
use crate::model::{KeyRecord, Tag};

/// Tags per key (KMS Developer Guide, "Quotas": 50 tags per KMS key).
const MAX_TAGS: usize = 50;

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct TagInput {
    pub tag_key: String,
    pub tag_value: String,
}

fn too_many_tags() -> KmsError {
    errors::limit_exceeded(format!(
        "The number of tags exceeds the limit of {MAX_TAGS} for this key."
    ))
}

/// The tags of CreateKey and TagResource: at most 50 (checked first, so an oversized list
/// costs no more than its parsing), keys 1–128 and values 0–256 characters.
pub(crate) fn validate_tags(v: &mut Validator, tags: &[TagInput]) -> Result<(), KmsError> {
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    for (i, t) in tags.iter().enumerate() {
        let n = i + 1;
        v.length(&format!("Tags.{n}.member.tagKey"), Some(&t.tag_key), 1, 128);
        v.length(
            &format!("Tags.{n}.member.tagValue"),
            Some(&t.tag_value),
            0,
            256,
        );
    }
    Ok(())
}

/// `TagKeys` of UntagResource: each 1–128 characters. A key holds at most 50 tags, so a
/// longer list is refused before any key is looked at; the keys are not quoted back.
pub(crate) fn validate_tag_keys(v: &mut Validator, keys: &[String]) -> Result<(), KmsError> {
    if keys.len() > MAX_TAGS {
        return Err(errors::validation(format!(
            "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}"
        )));
    }
    for (i, t) in keys.iter().enumerate() {
        v.length(&format!("TagKeys.{}.member", i + 1), Some(t), 1, 128);
    }
    Ok(())
}

/// Merges `tags` into the key (a repeated key replaces the value, as on AWS).
pub(crate) fn apply_tags(key: &mut KeyRecord, tags: &[TagInput]) -> Result<(), KmsError> {
    for t in tags {
        if t.tag_key.starts_with("aws:") {
            return Err(errors::tag_error("Tags beginning with aws: are reserved."));
        }
        match key
            .tags
            .binary_search_by(|x| x.key.as_str().cmp(&t.tag_key))
        {
            Ok(i) => key.tags[i].value = t.tag_value.clone(),
            Err(i) => key.tags.insert(
                i,
                Tag {
                    key: t.tag_key.clone(),
                    value: t.tag_value.clone(),
                },
            ),
        }
    }
    if key.tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    pub key_id: String,
    pub tags: Vec<TagInput>,
}

pub fn tag_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: TagResourceInput,
) -> Result<Empty, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(&input.key_id));
    validate_tags(&mut v, &input.tags)?;
    finish(v)?;
    let extra: Vec<(String, String)> = input
        .tags
        .iter()
        .map(|t| ("aws:TagKeys".to_string(), t.tag_key.clone()))
        .collect();
    let (txn, mut key) = write_authorized(services, |txn| {
        authorized_key(
            services,
            txn,
            ctx,
            &input.key_id,
            "kms:TagResource",
            tresor_core::owned_conditions(extra.clone()),
        )
    })?;
    refuse_aws_managed(&key)?;
    require_not_pending(&key)?;
    apply_tags(&mut key, &input.tags)?;
    save_and_commit(txn, &key)?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    pub key_id: String,
    pub tag_keys: Vec<String>,
}

pub fn untag_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: UntagResourceInput,
) -> Result<Empty, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(&input.key_id));
    validate_tag_keys(&mut v, &input.tag_keys)?;
    finish(v)?;
    let extra: Vec<(String, String)> = input
        .tag_keys
        .iter()
        .map(|t| ("aws:TagKeys".to_string(), t.clone()))
        .collect();
    let (txn, mut key) = write_authorized(services, |txn| {
        authorized_key(
            services,
            txn,
            ctx,
            &input.key_id,
            "kms:UntagResource",
            tresor_core::owned_conditions(extra.clone()),
        )
    })?;
    refuse_aws_managed(&key)?;
    require_not_pending(&key)?;
    key.tags.retain(|t| !input.tag_keys.contains(&t.key));
    save_and_commit(txn, &key)?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResourceTagsInput {
    pub key_id: String,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResourceTagsOutput {
    pub tags: Vec<TagInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

pub fn list_resource_tags(
    services: &Services,
    ctx: &RequestCtx,
    input: ListResourceTagsInput,
) -> Result<ListResourceTagsOutput, KmsError> {
    validate_key_page(&input.key_id, input.limit, input.marker.as_deref())?;
    let limit = page_limit(input.limit, 50, 50);
    let txn = read(services)?;
    let key = authorized_key(
        services,
        &*txn,
        ctx,
        &input.key_id,
        "kms:ListResourceTags",
        Vec::new(),
    )?;
    let start = match &input.marker {
        None => 0,
        Some(m) => key
            .tags
            .iter()
            .position(|t| &t.key == m)
            .map(|i| i + 1)
            .ok_or_else(errors::invalid_marker)?,
    };
    let rest = &key.tags[start..];
    let truncated = rest.len() > limit;
    let tags: Vec<TagInput> = rest
        .iter()
        .take(limit)
        .map(|t| TagInput {
            tag_key: t.key.clone(),
            tag_value: t.value.clone(),
        })
        .collect();
    let next_marker = truncated
        .then(|| tags.last().map(|t| t.tag_key.clone()))
        .flatten();
    Ok(ListResourceTagsOutput {
        tags,
        next_marker,
        truncated,
    })
}
