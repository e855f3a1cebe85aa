//! Hostile callers against a spawned `tresor serve`, through the real `aws-sdk-*` clients: a
//! principal without permissions sends oversized or refused tag requests to Secrets Manager,
//! KMS and SSM while the administrator writes. The hostile requests are answered promptly
//! with the validation error or AccessDenied, and never hold up the administrator's writes
//! (they are authorized before the store's one writer is asked for). Also the tag limits:
//! 50 tags per resource, keys of 1–128 and values of 0–256 characters.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a panic is a failed test

mod common;

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use common::{Admin, Server};

/// How long a refused request may take, the whole round trip included.
const PROMPT: Duration = Duration::from_secs(2);
/// Tag keys in the oversized UntagResource / RemoveTagsFromResource (about 1 MB of JSON).
const MANY_KEYS: usize = 100_000;
/// How many refused tag requests run alongside the administrator's writes.
const REFUSED: usize = 8;

/// A user whose only permission is to ask who it is.
async fn nobody(admin: &Admin<'_>) -> aws_config::SdkConfig {
    admin
        .user_with_policy(
            "mallory",
            "whoami",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#,
        )
        .await
        .1
}

fn many_keys() -> Vec<String> {
    (0..MANY_KEYS).map(|i| format!("k{i:05}")).collect()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

fn error_code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_string()
}

/// Runs `fut` and returns its result with the time it took.
async fn timed<T>(fut: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = fut.await;
    (out, start.elapsed())
}

mod secretsmanager {
    use super::*;
    use aws_sdk_secretsmanager::Client;
    use aws_sdk_secretsmanager::types::Tag;

    pub fn tags(n: usize) -> Vec<Tag> {
        (0..n)
            .map(|i| Tag::builder().key(format!("key-{i}")).value("v").build())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn refused_tag_requests_never_hold_up_an_administrators_writes() {
        let server = Server::start(&[]);
        let admin = Admin::new(&server).await;
        let sm = Client::new(&admin.config);
        sm.create_secret()
            .name("prod/db")
            .secret_string("v0")
            .send()
            .await
            .expect("create");
        let mallory = Client::new(&nobody(&admin).await);

        let untag = {
            let mallory = mallory.clone();
            tokio::spawn(async move {
                timed(
                    mallory
                        .untag_resource()
                        .secret_id("prod/db")
                        .set_tag_keys(Some(many_keys()))
                        .send(),
                )
                .await
            })
        };
        let mut refused = Vec::new();
        for _ in 0..REFUSED {
            let mallory = mallory.clone();
            refused.push(tokio::spawn(async move {
                timed(
                    mallory
                        .tag_resource()
                        .secret_id("prod/db")
                        .set_tags(Some(tags(50)))
                        .send(),
                )
                .await
            }));
        }
        let mut puts = Vec::new();
        for i in 0..4 {
            let sm = sm.clone();
            puts.push(tokio::spawn(async move {
                sm.put_secret_value()
                    .secret_id("prod/db")
                    .secret_string(format!("v{}", i + 1))
                    .send()
                    .await
            }));
        }

        let (result, took) = untag.await.unwrap();
        let err = result.expect_err("100,000 tag keys");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        assert!(took < PROMPT, "UntagResource took {took:?}");
        for r in refused {
            let (result, took) = r.await.unwrap();
            let err = result.expect_err("no permission");
            assert_eq!(error_code(&err), "AccessDeniedException", "{err:?}");
            assert!(took < PROMPT, "TagResource took {took:?}");
        }
        for p in puts {
            p.await
                .unwrap()
                .expect("the administrator's PutSecretValue");
        }
        let got = sm
            .get_secret_value()
            .secret_id("prod/db")
            .send()
            .await
            .expect("get");
        assert!(got.secret_string().is_some_and(|s| s != "v0"));
        let described = sm
            .describe_secret()
            .secret_id("prod/db")
            .send()
            .await
            .expect("describe");
        assert!(described.tags().is_empty(), "no refused tag was stored");
    }

    #[tokio::test]
    async fn tag_limits() {
        let server = Server::start(&[]);
        let sm = Client::new(&server.admin_config().await);
        let err = sm
            .create_secret()
            .name("too-many")
            .set_tags(Some(tags(51)))
            .send()
            .await
            .expect_err("51 tags");
        assert_eq!(error_code(&err), "InvalidParameterException", "{err:?}");
        sm.create_secret()
            .name("app")
            .set_tags(Some(tags(50)))
            .send()
            .await
            .expect("50 tags");

        let long_key = Tag::builder().key("k".repeat(129)).value("v").build();
        let err = sm
            .tag_resource()
            .secret_id("app")
            .tags(long_key)
            .send()
            .await
            .expect_err("129-character key");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        let long_value = Tag::builder().key("k").value("v".repeat(257)).build();
        let err = sm
            .tag_resource()
            .secret_id("app")
            .tags(long_value)
            .send()
            .await
            .expect_err("257-character value");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        let one_more = Tag::builder().key("one-more").value("v").build();
        let err = sm
            .tag_resource()
            .secret_id("app")
            .tags(one_more)
            .send()
            .await
            .expect_err("a 51st tag");
        assert_eq!(error_code(&err), "InvalidParameterException", "{err:?}");
        sm.tag_resource()
            .secret_id("app")
            .tags(Tag::builder().key("key-0").value("w").build())
            .send()
            .await
            .expect("replacing a value keeps 50 tags");

        let err = sm
            .untag_resource()
            .secret_id("app")
            .set_tag_keys(Some(keys(51)))
            .send()
            .await
            .expect_err("51 tag keys");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        sm.untag_resource()
            .secret_id("app")
            .set_tag_keys(Some(keys(50)))
            .send()
            .await
            .expect("50 tag keys");
        let described = sm
            .describe_secret()
            .secret_id("app")
            .send()
            .await
            .expect("describe");
        assert!(described.tags().is_empty());
    }
}

mod kms {
    use super::*;
    use aws_sdk_kms::Client;
    use aws_sdk_kms::types::Tag;

    pub fn tags(n: usize) -> Vec<Tag> {
        (0..n)
            .map(|i| {
                Tag::builder()
                    .tag_key(format!("key-{i}"))
                    .tag_value("v")
                    .build()
                    .unwrap()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn refused_tag_requests_never_hold_up_an_administrators_writes() {
        let server = Server::start(&[]);
        let admin = Admin::new(&server).await;
        let kms = Client::new(&admin.config);
        let sm = aws_sdk_secretsmanager::Client::new(&admin.config);
        let key_id = kms
            .create_key()
            .send()
            .await
            .expect("create key")
            .key_metadata()
            .unwrap()
            .key_id()
            .to_string();
        sm.create_secret()
            .name("prod/db")
            .secret_string("v0")
            .send()
            .await
            .expect("create");
        let mallory = Client::new(&nobody(&admin).await);

        let untag = {
            let (mallory, key_id) = (mallory.clone(), key_id.clone());
            tokio::spawn(async move {
                timed(
                    mallory
                        .untag_resource()
                        .key_id(key_id)
                        .set_tag_keys(Some(many_keys()))
                        .send(),
                )
                .await
            })
        };
        let mut refused = Vec::new();
        for _ in 0..REFUSED {
            let (mallory, key_id) = (mallory.clone(), key_id.clone());
            refused.push(tokio::spawn(async move {
                timed(
                    mallory
                        .tag_resource()
                        .key_id(key_id)
                        .set_tags(Some(tags(50)))
                        .send(),
                )
                .await
            }));
        }
        let mut writes = Vec::new();
        for i in 0..4 {
            let (kms, sm, key_id) = (kms.clone(), sm.clone(), key_id.clone());
            writes.push(tokio::spawn(async move {
                kms.tag_resource()
                    .key_id(key_id)
                    .tags(
                        Tag::builder()
                            .tag_key(format!("admin-{i}"))
                            .tag_value("v")
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .expect("the administrator's TagResource");
                sm.put_secret_value()
                    .secret_id("prod/db")
                    .secret_string(format!("v{}", i + 1))
                    .send()
                    .await
                    .expect("the administrator's PutSecretValue");
            }));
        }

        let (result, took) = untag.await.unwrap();
        let err = result.expect_err("100,000 tag keys");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        assert!(took < PROMPT, "UntagResource took {took:?}");
        for r in refused {
            let (result, took) = r.await.unwrap();
            let err = result.expect_err("no permission");
            assert_eq!(error_code(&err), "AccessDeniedException", "{err:?}");
            assert!(took < PROMPT, "TagResource took {took:?}");
        }
        for w in writes {
            w.await.unwrap();
        }
        let listed = kms
            .list_resource_tags()
            .key_id(&key_id)
            .send()
            .await
            .expect("list tags");
        let names: Vec<&str> = listed.tags().iter().map(|t| t.tag_key()).collect();
        assert_eq!(names, ["admin-0", "admin-1", "admin-2", "admin-3"]);
    }

    #[tokio::test]
    async fn tag_limits() {
        let server = Server::start(&[]);
        let kms = Client::new(&server.admin_config().await);
        let err = kms
            .create_key()
            .set_tags(Some(tags(51)))
            .send()
            .await
            .expect_err("51 tags");
        assert_eq!(error_code(&err), "LimitExceededException", "{err:?}");
        let key_id = kms
            .create_key()
            .set_tags(Some(tags(50)))
            .send()
            .await
            .expect("50 tags")
            .key_metadata()
            .unwrap()
            .key_id()
            .to_string();
        let long_key = Tag::builder()
            .tag_key("k".repeat(129))
            .tag_value("v")
            .build()
            .unwrap();
        let err = kms
            .tag_resource()
            .key_id(&key_id)
            .tags(long_key)
            .send()
            .await
            .expect_err("129-character key");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        let long_value = Tag::builder()
            .tag_key("k")
            .tag_value("v".repeat(257))
            .build()
            .unwrap();
        let err = kms
            .tag_resource()
            .key_id(&key_id)
            .tags(long_value)
            .send()
            .await
            .expect_err("257-character value");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        let err = kms
            .tag_resource()
            .key_id(&key_id)
            .tags(
                Tag::builder()
                    .tag_key("one-more")
                    .tag_value("v")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect_err("a 51st tag");
        assert_eq!(error_code(&err), "LimitExceededException", "{err:?}");
        let err = kms
            .untag_resource()
            .key_id(&key_id)
            .set_tag_keys(Some(keys(51)))
            .send()
            .await
            .expect_err("51 tag keys");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        kms.untag_resource()
            .key_id(&key_id)
            .set_tag_keys(Some(keys(50)))
            .send()
            .await
            .expect("50 tag keys");
        let listed = kms
            .list_resource_tags()
            .key_id(&key_id)
            .send()
            .await
            .expect("list tags");
        assert!(listed.tags().is_empty());
    }
}

mod ssm {
    use super::*;
    use aws_sdk_ssm::Client;
    use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag};

    pub fn tags(n: usize) -> Vec<Tag> {
        (0..n)
            .map(|i| {
                Tag::builder()
                    .key(format!("key-{i}"))
                    .value("v")
                    .build()
                    .unwrap()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn refused_tag_requests_never_hold_up_an_administrators_writes() {
        let server = Server::start(&[]);
        let admin = Admin::new(&server).await;
        let ssm = Client::new(&admin.config);
        ssm.put_parameter()
            .name("/prod/db")
            .value("v0")
            .r#type(ParameterType::String)
            .send()
            .await
            .expect("put");
        let mallory = Client::new(&nobody(&admin).await);

        let remove = {
            let mallory = mallory.clone();
            tokio::spawn(async move {
                timed(
                    mallory
                        .remove_tags_from_resource()
                        .resource_type(ResourceTypeForTagging::Parameter)
                        .resource_id("/prod/db")
                        .set_tag_keys(Some(many_keys()))
                        .send(),
                )
                .await
            })
        };
        let mut refused = Vec::new();
        for _ in 0..REFUSED {
            let mallory = mallory.clone();
            refused.push(tokio::spawn(async move {
                timed(
                    mallory
                        .add_tags_to_resource()
                        .resource_type(ResourceTypeForTagging::Parameter)
                        .resource_id("/prod/db")
                        .set_tags(Some(tags(50)))
                        .send(),
                )
                .await
            }));
        }
        let mut puts = Vec::new();
        for i in 0..4 {
            let ssm = ssm.clone();
            puts.push(tokio::spawn(async move {
                ssm.put_parameter()
                    .name("/prod/db")
                    .value(format!("v{}", i + 1))
                    .overwrite(true)
                    .send()
                    .await
            }));
        }

        let (result, took) = remove.await.unwrap();
        let err = result.expect_err("100,000 tag keys");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        assert!(took < PROMPT, "RemoveTagsFromResource took {took:?}");
        for r in refused {
            let (result, took) = r.await.unwrap();
            let err = result.expect_err("no permission");
            assert_eq!(error_code(&err), "AccessDeniedException", "{err:?}");
            assert!(took < PROMPT, "AddTagsToResource took {took:?}");
        }
        for p in puts {
            p.await.unwrap().expect("the administrator's PutParameter");
        }
        let listed = ssm
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id("/prod/db")
            .send()
            .await
            .expect("list tags");
        assert!(listed.tag_list().is_empty(), "no refused tag was stored");
    }

    #[tokio::test]
    async fn tag_limits() {
        let server = Server::start(&[]);
        let ssm = Client::new(&server.admin_config().await);
        let err = ssm
            .put_parameter()
            .name("/too-many")
            .value("v")
            .r#type(ParameterType::String)
            .set_tags(Some(tags(51)))
            .send()
            .await
            .expect_err("51 tags");
        assert_eq!(error_code(&err), "TooManyTagsError", "{err:?}");
        ssm.put_parameter()
            .name("/app")
            .value("v")
            .r#type(ParameterType::String)
            .set_tags(Some(tags(50)))
            .send()
            .await
            .expect("50 tags");
        let add = |tag: Tag| {
            ssm.add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id("/app")
                .tags(tag)
                .send()
        };
        let err = add(Tag::builder()
            .key("k".repeat(129))
            .value("v")
            .build()
            .unwrap())
        .await
        .expect_err("129-character key");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        let err = add(Tag::builder()
            .key("k")
            .value("v".repeat(257))
            .build()
            .unwrap())
        .await
        .expect_err("257-character value");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        let err = add(Tag::builder().key("one-more").value("v").build().unwrap())
            .await
            .expect_err("a 51st tag");
        assert_eq!(error_code(&err), "TooManyTagsError", "{err:?}");
        let err = ssm
            .add_tags_to_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id("/app")
            .set_tags(Some(tags(51)))
            .send()
            .await
            .expect_err("51 tags in one request");
        assert_eq!(error_code(&err), "TooManyTagsError", "{err:?}");

        let remove = |n: usize| {
            ssm.remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id("/app")
                .set_tag_keys(Some(keys(n)))
                .send()
        };
        let err = remove(51).await.expect_err("51 tag keys");
        assert_eq!(error_code(&err), "ValidationException", "{err:?}");
        remove(50).await.expect("50 tag keys");
        let listed = ssm
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id("/app")
            .send()
            .await
            .expect("list tags");
        assert!(listed.tag_list().is_empty());
    }
}
