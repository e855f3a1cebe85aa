//! Unit tests of the operations against the in-memory store, through the real Authorizer and
//! the real KMS envelope API (root caller: IAM allows, the key policy decides).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use tresor_core::RequestCtx;
use tresor_iam::testing::{ACCOUNT, REGION, TestEnv as Env, ctx};
use tresor_store::Store;
use tresor_wire::AwsError;

fn env() -> Env {
    Env::new(7)
}

/// A typed operation as the tests call it: JSON in, JSON out, as the server's table wraps it.
type Op = fn(&tresor_core::Services, &RequestCtx, &[u8]) -> Result<Vec<u8>, AwsError>;

macro_rules! op {
    ($f:path) => {{
        let f: Op = |s, c, body| {
            let input = tresor_wire::json::decode(body)?;
            let output = $f(s, c, input).map_err(AwsError::from)?;
            tresor_wire::json::encode(&output)
        };
        f
    }};
}

fn call(e: &Env, op: Op, body: Value) -> Result<Value, AwsError> {
    call_at(e, &ctx(), op, body)
}

fn call_at(e: &Env, c: &RequestCtx, op: Op, body: Value) -> Result<Value, AwsError> {
    let out = op(&e.services, c, &serde_json::to_vec(&body).unwrap())?;
    Ok(serde_json::from_slice(&out).unwrap())
}

fn err(r: Result<Value, AwsError>) -> AwsError {
    r.expect_err("expected an error")
}

fn put(e: &Env, name: &str, value: &str, ty: &str) -> Value {
    call(
        e,
        op!(crate::params::put_parameter),
        json!({"Name": name, "Value": value, "Type": ty}),
    )
    .unwrap()
}

fn get(e: &Env, name: &str) -> Value {
    call(
        e,
        op!(crate::params::get_parameter),
        json!({"Name": name, "WithDecryption": true}),
    )
    .unwrap()["Parameter"]
        .clone()
}

#[test]
fn string_parameter_round_trip_and_names_with_or_without_slash_are_one() {
    let e = env();
    let out = put(&e, "/TestParam1", "v1", "String");
    assert_eq!(out, json!({"Version": 1, "Tier": "Standard"}));
    let p = get(&e, "TestParam1");
    assert_eq!(p["Name"], "/TestParam1");
    assert_eq!(p["Value"], "v1");
    assert_eq!(p["Type"], "String");
    assert_eq!(p["DataType"], "text");
    assert_eq!(
        p["ARN"],
        format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/TestParam1")
    );
    assert!(p.get("Selector").is_none());
    assert!(p["LastModifiedDate"].is_f64() || p["LastModifiedDate"].is_u64());
    let e2 = err(call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "TestParam1", "Value": "x", "Type": "String"}),
    ));
    assert_eq!(e2.code, "ParameterAlreadyExists");
    // A hierarchical name's ARN has no double slash.
    put(&e, "/Test/TestParam1", "v", "StringList");
    assert_eq!(
        get(&e, "/Test/TestParam1")["ARN"],
        format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/Test/TestParam1")
    );
    // By ARN.
    let by_arn = get(
        &e,
        &format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/Test/TestParam1"),
    );
    assert_eq!(by_arn["Name"], "/Test/TestParam1");
    // Missing: no message at all.
    let nf = err(call(
        &e,
        op!(crate::params::get_parameter),
        json!({"Name": "/nope"}),
    ));
    assert_eq!((nf.code.as_ref(), nf.message), ("ParameterNotFound", None));
}

#[test]
fn name_rules() {
    let e = env();
    let code = |name: &str| {
        err(call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": name, "Value": "v", "Type": "String"}),
        ))
        .code
        .to_string()
    };
    assert_eq!(code("MyParameter3/L1"), "ValidationException");
    assert_eq!(code("/a b"), "ValidationException");
    assert_eq!(code("/a@b"), "ValidationException");
    assert_eq!(code("/ssm/x"), "ValidationException");
    assert_eq!(code("ssmthing"), "ValidationException");
    assert_eq!(code("/aws/x"), "AccessDeniedException");
    assert_eq!(code("AWSthing"), "AccessDeniedException");
    assert_eq!(
        code("/aws/reference/secretsmanager/x"),
        "AccessDeniedException"
    );
    let deep = format!("/{}", vec!["l"; 16].join("/"));
    assert_eq!(code(&deep), "HierarchyLevelLimitExceededException");
    let long = format!("/{}", "a".repeat(1000));
    assert_eq!(code(&long), "ValidationException");
    let msg = err(call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/aws/test", "Value": "v", "Type": "String"}),
    ))
    .message;
    assert_eq!(
        msg.as_deref(),
        Some("No access to reserved parameter name: aws/test.")
    );
    // Leading and trailing spaces are trimmed.
    put(&e, "  /spaced  ", "v", "String");
    assert_eq!(get(&e, "/spaced")["Value"], "v");
}

#[test]
fn overwrite_keeps_unspecified_fields_and_bumps_the_version() {
    let e = env();
    call(&e, op!(crate::params::put_parameter), json!({"Name": "/o", "Value": "1", "Type": "String", "Description": "d", "AllowedPattern": "\\d+"})).unwrap();
    let out = call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/o", "Value": "2", "Overwrite": true}),
    )
    .unwrap();
    assert_eq!(out["Version"], 2);
    let d = call(
        &e,
        op!(crate::listing::describe_parameters),
        json!({"ParameterFilters": [{"Key": "Name", "Values": ["/o"]}]}),
    )
    .unwrap();
    let meta = &d["Parameters"][0];
    assert_eq!(meta["Description"], "d");
    assert_eq!(meta["AllowedPattern"], "\\d+");
    assert_eq!(meta["Type"], "String");
    assert_eq!(meta["Version"], 2);
    assert_eq!(
        meta["LastModifiedUser"],
        format!("arn:aws:iam::{ACCOUNT}:root")
    );
    // AllowedPattern stays in force.
    let pm = err(call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/o", "Value": "abc", "Overwrite": true}),
    ));
    assert_eq!(pm.code, "ParameterPatternMismatchException");
    assert!(!pm.message.unwrap().contains("abc"));
    let bad = err(call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/p", "Value": "abc", "Type": "String", "AllowedPattern": "("}),
    ));
    assert_eq!(bad.code, "InvalidAllowedPatternException");
    // Tags with overwrite; missing type on create.
    let t = err(call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/o", "Value": "3", "Overwrite": true, "Tags": [{"Key": "k", "Value": "v"}]}),
    ));
    assert_eq!(t.code, "ValidationException");
    assert!(
        t.message
            .unwrap()
            .contains("tags and overwrite can't be used together")
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": "/new", "Value": "x"})
        ))
        .code,
        "ValidationException"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": "/new", "Value": "x", "Type": "Nope"})
        ))
        .code,
        "ValidationException"
    );
    // Selectors.
    let v1 = call(
        &e,
        op!(crate::params::get_parameter),
        json!({"Name": "/o:1"}),
    )
    .unwrap();
    assert_eq!(v1["Parameter"]["Value"], "1");
    assert_eq!(v1["Parameter"]["Selector"], ":1");
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": "/o:9"})
        ))
        .code,
        "ParameterVersionNotFound"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": "/o:nolabel"})
        ))
        .code,
        "ParameterVersionNotFound"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": "/o:1:2"})
        ))
        .code,
        "ValidationException"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": "/o:"})
        ))
        .code,
        "ValidationException"
    );
}

#[test]
fn secure_string_is_sealed_under_alias_aws_ssm_and_decrypted_only_on_request() {
    let e = env();
    put(&e, "/ci/token", "tok-S3CR3T-value", "SecureString");
    let plain = get(&e, "/ci/token");
    assert_eq!(plain["Value"], "tok-S3CR3T-value");
    assert_eq!(plain["Type"], "SecureString");
    let cipher = call(
        &e,
        op!(crate::params::get_parameter),
        json!({"Name": "/ci/token"}),
    )
    .unwrap();
    let c = cipher["Parameter"]["Value"].as_str().unwrap();
    assert!(!c.contains("S3CR3T"));
    assert!(c.len() > 40);
    let d = call(&e, op!(crate::listing::describe_parameters), json!({})).unwrap();
    assert_eq!(d["Parameters"][0]["KeyId"], "alias/aws/ssm");
    // Nothing in the store holds the plaintext.
    let txn = e.store.begin_read().unwrap();
    for (k, v) in txn.scan("", None, 100_000).unwrap() {
        assert!(!String::from_utf8_lossy(&v).contains("S3CR3T"), "{k}");
    }
    // A customer key by alias; KeyId is echoed as given.
    let out = call(&e, op!(tresor_kms::ops::keys::create_key), json!({})).unwrap();
    let key_id = out["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    call(
        &e,
        op!(tresor_kms::ops::aliases::create_alias),
        json!({"AliasName": "alias/ci", "TargetKeyId": key_id}),
    )
    .unwrap();
    call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/ci/k", "Value": "x", "Type": "SecureString", "KeyId": "alias/ci"}),
    )
    .unwrap();
    assert_eq!(get(&e, "/ci/k")["Value"], "x");
    let h = call(
        &e,
        op!(crate::listing::get_parameter_history),
        json!({"Name": "/ci/k"}),
    )
    .unwrap();
    assert_eq!(h["Parameters"][0]["KeyId"], "alias/ci");
    let bad = err(call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/ci/k2", "Value": "x", "Type": "SecureString", "KeyId": "alias/missing"}),
    ));
    assert_eq!(bad.code, "InvalidKeyId");
    assert!(bad.message.unwrap().contains("(Service: AWSKMS"));
    // KeyId on a String parameter is refused.
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": "/s", "Value": "x", "Type": "String", "KeyId": "alias/ci"})
        ))
        .code,
        "ValidationException"
    );
}

#[test]
fn hundred_versions_are_kept_and_a_labeled_oldest_blocks_the_next_write() {
    let e = env();
    put(&e, "/v", "0", "String");
    for i in 1..100 {
        call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": "/v", "Value": i.to_string(), "Overwrite": true}),
        )
        .unwrap();
    }
    call(
        &e,
        op!(crate::labels::label_parameter_version),
        json!({"Name": "/v", "ParameterVersion": 1, "Labels": ["keep"]}),
    )
    .unwrap();
    let blocked = err(call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/v", "Value": "x", "Overwrite": true}),
    ));
    assert_eq!(blocked.code, "ParameterMaxVersionLimitExceeded");
    // Move the label; the 101st write drops version 1.
    call(
        &e,
        op!(crate::labels::label_parameter_version),
        json!({"Name": "/v", "ParameterVersion": 50, "Labels": ["keep"]}),
    )
    .unwrap();
    let out = call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/v", "Value": "x", "Overwrite": true}),
    )
    .unwrap();
    assert_eq!(out["Version"], 101);
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": "/v:1"})
        ))
        .code,
        "ParameterVersionNotFound"
    );
    assert_eq!(
        call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": "/v:keep"})
        )
        .unwrap()["Parameter"]["Value"],
        "49"
    );
    let h = call(
        &e,
        op!(crate::listing::get_parameter_history),
        json!({"Name": "/v"}),
    )
    .unwrap();
    assert_eq!(h["Parameters"].as_array().unwrap().len(), 50);
    assert_eq!(h["Parameters"][0]["Version"], 2);
    let token = h["NextToken"].as_str().unwrap().to_string();
    let h2 = call(
        &e,
        op!(crate::listing::get_parameter_history),
        json!({"Name": "/v", "NextToken": token}),
    )
    .unwrap();
    assert_eq!(h2["Parameters"].as_array().unwrap().len(), 50);
    assert_eq!(h2["Parameters"][49]["Version"], 101);
    assert!(h2.get("NextToken").is_none());
    assert_eq!(h["Parameters"][48]["Labels"], json!(["keep"]));
    assert_eq!(h2["Parameters"][48]["Labels"], json!([]));
    assert_eq!(
        err(call(
            &e,
            op!(crate::listing::get_parameter_history),
            json!({"Name": "/v", "NextToken": "garbage!"})
        ))
        .code,
        "InvalidNextToken"
    );
}

#[test]
fn labels_move_are_validated_and_limited() {
    let e = env();
    put(&e, "/l", "a", "String");
    call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/l", "Value": "b", "Overwrite": true}),
    )
    .unwrap();
    let out = call(
        &e,
        op!(crate::labels::label_parameter_version),
        json!({"Name": "/l", "ParameterVersion": 1, "Labels": ["prod", "1bad", "awsx"]}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"InvalidLabels": ["1bad", "awsx"], "ParameterVersion": 1})
    );
    // Moving.
    let out = call(
        &e,
        op!(crate::labels::label_parameter_version),
        json!({"Name": "/l", "Labels": ["prod"]}),
    )
    .unwrap();
    assert_eq!(out["ParameterVersion"], 2);
    let p = call(
        &e,
        op!(crate::params::get_parameter),
        json!({"Name": "/l:prod"}),
    )
    .unwrap();
    assert_eq!(
        (
            p["Parameter"]["Value"].as_str(),
            p["Parameter"]["Selector"].as_str()
        ),
        (Some("b"), Some(":prod"))
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::labels::label_parameter_version),
            json!({"Name": "/l", "ParameterVersion": 7, "Labels": ["x"]})
        ))
        .code,
        "ParameterVersionNotFound"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::labels::label_parameter_version),
            json!({"Name": "/none", "Labels": ["x"]})
        ))
        .code,
        "ParameterNotFound"
    );
    let ten: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
    call(
        &e,
        op!(crate::labels::label_parameter_version),
        json!({"Name": "/l", "ParameterVersion": 1, "Labels": ten}),
    )
    .unwrap();
    assert_eq!(
        err(call(
            &e,
            op!(crate::labels::label_parameter_version),
            json!({"Name": "/l", "ParameterVersion": 1, "Labels": ["l10"]})
        ))
        .code,
        "ParameterVersionLabelLimitExceeded"
    );
    let un = call(
        &e,
        op!(crate::labels::unlabel_parameter_version),
        json!({"Name": "/l", "ParameterVersion": 2, "Labels": ["prod", "l0"]}),
    )
    .unwrap();
    assert_eq!(
        un,
        json!({"RemovedLabels": ["prod"], "InvalidLabels": ["l0"]})
    );
}

#[test]
fn by_path_is_recursive_or_one_level_pages_and_filters() {
    let e = env();
    for n in ["/a/x", "/a/y", "/a/b/z", "/other", "top"] {
        put(&e, n, n, "String");
    }
    put(&e, "/a/s", "secret", "SecureString");
    let one = call(
        &e,
        op!(crate::listing::get_parameters_by_path),
        json!({"Path": "/a"}),
    )
    .unwrap();
    let names: Vec<&str> = one["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/a/s", "/a/x", "/a/y"]);
    let rec = call(
        &e,
        op!(crate::listing::get_parameters_by_path),
        json!({"Path": "/a/", "Recursive": true, "WithDecryption": true}),
    )
    .unwrap();
    assert_eq!(rec["Parameters"].as_array().unwrap().len(), 4);
    assert!(
        rec["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["Value"] == "secret")
    );
    let top = call(
        &e,
        op!(crate::listing::get_parameters_by_path),
        json!({"Path": "/"}),
    )
    .unwrap();
    let names: Vec<&str> = top["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/other", "top"]);
    // Pagination never repeats a token and covers everything once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"Path": "/", "Recursive": true, "MaxResults": 2});
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let page = call(&e, op!(crate::listing::get_parameters_by_path), body).unwrap();
        seen.extend(
            page["Parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["Name"].as_str().unwrap().to_string()),
        );
        match page["NextToken"].as_str() {
            Some(t) => {
                assert_ne!(Some(t.to_string()), token);
                token = Some(t.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let filtered = call(
        &e,
        op!(crate::listing::get_parameters_by_path),
        json!({"Path": "/a", "ParameterFilters": [{"Key": "Type", "Values": ["SecureString"]}]}),
    )
    .unwrap();
    assert_eq!(filtered["Parameters"].as_array().unwrap().len(), 1);
    call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/a/x", "Value": "new", "Overwrite": true}),
    )
    .unwrap();
    call(
        &e,
        op!(crate::labels::label_parameter_version),
        json!({"Name": "/a/x", "ParameterVersion": 1, "Labels": ["old"]}),
    )
    .unwrap();
    let labeled = call(
        &e,
        op!(crate::listing::get_parameters_by_path),
        json!({"Path": "/a", "ParameterFilters": [{"Key": "Label", "Values": ["old"]}]}),
    )
    .unwrap();
    assert_eq!(labeled["Parameters"][0]["Value"], "/a/x");
    assert_eq!(labeled["Parameters"].as_array().unwrap().len(), 1);
    for (filter, code) in [
        (json!({"Key": "Name", "Values": ["/a"]}), "InvalidFilterKey"),
        (
            json!({"Key": "tag:x", "Values": ["/a"]}),
            "InvalidFilterKey",
        ),
        (
            json!({"Key": "Label", "Option": "BeginsWith", "Values": ["x"]}),
            "InvalidFilterOption",
        ),
    ] {
        assert_eq!(
            err(call(
                &e,
                op!(crate::listing::get_parameters_by_path),
                json!({"Path": "/a", "ParameterFilters": [filter]})
            ))
            .code,
            code
        );
    }
    assert_eq!(
        err(call(
            &e,
            op!(crate::listing::get_parameters_by_path),
            json!({"Path": "/a", "MaxResults": 11})
        ))
        .code,
        "ValidationException"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::listing::get_parameters_by_path),
            json!({"Path": "/a", "NextToken": "nope"})
        ))
        .code,
        "InvalidNextToken"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::listing::get_parameters_by_path),
            json!({"Path": "/aws/reference/secretsmanager"})
        ))
        .code,
        "ValidationException"
    );
}

#[test]
fn describe_filters_both_styles() {
    let e = env();
    put(&e, "/d/a", "1", "String");
    put(&e, "/d/b/c", "1", "SecureString");
    call(&e, op!(crate::params::put_parameter), json!({"Name": "/d/t", "Value": "1", "Type": "String", "Tags": [{"Key": "team", "Value": "ci"}]})).unwrap();
    let names = |body: Value| -> Vec<String> {
        call(&e, op!(crate::listing::describe_parameters), body).unwrap()["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["Name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(json!({"ParameterFilters": [{"Key": "Path", "Values": ["/d"]}]})),
        ["/d/a", "/d/t"]
    );
    assert_eq!(
        names(
            json!({"ParameterFilters": [{"Key": "Path", "Option": "Recursive", "Values": ["/d"]}]})
        )
        .len(),
        3
    );
    assert_eq!(
        names(
            json!({"ParameterFilters": [{"Key": "Name", "Option": "BeginsWith", "Values": ["/d/b"]}]})
        ),
        ["/d/b/c"]
    );
    assert_eq!(
        names(
            json!({"ParameterFilters": [{"Key": "Name", "Option": "Contains", "Values": ["t"]}]})
        ),
        ["/d/t"]
    );
    assert_eq!(
        names(json!({"ParameterFilters": [{"Key": "tag:team", "Values": ["ci"]}]})),
        ["/d/t"]
    );
    assert_eq!(
        names(json!({"ParameterFilters": [{"Key": "Type", "Values": ["SecureString"]}]})),
        ["/d/b/c"]
    );
    assert_eq!(
        names(json!({"ParameterFilters": [{"Key": "KeyId", "Values": ["alias/aws/ssm"]}]})),
        ["/d/b/c"]
    );
    assert_eq!(
        names(json!({"Filters": [{"Key": "Type", "Values": ["SecureString"]}]})),
        ["/d/b/c"]
    );
    assert_eq!(
        names(json!({"Filters": [{"Key": "Name", "Values": ["/d/t"]}]})),
        ["/d/t"]
    );
    let both = err(call(
        &e,
        op!(crate::listing::describe_parameters),
        json!({"Filters": [{"Key": "Type", "Values": ["String"]}], "ParameterFilters": [{"Key": "Type", "Values": ["String"]}]}),
    ));
    assert_eq!(
        both.message.as_deref(),
        Some("You can use either Filters or ParameterFilters in a single request.")
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::listing::describe_parameters),
            json!({"ParameterFilters": [{"Key": "Label", "Values": ["x"]}]})
        ))
        .code,
        "InvalidFilterKey"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::listing::describe_parameters),
            json!({"ParameterFilters": [{"Key": "Name", "Option": "Fuzzy", "Values": ["x"]}]})
        ))
        .code,
        "InvalidFilterOption"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::listing::describe_parameters),
            json!({"Filters": [{"Key": "Bogus", "Values": ["x"]}]})
        ))
        .code,
        "ValidationException"
    );
    let page = call(
        &e,
        op!(crate::listing::describe_parameters),
        json!({"MaxResults": 2}),
    )
    .unwrap();
    assert_eq!(page["Parameters"].as_array().unwrap().len(), 2);
    let next = call(
        &e,
        op!(crate::listing::describe_parameters),
        json!({"MaxResults": 2, "NextToken": page["NextToken"]}),
    )
    .unwrap();
    assert_eq!(next["Parameters"].as_array().unwrap().len(), 1);
    assert!(next.get("NextToken").is_none());
    assert_eq!(
        call(
            &e,
            op!(crate::listing::describe_parameters),
            json!({"Shared": true})
        )
        .unwrap()["Parameters"],
        json!([])
    );
}

#[test]
fn tiers_policies_and_expiration_job() {
    let e = env();
    let big = "x".repeat(5000);
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": "/big", "Value": big, "Type": "String"})
        ))
        .code,
        "ValidationException"
    );
    let out = call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/big", "Value": big, "Type": "String", "Tier": "Intelligent-Tiering"}),
    )
    .unwrap();
    assert_eq!(out["Tier"], "Advanced");
    let down = err(call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/big", "Value": "small", "Overwrite": true, "Tier": "Standard"}),
    ));
    assert_eq!(down.code, "ValidationException");
    let stays = call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/big", "Value": "small", "Overwrite": true}),
    )
    .unwrap();
    assert_eq!(stays["Tier"], "Advanced");
    let now = OffsetDateTime::now_utc();
    let at = (now + Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let policies = format!(
        r#"[{{"Type":"Expiration","Version":"1.0","Attributes":{{"Timestamp":"{at}"}}}},{{"Type":"NoChangeNotification","Version":"1.0","Attributes":{{"After":"2","Unit":"Days"}}}}]"#
    );
    // Policies need the advanced tier.
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": "/exp", "Value": "v", "Type": "String", "Policies": policies})
        ))
        .code,
        "ValidationException"
    );
    call(&e, op!(crate::params::put_parameter), json!({"Name": "/exp", "Value": "v", "Type": "String", "Tier": "Advanced", "Policies": policies})).unwrap();
    let d = call(
        &e,
        op!(crate::listing::describe_parameters),
        json!({"ParameterFilters": [{"Key": "Name", "Values": ["/exp"]}]}),
    )
    .unwrap();
    let pol = d["Parameters"][0]["Policies"].as_array().unwrap();
    assert_eq!(pol.len(), 2);
    assert_eq!(pol[0]["PolicyType"], "Expiration");
    assert_eq!(pol[0]["PolicyStatus"], "Pending");
    // Overwriting without Policies keeps them (and the expiration).
    call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/exp", "Value": "v2", "Overwrite": true}),
    )
    .unwrap();
    assert_eq!(crate::run_due_jobs(&e.services, now).unwrap(), 0);
    assert_eq!(get(&e, "/exp")["Value"], "v2");
    assert_eq!(
        crate::run_due_jobs(&e.services, now + Duration::hours(2)).unwrap(),
        1
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": "/exp"})
        ))
        .code,
        "ParameterNotFound"
    );
    // Idempotent: nothing left to do.
    assert_eq!(
        crate::run_due_jobs(&e.services, now + Duration::hours(2)).unwrap(),
        0
    );
    // A job made stale by deletion and re-creation does not delete the new parameter.
    call(&e, op!(crate::params::put_parameter), json!({"Name": "/exp2", "Value": "v", "Type": "String", "Tier": "Advanced", "Policies": policies})).unwrap();
    call(
        &e,
        op!(crate::params::delete_parameter),
        json!({"Name": "/exp2"}),
    )
    .unwrap();
    put(&e, "/exp2", "again", "String");
    crate::run_due_jobs(&e.services, now + Duration::hours(2)).unwrap();
    assert_eq!(get(&e, "/exp2")["Value"], "again");
    // New empty policies cancel the expiration.
    call(&e, op!(crate::params::put_parameter), json!({"Name": "/exp3", "Value": "v", "Type": "String", "Tier": "Advanced", "Policies": policies})).unwrap();
    call(
        &e,
        op!(crate::params::put_parameter),
        json!({"Name": "/exp3", "Value": "v", "Overwrite": true, "Policies": "[]"}),
    )
    .unwrap();
    crate::run_due_jobs(&e.services, now + Duration::hours(2)).unwrap();
    assert_eq!(get(&e, "/exp3")["Value"], "v");
}

#[test]
fn data_types() {
    let e = env();
    call(&e, op!(crate::params::put_parameter), json!({"Name": "/ami", "Value": "ami-0123456789abcdef0", "Type": "String", "DataType": "aws:ec2:image"})).unwrap();
    assert_eq!(get(&e, "/ami")["DataType"], "aws:ec2:image");
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": "/ami2", "Value": "nope", "Type": "String", "DataType": "aws:ec2:image"})
        ))
        .code,
        "ValidationException"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::put_parameter),
            json!({"Name": "/x", "Value": "v", "Type": "String", "DataType": "bogus"})
        ))
        .code,
        "ValidationException"
    );
}

#[test]
fn get_parameters_splits_found_and_invalid() {
    let e = env();
    put(&e, "/g/a", "1", "String");
    put(&e, "/g/b", "2", "SecureString");
    let out = call(&e, op!(crate::params::get_parameters), json!({"Names": ["/g/b", "/g/a", "/g/missing", "/g/a:9", "bad name", "/g/a"], "WithDecryption": true})).unwrap();
    let names: Vec<&str> = out["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/g/a", "/g/b"]);
    assert_eq!(out["Parameters"][1]["Value"], "2");
    assert_eq!(
        out["InvalidParameters"],
        json!(["/g/missing", "/g/a:9", "bad name"])
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::get_parameters),
            json!({"Names": []})
        ))
        .code,
        "ValidationException"
    );
    // A reference without WithDecryption is invalid, not an error.
    let r = call(
        &e,
        op!(crate::params::get_parameters),
        json!({"Names": ["/aws/reference/secretsmanager/x"]}),
    )
    .unwrap();
    assert_eq!(
        r["InvalidParameters"],
        json!(["/aws/reference/secretsmanager/x"])
    );
}

#[test]
fn reference_requires_decryption_and_parses_strictly() {
    let e = env();
    let nd = err(call(
        &e,
        op!(crate::params::get_parameter),
        json!({"Name": "/aws/reference/secretsmanager/missing"}),
    ));
    assert_eq!(nd.code, "ValidationException");
    assert_eq!(
        nd.message.as_deref(),
        Some("WithDecryption flag must be True for retrieving a Secret Manager secret.")
    );
    let bad = err(call(
        &e,
        op!(crate::params::get_parameter),
        json!({"Name": "/aws/reference/secretsmanager/x:a:b", "WithDecryption": true}),
    ));
    assert!(bad.message.unwrap().contains("<name>:<version/label>"));
    let nf = err(call(
        &e,
        op!(crate::params::get_parameter),
        json!({"Name": "/aws/reference/secretsmanager/missing", "WithDecryption": true}),
    ));
    assert_eq!(nf.code, "ParameterNotFound");
    assert_eq!(
        nf.message.as_deref(),
        Some(
            "An error occurred (ParameterNotFound) when referencing Secrets Manager: Secret aws/reference/secretsmanager/missingnull not found."
        )
    );
}

#[test]
fn deletes_and_tags() {
    let e = env();
    put(&e, "/del/a", "1", "String");
    put(&e, "/del/b", "1", "String");
    call(
        &e,
        op!(crate::params::delete_parameter),
        json!({"Name": "/del/a"}),
    )
    .unwrap();
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::delete_parameter),
            json!({"Name": "/del/a"})
        ))
        .code,
        "ParameterNotFound"
    );
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::delete_parameter),
            json!({"Name": "/aws/x"})
        ))
        .code,
        "AccessDeniedException"
    );
    let out = call(
        &e,
        op!(crate::params::delete_parameters),
        json!({"Names": ["/del/b", "/del/a"]}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"DeletedParameters": ["/del/b"], "InvalidParameters": ["/del/a"]})
    );
    // Versions are gone with the parameter: re-creating starts at 1.
    assert_eq!(put(&e, "/del/b", "x", "String")["Version"], 1);

    let tag = |op: Op, body: Value| call(&e, op, body);
    tag(op!(crate::tags::add_tags_to_resource), json!({"ResourceType": "Parameter", "ResourceId": "/del/b", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]})).unwrap();
    tag(op!(crate::tags::add_tags_to_resource), json!({"ResourceType": "Parameter", "ResourceId": "/del/b", "Tags": [{"Key": "a", "Value": "3"}]})).unwrap();
    tag(
        op!(crate::tags::remove_tags_from_resource),
        json!({"ResourceType": "Parameter", "ResourceId": "/del/b", "TagKeys": ["b"]}),
    )
    .unwrap();
    let l = tag(
        op!(crate::tags::list_tags_for_resource),
        json!({"ResourceType": "Parameter", "ResourceId": "/del/b"}),
    )
    .unwrap();
    assert_eq!(l, json!({"TagList": [{"Key": "a", "Value": "3"}]}));
    assert_eq!(
        err(tag(
            op!(crate::tags::list_tags_for_resource),
            json!({"ResourceType": "Parameter", "ResourceId": "/nope"})
        ))
        .code,
        "InvalidResourceId"
    );
    assert_eq!(
        err(tag(
            op!(crate::tags::list_tags_for_resource),
            json!({"ResourceType": "Document", "ResourceId": "/del/b"})
        ))
        .code,
        "InvalidResourceType"
    );
    assert_eq!(
        err(tag(
            op!(crate::tags::list_tags_for_resource),
            json!({"ResourceType": "Bogus", "ResourceId": "/del/b"})
        ))
        .code,
        "ValidationException"
    );
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
        .collect();
    assert_eq!(
        err(tag(
            op!(crate::tags::add_tags_to_resource),
            json!({"ResourceType": "Parameter", "ResourceId": "/del/b", "Tags": many})
        ))
        .code,
        "TooManyTagsError"
    );
}

/// A request from an IAM user with no policy at all.
fn nobody() -> RequestCtx {
    let mut c = ctx();
    c.caller = std::sync::Arc::new(tresor_core::Caller {
        account: ACCOUNT.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
        user_id: "AIDAMALLORYEXAMPLE01".into(),
        kind: tresor_core::CallerKind::User {
            name: "mallory".into(),
            path: "/".into(),
            unique_id: "AIDAMALLORYEXAMPLE01".into(),
        },
        access_key_id: "AKIAMALLORYEXAMPLE01".into(),
    });
    c
}

/// A caller without permission is refused on a read snapshot: it neither waits for nor
/// takes the store's writer (held here by another transaction).
#[test]
fn refused_writes_never_wait_for_the_writer() {
    let e = env();
    put(&e, "/held", "v", "String");
    let held = e.store.begin_write().unwrap();
    let c = nobody();
    let started = std::time::Instant::now();
    for (i, (op, body)) in [
        (
            op!(crate::tags::add_tags_to_resource),
            json!({"ResourceType": "Parameter", "ResourceId": "/held", "Tags": [{"Key": "k", "Value": "v"}]}),
        ),
        (
            op!(crate::tags::remove_tags_from_resource),
            json!({"ResourceType": "Parameter", "ResourceId": "/held", "TagKeys": ["k"]}),
        ),
        (
            op!(crate::params::put_parameter),
            json!({"Name": "/held", "Value": "w", "Type": "String", "Overwrite": true}),
        ),
        (op!(crate::params::delete_parameter), json!({"Name": "/held"})),
        (op!(crate::params::delete_parameters), json!({"Names": ["/held"]})),
        (
            op!(crate::labels::label_parameter_version),
            json!({"Name": "/held", "Labels": ["l"]}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            err(call_at(&e, &c, op, body)).code,
            "AccessDeniedException",
            "operation {i}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    drop(held);
}

/// PutParameter prepares its write on a read snapshot before it takes the writer (see
/// `put_parameter`): concurrent writers of one parameter still get consecutive versions, none
/// lost, each version's value sealed for that version (it decrypts), and the oldest versions
/// dropped past the limit.
#[test]
fn concurrent_writers_of_one_parameter_get_consecutive_versions() {
    let e = env();
    put(&e, "/contended", "v0", "SecureString");
    const THREADS: usize = 4;
    const PUTS: usize = 30;
    let written: Vec<Vec<(i64, String)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let e = &e;
                s.spawn(move || {
                    (0..PUTS)
                        .map(|i| {
                            let value = format!("t{t}-{i}");
                            let out = call(
                                e,
                                op!(crate::params::put_parameter),
                                json!({"Name": "/contended", "Value": value,
                                       "Type": "SecureString", "Overwrite": true}),
                            )
                            .unwrap();
                            (out["Version"].as_i64().unwrap(), value)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut versions: Vec<(i64, String)> = written.into_iter().flatten().collect();
    versions.sort();
    let total = (THREADS * PUTS) as i64;
    assert_eq!(
        versions.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        (2..=total + 1).collect::<Vec<_>>(),
        "every write got its own version, consecutively"
    );
    let latest = get(&e, "/contended");
    assert_eq!(latest["Version"], total + 1);
    assert_eq!(latest["Value"], versions.last().unwrap().1.as_str());
    // The last 100 versions are kept, each with the value written as it.
    for (version, value) in versions.iter().filter(|(v, _)| *v > total + 1 - 100) {
        let p = call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": format!("/contended:{version}"), "WithDecryption": true}),
        )
        .unwrap();
        assert_eq!(p["Parameter"]["Value"], value.as_str(), "version {version}");
    }
    let dropped = total + 1 - 100;
    assert_eq!(
        err(call(
            &e,
            op!(crate::params::get_parameter),
            json!({"Name": format!("/contended:{dropped}")}),
        ))
        .code,
        "ParameterVersionNotFound"
    );
}

/// A write prepared on a snapshot is thrown away when the parameter changed before the write
/// took the writer: here the parameter is deleted in between, so the write creates it anew
/// (version 1) instead of storing the prepared version 2; the audit facts name the one
/// GenerateDataKey call whose data key was stored.
#[test]
fn a_write_prepared_on_a_stale_snapshot_is_worked_out_again() {
    let e = env();
    put(&e, "/stale", "v1", "SecureString");
    // Through the services' store, so that its caches learn of the deletion.
    let mut held = e.services.store().begin_write().unwrap();
    let c = ctx();
    let writer = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            call_at(
                &e,
                &c,
                op!(crate::params::put_parameter),
                json!({"Name": "/stale", "Value": "v2", "Type": "SecureString", "Overwrite": true}),
            )
        });
        // Let the writer prepare on its snapshot and queue for the writer.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let gone: Vec<String> = held
            .scan(&format!("acct/{ACCOUNT}/"), None, 1000)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.contains("stale"))
            .collect();
        assert!(gone.len() >= 2, "the parameter's records: {gone:?}");
        for k in &gone {
            held.delete(k).unwrap();
        }
        held.commit().unwrap();
        handle.join().unwrap()
    })
    .unwrap();
    assert_eq!(writer["Version"], 1);
    let p = get(&e, "/stale");
    assert_eq!(p["Version"], 1);
    assert_eq!(p["Value"], "v2");
    let hops = c.audit.snapshot().hops;
    assert_eq!(hops.len(), 1, "{hops:?}");
    assert_eq!(hops[0].event_name, "GenerateDataKey");
}
