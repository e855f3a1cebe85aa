//! TagResource and UntagResource.

use crate::errors::SecretsManagerError;
use serde::{Deserialize, Serialize};
use tresor_core::{RequestCtx, Services};
use tresor_wire::validate::Validator;

use crate::access::{authorize, begin_authorized_write, load_live, refuse_replica, save_changed};
use crate::secrets::{request_tag_context, set_tags};
use crate::shapes::Tag;
use crate::validate;

// ---------------------------------------------------------------------------------------
// TagResource / UntagResource

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    pub secret_id: String,
    pub tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    pub secret_id: String,
    pub tag_keys: Vec<String>,
}

#[derive(Serialize)]
pub struct Empty {}

pub fn tag_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: TagResourceInput,
) -> Result<Empty, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::tags(&mut v, &input.tags)?;
    validate::finish(v)?;
    let context = request_tag_context(&input.tags);
    let (txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:TagResource",
            &input.secret_id,
            context.clone(),
        )
    })?;
    refuse_replica(&rec)?;
    set_tags(&mut rec.tags, &input.tags);
    if rec.tags.len() > validate::MAX_TAGS {
        return Err(validate::too_many_tags());
    }
    // A change that would lock the caller out is refused with AccessDenied (TagResource API
    // reference): ask again with the tags as they would be.
    authorize(services, ctx, "secretsmanager:TagResource", &rec, context)?;
    save_changed(txn, &mut rec, ctx.now)?;
    Ok(Empty {})
}

pub fn untag_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: UntagResourceInput,
) -> Result<Empty, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::tag_keys(&mut v, &input.tag_keys)?;
    validate::finish(v)?;
    let context: Vec<(String, String)> = input
        .tag_keys
        .iter()
        .map(|k| ("aws:TagKeys".to_string(), k.clone()))
        .collect();
    let (txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:UntagResource",
            &input.secret_id,
            context.clone(),
        )
    })?;
    refuse_replica(&rec)?;
    let before = rec.tags.len();
    rec.tags.retain(|(k, _)| !input.tag_keys.contains(k));
    if rec.tags.len() != before {
        authorize(services, ctx, "secretsmanager:UntagResource", &rec, context)?;
        save_changed(txn, &mut rec, ctx.now)?;
    }
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::secrets::{CreateSecretInput, create_secret};
    use tresor_iam::testing::{ACCOUNT, TestEnv, ctx};
    use tresor_store::Store;

    /// A request from an IAM user with no policy at all.
    fn nobody() -> RequestCtx {
        let mut c = ctx();
        c.caller = std::sync::Arc::new(tresor_core::Caller {
            account: ACCOUNT.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
            user_id: "AIDAMALLORYEXAMPLE01".into(),
            kind: tresor_core::CallerKind::User {
                name: "mallory".into(),
                path: "/".into(),
                unique_id: "AIDAMALLORYEXAMPLE01".into(),
            },
            access_key_id: "AKIAMALLORYEXAMPLE01".into(),
        });
        c
    }

    /// A caller without permission is refused on a read snapshot: it neither waits for nor
    /// takes the store's writer (held here by another transaction).
    #[test]
    fn refused_writes_never_wait_for_the_writer() {
        let e = TestEnv::new(3);
        let input: CreateSecretInput =
            serde_json::from_value(serde_json::json!({"Name": "held"})).unwrap();
        create_secret(&e.services, &ctx(), input).unwrap();
        let held = e.store.begin_write().unwrap();
        let c = nobody();
        let started = std::time::Instant::now();
        let tag = TagResourceInput {
            secret_id: "held".into(),
            tags: vec![Tag {
                key: "k".into(),
                value: "v".into(),
            }],
        };
        let r = tag_resource(&e.services, &c, tag);
        assert!(matches!(r, Err(SecretsManagerError::AccessDenied(_))));
        let untag = UntagResourceInput {
            secret_id: "held".into(),
            tag_keys: vec!["k".into()],
        };
        let r = untag_resource(&e.services, &c, untag);
        assert!(matches!(r, Err(SecretsManagerError::AccessDenied(_))));
        let input: CreateSecretInput =
            serde_json::from_value(serde_json::json!({"Name": "other"})).unwrap();
        let r = create_secret(&e.services, &c, input);
        assert!(matches!(r, Err(SecretsManagerError::AccessDenied(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        drop(held);
    }
}
