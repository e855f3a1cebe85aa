//! Versioned records: every value tresor stores is a serde struct serialized as JSON with a
//! format version `v`, so that the schema can evolve.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tresor_store::{ReadTxn, WriteTxn};

use crate::error::ServiceError;

/// Reads and decodes a record; `None` when absent.
pub fn get<T: DeserializeOwned>(txn: &dyn ReadTxn, key: &str) -> Result<Option<T>, ServiceError> {
    txn.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
}

/// Decodes the stored bytes of the record under `key`.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, ServiceError> {
    serde_json::from_slice(bytes).map_err(|e| ServiceError::Corrupt(format!("record {key}: {e}")))
}

pub fn put<T: Serialize>(txn: &mut dyn WriteTxn, key: &str, value: &T) -> Result<(), ServiceError> {
    let bytes = tresor_wire::json::to_vec(value)
        .map_err(|e| ServiceError::Corrupt(format!("encode {key}: {e}")))?;
    txn.put(key, &bytes)?;
    Ok(())
}

/// Decodes every record under a prefix (bounded by `limit`).
pub fn scan<T: DeserializeOwned>(
    txn: &dyn ReadTxn,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, T)>, ServiceError> {
    txn.scan(prefix, start_after, limit)?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v)
                .map(|r| (k.clone(), r))
                .map_err(|e| ServiceError::Corrupt(format!("record {k}: {e}")))
        })
        .collect()
}
