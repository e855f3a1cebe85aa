//! IAM and STS through the real `aws-sdk-iam` / `aws-sdk-sts` clients against a spawned
//! `tresor serve`: a role trusted by the administrator is assumed, its temporary credentials
//! work until the role is deleted, and entity lifecycles answer AWS's error codes.

mod common;

use aws_sdk_iam::error::ProvideErrorMetadata;
use common::{Admin, Server, code, trust_for};

const READ_ROLE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetRole","Resource":"*"}]}"#;

#[tokio::test]
async fn assumed_role_credentials_work_until_the_role_is_deleted() {
    let server = Server::start(&[]);
    let Admin {
        iam,
        sts,
        arn: admin_arn,
        account,
        ..
    } = Admin::new(&server).await;

    let role = iam
        .create_role()
        .role_name("ci-agent")
        .assume_role_policy_document(trust_for(&admin_arn))
        .send()
        .await
        .expect("CreateRole");
    let role = role.role().expect("Role");
    assert!(role.role_id().starts_with("AROA") && role.role_id().len() == 21);
    // aws-sdk-rust hands back the document as IAM sends it: percent-encoded.
    let doc = role.assume_role_policy_document().expect("document");
    assert!(
        doc.starts_with("%7B%22Version%22%3A%222012-10-17%22"),
        "{doc}"
    );
    iam.put_role_policy()
        .role_name("ci-agent")
        .policy_name("read")
        .policy_document(READ_ROLE)
        .send()
        .await
        .expect("PutRolePolicy");

    let out = sts
        .assume_role()
        .role_arn(role.arn())
        .role_session_name("build-7")
        .send()
        .await
        .expect("AssumeRole");
    let creds = out.credentials().expect("Credentials");
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert_eq!(
        out.assumed_role_user().map(|u| u.arn()),
        Some(format!("arn:aws:sts::{account}:assumed-role/ci-agent/build-7").as_str())
    );

    let temp = server.session_config(creds).await;
    let who = aws_sdk_sts::Client::new(&temp)
        .get_caller_identity()
        .send()
        .await
        .expect("as role");
    assert_eq!(
        who.arn(),
        Some(format!("arn:aws:sts::{account}:assumed-role/ci-agent/build-7").as_str())
    );
    assert_eq!(
        who.user_id(),
        Some(format!("{}:build-7", role.role_id()).as_str())
    );
    let temp_iam = aws_sdk_iam::Client::new(&temp);
    temp_iam
        .get_role()
        .role_name("ci-agent")
        .send()
        .await
        .expect("GetRole as the role");

    let err = iam
        .delete_role()
        .role_name("ci-agent")
        .send()
        .await
        .expect_err("policies first");
    assert_eq!(code(&err), "DeleteConflict");
    iam.delete_role_policy()
        .role_name("ci-agent")
        .policy_name("read")
        .send()
        .await
        .expect("DeleteRolePolicy");
    iam.delete_role()
        .role_name("ci-agent")
        .send()
        .await
        .expect("DeleteRole");

    let err = aws_sdk_sts::Client::new(&temp)
        .get_caller_identity()
        .send()
        .await
        .expect_err("role is gone");
    assert_eq!(code(&err), "InvalidClientTokenId");
}

#[tokio::test]
async fn iam_errors_have_aws_codes_and_messages() {
    let server = Server::start(&[]);
    let Admin {
        iam,
        arn: admin_arn,
        ..
    } = Admin::new(&server).await;

    let err = iam
        .get_role()
        .role_name("missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(code(&err), "NoSuchEntity");
    assert_eq!(
        err.message(),
        Some("The role with name missing cannot be found.")
    );
    let err = iam
        .get_user()
        .user_name("ghost")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(
        err.message(),
        Some("The user with name ghost cannot be found.")
    );

    iam.create_role()
        .role_name("Dup")
        .assume_role_policy_document(trust_for(&admin_arn))
        .send()
        .await
        .expect("role");
    let err = iam
        .create_role()
        .role_name("dup")
        .assume_role_policy_document(trust_for(&admin_arn))
        .send()
        .await
        .expect_err("case-insensitive duplicate");
    assert_eq!(code(&err), "EntityAlreadyExists");

    let err = iam
        .put_role_policy()
        .role_name("Dup")
        .policy_name("p")
        .policy_document("{\"Statement\":[]")
        .send()
        .await
        .expect_err("malformed");
    assert_eq!(code(&err), "MalformedPolicyDocument");

    let err = iam
        .create_role()
        .role_name("bad name")
        .assume_role_policy_document(trust_for(&admin_arn))
        .send()
        .await
        .expect_err("pattern");
    assert_eq!(code(&err), "ValidationError");

    iam.create_user()
        .user_name("keys")
        .send()
        .await
        .expect("CreateUser");
    let first = iam
        .create_access_key()
        .user_name("keys")
        .send()
        .await
        .expect("key 1");
    let first = first.access_key().expect("AccessKey");
    iam.create_access_key()
        .user_name("keys")
        .send()
        .await
        .expect("key 2");
    let err = iam
        .create_access_key()
        .user_name("keys")
        .send()
        .await
        .expect_err("third key");
    assert_eq!(code(&err), "LimitExceeded");
    let err = iam
        .delete_user()
        .user_name("keys")
        .send()
        .await
        .expect_err("keys first");
    assert_eq!(code(&err), "DeleteConflict");

    // An inactive key stops authenticating.
    let user_cfg = server
        .config(first.access_key_id(), first.secret_access_key(), None)
        .await;
    let user_sts = aws_sdk_sts::Client::new(&user_cfg);
    user_sts
        .get_caller_identity()
        .send()
        .await
        .expect("active key works");
    iam.update_access_key()
        .user_name("keys")
        .access_key_id(first.access_key_id())
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .expect("deactivate");
    let err = user_sts
        .get_caller_identity()
        .send()
        .await
        .expect_err("inactive");
    assert_eq!(code(&err), "InvalidClientTokenId");

    // Pagination through the SDK paginator: markers never repeat.
    for i in 0..5 {
        iam.create_user()
            .user_name(format!("page-{i}"))
            .path("/paged/")
            .send()
            .await
            .expect("user");
    }
    let pages: Vec<_> = iam
        .list_users()
        .path_prefix("/paged/")
        .max_items(2)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("paginate");
    let names: Vec<String> = pages
        .iter()
        .flat_map(|p| p.users().iter().map(|u| u.user_name().to_string()))
        .collect();
    assert_eq!(names, ["page-0", "page-1", "page-2", "page-3", "page-4"]);
    assert_eq!(pages.len(), 3);
}

#[tokio::test]
async fn assume_role_refuses_too_long_sessions_and_unknown_roles() {
    let server = Server::start(&[]);
    let admin = Admin::new(&server).await;
    let (sts, admin_arn, account) = (&admin.sts, &admin.arn, &admin.account);
    let arn = admin.create_role("short").await.arn().to_string();
    let err = sts
        .assume_role()
        .role_arn(&arn)
        .role_session_name("long")
        .duration_seconds(7200)
        .send()
        .await
        .expect_err("exceeds MaxSessionDuration");
    assert_eq!(code(&err), "ValidationError");
    assert_eq!(
        err.message(),
        Some("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
    );

    let missing = format!("arn:aws:iam::{account}:role/nope");
    let err = sts
        .assume_role()
        .role_arn(&missing)
        .role_session_name("x1")
        .send()
        .await
        .expect_err("unknown role");
    assert_eq!(code(&err), "AccessDenied");
    assert_eq!(
        err.message(),
        Some(format!("User: {admin_arn} is not authorized to perform: sts:AssumeRole on resource: {missing}").as_str())
    );
}

/// Root's own access keys: without `UserName`, CreateAccessKey, ListAccessKeys,
/// UpdateAccessKey and DeleteAccessKey act on the keys of the identity signing the request,
/// which for the account root are root's keys (IAM API reference, CreateAccessKey).
#[tokio::test]
async fn root_manages_its_own_access_keys_without_a_user_name() {
    let server = Server::start(&["--dev"]);
    let root = server.config("test", "test", None).await;
    let iam = aws_sdk_iam::Client::new(&root);
    let created = iam
        .create_access_key()
        .send()
        .await
        .expect("root CreateAccessKey");
    let key = created.access_key().expect("AccessKey");
    let id = key.access_key_id().to_string();
    assert!(id.starts_with("AKIA"), "{id}");
    // The new key signs as root.
    let as_new = server.config(&id, key.secret_access_key(), None).await;
    let who = aws_sdk_sts::Client::new(&as_new)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity with root's new key");
    assert_eq!(who.arn(), Some("arn:aws:iam::000000000000:root"));

    let listed = iam.list_access_keys().send().await.expect("ListAccessKeys");
    let ids: Vec<&str> = listed
        .access_key_metadata()
        .iter()
        .filter_map(|m| m.access_key_id())
        .collect();
    assert!(ids.contains(&id.as_str()), "{ids:?}");
    assert!(ids.contains(&"test"), "{ids:?}");
    // Two keys is root's quota, as every user's.
    let err = iam
        .create_access_key()
        .send()
        .await
        .expect_err("a third key");
    assert_eq!(code(&err), "LimitExceeded");

    iam.update_access_key()
        .access_key_id(&id)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .expect("UpdateAccessKey");
    let status = iam
        .list_access_keys()
        .send()
        .await
        .expect("ListAccessKeys")
        .access_key_metadata()
        .iter()
        .find(|m| m.access_key_id() == Some(id.as_str()))
        .and_then(|m| m.status().cloned());
    assert_eq!(status, Some(aws_sdk_iam::types::StatusType::Inactive));
    iam.delete_access_key()
        .access_key_id(&id)
        .send()
        .await
        .expect("DeleteAccessKey");
    let after = iam.list_access_keys().send().await.expect("ListAccessKeys");
    assert!(
        after
            .access_key_metadata()
            .iter()
            .all(|m| m.access_key_id() != Some(id.as_str()))
    );
    // A user's key is not root's: without UserName root does not see or delete it.
    iam.create_user()
        .user_name("u1")
        .send()
        .await
        .expect("CreateUser");
    let user_key = iam
        .create_access_key()
        .user_name("u1")
        .send()
        .await
        .expect("CreateAccessKey u1");
    let id = user_key
        .access_key()
        .map(|k| k.access_key_id().to_string())
        .unwrap_or_default();
    let err = iam
        .delete_access_key()
        .access_key_id(&id)
        .send()
        .await
        .expect_err("not root's key");
    assert_eq!(code(&err), "NoSuchEntity");
}

/// Credentials from GetSessionToken without MFA cannot call IAM (IAM User Guide, "Comparing
/// the AWS STS API operations"); AWS answers `InvalidClientTokenId` (observed behavior).
/// Other operations, STS's GetCallerIdentity among them, still work with them.
#[tokio::test]
async fn get_session_token_credentials_cannot_call_iam_without_mfa() {
    let server = Server::start(&[]);
    let admin = server.admin_config().await;
    let out = aws_sdk_sts::Client::new(&admin)
        .get_session_token()
        .send()
        .await
        .expect("GetSessionToken");
    let creds = out.credentials().expect("Credentials");
    let session = server.session_config(creds).await;
    let err = aws_sdk_iam::Client::new(&session)
        .list_users()
        .send()
        .await
        .expect_err("IAM with GetSessionToken credentials");
    assert_eq!(code(&err), "InvalidClientTokenId");
    assert_eq!(
        err.message(),
        Some("The security token included in the request is invalid")
    );
    let who = aws_sdk_sts::Client::new(&session)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity with session credentials");
    assert!(who.arn().is_some_and(|a| a.ends_with(":user/tresor-admin")));
    // Long-term credentials still call IAM.
    aws_sdk_iam::Client::new(&admin)
        .list_users()
        .send()
        .await
        .expect("ListUsers with long-term credentials");
}
