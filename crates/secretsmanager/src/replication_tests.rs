//! Replication jobs: one coalescing job per replica, run in order, idempotent, never
//! backwards, surviving a restart (a second kernel over the same store), and a failure that
//! leaves the replica as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a failed test

use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use tresor_core::{Caller, RequestCtx, Services, record};
use tresor_crypto::RootKey;
use tresor_store::MemoryStore;

use crate::model::{ReplicationJob, SecretRecord, keys};
use crate::replication_sync::{ReplicaUpdate, apply_peer_update, run_due};

const ACCOUNT: &str = "111122223333";
const A: &str = "us-east-1";
const B: &str = "eu-west-1";

fn services(store: Arc<MemoryStore>) -> Services {
    let root = RootKey::from_bytes(&[7u8; 32]).expect("root key");
    Services::new(store, Arc::new(root), Arc::new(tresor_iam::IamDirectory))
}

fn ctx(region: &str) -> RequestCtx {
    RequestCtx {
        request_id: "test".into(),
        region: region.into(),
        now: OffsetDateTime::now_utc(),
        source_ip: None,
        secure_transport: true,
        caller: std::sync::Arc::new(Caller::root(ACCOUNT, "AKIAEXAMPLE")),
        deferred: Default::default(),
        audit: Default::default(),
    }
}

fn call<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> T {
    serde_json::from_value(body).expect("input")
}

fn jobs(s: &Services) -> Vec<ReplicationJob> {
    let txn = s.store().begin_read().expect("read");
    record::scan::<ReplicationJob>(&*txn, keys::REPLICATION_JOBS_PREFIX, None, 100)
        .expect("scan")
        .into_iter()
        .map(|(_, j)| j)
        .collect()
}

fn secret(s: &Services, region: &str, name: &str) -> Option<SecretRecord> {
    let txn = s.store().begin_read().expect("read");
    record::get(&*txn, &keys::secret(ACCOUNT, region, name)).expect("get")
}

fn value(s: &Services, region: &str, name: &str) -> String {
    let v = crate::versions::get_secret_value(s, &ctx(region), call(json!({"SecretId": name})))
        .expect("get value");
    v.secret_string.expect("string").expose().to_string()
}

fn put(s: &Services, name: &str, v: &str) {
    crate::versions::put_secret_value(
        s,
        &ctx(A),
        call(json!({"SecretId": name, "SecretString": v})),
    )
    .expect("put");
}

#[test]
fn changes_coalesce_into_one_job_that_catches_up_in_order_once() {
    let s = services(Arc::new(MemoryStore::new()));
    crate::secrets::create_secret(
        &s,
        &ctx(A),
        call(json!({"Name": "n", "SecretString": "v1", "AddReplicaRegions": [{"Region": B}]})),
    )
    .expect("create");
    put(&s, "n", "v2");
    put(&s, "n", "v3");
    let queued = jobs(&s);
    assert_eq!(queued.len(), 1, "one job per replica region");
    let primary = secret(&s, A, "n").expect("primary");
    assert_eq!(queued[0].seq, primary.repl_seq);
    assert_eq!(
        primary.repl_seq, 3,
        "every saved change raised the sequence"
    );
    assert!(
        secret(&s, B, "n").is_none(),
        "nothing replicated before the worker runs"
    );

    assert_eq!(run_due(&s, OffsetDateTime::now_utc()).expect("run"), 1);
    let replica = secret(&s, B, "n").expect("replica");
    assert_eq!(replica.repl_seq, 3);
    assert_eq!(replica.primary_region.as_deref(), Some(A));
    assert_eq!(value(&s, B, "n"), "v3");
    assert_eq!(
        replica.versions.len(),
        3,
        "every version, labels as on the primary"
    );
    assert_eq!(replica.version_stages(), primary.version_stages());
    assert!(jobs(&s).is_empty());
    let st = &secret(&s, A, "n").expect("primary").replication_status[0];
    assert_eq!((st.status.as_str(), st.synced_seq), ("InSync", 3));
    // Nothing left: a second round does nothing, and the status write queued nothing.
    assert_eq!(run_due(&s, OffsetDateTime::now_utc()).expect("run"), 0);
}

#[test]
fn a_job_left_in_the_store_runs_after_a_restart_and_a_repeat_changes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let first = services(store.clone());
    crate::secrets::create_secret(
        &first,
        &ctx(A),
        call(json!({"Name": "n", "SecretString": "v1", "AddReplicaRegions": [{"Region": B}]})),
    )
    .expect("create");
    let job_key = keys::replication_job(ACCOUNT, A, B, "n");
    let stale = first.store().begin_read().unwrap().get(&job_key).unwrap();
    drop(first);
    // "Restart": a new kernel over the same store finds and runs the job.
    let second = services(store);
    assert_eq!(run_due(&second, OffsetDateTime::now_utc()).expect("run"), 1);
    assert_eq!(value(&second, B, "n"), "v1");
    let before = secret(&second, B, "n").expect("replica");
    // A crash between the replica's commit and the job's removal would leave the job: running
    // it again is harmless.
    {
        let mut txn = second.store().begin_write().unwrap();
        txn.put(&job_key, &stale.expect("job")).unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(run_due(&second, OffsetDateTime::now_utc()).expect("run"), 1);
    let after = secret(&second, B, "n").expect("replica");
    assert_eq!(after.repl_seq, before.repl_seq);
    assert_eq!(after.versions.len(), before.versions.len());
    assert!(jobs(&second).is_empty());
}

fn create_key(s: &Services, region: &str) -> String {
    let out =
        tresor_kms::ops::keys::create_key(s, &ctx(region), call(json!({}))).expect("create key");
    out.key_metadata.key_id.clone()
}

fn set_key_enabled(s: &Services, region: &str, key: &str, enabled: bool) {
    let input = call(json!({ "KeyId": key }));
    if enabled {
        tresor_kms::ops::keys::enable_key(s, &ctx(region), input).expect("enable");
    } else {
        tresor_kms::ops::keys::disable_key(s, &ctx(region), input).expect("disable");
    }
}

/// A version id of the length the model requires (32–64).
fn vid(short: &str) -> String {
    format!("{short:0>32}")
}

fn update(seq: u64, value: &str, version: &str) -> ReplicaUpdate {
    serde_json::from_value(json!({
        "PrimaryArn": format!("arn:aws:secretsmanager:{A}:{ACCOUNT}:secret:n-AbCdEf"),
        "Name": "n",
        "PrimaryRegion": A,
        "Seq": seq,
        "CreatedDate": 1_700_000_000,
        "LastChangedDate": 1_700_000_000,
        "Versions": [{"VersionId": version, "VersionStages": ["AWSCURRENT"],
                      "CreatedDate": 1_700_000_000, "HasValue": true, "SecretString": value}],
    }))
    .expect("update")
}

#[test]
fn a_peer_replica_never_goes_backwards_and_repeats_are_no_ops() {
    let s = services(Arc::new(MemoryStore::new()));
    let newer = update(5, "new", &vid("v5"));
    assert_eq!(
        apply_peer_update(&s, &ctx(B), newer)
            .expect("apply")
            .outcome,
        "Synced"
    );
    assert_eq!(value(&s, B, "n"), "new");
    // An older update arriving late (a retry overtaken by a newer one) changes nothing.
    let out = apply_peer_update(&s, &ctx(B), update(4, "old", &vid("v4"))).expect("apply");
    assert_eq!((out.outcome.as_str(), out.seq), ("Synced", 5));
    assert_eq!(value(&s, B, "n"), "new");
    // The same update twice: the second is a no-op.
    let out = apply_peer_update(&s, &ctx(B), update(5, "new", &vid("v5"))).expect("apply");
    assert_eq!(out.seq, 5);
    assert_eq!(secret(&s, B, "n").expect("replica").versions.len(), 1);
    // A newer one moves it forward, dropping versions the primary no longer has.
    apply_peer_update(&s, &ctx(B), update(6, "newest", &vid("v6"))).expect("apply");
    let replica = secret(&s, B, "n").expect("replica");
    assert_eq!(value(&s, B, "n"), "newest");
    assert_eq!(replica.versions.keys().collect::<Vec<_>>(), [&vid("v6")]);
    // The replica is read-only for everyone else.
    let err = crate::versions::put_secret_value(
        &s,
        &ctx(B),
        call(json!({"SecretId": "n", "SecretString": "x"})),
    )
    .err()
    .expect("refused");
    assert_eq!(err.code(), "InvalidParameterException");
}

#[test]
fn an_update_for_another_account_or_its_own_region_is_refused() {
    let s = services(Arc::new(MemoryStore::new()));
    let mut u = update(1, "v", &vid("v1"));
    u.primary_arn = u.primary_arn.replace(ACCOUNT, "999988887777");
    assert!(apply_peer_update(&s, &ctx(B), u).is_err());
    assert!(apply_peer_update(&s, &ctx(A), update(1, "v", &vid("v1"))).is_err());
    assert!(secret(&s, B, "n").is_none() && secret(&s, A, "n").is_none());
    // Nor may a "peer" update override a replica whose primary this deployment holds.
    let created = crate::secrets::create_secret(
        &s,
        &ctx(A),
        call(json!({"Name": "n", "SecretString": "real", "AddReplicaRegions": [{"Region": B}]})),
    )
    .expect("create");
    run_due(&s, OffsetDateTime::now_utc()).expect("run");
    let mut forged = update(u64::MAX, "forged", &vid("f"));
    forged.primary_arn = created.arn;
    let err = apply_peer_update(&s, &ctx(B), forged)
        .err()
        .expect("refused");
    assert_eq!(err.code(), "InvalidRequestException");
    assert_eq!(value(&s, B, "n"), "real");
}

#[test]
fn a_failed_run_leaves_the_replica_as_it_was_and_backs_off() {
    let s = services(Arc::new(MemoryStore::new()));
    let key = create_key(&s, B);
    crate::secrets::create_secret(
        &s,
        &ctx(A),
        call(json!({"Name": "n", "SecretString": "v1",
                    "AddReplicaRegions": [{"Region": B, "KmsKeyId": key}]})),
    )
    .expect("create");
    run_due(&s, OffsetDateTime::now_utc()).expect("run");
    assert_eq!(value(&s, B, "n"), "v1");
    set_key_enabled(&s, B, &key, false);
    put(&s, "n", "v2");
    let now = OffsetDateTime::now_utc();
    assert_eq!(run_due(&s, now).expect("run"), 0);
    let replica = secret(&s, B, "n").expect("replica");
    assert_eq!(replica.repl_seq, 1, "the replica kept its state");
    assert_eq!(replica.versions.len(), 1);
    let st = secret(&s, A, "n").expect("primary").replication_status[0].clone();
    assert_eq!(st.status, "Failed");
    let job = jobs(&s).pop().expect("job kept");
    assert_eq!(job.attempts, 1);
    assert!(job.retry_after.is_some_and(|t| t > now));
    // Not due yet: nothing runs; once the key is back and the backoff passed, it catches up.
    assert_eq!(run_due(&s, now).expect("run"), 0);
    set_key_enabled(&s, B, &key, true);
    assert_eq!(
        run_due(&s, now + time::Duration::seconds(5)).expect("run"),
        1
    );
    let replica = secret(&s, B, "n").expect("replica");
    assert_eq!(replica.repl_seq, 2);
    let lag = crate::replication_sync::lag_snapshot(&s);
    let entry = lag.iter().find(|l| l.region == B).expect("lag entry");
    assert_eq!((entry.status.as_str(), entry.failures), ("InSync", 1));
    assert!(entry.last_lag_ms.is_some() && entry.pending_ms.is_none());
}

/// Two processes on one store (nodes of a cluster): the one that saw the replica fail reports
/// it in sync once the other has caught it up — the status is the store's, not a process's
/// last observation.
#[test]
fn the_reported_status_is_the_stores_when_another_node_caught_the_replica_up() {
    let store = Arc::new(MemoryStore::new());
    let (a, b) = (services(store.clone()), services(store));
    let key = create_key(&a, B);
    crate::secrets::create_secret(
        &a,
        &ctx(A),
        call(json!({"Name": "n", "SecretString": "v1",
                    "AddReplicaRegions": [{"Region": B, "KmsKeyId": key}]})),
    )
    .expect("create");
    run_due(&a, OffsetDateTime::now_utc()).expect("run");
    set_key_enabled(&a, B, &key, false);
    put(&a, "n", "v2");
    let now = OffsetDateTime::now_utc();
    assert_eq!(run_due(&a, now).expect("run"), 0);
    let status = |s: &Services| {
        let lag = crate::replication_sync::lag_snapshot(s);
        lag.iter()
            .find(|l| l.region == B)
            .map(|l| (l.status.clone(), l.failures))
    };
    assert_eq!(status(&a), Some(("Failed".to_string(), 1)));
    set_key_enabled(&b, B, &key, true);
    assert_eq!(
        run_due(&b, now + time::Duration::seconds(5)).expect("run"),
        1
    );
    assert_eq!(value(&a, B, "n"), "v2");
    assert_eq!(
        status(&a),
        Some(("InSync".to_string(), 1)),
        "node a's failure count is its own; the status is the store's"
    );
}
