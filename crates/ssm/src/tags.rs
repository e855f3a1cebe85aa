//! AddTagsToResource, RemoveTagsFromResource, ListTagsForResource for `ResourceType`
//! `Parameter` (AWS Systems Manager API Reference, AddTagsToResource). `ResourceId` is the
//! parameter name; adding a key that exists
//! replaces its value; a parameter holds at most 50 tags.

use crate::errors::SsmError;
use serde::{Deserialize, Serialize};
use tresor_core::{RequestCtx, Services};
use tresor_wire::validate::Validator;

use crate::access::{self, begin_authorized_write, load_authorized, save_and_commit};
use crate::errors;
use crate::labels::target_name;
use crate::model::MAX_TAGS;
use crate::shapes::{Empty, Tag};
use crate::values;

/// The `ResourceTypeForTagging` enum (botocore model).
const RESOURCE_TYPES: &[&str] = &[
    "Document",
    "ManagedInstance",
    "MaintenanceWindow",
    "Parameter",
    "PatchBaseline",
    "OpsItem",
    "OpsMetadata",
    "Automation",
    "Association",
    "CloudConnector",
];

fn check_resource_type(v: &mut Validator, resource_type: &str) {
    if !RESOURCE_TYPES.contains(&resource_type) {
        v.fail(
            "ResourceType",
            Some(resource_type),
            &format!(
                "Member must satisfy enum value set: [{}]",
                RESOURCE_TYPES.join(", ")
            ),
        );
    }
}

/// The parameter name of a tagging request. Other resource types are not part of tresor.
fn parameter_of(
    ctx: &RequestCtx,
    resource_type: &str,
    resource_id: &str,
) -> Result<String, SsmError> {
    if resource_type != "Parameter" {
        return Err(errors::invalid_resource_type());
    }
    match target_name(ctx, resource_id) {
        Ok(n) => Ok(n),
        Err(e @ SsmError::AccessDenied(_)) => Err(e),
        Err(_) => Err(errors::invalid_resource_id()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsToResourceInput {
    pub resource_type: String,
    pub resource_id: String,
    pub tags: Vec<Tag>,
}

pub fn add_tags_to_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: AddTagsToResourceInput,
) -> Result<Empty, SsmError> {
    let mut v = Validator::new();
    check_resource_type(&mut v, &input.resource_type);
    values::check_tags(&mut v, &input.tags)?;
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)?;
    let name = parameter_of(ctx, &input.resource_type, &input.resource_id)?;
    let (txn, rec) = begin_authorized_write(services, |txn| {
        load_authorized(
            services,
            txn,
            ctx,
            "ssm:AddTagsToResource",
            &name,
            access::request_tag_context(
                input
                    .tags
                    .iter()
                    .map(|t| (t.key.as_str(), t.value.as_str())),
            ),
        )
    })?;
    let mut rec = rec.ok_or_else(errors::invalid_resource_id)?;
    for t in &input.tags {
        match rec.tags.iter_mut().find(|(k, _)| *k == t.key) {
            Some(slot) => slot.1 = t.value.clone(),
            None => rec.tags.push((t.key.clone(), t.value.clone())),
        }
    }
    if rec.tags.len() > MAX_TAGS {
        return Err(errors::too_many_tags());
    }
    save_and_commit(txn, ctx, &name, &rec)?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTagsFromResourceInput {
    pub resource_type: String,
    pub resource_id: String,
    pub tag_keys: Vec<String>,
}

pub fn remove_tags_from_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: RemoveTagsFromResourceInput,
) -> Result<Empty, SsmError> {
    let mut v = Validator::new();
    check_resource_type(&mut v, &input.resource_type);
    values::check_tag_keys(&mut v, &input.tag_keys)?;
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)?;
    let name = parameter_of(ctx, &input.resource_type, &input.resource_id)?;
    let (txn, rec) = begin_authorized_write(services, |txn| {
        load_authorized(
            services,
            txn,
            ctx,
            "ssm:RemoveTagsFromResource",
            &name,
            input
                .tag_keys
                .iter()
                .map(|k| ("aws:TagKeys".to_string(), k.clone()))
                .collect(),
        )
    })?;
    let mut rec = rec.ok_or_else(errors::invalid_resource_id)?;
    rec.tags.retain(|(k, _)| !input.tag_keys.contains(k));
    save_and_commit(txn, ctx, &name, &rec)?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceInput {
    pub resource_type: String,
    pub resource_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    pub tag_list: Vec<Tag>,
}

pub fn list_tags_for_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, SsmError> {
    let mut v = Validator::new();
    check_resource_type(&mut v, &input.resource_type);
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)?;
    let name = parameter_of(ctx, &input.resource_type, &input.resource_id)?;
    let txn = services.store().begin_read().map_err(errors::internal)?;
    let rec = load_authorized(
        services,
        &*txn,
        ctx,
        "ssm:ListTagsForResource",
        &name,
        vec![],
    )?;
    let rec = rec.ok_or_else(errors::invalid_resource_id)?;
    Ok(ListTagsForResourceOutput {
        tag_list: rec
            .tags
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect(),
    })
}
