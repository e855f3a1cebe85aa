//! KMS through the real `aws-sdk-kms` client against a spawned `tresor serve`: round trips,
//! key states, key-policy authorization with IAM users and the database files never holding a
//! plaintext. Ciphertexts crossing between clients (boto3 and the AWS CLI) are checked in
//! `compat/test_kms.py`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a panic is a failed test

mod common;

use aws_sdk_kms::Client;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use common::{Admin, Server, assert_not_on_disk};

async fn admin(server: &Server) -> Client {
    Client::new(&server.admin_config().await)
}

async fn create_key(kms: &Client) -> String {
    kms.create_key()
        .description("test key")
        .send()
        .await
        .expect("CreateKey")
        .key_metadata()
        .expect("KeyMetadata")
        .arn()
        .expect("Arn")
        .to_string()
}

fn code<T, E: ProvideErrorMetadata + std::fmt::Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code().unwrap_or_default().to_string(),
    }
}

/// A new IAM user with an inline identity policy, and a KMS client signed as that user.
async fn user_with_policy(server: &Server, name: &str, policy: &str) -> (String, Client) {
    let (arn, config) = Admin::new(server)
        .await
        .user_with_policy(name, "kms", policy)
        .await;
    (arn, Client::new(&config))
}

#[tokio::test]
async fn encrypt_decrypt_round_trip_reports_the_key_arn_even_via_alias() {
    let server = Server::start(&[]);
    let kms = admin(&server).await;
    let arn = create_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/ci")
        .target_key_id(&arn)
        .send()
        .await
        .expect("CreateAlias");
    let enc = kms
        .encrypt()
        .key_id("alias/ci")
        .plaintext(Blob::new("s3cret-token"))
        .encryption_context("purpose", "ci")
        .send()
        .await
        .expect("Encrypt");
    assert_eq!(enc.key_id(), Some(arn.as_str()));
    let blob = enc.ciphertext_blob().expect("blob").clone();
    let dec = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "ci")
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(
        dec.plaintext().expect("Plaintext").as_ref(),
        b"s3cret-token"
    );
    assert_eq!(dec.key_id(), Some(arn.as_str()));

    // Wrong context, no context, one flipped bit: InvalidCiphertextException.
    let wrong = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "CI")
        .send()
        .await;
    assert_eq!(code(wrong), "InvalidCiphertextException");
    assert_eq!(
        code(kms.decrypt().ciphertext_blob(blob.clone()).send().await),
        "InvalidCiphertextException"
    );
    let mut bytes = blob.into_inner();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    let flipped = kms
        .decrypt()
        .ciphertext_blob(Blob::new(bytes))
        .encryption_context("purpose", "ci")
        .send()
        .await;
    assert_eq!(code(flipped), "InvalidCiphertextException");

    let described = kms
        .describe_key()
        .key_id("alias/ci")
        .send()
        .await
        .expect("DescribeKey");
    let meta = described.key_metadata().expect("KeyMetadata");
    assert_eq!(meta.arn(), Some(arn.as_str()));
    assert_eq!(meta.key_manager().map(|m| m.as_str()), Some("CUSTOMER"));
    assert_eq!(
        meta.key_spec().map(|m| m.as_str()),
        Some("SYMMETRIC_DEFAULT")
    );
}

#[tokio::test]
async fn disabled_and_pending_deletion_keys_refuse_with_the_right_codes() {
    let server = Server::start(&[]);
    let kms = admin(&server).await;
    let arn = create_key(&kms).await;
    let enc = kms
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .expect("Encrypt");
    let blob = enc.ciphertext_blob().expect("blob").clone();

    kms.disable_key()
        .key_id(&arn)
        .send()
        .await
        .expect("DisableKey");
    let err = kms
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .expect_err("disabled");
    assert_eq!(err.code(), Some("DisabledException"));
    assert_eq!(err.message(), Some(format!("{arn} is disabled.").as_str()));
    assert_eq!(
        code(kms.decrypt().ciphertext_blob(blob.clone()).send().await),
        "DisabledException"
    );

    let scheduled = kms
        .schedule_key_deletion()
        .key_id(&arn)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("Schedule");
    assert_eq!(
        scheduled.key_state().map(|s| s.as_str()),
        Some("PendingDeletion")
    );
    assert_eq!(scheduled.key_id(), Some(arn.as_str()));
    assert!(scheduled.deletion_date().is_some());
    let err = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .expect_err("pending");
    assert_eq!(err.code(), Some("KMSInvalidStateException"));
    assert_eq!(
        err.message(),
        Some(format!("{arn} is pending deletion.").as_str())
    );
    assert_eq!(
        code(kms.enable_key().key_id(&arn).send().await),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(
            kms.schedule_key_deletion()
                .key_id(&arn)
                .pending_window_in_days(3)
                .send()
                .await
        ),
        "ValidationException"
    );

    let cancelled = kms
        .cancel_key_deletion()
        .key_id(&arn)
        .send()
        .await
        .expect("Cancel");
    assert_eq!(cancelled.key_id(), Some(arn.as_str()));
    let meta = kms
        .describe_key()
        .key_id(&arn)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        meta.key_metadata()
            .and_then(|m| m.key_state())
            .map(|s| s.as_str()),
        Some("Disabled")
    );
    kms.enable_key()
        .key_id(&arn)
        .send()
        .await
        .expect("EnableKey");
    let dec = kms
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .expect("Decrypt after re-enable");
    assert_eq!(dec.plaintext().expect("Plaintext").as_ref(), b"x");
}

#[tokio::test]
async fn rotation_keeps_old_ciphertexts_readable() {
    let server = Server::start(&[]);
    let kms = admin(&server).await;
    let arn = create_key(&kms).await;
    let old = kms
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new("before"))
        .send()
        .await
        .expect("Encrypt");
    kms.rotate_key_on_demand()
        .key_id(&arn)
        .send()
        .await
        .expect("RotateKeyOnDemand");
    kms.enable_key_rotation()
        .key_id(&arn)
        .send()
        .await
        .expect("EnableKeyRotation");
    let status = kms
        .get_key_rotation_status()
        .key_id(&arn)
        .send()
        .await
        .expect("Status");
    assert!(status.key_rotation_enabled());
    assert!(status.on_demand_rotation_start_date().is_some());
    let dec = kms
        .decrypt()
        .ciphertext_blob(old.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .expect("Decrypt old");
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"before");
    let dk = kms
        .generate_data_key()
        .key_id(&arn)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .expect("GenerateDataKey");
    assert_eq!(dk.plaintext().unwrap().as_ref().len(), 32);
    let back = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .expect("Decrypt data key");
    assert_eq!(back.plaintext(), dk.plaintext());
}

#[tokio::test]
async fn iam_alone_never_authorizes_a_key_whose_policy_does_not_delegate_to_the_account() {
    let server = Server::start(&[]);
    let kms = admin(&server).await;
    let admin_arn = Admin::new(&server).await.arn;
    let allow_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
    let (_, alice) = user_with_policy(&server, "alice", allow_all).await;

    // Key policy names only the administrator: no account delegation.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{admin_arn}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    let private = kms
        .create_key()
        .policy(&policy)
        .send()
        .await
        .expect("CreateKey with policy");
    let private = private.key_metadata().unwrap().arn().unwrap().to_string();
    let err = alice
        .encrypt()
        .key_id(&private)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .expect_err("denied");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message().unwrap_or_default().contains("kms:Encrypt"),
        "{:?}",
        err.message()
    );
    assert_eq!(
        code(alice.describe_key().key_id(&private).send().await),
        "AccessDeniedException"
    );

    // The default policy delegates to the account: now IAM's allow counts.
    let open = create_key(&kms).await;
    let enc = alice
        .encrypt()
        .key_id(&open)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .expect("allowed via delegation");
    alice
        .decrypt()
        .ciphertext_blob(enc.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .expect("Decrypt");

    // A policy that would lock the administrator out is refused unless bypassed.
    let alice_only = policy.replace(&admin_arn, "arn:aws:iam::000000000000:root");
    let err = kms
        .put_key_policy()
        .key_id(&open)
        .policy(&alice_only)
        .send()
        .await
        .expect_err("lockout");
    assert_eq!(err.code(), Some("MalformedPolicyDocumentException"));
    assert_eq!(
        err.message(),
        Some("The new key policy will not allow you to update the key policy in the future.")
    );
}

#[tokio::test]
async fn an_identity_policy_on_the_alias_arn_never_authorizes_decrypt() {
    let server = Server::start(&[]);
    let kms = admin(&server).await;
    let arn = create_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/app")
        .target_key_id(&arn)
        .send()
        .await
        .expect("CreateAlias");
    let enc = kms
        .encrypt()
        .key_id("alias/app")
        .plaintext(Blob::new("x"))
        .send()
        .await
        .expect("Encrypt");
    let account = arn.split(':').nth(4).unwrap();
    let on_alias = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kms:Decrypt","kms:Encrypt"],"Resource":"arn:aws:kms:us-east-1:{account}:alias/app"}}]}}"#
    );
    let (_, bob) = user_with_policy(&server, "bob", &on_alias).await;
    let blob = enc.ciphertext_blob().unwrap().clone();
    assert_eq!(
        code(bob.decrypt().ciphertext_blob(blob.clone()).send().await),
        "AccessDeniedException"
    );
    assert_eq!(
        code(
            bob.decrypt()
                .key_id("alias/app")
                .ciphertext_blob(blob)
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        code(
            bob.encrypt()
                .key_id("alias/app")
                .plaintext(Blob::new("x"))
                .send()
                .await
        ),
        "AccessDeniedException"
    );
}

#[tokio::test]
async fn managed_keys_are_listed_and_refuse_direct_use() {
    let server = Server::start(&[]);
    let kms = admin(&server).await;
    let aliases = kms.list_aliases().send().await.expect("ListAliases");
    let names: Vec<&str> = aliases
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    assert!(names.contains(&"alias/aws/secretsmanager"), "{names:?}");
    let described = kms
        .describe_key()
        .key_id("alias/aws/secretsmanager")
        .send()
        .await
        .expect("DescribeKey");
    let meta = described.key_metadata().unwrap();
    assert_eq!(meta.key_manager().map(|m| m.as_str()), Some("AWS"));
    let arn = meta.arn().unwrap().to_string();
    assert_eq!(
        code(
            kms.encrypt()
                .key_id("alias/aws/secretsmanager")
                .plaintext(Blob::new("x"))
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        code(kms.disable_key().key_id(&arn).send().await),
        "AccessDeniedException"
    );
    assert_eq!(
        code(kms.schedule_key_deletion().key_id(&arn).send().await),
        "AccessDeniedException"
    );
    let listed = kms
        .list_aliases()
        .key_id(&arn)
        .send()
        .await
        .expect("ListAliases by key");
    assert_eq!(listed.aliases().len(), 1);
    assert_eq!(listed.aliases()[0].target_key_id(), Some(meta.key_id()));
}

#[tokio::test]
async fn error_paths_use_kms_codes() {
    let server = Server::start(&[]);
    let kms = admin(&server).await;
    let arn = create_key(&kms).await;
    let other = create_key(&kms).await;
    let enc = kms
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .expect("Encrypt");
    let blob = enc.ciphertext_blob().unwrap().clone();
    assert_eq!(
        code(
            kms.decrypt()
                .key_id(&other)
                .ciphertext_blob(blob)
                .send()
                .await
        ),
        "IncorrectKeyException"
    );
    assert_eq!(
        code(kms.describe_key().key_id("alias/none").send().await),
        "NotFoundException"
    );
    assert_eq!(
        code(
            kms.create_alias()
                .alias_name("alias/aws/x")
                .target_key_id(&arn)
                .send()
                .await
        ),
        "NotAuthorizedException"
    );
    kms.create_alias()
        .alias_name("alias/dup")
        .target_key_id(&arn)
        .send()
        .await
        .expect("CreateAlias");
    assert_eq!(
        code(
            kms.create_alias()
                .alias_name("alias/dup")
                .target_key_id(&arn)
                .send()
                .await
        ),
        "AlreadyExistsException"
    );
    assert_eq!(
        code(kms.list_keys().marker("garbage").send().await),
        "InvalidMarkerException"
    );
    assert_eq!(
        code(kms.create_key().policy("{").send().await),
        "MalformedPolicyDocumentException"
    );
    assert_eq!(
        code(
            kms.encrypt()
                .key_id(&arn)
                .plaintext(Blob::new(vec![1u8; 4097]))
                .send()
                .await
        ),
        "ValidationException"
    );
    assert_eq!(
        code(kms.generate_data_key().key_id(&arn).send().await),
        "ValidationException"
    );
    let policies = kms
        .list_key_policies()
        .key_id(&arn)
        .send()
        .await
        .expect("ListKeyPolicies");
    assert_eq!(policies.policy_names(), ["default".to_string()]);
}

#[tokio::test]
async fn no_plaintext_or_data_key_reaches_the_database_files() {
    let server = Server::start(&[]);
    let kms = admin(&server).await;
    let arn = create_key(&kms).await;
    let marker = "tresor-kms-plaintext-marker-7f3a";
    kms.encrypt()
        .key_id(&arn)
        .plaintext(Blob::new(marker))
        .send()
        .await
        .expect("Encrypt");
    let dk = kms
        .generate_data_key()
        .key_id(&arn)
        .number_of_bytes(64)
        .send()
        .await
        .expect("GenerateDataKey");
    let data_key = dk.plaintext().unwrap().as_ref().to_vec();
    assert_not_on_disk(&server.data_dir, marker.as_bytes(), "the plaintext");
    assert_not_on_disk(&server.data_dir, &data_key, "the data key");
}
