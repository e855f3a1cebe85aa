//! IAM OpenID Connect providers: the identity providers whose ID tokens
//! `sts:AssumeRoleWithWebIdentity` accepts (IAM API Reference, `CreateOpenIDConnectProvider`
//! and the other `*OpenIDConnectProvider*` actions; IAM User Guide, "Create an OpenID Connect
//! (OIDC) identity provider in IAM").
//!
//! A provider is named by its URL without the scheme; its ARN is
//! `arn:<partition>:iam::<account>:oidc-provider/<host/path>`. Quotas (IAM and AWS STS
//! quotas): 100 providers per account, 100 client ids and 5 thumbprints per provider, 50 tags.

use serde::{Deserialize, Serialize};
use tresor_store::ReadTxn;

use super::check::{Check, check_tags, merge_tags};
use super::entity::{authorize, scan_all};
use super::errors::{already_exists, invalid_input, limit_exceeded, no_such_entity};
use super::pagination::Page;
use crate::error::IamError;
use crate::identity::FORMAT;
use crate::keys;
use crate::records::OidcProviderRecord;
use crate::shapes::{Tag, TagInput};
use tresor_core::Services;
use tresor_core::authz::AuthzRequest;
use tresor_core::ctx::RequestCtx;
use tresor_core::record;

const MAX_PROVIDERS: usize = 100;
const MAX_CLIENT_IDS: usize = 100;
const MAX_THUMBPRINTS: usize = 5;
const MAX_TAGS: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct CreateOpenIdConnectProviderInput {
    #[serde(rename = "Url")]
    pub url: String,
    #[serde(rename = "ClientIDList", default)]
    pub client_id_list: Vec<String>,
    #[serde(rename = "ThumbprintList", default)]
    pub thumbprint_list: Vec<String>,
    #[serde(rename = "Tags", default)]
    pub tags: Vec<TagInput>,
}

#[derive(Debug, Serialize)]
pub struct CreateOpenIdConnectProviderOutput {
    #[serde(rename = "OpenIDConnectProviderArn")]
    pub arn: String,
    #[serde(rename = "Tags", skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// The input of the operations that name one provider and nothing else.
#[derive(Debug, Default, Deserialize)]
pub struct OpenIdConnectProviderArnInput {
    #[serde(rename = "OpenIDConnectProviderArn")]
    pub arn: String,
}

#[derive(Debug, Serialize)]
pub struct GetOpenIdConnectProviderOutput {
    #[serde(rename = "Url")]
    pub url: String,
    #[serde(rename = "ClientIDList")]
    pub client_id_list: Vec<String>,
    #[serde(rename = "ThumbprintList")]
    pub thumbprint_list: Vec<String>,
    #[serde(rename = "CreateDate", with = "tresor_wire::xml::iso8601")]
    pub create_date: time::OffsetDateTime,
    #[serde(rename = "Tags", skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListOpenIdConnectProvidersInput {}

#[derive(Debug, Serialize)]
pub struct OpenIdConnectProviderListEntry {
    #[serde(rename = "Arn")]
    pub arn: String,
}

#[derive(Debug, Serialize)]
pub struct ListOpenIdConnectProvidersOutput {
    #[serde(rename = "OpenIDConnectProviderList")]
    pub list: Vec<OpenIdConnectProviderListEntry>,
}

/// `AddClientIDToOpenIDConnectProvider` and `RemoveClientIDFromOpenIDConnectProvider`.
#[derive(Debug, Default, Deserialize)]
pub struct ClientIdInput {
    #[serde(rename = "OpenIDConnectProviderArn")]
    pub arn: String,
    #[serde(rename = "ClientID")]
    pub client_id: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct UpdateThumbprintInput {
    #[serde(rename = "OpenIDConnectProviderArn")]
    pub arn: String,
    #[serde(rename = "ThumbprintList", default)]
    pub thumbprint_list: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TagOpenIdConnectProviderInput {
    #[serde(rename = "OpenIDConnectProviderArn")]
    pub arn: String,
    #[serde(rename = "Tags", default)]
    pub tags: Vec<TagInput>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UntagOpenIdConnectProviderInput {
    #[serde(rename = "OpenIDConnectProviderArn")]
    pub arn: String,
    #[serde(rename = "TagKeys", default)]
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListOpenIdConnectProviderTagsInput {
    #[serde(rename = "OpenIDConnectProviderArn")]
    pub arn: String,
    #[serde(rename = "Marker")]
    pub marker: Option<String>,
    #[serde(rename = "MaxItems")]
    pub max_items: Option<i64>,
}

/// `ListOpenIDConnectProviderTags`' result; `<Tags>` is present even when empty.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListOpenIdConnectProviderTagsOutput {
    pub tags: Vec<Tag>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

/// The `<host/path>` of a provider URL: `https://` followed by a host (and an optional port
/// and path), no query or fragment; a trailing `/` is dropped.
fn url_host_path(url: &str) -> Result<String, IamError> {
    let invalid = || invalid_input::<IamError>("Invalid Openid Connect Provider Url");
    let rest = url.strip_prefix("https://").ok_or_else(invalid)?;
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or_default();
    let ok = !host.is_empty()
        && !rest.contains(['?', '#', ' ', '\\'])
        && !rest.contains("//")
        && rest.chars().all(|c| c.is_ascii_graphic())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !ok {
        return Err(invalid());
    }
    // Host names are case-insensitive; the path is not.
    let (host, path) = rest.split_at(host.len());
    Ok(format!("{}{path}", host.to_ascii_lowercase()))
}

/// The `<host/path>` named by a provider ARN of `account`, or `InvalidInput`.
fn arn_host_path(arn: &str, account: &str) -> Result<String, IamError> {
    let invalid = || invalid_input::<IamError>(format!("ARN {arn} is not valid."));
    let rest = tresor_policy::arn::strip_service_prefix(arn, "iam")
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(invalid)?;
    let (acct, resource) = rest.split_once(':').ok_or_else(invalid)?;
    let host_path = resource
        .strip_prefix("oidc-provider/")
        .ok_or_else(invalid)?;
    if host_path.is_empty() || acct.len() != 12 || !acct.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    if acct != account {
        // Another account's provider is not one the caller can see.
        return Err(not_found(arn));
    }
    Ok(host_path.to_string())
}

fn not_found(arn: &str) -> IamError {
    no_such_entity(format!("OpenIDConnect Provider not found for arn {arn}"))
}

fn check_arn(check: &mut Check, arn: &str) {
    check.length("OpenIDConnectProviderArn", Some(arn), 20, 2048);
}

fn check_client_ids(check: &mut Check, member: &str, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        check.length(&format!("{member}.{}.member", i + 1), Some(id), 1, 255);
    }
}

/// Thumbprints: 40 characters each (the model), hexadecimal (a SHA-1 digest), at most 5.
fn check_thumbprints(ids: &[String]) -> Result<Vec<String>, IamError> {
    let mut check = Check::new();
    for (i, t) in ids.iter().enumerate() {
        check.length(&format!("ThumbprintList.{}.member", i + 1), Some(t), 40, 40);
    }
    check.finish()?;
    if ids.len() > MAX_THUMBPRINTS {
        return Err(limit_exceeded(format!(
            "Thumbprint list must contain fewer than {} entries",
            MAX_THUMBPRINTS + 1
        )));
    }
    if let Some(bad) = ids
        .iter()
        .find(|t| !t.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(invalid_input(format!("Thumbprint {bad} is not valid.")));
    }
    let mut out: Vec<String> = Vec::new();
    for t in ids {
        let t = t.to_ascii_lowercase();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

fn dedup(ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// Loads the provider `arn` names after authorizing `action` on it; a missing provider is
/// `NoSuchEntity` once the caller may know.
fn authorized_provider(
    s: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    arn: &str,
    action: &str,
) -> Result<(String, OidcProviderRecord), IamError> {
    let mut check = Check::new();
    check_arn(&mut check, arn);
    check.finish()?;
    let account = &ctx.caller.account;
    let host_path = arn_host_path(arn, account)?;
    s.authorize(ctx, &AuthzRequest::new(action, arn))?;
    let key = keys::oidc_provider(account, &host_path);
    let provider = record::get::<OidcProviderRecord>(txn, &key)?.ok_or_else(|| not_found(arn))?;
    Ok((key, provider))
}

/// The registered provider whose URL is `issuer` (a token's `iss`), in `account`.
pub fn provider_for_issuer(
    txn: &dyn ReadTxn,
    account: &str,
    issuer: &str,
) -> Result<Option<OidcProviderRecord>, IamError> {
    let Ok(host_path) = url_host_path(issuer) else {
        return Ok(None);
    };
    Ok(record::get::<OidcProviderRecord>(
        txn,
        &keys::oidc_provider(account, &host_path),
    )?)
}

pub fn create_open_id_connect_provider(
    s: &Services,
    ctx: &RequestCtx,
    input: CreateOpenIdConnectProviderInput,
) -> Result<CreateOpenIdConnectProviderOutput, IamError> {
    let mut check = Check::new();
    check.length("Url", Some(&input.url), 1, 255);
    check_client_ids(&mut check, "ClientIDList", &input.client_id_list);
    check.finish()?;
    let thumbprints = check_thumbprints(&input.thumbprint_list)?;
    let tags = check_tags("Tags", &input.tags)?;
    let host_path = url_host_path(&input.url)?;
    let client_ids = dedup(&input.client_id_list);
    if client_ids.len() > MAX_CLIENT_IDS {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"
        )));
    }
    let account = &ctx.caller.account;
    let provider = OidcProviderRecord {
        v: FORMAT,
        url: format!("https://{host_path}"),
        created: ctx.now,
        client_ids,
        thumbprints,
        tags,
    };
    let arn = provider.arn(account);
    let mut req = AuthzRequest::new("iam:CreateOpenIDConnectProvider", &arn);
    for (k, v) in &provider.tags {
        req.context
            .push(tresor_core::cond(format!("aws:RequestTag/{k}"), v.clone()));
        req.context
            .push(tresor_core::cond("aws:TagKeys", k.clone()));
    }
    let mut txn = s.store().begin_write()?;
    s.authorize(ctx, &req)?;
    let key = keys::oidc_provider(account, &host_path);
    if txn.get(&key)?.is_some() {
        return Err(already_exists(format!(
            "Provider with url {} already exists.",
            provider.url
        )));
    }
    let existing = scan_all::<OidcProviderRecord>(&*txn, &keys::oidc_provider_prefix(account))?;
    if existing.len() >= MAX_PROVIDERS {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for OpenIdConnectProvidersPerAccount: {MAX_PROVIDERS}"
        )));
    }
    record::put(&mut *txn, &key, &provider)?;
    txn.commit()?;
    Ok(CreateOpenIdConnectProviderOutput {
        arn,
        tags: Tag::list(&provider.tags),
    })
}

pub fn get_open_id_connect_provider(
    s: &Services,
    ctx: &RequestCtx,
    input: OpenIdConnectProviderArnInput,
) -> Result<GetOpenIdConnectProviderOutput, IamError> {
    let txn = s.store().begin_read()?;
    let (_, p) = authorized_provider(s, &*txn, ctx, &input.arn, "iam:GetOpenIDConnectProvider")?;
    Ok(GetOpenIdConnectProviderOutput {
        // IAM returns the URL without its scheme.
        url: p.host_path().to_string(),
        client_id_list: p.client_ids.clone(),
        thumbprint_list: p.thumbprints.clone(),
        create_date: p.created,
        tags: Tag::list(&p.tags),
    })
}

pub fn list_open_id_connect_providers(
    s: &Services,
    ctx: &RequestCtx,
    _input: ListOpenIdConnectProvidersInput,
) -> Result<ListOpenIdConnectProvidersOutput, IamError> {
    let account = &ctx.caller.account;
    authorize(
        s,
        ctx,
        "iam:ListOpenIDConnectProviders",
        &format!(
            "arn:{}:iam::{account}:oidc-provider/*",
            tresor_policy::arn::partition()
        ),
    )?;
    let txn = s.store().begin_read()?;
    let list = scan_all::<OidcProviderRecord>(&*txn, &keys::oidc_provider_prefix(account))?
        .into_iter()
        .map(|(_, p)| OpenIdConnectProviderListEntry {
            arn: p.arn(account),
        })
        .collect();
    Ok(ListOpenIdConnectProvidersOutput { list })
}

pub fn delete_open_id_connect_provider(
    s: &Services,
    ctx: &RequestCtx,
    input: OpenIdConnectProviderArnInput,
) -> Result<(), IamError> {
    let mut txn = s.store().begin_write()?;
    let (key, _) =
        authorized_provider(s, &*txn, ctx, &input.arn, "iam:DeleteOpenIDConnectProvider")?;
    txn.delete(&key)?;
    txn.commit()?;
    Ok(())
}

/// Applies `change` to the provider `arn` names, after authorizing `action`, in one
/// transaction.
fn update(
    s: &Services,
    ctx: &RequestCtx,
    arn: &str,
    action: &str,
    change: impl FnOnce(&mut OidcProviderRecord) -> Result<(), IamError>,
) -> Result<(), IamError> {
    let mut txn = s.store().begin_write()?;
    let (key, mut provider) = authorized_provider(s, &*txn, ctx, arn, action)?;
    change(&mut provider)?;
    record::put(&mut *txn, &key, &provider)?;
    txn.commit()?;
    Ok(())
}

fn check_client_id(input: &ClientIdInput) -> Result<(), IamError> {
    let mut check = Check::new();
    check_arn(&mut check, &input.arn);
    check.length("ClientID", Some(&input.client_id), 1, 255);
    check.finish()
}

/// `AddClientIDToOpenIDConnectProvider`: idempotent.
pub fn add_client_id_to_open_id_connect_provider(
    s: &Services,
    ctx: &RequestCtx,
    input: ClientIdInput,
) -> Result<(), IamError> {
    check_client_id(&input)?;
    let id = input.client_id;
    update(
        s,
        ctx,
        &input.arn,
        "iam:AddClientIDToOpenIDConnectProvider",
        |p| {
            if !p.client_ids.contains(&id) {
                if p.client_ids.len() >= MAX_CLIENT_IDS {
                    return Err(limit_exceeded(format!(
                        "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"
                    )));
                }
                p.client_ids.push(id);
            }
            Ok(())
        },
    )
}

/// `RemoveClientIDFromOpenIDConnectProvider`: idempotent.
pub fn remove_client_id_from_open_id_connect_provider(
    s: &Services,
    ctx: &RequestCtx,
    input: ClientIdInput,
) -> Result<(), IamError> {
    check_client_id(&input)?;
    let id = input.client_id;
    update(
        s,
        ctx,
        &input.arn,
        "iam:RemoveClientIDFromOpenIDConnectProvider",
        |p| {
            p.client_ids.retain(|c| c != &id);
            Ok(())
        },
    )
}

/// `UpdateOpenIDConnectProviderThumbprint`: replaces the list.
pub fn update_open_id_connect_provider_thumbprint(
    s: &Services,
    ctx: &RequestCtx,
    input: UpdateThumbprintInput,
) -> Result<(), IamError> {
    let thumbprints = check_thumbprints(&input.thumbprint_list)?;
    update(
        s,
        ctx,
        &input.arn,
        "iam:UpdateOpenIDConnectProviderThumbprint",
        |p| {
            p.thumbprints = thumbprints;
            Ok(())
        },
    )
}

pub fn tag_open_id_connect_provider(
    s: &Services,
    ctx: &RequestCtx,
    input: TagOpenIdConnectProviderInput,
) -> Result<(), IamError> {
    let tags = check_tags("Tags", &input.tags)?;
    update(s, ctx, &input.arn, "iam:TagOpenIDConnectProvider", |p| {
        merge_tags(&mut p.tags, tags);
        if p.tags.len() > MAX_TAGS {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for TagsPerOpenIdConnectProvider: {MAX_TAGS}"
            )));
        }
        Ok(())
    })
}

pub fn untag_open_id_connect_provider(
    s: &Services,
    ctx: &RequestCtx,
    input: UntagOpenIdConnectProviderInput,
) -> Result<(), IamError> {
    let mut check = Check::new();
    if input.tag_keys.len() > MAX_TAGS {
        check.fail(
            "TagKeys",
            None,
            "Member must have length less than or equal to 50",
        );
    }
    for (i, k) in input.tag_keys.iter().enumerate() {
        check.length(&format!("TagKeys.{}.member", i + 1), Some(k), 1, 128);
    }
    check.finish()?;
    let remove: Vec<String> = input.tag_keys.iter().map(|k| k.to_lowercase()).collect();
    update(s, ctx, &input.arn, "iam:UntagOpenIDConnectProvider", |p| {
        p.tags.retain(|(k, _)| !remove.contains(&k.to_lowercase()));
        Ok(())
    })
}

pub fn list_open_id_connect_provider_tags(
    s: &Services,
    ctx: &RequestCtx,
    input: ListOpenIdConnectProviderTagsInput,
) -> Result<ListOpenIdConnectProviderTagsOutput, IamError> {
    let page = Page::new(input.max_items, input.marker.as_deref())?;
    let txn = s.store().begin_read()?;
    let (_, p) = authorized_provider(
        s,
        &*txn,
        ctx,
        &input.arn,
        "iam:ListOpenIDConnectProviderTags",
    )?;
    let (items, next) = page.apply(p.tags, |(k, _)| k.clone());
    Ok(ListOpenIdConnectProviderTagsOutput {
        tags: Tag::list(&items),
        is_truncated: next.is_some(),
        marker: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_are_https_without_query() {
        assert_eq!(
            url_host_path("https://token.actions.githubusercontent.com").ok(),
            Some("token.actions.githubusercontent.com".to_string())
        );
        assert_eq!(
            url_host_path("https://Example.COM/Tenant/").ok(),
            Some("example.com/Tenant".to_string())
        );
        assert_eq!(
            url_host_path("https://127.0.0.1:8443").ok(),
            Some("127.0.0.1:8443".to_string())
        );
        for bad in [
            "http://example.com",
            "example.com",
            "https://",
            "https://example.com?x=1",
            "https://example.com#f",
            "https://exa mple.com",
            "https://a//b",
        ] {
            assert!(url_host_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn provider_arns_name_the_callers_account() {
        let a = "111122223333";
        assert_eq!(
            arn_host_path("arn:aws:iam::111122223333:oidc-provider/example.com/x", a).ok(),
            Some("example.com/x".to_string())
        );
        let other = arn_host_path("arn:aws:iam::444455556666:oidc-provider/example.com", a);
        assert!(matches!(other, Err(IamError::NoSuchEntity(_))));
        for bad in [
            "arn:aws:iam::111122223333:role/x",
            "arn:aws:iam::111122223333:oidc-provider/",
            "not-an-arn-at-all-really",
        ] {
            assert!(
                matches!(arn_host_path(bad, a), Err(IamError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn thumbprints_are_forty_hex_digits_at_most_five() {
        let t = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280".to_string();
        assert_eq!(
            check_thumbprints(std::slice::from_ref(&t)).ok(),
            Some(vec![t.clone()])
        );
        assert!(matches!(
            check_thumbprints(&["z".repeat(40)]),
            Err(IamError::InvalidInput(_))
        ));
        assert!(matches!(
            check_thumbprints(&["ab".to_string()]),
            Err(IamError::ValidationError(_))
        ));
        assert!(matches!(
            check_thumbprints(&vec![t; 6]),
            Err(IamError::LimitExceeded(_))
        ));
    }
}
