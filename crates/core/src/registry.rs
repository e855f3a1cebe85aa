//! The services of one deployment share one kernel: the store (wrapped to count identity
//! changes and tag read snapshots), the root key, the Authorizer and the hot-path caches.
//! Every operation of every service gets a `&Services` and a [`RequestCtx`]; the server's
//! dispatch table decides which operation runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use time::OffsetDateTime;
use tresor_crypto::RootKey;
use tresor_store::Store;

use crate::audit::AuditingStore;
use crate::authz::{Authorizer, AuthzRequest, PolicyCache};
use crate::cache::{CredentialCache, DataKeyCache, RecordCache};
use crate::credential::{CredentialError, ResolvedCredential};
use crate::ctx::RequestCtx;
use crate::directory::Directory;
use crate::error::AuthzError;
use crate::functions::{FunctionError, Functions};
use crate::generation::GenerationStore;

/// The kernel shared by every service of a deployment.
pub struct Services {
    store: Arc<dyn Store>,
    root: Arc<RootKey>,
    directory: Arc<dyn Directory>,
    authorizer: Authorizer,
    /// Bumped after every committed change to identity data (see [`crate::generation`]).
    identity_generation: Arc<AtomicU64>,
    credentials: CredentialCache,
    records: RecordCache,
    data_keys: DataKeyCache,
    /// Lambda, for services that invoke functions on their own behalf (set by the server).
    functions: OnceLock<Arc<dyn Functions>>,
    /// Wakes the background-job worker before its next interval (a job became due now).
    job_wakeup: Arc<JobWakeup>,
    /// Per-deployment state a service crate keeps beside the kernel (e.g. Lambda's executor),
    /// by type; set once by the server's setup.
    extensions: parking_lot::RwLock<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
}

/// A flag plus condition variable that the background-job worker waits on between rounds.
#[derive(Default)]
pub struct JobWakeup {
    pending: parking_lot::Mutex<bool>,
    cond: parking_lot::Condvar,
}

impl JobWakeup {
    /// Asks the worker for a round now.
    pub fn wake(&self) {
        *self.pending.lock() = true;
        self.cond.notify_all();
    }

    /// Waits until [`JobWakeup::wake`] is called or `timeout` passes; returns whether it was
    /// woken. Blocking: call it from a blocking thread.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        let mut pending = self.pending.lock();
        if !*pending {
            let _ = self.cond.wait_for(&mut pending, timeout);
        }
        std::mem::replace(&mut *pending, false)
    }
}

impl Services {
    pub fn new(store: Arc<dyn Store>, root: Arc<RootKey>, directory: Arc<dyn Directory>) -> Self {
        let counting = GenerationStore::new(store);
        let identity_generation = counting.counter();
        let key_changes = counting.key_changes();
        let store: Arc<dyn Store> = Arc::new(AuditingStore::new(Arc::new(counting)));
        Services {
            authorizer: Authorizer::new(
                store.clone(),
                directory.clone(),
                identity_generation.clone(),
            ),
            store,
            root,
            directory,
            identity_generation,
            credentials: CredentialCache::default(),
            records: RecordCache::new(key_changes),
            data_keys: DataKeyCache::default(),
            functions: OnceLock::new(),
            job_wakeup: Arc::default(),
            extensions: Default::default(),
        }
    }

    /// The number of identity changes committed so far; caches keyed by it are never stale.
    pub fn identity_generation(&self) -> u64 {
        self.identity_generation.load(Ordering::SeqCst)
    }

    /// Compiled policies by document text (the policy simulator shares them).
    pub fn policy_cache(&self) -> &PolicyCache {
        self.authorizer.policy_cache()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn root_key(&self) -> &RootKey {
        &self.root
    }

    /// Decides `req` for the caller of `ctx` (see [`Authorizer::authorize`]).
    /// The question is noted in the request's audit facts: the resources an event names.
    pub fn authorize(&self, ctx: &RequestCtx, req: &AuthzRequest<'_>) -> Result<(), AuthzError> {
        ctx.audit.asked(req.action, req.resource);
        self.authorizer.authorize(ctx, req)
    }

    /// The SigV4 check's credential lookup, served from the credential cache while no
    /// identity change has committed since it was filled.
    ///
    /// The first thing every authenticated request does, so it first brings the store's
    /// generations up to date with the commits of other processes sharing the store
    /// ([`Store::sync_generations`]: one round trip on PostgreSQL, nothing on the embedded
    /// backends). Every cache the request then uses (credentials, compiled policies, decoded
    /// records) is tagged with a generation no older than the request: a change acknowledged
    /// by any node before the request arrived is enforced by it.
    pub fn resolve_credential(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError> {
        self.store
            .sync_generations()
            .map_err(|e| CredentialError::Internal(e.into()))?;
        // Read the generation before the store: data read afterwards is at least that new.
        let generation = self.identity_generation();
        if let Some(hit) = self
            .credentials
            .get(access_key_id, session_token, generation, now)?
        {
            return Ok(hit);
        }
        let resolved = self.directory.resolve_credential(
            &*self.store,
            &self.root,
            access_key_id,
            session_token,
            now,
        )?;
        self.credentials
            .insert(access_key_id, generation, &resolved);
        Ok(resolved)
    }

    /// Plugs in Lambda (once; later calls are ignored).
    pub fn set_functions(&self, functions: Arc<dyn Functions>) {
        let _ = self.functions.set(functions);
    }

    /// Lambda, for a service that invokes functions on its own behalf.
    pub fn functions(&self) -> Result<&Arc<dyn Functions>, FunctionError> {
        self.functions
            .get()
            .ok_or_else(|| FunctionError::Unavailable("Lambda is not configured".into()))
    }

    /// The background-job worker's wake-up: a service that writes a job due now calls
    /// `wake()` after its commit.
    pub fn job_wakeup(&self) -> &Arc<JobWakeup> {
        &self.job_wakeup
    }

    /// Keeps `value` as this deployment's extension of type `T` (replacing an earlier one).
    pub fn set_extension<T: std::any::Any + Send + Sync>(&self, value: Arc<T>) {
        let mut all = self.extensions.write();
        all.retain(|e| !e.is::<T>());
        all.push(value);
    }

    /// This deployment's extension of type `T`, if the server set one.
    pub fn extension<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.extensions
            .read()
            .iter()
            .find_map(|e| e.clone().downcast::<T>().ok())
    }

    /// Decoded records for hot reads (see [`RecordCache`]).
    pub fn records(&self) -> &RecordCache {
        &self.records
    }

    /// Unwrapped data keys of recently read sealed values (see [`DataKeyCache`]).
    pub fn data_keys(&self) -> &DataKeyCache {
        &self.data_keys
    }
}
