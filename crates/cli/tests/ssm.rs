//! Parameter Store through the real `aws-sdk-ssm` client against a spawned `tresor serve`:
//! every operation, the SDK paginators, SecureString through KMS, IAM on paths (roles via
//! `aws-sdk-iam` and `aws-sdk-sts`), the `/aws/reference/secretsmanager/…` path with its
//! authorization chain, and encryption at rest.
#![allow(clippy::expect_used)] // test helpers: a panic is a failed test

mod common;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{
    ParameterStringFilter, ParameterTier, ParameterType, ResourceTypeForTagging, Tag,
};
use common::{Admin, Server, assert_not_on_disk};

async fn admin(server: &Server) -> Client {
    Client::new(&server.admin_config().await)
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().expect("tag")
}

#[tokio::test]
async fn every_parameter_operation_with_the_sdk() {
    let server = Server::start(&[]);
    let ssm = admin(&server).await;
    let put = ssm
        .put_parameter()
        .name("/ci/agent/url")
        .value("https://ci.example")
        .r#type(ParameterType::String)
        .description("agent endpoint")
        .tags(tag("team", "ci"))
        .send()
        .await
        .expect("put");
    assert_eq!(put.version(), 1);
    assert_eq!(put.tier(), Some(&ParameterTier::Standard));
    let err = ssm
        .put_parameter()
        .name("/ci/agent/url")
        .value("x")
        .r#type(ParameterType::String)
        .send()
        .await
        .expect_err("exists");
    assert_eq!(err.code(), Some("ParameterAlreadyExists"));
    ssm.put_parameter()
        .name("/ci/agent/url")
        .value("https://ci2.example")
        .overwrite(true)
        .send()
        .await
        .expect("overwrite");

    let got = ssm
        .get_parameter()
        .name("/ci/agent/url:1")
        .send()
        .await
        .expect("get v1");
    let p = got.parameter().expect("parameter");
    assert_eq!(p.value(), Some("https://ci.example"));
    assert_eq!(p.selector(), Some(":1"));
    assert_eq!(p.version(), 1);
    assert!(p.arn().expect("arn").ends_with(":parameter/ci/agent/url"));

    let err = ssm
        .get_parameter()
        .name("/ci/missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Some("ParameterNotFound"));
    assert_eq!(err.message(), None);

    let label = ssm
        .label_parameter_version()
        .name("/ci/agent/url")
        .parameter_version(1)
        .labels("stable")
        .labels("9bad")
        .send()
        .await
        .expect("label");
    assert_eq!(label.invalid_labels(), ["9bad"]);
    let got = ssm
        .get_parameter()
        .name("/ci/agent/url:stable")
        .send()
        .await
        .expect("by label");
    assert_eq!(
        got.parameter().and_then(|p| p.value()),
        Some("https://ci.example")
    );
    let un = ssm
        .unlabel_parameter_version()
        .name("/ci/agent/url")
        .parameter_version(1)
        .labels("stable")
        .send()
        .await
        .expect("unlabel");
    assert_eq!(un.removed_labels(), ["stable"]);

    let history = ssm
        .get_parameter_history()
        .name("/ci/agent/url")
        .send()
        .await
        .expect("history");
    let versions: Vec<i64> = history.parameters().iter().map(|h| h.version()).collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(
        history.parameters()[1].description(),
        Some("agent endpoint")
    );

    let many = ssm
        .get_parameters()
        .names("/ci/agent/url")
        .names("/ci/nope")
        .send()
        .await
        .expect("get parameters");
    assert_eq!(many.parameters().len(), 1);
    assert_eq!(many.invalid_parameters(), ["/ci/nope"]);

    let described = ssm
        .describe_parameters()
        .parameter_filters(
            ParameterStringFilter::builder()
                .key("tag:team")
                .values("ci")
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("describe");
    assert_eq!(described.parameters().len(), 1);
    let meta = &described.parameters()[0];
    assert_eq!(meta.name(), Some("/ci/agent/url"));
    assert_eq!(meta.version(), 2);
    // The administrator is an IAM user; LastModifiedUser is the caller's ARN.
    assert!(meta.last_modified_user().expect("user").contains(":user/"));

    ssm.add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/ci/agent/url")
        .tags(tag("env", "prod"))
        .send()
        .await
        .expect("tag");
    ssm.remove_tags_from_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/ci/agent/url")
        .tag_keys("team")
        .send()
        .await
        .expect("untag");
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/ci/agent/url")
        .send()
        .await
        .expect("list tags");
    let keys: Vec<&str> = tags.tag_list().iter().map(|t| t.key()).collect();
    assert_eq!(keys, ["env"]);

    ssm.put_parameter()
        .name("/ci/other")
        .value("o")
        .r#type(ParameterType::StringList)
        .send()
        .await
        .expect("put other");
    let deleted = ssm
        .delete_parameters()
        .names("/ci/other")
        .names("/ci/never")
        .send()
        .await
        .expect("delete parameters");
    assert_eq!(deleted.deleted_parameters(), ["/ci/other"]);
    assert_eq!(deleted.invalid_parameters(), ["/ci/never"]);
    ssm.delete_parameter()
        .name("/ci/agent/url")
        .send()
        .await
        .expect("delete");
    let err = ssm
        .delete_parameter()
        .name("/ci/agent/url")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Some("ParameterNotFound"));
}

#[tokio::test]
async fn by_path_paginator_walks_every_parameter_once() {
    let server = Server::start(&[]);
    let ssm = admin(&server).await;
    for i in 0..23 {
        ssm.put_parameter()
            .name(format!("/fleet/node{i:02}/token"))
            .value(format!("t{i}"))
            .r#type(ParameterType::SecureString)
            .send()
            .await
            .expect("put");
    }
    let pages: Vec<_> = ssm
        .get_parameters_by_path()
        .path("/fleet")
        .recursive(true)
        .with_decryption(true)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut values = Vec::new();
    for page in pages {
        let page = page.expect("page");
        values.extend(
            page.parameters()
                .iter()
                .map(|p| p.value().unwrap_or_default().to_string()),
        );
    }
    assert_eq!(values.len(), 23);
    assert!(values.contains(&"t7".to_string()));
    let mut described = Vec::new();
    let mut pages = ssm
        .describe_parameters()
        .max_results(5)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        described.extend(page.expect("page").parameters().to_vec());
    }
    assert_eq!(described.len(), 23);
    assert!(
        described
            .iter()
            .all(|m| m.key_id() == Some("alias/aws/ssm"))
    );
}

#[tokio::test]
async fn by_path_is_authorized_on_the_path_not_on_each_parameter() {
    let server = Server::start(&[]);
    let ssm = admin(&server).await;
    for n in ["/a/x", "/a/b/secret"] {
        ssm.put_parameter()
            .name(n)
            .value("v")
            .r#type(ParameterType::String)
            .send()
            .await
            .expect("put");
    }
    let ids = Admin::new(&server).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"ssm:GetParametersByPath","Resource":"arn:aws:ssm:us-east-1:*:parameter/a"},
        {"Effect":"Deny","Action":["ssm:GetParameter","ssm:GetParametersByPath"],"Resource":"arn:aws:ssm:us-east-1:*:parameter/a/b*"}]}"#;
    let role = ids.role_with_policy("path-reader", policy).await;
    let reader = Client::new(&ids.assume(&role, "i-0123456789abcdef0").await);
    let out = reader
        .get_parameters_by_path()
        .path("/a")
        .recursive(true)
        .send()
        .await
        .expect("allowed on /a");
    let names: Vec<&str> = out.parameters().iter().filter_map(|p| p.name()).collect();
    assert_eq!(
        names,
        ["/a/b/secret", "/a/x"],
        "an allow on /a exposes /a/b (observed behavior of Parameter Store ARN matching)"
    );
    let err = reader
        .get_parameter()
        .name("/a/b/secret")
        .send()
        .await
        .expect_err("denied directly");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("ssm:GetParameter")
    );
    let err = reader
        .get_parameters_by_path()
        .path("/a/b")
        .send()
        .await
        .expect_err("denied on /a/b");
    assert_eq!(err.code(), Some("AccessDeniedException"));
}

#[tokio::test]
async fn reference_path_reads_the_secret_through_the_whole_chain() {
    let server = Server::start(&[]);
    let ids = Admin::new(&server).await;
    let ssm = Client::new(&ids.config);
    let kms = aws_sdk_kms::Client::new(&ids.config);
    let sm = aws_sdk_secretsmanager::Client::new(&ids.config);
    let key = kms.create_key().send().await.expect("key");
    let key_arn = key
        .key_metadata()
        .expect("meta")
        .arn()
        .expect("arn")
        .to_string();
    let secret = sm
        .create_secret()
        .name("buildkite/agent-token")
        .kms_key_id(&key_arn)
        .secret_string("bk-agent-token-1")
        .send()
        .await
        .expect("secret");
    let secret_arn = secret.arn().expect("arn").to_string();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["ssm:GetParameter","ssm:GetParameters"],"Resource":[
                "arn:aws:ssm:us-east-1:*:parameter/aws/reference/secretsmanager/buildkite/agent-token",
                "arn:aws:ssm:us-east-1:*:parameter/aws/reference/secretsmanager/missing-secret"]}},
            {{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{key_arn}"}}]}}"#
    );
    let role = ids.role_with_policy("buildkite-Role", &policy).await;
    sm.put_resource_policy()
        .secret_id(&secret_arn)
        .resource_policy(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{role}"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#
        ))
        .send()
        .await
        .expect("resource policy");
    let instance = Client::new(&ids.assume(&role, "i-0123456789abcdef0").await);
    let got = instance
        .get_parameter()
        .name("/aws/reference/secretsmanager/buildkite/agent-token")
        .with_decryption(true)
        .send()
        .await
        .expect("reference read");
    let p = got.parameter().expect("parameter");
    assert_eq!(p.value(), Some("bk-agent-token-1"));
    assert_eq!(p.r#type(), Some(&ParameterType::SecureString));
    assert_eq!(p.version(), 0);
    assert_eq!(p.arn(), Some(secret_arn.as_str()));
    assert_eq!(
        p.name(),
        Some("/aws/reference/secretsmanager/buildkite/agent-token")
    );
    assert!(
        p.source_result()
            .expect("SourceResult")
            .contains(&secret_arn)
    );
    assert!(p.selector().is_none());

    let current = instance
        .get_parameter()
        .name("/aws/reference/secretsmanager/buildkite/agent-token:AWSCURRENT")
        .with_decryption(true)
        .send()
        .await
        .expect("by staging label");
    assert_eq!(
        current.parameter().and_then(|p| p.selector()),
        Some(":AWSCURRENT")
    );

    let err = instance
        .get_parameter()
        .name("/aws/reference/secretsmanager/buildkite/agent-token")
        .send()
        .await
        .expect_err("WithDecryption is required");
    assert_eq!(err.code(), Some("ValidationException"));

    // Another secret the role is not granted: the dependency-service error.
    sm.create_secret()
        .name("other")
        .secret_string("nope")
        .send()
        .await
        .expect("other secret");
    let err = instance
        .get_parameter()
        .name("/aws/reference/secretsmanager/other")
        .with_decryption(true)
        .send()
        .await
        .expect_err("not allowed by ssm:GetParameter");
    assert_eq!(err.code(), Some("AccessDeniedException"));

    // A role allowed by SSM but not by the secret's resource policy.
    let policy2 = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"*"}]}"#;
    let outsider = ids.role_with_policy("outsider", policy2).await;
    let outsider = Client::new(&ids.assume(&outsider, "i-0123456789abcdef0").await);
    let err = outsider
        .get_parameter()
        .name("/aws/reference/secretsmanager/buildkite/agent-token")
        .with_decryption(true)
        .send()
        .await
        .expect_err("not in the resource policy");
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some("An error occurred while calling one AWS dependency service.")
    );
    // GetParameters: a reference the caller may not read (even a missing secret: Secrets
    // Manager checks permission before existence) fails the whole call...
    let err = instance
        .get_parameters()
        .names("/aws/reference/secretsmanager/buildkite/agent-token")
        .names("/aws/reference/secretsmanager/missing-secret")
        .with_decryption(true)
        .send()
        .await
        .expect_err("permission failure on one reference");
    assert_eq!(err.code(), Some("ValidationException"));
    // ...while for a caller who may, a missing secret is just an invalid name.
    let many = ssm
        .get_parameters()
        .names("/aws/reference/secretsmanager/buildkite/agent-token")
        .names("/aws/reference/secretsmanager/missing-secret")
        .with_decryption(true)
        .send()
        .await
        .expect("get parameters");
    assert_eq!(many.parameters().len(), 1);
    assert_eq!(many.parameters()[0].value(), Some("bk-agent-token-1"));
    assert_eq!(
        many.invalid_parameters(),
        ["/aws/reference/secretsmanager/missing-secret"]
    );

    // Writes to the reference namespace are refused.
    let err = ssm
        .put_parameter()
        .name("/aws/reference/secretsmanager/buildkite/agent-token")
        .value("x")
        .r#type(ParameterType::String)
        .send()
        .await
        .expect_err("reserved");
    assert_eq!(err.code(), Some("AccessDeniedException"));
}

#[tokio::test]
async fn no_secure_string_value_reaches_the_data_directory() {
    let server = Server::start(&[]);
    let ssm = admin(&server).await;
    let marker = "SSM-PLAINTEXT-MARKER-4f1c2e";
    for i in 0..3 {
        ssm.put_parameter()
            .name("/secret/value")
            .value(format!("{marker}-{i}"))
            .r#type(ParameterType::SecureString)
            .overwrite(i > 0)
            .send()
            .await
            .expect("put");
    }
    let got = ssm
        .get_parameter()
        .name("/secret/value")
        .with_decryption(true)
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.parameter().and_then(|p| p.value()),
        Some(format!("{marker}-2").as_str())
    );
    let hidden = ssm
        .get_parameter()
        .name("/secret/value")
        .send()
        .await
        .expect("get without decryption");
    assert!(
        !hidden
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or_default()
            .contains(marker)
    );
    drop(ssm);
    assert_not_on_disk(&server.data_dir, marker.as_bytes(), "a SecureString value");
}
