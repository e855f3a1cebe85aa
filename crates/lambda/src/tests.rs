//! Unit tests over an in-memory store: the lifecycle, zip validation, resource-policy
//! statements and the service-principal decision, and the executor running a real Python
//! function with the host's `python3`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;

use tresor_core::functions::{FunctionError, Functions, ServiceInvoke};
use tresor_iam::testing::{ACCOUNT, REGION, TestEnv, ctx};
use tresor_wire::query::QueryParams;

use crate::errors::LambdaError;
use crate::exec::{ExecutorConfig, HttpRoute};
use crate::functions::{create_function, get_function, validate_zip};
use crate::permissions::add_permission;
use crate::shapes::*;

const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, text) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn role(env: &TestEnv, name: &str, trust: &str) -> String {
    let body = form_body(&[
        ("Action", "CreateRole"),
        ("RoleName", name),
        ("AssumeRolePolicyDocument", trust),
    ]);
    let params = QueryParams::parse(body.as_bytes()).unwrap();
    let input = tresor_wire::query::decode(&params).unwrap();
    tresor_iam::api::roles::create_role(&env.services, &ctx(), input).unwrap();
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn create_input(name: &str, role: &str, zip: Vec<u8>, runtime: &str) -> CreateFunctionInput {
    CreateFunctionInput {
        function_name: name.into(),
        runtime: Some(runtime.into()),
        role: role.into(),
        handler: Some("app.handler".into()),
        code: FunctionCode {
            zip_file: Some(opaque::Opaque(zip)),
            ..FunctionCode::default()
        },
        description: None,
        timeout: Some(10),
        memory_size: None,
        publish: None,
        package_type: None,
        environment: None,
        tags: Default::default(),
        architectures: None,
        layers: None,
        vpc_config: None,
    }
}

#[test]
fn zips_are_validated() {
    assert!(validate_zip(&zip_of(&[("app.py", "x = 1")])).is_ok());
    for bad in [b"not a zip".to_vec(), Vec::new(), zip_of(&[])] {
        let e = validate_zip(&bad).err();
        assert!(
            matches!(&e, Some(LambdaError::InvalidParameterValue(m)) if m.starts_with("Could not unzip uploaded file.")),
            "{e:?}"
        );
    }
}

#[test]
fn create_checks_role_runtime_and_duplicates() {
    let env = TestEnv::new(7);
    let good = role(&env, "fn", LAMBDA_TRUST);
    let ec2 = role(&env, "ec2", EC2_TRUST);
    let zip = zip_of(&[("app.py", "def handler(e, c):\n    return e\n")]);
    let cfg = create_function(
        &env.services,
        &ctx(),
        create_input("f1", &good, zip.clone(), "python3.12"),
    )
    .unwrap();
    assert_eq!(
        cfg.function_arn,
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:f1")
    );
    assert_eq!(cfg.code_size, zip.len() as u64);
    let again = create_function(
        &env.services,
        &ctx(),
        create_input("f1", &good, zip.clone(), "python3.12"),
    );
    assert!(matches!(again, Err(LambdaError::ResourceConflict(_))));
    let e = create_function(
        &env.services,
        &ctx(),
        create_input("f2", &ec2, zip.clone(), "python3.12"),
    );
    assert!(
        matches!(&e, Err(LambdaError::InvalidParameterValue(m)) if m == "The role defined for the function cannot be assumed by Lambda."),
        "{e:?}"
    );
    let e = create_function(
        &env.services,
        &ctx(),
        create_input("f3", &good, zip.clone(), "go1.x"),
    );
    assert!(matches!(e, Err(LambdaError::InvalidParameterValue(_))));
    let missing = format!("arn:aws:iam::{ACCOUNT}:role/none");
    let e = create_function(
        &env.services,
        &ctx(),
        create_input("f4", &missing, zip, "python3.12"),
    );
    assert!(matches!(e, Err(LambdaError::InvalidParameterValue(_))));
    let got = get_function(
        &env.services,
        &ctx(),
        GetFunctionInput {
            function_name: "f1".into(),
            qualifier: None,
        },
    )
    .unwrap();
    assert_eq!(got.configuration.runtime, "python3.12");
    // The package is sealed in the store: its text appears nowhere in plaintext.
    let txn = tresor_store::Store::begin_read(&*env.store).unwrap();
    for (_, value) in txn.scan("acct/", None, 10_000).unwrap() {
        assert!(!String::from_utf8_lossy(&value).contains("def handler"));
    }
}

fn permission(
    name: &str,
    sid: &str,
    principal: &str,
    source_arn: Option<&str>,
) -> AddPermissionInput {
    AddPermissionInput {
        function_name: name.into(),
        statement_id: sid.into(),
        action: "lambda:InvokeFunction".into(),
        principal: principal.into(),
        source_arn: source_arn.map(str::to_string),
        source_account: Some(ACCOUNT.into()),
        event_source_token: None,
        qualifier: None,
        revision_id: None,
        principal_org_id: None,
        function_url_auth_type: None,
    }
}

#[test]
fn the_resource_policy_decides_service_invocations() {
    let env = TestEnv::new(8);
    let good = role(&env, "fn", LAMBDA_TRUST);
    let zip = zip_of(&[("app.py", "def handler(e, c):\n    return e\n")]);
    create_function(
        &env.services,
        &ctx(),
        create_input("rot", &good, zip, "python3.12"),
    )
    .unwrap();
    let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:rot");
    let secret = format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-AbCdEf");
    let call = |principal: &'static str, source_arn: &str| {
        crate::LambdaFunctions.check_service_invoke(
            &env.services,
            &ServiceInvoke {
                function_arn: &arn,
                service_principal: principal,
                source_account: ACCOUNT,
                source_arn,
            },
        )
    };
    assert!(matches!(
        call("secretsmanager.amazonaws.com", &secret),
        Err(FunctionError::AccessDenied(_))
    ));
    let out = add_permission(
        &env.services,
        &ctx(),
        permission("rot", "sm", "secretsmanager.amazonaws.com", Some(&secret)),
    )
    .unwrap();
    let stmt: serde_json::Value = serde_json::from_str(&out.statement).unwrap();
    assert_eq!(stmt["Principal"]["Service"], "secretsmanager.amazonaws.com");
    assert_eq!(
        stmt["Condition"]["ArnLike"]["AWS:SourceArn"],
        secret.as_str()
    );
    assert!(call("secretsmanager.amazonaws.com", &secret).is_ok());
    // Another secret, another service: the conditions and the principal do not match.
    let other = format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:other-XyZaBc");
    assert!(matches!(
        call("secretsmanager.amazonaws.com", &other),
        Err(FunctionError::AccessDenied(_))
    ));
    assert!(matches!(
        call("events.amazonaws.com", &secret),
        Err(FunctionError::AccessDenied(_))
    ));
    let dup = add_permission(
        &env.services,
        &ctx(),
        permission("rot", "sm", "secretsmanager.amazonaws.com", None),
    );
    assert!(matches!(dup, Err(LambdaError::ResourceConflict(_))));
    let missing = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:nope");
    let e = crate::LambdaFunctions.check_service_invoke(
        &env.services,
        &ServiceInvoke {
            function_arn: &missing,
            service_principal: "secretsmanager.amazonaws.com",
            source_account: ACCOUNT,
            source_arn: &secret,
        },
    );
    assert!(matches!(e, Err(FunctionError::NotFound(_))));
}

fn install(
    env: TestEnv,
    routes: Vec<HttpRoute>,
) -> (Arc<tresor_core::Services>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let services = Arc::new(env.services);
    crate::install(
        &services,
        ExecutorConfig {
            python: "python3".into(),
            node: "node".into(),
            work_dir: dir.path().join("lambda"),
            endpoint: "http://127.0.0.1:9".into(),
            max_concurrency: 2,
            ca_bundle: None,
            http_routes: routes,
        },
    )
    .unwrap();
    (services, dir)
}

#[test]
fn the_executor_runs_a_python_function_as_a_service_asks() {
    let env = TestEnv::new(9);
    let good = role(&env, "fn", LAMBDA_TRUST);
    let (services, dir) = install(env, Vec::new());
    let src = "import os\ndef handler(event, context):\n    print('log line')\n    if event.get('fail'):\n        raise RuntimeError('nope')\n    return {'twice': event['n'] * 2, 'fn': context.function_name, 'key': os.environ['AWS_ACCESS_KEY_ID'][:4], 'home': os.environ['HOME']}\n";
    let zip = zip_of(&[("app.py", src)]);
    create_function(
        &services,
        &ctx(),
        create_input("run", &good, zip, "python3.12"),
    )
    .unwrap();
    let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:run");
    let secret = format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:s-AbCdEf");
    add_permission(
        &services,
        &ctx(),
        permission("run", "sm", "secretsmanager.amazonaws.com", None),
    )
    .unwrap();
    let call = ServiceInvoke {
        function_arn: &arn,
        service_principal: "secretsmanager.amazonaws.com",
        source_account: ACCOUNT,
        source_arn: &secret,
    };
    let out = services
        .functions()
        .unwrap()
        .invoke_as_service(&services, &call, br#"{"n": 21}"#)
        .unwrap();
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["twice"], 42);
    assert_eq!(out["fn"], "run");
    assert_eq!(out["key"], "ASIA");
    let home = std::path::PathBuf::from(out["home"].as_str().unwrap());
    assert!(home.starts_with(dir.path()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("lambda"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let failed =
        services
            .functions()
            .unwrap()
            .invoke_as_service(&services, &call, br#"{"fail": true}"#);
    assert!(
        matches!(&failed, Err(FunctionError::Failed { error_type, error_message }) if error_type == "RuntimeError" && error_message == "nope"),
        "{failed:?}"
    );
}

#[test]
fn an_unreachable_http_route_is_a_service_exception() {
    let env = TestEnv::new(10);
    let good = role(&env, "fn", LAMBDA_TRUST);
    let (services, _dir) = install(
        env,
        vec![HttpRoute {
            function: None,
            runtime: Some("python3.11".into()),
            url: "http://127.0.0.1:9".into(),
        }],
    );
    let zip = zip_of(&[("app.py", "def handler(e, c):\n    return 1\n")]);
    create_function(
        &services,
        &ctx(),
        create_input("h", &good, zip, "python3.11"),
    )
    .unwrap();
    let out = crate::invoke::invoke(
        &services,
        &ctx(),
        InvokeInput {
            function_name: "h".into(),
            invocation_type: None,
            log_type: None,
            client_context: None,
            qualifier: None,
            payload: None,
        },
    );
    assert!(matches!(out, Err(LambdaError::Service(_))), "{out:?}");
}

#[test]
fn invocations_beyond_the_bound_are_refused_and_timeouts_kill() {
    let env = TestEnv::new(11);
    let good = role(&env, "fn", LAMBDA_TRUST);
    let (services, _dir) = install(env, Vec::new());
    let src = "import time\ndef handler(event, context):\n    time.sleep(event['s'])\n    return 'done'\n";
    let mut input = create_input("slow", &good, zip_of(&[("app.py", src)]), "python3.12");
    input.timeout = Some(1);
    create_function(&services, &ctx(), input).unwrap();
    let invoke = |payload: &[u8]| {
        crate::invoke::invoke(
            &services,
            &ctx(),
            InvokeInput {
                function_name: "slow".into(),
                invocation_type: None,
                log_type: Some("Tail".into()),
                client_context: None,
                qualifier: None,
                payload: Some(opaque::Opaque(payload.to_vec())),
            },
        )
    };
    std::thread::scope(|s| {
        // The bound is 2 (see `install`): two running, the third is refused.
        let a = s.spawn(|| invoke(br#"{"s": 5}"#));
        let b = s.spawn(|| invoke(br#"{"s": 5}"#));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let c = invoke(br#"{"s": 0}"#);
        assert!(matches!(c, Err(LambdaError::TooManyRequests(_))), "{c:?}");
        for t in [a, b] {
            let out = t.join().unwrap().unwrap();
            assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
            let payload: serde_json::Value =
                serde_json::from_slice(&out.payload.unwrap().0).unwrap();
            let message = payload["errorMessage"].as_str().unwrap();
            assert!(
                message.ends_with(" req Task timed out after 1.00 seconds"),
                "{message}"
            );
        }
    });
    // The slots are free again.
    let ok = invoke(br#"{"s": 0}"#).unwrap();
    assert_eq!(ok.payload.unwrap().0, b"\"done\"".to_vec());
}
