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

/// Inputs beyond the IAM API's constraints (botocore's iam model: policyDocumentType 1–131,072
/// characters of `[\u0009\u000A\u000D\u0020-\u00FF]`, ActionNameType 3–128, ResourceNameType
/// 1–2,048, ContextKeyNameType 5–256, maxItemsType 1–1,000, markerType 1–320) and lists beyond
/// tresor's own bounds are refused before anything is evaluated.
#[tokio::test]
async fn oversize_simulations_are_refused_promptly() {
    let server = Server::start(&[]);
    let a = Admin::new(&server).await;
    let ok =
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
    let padded = |n: usize| format!("{ok}{}", " ".repeat(n - ok.len()));
    let custom = || {
        a.iam
            .simulate_custom_policy()
            .policy_input_list(ok)
            .action_names("kms:Encrypt")
    };
    let expect = |r: Result<_, aws_sdk_iam::error::SdkError<_>>, want: &str, fragment: &str| {
        let e: aws_sdk_iam::operation::simulate_custom_policy::SimulateCustomPolicyError = match r {
            Ok(_) => panic!("accepted; wanted {want}"),
            Err(e) => aws_sdk_iam::error::SdkError::into_service_error(e),
        };
        assert_eq!(code(&e), want, "{e:?}");
        let message = aws_sdk_iam::error::ProvideErrorMetadata::message(&e).unwrap_or_default();
        assert!(message.contains(fragment), "{message}");
        assert!(
            message.len() < 4096,
            "error message of {} bytes",
            message.len()
        );
    };
    let started = std::time::Instant::now();

    // The largest legal document is accepted; one character more is not.
    let out = a
        .iam
        .simulate_custom_policy()
        .policy_input_list(padded(131_072))
        .action_names("kms:Encrypt")
        .send()
        .await
        .expect("131,072 characters");
    assert_eq!(out.evaluation_results()[0].eval_decision(), &D::Allowed);
    let r = a
        .iam
        .simulate_custom_policy()
        .policy_input_list(padded(131_073))
        .action_names("kms:Encrypt")
        .send()
        .await;
    expect(
        r,
        "ValidationError",
        "'policyInputList.1.member' failed to satisfy constraint: Member must have length less than or equal to 131072",
    );
    let r = custom().resource_policy(padded(131_073)).send().await;
    expect(r, "ValidationError", "'resourcePolicy' failed to satisfy");
    let r = custom()
        .permissions_boundary_policy_input_list(padded(131_073))
        .send()
        .await;
    expect(
        r,
        "ValidationError",
        "'permissionsBoundaryPolicyInputList.1.member'",
    );
    let r = a
        .iam
        .simulate_custom_policy()
        .policy_input_list(ok.replace("*\"}", "\u{100}\"}"))
        .action_names("kms:Encrypt")
        .send()
        .await;
    expect(
        r,
        "ValidationError",
        "Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
    );
    let r = custom()
        .action_names(format!("kms:{}", "x".repeat(125)))
        .send()
        .await;
    expect(r, "ValidationError", "'actionNames.2.member'");
    let r = custom()
        .resource_arns(format!("arn:aws:s3:::{}", "b".repeat(2048)))
        .send()
        .await;
    expect(r, "ValidationError", "'resourceArns.1.member'");
    for bad in [0, 1001] {
        let r = custom().max_items(bad).send().await;
        expect(r, "ValidationError", "'maxItems'");
    }
    let r = custom()
        .context_entries(
            ContextEntry::builder()
                .context_key_name("a:b")
                .context_key_values("x")
                .context_key_type(ContextKeyTypeEnum::String)
                .build(),
        )
        .send()
        .await;
    expect(
        r,
        "ValidationError",
        "'contextEntries.1.member.contextKeyName'",
    );

    // Lists beyond tresor's bounds on one simulation.
    let many = |n: usize, f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>();
    let r = a
        .iam
        .simulate_custom_policy()
        .policy_input_list(ok)
        .set_action_names(Some(many(1001, &|i| format!("kms:Op{i}"))))
        .send()
        .await;
    expect(r, "InvalidInput", "ActionNames");
    let r = custom()
        .set_resource_arns(Some(many(1001, &|i| format!("arn:aws:s3:::b{i}"))))
        .send()
        .await;
    expect(r, "InvalidInput", "ResourceArns");
    let r = custom()
        .set_context_entries(Some(
            (0..1001)
                .map(|i| {
                    ContextEntry::builder()
                        .context_key_name(format!("aws:PrincipalTag/k{i}"))
                        .context_key_values("v")
                        .context_key_type(ContextKeyTypeEnum::String)
                        .build()
                })
                .collect(),
        ))
        .send()
        .await;
    expect(r, "InvalidInput", "ContextEntries");
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 30, "took {elapsed:?}");
}

/// A legal but expensive simulation — a ~130 KB wildcard-heavy policy, 100 actions × 100
/// resources, `MaxItems` 1000 — is answered page by page ("IAM might return fewer results,
/// even when there are more results available", IAM API Reference, SimulateCustomPolicy):
/// each page in bounded time and size, the pages continuing in order.
#[tokio::test]
async fn worst_case_simulation_is_answered_page_by_page() {
    let server = Server::start(&[]);
    let a = Admin::new(&server).await;
    let mut statements = vec![
        r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#.to_string(),
        r#"{"Effect":"Deny","Action":"kms:Op00*","Resource":"*"}"#.to_string(),
    ];
    let mut i = 0;
    loop {
        // Actions that match, resources that fail only after backtracking.
        let s = format!(
            r#"{{"Sid":"W{i}","Effect":"Allow","Action":["kms:*a*a*a*z{i}","kms:*O*p*"],"Resource":["arn:*:*:*:*:*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*z{i}","arn:aws:secretsmanager:*:*:secret:*b*b*b*b*b*b*b*b*b*b*b*b*b*b*b*b*b*y{i}"]}}"#
        );
        let len: usize = statements.iter().map(|s| s.len() + 1).sum();
        if len + s.len() > 130_000 {
            break;
        }
        statements.push(s);
        i += 1;
    }
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    );
    assert!(policy.len() > 125_000 && policy.len() <= 131_072);
    let actions: Vec<String> = (0..100).map(|i| format!("kms:Op{i:03}")).collect();
    let resources: Vec<String> = (0..100)
        .map(|i| {
            let account = &a.account;
            format!(
                "arn:aws:secretsmanager:us-east-1:{account}:secret:{}{i:03}",
                "a".repeat(30)
            )
        })
        .collect();
    let pages = simulate_pages(&a, &policy, &actions, &resources, Some(3)).await;
    assert!(pages.len() == 3, "{} pages", pages.len());
    let seen: Vec<&String> = pages.iter().flatten().collect();
    assert!(seen.len() < actions.len(), "one page of 100 costly actions");
    assert_eq!(seen, actions.iter().take(seen.len()).collect::<Vec<_>>());

    // A cheap simulation whose full answer is larger than one page: every action exactly
    // once across the pages.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"kms:Op00*","Resource":"*"}]}"#;
    let pages = simulate_pages(&a, policy, &actions, &resources, None).await;
    assert!(pages.len() > 1, "{} pages", pages.len());
    let seen: Vec<String> = pages.into_iter().flatten().collect();
    assert_eq!(seen, actions);
}

/// Follows `Marker` through at most `limit` pages; the actions of each page. Every page must
/// come back within bounded time and size.
async fn simulate_pages(
    a: &Admin<'_>,
    policy: &str,
    actions: &[String],
    resources: &[String],
    limit: Option<usize>,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let started = std::time::Instant::now();
        let out = a
            .iam
            .simulate_custom_policy()
            .policy_input_list(policy)
            .set_action_names(Some(actions.to_vec()))
            .set_resource_arns(Some(resources.to_vec()))
            .max_items(1000)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("SimulateCustomPolicy");
        let elapsed = started.elapsed();
        assert!(
            elapsed.as_secs() < 60,
            "page {} took {elapsed:?}",
            pages.len()
        );
        let results = out.evaluation_results();
        assert!(!results.is_empty());
        let entries: usize = results
            .iter()
            .map(|r| {
                r.resource_specific_results()
                    .iter()
                    .map(|s| 1 + s.matched_statements().len())
                    .sum::<usize>()
                    + r.matched_statements().len()
            })
            .sum();
        assert!(entries <= 40_000, "page {}: {entries} entries", pages.len());
        let mut names = Vec::new();
        for r in results {
            assert_eq!(r.resource_specific_results().len(), resources.len());
            let want = if r.eval_action_name().starts_with("kms:Op00") {
                D::ExplicitDeny
            } else {
                D::Allowed
            };
            assert_eq!(r.eval_decision(), &want, "{}", r.eval_action_name());
            names.push(r.eval_action_name().to_string());
        }
        pages.push(names);
        if !out.is_truncated() {
            assert!(out.marker().is_none());
            return pages;
        }
        marker = Some(out.marker().expect("marker").to_string());
        if limit.is_some_and(|l| pages.len() >= l) || pages.len() > 100 {
            return pages;
        }
    }
}
