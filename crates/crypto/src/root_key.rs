//! [`RootKey`]: the deployment's root of trust. It seals KMS key material, IAM
//! secret access keys and session signing keys, in the [`crate::AeadKey`] format.
//!
//! This module owns the root key file (`<dir>/root.key`): creating it once, atomically and
//! privately, and refusing to use one that other users can access. It must never write the
//! key anywhere else, print it, or replace an existing key file (that would make everything
//! sealed under the old key unreadable).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::aead::{AeadKey, KEY_LEN};
use crate::random::random_bytes;
use crate::{CryptoError, ids};

/// The file name of the root key inside the data directory.
pub const ROOT_KEY_FILE: &str = "root.key";

/// A key file larger than this is certainly not a key; don't read it all.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// The 32-byte root key. Its bytes live only inside the AES key schedule (see
/// [`crate::AeadKey`]); every intermediate copy is zeroized, and `Debug` prints
/// `RootKey([redacted])`.
pub struct RootKey {
    key: AeadKey,
}

impl RootKey {
    /// Loads `<dir>/root.key`, or creates it if it does not exist: 32 bytes from the OS
    /// generator, written to a temporary file (mode 0600), synced, then linked into place
    /// without overwriting, so a crash never leaves a partial key and two processes starting
    /// at once agree on one key. `dir` is created with mode 0700 if missing. Returns whether
    /// the key was created.
    ///
    /// The file may hold the 32 raw bytes (what this function writes) or, for keys provisioned
    /// by hand, the same text [`RootKey::from_encoded`] accepts. On Unix, a file that the group
    /// or others can access at all is refused, as OpenSSH refuses such private keys.
    pub fn load_or_create(dir: &Path) -> Result<(RootKey, bool), CryptoError> {
        let path = dir.join(ROOT_KEY_FILE);
        if let Some(key) = load(&path)? {
            return Ok((key, false));
        }
        create_private_dir(dir)?;
        let bytes = random_bytes(KEY_LEN)?;
        let key = RootKey::from_bytes(&bytes)?;

        let temp = dir.join(format!(".{ROOT_KEY_FILE}.{}.tmp", ids::uuid_v4()));
        let written = write_private_file(&temp, &bytes);
        let linked = written.and_then(|()| std::fs::hard_link(&temp, &path));
        // The temporary name is removed whatever happened; failing to remove it only leaves
        // a private file behind, which is not worth failing start-up for.
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                sync_dir(dir)?;
                Ok((key, true))
            }
            // Another process created the key between our check and our link: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match load(&path)? {
                Some(existing) => Ok((existing, false)),
                None => Err(io_error(&path)(e)),
            },
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Loads `<dir>/root.key` if it exists, never creating one: `None` when there is no key
    /// file. For a data directory that already holds data sealed under some key, where a new
    /// key would only make that data unreadable. The same checks as
    /// [`RootKey::load_or_create`] apply to an existing file.
    pub fn load_existing(dir: &Path) -> Result<Option<RootKey>, CryptoError> {
        load(&dir.join(ROOT_KEY_FILE))
    }

    /// A root key from its text form (`TRESOR_ROOT_KEY`): 64 hexadecimal characters, or the
    /// base64 (standard or URL-safe alphabet) of 32 bytes. Surrounding whitespace is ignored.
    /// Errors never repeat the text.
    pub fn from_encoded(s: &str) -> Result<RootKey, CryptoError> {
        let s = s.trim();
        let bytes = if s.len() == 2 * KEY_LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Zeroizing::new(hex::decode(s).map_err(|_| CryptoError::InvalidKeyEncoding)?)
        } else {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
                .map_err(|_| CryptoError::InvalidKeyEncoding)?;
            Zeroizing::new(decoded)
        };
        RootKey::from_bytes(&bytes)
    }

    /// A root key from exactly 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<RootKey, CryptoError> {
        Ok(RootKey {
            key: AeadKey::from_bytes(bytes)?,
        })
    }

    /// Seals `plaintext` bound to `aad`; see [`crate::AeadKey::seal`] for the format.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key.seal(plaintext, aad)
    }

    /// Opens data sealed by [`RootKey::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.key.open(sealed, aad)
    }
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey([redacted])")
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CryptoError {
    let path = path.to_owned();
    move |source| CryptoError::Io { path, source }
}

/// The key in `path`, `None` if there is no such file.
fn load(path: &Path) -> Result<Option<RootKey>, CryptoError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    // Checked on the open handle, so the file cannot be swapped between check and read.
    let metadata = file.metadata().map_err(io_error(path))?;
    if !metadata.is_file() {
        return Err(CryptoError::InvalidKeyFile {
            path: path.to_owned(),
        });
    }
    check_private(path, &metadata)?;

    let mut contents = Zeroizing::new(Vec::with_capacity(KEY_LEN));
    file.take(MAX_KEY_FILE_LEN)
        .read_to_end(&mut contents)
        .map_err(io_error(path))?;
    let invalid = || CryptoError::InvalidKeyFile {
        path: path.to_owned(),
    };
    let key = if contents.len() == KEY_LEN {
        RootKey::from_bytes(&contents)?
    } else {
        let text = std::str::from_utf8(&contents).map_err(|_| invalid())?;
        RootKey::from_encoded(text).map_err(|_| invalid())?
    };
    Ok(Some(key))
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), CryptoError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), CryptoError> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), CryptoError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_error(dir))
}

/// Writes `bytes` to a new file (never an existing one) with mode 0600 and syncs it.
fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the new directory entry durable: a key lost in a crash after data was sealed under
/// it would make that data unreadable.
fn sync_dir(dir: &Path) -> Result<(), CryptoError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;

    fn key_path(dir: &Path) -> PathBuf {
        dir.join(ROOT_KEY_FILE)
    }

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_created_key_is_private_and_reloads_identically() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let (created, was_created) = RootKey::load_or_create(&dir).unwrap();
        assert!(was_created);
        let path = key_path(&dir);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 32);
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [ROOT_KEY_FILE]);

        let (loaded, was_created) = RootKey::load_or_create(&dir).unwrap();
        assert!(!was_created);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file is not rewritten"
        );
        let sealed = created.seal(b"kms key material", b"aad").unwrap();
        assert_eq!(&*loaded.open(&sealed, b"aad").unwrap(), b"kms key material");
        assert_eq!(
            &*RootKey::from_bytes(&bytes)
                .unwrap()
                .open(&sealed, b"aad")
                .unwrap(),
            b"kms key material"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        RootKey::load_or_create(dir.path()).unwrap();
        let path = key_path(dir.path());
        for insecure in [0o644, 0o640, 0o604, 0o620, 0o660] {
            set_mode(&path, insecure);
            let err = RootKey::load_or_create(dir.path()).unwrap_err();
            assert!(
                matches!(&err, CryptoError::InsecurePermissions { mode, .. } if *mode == insecure),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"));
        }
        set_mode(&path, 0o400);
        assert!(!RootKey::load_or_create(dir.path()).unwrap().1);
    }

    #[test]
    fn a_key_file_with_hex_text_is_accepted_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        write_private_file(&path, format!("{HEX}\n").as_bytes()).unwrap();
        let (key, created) = RootKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        let sealed = key.seal(b"x", b"").unwrap();
        assert_eq!(
            &*RootKey::from_encoded(HEX)
                .unwrap()
                .open(&sealed, b"")
                .unwrap(),
            b"x"
        );

        std::fs::remove_file(&path).unwrap();
        write_private_file(&path, b"too short").unwrap();
        let err = RootKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidKeyFile { .. }), "{err}");
        assert!(!err.to_string().contains("too short"));
    }

    #[test]
    fn load_existing_never_creates_a_key() {
        let dir = tempfile::tempdir().unwrap();
        assert!(RootKey::load_existing(dir.path()).unwrap().is_none());
        assert!(!key_path(dir.path()).exists());
        let (created, _) = RootKey::load_or_create(dir.path()).unwrap();
        let loaded = RootKey::load_existing(dir.path()).unwrap().unwrap();
        let sealed = created.seal(b"x", b"a").unwrap();
        assert_eq!(&*loaded.open(&sealed, b"a").unwrap(), b"x");
    }

    #[test]
    fn from_encoded_accepts_hex_and_base64_of_32_bytes() {
        let bytes: Vec<u8> = (0..32).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let b64_url = base64::engine::general_purpose::URL_SAFE.encode([0xfb_u8; 32]);
        let reference = RootKey::from_bytes(&bytes).unwrap();
        let sealed = reference.seal(b"x", b"").unwrap();
        for text in [
            HEX.to_owned(),
            HEX.to_uppercase(),
            format!("  {b64}\n"),
            b64.clone(),
        ] {
            let key = RootKey::from_encoded(&text).unwrap();
            assert_eq!(&*key.open(&sealed, b"").unwrap(), b"x", "{text}");
        }
        let url = RootKey::from_encoded(&b64_url).unwrap();
        let std = RootKey::from_bytes(&[0xfb; 32]).unwrap();
        assert_eq!(
            &*url.open(&std.seal(b"y", b"").unwrap(), b"").unwrap(),
            b"y"
        );
    }

    #[test]
    fn from_encoded_rejects_wrong_lengths_and_garbage_without_echoing_it() {
        let short_b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 31]);
        let long_b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 33]);
        for bad in [&HEX[..62], &format!("{HEX}00"), &short_b64, &long_b64, ""] {
            let err = RootKey::from_encoded(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    CryptoError::InvalidKeyLength { expected: 32, .. }
                        | CryptoError::InvalidKeyEncoding
                ),
                "{bad}: {err}"
            );
        }
        let secretish = "zz-not-a-key-zz-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
        let err = RootKey::from_encoded(secretish).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidKeyEncoding));
        assert!(!format!("{err} {err:?}").contains("not-a-key"));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let bytes = [0xab_u8; 32];
        let key = RootKey::from_bytes(&bytes).unwrap();
        let text = format!("{key:?}");
        assert_eq!(text, "RootKey([redacted])");
        assert!(!text.to_lowercase().contains("abab"));
    }

    #[test]
    fn two_processes_creating_at_once_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let results: Vec<(RootKey, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| RootKey::load_or_create(dir.path()).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        let sealed = results[0].0.seal(b"same", b"").unwrap();
        for (key, _) in &results {
            assert_eq!(&*key.open(&sealed, b"").unwrap(), b"same");
        }
    }
}
