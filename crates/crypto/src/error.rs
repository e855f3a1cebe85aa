//! The crypto error type. Variants say what went wrong in terms safe to log: lengths, versions,
//! paths and modes, never key material, plaintext or the text of a rejected key.

use std::path::PathBuf;

/// Why a cryptographic operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A key had the wrong number of bytes.
    #[error("invalid key length: expected {expected} bytes, got {actual}")]
    InvalidKeyLength { expected: usize, actual: usize },

    /// An encoded root key (`TRESOR_ROOT_KEY`) was neither hex nor base64.
    #[error("invalid root key encoding: expected 64 hex characters or base64 of 32 bytes")]
    InvalidKeyEncoding,

    /// The root key file holds something other than a key.
    #[error("root key file {path} must hold 32 raw bytes, 64 hex characters or base64 of 32 bytes")]
    InvalidKeyFile { path: PathBuf },

    /// The root key file can be accessed by other users.
    #[error(
        "root key file {path} is accessible by group or others (mode {mode:03o}); \
         restrict it with `chmod 600`"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },

    /// Reading or creating the root key file failed.
    #[error("root key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,

    /// Encryption failed (the plaintext was too long for AES-GCM).
    #[error("encryption failed")]
    Encrypt,

    /// Sealed data shorter than the format's fixed overhead.
    #[error("sealed data is truncated: {len} bytes")]
    Truncated { len: usize },

    /// Sealed data in a format version this build does not know.
    #[error("sealed data has unsupported format version {version}")]
    UnsupportedVersion { version: u8 },

    /// Authentication failed: wrong key, wrong associated data, or the data was altered. The
    /// causes are deliberately indistinguishable.
    #[error("decryption failed: wrong key, wrong associated data or altered data")]
    Decrypt,

    /// Decrypted bytes expected to be text were not UTF-8.
    #[error("secret is not valid UTF-8")]
    InvalidUtf8,
}
