//! Table-driven tests of the evaluation logic: one row per rule of AWS's documented evaluation
//! flow, each naming its source. Policies are written as JSON the way a user would write them.

use tresor_policy::{
    Context, Decision, Policy, PolicyKind, PolicySet, PolicySource, PolicyType, Principal, Reason,
    Request, ResourceKind, SourcePolicyType, evaluate,
};

const A: &str = "111122223333";
const B: &str = "444455556666";
const SECRET: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/agent-token-AbCdEf";
const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const ROLE: &str = "arn:aws:iam::111122223333:role/ci-instance";
const GET: &str = "secretsmanager:GetSecretValue";

fn alice() -> Principal {
    Principal::user(A, "alice", "AIDAALICEEXAMPLE12345")
}
fn session() -> Principal {
    Principal::assumed_role(A, "ci-instance", "AROACIEXAMPLE12345678", "i-0abc")
}
fn bob_b() -> Principal {
    Principal::user(B, "bob", "AIDABOBEXAMPLE1234567")
}
fn session_b() -> Principal {
    Principal::assumed_role(B, "remote", "AROAREMOTEEXAMPLE1234", "job")
}

fn identity(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}
fn allow(action: &str, resource: &str) -> String {
    format!(r#"{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}"#)
}
fn deny(action: &str, resource: &str) -> String {
    format!(r#"{{"Effect":"Deny","Action":"{action}","Resource":"{resource}"}}"#)
}
/// A resource-policy statement; `principal` is the JSON of the Principal element.
fn grant(effect: &str, principal: &str, action: &str) -> String {
    format!(r#"{{"Effect":"{effect}","Principal":{principal},"Action":"{action}","Resource":"*"}}"#)
}
fn aws(p: &str) -> String {
    format!(r#"{{"AWS":"{p}"}}"#)
}
fn trust(principal: &str) -> String {
    identity(&format!(
        r#"{{"Effect":"Allow","Principal":{principal},"Action":"sts:AssumeRole"}}"#
    ))
}

/// Expected outcome: allowed (by which kind of policy, `None` = root's implicit permission) or
/// denied with a reason.
#[derive(Debug)]
enum Want {
    Allow(Option<PolicyType>),
    Deny(Reason),
}

struct Case {
    name: &'static str,
    principal: Principal,
    action: &'static str,
    resource: &'static str,
    resource_account: Option<&'static str>,
    context: Context,
    identity: Vec<String>,
    boundary: Option<String>,
    session: Vec<String>,
    resource_policy: Option<(PolicyKind, String)>,
    kind: ResourceKind,
    want: Want,
}

impl Case {
    fn new(name: &'static str, principal: Principal, want: Want) -> Case {
        Case {
            name,
            principal,
            action: GET,
            resource: SECRET,
            resource_account: Some(A),
            context: Context::new(),
            identity: Vec::new(),
            boundary: None,
            session: Vec::new(),
            resource_policy: None,
            kind: ResourceKind::Generic,
            want,
        }
    }
    fn identity(mut self, doc: String) -> Case {
        self.identity.push(doc);
        self
    }
    fn boundary(mut self, doc: String) -> Case {
        self.boundary = Some(doc);
        self
    }
    fn session_policy(mut self, doc: String) -> Case {
        self.session.push(doc);
        self
    }
    fn secret_policy(mut self, doc: String) -> Case {
        self.resource_policy = Some((PolicyKind::Resource, doc));
        self
    }
    fn key_policy(mut self, doc: Option<String>) -> Case {
        self.kind = ResourceKind::KmsKey;
        self.resource = KEY;
        self.resource_policy = doc.map(|d| (PolicyKind::KeyPolicy, d));
        self
    }
    fn trust_policy(mut self, doc: String) -> Case {
        self.kind = ResourceKind::RoleTrust;
        self.action = "sts:AssumeRole";
        self.resource = ROLE;
        self.resource_policy = Some((PolicyKind::Trust, doc));
        self
    }
    fn on(mut self, action: &'static str, resource: &'static str) -> Case {
        self.action = action;
        self.resource = resource;
        self
    }
    fn owner(mut self, account: &'static str) -> Case {
        self.resource_account = Some(account);
        self
    }
    fn context(mut self, context: Context) -> Case {
        self.context = context;
        self
    }

    fn run(&self) -> Decision {
        let parse = |doc: &str, kind| {
            Policy::parse(doc, kind).unwrap_or_else(|e| panic!("{}: {e}: {doc}", self.name))
        };
        let identity: Vec<Policy> = self
            .identity
            .iter()
            .map(|d| parse(d, PolicyKind::Identity))
            .collect();
        let boundary = self
            .boundary
            .as_deref()
            .map(|d| parse(d, PolicyKind::Boundary));
        let session: Vec<Policy> = self
            .session
            .iter()
            .map(|d| parse(d, PolicyKind::Session))
            .collect();
        let resource = self
            .resource_policy
            .as_ref()
            .map(|(kind, d)| parse(d, *kind));
        let set = PolicySet {
            identity: identity
                .iter()
                .map(|p| {
                    (
                        PolicySource {
                            id: "inline",
                            source_type: SourcePolicyType::User,
                        },
                        p,
                    )
                })
                .collect(),
            boundary: boundary.as_ref(),
            session: session.iter().collect(),
            resource: resource.as_ref().map(|p| {
                (
                    PolicySource {
                        id: self.resource,
                        source_type: SourcePolicyType::Resource,
                    },
                    p,
                )
            }),
            resource_kind: self.kind,
        };
        evaluate(
            &Request {
                principal: &self.principal,
                action: self.action,
                resource: self.resource,
                resource_account: self.resource_account,
                context: &self.context,
            },
            &set,
        )
    }

    fn check(&self) {
        let decision = self.run();
        match (&self.want, &decision.reason) {
            (Want::Allow(by), Reason::Allowed(m)) => {
                assert!(decision.allowed, "{}", self.name);
                assert_eq!(
                    m.as_ref().map(|m| m.policy_type),
                    *by,
                    "{}: allowed by the wrong policy: {}",
                    self.name,
                    decision.explain()
                );
            }
            (Want::Deny(reason), got) => {
                assert!(!decision.allowed, "{}", self.name);
                assert_eq!(got, reason, "{}: {}", self.name, decision.explain());
            }
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", self.name),
        }
    }
}

use PolicyType::{
    Boundary as ByBoundary, Identity as ById, Resource as ByRes, Session as BySession,
};
use Want::{Allow, Deny};

fn run_all(cases: Vec<Case>) {
    for case in &cases {
        case.check();
    }
}

/// IAM User Guide, "How AWS enforcement code logic evaluates requests to allow or deny access"
/// and "Policy evaluation for requests within a single account".
#[test]
fn evaluation_flow_single_account() {
    run_all(vec![
        // "By default, all requests are implicitly denied"
        Case::new("implicit deny without policies", alice(), Deny(Reason::NoIdentityAllow)),
        // "Identity-based policies … if any statement allows, the enforcement code returns Allow"
        Case::new("identity allow", alice(), Allow(Some(ById))).identity(identity(&allow(GET, SECRET))),
        Case::new("action wildcard and secret suffix", alice(), Allow(Some(ById))).identity(identity(
            &allow("secretsmanager:Get*", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/agent-token-??????"),
        )),
        Case::new("other action is not allowed", alice(), Deny(Reason::NoIdentityAllow))
            .identity(identity(&allow("secretsmanager:DescribeSecret", SECRET))),
        // "An explicit deny in any of these policies overrides the allow"
        Case::new("identity deny beats identity allow", alice(), Deny(Reason::ExplicitDeny(ById)))
            .identity(identity(&allow("*", "*")))
            .identity(identity(&deny(GET, SECRET))),
        Case::new("resource deny beats identity allow", alice(), Deny(Reason::ExplicitDeny(ByRes)))
            .identity(identity(&allow("*", "*")))
            .secret_policy(identity(&grant("Deny", r#""*""#, GET))),
        Case::new("boundary deny", alice(), Deny(Reason::ExplicitDeny(ByBoundary)))
            .identity(identity(&allow("*", "*")))
            .boundary(identity(&format!("{},{}", allow("*", "*"), deny(GET, "*")))),
        Case::new("session policy deny", session(), Deny(Reason::ExplicitDeny(BySession)))
            .identity(identity(&allow("*", "*")))
            .session_policy(identity(&deny("secretsmanager:*", "*"))),
        Case::new("deny in resource policy beats direct resource allow", alice(), Deny(Reason::ExplicitDeny(ByRes)))
            .secret_policy(identity(&format!(
                "{},{}",
                grant("Allow", &aws("arn:aws:iam::111122223333:user/alice"), GET),
                grant("Deny", &aws(A), "secretsmanager:*")
            ))),
        // "Permissions boundaries … if the boundary does not allow, implicit deny"
        Case::new("boundary does not allow", alice(), Deny(Reason::NoBoundaryAllow))
            .identity(identity(&allow("*", "*")))
            .boundary(identity(&allow("kms:*", "*"))),
        Case::new("boundary and identity allow", alice(), Allow(Some(ById)))
            .identity(identity(&allow(GET, "*")))
            .boundary(identity(&allow("secretsmanager:*", "*"))),
        Case::new("boundary alone grants nothing", alice(), Deny(Reason::NoIdentityAllow))
            .boundary(identity(&allow("*", "*"))),
        // "Session policies … the session's permissions are the intersection"
        Case::new("session policy does not allow", session(), Deny(Reason::NoSessionAllow))
            .identity(identity(&allow("*", "*")))
            .session_policy(identity(&allow("kms:*", "*"))),
        Case::new("session policies are a union among themselves", session(), Allow(Some(ById)))
            .identity(identity(&allow("*", "*")))
            .session_policy(identity(&allow("kms:*", "*")))
            .session_policy(identity(&allow(GET, "*"))),
        Case::new("session policy alone grants nothing", session(), Deny(Reason::NoIdentityAllow))
            .session_policy(identity(&allow("*", "*"))),
        // "with the exception of the AWS account root user, which has full access"
        Case::new("root needs no policy", Principal::root(A), Allow(None)),
        Case::new("root is subject to resource deny", Principal::root(A), Deny(Reason::ExplicitDeny(ByRes)))
            .secret_policy(identity(&grant("Deny", &aws("*"), "*"))),
        // NotAction / NotResource ("IAM JSON policy elements: NotAction", "NotResource")
        Case::new("NotAction allow covers other actions", alice(), Allow(Some(ById)))
            .identity(identity(r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#)),
        Case::new("NotAction allow excludes listed", alice(), Deny(Reason::NoIdentityAllow))
            .identity(identity(r#"{"Effect":"Allow","NotAction":"secretsmanager:*","Resource":"*"}"#)),
        Case::new("NotResource deny hits other resources", alice(), Deny(Reason::ExplicitDeny(ById)))
            .identity(identity(&format!(
                r#"{},{{"Effect":"Deny","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:other-*"}}"#,
                allow("*", "*")
            ))),
        Case::new("request resource * only matches Resource *", alice(), Deny(Reason::NoIdentityAllow))
            .on("secretsmanager:ListSecrets", "*")
            .identity(identity(&allow("secretsmanager:*", "arn:aws:secretsmanager:*:*:secret:*"))),
        Case::new("action names are case-insensitive", alice(), Allow(Some(ById)))
            .identity(identity(&allow("SecretsManager:getsecretvalue", SECRET))),
        Case::new("resource ARNs are case-sensitive", alice(), Deny(Reason::NoIdentityAllow))
            .identity(identity(&allow(GET, &SECRET.to_uppercase().replace("ARN:AWS:SECRETSMANAGER", "arn:aws:secretsmanager")))),
    ]);
}

/// IAM User Guide, "How AWS enforcement code logic evaluates requests to allow or deny
/// access", resource-based policies within the same account (users, role ARNs, role session
/// ARNs), and principal capture: a user or role ARN in a saved policy stands for that
/// principal's unique id (IAM User Guide, "AWS JSON policy elements: Principal",
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html>).
#[test]
fn same_account_resource_policies() {
    let by_user = grant("Allow", &aws("arn:aws:iam::111122223333:user/alice"), GET);
    let by_role = grant("Allow", &aws(ROLE), GET);
    run_all(vec![
        Case::new("user ARN alone suffices", alice(), Allow(Some(ByRes))).secret_policy(identity(&by_user)),
        Case::new("user ARN is not limited by a boundary", alice(), Allow(Some(ByRes)))
            .secret_policy(identity(&by_user))
            .boundary(identity(&allow("kms:*", "*"))),
        Case::new("captured user unique id", alice(), Allow(Some(ByRes)))
            .secret_policy(identity(&grant("Allow", &aws("AIDAALICEEXAMPLE12345"), GET))),
        Case::new("other user is not named", Principal::user(A, "carol", "AIDACAROLEXAMPLE1234"), Deny(Reason::NoIdentityAllow))
            .secret_policy(identity(&by_user)),
        Case::new("session ARN is not limited by session policy", session(), Allow(Some(ByRes)))
            .secret_policy(identity(&grant(
                "Allow",
                &aws("arn:aws:sts::111122223333:assumed-role/ci-instance/i-0abc"),
                GET,
            )))
            .session_policy(identity(&allow("kms:*", "*")))
            .boundary(identity(&allow("kms:*", "*"))),
        Case::new("other session of the role is not named", Principal::assumed_role(A, "ci-instance", "AROACIEXAMPLE12345678", "i-other"), Deny(Reason::NoIdentityAllow))
            .secret_policy(identity(&grant(
                "Allow",
                &aws("arn:aws:sts::111122223333:assumed-role/ci-instance/i-0abc"),
                GET,
            ))),
        Case::new("role ARN allows its sessions", session(), Allow(Some(ByRes))).secret_policy(identity(&by_role)),
        Case::new("role ARN with path", Principal::assumed_role(A, "app/ci-instance", "AROACIEXAMPLE12345678", "s"), Allow(Some(ByRes)))
            .secret_policy(identity(&grant("Allow", &aws("arn:aws:iam::111122223333:role/app/ci-instance"), GET))),
        Case::new("role ARN is limited by the boundary", session(), Deny(Reason::NoBoundaryAllow))
            .secret_policy(identity(&by_role))
            .boundary(identity(&allow("kms:*", "*"))),
        Case::new("role ARN is limited by a session policy", session(), Deny(Reason::NoSessionAllow))
            .secret_policy(identity(&by_role))
            .session_policy(identity(&allow("kms:*", "*"))),
        // A wildcard matches the session ARN itself: not limited by session policies (IAM User
        // Guide, "Session policies"), as with the AWS-managed keys' `{"AWS": "*"}` key policies.
        Case::new("wildcard principal is not limited by a session policy", session(), Allow(Some(ByRes)))
            .secret_policy(identity(&grant("Allow", &aws("*"), GET)))
            .session_policy(identity(&allow("kms:*", "*"))),
        Case::new("captured role unique id", session(), Allow(Some(ByRes)))
            .secret_policy(identity(&grant("Allow", &aws("AROACIEXAMPLE12345678"), GET))),
        Case::new(
            "recreated role is denied until the policy is saved again",
            Principal::assumed_role(A, "ci-instance", "AROANEWROLEID12345678", "i-0abc"),
            Deny(Reason::NoIdentityAllow),
        )
        .secret_policy(identity(&grant("Allow", &aws("AROACIEXAMPLE12345678"), GET))),
        Case::new("account principal only delegates", alice(), Deny(Reason::NoIdentityAllow))
            .secret_policy(identity(&grant("Allow", &aws("arn:aws:iam::111122223333:root"), GET))),
        Case::new("account id delegates to identity allow", alice(), Allow(Some(ById)))
            .secret_policy(identity(&grant("Allow", &aws(A), GET)))
            .identity(identity(&allow(GET, "*"))),
        Case::new("Principal * allows a user", alice(), Allow(Some(ByRes)))
            .secret_policy(identity(&grant("Allow", r#""*""#, GET))),
        // The wildcard matches the session ARN: like a grant to the session ARN, not limited by
        // an implicit deny in the role's permissions boundary.
        Case::new("AWS * names the session itself", session(), Allow(Some(ByRes)))
            .secret_policy(identity(&grant("Allow", &aws("*"), GET)))
            .boundary(identity(&allow("kms:*", "*"))),
        Case::new("resource allow with unmet condition", alice(), Deny(Reason::NoIdentityAllow)).secret_policy(identity(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"secretsmanager:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#,
        )),
        Case::new("identity allow with resource policy not naming caller", alice(), Allow(Some(ById)))
            .secret_policy(identity(&by_role))
            .identity(identity(&allow(GET, SECRET))),
        // "AWS JSON policy elements: NotPrincipal" (with Deny)
        Case::new("NotPrincipal deny applies to others", alice(), Deny(Reason::ExplicitDeny(ByRes)))
            .identity(identity(&allow("*", "*")))
            .secret_policy(identity(&format!(
                r#"{{"Effect":"Deny","NotPrincipal":{{"AWS":["arn:aws:iam::111122223333:user/admin","{A}"]}},"Action":"*","Resource":"*"}}"#
            ))),
        Case::new("NotPrincipal deny spares a fully listed caller", alice(), Allow(Some(ById)))
            .identity(identity(&allow("*", "*")))
            .secret_policy(identity(&format!(
                r#"{{"Effect":"Deny","NotPrincipal":{{"AWS":["arn:aws:iam::111122223333:user/alice","{A}"]}},"Action":"*","Resource":"*"}}"#
            ))),
        Case::new("service principal named in resource policy", Principal::service("secretsmanager.amazonaws.com"), Allow(Some(ByRes)))
            .secret_policy(identity(&grant("Allow", r#"{"Service":"secretsmanager.amazonaws.com"}"#, GET))),
        Case::new("service principal not named", Principal::service("lambda.amazonaws.com"), Deny(Reason::NoResourceAllow))
            .secret_policy(identity(&grant("Allow", &aws("*"), GET))),
    ]);
}

/// IAM User Guide, "Cross-account policy evaluation logic": both the resource policy and the
/// caller's identity policies must allow.
#[test]
fn cross_account() {
    let to_bob = grant("Allow", &aws("arn:aws:iam::444455556666:user/bob"), GET);
    run_all(vec![
        Case::new(
            "resource policy alone is not enough",
            bob_b(),
            Deny(Reason::NoIdentityAllow),
        )
        .secret_policy(identity(&to_bob)),
        Case::new("both sides allow", bob_b(), Allow(Some(ByRes)))
            .secret_policy(identity(&to_bob))
            .identity(identity(&allow(GET, SECRET))),
        Case::new(
            "identity alone is not enough",
            bob_b(),
            Deny(Reason::NoResourceAllow),
        )
        .identity(identity(&allow("*", "*"))),
        Case::new(
            "identity alone with a resource policy naming others",
            bob_b(),
            Deny(Reason::NoResourceAllow),
        )
        .identity(identity(&allow("*", "*")))
        .secret_policy(identity(&grant("Allow", &aws(A), GET))),
        Case::new(
            "account principal of the other account",
            bob_b(),
            Allow(Some(ByRes)),
        )
        .secret_policy(identity(&grant(
            "Allow",
            &aws("arn:aws:iam::444455556666:root"),
            GET,
        )))
        .identity(identity(&allow(GET, "*"))),
        Case::new(
            "external role ARN still needs the role's identity allow",
            session_b(),
            Deny(Reason::NoIdentityAllow),
        )
        .secret_policy(identity(&grant(
            "Allow",
            &aws("arn:aws:iam::444455556666:role/remote"),
            GET,
        ))),
        Case::new(
            "external session limited by its session policy",
            session_b(),
            Deny(Reason::NoSessionAllow),
        )
        .secret_policy(identity(&grant(
            "Allow",
            &aws("arn:aws:iam::444455556666:role/remote"),
            GET,
        )))
        .identity(identity(&allow("*", "*")))
        .session_policy(identity(&allow("kms:*", "*"))),
        Case::new(
            "external root needs the resource policy",
            Principal::root(B),
            Deny(Reason::NoResourceAllow),
        ),
        Case::new(
            "external root named by account",
            Principal::root(B),
            Allow(Some(ByRes)),
        )
        .secret_policy(identity(&grant("Allow", &aws(B), GET))),
        Case::new(
            "same account when the resource is in the caller's account",
            bob_b(),
            Allow(Some(ById)),
        )
        .owner(B)
        .identity(identity(&allow(GET, "*"))),
        Case::new(
            "explicit deny across accounts",
            bob_b(),
            Deny(Reason::ExplicitDeny(ById)),
        )
        .secret_policy(identity(&to_bob))
        .identity(identity(&format!("{},{}", allow("*", "*"), deny(GET, "*")))),
    ]);
}

fn default_key_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Id":"key-default-1","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

/// AWS KMS Developer Guide, "Key policies in AWS KMS" / "Default key policy"
/// (<https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html>) and "AWS managed
/// keys": IAM policies count only when the key policy delegates to the account, and an AWS
/// managed key is usable only through its service.
#[test]
fn kms_key_policies() {
    let secretsmanager_key_policy = r#"{"Version":"2012-10-17","Id":"auto-secretsmanager-1","Statement":[
        {"Sid":"Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager","Effect":"Allow","Principal":{"AWS":"*"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant","kms:DescribeKey"],"Resource":"*","Condition":{"StringEquals":{"kms:ViaService":"secretsmanager.eu-west-1.amazonaws.com","kms:CallerAccount":"111122223333"}}},
        {"Sid":"Allow direct access to key metadata to the account","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Describe*","kms:Get*","kms:List*","kms:RevokeGrant"],"Resource":"*"}]}"#;
    let via_sm = || {
        Context::new()
            .with("kms:ViaService", "secretsmanager.eu-west-1.amazonaws.com")
            .with("kms:CallerAccount", A)
    };
    run_all(vec![
        Case::new(
            "root delegation plus identity allow",
            session(),
            Allow(Some(ById)),
        )
        .key_policy(Some(default_key_policy(A)))
        .on("kms:Decrypt", KEY)
        .identity(identity(&allow(
            "kms:Decrypt",
            "arn:aws:kms:*:111122223333:key/*",
        ))),
        Case::new(
            "root delegation without identity allow",
            session(),
            Deny(Reason::NoIdentityAllow),
        )
        .key_policy(Some(default_key_policy(A)))
        .on("kms:Decrypt", KEY),
        Case::new(
            "IAM alone never suffices",
            session(),
            Deny(Reason::NoResourceAllow),
        )
        .key_policy(Some(identity(&grant(
            "Allow",
            &aws("arn:aws:iam::111122223333:user/admin"),
            "kms:*",
        ))))
        .on("kms:Decrypt", KEY)
        .identity(identity(&allow("kms:*", "*"))),
        Case::new(
            "missing key policy denies",
            alice(),
            Deny(Reason::NoResourceAllow),
        )
        .key_policy(None)
        .on("kms:Decrypt", KEY)
        .identity(identity(&allow("kms:*", "*"))),
        Case::new(
            "key policy naming the user directly",
            alice(),
            Allow(Some(ByRes)),
        )
        .key_policy(Some(identity(&grant(
            "Allow",
            &aws("arn:aws:iam::111122223333:user/alice"),
            "kms:*",
        ))))
        .on("kms:Decrypt", KEY),
        Case::new(
            "alias ARN in IAM Resource never matches the key",
            session(),
            Deny(Reason::NoIdentityAllow),
        )
        .key_policy(Some(default_key_policy(A)))
        .on("kms:Decrypt", KEY)
        .identity(identity(&allow(
            "kms:Decrypt",
            "arn:aws:kms:eu-west-1:111122223333:alias/ci",
        ))),
        Case::new(
            "aws/secretsmanager key via Secrets Manager",
            session(),
            Allow(Some(ByRes)),
        )
        .key_policy(Some(secretsmanager_key_policy.to_owned()))
        .on("kms:Decrypt", KEY)
        .context(via_sm()),
        Case::new(
            "aws/secretsmanager key used directly",
            session(),
            Deny(Reason::NoResourceAllow),
        )
        .key_policy(Some(secretsmanager_key_policy.to_owned()))
        .on("kms:Decrypt", KEY)
        .identity(identity(&allow("kms:*", "*"))),
        Case::new(
            "aws/secretsmanager key cross-account",
            session_b(),
            Deny(Reason::NoResourceAllow),
        )
        .key_policy(Some(secretsmanager_key_policy.to_owned()))
        .on("kms:Decrypt", KEY)
        .identity(identity(&allow("kms:*", "*")))
        .context(
            Context::new()
                .with("kms:ViaService", "secretsmanager.eu-west-1.amazonaws.com")
                .with("kms:CallerAccount", B),
        ),
        Case::new(
            "cross-account key use: key policy and IAM",
            bob_b(),
            Allow(Some(ByRes)),
        )
        .key_policy(Some(identity(&grant("Allow", &aws(B), "kms:Decrypt"))))
        .on("kms:Decrypt", KEY)
        .identity(identity(&allow("kms:Decrypt", KEY))),
        Case::new(
            "cross-account key use without IAM",
            bob_b(),
            Deny(Reason::NoIdentityAllow),
        )
        .key_policy(Some(identity(&grant("Allow", &aws(B), "kms:Decrypt"))))
        .on("kms:Decrypt", KEY),
        Case::new(
            "root locked out by a key policy not naming the account",
            Principal::root(A),
            Deny(Reason::NoResourceAllow),
        )
        .key_policy(Some(identity(&grant(
            "Allow",
            &aws("arn:aws:iam::111122223333:user/alice"),
            "kms:*",
        ))))
        .on("kms:Decrypt", KEY),
        Case::new(
            "root through the default key policy",
            Principal::root(A),
            Allow(None),
        )
        .key_policy(Some(default_key_policy(A)))
        .on("kms:ScheduleKeyDeletion", KEY),
    ]);
}

/// An IAM OpenID Connect provider as trust policies name it.
const OIDC: &str = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com";

/// AWS STS API Reference, "AssumeRole"
/// (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>), and IAM User
/// Guide, "How AWS enforcement code logic
/// evaluates requests": the trust policy is a resource policy that must allow.
#[test]
fn role_trust_policies() {
    run_all(vec![
        Case::new("trust naming the user suffices", alice(), Allow(Some(ByRes)))
            .trust_policy(trust(&aws("arn:aws:iam::111122223333:user/alice"))),
        Case::new("trust naming the account needs identity allow", alice(), Deny(Reason::NoIdentityAllow))
            .trust_policy(trust(&aws(&format!("arn:aws:iam::{A}:root")))),
        Case::new("trust naming the account with identity allow", alice(), Allow(Some(ById)))
            .trust_policy(trust(&aws(A)))
            .identity(identity(&allow("sts:AssumeRole", ROLE))),
        Case::new("identity allow without trust", alice(), Deny(Reason::NoResourceAllow))
            .trust_policy(trust(r#"{"Service":"ec2.amazonaws.com"}"#))
            .identity(identity(&allow("sts:AssumeRole", "*"))),
        Case::new("service in the trust policy", Principal::service("ec2.amazonaws.com"), Allow(Some(ByRes)))
            .trust_policy(trust(r#"{"Service":["ec2.amazonaws.com"]}"#)),
        Case::new("web identity: the provider in the trust policy", Principal::federated(OIDC, A), Allow(Some(ByRes)))
            .trust_policy(trust(&format!(r#"{{"Federated":"{OIDC}"}}"#))),
        Case::new("web identity: another provider", Principal::federated(OIDC, A), Deny(Reason::NoResourceAllow))
            .trust_policy(trust(r#"{"Federated":"arn:aws:iam::111122223333:oidc-provider/other.example"}"#)),
        Case::new("web identity: not an AWS principal", Principal::federated(OIDC, A), Deny(Reason::NoResourceAllow))
            .trust_policy(trust(r#"{"AWS":"*"}"#)),
        Case::new("web identity: no identity policy can stand in", Principal::federated(OIDC, A), Deny(Reason::NoResourceAllow))
            .trust_policy(trust(&aws(A)))
            .identity(identity(&allow("sts:AssumeRole", "*"))),
        Case::new("a Federated entry does not admit users", alice(), Deny(Reason::NoResourceAllow))
            .trust_policy(trust(&format!(r#"{{"Federated":"{OIDC}"}}"#))),
        Case::new("role chaining: session named by its role ARN", session(), Allow(Some(ByRes)))
            .trust_policy(trust(&aws(ROLE))),
        Case::new("cross-account trust needs the caller's identity allow", session_b(), Deny(Reason::NoIdentityAllow))
            .trust_policy(trust(&aws(B))),
        Case::new("cross-account trust with identity allow", session_b(), Allow(Some(ByRes)))
            .trust_policy(trust(&aws("arn:aws:iam::444455556666:role/remote")))
            .identity(identity(&allow("sts:AssumeRole", ROLE))),
        Case::new("trust with external id condition unmet", bob_b(), Deny(Reason::NoResourceAllow))
            .identity(identity(&allow("sts:AssumeRole", ROLE)))
            .trust_policy(identity(&format!(
                r#"{{"Effect":"Allow","Principal":{{"AWS":"{B}"}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"xyz"}}}}}}"#
            ))),
    ]);
}

/// IAM User Guide, "IAM policy elements: Variables and tags".
#[test]
fn policy_variables() {
    let own = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:home/alice/token-AbCdEf";
    let other = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:home/bob/token-AbCdEf";
    let home = allow(
        GET,
        "arn:aws:secretsmanager:*:*:secret:home/${aws:username}/*",
    );
    let tagged = allow(
        GET,
        "arn:aws:secretsmanager:*:*:secret:team/${aws:PrincipalTag/team, 'none'}/*",
    );
    run_all(vec![
        Case::new("username variable matches own prefix", alice(), Allow(Some(ById)))
            .on(GET, own)
            .identity(identity(&home)),
        Case::new("username variable excludes others", alice(), Deny(Reason::NoIdentityAllow))
            .on(GET, other)
            .identity(identity(&home)),
        Case::new("2008-10-17 keeps variables literal", alice(), Deny(Reason::NoIdentityAllow))
            .on(GET, own)
            .identity(format!(r#"{{"Version":"2008-10-17","Statement":[{home}]}}"#)),
        Case::new("missing Version keeps variables literal", alice(), Deny(Reason::NoIdentityAllow))
            .on(GET, own)
            .identity(format!(r#"{{"Statement":[{home}]}}"#)),
        Case::new("unresolvable variable (no username for sessions)", session(), Deny(Reason::NoIdentityAllow))
            .on(GET, own)
            .identity(identity(&home)),
        Case::new("principal tag variable", alice().with_tag("team", "blue"), Allow(Some(ById)))
            .on(GET, "arn:aws:secretsmanager:eu-west-1:111122223333:secret:team/blue/x-AbCdEf")
            .identity(identity(&tagged)),
        Case::new("default value for a missing tag", alice(), Allow(Some(ById)))
            .on(GET, "arn:aws:secretsmanager:eu-west-1:111122223333:secret:team/none/x-AbCdEf")
            .identity(identity(&tagged)),
        Case::new("userid variable in a condition", session(), Allow(Some(ById)))
            .identity(identity(
                r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:userid":"AROACIEXAMPLE12345678:${aws:PrincipalTag/none, 'i-0abc'}"}}}"#,
            )),
        Case::new("context key as variable", alice(), Allow(Some(ById)))
            .context(Context::new().with("aws:RequestedRegion", "eu-west-1"))
            .identity(identity(&allow(GET, "arn:aws:secretsmanager:${aws:RequestedRegion}:*:secret:*"))),
    ]);
}

/// IAM User Guide, "IAM JSON policy elements: Condition operators" — end to end through
/// statements, including blocks AND'ed and derived principal keys.
#[test]
fn conditions_in_statements() {
    let ip_deny = r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},"Bool":{"aws:ViaAWSService":"false"}}}"#;
    let tls_only = r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"},"StringEquals":{"aws:PrincipalType":"User","aws:PrincipalAccount":"111122223333"}}}"#;
    let business_hours = r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}}"#;
    let at = |s: i64| {
        Context::new().with_current_time(
            time::OffsetDateTime::from_unix_timestamp(s)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        )
    };
    run_all(vec![
        Case::new(
            "deny outside the network",
            alice(),
            Deny(Reason::ExplicitDeny(ById)),
        )
        .identity(identity(&format!("{},{ip_deny}", allow("*", "*"))))
        .context(
            Context::new()
                .with("aws:SourceIp", "192.0.2.1")
                .with_bool("aws:ViaAWSService", false),
        ),
        Case::new("inside the network", alice(), Allow(Some(ById)))
            .identity(identity(&format!("{},{ip_deny}", allow("*", "*"))))
            .context(
                Context::new()
                    .with("aws:SourceIp", "2001:db8::7")
                    .with_bool("aws:ViaAWSService", false),
            ),
        Case::new(
            "blocks are AND'ed: one false block",
            alice(),
            Allow(Some(ById)),
        )
        .identity(identity(&format!("{},{ip_deny}", allow("*", "*"))))
        .context(
            Context::new()
                .with("aws:SourceIp", "192.0.2.1")
                .with_bool("aws:ViaAWSService", true),
        ),
        Case::new("derived keys and TLS", alice(), Allow(Some(ById)))
            .identity(identity(tls_only))
            .context(Context::new().with_bool("aws:SecureTransport", true)),
        Case::new("missing TLS key", alice(), Deny(Reason::NoIdentityAllow))
            .identity(identity(tls_only)),
        Case::new(
            "session is not a User",
            session(),
            Deny(Reason::NoIdentityAllow),
        )
        .identity(identity(tls_only))
        .context(Context::new().with_bool("aws:SecureTransport", true)),
        Case::new("time window", alice(), Allow(Some(ById)))
            .identity(identity(business_hours))
            .context(at(1_780_000_000)),
        Case::new(
            "outside the time window",
            alice(),
            Deny(Reason::NoIdentityAllow),
        )
        .identity(identity(business_hours))
        .context(at(1_700_000_000)),
    ]);
}

#[test]
fn denial_message_end_to_end() {
    let case = Case::new("m", session(), Deny(Reason::NoIdentityAllow));
    let decision = case.run();
    assert_eq!(
        decision.denial_message(&case.principal.arn, GET, Some(SECRET)),
        format!(
            "User: arn:aws:sts::111122223333:assumed-role/ci-instance/i-0abc is not authorized to perform: \
             {GET} on resource: {SECRET} because no identity-based policy allows the {GET} action"
        )
    );
    let case = Case::new("m", alice(), Deny(Reason::ExplicitDeny(ById)))
        .identity(identity(&deny("*", "*")));
    let decision = case.run();
    assert_eq!(decision.eval_decision(), "explicitDeny");
    assert_eq!(decision.matched.len(), 1);
    assert_eq!(decision.matched[0].source_id.as_deref(), Some("inline"));
    assert!(decision.denial_message(&case.principal.arn, GET, None).ends_with(
        "perform: secretsmanager:GetSecretValue with an explicit deny in an identity-based policy"
    ));
}

#[test]
fn matched_statements_report_sid_and_index() {
    let case = Case::new("sids", alice(), Allow(Some(ById))).identity(identity(
        r#"{"Sid":"First","Effect":"Allow","Action":"kms:*","Resource":"*"},{"Sid":"Second","Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}"#,
    ));
    let decision = case.run();
    let Reason::Allowed(Some(by)) = &decision.reason else {
        panic!("{:?}", decision.reason)
    };
    assert_eq!(by.sid.as_deref(), Some("Second"));
    assert_eq!(by.statement_index, 1);
    assert_eq!(by.source_type, Some(SourcePolicyType::User));
}
