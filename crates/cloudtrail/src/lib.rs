//! CloudTrail's event history over tresor's audit log: `LookupEvents` (awsJson1.1, target
//! prefix `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101`), and the tresor
//! extension `ListSecretReaders` ("who still reads the old token?").
//!
//! This crate owns the audit records' layout in the store ([`record`]) and reads them; the
//! server writes them (it alone sees every request, including the ones that fail
//! authentication). It never parses HTTP and never decides access itself: the Authorizer
//! answers `cloudtrail:LookupEvents`.

pub mod errors;
pub mod lookup;
pub mod readers;
pub mod record;

pub use errors::CloudTrailError;
