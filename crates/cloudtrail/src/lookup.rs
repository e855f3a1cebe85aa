//! `LookupEvents` (CloudTrail API Reference): the event history of the caller's account in
//! the request's region, newest first, filtered by at most one lookup attribute and a time
//! range, 50 events a page at most.
//!
//! `NextToken` is the key of the last event of the previous page plus a digest of the
//! parameters; a token used with other parameters is `InvalidNextTokenException` (as the
//! API reference says).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_core::authz::AuthzRequest;
use tresor_core::{RequestCtx, Services};
use tresor_wire::json::epoch_seconds;

use crate::errors::CloudTrailError;
use crate::record::{self, Cursor, StoredEvent};

/// MaxResults' default and maximum (model `MaxResults`: 1–50; API reference: default 50).
pub const MAX_RESULTS: i64 = 50;
/// CloudTrail's event history covers the last 90 days.
pub const HISTORY_DAYS: i64 = 90;
/// Model: the maximum length of `AttributeValue`.
const MAX_ATTRIBUTE_VALUE: usize = 2000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupAttribute {
    pub attribute_key: String,
    pub attribute_value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsInput {
    pub lookup_attributes: Option<Vec<LookupAttribute>>,
    #[serde(default, with = "epoch_seconds::option")]
    pub start_time: Option<OffsetDateTime>,
    #[serde(default, with = "epoch_seconds::option")]
    pub end_time: Option<OffsetDateTime>,
    pub event_category: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    pub resource_type: String,
    pub resource_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub event_id: String,
    pub event_name: String,
    pub read_only: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(with = "epoch_seconds")]
    pub event_time: OffsetDateTime,
    pub event_source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub resources: Vec<Resource>,
    pub cloud_trail_event: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsOutput {
    pub events: Vec<Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// One lookup attribute, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribute {
    EventId(String),
    EventName(String),
    ReadOnly(bool),
    Username(String),
    ResourceType(String),
    ResourceName(String),
    EventSource(String),
    AccessKeyId(String),
}

impl Attribute {
    fn parse(a: &LookupAttribute) -> Result<Attribute, CloudTrailError> {
        let value = a.attribute_value.clone();
        if value.is_empty() || value.chars().count() > MAX_ATTRIBUTE_VALUE {
            return Err(CloudTrailError::InvalidLookupAttributes(format!(
                "The attribute value must be between 1 and {MAX_ATTRIBUTE_VALUE} characters."
            )));
        }
        Ok(match a.attribute_key.as_str() {
            "EventId" => Attribute::EventId(value),
            "EventName" => Attribute::EventName(value),
            "ReadOnly" => match value.as_str() {
                "true" => Attribute::ReadOnly(true),
                "false" => Attribute::ReadOnly(false),
                _ => {
                    return Err(CloudTrailError::InvalidLookupAttributes(
                        "ReadOnly must be true or false.".into(),
                    ));
                }
            },
            "Username" => Attribute::Username(value),
            "ResourceType" => Attribute::ResourceType(value),
            "ResourceName" => Attribute::ResourceName(value),
            "EventSource" => Attribute::EventSource(value),
            "AccessKeyId" => Attribute::AccessKeyId(value),
            other => {
                return Err(CloudTrailError::InvalidLookupAttributes(format!(
                    "Invalid attribute key: {}",
                    other.chars().take(64).collect::<String>()
                )));
            }
        })
    }

    pub fn matches(&self, e: &StoredEvent) -> bool {
        match self {
            Attribute::EventId(v) => &e.event_id == v,
            Attribute::EventName(v) => &e.event_name == v,
            Attribute::ReadOnly(v) => e.read_only == *v,
            Attribute::Username(v) => e.username.as_ref() == Some(v),
            Attribute::ResourceType(v) => e.resources.iter().any(|(t, _)| t == v),
            Attribute::ResourceName(v) => e.resources.iter().any(|(_, n)| n == v),
            Attribute::EventSource(v) => &e.event_source == v,
            Attribute::AccessKeyId(v) => e.access_key_id.as_ref() == Some(v),
        }
    }
}

/// Whether the caller's account and region see `e`.
pub fn visible(ctx: &RequestCtx, e: &StoredEvent) -> bool {
    e.account == ctx.caller.account && e.region == ctx.region
}

/// Asks the Authorizer for `cloudtrail:LookupEvents` (no resource-level permissions).
pub fn authorize_lookup(services: &Services, ctx: &RequestCtx) -> Result<(), CloudTrailError> {
    services
        .authorize(ctx, &AuthzRequest::new("cloudtrail:LookupEvents", "*"))
        .map_err(Into::into)
}

/// The time range in microseconds, checked: end not before start, defaults to the whole
/// history.
pub fn time_range(
    ctx: &RequestCtx,
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
) -> Result<(i64, i64), CloudTrailError> {
    let start_us = start.map_or(i64::MIN, record::micros);
    let end_us = end.map_or_else(|| record::micros(ctx.now) + 60_000_000, record::micros);
    if start_us > end_us {
        return Err(CloudTrailError::InvalidTimeRange(
            "Start time must be before end time.".into(),
        ));
    }
    Ok((start_us, end_us))
}

fn params_digest(input: &LookupEventsInput, attribute: Option<&Attribute>) -> String {
    let text = format!(
        "{attribute:?}|{:?}|{:?}|{:?}",
        input.start_time.map(record::micros),
        input.end_time.map(record::micros),
        input.event_category
    );
    // FNV-1a: a token binds its parameters; it is not a secret.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn encode_token(digest: &str, cursor: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{digest}|{}|{}", cursor.index, cursor.key))
}

fn decode_token(token: &str, digest: &str) -> Result<Cursor, CloudTrailError> {
    let invalid = || CloudTrailError::InvalidNextToken("Invalid NextToken.".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '|');
    let (Some(d), Some(index), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let index: usize = index.parse().map_err(|_| invalid())?;
    if d != digest || record::time_of_key(key).is_none() {
        return Err(invalid());
    }
    Ok(Cursor {
        key: key.to_string(),
        index,
    })
}

pub fn lookup_events(
    services: &Services,
    ctx: &RequestCtx,
    input: LookupEventsInput,
) -> Result<LookupEventsOutput, CloudTrailError> {
    authorize_lookup(services, ctx)?;
    let attributes = input.lookup_attributes.as_deref().unwrap_or_default();
    if attributes.len() > 1 {
        return Err(CloudTrailError::InvalidLookupAttributes(
            "You can only specify one lookup attribute.".into(),
        ));
    }
    let attribute = attributes.first().map(Attribute::parse).transpose()?;
    if let Some(category) = &input.event_category
        && category != "insight"
    {
        return Err(CloudTrailError::InvalidEventCategory(format!(
            "Invalid event category: {}",
            category.chars().take(64).collect::<String>()
        )));
    }
    let max = input.max_results.unwrap_or(MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&max) {
        return Err(CloudTrailError::InvalidMaxResults(format!(
            "MaxResults must be between 1 and {MAX_RESULTS}."
        )));
    }
    let (start_us, end_us) = time_range(ctx, input.start_time, input.end_time)?;
    let digest = params_digest(&input, attribute.as_ref());
    let after = input
        .next_token
        .as_deref()
        .map(|t| decode_token(t, &digest))
        .transpose()?;
    // tresor records no Insights events: that category is always empty.
    if input.event_category.is_some() {
        return Ok(LookupEventsOutput {
            events: Vec::new(),
            next_token: None,
        });
    }
    let limit = usize::try_from(max).unwrap_or(1);
    let stores = tresor_core::audit::record_stores(services);
    let (found, more) =
        record::scan_stores(&stores, end_us, start_us, after.as_ref(), limit, |e| {
            visible(ctx, e) && attribute.as_ref().is_none_or(|a| a.matches(e))
        })?;
    let next_token = match (more, found.last()) {
        (true, Some((cursor, _))) => Some(encode_token(&digest, cursor)),
        _ => None,
    };
    Ok(LookupEventsOutput {
        events: found.into_iter().map(|(_, e)| to_event(e)).collect(),
        next_token,
    })
}

fn to_event(e: StoredEvent) -> Event {
    Event {
        event_time: e.time(),
        event_id: e.event_id,
        event_name: e.event_name,
        read_only: e.read_only.to_string(),
        access_key_id: e.access_key_id,
        event_source: e.event_source,
        username: e.username,
        resources: e
            .resources
            .into_iter()
            .map(|(resource_type, resource_name)| Resource {
                resource_type,
                resource_name,
            })
            .collect(),
        cloud_trail_event: e.event,
    }
}
