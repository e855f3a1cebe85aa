//! The IAM policy simulator through the real `aws-sdk-iam` client against a spawned
//! `tresor serve`: decisions and matched statements, context entries, errors, and agreement
//! between SimulatePrincipalPolicy and what a session of the role is actually allowed to do.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a panic is a failed test

mod common;

use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType as D};
use common::{Admin, Server, code};

async fn simulate_role(a: &Admin<'_>, role_arn: &str, secret: &str, policy: Option<&str>) -> D {
    let out = a
        .iam
        .simulate_principal_policy()
        .policy_source_arn(role_arn)
        .action_names("secretsmanager:GetSecretValue")
        .resource_arns(secret)
        .set_resource_policy(policy.map(str::to_string))
        .send()
        .await
        .expect("SimulatePrincipalPolicy");
    let results = out.evaluation_results();
    assert_eq!(results.len(), 1);
    let specific = results[0].resource_specific_results();
    assert_eq!(specific.len(), 1);
    assert_eq!(specific[0].eval_resource_name(), secret);
    assert_eq!(
        specific[0].eval_resource_decision(),
        results[0].eval_decision()
    );
    results[0].eval_decision().clone()
}

#[tokio::test]
async fn simulated_decisions_agree_with_a_real_role_session() {
    let server = Server::start(&[]);
    let a = Admin::new(&server).await;
    let sm = aws_sdk_secretsmanager::Client::new(&a.config);
    let role_arn = a.create_role("agree").await.arn().to_string();
    let mut arns = Vec::new();
    for name in ["granted", "other", "denied", "shared"] {
        let arn = sm
            .create_secret()
            .name(format!("agree/{name}"))
            .secret_string(format!("v-{name}"))
            .send()
            .await
            .expect("CreateSecret")
            .arn()
            .expect("ARN")
            .to_string();
        arns.push(arn);
    }
    let (granted, other, denied, shared) = (&arns[0], &arns[1], &arns[2], &arns[3]);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":["{granted}","{denied}"]}},{{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"{denied}"}}]}}"#
    );
    a.iam
        .put_role_policy()
        .role_name("agree")
        .policy_name("reads")
        .policy_document(policy)
        .send()
        .await
        .expect("PutRolePolicy");
    let resource_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{role_arn}"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#
    );
    sm.put_resource_policy()
        .secret_id(shared)
        .resource_policy(&resource_policy)
        .send()
        .await
        .expect("PutResourcePolicy");

    let session = aws_sdk_secretsmanager::Client::new(&a.assume(&role_arn, "agreement").await);

    let cases = [
        (granted, None, D::Allowed),
        (other, None, D::ImplicitDeny),
        (denied, None, D::ExplicitDeny),
        (shared, Some(resource_policy.as_str()), D::Allowed),
    ];
    for (arn, resource_policy, want) in cases {
        let simulated = simulate_role(&a, &role_arn, arn, resource_policy).await;
        assert_eq!(simulated, want, "{arn}");
        let actual = session.get_secret_value().secret_id(arn).send().await;
        match (&simulated, actual) {
            (D::Allowed, Ok(_)) => {}
            (D::Allowed, Err(e)) => panic!("simulated allowed but {arn} was refused: {e:?}"),
            (_, Ok(_)) => panic!("simulated {simulated:?} but {arn} was readable"),
            (_, Err(e)) => assert_eq!(code(&e.into_service_error()), "AccessDeniedException"),
        }
    }
}

#[tokio::test]
async fn custom_policies_statements_context_and_errors() {
    let server = Server::start(&[]);
    let a = Admin::new(&server).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Office","Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},{"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*"}]}"#;
    let ip = |v: &str| {
        ContextEntry::builder()
            .context_key_name("aws:SourceIp")
            .context_key_values(v)
            .context_key_type(ContextKeyTypeEnum::Ip)
            .build()
    };
    let run = |entries: Vec<ContextEntry>| {
        a.iam
            .simulate_custom_policy()
            .policy_input_list(policy)
            .action_names("secretsmanager:GetSecretValue")
            .action_names("secretsmanager:DeleteSecret")
            .set_context_entries(Some(entries))
            .send()
    };
    let out = run(vec![ip("10.9.8.7")])
        .await
        .expect("SimulateCustomPolicy");
    let results = out.evaluation_results();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].eval_decision(), &D::Allowed);
    let m = &results[0].matched_statements()[0];
    assert_eq!(m.source_policy_id(), Some("PolicyInputList.1"));
    assert_eq!(
        m.source_policy_type().map(|t| t.as_str()),
        Some("IAM Policy")
    );
    let start = m.start_position().expect("start");
    assert_eq!((start.line(), start.column()), (1, 38));
    assert_eq!(results[1].eval_decision(), &D::ExplicitDeny);
    let end = results[1].matched_statements()[0]
        .end_position()
        .expect("end");
    // The last statement's `}` precedes the closing `]}`.
    assert_eq!(end.column() as usize, policy.len() - 2);

    let out = run(vec![]).await.expect("SimulateCustomPolicy");
    let first = &out.evaluation_results()[0];
    assert_eq!(first.eval_decision(), &D::ImplicitDeny);
    assert_eq!(first.missing_context_values(), ["aws:SourceIp"]);
    let out = run(vec![ip("192.0.2.1")])
        .await
        .expect("SimulateCustomPolicy");
    assert_eq!(
        out.evaluation_results()[0].eval_decision(),
        &D::ImplicitDeny
    );

    let e = a
        .iam
        .simulate_principal_policy()
        .policy_source_arn(format!("arn:aws:iam::{}:user/nobody-here", a.account))
        .action_names("kms:Encrypt")
        .send()
        .await
        .expect_err("unknown source");
    assert_eq!(code(&e.into_service_error()), "NoSuchEntity");
    let e = a
        .iam
        .simulate_principal_policy()
        .policy_source_arn(format!("arn:aws:iam::{}:mystery/thing", a.account))
        .action_names("kms:Encrypt")
        .send()
        .await
        .expect_err("bad arn");
    assert_eq!(code(&e.into_service_error()), "InvalidInput");
    let e = a
        .iam
        .simulate_custom_policy()
        .policy_input_list(policy)
        .send()
        .await
        .expect_err("no actions");
    assert_eq!(code(&e.into_service_error()), "ValidationError");
    let e = a
        .iam
        .simulate_custom_policy()
        .policy_input_list(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow"}}"#)
        .action_names("kms:Encrypt")
        .send()
        .await
        .expect_err("malformed");
    assert_eq!(code(&e.into_service_error()), "MalformedPolicyDocument");
}
