//! ListSecrets, and the filters and pages BatchGetSecretValue shares.

use crate::errors::SecretsManagerError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_core::{RequestCtx, Services, record};
use tresor_store::ReadTxn;
use tresor_wire::validate::Validator;

use crate::access::{self};
use crate::errors::{self, OrInternal};
use crate::model::{SecretRecord, keys};
use crate::shapes::SecretDescription;
use crate::validate;

// ---------------------------------------------------------------------------------------
// ListSecrets

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub key: Option<String>,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsInput {
    pub include_planned_deletion: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Option<Vec<Filter>>,
    pub sort_order: Option<String>,
    pub sort_by: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsOutput {
    pub secret_list: Vec<SecretDescription>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

const FILTER_KEYS: [&str; 7] = [
    "description",
    "name",
    "tag-key",
    "tag-value",
    "primary-region",
    "owning-service",
    "all",
];

pub fn validate_filters(v: &mut Validator, filters: &[Filter]) -> Result<(), SecretsManagerError> {
    if filters.len() > 10 {
        v.fail(
            "Filters",
            None,
            "Member must have length less than or equal to 10",
        );
    }
    for (i, f) in filters.iter().enumerate() {
        let i = i + 1;
        match f.key.as_deref() {
            Some(k) if FILTER_KEYS.contains(&k) => {}
            other => v.fail(
                &format!("Filters.{i}.member.key"),
                other,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    FILTER_KEYS.join(", ")
                ),
            ),
        }
        if f.values.is_empty() || f.values.len() > 10 {
            v.fail(
                &format!("Filters.{i}.member.values"),
                None,
                "Member must have length between 1 and 10",
            );
        }
        for (j, value) in f.values.iter().enumerate() {
            let member = format!("Filters.{i}.member.values.{}.member", j + 1);
            v.length(&member, Some(value), 0, 512);
            // Pattern ^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$ (FilterValueStringType).
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c))
            {
                v.fail(&member, Some(value), "Member must satisfy regular expression pattern: ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$");
            }
        }
    }
    Ok(())
}

/// Whether `rec` passes every filter (filters AND, values within a filter OR; a leading `!`
/// negates a value). Matching per the model's `Filter.Key` documentation: prefix matches,
/// case-insensitive for `description` and `all`, case-sensitive otherwise; `all` splits the
/// value into words and searches every attribute.
pub fn matches(rec: &SecretRecord, filters: &[Filter]) -> bool {
    filters.iter().all(|f| {
        let key = f.key.as_deref().unwrap_or_default();
        let (negated, positive): (Vec<&String>, Vec<&String>) =
            f.values.iter().partition(|v| v.starts_with('!'));
        let hit = |value: &str| filter_hit(rec, key, value);
        let positive_ok = positive.is_empty() || positive.iter().any(|v| hit(v));
        let negated_ok = negated.iter().all(|v| !hit(&v[1..]));
        positive_ok && negated_ok
    })
}

fn filter_hit(rec: &SecretRecord, key: &str, value: &str) -> bool {
    let primary = rec
        .primary_region
        .clone()
        .unwrap_or_else(|| rec.region.clone());
    match key {
        "name" => rec.name.starts_with(value),
        "description" => rec
            .description
            .as_deref()
            .is_some_and(|d| d.to_lowercase().starts_with(&value.to_lowercase())),
        "tag-key" => rec.tags.iter().any(|(k, _)| k.starts_with(value)),
        "tag-value" => rec.tags.iter().any(|(_, v)| v.starts_with(value)),
        "primary-region" => primary.starts_with(value),
        "owning-service" => rec
            .owning_service
            .as_deref()
            .is_some_and(|o| o.starts_with(value)),
        "all" => {
            let mut attributes: Vec<String> = vec![rec.name.clone(), primary];
            attributes.extend(rec.description.clone());
            attributes.extend(rec.owning_service.clone());
            for (k, v) in &rec.tags {
                attributes.push(k.clone());
                attributes.push(v.clone());
            }
            let attributes: Vec<String> = attributes.iter().map(|a| a.to_lowercase()).collect();
            value.split_whitespace().all(|word| {
                let word = word.to_lowercase();
                attributes.iter().any(|a| {
                    a.starts_with(&word)
                        || a.split(|c: char| !c.is_ascii_alphanumeric())
                            .any(|w| w.starts_with(&word))
                })
            })
        }
        _ => false,
    }
}

/// The sort key of `rec` under `sort_by`, as an order-preserving string.
fn sort_key(rec: &SecretRecord, sort_by: &str) -> String {
    let t = |d: Option<OffsetDateTime>| {
        format!("{:040}", d.map_or(0, |d| d.unix_timestamp_nanos().max(0)))
    };
    match sort_by {
        "name" => rec.name.clone(),
        "last-accessed-date" => t(rec.last_accessed),
        "last-changed-date" => t(Some(rec.last_changed)),
        _ => t(Some(rec.created)),
    }
}

/// What to list: filters, sort and page.
#[derive(Clone, Copy)]
pub struct ListQuery<'a> {
    pub filters: &'a [Filter],
    pub include_deleted: bool,
    pub sort_by: &'a str,
    pub descending: bool,
    pub next_token: Option<&'a str>,
    pub limit: usize,
}

/// Every secret of the request's region that passes `filters`, sorted; used by ListSecrets
/// and BatchGetSecretValue. Returns one page and the token of the next.
pub fn list_page(
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    query: &ListQuery<'_>,
) -> Result<(Vec<SecretRecord>, Option<String>), SecretsManagerError> {
    let ListQuery {
        filters,
        include_deleted,
        sort_by,
        descending,
        next_token,
        limit,
    } = *query;
    let prefix = keys::secret_prefix(&ctx.caller.account, &ctx.region);
    let mut all: Vec<(String, SecretRecord)> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch =
            record::scan::<SecretRecord>(txn, &prefix, after.as_deref(), 1000).or_internal()?;
        let done = batch.len() < 1000;
        after = batch.last().map(|(k, _)| k.clone());
        for (_, rec) in batch {
            if (include_deleted || !rec.is_scheduled_for_deletion()) && matches(&rec, filters) {
                all.push((format!("{}\0{}", sort_key(&rec, sort_by), rec.name), rec));
            }
        }
        if done {
            break;
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if descending {
        all.reverse();
    }
    let start = match next_token {
        None => 0,
        Some(token) => {
            let position = decode_token(token)?;
            all.iter()
                .position(|(k, _)| {
                    if descending {
                        *k < position
                    } else {
                        *k > position
                    }
                })
                .unwrap_or(all.len())
        }
    };
    let page: Vec<(String, SecretRecord)> = all.into_iter().skip(start).take(limit + 1).collect();
    let more = page.len() > limit;
    let page: Vec<(String, SecretRecord)> = page.into_iter().take(limit).collect();
    let token = if more {
        page.last().map(|(k, _)| encode_token(k))
    } else {
        None
    };
    Ok((page.into_iter().map(|(_, r)| r).collect(), token))
}

fn encode_token(position: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1\0{position}"))
}

fn decode_token(token: &str) -> Result<String, SecretsManagerError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| errors::invalid_next_token())?;
    let text = String::from_utf8(bytes).map_err(|_| errors::invalid_next_token())?;
    text.strip_prefix("v1\0")
        .map(str::to_string)
        .ok_or_else(errors::invalid_next_token)
}

pub fn list_secrets(
    services: &Services,
    ctx: &RequestCtx,
    input: ListSecretsInput,
) -> Result<ListSecretsOutput, SecretsManagerError> {
    let mut v = Validator::new();
    v.range("MaxResults", input.max_results, 1, 100);
    v.length("NextToken", input.next_token.as_deref(), 1, 4096);
    let filters = input.filters.unwrap_or_default();
    validate_filters(&mut v, &filters)?;
    if let Some(o) = input.sort_order.as_deref()
        && o != "asc"
        && o != "desc"
    {
        v.fail(
            "SortOrder",
            Some(o),
            "Member must satisfy enum value set: [asc, desc]",
        );
    }
    let sort_by = input.sort_by.as_deref().unwrap_or("created-date");
    if ![
        "created-date",
        "last-accessed-date",
        "last-changed-date",
        "name",
    ]
    .contains(&sort_by)
    {
        v.fail(
            "SortBy",
            Some(sort_by),
            "Member must satisfy enum value set: [created-date, last-accessed-date, last-changed-date, name]",
        );
    }
    validate::finish(v)?;
    let txn = services.store().begin_read().or_internal()?;
    access::authorize_star(services, ctx, "secretsmanager:ListSecrets")?;
    let limit = usize::try_from(input.max_results.unwrap_or(100)).unwrap_or(100);
    let query = ListQuery {
        filters: &filters,
        include_deleted: input.include_planned_deletion.unwrap_or(false),
        sort_by,
        descending: input.sort_order.as_deref() == Some("desc"),
        next_token: input.next_token.as_deref(),
        limit,
    };
    let (page, next_token) = list_page(&*txn, ctx, &query)?;
    Ok(ListSecretsOutput {
        secret_list: page
            .iter()
            .map(|r| SecretDescription::of(r, true))
            .collect(),
        next_token,
    })
}
