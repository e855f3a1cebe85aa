//! [`fingerprint`]: a 128-bit keyed digest of in-memory data, for telling whether two byte
//! strings of this process are equal without keeping either: GMAC (the AES-256-GCM tag of an
//! empty message with the data as associated data) under a key drawn from the OS generator
//! once per process, never stored and never shown. GHASH under a secret key is a universal
//! hash: two different inputs of `n` 16-byte blocks share a fingerprint with probability at
//! most about `n / 2^128`, whoever chose them, as long as the key and the fingerprints stay in
//! memory (they are compared, never output). The nonce is fixed: it only masks the tag, and
//! no tag leaves the process. With AES-NI and carry-less multiplication it costs well under
//! a cycle per byte, several times less than SHA-256.

use std::sync::OnceLock;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::aead::KEY_LEN;
use crate::random::random_bytes;

static KEY: OnceLock<Option<LessSafeKey>> = OnceLock::new();

fn key() -> Option<&'static LessSafeKey> {
    KEY.get_or_init(|| {
        let bytes = zeroize::Zeroizing::new(random_bytes(KEY_LEN).ok()?);
        UnboundKey::new(&AES_256_GCM, &bytes)
            .ok()
            .map(LessSafeKey::new)
    })
    .as_ref()
}

/// The process-keyed fingerprint of `data` (see the module documentation); `None` if the
/// process has no key (the OS generator failed), in which case callers must treat every pair
/// of inputs as different.
pub fn fingerprint(data: &[u8]) -> Option<[u8; 16]> {
    let key = key()?;
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(data),
            &mut [],
        )
        .ok()?;
    let mut out = [0u8; 16];
    out.copy_from_slice(tag.as_ref());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_inputs_share_a_fingerprint_and_any_change_moves_it() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 31 % 251) as u8).collect();
        let f = fingerprint(&data).unwrap();
        assert_eq!(fingerprint(&data.clone()), Some(f));
        // Every single-bit change, at several positions, and every truncation length class.
        for at in [0, 1, 15, 16, 17, 1000, 2999] {
            for bit in 0..8 {
                let mut changed = data.clone();
                changed[at] ^= 1 << bit;
                assert_ne!(fingerprint(&changed), Some(f), "bit {bit} of byte {at}");
            }
        }
        for len in [0, 1, 16, 2999] {
            assert_ne!(fingerprint(&data[..len]), Some(f), "prefix of {len}");
        }
        // Trailing zero bytes are data too (GHASH pads blocks with zeros; the length block
        // tells them apart).
        let mut padded = data.clone();
        padded.push(0);
        assert_ne!(fingerprint(&padded), Some(f));
        assert_ne!(fingerprint(b""), fingerprint(b"\0"));
    }
}
