//! Unit tests of the envelope API and the operations, against the in-memory store, through
//! the real Authorizer (root callers: IAM allows, the key policy decides).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::Duration;
use tresor_core::RequestCtx;
use tresor_iam::testing::{ACCOUNT, TestEnv as Env, ctx};
use tresor_store::Store;
use tresor_wire::AwsError;

use crate::envelope;

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

fn env() -> Env {
    Env::new(42)
}

fn call(e: &Env, ctx: &RequestCtx, op: Op, body: Value) -> Result<Value, AwsError> {
    let out = op(&e.services, ctx, &serde_json::to_vec(&body).unwrap())?;
    Ok(if out.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&out).unwrap()
    })
}

fn code<E: Into<AwsError>>(r: Result<impl std::fmt::Debug, E>) -> String {
    r.expect_err("expected an error").into().code.to_string()
}

fn ec(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn create_key(e: &Env) -> String {
    let out = call(
        e,
        &ctx(),
        op!(crate::ops::keys::create_key),
        json!({"Description": "test"}),
    )
    .unwrap();
    out["KeyMetadata"]["Arn"].as_str().unwrap().to_string()
}

fn b64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn envelope_generates_with_the_managed_key_created_on_first_use_and_decrypts() {
    let e = env();
    let c = ctx();
    let context = ec(&[(
        "SecretARN",
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:x-AbCdEf",
    )]);
    let mut txn = e.services.store().begin_write().unwrap();
    let dk =
        envelope::generate_data_key(&e.services, &mut *txn, &c, None, "secretsmanager", &context)
            .unwrap();
    txn.commit().unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    assert!(
        dk.key_arn
            .starts_with("arn:aws:kms:us-east-1:111122223333:key/")
    );
    assert_eq!(format!("{dk:?}").matches("[redacted]").count(), 1);

    let txn = e.services.store().begin_read().unwrap();
    let (plain, arn) = envelope::decrypt(
        &e.services,
        &*txn,
        &c,
        &dk.ciphertext_blob,
        "secretsmanager",
        &context,
    )
    .unwrap();
    assert_eq!(plain, dk.plaintext);
    assert_eq!(arn, dk.key_arn);
    drop(txn);

    // Listed with its alias, KeyManager AWS.
    let aliases = call(&e, &c, op!(crate::ops::aliases::list_aliases), json!({})).unwrap();
    let entry = aliases["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AliasName"] == "alias/aws/secretsmanager")
        .cloned()
        .unwrap();
    assert_eq!(
        format!(
            "arn:aws:kms:us-east-1:111122223333:key/{}",
            entry["TargetKeyId"].as_str().unwrap()
        ),
        dk.key_arn
    );
    let ssm = aliases["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AliasName"] == "alias/aws/ssm")
        .cloned()
        .unwrap();
    assert!(ssm.get("TargetKeyId").is_none(), "not created yet: {ssm}");
    let described = call(
        &e,
        &c,
        op!(crate::ops::keys::describe_key),
        json!({"KeyId": "alias/aws/secretsmanager"}),
    )
    .unwrap();
    assert_eq!(described["KeyMetadata"]["KeyManager"], "AWS");
    assert_eq!(described["KeyMetadata"]["Arn"], dk.key_arn.as_str());

    // A second call reuses the same managed key.
    let mut txn = e.services.store().begin_write().unwrap();
    let again =
        envelope::generate_data_key(&e.services, &mut *txn, &c, None, "secretsmanager", &context)
            .unwrap();
    assert_eq!(again.key_arn, dk.key_arn);
}

#[test]
fn envelope_decrypt_refuses_wrong_context_tampering_and_the_wrong_service() {
    let e = env();
    let c = ctx();
    let context = ec(&[("SecretARN", "a")]);
    let mut txn = e.services.store().begin_write().unwrap();
    let dk =
        envelope::generate_data_key(&e.services, &mut *txn, &c, None, "secretsmanager", &context)
            .unwrap();
    txn.commit().unwrap();
    let txn = e.services.store().begin_read().unwrap();
    let decrypt = |blob: &[u8], via: &str, context: &BTreeMap<String, String>| {
        envelope::decrypt(&e.services, &*txn, &c, blob, via, context)
    };
    assert_eq!(
        code(decrypt(
            &dk.ciphertext_blob,
            "secretsmanager",
            &ec(&[("SecretARN", "b")])
        )),
        "InvalidCiphertextException"
    );
    assert_eq!(
        code(decrypt(&dk.ciphertext_blob, "secretsmanager", &ec(&[]))),
        "InvalidCiphertextException"
    );
    let mut flipped = dk.ciphertext_blob.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        code(decrypt(&flipped, "secretsmanager", &context)),
        "InvalidCiphertextException"
    );
    flipped = dk.ciphertext_blob.clone();
    flipped[20] ^= 0x80; // inside the key id
    assert_eq!(
        code(decrypt(&flipped, "secretsmanager", &context)),
        "InvalidCiphertextException"
    );
    // The managed key of Secrets Manager only works via Secrets Manager.
    assert_eq!(
        code(decrypt(&dk.ciphertext_blob, "ssm", &context)),
        "AccessDeniedException"
    );
}

#[test]
fn resolve_key_arn_accepts_ids_arns_and_aliases() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    let id = arn.rsplit('/').next().unwrap().to_string();
    call(
        &e,
        &c,
        op!(crate::ops::aliases::create_alias),
        json!({"AliasName": "alias/app", "TargetKeyId": id}),
    )
    .unwrap();
    let mut txn = e.services.store().begin_write().unwrap();
    for input in [
        id.as_str(),
        arn.as_str(),
        "alias/app",
        "arn:aws:kms:us-east-1:111122223333:alias/app",
    ] {
        assert_eq!(
            envelope::resolve_key_arn(&e.services, &mut *txn, &c, Some(input), "ssm").unwrap(),
            arn,
            "{input}"
        );
    }
    for missing in [
        "alias/nope",
        "00000000-0000-4000-8000-000000000000",
        "not a key",
    ] {
        assert_eq!(
            code(envelope::resolve_key_arn(
                &e.services,
                &mut *txn,
                &c,
                Some(missing),
                "ssm"
            )),
            "NotFoundException"
        );
    }
    let managed = envelope::resolve_key_arn(&e.services, &mut *txn, &c, None, "ssm").unwrap();
    assert_ne!(managed, arn);
    assert_eq!(
        envelope::resolve_key_arn(&e.services, &mut *txn, &c, Some("alias/aws/ssm"), "ssm")
            .unwrap(),
        managed
    );
}

#[test]
fn envelope_with_a_customer_key_follows_its_state() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    let context = ec(&[]);
    let generate = |e: &Env| {
        let mut txn = e.services.store().begin_write().unwrap();
        envelope::generate_data_key(
            &e.services,
            &mut *txn,
            &c,
            Some(&arn),
            "secretsmanager",
            &context,
        )
    };
    let dk = generate(&e).unwrap();
    assert_eq!(dk.key_arn, arn);
    call(
        &e,
        &c,
        op!(crate::ops::keys::disable_key),
        json!({"KeyId": arn}),
    )
    .unwrap();
    assert_eq!(code(generate(&e)), "DisabledException");
    let txn = e.services.store().begin_read().unwrap();
    let err = envelope::decrypt(
        &e.services,
        &*txn,
        &c,
        &dk.ciphertext_blob,
        "secretsmanager",
        &context,
    )
    .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            "DisabledException",
            Some(format!("{arn} is disabled.").as_str())
        )
    );
    drop(txn);
    call(
        &e,
        &c,
        op!(crate::ops::keys::schedule_key_deletion),
        json!({"KeyId": arn, "PendingWindowInDays": 7}),
    )
    .unwrap();
    let err = generate(&e).unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            "KMSInvalidStateException",
            Some(format!("{arn} is pending deletion.").as_str())
        )
    );
}

#[test]
fn managed_keys_refuse_direct_use_and_changes() {
    let e = env();
    let c = ctx();
    let r = call(
        &e,
        &c,
        op!(crate::ops::crypto::encrypt),
        json!({"KeyId": "alias/aws/secretsmanager", "Plaintext": STANDARD.encode("x")}),
    );
    assert_eq!(code(r), "AccessDeniedException");
    let arn = call(
        &e,
        &c,
        op!(crate::ops::keys::describe_key),
        json!({"KeyId": "alias/aws/secretsmanager"}),
    )
    .unwrap()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    for (op, body) in [
        (op!(crate::ops::keys::disable_key), json!({"KeyId": arn})),
        (
            op!(crate::ops::keys::schedule_key_deletion),
            json!({"KeyId": arn}),
        ),
        (
            op!(crate::ops::rotation::rotate_key_on_demand),
            json!({"KeyId": arn}),
        ),
        (
            op!(crate::ops::policy::put_key_policy),
            json!({"KeyId": arn, "Policy": crate::keys::default_key_policy(ACCOUNT)}),
        ),
        (
            op!(crate::ops::crypto::generate_data_key),
            json!({"KeyId": arn, "KeySpec": "AES_256"}),
        ),
    ] {
        assert_eq!(
            code(call(&e, &c, op, body.clone())),
            "AccessDeniedException",
            "{body}"
        );
    }
    // Metadata reads are allowed to the account.
    let policy = call(
        &e,
        &c,
        op!(crate::ops::policy::get_key_policy),
        json!({"KeyId": arn}),
    )
    .unwrap();
    assert!(
        policy["Policy"]
            .as_str()
            .unwrap()
            .contains("secretsmanager.us-east-1.amazonaws.com")
    );
    assert_eq!(
        call(
            &e,
            &c,
            op!(crate::ops::rotation::get_key_rotation_status),
            json!({"KeyId": arn})
        )
        .unwrap()["KeyRotationEnabled"],
        true
    );
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::aliases::create_alias),
            json!({"AliasName": "alias/aws/mine", "TargetKeyId": arn})
        )),
        "NotAuthorizedException"
    );
}

#[test]
fn encrypt_decrypt_round_trip_with_context_and_key_id_checks() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    let other = create_key(&e);
    let id = arn.rsplit('/').next().unwrap();
    call(
        &e,
        &c,
        op!(crate::ops::aliases::create_alias),
        json!({"AliasName": "alias/app", "TargetKeyId": id}),
    )
    .unwrap();
    let out = call(&e, &c, op!(crate::ops::crypto::encrypt), json!({"KeyId": "alias/app", "Plaintext": STANDARD.encode("hello"), "EncryptionContext": {"a": "1"}})).unwrap();
    assert_eq!(out["KeyId"], arn.as_str());
    let blob = out["CiphertextBlob"].clone();
    let dec = call(
        &e,
        &c,
        op!(crate::ops::crypto::decrypt),
        json!({"CiphertextBlob": blob, "EncryptionContext": {"a": "1"}}),
    )
    .unwrap();
    assert_eq!(b64(&dec["Plaintext"]), b"hello");
    assert_eq!(dec["KeyId"], arn.as_str());
    assert_eq!(dec["KeyMaterialId"].as_str().unwrap().len(), 64);
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::crypto::decrypt),
            json!({"CiphertextBlob": blob})
        )),
        "InvalidCiphertextException"
    );
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::crypto::decrypt),
            json!({"CiphertextBlob": blob, "EncryptionContext": {"a": "1"}, "KeyId": other})
        )),
        "IncorrectKeyException"
    );
    assert!(
        call(
            &e,
            &c,
            op!(crate::ops::crypto::decrypt),
            json!({"CiphertextBlob": blob, "EncryptionContext": {"a": "1"}, "KeyId": "alias/app"})
        )
        .is_ok()
    );
    let err = call(
        &e,
        &c,
        op!(crate::ops::crypto::encrypt),
        json!({"KeyId": arn, "Plaintext": STANDARD.encode(vec![0u8; 4097])}),
    )
    .unwrap_err();
    assert_eq!(err.code, "ValidationException");
    assert!(err.message.unwrap().contains("'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096"));
    // ReEncrypt moves the ciphertext to the other key.
    let re = call(&e, &c, op!(crate::ops::crypto::re_encrypt), json!({"CiphertextBlob": blob, "SourceEncryptionContext": {"a": "1"}, "DestinationKeyId": other})).unwrap();
    assert_eq!(re["KeyId"], other.as_str());
    assert_eq!(re["SourceKeyId"], arn.as_str());
    let dec = call(
        &e,
        &c,
        op!(crate::ops::crypto::decrypt),
        json!({"CiphertextBlob": re["CiphertextBlob"]}),
    )
    .unwrap();
    assert_eq!(b64(&dec["Plaintext"]), b"hello");
    // Data keys.
    let dk = call(
        &e,
        &c,
        op!(crate::ops::crypto::generate_data_key),
        json!({"KeyId": arn, "KeySpec": "AES_128"}),
    )
    .unwrap();
    assert_eq!(b64(&dk["Plaintext"]).len(), 16);
    let dk2 = call(
        &e,
        &c,
        op!(crate::ops::crypto::generate_data_key_without_plaintext),
        json!({"KeyId": arn, "NumberOfBytes": 7}),
    )
    .unwrap();
    assert!(dk2.get("Plaintext").is_none());
    assert_eq!(
        b64(&call(
            &e,
            &c,
            op!(crate::ops::crypto::decrypt),
            json!({"CiphertextBlob": dk2["CiphertextBlob"]})
        )
        .unwrap()["Plaintext"])
        .len(),
        7
    );
    let err = call(
        &e,
        &c,
        op!(crate::ops::crypto::generate_data_key),
        json!({"KeyId": arn}),
    )
    .unwrap_err();
    assert_eq!(
        err.message.as_deref(),
        Some("Please specify either number of bytes or key spec.")
    );
    assert_eq!(
        b64(&call(
            &e,
            &c,
            op!(crate::ops::crypto::generate_random),
            json!({"NumberOfBytes": 9})
        )
        .unwrap()["Plaintext"])
        .len(),
        9
    );
}

#[test]
fn rotation_keeps_old_ciphertexts_readable() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    let before = call(
        &e,
        &c,
        op!(crate::ops::crypto::encrypt),
        json!({"KeyId": arn, "Plaintext": STANDARD.encode("old")}),
    )
    .unwrap();
    let m1 = call(
        &e,
        &c,
        op!(crate::ops::keys::describe_key),
        json!({"KeyId": arn}),
    )
    .unwrap()["KeyMetadata"]["CurrentKeyMaterialId"]
        .clone();
    call(
        &e,
        &c,
        op!(crate::ops::rotation::rotate_key_on_demand),
        json!({"KeyId": arn}),
    )
    .unwrap();
    let m2 = call(
        &e,
        &c,
        op!(crate::ops::keys::describe_key),
        json!({"KeyId": arn}),
    )
    .unwrap()["KeyMetadata"]["CurrentKeyMaterialId"]
        .clone();
    assert_ne!(m1, m2);
    let after = call(
        &e,
        &c,
        op!(crate::ops::crypto::encrypt),
        json!({"KeyId": arn, "Plaintext": STANDARD.encode("new")}),
    )
    .unwrap();
    let old = call(
        &e,
        &c,
        op!(crate::ops::crypto::decrypt),
        json!({"CiphertextBlob": before["CiphertextBlob"]}),
    )
    .unwrap();
    assert_eq!(b64(&old["Plaintext"]), b"old");
    assert_eq!(old["KeyMaterialId"], m1);
    let new = call(
        &e,
        &c,
        op!(crate::ops::crypto::decrypt),
        json!({"CiphertextBlob": after["CiphertextBlob"]}),
    )
    .unwrap();
    assert_eq!(new["KeyMaterialId"], m2);
    let rotations = call(
        &e,
        &c,
        op!(crate::ops::rotation::list_key_rotations),
        json!({"KeyId": arn}),
    )
    .unwrap();
    assert_eq!(rotations["Rotations"][0]["RotationType"], "ON_DEMAND");
}

#[test]
fn automatic_rotation_runs_as_a_job() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    call(
        &e,
        &c,
        op!(crate::ops::rotation::enable_key_rotation),
        json!({"KeyId": arn, "RotationPeriodInDays": 90}),
    )
    .unwrap();
    let status = call(
        &e,
        &c,
        op!(crate::ops::rotation::get_key_rotation_status),
        json!({"KeyId": arn}),
    )
    .unwrap();
    assert_eq!(status["RotationPeriodInDays"], 90);
    assert_eq!(
        crate::run_due_jobs(&e.services, c.now + Duration::days(89)).unwrap(),
        0
    );
    assert_eq!(
        crate::run_due_jobs(&e.services, c.now + Duration::days(91)).unwrap(),
        1
    );
    let rotations = call(
        &e,
        &c,
        op!(crate::ops::rotation::list_key_rotations),
        json!({"KeyId": arn}),
    )
    .unwrap();
    assert_eq!(rotations["Rotations"][0]["RotationType"], "AUTOMATIC");
    // The next rotation is scheduled, not run again now.
    assert_eq!(
        crate::run_due_jobs(&e.services, c.now + Duration::days(91)).unwrap(),
        0
    );
}

#[test]
fn scheduled_deletion_destroys_the_key_when_due_and_cancel_leaves_it_disabled() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    call(
        &e,
        &c,
        op!(crate::ops::aliases::create_alias),
        json!({"AliasName": "alias/doomed", "TargetKeyId": arn}),
    )
    .unwrap();
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::schedule_key_deletion),
            json!({"KeyId": arn, "PendingWindowInDays": 6})
        )),
        "ValidationException"
    );
    let out = call(
        &e,
        &c,
        op!(crate::ops::keys::schedule_key_deletion),
        json!({"KeyId": arn}),
    )
    .unwrap();
    assert_eq!(out["KeyState"], "PendingDeletion");
    assert_eq!(out["PendingWindowInDays"], 30);
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::schedule_key_deletion),
            json!({"KeyId": arn})
        )),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::enable_key),
            json!({"KeyId": arn})
        )),
        "KMSInvalidStateException"
    );
    call(
        &e,
        &c,
        op!(crate::ops::keys::cancel_key_deletion),
        json!({"KeyId": arn}),
    )
    .unwrap();
    let meta = call(
        &e,
        &c,
        op!(crate::ops::keys::describe_key),
        json!({"KeyId": arn}),
    )
    .unwrap();
    assert_eq!(meta["KeyMetadata"]["KeyState"], "Disabled");
    assert!(meta["KeyMetadata"].get("DeletionDate").is_none());
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::cancel_key_deletion),
            json!({"KeyId": arn})
        )),
        "KMSInvalidStateException"
    );
    // The cancelled job is gone: nothing happens when its time comes.
    assert_eq!(
        crate::run_due_jobs(&e.services, c.now + Duration::days(31)).unwrap(),
        0
    );
    assert!(
        call(
            &e,
            &c,
            op!(crate::ops::keys::describe_key),
            json!({"KeyId": arn})
        )
        .is_ok()
    );

    call(
        &e,
        &c,
        op!(crate::ops::keys::schedule_key_deletion),
        json!({"KeyId": arn, "PendingWindowInDays": 7}),
    )
    .unwrap();
    assert_eq!(
        crate::run_due_jobs(&e.services, c.now + Duration::days(6)).unwrap(),
        0
    );
    assert_eq!(
        crate::run_due_jobs(&e.services, c.now + Duration::days(8)).unwrap(),
        1
    );
    assert_eq!(
        crate::run_due_jobs(&e.services, c.now + Duration::days(8)).unwrap(),
        0
    );
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::describe_key),
            json!({"KeyId": arn})
        )),
        "NotFoundException"
    );
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::describe_key),
            json!({"KeyId": "alias/doomed"})
        )),
        "NotFoundException"
    );
}

#[test]
fn key_policy_lockout_check_and_validation() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    let other_only = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*", "Resource": "*"}]
    })
    .to_string();
    let err = call(
        &e,
        &c,
        op!(crate::ops::policy::put_key_policy),
        json!({"KeyId": arn, "Policy": other_only}),
    )
    .unwrap_err();
    assert_eq!(err.code, "MalformedPolicyDocumentException");
    assert_eq!(
        err.message.as_deref(),
        Some("The new key policy will not allow you to update the key policy in the future.")
    );
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::policy::put_key_policy),
            json!({"KeyId": arn, "Policy": "{not json"})
        )),
        "MalformedPolicyDocumentException"
    );
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::create_key),
            json!({"Policy": other_only})
        )),
        "MalformedPolicyDocumentException"
    );
    call(
        &e,
        &c,
        op!(crate::ops::policy::put_key_policy),
        json!({"KeyId": arn, "Policy": other_only, "BypassPolicyLockoutSafetyCheck": true}),
    )
    .unwrap();
    // Now the account itself is locked out of the key, as AWS warns.
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::describe_key),
            json!({"KeyId": arn})
        )),
        "AccessDeniedException"
    );
    // Principals that cannot exist are refused, whatever the lockout check would say.
    let odd = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "not-a-principal"}, "Action": "kms:*", "Resource": "*"}]
    })
    .to_string();
    let err = call(
        &e,
        &c,
        op!(crate::ops::keys::create_key),
        json!({"Policy": odd, "BypassPolicyLockoutSafetyCheck": true}),
    )
    .unwrap_err();
    assert_eq!(err.code, "MalformedPolicyDocumentException");
    let default = call(
        &e,
        &c,
        op!(crate::ops::policy::get_key_policy),
        json!({"KeyId": create_key(&e)}),
    )
    .unwrap();
    assert_eq!(
        default["Policy"].as_str().unwrap(),
        crate::keys::default_key_policy(ACCOUNT)
    );
    assert_eq!(default["PolicyName"], "default");
}

#[test]
fn identifiers_errors_and_listing() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    let id = arn.rsplit('/').next().unwrap();
    let err = call(
        &e,
        &c,
        op!(crate::ops::keys::describe_key),
        json!({"KeyId": "alias/missing"}),
    )
    .unwrap_err();
    assert_eq!(
        err.message.as_deref(),
        Some("Alias arn:aws:kms:us-east-1:111122223333:alias/missing is not found.")
    );
    let missing = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000";
    let err = call(
        &e,
        &c,
        op!(crate::ops::keys::describe_key),
        json!({"KeyId": missing}),
    )
    .unwrap_err();
    assert_eq!(err.message, Some(format!("Key '{missing}' does not exist")));
    // Management operations take no alias.
    call(
        &e,
        &c,
        op!(crate::ops::aliases::create_alias),
        json!({"AliasName": "alias/x", "TargetKeyId": id}),
    )
    .unwrap();
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::enable_key),
            json!({"KeyId": "alias/x"})
        )),
        "NotFoundException"
    );
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::aliases::create_alias),
            json!({"AliasName": "alias/x", "TargetKeyId": id})
        )),
        "AlreadyExistsException"
    );
    let err = call(
        &e,
        &c,
        op!(crate::ops::aliases::create_alias),
        json!({"AliasName": "noprefix", "TargetKeyId": id}),
    )
    .unwrap_err();
    assert!(
        err.message
            .unwrap()
            .starts_with("Alias must start with the prefix \"alias/\".")
    );
    call(
        &e,
        &c,
        op!(crate::ops::aliases::update_alias),
        json!({"AliasName": "alias/x", "TargetKeyId": create_key(&e)}),
    )
    .unwrap();
    call(
        &e,
        &c,
        op!(crate::ops::aliases::delete_alias),
        json!({"AliasName": "alias/x"}),
    )
    .unwrap();
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::aliases::delete_alias),
            json!({"AliasName": "alias/x"})
        )),
        "NotFoundException"
    );
    // ListKeys pages with Marker/Truncated.
    for _ in 0..3 {
        create_key(&e);
    }
    let page1 = call(
        &e,
        &c,
        op!(crate::ops::keys::list_keys),
        json!({"Limit": 2}),
    )
    .unwrap();
    assert_eq!(page1["Truncated"], true);
    let mut seen = page1["Keys"].as_array().unwrap().len();
    let mut marker = page1["NextMarker"].clone();
    while marker.is_string() {
        let page = call(
            &e,
            &c,
            op!(crate::ops::keys::list_keys),
            json!({"Limit": 2, "Marker": marker}),
        )
        .unwrap();
        seen += page["Keys"].as_array().unwrap().len();
        marker = page.get("NextMarker").cloned().unwrap_or(Value::Null);
    }
    assert_eq!(seen, 5);
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::keys::list_keys),
            json!({"Marker": "bogus"})
        )),
        "InvalidMarkerException"
    );
    // Tags.
    call(&e, &c, op!(crate::ops::tags::tag_resource), json!({"KeyId": arn, "Tags": [{"TagKey": "b", "TagValue": "2"}, {"TagKey": "a", "TagValue": ""}]})).unwrap();
    assert_eq!(
        code(call(
            &e,
            &c,
            op!(crate::ops::tags::tag_resource),
            json!({"KeyId": arn, "Tags": [{"TagKey": "aws:x", "TagValue": "1"}]})
        )),
        "TagException"
    );
    let tags = call(
        &e,
        &c,
        op!(crate::ops::tags::list_resource_tags),
        json!({"KeyId": arn}),
    )
    .unwrap();
    assert_eq!(
        tags["Tags"],
        json!([{"TagKey": "a", "TagValue": ""}, {"TagKey": "b", "TagValue": "2"}])
    );
    call(
        &e,
        &c,
        op!(crate::ops::tags::untag_resource),
        json!({"KeyId": arn, "TagKeys": ["a"]}),
    )
    .unwrap();
    assert_eq!(
        call(
            &e,
            &c,
            op!(crate::ops::tags::list_resource_tags),
            json!({"KeyId": arn})
        )
        .unwrap()["Tags"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    call(
        &e,
        &c,
        op!(crate::ops::keys::update_key_description),
        json!({"KeyId": arn, "Description": "new"}),
    )
    .unwrap();
    assert_eq!(
        call(
            &e,
            &c,
            op!(crate::ops::keys::describe_key),
            json!({"KeyId": arn})
        )
        .unwrap()["KeyMetadata"]["Description"],
        "new"
    );
}

#[test]
fn nothing_secret_reaches_the_store() {
    let e = env();
    let c = ctx();
    let arn = create_key(&e);
    let secret = "correct horse battery staple";
    call(
        &e,
        &c,
        op!(crate::ops::crypto::encrypt),
        json!({"KeyId": arn, "Plaintext": STANDARD.encode(secret)}),
    )
    .unwrap();
    let mut txn = e.services.store().begin_write().unwrap();
    let dk = envelope::generate_data_key(&e.services, &mut *txn, &c, Some(&arn), "ssm", &ec(&[]))
        .unwrap();
    txn.commit().unwrap();
    let txn = e.store.begin_read().unwrap();
    let all = txn.scan("", None, usize::MAX).unwrap();
    assert!(!all.is_empty());
    for (k, v) in &all {
        for needle in [
            secret.as_bytes(),
            dk.plaintext.expose(),
            STANDARD.encode(dk.plaintext.expose()).as_bytes(),
        ] {
            assert!(
                !v.windows(needle.len()).any(|w| w == needle),
                "{k} holds a secret"
            );
        }
    }
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
    let arn = create_key(&e);
    let held = e.store.begin_write().unwrap();
    let c = nobody();
    let started = std::time::Instant::now();
    for (i, (op, body)) in [
        (
            op!(crate::ops::tags::tag_resource),
            json!({"KeyId": arn, "Tags": [{"TagKey": "k", "TagValue": "v"}]}),
        ),
        (
            op!(crate::ops::tags::untag_resource),
            json!({"KeyId": arn, "TagKeys": ["k"]}),
        ),
        (op!(crate::ops::keys::disable_key), json!({"KeyId": arn})),
        (
            op!(crate::ops::rotation::enable_key_rotation),
            json!({"KeyId": arn}),
        ),
        (
            op!(crate::ops::aliases::create_alias),
            json!({"AliasName": "alias/held", "TargetKeyId": arn}),
        ),
        (op!(crate::ops::keys::create_key), json!({})),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            code(call(&e, &c, op, body)),
            "AccessDeniedException",
            "operation {i}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    drop(held);
}
