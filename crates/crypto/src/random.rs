//! The one source of randomness: `ring`'s `SystemRandom` (the OS generator, `getrandom` on
//! Linux), plus unbiased sampling from an alphabet. It must not offer a seedable or
//! non-cryptographic generator.

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Fills `buf` from the OS generator.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// `n` random bytes, zeroized when dropped.
pub fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    fill(&mut bytes)?;
    Ok(bytes)
}

/// Appends `n` characters drawn uniformly from `alphabet` (ASCII, at most 256 symbols) to
/// `out`.
///
/// Uniform by rejection sampling: a random byte is used only if it is below the largest
/// multiple of the alphabet's size that fits in a byte, so `byte % size` favours no symbol
/// (plain `byte % 62` would make the first 8 symbols 25% more likely than the rest).
///
/// Identifiers are not worth an error path at every call site, so the generator's failure is a
/// panic here: on Linux it only fails without `getrandom(2)`, where tresor cannot run anyway.
pub(crate) fn push_from_alphabet(out: &mut String, alphabet: &[u8], n: usize) {
    assert!(
        !alphabet.is_empty() && alphabet.len() <= 256 && alphabet.is_ascii(),
        "alphabet must be 1..=256 ASCII symbols"
    );
    let size = alphabet.len();
    let accept_below = 256 - 256 % size;
    // Random bytes that become part of a secret are themselves secret.
    let mut pool = Zeroizing::new([0u8; 64]);
    let mut used = pool.len();
    let mut produced = 0;
    while produced < n {
        if used == pool.len() {
            if fill(&mut pool[..]).is_err() {
                panic!("the system random number generator failed");
            }
            used = 0;
        }
        let byte = usize::from(pool[used]);
        used += 1;
        if byte < accept_below {
            out.push(char::from(alphabet[byte % size]));
            produced += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn random_bytes_have_the_requested_length_and_differ() {
        let a = random_bytes(32).unwrap();
        let b = random_bytes(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(*a, *b);
        assert!(random_bytes(0).unwrap().is_empty());
    }

    #[test]
    fn alphabet_sampling_is_uniform() {
        // 62 symbols is the case modulo bias would skew by 25% for 8 symbols; a ±15% band
        // is over 6 standard deviations wide at this sample size, so this does not flake.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let samples = 124_000;
        let mut s = String::new();
        push_from_alphabet(&mut s, alphabet, samples);
        let mut counts = [0usize; 256];
        for b in s.bytes() {
            counts[usize::from(b)] += 1;
        }
        let expected = samples / alphabet.len();
        for &symbol in alphabet {
            let c = counts[usize::from(symbol)];
            assert!(
                c * 100 > expected * 85 && c * 100 < expected * 115,
                "{} drawn {c} times, expected about {expected}",
                char::from(symbol)
            );
        }
    }
}
