//! Model-based property test: random sequences of transactions run against a backend and
//! against a plain `BTreeMap`, comparing every read. Keys come from a tiny alphabet (so that
//! they collide and share prefixes) that includes the code points where UTF-8 encodings change
//! length and U+10FFFF, which has no successor.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use tresor_store::{MemoryStore, PostgresStore, ReadTxn, SqliteStore, Store};

type Model = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    Get(String),
    Scan {
        prefix: String,
        start_after: Option<String>,
        limit: usize,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Write {
        ops: Vec<Op>,
        commit: bool,
    },
    Read {
        ops: Vec<Op>,
    },
    /// Begin a read transaction and keep it while later steps write.
    HoldReader,
    /// Read through the held reader, which must still see the state from when it began.
    ReadHeld {
        ops: Vec<Op>,
    },
    /// Drop everything and reopen the file (SQLite); a no-op for the memory backend.
    Reopen,
}

fn key(max_len: usize) -> impl Strategy<Value = String> {
    let alphabet = prop::sample::select(vec![
        'a',
        'b',
        '/',
        '\u{7f}',
        '\u{80}',
        'é',
        '\u{FFFF}',
        '\u{10FFFF}',
    ]);
    prop::collection::vec(alphabet, 0..=max_len).prop_map(|c| c.into_iter().collect())
}

fn read_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        key(3).prop_map(Op::Get),
        (
            key(2),
            prop::option::of(key(3)),
            prop_oneof![0usize..6, Just(usize::MAX)]
        )
            .prop_map(|(prefix, start_after, limit)| Op::Scan {
                prefix,
                start_after,
                limit
            }),
    ]
}

fn write_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key(3), prop::collection::vec(any::<u8>(), 0..4)).prop_map(|(k, v)| Op::Put(k, v)),
        1 => key(3).prop_map(Op::Delete),
        2 => read_op(),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (prop::collection::vec(write_op(), 0..8), prop::bool::weighted(0.7))
            .prop_map(|(ops, commit)| Step::Write { ops, commit }),
        2 => prop::collection::vec(read_op(), 1..4).prop_map(|ops| Step::Read { ops }),
        1 => Just(Step::HoldReader),
        2 => prop::collection::vec(read_op(), 1..4).prop_map(|ops| Step::ReadHeld { ops }),
        1 => Just(Step::Reopen),
    ]
}

fn model_scan(model: &Model, prefix: &str, start_after: Option<&str>, limit: usize) -> Model {
    model
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && start_after.is_none_or(|a| k.as_str() > a))
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Runs a read op against the transaction and the model; returns an error on mismatch.
fn check_read(txn: &dyn ReadTxn, model: &Model, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Get(k) => prop_assert_eq!(txn.get(k).unwrap(), model.get(k).cloned(), "get {:?}", k),
        Op::Scan {
            prefix,
            start_after,
            limit,
        } => {
            let got = txn.scan(prefix, start_after.as_deref(), *limit).unwrap();
            let want: Vec<_> = model_scan(model, prefix, start_after.as_deref(), *limit)
                .into_iter()
                .collect();
            prop_assert_eq!(
                got,
                want,
                "scan {:?} after {:?} limit {}",
                prefix,
                start_after,
                limit
            );
        }
        Op::Put(..) | Op::Delete(_) => unreachable!("not a read"),
    }
    Ok(())
}

/// Runs steps (none of them `Reopen`) against one open store.
fn run_segment(store: &dyn Store, steps: &[Step], model: &mut Model) -> Result<(), TestCaseError> {
    let mut held: Option<(Box<dyn ReadTxn + '_>, Model)> = None;
    for step in steps {
        match step {
            Step::Write { ops, commit } => {
                let mut txn = store.begin_write().unwrap();
                let mut working = model.clone();
                for op in ops {
                    match op {
                        Op::Put(k, v) => {
                            txn.put(k, v).unwrap();
                            working.insert(k.clone(), v.clone());
                        }
                        Op::Delete(k) => {
                            let existed = txn.delete(k).unwrap();
                            prop_assert_eq!(existed, working.remove(k).is_some(), "delete {:?}", k);
                        }
                        read => check_read(&*txn, &working, read)?,
                    }
                }
                if *commit {
                    txn.commit().unwrap();
                    *model = working;
                }
            }
            Step::Read { ops } => {
                let txn = store.begin_read().unwrap();
                for op in ops {
                    check_read(&*txn, model, op)?;
                }
            }
            Step::HoldReader => held = Some((store.begin_read().unwrap(), model.clone())),
            Step::ReadHeld { ops } => {
                if let Some((txn, snapshot)) = &held {
                    for op in ops {
                        check_read(&**txn, snapshot, op)?;
                    }
                }
            }
            Step::Reopen => unreachable!("segments are split at Reopen"),
        }
    }
    Ok(())
}

fn segments(steps: &[Step]) -> impl Iterator<Item = &[Step]> {
    steps.split(|s| matches!(s, Step::Reopen))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_behaves_like_a_btreemap(steps in prop::collection::vec(step(), 1..24)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        let mut model = Model::new();
        for segment in segments(&steps) {
            let store = SqliteStore::open(&path).unwrap();
            run_segment(&store, segment, &mut model)?;
        }
        let store = SqliteStore::open(&path).unwrap();
        check_read(&*store.begin_read().unwrap(), &model, &Op::Scan {
            prefix: String::new(), start_after: None, limit: usize::MAX,
        })?;
    }

    #[test]
    fn memory_store_behaves_like_a_btreemap(steps in prop::collection::vec(step(), 1..24)) {
        let store = MemoryStore::new();
        let mut model = Model::new();
        for segment in segments(&steps) {
            run_segment(&store, segment, &mut model)?;
        }
    }
}

proptest! {
    // Each case creates a database: fewer cases than the embedded backends.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn postgres_store_behaves_like_a_btreemap(steps in prop::collection::vec(step(), 1..24)) {
        let db = common::TestDatabase::create();
        let mut model = Model::new();
        for segment in segments(&steps) {
            let store = PostgresStore::open(&db.url).unwrap();
            run_segment(&store, segment, &mut model)?;
            store.close().unwrap();
        }
        let store = PostgresStore::open(&db.url).unwrap();
        check_read(&*store.begin_read().unwrap(), &model, &Op::Scan {
            prefix: String::new(), start_after: None, limit: usize::MAX,
        })?;
    }
}
