//! Systems Manager Parameter Store (awsJson1.1, target prefix `AmazonSSM`). Operations arrive
//! with their issue; until then every operation answers AWS's unknown-operation error.

use tresor_services::JsonHandler;

/// The SSM operation named `op`, if tresor implements it.
pub fn handler(op: &str) -> Option<JsonHandler> {
    let _ = op;
    None
}
