//! Secrets Manager through the real `aws-sdk-secretsmanager` client against a spawned
//! `tresor serve`: versions and staging labels, idempotency, deletion, resource policies with
//! unique-id capture (roles via `aws-sdk-iam` and `aws-sdk-sts`), and encryption at rest.

mod common;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::Blob;
use common::{Admin, Server, assert_not_on_disk};

async fn admin(server: &Server) -> Client {
    Client::new(&server.admin_config().await)
}

#[tokio::test]
async fn versions_move_awscurrent_and_awsprevious_follows() {
    let server = Server::start(&[]);
    let sm = admin(&server).await;
    let created = sm
        .create_secret()
        .name("ci/agent-token")
        .secret_string("v1")
        .send()
        .await
        .expect("create");
    let arn = created.arn().expect("ARN").to_string();
    let v1 = created.version_id().expect("VersionId").to_string();
    let got = sm
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("get");
    assert_eq!(got.secret_string(), Some("v1"));
    assert_eq!(got.version_stages(), ["AWSCURRENT"]);

    // Hand rotation: AWSPENDING first, then move AWSCURRENT with RemoveFromVersionId.
    let token = "11111111-2222-4333-8444-555555555555";
    let put = sm
        .put_secret_value()
        .secret_id("ci/agent-token")
        .client_request_token(token)
        .secret_string("v2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("put pending");
    assert_eq!(put.version_stages(), ["AWSPENDING"]);
    let err = sm
        .update_secret_version_stage()
        .secret_id(&arn)
        .version_stage("AWSCURRENT")
        .move_to_version_id(token)
        .send()
        .await
        .expect_err("label is attached elsewhere");
    assert_eq!(err.code(), Some("InvalidParameterException"));
    sm.update_secret_version_stage()
        .secret_id(&arn)
        .version_stage("AWSCURRENT")
        .move_to_version_id(token)
        .remove_from_version_id(&v1)
        .send()
        .await
        .expect("move AWSCURRENT");
    let described = sm
        .describe_secret()
        .secret_id(&arn)
        .send()
        .await
        .expect("describe");
    let stages = described
        .version_ids_to_stages()
        .expect("VersionIdsToStages");
    assert_eq!(stages[&v1], ["AWSPREVIOUS"]);
    let mut current = stages[token].clone();
    current.sort();
    assert_eq!(current, ["AWSCURRENT", "AWSPENDING"]);
    assert!(
        described.kms_key_id().is_none(),
        "the default key is not shown"
    );
    let got = sm
        .get_secret_value()
        .secret_id("ci/agent-token")
        .send()
        .await
        .expect("get");
    assert_eq!(got.secret_string(), Some("v2"));
    assert_eq!(got.version_id(), Some(token));

    // Replay of the same token and value is a no-op; another value is refused.
    sm.put_secret_value()
        .secret_id(&arn)
        .client_request_token(token)
        .secret_string("v2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("idempotent replay");
    let err = sm
        .put_secret_value()
        .secret_id(&arn)
        .client_request_token(token)
        .secret_string("v3")
        .send()
        .await
        .expect_err("different value under a used token");
    assert_eq!(err.code(), Some("ResourceExistsException"));

    // Binary values.
    sm.put_secret_value()
        .secret_id(&arn)
        .secret_binary(Blob::new(vec![0u8, 1, 2, 255]))
        .send()
        .await
        .expect("put binary");
    let got = sm
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("get binary");
    assert_eq!(
        got.secret_binary().map(|b| b.as_ref().to_vec()),
        Some(vec![0u8, 1, 2, 255])
    );
    assert!(got.secret_string().is_none());
}

#[tokio::test]
async fn deletion_refuses_reads_keeps_the_name_and_can_be_undone() {
    let server = Server::start(&[]);
    let sm = admin(&server).await;
    sm.create_secret()
        .name("doomed")
        .secret_string("s")
        .send()
        .await
        .expect("create");
    let err = sm
        .delete_secret()
        .secret_id("doomed")
        .recovery_window_in_days(7)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect_err("both parameters");
    assert_eq!(err.code(), Some("InvalidParameterException"));
    sm.delete_secret()
        .secret_id("doomed")
        .send()
        .await
        .expect("schedule deletion");
    let err = sm
        .get_secret_value()
        .secret_id("doomed")
        .send()
        .await
        .expect_err("scheduled");
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert_eq!(
        err.message(),
        Some("You can't perform this operation on the secret because it was marked for deletion.")
    );
    let err = sm
        .create_secret()
        .name("doomed")
        .secret_string("x")
        .send()
        .await
        .expect_err("name reserved");
    assert_eq!(err.code(), Some("InvalidRequestException"));
    let d = sm
        .describe_secret()
        .secret_id("doomed")
        .send()
        .await
        .expect("describe still works");
    assert!(d.deleted_date().is_some());
    sm.restore_secret()
        .secret_id("doomed")
        .send()
        .await
        .expect("restore");
    let got = sm
        .get_secret_value()
        .secret_id("doomed")
        .send()
        .await
        .expect("readable again");
    assert_eq!(got.secret_string(), Some("s"));
    sm.delete_secret()
        .secret_id("doomed")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("force");
    let err = sm
        .describe_secret()
        .secret_id("doomed")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn list_secrets_paginates_with_the_sdk_paginator() {
    let server = Server::start(&[]);
    let sm = admin(&server).await;
    for i in 0..7 {
        sm.create_secret()
            .name(format!("page/{i}"))
            .secret_string("x")
            .send()
            .await
            .expect("create");
    }
    let pages: Vec<_> = sm
        .list_secrets()
        .max_results(3)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("paginate");
    assert_eq!(pages.len(), 3);
    let names: Vec<String> = pages
        .iter()
        .flat_map(|p| {
            p.secret_list()
                .iter()
                .filter_map(|s| s.name().map(str::to_string))
        })
        .collect();
    assert_eq!(
        names,
        (0..7).map(|i| format!("page/{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn recreated_role_is_denied_until_policy_is_saved_again() {
    let server = Server::start(&[]);
    let admin = Admin::new(&server).await;
    let sm = Client::new(&admin.config);
    let iam = &admin.iam;
    let create_role = || admin.create_role("buildkite-secretsmanager-Role");
    let role = create_role().await;
    let arn = sm
        .create_secret()
        .name("buildkite/agent-token")
        .secret_string("bk-token")
        .send()
        .await
        .expect("create")
        .arn()
        .expect("ARN")
        .to_string();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#,
        role.arn()
    );
    sm.put_resource_policy()
        .secret_id(&arn)
        .resource_policy(&policy)
        .send()
        .await
        .expect("put policy");

    let as_role = |role_arn: String| {
        let admin = &admin;
        async move { Client::new(&admin.assume(&role_arn, "i-0123456789").await) }
    };
    let instance = as_role(role.arn().to_string()).await;
    let got = instance
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("allowed by the secret policy");
    assert_eq!(got.secret_string(), Some("bk-token"));

    iam.delete_role()
        .role_name("buildkite-secretsmanager-Role")
        .send()
        .await
        .expect("delete role");
    let shown = sm
        .get_resource_policy()
        .secret_id(&arn)
        .send()
        .await
        .expect("get policy");
    assert!(
        shown
            .resource_policy()
            .expect("policy")
            .contains(role.role_id()),
        "shows the bare unique id"
    );
    let role2 = create_role().await;
    assert_ne!(role2.role_id(), role.role_id());
    let instance = as_role(role2.arn().to_string()).await;
    let err = instance
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect_err("new role id is not in the policy");
    assert_eq!(err.code(), Some("AccessDeniedException"));

    sm.put_resource_policy()
        .secret_id(&arn)
        .resource_policy(&policy)
        .send()
        .await
        .expect("save again");
    let got = instance
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("allowed again");
    assert_eq!(got.secret_string(), Some("bk-token"));
    let shown = sm
        .get_resource_policy()
        .secret_id(&arn)
        .send()
        .await
        .expect("get policy");
    assert!(
        shown
            .resource_policy()
            .expect("policy")
            .contains(role2.arn())
    );
}

#[tokio::test]
async fn no_secret_value_reaches_the_data_directory() {
    let server = Server::start(&[]);
    let sm = admin(&server).await;
    let marker = "tresor-plaintext-marker-7d1c0b5e";
    sm.create_secret()
        .name("disk")
        .secret_string(marker)
        .send()
        .await
        .expect("create");
    sm.put_secret_value()
        .secret_id("disk")
        .secret_string(format!("{marker}-2"))
        .send()
        .await
        .expect("put");
    let got = sm
        .get_secret_value()
        .secret_id("disk")
        .send()
        .await
        .expect("get");
    assert_eq!(got.secret_string(), Some(format!("{marker}-2").as_str()));
    assert_not_on_disk(&server.data_dir, marker.as_bytes(), "a secret value");
}

/// A name outside CreateSecret's character set is AWS's `ValidationException` with its text
/// (Secrets Manager API reference, CreateSecret `Name`; the message as AWS returns it, quoted
/// in smithy-lang/smithy-typescript#1546).
#[tokio::test]
async fn invalid_secret_name_is_a_validation_exception() {
    let server = Server::start(&[]);
    let sm = admin(&server).await;
    let err = sm
        .create_secret()
        .name("bad name")
        .secret_string("s")
        .send()
        .await
        .expect_err("space in the name");
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
        )
    );
}

/// The hot read path keeps decoded records and unwrapped data keys in memory; every change
/// still applies to the very next read: a disabled KMS key, a denying key policy, a denying
/// resource policy, a removed identity policy.
#[tokio::test]
async fn key_policy_and_identity_changes_apply_to_the_very_next_read() {
    let server = Server::start(&[]);
    let admin = Admin::new(&server).await;
    let sm = Client::new(&admin.config);
    let kms = aws_sdk_kms::Client::new(&admin.config);
    let key = kms
        .create_key()
        .send()
        .await
        .expect("CreateKey")
        .key_metadata()
        .expect("KeyMetadata")
        .key_id()
        .to_string();
    let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","kms:Decrypt"],"Resource":"*"}]}"#;
    let (user_arn, config) = admin.user_with_policy("reader", "read", allow).await;
    let account = user_arn.split(':').nth(4).expect("account").to_string();
    let reader = Client::new(&config);
    sm.create_secret()
        .name("hot/read")
        .kms_key_id(&key)
        .secret_string("v1")
        .send()
        .await
        .expect("create");
    let read = || async { reader.get_secret_value().secret_id("hot/read").send().await };
    for _ in 0..3 {
        assert_eq!(read().await.expect("read").secret_string(), Some("v1"));
    }

    kms.disable_key()
        .key_id(&key)
        .send()
        .await
        .expect("disable");
    let err = read().await.expect_err("the key is disabled");
    assert_eq!(err.code(), Some("DecryptionFailure"));
    kms.enable_key().key_id(&key).send().await.expect("enable");
    assert_eq!(
        read().await.expect("enabled again").secret_string(),
        Some("v1")
    );

    let root = format!("arn:aws:iam::{account}:root");
    let deny_decrypt = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{root}"}},"Action":"kms:*","Resource":"*"}},{{"Effect":"Deny","Principal":{{"AWS":"{user_arn}"}},"Action":"kms:Decrypt","Resource":"*"}}]}}"#
    );
    kms.put_key_policy()
        .key_id(&key)
        .policy_name("default")
        .policy(&deny_decrypt)
        .send()
        .await
        .expect("PutKeyPolicy");
    let err = read().await.expect_err("the key policy denies");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let allow_root = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{root}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    kms.put_key_policy()
        .key_id(&key)
        .policy_name("default")
        .policy(&allow_root)
        .send()
        .await
        .expect("PutKeyPolicy");
    assert_eq!(
        read().await.expect("key policy allows").secret_string(),
        Some("v1")
    );

    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"{user_arn}"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#
    );
    sm.put_resource_policy()
        .secret_id("hot/read")
        .resource_policy(&deny)
        .send()
        .await
        .expect("PutResourcePolicy");
    let err = read().await.expect_err("the resource policy denies");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    sm.delete_resource_policy()
        .secret_id("hot/read")
        .send()
        .await
        .expect("DeleteResourcePolicy");
    assert_eq!(
        read().await.expect("allowed again").secret_string(),
        Some("v1")
    );

    admin
        .iam
        .delete_user_policy()
        .user_name("reader")
        .policy_name("read")
        .send()
        .await
        .expect("DeleteUserPolicy");
    let err = read().await.expect_err("no identity policy");
    assert_eq!(err.code(), Some("AccessDeniedException"));
}

/// Allowed decisions are remembered for identical requests, except when a policy reads the
/// clock: a policy that allows reads until an instant decides each read at its own time.
#[tokio::test]
async fn a_policy_that_reads_the_clock_decides_each_read_at_its_own_time() {
    let server = Server::start(&[]);
    let admin = Admin::new(&server).await;
    let sm = Client::new(&admin.config);
    sm.create_secret()
        .name("clock/read")
        .secret_string("v1")
        .send()
        .await
        .expect("create");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let until = now + 6;
    let allow = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","kms:Decrypt"],"Resource":"*","Condition":{{"NumericLessThan":{{"aws:EpochTime":"{until}"}}}}}}]}}"#
    );
    let (_, config) = admin.user_with_policy("clocked", "until", &allow).await;
    let reader = Client::new(&config);
    let read = || async {
        reader
            .get_secret_value()
            .secret_id("clock/read")
            .send()
            .await
    };
    for _ in 0..3 {
        assert_eq!(read().await.expect("before").secret_string(), Some("v1"));
    }
    let wait = std::time::UNIX_EPOCH + std::time::Duration::from_secs(until);
    if let Ok(left) = wait.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + std::time::Duration::from_millis(100)).await;
    }
    let err = read().await.expect_err("after the instant");
    assert_eq!(err.code(), Some("AccessDeniedException"));
}
