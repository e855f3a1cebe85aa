//! Allow decisions remembered for identical questions.
//!
//! An evaluation is a pure function of the principal, the action, the resource, the policies
//! that apply and the request's condition keys (the policy engine reads nothing else). The
//! Authorizer therefore remembers the questions it allowed, keyed by every one of those inputs:
//! the caller's compiled identity entry (replaced whenever an identity change commits, so an
//! IAM change reaches the very next request), the compiled resource policy (compiled policies
//! are keyed by their text, so a changed policy is another entry), the action, the resource and
//! each context key. Only questions none of whose policies read the clock are remembered
//! ([`Policy::reads_clock`]): the time is the one input that differs between two otherwise
//! identical requests. A hit returns exactly what evaluating again would have; denials are
//! always evaluated (their message names the reason).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::RwLock;
use tresor_policy::{Policy, ResourceKind};

use crate::cache::{CompiledIdentity, FastHash};

/// The most questions remembered; on overflow the cache is emptied (cheap to refill).
const ENTRIES: usize = 4096;

/// One authorization question, borrowed from the request.
pub(crate) struct Question<'a> {
    pub identity: &'a Arc<CompiledIdentity>,
    pub resource_policy: Option<&'a Arc<Policy>>,
    pub resource_kind: ResourceKind,
    pub action: &'a str,
    pub resource: &'a str,
    pub region: &'a str,
    pub secure_transport: bool,
    pub source_ip: Option<IpAddr>,
    pub context: &'a [crate::conditions::Condition<'a>],
}

/// A question that was allowed, owned: it keeps its identity entry and resource policy alive,
/// so their addresses cannot be reused by other entries while it is held.
struct Allowed {
    identity: Arc<CompiledIdentity>,
    resource_policy: Option<Arc<Policy>>,
    resource_kind: ResourceKind,
    action: Box<str>,
    resource: Box<str>,
    region: Box<str>,
    secure_transport: bool,
    source_ip: Option<IpAddr>,
    context: Vec<(String, String)>,
}

impl Question<'_> {
    fn hash(&self, hasher: &FastHash) -> u64 {
        let mut h = hasher.build_hasher();
        Arc::as_ptr(self.identity).hash(&mut h);
        self.resource_policy.map(Arc::as_ptr).hash(&mut h);
        self.resource_kind.hash(&mut h);
        self.action.hash(&mut h);
        self.resource.hash(&mut h);
        self.region.hash(&mut h);
        self.secure_transport.hash(&mut h);
        self.source_ip.hash(&mut h);
        self.context.hash(&mut h);
        h.finish()
    }

    fn is(&self, a: &Allowed) -> bool {
        Arc::ptr_eq(self.identity, &a.identity)
            && match (self.resource_policy, &a.resource_policy) {
                (None, None) => true,
                (Some(q), Some(p)) => Arc::ptr_eq(q, p),
                _ => false,
            }
            && self.resource_kind == a.resource_kind
            && self.action == &*a.action
            && self.resource == &*a.resource
            && self.region == &*a.region
            && self.secure_transport == a.secure_transport
            && self.source_ip == a.source_ip
            && self.context.len() == a.context.len()
            && self
                .context
                .iter()
                .zip(&a.context)
                .all(|((k, v), (ak, av))| k == ak && v == av)
    }

    fn owned(&self) -> Allowed {
        Allowed {
            identity: self.identity.clone(),
            resource_policy: self.resource_policy.cloned(),
            resource_kind: self.resource_kind,
            action: self.action.into(),
            resource: self.resource.into(),
            region: self.region.into(),
            secure_transport: self.secure_transport,
            source_ip: self.source_ip,
            context: self
                .context
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// The allowed questions, by a hash of the whole question (a colliding entry is compared in
/// full and simply replaced).
#[derive(Default)]
pub(crate) struct DecisionCache {
    map: RwLock<HashMap<u64, Allowed, FastHash>>,
    hasher: FastHash,
}

impl DecisionCache {
    /// Whether this exact question was allowed before. `Some(hash)` on a miss, for
    /// [`DecisionCache::remember`].
    pub(crate) fn allowed(&self, q: &Question<'_>) -> Result<(), u64> {
        let hash = q.hash(&self.hasher);
        match self.map.read().get(&hash) {
            Some(a) if q.is(a) => Ok(()),
            _ => Err(hash),
        }
    }

    /// Remembers that `q` (whose hash `allowed` returned) was allowed.
    pub(crate) fn remember(&self, hash: u64, q: &Question<'_>) {
        let entry = q.owned();
        let mut map = self.map.write();
        if map.len() >= ENTRIES {
            map.clear();
        }
        map.insert(hash, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::{Caller, CallerKind};
    use tresor_policy::{PolicyKind, Principal};

    fn identity() -> Arc<CompiledIdentity> {
        let caller = Caller {
            account: "111122223333".into(),
            arn: "arn:aws:iam::111122223333:user/u".into(),
            user_id: "AIDAEXAMPLE".into(),
            kind: CallerKind::Root,
            access_key_id: "AKIAEXAMPLE".into(),
        };
        Arc::new(CompiledIdentity {
            identity: Vec::new(),
            boundary: None,
            session: Vec::new(),
            principal_tags: Vec::new(),
            principal: (Arc::new(caller), Principal::root("111122223333")),
        })
    }

    fn policy() -> Arc<Policy> {
        Arc::new(
            Policy::parse(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
                PolicyKind::Resource,
            )
            .unwrap(),
        )
    }

    #[test]
    fn only_the_identical_question_is_a_hit() {
        let cache = DecisionCache::default();
        let (id, other_id) = (identity(), identity());
        let (pol, same_text) = (policy(), policy());
        let context = vec![crate::conditions::cond("kms:ViaService", "x")];
        let base = Question {
            identity: &id,
            resource_policy: Some(&pol),
            resource_kind: ResourceKind::Generic,
            action: "secretsmanager:GetSecretValue",
            resource: "arn:aws:secretsmanager:us-east-1:111122223333:secret:s-AbCdEf",
            region: "us-east-1",
            secure_transport: false,
            source_ip: Some(IpAddr::from([127, 0, 0, 1])),
            context: &context,
        };
        let Err(hash) = cache.allowed(&base) else {
            panic!("empty cache hit")
        };
        cache.remember(hash, &base);
        assert_eq!(cache.allowed(&base), Ok(()));

        let more_context = vec![
            crate::conditions::cond("kms:ViaService", "x"),
            crate::conditions::cond("kms:CallerAccount", "1"),
        ];
        let other_value = vec![crate::conditions::cond("kms:ViaService", "y")];
        let variants = [
            Question {
                identity: &other_id,
                ..base
            },
            Question {
                resource_policy: Some(&same_text),
                ..base
            },
            Question {
                resource_policy: None,
                ..base
            },
            Question {
                resource_kind: ResourceKind::KmsKey,
                ..base
            },
            Question {
                action: "secretsmanager:PutSecretValue",
                ..base
            },
            Question {
                resource: "arn:aws:secretsmanager:us-east-1:111122223333:secret:t-AbCdEf",
                ..base
            },
            Question {
                region: "eu-west-1",
                ..base
            },
            Question {
                secure_transport: true,
                ..base
            },
            Question {
                source_ip: Some(IpAddr::from([127, 0, 0, 2])),
                ..base
            },
            Question {
                source_ip: None,
                ..base
            },
            Question {
                context: &more_context,
                ..base
            },
            Question {
                context: &other_value,
                ..base
            },
            Question {
                context: &[],
                ..base
            },
        ];
        for (i, q) in variants.iter().enumerate() {
            assert!(cache.allowed(q).is_err(), "variant {i} must miss");
        }
    }

    #[test]
    fn a_colliding_hash_is_compared_in_full_and_the_cache_is_bounded() {
        let cache = DecisionCache::default();
        let id = identity();
        let context = Vec::new();
        let q = |resource| Question {
            identity: &id,
            resource_policy: None,
            resource_kind: ResourceKind::None,
            action: "kms:Decrypt",
            resource,
            region: "us-east-1",
            secure_transport: false,
            source_ip: None,
            context: &context,
        };
        // Another question stored under this question's hash is not a hit for it.
        let Err(hash) = cache.allowed(&q("a")) else {
            panic!("empty cache hit")
        };
        cache.remember(hash, &q("b"));
        assert!(cache.allowed(&q("a")).is_err());

        let names: Vec<String> = (0..ENTRIES + 1).map(|i| format!("r{i}")).collect();
        for name in &names {
            if let Err(hash) = cache.allowed(&q(name)) {
                cache.remember(hash, &q(name));
            }
        }
        assert!(cache.len() <= ENTRIES);
        assert_eq!(cache.allowed(&q(&names[ENTRIES])), Ok(()));
    }
}
