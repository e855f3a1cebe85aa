//! The error of the crate's output serializers (JSON and awsQuery XML): an output that cannot
//! be written in the protocol's form. It is a bug in an output type, never the client's fault,
//! and its text never carries a member's value.

use std::fmt;

use serde::ser;

/// Why an output could not be written.
#[derive(Debug)]
pub struct OutputError(pub(crate) String);

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutputError {}

impl ser::Error for OutputError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        OutputError(msg.to_string())
    }
}
