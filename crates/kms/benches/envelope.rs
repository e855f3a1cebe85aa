//! Cost of the in-process envelope decrypt path Secrets Manager takes on every
//! GetSecretValue: `tresor_kms::decrypt` of a data-key blob via `secretsmanager` (key lookup,
//! root-key unseal of the key material, Authorizer with the managed key's policy, AES-GCM open
//! with the encryption context), then AES-256-GCM open of a 1 KiB value under the data key.
//!
//! Two setups: an IAM user on the SQLite store (what a real request does; identity policies
//! are read from the store), and the root user on the in-memory store (the floor).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use time::OffsetDateTime;
use tresor_core::{Caller, CallerKind, RequestCtx, Services};
use tresor_crypto::{AeadKey, RootKey};
use tresor_iam::UserRecord;
use tresor_iam::api::{inline, users};
use tresor_iam::error::IamError;
use tresor_store::{MemoryStore, SqliteStore, Store};
use tresor_wire::query::QueryParams;

const ACCOUNT: &str = "111122223333";

fn ctx(caller: Caller) -> RequestCtx {
    RequestCtx {
        request_id: "bench".into(),
        region: "us-east-1".into(),
        now: OffsetDateTime::now_utc(),
        source_ip: None,
        secure_transport: true,
        caller: std::sync::Arc::new(caller),
        deferred: Default::default(),
        audit: Default::default(),
    }
}

/// Runs a typed IAM handler on an awsQuery form, returning the result's inner XML.
fn iam<I, O>(
    handler: fn(&Services, &RequestCtx, I) -> Result<O, IamError>,
    services: &Services,
    root: &RequestCtx,
    form: &str,
) -> String
where
    I: for<'de> serde::Deserialize<'de>,
    O: serde::Serialize,
{
    let params = QueryParams::parse(form.as_bytes()).unwrap();
    let input: I = tresor_wire::query::decode(&params).unwrap();
    let output = handler(services, root, input).unwrap();
    tresor_wire::xml::encode(&output)
        .unwrap()
        .unwrap_or_default()
}

/// An IAM user with a Secrets Manager read policy, as the Secrets Manager caller would be.
fn bench_user(services: &Services) -> Caller {
    let root = ctx(Caller::root(ACCOUNT, "AKIAROOTEXAMPLE00000"));
    let xml = iam(
        users::create_user,
        services,
        &root,
        "Action=CreateUser&Version=2010-05-08&UserName=bench",
    );
    let user_id = xml
        .split("<UserId>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("UserId")
        .to_string();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let encoded: String = form_encode(policy);
    iam(
        |s, c, i: inline::PutUserPolicyInput| inline::put_policy::<UserRecord>(s, c, i.into()),
        services,
        &root,
        &format!(
            "Action=PutUserPolicy&Version=2010-05-08&UserName=bench&PolicyName=read&PolicyDocument={encoded}"
        ),
    );
    Caller {
        account: ACCOUNT.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/bench"),
        user_id: user_id.clone(),
        kind: CallerKind::User {
            name: "bench".into(),
            path: "/".into(),
            unique_id: user_id,
        },
        access_key_id: "AKIABENCHEXAMPLE0000".into(),
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn bench_setup(c: &mut Criterion, name: &str, store: Arc<dyn Store>, user: bool) {
    let services = Services::new(
        store,
        Arc::new(RootKey::from_bytes(&[9u8; 32]).unwrap()),
        Arc::new(tresor_iam::IamDirectory),
    );
    let caller = if user {
        bench_user(&services)
    } else {
        Caller::root(ACCOUNT, "AKIAROOTEXAMPLE00000")
    };
    let ctx = ctx(caller);
    let context: BTreeMap<String, String> = [(
        "SecretARN".to_string(),
        format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ci/token-AbCdEf"),
    )]
    .into();
    let mut txn = services.store().begin_write().unwrap();
    let dk =
        tresor_kms::generate_data_key(&services, &mut *txn, &ctx, None, "secretsmanager", &context)
            .unwrap();
    txn.commit().unwrap();
    let value = AeadKey::from_bytes(dk.plaintext.expose())
        .unwrap()
        .seal(&[7u8; 1024], b"version-aad")
        .unwrap();

    c.bench_function(&format!("envelope_decrypt_1KiB/{name}"), |b| {
        b.iter(|| {
            let txn = services.store().begin_read().unwrap();
            let (key, _) = tresor_kms::decrypt(
                &services,
                &*txn,
                &ctx,
                black_box(&dk.ciphertext_blob),
                "secretsmanager",
                &context,
            )
            .unwrap();
            let plain = AeadKey::from_bytes(key.expose())
                .unwrap()
                .open(black_box(&value), b"version-aad")
                .unwrap();
            black_box(plain.len())
        })
    });
}

fn envelope(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).unwrap());
    bench_setup(c, "iam_user_sqlite", sqlite, true);
    bench_setup(c, "root_memory", Arc::new(MemoryStore::new()), false);
}

criterion_group!(benches, envelope);
criterion_main!(benches);
