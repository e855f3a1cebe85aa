//! Property tests of the evaluation engine: adding a Deny never grants, statement order never
//! matters, and canonical serialization round-trips to a policy with the same decisions.

use proptest::prelude::*;
use tresor_policy::{
    Context, Decision, Policy, PolicyKind, PolicySet, PolicySource, Principal, Reason, Request,
    ResourceKind, SourcePolicyType, evaluate,
};

const ACTION_PATTERNS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:Get*",
    "secretsmanager:*",
    "kms:Decrypt",
    "kms:*",
    "*",
    "secretsmanager:?etSecretValue",
];
const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/agent-token-AbCdEf",
    "arn:aws:secretsmanager:*:*:secret:ci/*",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/agent-token-??????",
    "arn:aws:kms:*:*:key/*",
    "arn:aws:secretsmanager:*:*:secret:home/${aws:username}/*",
];
const PRINCIPALS: &[&str] = &[
    r#""*""#,
    r#"{"AWS":"*"}"#,
    r#"{"AWS":"111122223333"}"#,
    r#"{"AWS":"arn:aws:iam::444455556666:root"}"#,
    r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#,
    r#"{"AWS":["arn:aws:iam::111122223333:role/ci","AIDAALICEEXAMPLE12345"]}"#,
    r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/ci/i-1"}"#,
];
const CONDITIONS: &[&str] = &[
    r#""Condition":{"Bool":{"aws:SecureTransport":"true"}}"#,
    r#""Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    r#""Condition":{"StringNotEqualsIfExists":{"aws:PrincipalTag/team":"red"}}"#,
    r#""Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
    r#""Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":"a*"}}"#,
    r#""Condition":{"Null":{"aws:username":"false"}}"#,
];

const ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "kms:Decrypt",
    "iam:GetUser",
];
const RESOURCES: &[&str] = &[
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/agent-token-AbCdEf",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:home/alice/x-AbCdEf",
    "arn:aws:kms:eu-west-1:111122223333:key/k1",
    "*",
];

fn principals() -> Vec<Principal> {
    vec![
        Principal::user("111122223333", "alice", "AIDAALICEEXAMPLE12345").with_tag("team", "red"),
        Principal::assumed_role("111122223333", "ci", "AROACIEXAMPLE12345678", "i-1"),
        Principal::user("444455556666", "bob", "AIDABOBEXAMPLE1234567"),
        Principal::root("111122223333"),
    ]
}

fn contexts() -> Vec<Context> {
    vec![
        Context::new(),
        Context::new()
            .with_bool("aws:SecureTransport", true)
            .with("aws:SourceIp", "10.1.2.3")
            .with_values("aws:TagKeys", ["a"]),
        Context::new()
            .with_bool("aws:SecureTransport", false)
            .with("aws:SourceIp", "192.0.2.1")
            .with_values("aws:TagKeys", ["a", "c"]),
    ]
}

/// (effect is Allow, action, negate action, resource, negate resource, condition, principal)
type StatementSpec = (bool, usize, bool, usize, bool, Option<usize>, usize);

fn statement_spec() -> impl Strategy<Value = StatementSpec> {
    (
        any::<bool>(),
        0..ACTION_PATTERNS.len(),
        prop::bool::weighted(0.15),
        0..RESOURCE_PATTERNS.len(),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.4, 0..CONDITIONS.len()),
        0..PRINCIPALS.len(),
    )
}

fn statement_json(spec: &StatementSpec, with_principal: bool) -> String {
    let (allow, a, not_a, r, not_r, c, p) = *spec;
    let mut parts = vec![
        format!(r#""Effect":"{}""#, if allow { "Allow" } else { "Deny" }),
        format!(
            r#""{}":"{}""#,
            if not_a { "NotAction" } else { "Action" },
            ACTION_PATTERNS[a]
        ),
        format!(
            r#""{}":"{}""#,
            if not_r { "NotResource" } else { "Resource" },
            RESOURCE_PATTERNS[r]
        ),
    ];
    if with_principal {
        parts.push(format!(r#""Principal":{}"#, PRINCIPALS[p]));
    }
    if let Some(c) = c {
        parts.push(CONDITIONS[c].to_owned());
    }
    format!("{{{}}}", parts.join(","))
}

fn policy_json(statements: &[StatementSpec], with_principal: bool) -> String {
    let body: Vec<String> = statements
        .iter()
        .map(|s| statement_json(s, with_principal))
        .collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        body.join(",")
    )
}

fn parse(doc: &str, kind: PolicyKind) -> Policy {
    match Policy::parse(doc, kind) {
        Ok(p) => p,
        Err(e) => panic!("{e}: {doc}"),
    }
}

/// A comparable summary of a decision: the Allowed payload (which statement) is dropped.
fn outcome(d: &Decision) -> (bool, Option<Reason>) {
    (
        d.allowed,
        match d.reason {
            Reason::Allowed(_) => None,
            ref other => Some(other.clone()),
        },
    )
}

/// Every decision over a fixed grid of requests.
fn decisions(identity: &Policy, resource: Option<&Policy>, kind: ResourceKind) -> Vec<Decision> {
    let mut out = Vec::new();
    for principal in &principals() {
        for context in &contexts() {
            for action in ACTIONS {
                for resource_arn in RESOURCES {
                    let set = PolicySet {
                        identity: vec![(
                            PolicySource {
                                id: "p",
                                source_type: SourcePolicyType::UserManaged,
                            },
                            identity,
                        )],
                        boundary: None,
                        session: Vec::new(),
                        resource: resource.map(|p| {
                            (
                                PolicySource {
                                    id: "r",
                                    source_type: SourcePolicyType::Resource,
                                },
                                p,
                            )
                        }),
                        resource_kind: kind,
                    };
                    out.push(evaluate(
                        &Request {
                            principal,
                            action,
                            resource: resource_arn,
                            resource_account: Some("111122223333"),
                            context,
                        },
                        &set,
                    ));
                }
            }
        }
    }
    out
}

fn kind_of(i: usize) -> ResourceKind {
    [
        ResourceKind::Generic,
        ResourceKind::KmsKey,
        ResourceKind::None,
    ][i % 3]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn adding_a_deny_never_turns_a_deny_into_an_allow(
        identity in prop::collection::vec(statement_spec(), 1..5),
        resource in prop::collection::vec(statement_spec(), 1..4),
        extra in statement_spec(),
        into_resource in any::<bool>(),
        kind in 0usize..3,
    ) {
        let mut deny = extra;
        deny.0 = false;
        let kind = kind_of(kind);
        let base_identity = parse(&policy_json(&identity, false), PolicyKind::Identity);
        let base_resource = parse(&policy_json(&resource, true), PolicyKind::Resource);
        let (more_identity, more_resource) = if into_resource {
            let mut r = resource.clone();
            r.push(deny);
            (base_identity.clone(), parse(&policy_json(&r, true), PolicyKind::Resource))
        } else {
            let mut i = identity.clone();
            i.push(deny);
            (parse(&policy_json(&i, false), PolicyKind::Identity), base_resource.clone())
        };
        let before = decisions(&base_identity, Some(&base_resource), kind);
        let after = decisions(&more_identity, Some(&more_resource), kind);
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(!a.allowed || b.allowed, "deny granted access: {:?} -> {:?}", b.reason, a.reason);
        }
    }

    #[test]
    fn statement_order_never_changes_the_result(
        (identity, shuffled_identity) in prop::collection::vec(statement_spec(), 1..6)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        (resource, shuffled_resource) in prop::collection::vec(statement_spec(), 1..5)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        kind in 0usize..3,
    ) {
        let kind = kind_of(kind);
        let a = decisions(
            &parse(&policy_json(&identity, false), PolicyKind::Identity),
            Some(&parse(&policy_json(&resource, true), PolicyKind::Resource)),
            kind,
        );
        let b = decisions(
            &parse(&policy_json(&shuffled_identity, false), PolicyKind::Identity),
            Some(&parse(&policy_json(&shuffled_resource, true), PolicyKind::Resource)),
            kind,
        );
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(outcome(x), outcome(y));
            prop_assert_eq!(x.matched.len(), y.matched.len());
        }
    }

    #[test]
    fn canonical_json_round_trips_to_the_same_decisions(
        identity in prop::collection::vec(statement_spec(), 1..6),
        resource in prop::collection::vec(statement_spec(), 1..5),
        kind in 0usize..3,
    ) {
        let kind = kind_of(kind);
        let i1 = parse(&policy_json(&identity, false), PolicyKind::Identity);
        let r1 = parse(&policy_json(&resource, true), PolicyKind::Resource);
        let i2 = parse(&i1.to_json(), PolicyKind::Identity);
        let r2 = parse(&r1.to_json(), PolicyKind::Resource);
        prop_assert_eq!(i2.to_json(), i1.to_json());
        prop_assert_eq!(r2.to_json(), r1.to_json());
        let a = decisions(&i1, Some(&r1), kind);
        let b = decisions(&i2, Some(&r2), kind);
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(x, y);
        }
    }
}
