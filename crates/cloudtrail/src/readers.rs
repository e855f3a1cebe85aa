//! `ListSecretReaders`, a tresor extension of the CloudTrail API: who read which version of a
//! secret, and may its old value be revoked?
//!
//! It answers the question an operator has after rotating a token and before revoking the
//! old one ("refresh your instances after rotating the secret, and before revoking the old
//! token"): from the event history, every principal and source address that read each
//! version of the secret — directly (`GetSecretValue`, `BatchGetSecretValue`) or through
//! Parameter Store's `/aws/reference/secretsmanager/…` path — with the version's labels now
//! and the last read; then a verdict. A reader is still on the old value when its latest
//! read since the rotation (the creation of the version that is `AWSCURRENT` now) returned
//! another version. A reader not seen since the rotation whose last read returned an old
//! version is reported separately: if it reads only at start-up (instances that fetch a token
//! at boot), it still holds the old value until it is refreshed.
//!
//! Authorized as `cloudtrail:LookupEvents` (it reveals what the event history reveals) plus
//! Secrets Manager's `ListSecretVersionIds` on the secret, asked by Secrets Manager itself
//! with the caller as principal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_core::{RequestCtx, Services};
use tresor_secretsmanager::versions::{ListSecretVersionIdsInput, list_secret_version_ids};
use tresor_wire::AwsError;
use tresor_wire::json::epoch_seconds;

use crate::errors::CloudTrailError;
use crate::lookup::{authorize_lookup, time_range, visible};
use crate::record::{self, Cursor, StoredEvent};

const AWSCURRENT: &str = "AWSCURRENT";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretReadersInput {
    pub secret_id: String,
    #[serde(default, with = "epoch_seconds::option")]
    pub start_time: Option<OffsetDateTime>,
    #[serde(default, with = "epoch_seconds::option")]
    pub end_time: Option<OffsetDateTime>,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionNow {
    pub version_id: String,
    pub version_stages: Vec<String>,
    #[serde(with = "epoch_seconds")]
    pub created_date: OffsetDateTime,
}

/// One principal and source address reading one version.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Reader {
    pub principal: String,
    #[serde(rename = "SourceIPAddress")]
    pub source_ip_address: String,
    pub version_id: String,
    /// The version's labels now (empty: deprecated or removed).
    pub version_stages: Vec<String>,
    #[serde(with = "epoch_seconds")]
    pub last_read_time: OffsetDateTime,
    pub read_count: u64,
    /// `GetSecretValue` (direct) and/or `ParameterStoreReference`.
    pub via: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretReadersOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub versions: Vec<VersionNow>,
    /// When the version that is `AWSCURRENT` now was created: the last rotation.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub last_rotated_date: Option<OffsetDateTime>,
    pub readers: Vec<Reader>,
    /// Readers whose latest read since the rotation returned a version other than
    /// `AWSCURRENT`.
    pub still_on_old_version: Vec<Reader>,
    /// Readers not seen since the rotation whose last read returned an old version.
    pub not_seen_since_rotation: Vec<Reader>,
    pub safe_to_revoke: bool,
}

pub fn list_secret_readers(
    services: &Services,
    ctx: &RequestCtx,
    input: ListSecretReadersInput,
) -> Result<ListSecretReadersOutput, CloudTrailError> {
    if input.secret_id.is_empty() || input.secret_id.len() > 2048 {
        return Err(CloudTrailError::Validation(
            "SecretId must be between 1 and 2048 characters.".into(),
        ));
    }
    authorize_lookup(services, ctx)?;
    let (start_us, end_us) = time_range(ctx, input.start_time, input.end_time)?;
    let listed = list_secret_version_ids(
        services,
        ctx,
        ListSecretVersionIdsInput {
            secret_id: input.secret_id.clone(),
            max_results: None,
            next_token: None,
            include_deprecated: Some(true),
        },
    )
    .map_err(|e| CloudTrailError::Dependency(AwsError::from(e)))?;
    let versions: Vec<VersionNow> = listed
        .versions
        .into_iter()
        .map(|v| VersionNow {
            version_id: v.version_id,
            version_stages: v.version_stages.unwrap_or_default(),
            created_date: v.created_date,
        })
        .collect();
    let current = versions
        .iter()
        .find(|v| v.version_stages.iter().any(|s| s == AWSCURRENT));
    let rotated = current.map(|v| v.created_date);
    let stores = tresor_core::audit::record_stores(services);
    let (events, _) = record::scan_stores(&stores, end_us, start_us, None, usize::MAX, |e| {
        visible(ctx, e) && is_read_of(e, &listed.arn)
    })?;
    let readers = group(&events, &listed.arn, &versions);
    let (still, not_seen) = verdict(&readers, current.map(|v| v.version_id.as_str()), rotated);
    Ok(ListSecretReadersOutput {
        arn: listed.arn,
        name: listed.name,
        safe_to_revoke: still.is_empty(),
        versions,
        last_rotated_date: rotated,
        readers,
        still_on_old_version: still,
        not_seen_since_rotation: not_seen,
    })
}

/// A successful read by the caller (not a service's hop on its behalf) that returned a
/// version of `arn`.
fn is_read_of(e: &StoredEvent, arn: &str) -> bool {
    e.error_code.is_none() && e.invoked_by.is_none() && e.reads.iter().any(|r| r.secret_arn == arn)
}

fn via(e: &StoredEvent) -> &'static str {
    if e.event_source.starts_with("ssm.") {
        "ParameterStoreReference"
    } else {
        "GetSecretValue"
    }
}

/// Readers by (principal, source address, version), newest read first.
fn group(events: &[(Cursor, StoredEvent)], arn: &str, versions: &[VersionNow]) -> Vec<Reader> {
    let mut by: BTreeMap<(String, String, String), Reader> = BTreeMap::new();
    for (_, e) in events {
        let principal = e.principal.clone().unwrap_or_default();
        let source = e.source_ip.clone().unwrap_or_default();
        for read in e.reads.iter().filter(|r| r.secret_arn == arn) {
            let entry = by
                .entry((principal.clone(), source.clone(), read.version_id.clone()))
                .or_insert_with(|| Reader {
                    principal: principal.clone(),
                    source_ip_address: source.clone(),
                    version_id: read.version_id.clone(),
                    version_stages: versions
                        .iter()
                        .find(|v| v.version_id == read.version_id)
                        .map(|v| v.version_stages.clone())
                        .unwrap_or_default(),
                    last_read_time: e.time(),
                    read_count: 0,
                    via: Vec::new(),
                });
            entry.read_count += 1;
            if e.time() > entry.last_read_time {
                entry.last_read_time = e.time();
            }
            let how = via(e).to_string();
            if !entry.via.contains(&how) {
                entry.via.push(how);
            }
        }
    }
    let mut readers: Vec<Reader> = by.into_values().collect();
    readers.sort_by_key(|r| std::cmp::Reverse(r.last_read_time));
    readers
}

/// (still on an old version since the rotation, not seen since the rotation but last on an
/// old version): each reader (principal and source address) judged by its latest read.
fn verdict(
    readers: &[Reader],
    current: Option<&str>,
    rotated: Option<OffsetDateTime>,
) -> (Vec<Reader>, Vec<Reader>) {
    let mut latest: BTreeMap<(&str, &str), &Reader> = BTreeMap::new();
    for r in readers {
        let key = (r.principal.as_str(), r.source_ip_address.as_str());
        if latest
            .get(&key)
            .is_none_or(|l| r.last_read_time > l.last_read_time)
        {
            latest.insert(key, r);
        }
    }
    let mut still = Vec::new();
    let mut not_seen = Vec::new();
    for r in latest.into_values() {
        if Some(r.version_id.as_str()) == current {
            continue;
        }
        if rotated.is_none_or(|t| r.last_read_time >= t) {
            still.push(r.clone());
        } else {
            not_seen.push(r.clone());
        }
    }
    (still, not_seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(p: &str, v: &str, t: i64) -> Reader {
        Reader {
            principal: p.into(),
            source_ip_address: "127.0.0.1".into(),
            version_id: v.into(),
            version_stages: vec![],
            last_read_time: OffsetDateTime::from_unix_timestamp(t).unwrap(),
            read_count: 1,
            via: vec![],
        }
    }

    #[test]
    fn a_reader_is_judged_by_its_latest_read() {
        let rotated = OffsetDateTime::from_unix_timestamp(100).ok();
        // b kept reading the old version after the rotation; c has not been seen since.
        let readers = [
            reader("a", "new", 150),
            reader("a", "old", 90),
            reader("b", "old", 160),
            reader("c", "old", 50),
        ];
        let (still, not_seen) = verdict(&readers, Some("new"), rotated);
        assert_eq!(still.len(), 1);
        assert_eq!(still[0].principal, "b");
        assert_eq!(not_seen.len(), 1);
        assert_eq!(not_seen[0].principal, "c");
        // b switches: safe.
        let readers = [reader("b", "new", 170), reader("b", "old", 160)];
        let (still, _) = verdict(&readers, Some("new"), rotated);
        assert!(still.is_empty());
    }
}
