//! The unit-test harness the service crates share (cargo feature `testing`, enabled only from
//! their dev-dependencies): [`Services`] over an in-memory store, and request contexts of a
//! root caller in a fixed account and region.
#![allow(clippy::expect_used)] // test harness: a panic is a failed test

use std::sync::Arc;

use time::OffsetDateTime;
use tresor_crypto::RootKey;
use tresor_store::{MemoryStore, Store};

use tresor_core::{Caller, RequestCtx, Services};

/// The account of every [`ctx_at`] caller.
pub const ACCOUNT: &str = "111122223333";
/// The region of every [`ctx_at`] request.
pub const REGION: &str = "us-east-1";

/// [`Services`] over a [`MemoryStore`] the test can also read directly.
pub struct TestEnv {
    pub store: Arc<MemoryStore>,
    pub services: Services,
}

impl TestEnv {
    /// A fresh in-memory store under a root key of 32 `root_key_byte`s.
    pub fn new(root_key_byte: u8) -> TestEnv {
        let store = Arc::new(MemoryStore::new());
        let dyn_store: Arc<dyn Store> = store.clone();
        let root = Arc::new(RootKey::from_bytes(&[root_key_byte; 32]).expect("root key"));
        TestEnv {
            services: Services::new(dyn_store, root, Arc::new(crate::IamDirectory)),
            store,
        }
    }
}

/// A request at `now` from the root user of [`ACCOUNT`] in [`REGION`].
pub fn ctx_at(now: OffsetDateTime) -> RequestCtx {
    RequestCtx {
        request_id: "req".into(),
        region: REGION.into(),
        now,
        source_ip: None,
        secure_transport: true,
        caller: std::sync::Arc::new(Caller::root(ACCOUNT, "AKIAEXAMPLEEXAMPLE12")),
        deferred: Default::default(),
        audit: Default::default(),
    }
}

/// A request now from the root user of [`ACCOUNT`] in [`REGION`].
pub fn ctx() -> RequestCtx {
    ctx_at(OffsetDateTime::now_utc())
}
