//! KMS (awsJson1.1). Operations arrive with their issue; until then every operation answers
//! AWS's unknown-operation error from the dispatch table.

use tresor_services::JsonHandler;

/// The KMS operation named `op`, if tresor implements it.
pub fn handler(op: &str) -> Option<JsonHandler> {
    let _ = op;
    None
}
