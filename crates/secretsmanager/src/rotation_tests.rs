//! Unit tests of the rotation state machine.
//!
//! The rotation function here is a TEST DOUBLE of [`tresor_core::Functions`] — acceptable
//! only at this layer: it performs the steps of AWS's single-user rotation template through
//! the real, typed Secrets Manager handlers (DescribeSecret, GetSecretValue,
//! GetRandomPassword, PutSecretValue, UpdateSecretVersionStage). The end-to-end tests with a
//! real Lambda function, deployed with the AWS CLI, are in `compat/test_rotation.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tresor_core::{Caller, FunctionError, Functions, RequestCtx, ServiceInvoke, Services, record};
use tresor_crypto::RootKey;
use tresor_store::MemoryStore;

use crate::model::{RotationJob, RotationKind, SecretRecord, keys};
use crate::rotation::{self, RotateSecretInput};
use crate::rotation_run::{self, Runner};
use crate::{password, secrets, versions};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";
const LAMBDA: &str = "arn:aws:lambda:eu-west-1:111122223333:function:rotator";

fn ctx() -> RequestCtx {
    RequestCtx {
        request_id: "test".into(),
        region: REGION.into(),
        now: OffsetDateTime::now_utc(),
        source_ip: None,
        secure_transport: true,
        caller: std::sync::Arc::new(Caller::root(ACCOUNT, "AKIAEXAMPLE")),
        deferred: Default::default(),
        audit: Default::default(),
    }
}

fn input<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("input")
}

/// A rotation function following AWS's single-user template, step by step.
#[derive(Default)]
struct TemplateFunction {
    calls: Mutex<Vec<String>>,
    fail_at: Mutex<Option<&'static str>>,
    deny: AtomicBool,
    skip_finish: AtomicBool,
    /// Milliseconds each step takes (to interleave with readers).
    step_ms: Mutex<u64>,
}

fn failed(message: &str) -> FunctionError {
    FunctionError::Failed {
        error_type: "ValueError".into(),
        error_message: message.into(),
    }
}

impl TemplateFunction {
    fn run(&self, services: &Services, event: &serde_json::Value) -> Result<(), FunctionError> {
        let step = event["Step"].as_str().unwrap_or_default();
        let arn = event["SecretId"].as_str().unwrap_or_default().to_string();
        let token = event["ClientRequestToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            event["RotationToken"]
                .as_str()
                .is_some_and(|t| t.len() >= 36)
        );
        self.calls.lock().push(step.to_string());
        std::thread::sleep(std::time::Duration::from_millis(*self.step_ms.lock()));
        if *self.fail_at.lock() == Some(step) {
            return Err(failed("step failed on purpose"));
        }
        let c = ctx();
        let meta = secrets::describe_secret(services, &c, input(json!({"SecretId": &arn})))
            .map_err(|e| failed(&e.to_string()))?;
        assert_eq!(
            meta.rotation_enabled,
            Some(true),
            "the template checks RotationEnabled"
        );
        let stages = meta.version_ids_to_stages.unwrap_or_default();
        let Some(labels) = stages.get(&token) else {
            return Err(failed("the version has no stage for rotation"));
        };
        if labels.iter().any(|l| l == "AWSCURRENT") {
            return Ok(());
        }
        if !labels.iter().any(|l| l == "AWSPENDING") {
            return Err(failed("the version is not pending"));
        }
        match step {
            "createSecret" => {
                versions::get_secret_value(services, &c, input(json!({"SecretId": &arn})))
                    .map_err(|e| failed(&e.to_string()))?;
                let pending = versions::get_secret_value(
                    services,
                    &c,
                    input(
                        json!({"SecretId": &arn, "VersionId": &token, "VersionStage": "AWSPENDING"}),
                    ),
                );
                if pending.is_ok() {
                    return Ok(());
                }
                let pw = password::get_random_password(
                    services,
                    &c,
                    input(json!({"ExcludeCharacters": "/@\"'\\"})),
                )
                .map_err(|e| failed(&e.to_string()))?;
                let pw = pw.random_password.expect("password").expose().to_string();
                versions::put_secret_value(
                    services,
                    &c,
                    input(json!({"SecretId": &arn, "ClientRequestToken": &token, "SecretString": pw, "VersionStages": ["AWSPENDING"]})),
                )
                .map_err(|e| failed(&e.to_string()))?;
            }
            "finishSecret" if !self.skip_finish.load(Ordering::SeqCst) => {
                let current = stages
                    .iter()
                    .find(|(_, l)| l.iter().any(|l| l == "AWSCURRENT"))
                    .map(|(id, _)| id.clone());
                versions::update_secret_version_stage(
                    services,
                    &c,
                    input(json!({"SecretId": &arn, "VersionStage": "AWSCURRENT", "MoveToVersionId": &token, "RemoveFromVersionId": current})),
                )
                .map_err(|e| failed(&e.to_string()))?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl Functions for TemplateFunction {
    fn check_service_invoke(
        &self,
        _: &Services,
        call: &ServiceInvoke<'_>,
    ) -> Result<(), FunctionError> {
        assert_eq!(call.service_principal, "secretsmanager.amazonaws.com");
        assert_eq!(call.source_account, ACCOUNT);
        if self.deny.load(Ordering::SeqCst) {
            return Err(FunctionError::AccessDenied(call.function_arn.into()));
        }
        Ok(())
    }

    fn invoke_as_service(
        &self,
        services: &Services,
        call: &ServiceInvoke<'_>,
        payload: &[u8],
    ) -> Result<Vec<u8>, FunctionError> {
        self.check_service_invoke(services, call)?;
        let event: serde_json::Value = serde_json::from_slice(payload).expect("event");
        assert_eq!(event["SecretId"].as_str(), Some(call.source_arn));
        self.run(services, &event).map(|()| b"null".to_vec())
    }
}

struct Fixture {
    services: Arc<Services>,
    function: Arc<TemplateFunction>,
}

fn fixture() -> Fixture {
    let root = RootKey::from_bytes(&[5u8; 32]).expect("root key");
    let services = Arc::new(Services::new(
        Arc::new(MemoryStore::new()),
        Arc::new(root),
        Arc::new(tresor_iam::IamDirectory),
    ));
    let function = Arc::new(TemplateFunction::default());
    services.set_functions(function.clone());
    secrets::create_secret(
        &services,
        &ctx(),
        input(json!({"Name": "db", "SecretString": "v0"})),
    )
    .expect("create");
    Fixture { services, function }
}

impl Fixture {
    fn rotate(&self, extra: serde_json::Value) -> Result<String, crate::SecretsManagerError> {
        let mut body = json!({"SecretId": "db", "RotationLambdaARN": LAMBDA});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let out =
            rotation::rotate_secret(&self.services, &ctx(), input::<RotateSecretInput>(body))?;
        Ok(out.version_id.expect("version id"))
    }

    fn record(&self) -> SecretRecord {
        let txn = self.services.store().begin_read().expect("read");
        record::get(&*txn, &keys::secret(ACCOUNT, REGION, "db"))
            .expect("get")
            .expect("secret")
    }

    fn job(&self) -> Option<(String, RotationJob)> {
        let key = self.record().rotation_job?;
        let txn = self.services.store().begin_read().expect("read");
        let job = record::get(&*txn, &key).expect("get")?;
        Some((key, job))
    }

    fn run_job(&self) {
        let (key, _) = self.job().expect("a job");
        rotation_run::run_job(&self.services, &key);
    }

    fn current(&self) -> String {
        let v =
            versions::get_secret_value(&self.services, &ctx(), input(json!({"SecretId": "db"})))
                .expect("get");
        v.secret_string.expect("string").expose().to_string()
    }
}

#[test]
fn rotate_secret_creates_an_empty_pending_version_and_the_steps_move_the_labels() {
    let f = fixture();
    let old = f.record().holder_of("AWSCURRENT").unwrap().to_string();
    let token = f
        .rotate(json!({"RotationRules": {"AutomaticallyAfterDays": 30}}))
        .expect("rotate");
    // Before any step: the version exists with AWSPENDING and no value.
    let rec = f.record();
    assert_eq!(rec.versions[&token].stages, vec!["AWSPENDING"]);
    assert!(!rec.versions[&token].has_value);
    assert_eq!(rec.rotation_enabled, Some(true));
    let err = versions::get_secret_value(
        &f.services,
        &ctx(),
        input(json!({"SecretId": "db", "VersionId": &token, "VersionStage": "AWSPENDING"})),
    )
    .err()
    .unwrap_or_else(|| panic!("no value yet"));
    assert_eq!(err.code(), "ResourceNotFoundException");
    assert_eq!(
        err.message(),
        Some("Secrets Manager can't find the specified secret value for staging label: AWSPENDING")
    );
    let (_, job) = f.job().expect("job");
    assert_eq!(job.kind, RotationKind::Rotate);

    f.run_job();
    assert_eq!(*f.function.calls.lock(), rotation_run::STEPS.to_vec());
    let rec = f.record();
    assert_eq!(rec.holder_of("AWSCURRENT"), Some(token.as_str()));
    assert_eq!(rec.holder_of("AWSPENDING"), Some(token.as_str()));
    assert_eq!(rec.holder_of("AWSPREVIOUS"), Some(old.as_str()));
    assert_ne!(f.current(), "v0");
    let last = rec.last_rotated.expect("LastRotatedDate");
    let next = rec.next_rotation.expect("NextRotationDate");
    assert_eq!(next.date(), (last + Duration::days(30)).date());
    let (key, job) = f.job().expect("the next scheduled rotation");
    assert_eq!(job.kind, RotationKind::Scheduled);
    let window = rotation::unix_ms((last + Duration::days(30)).replace_time(time::Time::MIDNIGHT));
    let (due, _) = rotation_run::parse_key(&key).expect("key");
    assert!(
        due >= window && due <= window + 2 * 3_600_000,
        "started early in the window"
    );

    // A completed rotation (AWSPENDING on the current version) does not block the next one.
    let second = f.rotate(json!({})).expect("rotate again");
    f.run_job();
    let rec = f.record();
    assert_eq!(rec.holder_of("AWSCURRENT"), Some(second.as_str()));
    assert_eq!(rec.holder_of("AWSPREVIOUS"), Some(token.as_str()));
}

#[test]
fn an_incomplete_rotation_blocks_a_new_one_and_is_reattempted() {
    let f = fixture();
    *f.function.fail_at.lock() = Some("setSecret");
    let token = f.rotate(json!({})).expect("rotate");
    f.run_job();
    let rec = f.record();
    // The failure leaves AWSPENDING in place, on a version createSecret filled.
    assert_eq!(rec.holder_of("AWSPENDING"), Some(token.as_str()));
    assert!(rec.versions[&token].has_value);
    assert_eq!(f.current(), "v0");
    let (key, job) = f.job().expect("a retry");
    assert_eq!((job.attempts, job.next_step), (1, 0));
    assert!(
        key > keys::rotation_job(
            rotation::unix_ms(OffsetDateTime::now_utc()),
            ACCOUNT,
            REGION,
            "db"
        )
    );

    let err = f.rotate(json!({})).expect_err("blocked");
    assert_eq!(err.code(), "InvalidRequestException");
    assert_eq!(
        err.message(),
        Some("A previous rotation isn't complete. That rotation will be reattempted.")
    );
    // The same token again is a retried request, not an error.
    assert_eq!(
        f.rotate(json!({"ClientRequestToken": &token}))
            .expect("replay"),
        token
    );

    // The retry rotates to the same version, from createSecret (which finds its value).
    *f.function.fail_at.lock() = None;
    f.function.calls.lock().clear();
    f.run_job();
    assert_eq!(*f.function.calls.lock(), rotation_run::STEPS.to_vec());
    assert_eq!(f.record().holder_of("AWSCURRENT"), Some(token.as_str()));
    assert!(f.job().is_none(), "no schedule, no further job");
}

#[test]
fn retries_stop_after_the_last_backoff_and_a_schedule_reattempts() {
    let f = fixture();
    *f.function.fail_at.lock() = Some("createSecret");
    let token = f
        .rotate(json!({"RotationRules": {"ScheduleExpression": "rate(10 days)"}}))
        .unwrap();
    for attempt in 1..=rotation_run::MAX_RETRIES {
        f.run_job();
        assert_eq!(f.job().unwrap().1.attempts, attempt);
        assert_eq!(f.job().unwrap().1.kind, RotationKind::Rotate);
    }
    f.run_job();
    let (_, job) = f.job().expect("the next window");
    assert_eq!((job.kind, job.attempts), (RotationKind::Scheduled, 0));
    // The scheduled run picks the incomplete rotation's version.
    *f.function.fail_at.lock() = None;
    f.run_job();
    assert_eq!(f.record().holder_of("AWSCURRENT"), Some(token.as_str()));
    assert_eq!(rotation_run::backoff(1), Duration::minutes(1));
    assert_eq!(rotation_run::backoff(5), Duration::minutes(16));
}

#[test]
fn a_function_secrets_manager_may_not_invoke_is_refused_before_anything_is_written() {
    let f = fixture();
    f.function.deny.store(true, Ordering::SeqCst);
    let err = f.rotate(json!({})).expect_err("denied");
    assert_eq!(err.code(), "AccessDeniedException");
    assert_eq!(
        err.message(),
        Some(
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com."
        )
    );
    let rec = f.record();
    assert_eq!(rec.versions.len(), 1);
    assert!(rec.rotation_enabled.is_none() && rec.rotation_job.is_none());
}

#[test]
fn configuration_errors_use_aws_errors() {
    let f = fixture();
    let no_lambda = rotation::rotate_secret(&f.services, &ctx(), input(json!({"SecretId": "db"})))
        .expect_err("no lambda");
    assert_eq!(no_lambda.code(), "InvalidRequestException");
    assert_eq!(
        no_lambda.message(),
        Some("No Lambda rotation function ARN is associated with this secret.")
    );
    for rules in [
        json!({"ScheduleExpression": "rate(2 hours)"}),
        json!({"ScheduleExpression": "cron(0 10 * * * *)"}),
        json!({"ScheduleExpression": "rate(4 hours)", "Duration": "5h"}),
        json!({"AutomaticallyAfterDays": 3, "ScheduleExpression": "rate(3 days)"}),
    ] {
        let e = f
            .rotate(json!({"RotationRules": rules}))
            .expect_err("refused");
        assert_eq!(e.code(), "InvalidParameterException", "{rules}");
    }
    let e = f
        .rotate(json!({"RotationRules": {"AutomaticallyAfterDays": 0}}))
        .err()
        .unwrap();
    assert_eq!(e.code(), "ValidationException");
    assert!(f.record().rotation_job.is_none());
    let missing = rotation::rotate_secret(
        &f.services,
        &ctx(),
        input(json!({"SecretId": "nope", "RotationLambdaARN": LAMBDA})),
    )
    .err()
    .unwrap();
    assert_eq!(missing.code(), "ResourceNotFoundException");
}

#[test]
fn rotate_immediately_false_runs_only_the_test_step_and_removes_the_placeholder() {
    let f = fixture();
    let token = f
        .rotate(json!({"RotateImmediately": false, "RotationRules": {"ScheduleExpression": "cron(0 10 * * ? *)"}}))
        .unwrap();
    assert_eq!(f.record().holder_of("AWSPENDING"), Some(token.as_str()));
    f.run_job();
    assert_eq!(*f.function.calls.lock(), vec!["testSecret"]);
    let rec = f.record();
    assert!(
        !rec.versions.contains_key(&token),
        "the placeholder is gone"
    );
    assert!(rec.holder_of("AWSPENDING").is_none());
    assert!(rec.last_rotated.is_none());
    let next = rec.next_rotation.expect("NextRotationDate");
    assert_eq!((next.hour(), next.minute()), (23, 59));
    assert_eq!(f.job().unwrap().1.kind, RotationKind::Scheduled);
}

#[test]
fn a_function_that_does_not_move_awscurrent_fails_the_rotation() {
    let f = fixture();
    f.function.skip_finish.store(true, Ordering::SeqCst);
    let token = f.rotate(json!({})).unwrap();
    f.run_job();
    let rec = f.record();
    assert_ne!(rec.holder_of("AWSCURRENT"), Some(token.as_str()));
    assert!(rec.last_rotated.is_none());
    assert_eq!(f.job().unwrap().1.attempts, 1);
}

#[test]
fn cancel_and_delete_remove_the_job_and_a_running_rotation_stops() {
    let f = fixture();
    let token = f
        .rotate(json!({"RotationRules": {"AutomaticallyAfterDays": 7}}))
        .unwrap();
    let out = rotation::cancel_rotate_secret(&f.services, &ctx(), input(json!({"SecretId": "db"})))
        .unwrap();
    assert_eq!(out.version_id.as_deref(), Some(token.as_str()));
    let rec = f.record();
    assert_eq!(rec.rotation_enabled, Some(false));
    assert!(rec.rotation_job.is_none() && rec.next_rotation.is_none());
    assert!(rec.rotation_rules.is_some(), "the rules are kept");
    let txn = f.services.store().begin_read().unwrap();
    assert!(
        txn.scan(keys::ROTATION_JOBS_PREFIX, None, 10)
            .unwrap()
            .is_empty()
    );
    drop(txn);
    // The labels stay: the cancelled rotation blocks a new one until AWSPENDING is removed.
    assert_eq!(
        f.rotate(json!({})).err().unwrap().code(),
        "InvalidRequestException"
    );

    let g = fixture();
    g.rotate(json!({"RotationRules": {"AutomaticallyAfterDays": 7}}))
        .unwrap();
    crate::deletion::delete_secret(
        &g.services,
        &ctx(),
        input(json!({"SecretId": "db", "RecoveryWindowInDays": 7})),
    )
    .unwrap();
    let txn = g.services.store().begin_read().unwrap();
    assert!(
        txn.scan(keys::ROTATION_JOBS_PREFIX, None, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_interrupted_rotation_resumes_after_the_last_completed_step() {
    let f = fixture();
    let token = f.rotate(json!({})).unwrap();
    // As if the server stopped during setSecret, after createSecret completed.
    *f.function.fail_at.lock() = Some("setSecret");
    f.run_job();
    let (key, mut job) = f.job().unwrap();
    job.next_step = 1;
    job.attempts = 0;
    {
        let mut txn = f.services.store().begin_write().unwrap();
        record::put(&mut *txn, &key, &job).unwrap();
        txn.commit().unwrap();
    }
    *f.function.fail_at.lock() = None;
    f.function.calls.lock().clear();
    rotation_run::run_job(&f.services, &key);
    assert_eq!(
        *f.function.calls.lock(),
        vec!["setSecret", "testSecret", "finishSecret"]
    );
    assert_eq!(f.record().holder_of("AWSCURRENT"), Some(token.as_str()));
}

#[test]
fn readers_see_the_old_value_until_finish_and_the_new_one_after() {
    let f = fixture();
    *f.function.step_ms.lock() = 20;
    f.rotate(json!({})).unwrap();
    let runner = Arc::new(Runner::new(2));
    let next = rotation_run::dispatch(&f.services, &runner, OffsetDateTime::now_utc()).unwrap();
    assert!(next.is_none());
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    loop {
        let v = f.current();
        if seen.last() != Some(&v) {
            seen.push(v);
        }
        if runner.running() == 0 || started.elapsed() > std::time::Duration::from_secs(10) {
            break;
        }
    }
    seen.dedup();
    let last = f.current();
    if seen.last() != Some(&last) {
        seen.push(last);
    }
    assert_eq!(seen.len(), 2, "old then new, nothing else: {}", seen.len());
    assert_eq!(seen[0], "v0");
}

#[test]
fn several_secrets_rotate_concurrently_within_the_bound() {
    let f = fixture();
    for name in ["a", "b", "c"] {
        secrets::create_secret(
            &f.services,
            &ctx(),
            input(json!({"Name": name, "SecretString": "x"})),
        )
        .unwrap();
        rotation::rotate_secret(
            &f.services,
            &ctx(),
            input(json!({"SecretId": name, "RotationLambdaARN": LAMBDA})),
        )
        .unwrap();
    }
    *f.function.step_ms.lock() = 30;
    let runner = Arc::new(Runner::new(2));
    rotation_run::dispatch(&f.services, &runner, OffsetDateTime::now_utc()).unwrap();
    assert_eq!(runner.running(), 2, "bounded");
    let started = std::time::Instant::now();
    while runner.running() > 0 || f.function.calls.lock().len() < 12 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        f.services
            .job_wakeup()
            .wait(std::time::Duration::from_millis(50));
        rotation_run::dispatch(&f.services, &runner, OffsetDateTime::now_utc()).unwrap();
    }
    assert_eq!(f.function.calls.lock().len(), 12);
}

#[test]
fn a_value_stored_by_hand_counts_as_a_rotation_for_the_schedule() {
    let f = fixture();
    f.rotate(json!({"RotateImmediately": false, "RotationRules": {"AutomaticallyAfterDays": 10}}))
        .unwrap();
    f.run_job();
    let (before, _) = f.job().expect("scheduled");
    // Tomorrow, a value is put by hand: the next window moves to ten days after it.
    let tomorrow = OffsetDateTime::now_utc() + Duration::days(1);
    let mut c = ctx();
    c.now = tomorrow;
    versions::put_secret_value(
        &f.services,
        &c,
        input(json!({"SecretId": "db", "SecretString": "by hand"})),
    )
    .unwrap();
    let (after, job) = f.job().expect("rescheduled");
    assert_eq!(job.kind, RotationKind::Scheduled);
    assert!(after > before);
    let next = f.record().next_rotation.unwrap();
    assert_eq!(next.date(), (tomorrow + Duration::days(10)).date());
    // A value staged AWSPENDING (a rotation function's createSecret) does not count.
    versions::put_secret_value(
        &f.services,
        &ctx(),
        input(json!({"SecretId": "db", "SecretString": "p", "VersionStages": ["AWSPENDING"]})),
    )
    .unwrap();
    assert_eq!(f.job().unwrap().0, after);
}
