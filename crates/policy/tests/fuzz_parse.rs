//! Fuzz-style robustness tests of the policy parser (and of evaluating what it accepts), on
//! stable Rust with proptest: arbitrary text, mangled and pathological policies — wildcard
//! storms, huge condition blocks, odd principals and variables — must never panic and must
//! parse and evaluate in bounded time.
//!
//! A normal `cargo test` runs 2,000 cases per property; `PROPTEST_CASES=200000 cargo test -p
//! tresor-policy --test fuzz_parse` is the long mode (see docs/robustness.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tresor_policy::{
    Context, Policy, PolicyKind, PolicySet, PolicySource, Principal, Request, ResourceKind,
    SourcePolicyType, evaluate,
};

/// Per-case wall-time bound: generous for a debug build on a loaded 2-core machine, far below
/// what an exponential wildcard match would take.
const CASE_BUDGET: Duration = Duration::from_secs(5);

const KINDS: [PolicyKind; 6] = [
    PolicyKind::Identity,
    PolicyKind::Resource,
    PolicyKind::Trust,
    PolicyKind::KeyPolicy,
    PolicyKind::Session,
    PolicyKind::Boundary,
];

/// Any Unicode text up to `max` characters (cheaper to generate than a `\\PC*` regex).
fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000),
        max_shrink_iters: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A long action and resource that a wildcard storm like `a*a*a*…b` would match badly with a
/// backtracking matcher.
fn long_subject() -> String {
    "a".repeat(2_000)
}

/// Parses `text` as every kind and evaluates whatever parses against a few requests.
fn exercise(text: &str) {
    let started = Instant::now();
    let _ = tresor_policy::statement_positions(text);
    let principal =
        Principal::user("111122223333", "alice", "AIDAALICEEXAMPLE12345").with_tag("team", "red");
    let context = Context::new()
        .with_bool("aws:SecureTransport", true)
        .with("aws:SourceIp", "10.1.2.3")
        .with("aws:username", "alice")
        .with_values("aws:TagKeys", ["a", "b"]);
    let long = long_subject();
    for kind in KINDS {
        match Policy::parse(text, kind) {
            Ok(policy) => {
                let _ = format!("{policy:?}");
                let resource_kind = match kind {
                    PolicyKind::KeyPolicy => ResourceKind::KmsKey,
                    PolicyKind::Resource => ResourceKind::Generic,
                    _ => ResourceKind::None,
                };
                let set = match kind {
                    PolicyKind::Resource | PolicyKind::KeyPolicy | PolicyKind::Trust => PolicySet {
                        identity: Vec::new(),
                        boundary: None,
                        session: Vec::new(),
                        resource: Some((
                            PolicySource {
                                id: "r",
                                source_type: SourcePolicyType::Resource,
                            },
                            &policy,
                        )),
                        resource_kind,
                    },
                    _ => PolicySet {
                        identity: vec![(
                            PolicySource {
                                id: "p",
                                source_type: SourcePolicyType::UserManaged,
                            },
                            &policy,
                        )],
                        boundary: None,
                        session: Vec::new(),
                        resource: None,
                        resource_kind,
                    },
                };
                for (action, resource) in [
                    (
                        "secretsmanager:GetSecretValue",
                        "arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf",
                    ),
                    ("kms:Decrypt", "*"),
                    (long.as_str(), long.as_str()),
                ] {
                    let _ = evaluate(
                        &Request {
                            principal: &principal,
                            action,
                            resource,
                            resource_account: Some("111122223333"),
                            context: &context,
                        },
                        &set,
                    );
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let took = started.elapsed();
    assert!(
        took < CASE_BUDGET,
        "parsing and evaluating a {}-byte policy took {took:?}",
        text.len()
    );
}

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "*",
            "?",
            "",
            "secretsmanager:*",
            "kms:Decrypt",
            "s*:G*t*V*e",
            "arn:aws:secretsmanager:*:*:secret:*",
            "arn:aws:kms:*:*:key/*",
            "arn:aws:*",
            "arn:::::",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:${aws:username}-*",
            "${aws:username}",
            "${",
            "${}",
            "${*}${?}${$}",
            "${aws:PrincipalTag/team, 'default'}",
            "home/${aws:username}/*",
        ])
        .prop_map(str::to_owned),
        // Wildcard storms: a*a*a*…b against a long run of `a`.
        (1usize..200).prop_map(|n| format!("{}b", "a*".repeat(n))),
        (1usize..200).prop_map(|n| format!("{}b", "*?".repeat(n))),
        "[a-z*?:/${}]{0,40}",
        "[ -~]{0,30}",
    ]
}

fn string_or_list(item: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        item.clone()
            .prop_map(|s| serde_json::to_string(&s).unwrap()),
        prop::collection::vec(item, 0..6).prop_map(|v| serde_json::to_string(&v).unwrap()),
        Just("null".to_owned()),
        Just("42".to_owned()),
        Just("{}".to_owned()),
        Just("[[]]".to_owned()),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    let operator = prop_oneof![
        prop::sample::select(vec![
            "StringEquals",
            "StringLike",
            "StringNotLike",
            "StringEqualsIgnoreCase",
            "ForAllValues:StringLike",
            "ForAnyValue:StringEquals",
            "NumericLessThan",
            "DateGreaterThan",
            "Bool",
            "IpAddress",
            "NotIpAddress",
            "ArnLike",
            "ArnEquals",
            "BinaryEquals",
            "Null",
            "StringLikeIfExists",
            "ForAllValues:NumericEquals",
            "Bogus",
            "",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z:]{0,20}",
    ];
    let key = prop_oneof![
        prop::sample::select(vec![
            "aws:SourceIp",
            "aws:username",
            "aws:TagKeys",
            "aws:PrincipalTag/team",
            "aws:CurrentTime",
            "aws:SecureTransport",
            "kms:EncryptionContext:${aws:username}",
            "",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z:/]{0,20}",
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            "10.0.0.0/8",
            "::1/128",
            "300.0.0.0/99",
            "2026-01-01T00:00:00Z",
            "not-a-date",
            "1e999",
            "-0",
            "true",
            "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            "aGVsbG8=",
        ])
        .prop_map(str::to_owned),
        pattern(),
    ]
    .boxed();
    prop::collection::vec(
        (
            operator,
            prop::collection::vec((key, string_or_list(value)), 0..4),
        ),
        0..4,
    )
    .prop_map(|blocks| {
        let inner: Vec<String> = blocks
            .into_iter()
            .map(|(op, kvs)| {
                let body: Vec<String> = kvs
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!(
                    "{}:{{{}}}",
                    serde_json::to_string(&op).unwrap(),
                    body.join(",")
                )
            })
            .collect();
        format!("{{{}}}", inner.join(","))
    })
}

fn principal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#""*""#.to_owned()),
        Just(r#"{"AWS":"*"}"#.to_owned()),
        Just(r#"{"AWS":"111122223333"}"#.to_owned()),
        Just(r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#.to_owned()),
        Just(r#"{"AWS":["arn:aws:iam::111122223333:role/ci","AIDAALICEEXAMPLE12345"]}"#.to_owned()),
        Just(r#"{"Service":"ec2.amazonaws.com"}"#.to_owned()),
        Just(r#"{"Federated":"x"}"#.to_owned()),
        Just(r#"{"AWS":{"AWS":"*"}}"#.to_owned()),
        Just(r#"{"":""}"#.to_owned()),
        Just("[]".to_owned()),
        string_or_list(pattern().boxed()).prop_map(|v| format!(r#"{{"AWS":{v}}}"#)),
    ]
}

fn statement() -> impl Strategy<Value = String> {
    let effect = prop::sample::select(vec![
        "\"Allow\"",
        "\"Deny\"",
        "\"allow\"",
        "\"\"",
        "1",
        "null",
    ]);
    let action_key = prop::sample::select(vec!["Action", "NotAction"]);
    let resource_key = prop::sample::select(vec!["Resource", "NotResource"]);
    let principal_key = prop::sample::select(vec!["Principal", "NotPrincipal"]);
    (
        prop::option::weighted(0.95, effect),
        prop::option::weighted(0.9, (action_key, string_or_list(pattern().boxed()))),
        prop::option::weighted(0.9, (resource_key, string_or_list(pattern().boxed()))),
        prop::option::weighted(0.4, (principal_key, principal())),
        prop::option::weighted(0.4, condition()),
        prop::option::weighted(0.2, "[ -~]{0,12}"),
    )
        .prop_map(|(effect, action, resource, principal, condition, sid)| {
            let mut parts = Vec::new();
            if let Some(sid) = sid {
                parts.push(format!(r#""Sid":{}"#, serde_json::to_string(&sid).unwrap()));
            }
            if let Some(e) = effect {
                parts.push(format!(r#""Effect":{e}"#));
            }
            if let Some((k, v)) = action {
                parts.push(format!(r#""{k}":{v}"#));
            }
            if let Some((k, v)) = resource {
                parts.push(format!(r#""{k}":{v}"#));
            }
            if let Some((k, v)) = principal {
                parts.push(format!(r#""{k}":{v}"#));
            }
            if let Some(c) = condition {
                parts.push(format!(r#""Condition":{c}"#));
            }
            format!("{{{}}}", parts.join(","))
        })
}

fn document() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            r#""Version":"2012-10-17","#,
            r#""Version":"2008-10-17","#,
            r#""Version":"2099-01-01","#,
            "",
        ]),
        prop::collection::vec(statement(), 0..5),
        any::<bool>(),
    )
        .prop_map(|(version, statements, as_list)| {
            let body = if as_list || statements.len() != 1 {
                format!("[{}]", statements.join(","))
            } else {
                statements[0].clone()
            };
            format!(r#"{{{version}"Statement":{body}}}"#)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in any_text(300)) {
        exercise(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn structured_policies_never_panic(doc in document()) {
        exercise(&doc);
    }

    #[test]
    fn mangled_policies_never_panic(
        doc in document(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0x20u8..0x7f, 0u8..3), 1..4),
    ) {
        let mut bytes = doc.into_bytes();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes.truncate(i),
                1 => bytes.insert(i, byte),
                _ => bytes[i] = byte,
            }
        }
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

/// Extremes the generators reach only rarely, each at most about the server's 1 MiB body limit.
#[test]
fn pathological_policies_are_bounded() {
    let storm = format!("{}b", "a*".repeat(3_000));
    let huge_condition = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{{"StringLike":{{{}}}}}}}}}"#,
        (0..150)
            .map(|i| format!(r#""aws:PrincipalTag/k{i}":["{storm}","a*"]"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let many_statements = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        (0..150)
            .map(|i| format!(
                r#"{{"Sid":"s{i}","Effect":"Allow","Action":"{storm}","Resource":"*"}}"#
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let many_values = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":[{}],"Resource":"*"}}}}"#,
        (0..50_000)
            .map(|i| format!(r#""svc:A{i}*?*""#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_condition = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}1{}}}}}"#,
        "{\"StringLike\":".repeat(5_000),
        "}".repeat(5_000)
    );
    let variables = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"*","Resource":"{}"}}}}"#,
        "${aws:username}*".repeat(5_000)
    );
    for doc in [
        huge_condition,
        many_statements,
        many_values,
        deep,
        deep_condition,
        variables,
    ] {
        exercise(&doc);
    }
}
