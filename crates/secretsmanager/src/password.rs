//! GetRandomPassword: a password from the OS generator (through `tresor_crypto`), with every
//! option of the API (GetRandomPassword API reference): length 1–4096 (default 32), character
//! classes that can be excluded, extra excluded characters, an optional space, and — by
//! default — at least one character of every included class.

use crate::errors::SecretsManagerError;
use serde::{Deserialize, Serialize};
use tresor_core::{RequestCtx, Services};
use tresor_crypto::SecretString;
use tresor_wire::validate::Validator;

use crate::errors;
use crate::{access, shapes, validate};

const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const NUMBERS: &str = "0123456789";
/// The punctuation set of the API reference.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const DEFAULT_LENGTH: i64 = 32;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetRandomPasswordInput {
    pub password_length: Option<i64>,
    pub exclude_characters: Option<String>,
    pub exclude_numbers: Option<bool>,
    pub exclude_punctuation: Option<bool>,
    pub exclude_uppercase: Option<bool>,
    pub exclude_lowercase: Option<bool>,
    pub include_space: Option<bool>,
    pub require_each_included_type: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRandomPasswordOutput {
    #[serde(serialize_with = "shapes::ser_secret_string")]
    pub random_password: Option<SecretString>,
}

pub fn get_random_password(
    services: &Services,
    ctx: &RequestCtx,
    input: GetRandomPasswordInput,
) -> Result<GetRandomPasswordOutput, SecretsManagerError> {
    let mut v = Validator::new();
    v.range("PasswordLength", input.password_length, 1, 4096);
    v.length(
        "ExcludeCharacters",
        input.exclude_characters.as_deref(),
        0,
        4096,
    );
    validate::finish(v)?;
    access::authorize_star(services, ctx, "secretsmanager:GetRandomPassword")?;
    let password = generate(&input)?;
    Ok(GetRandomPasswordOutput {
        random_password: Some(password),
    })
}

fn generate(input: &GetRandomPasswordInput) -> Result<SecretString, SecretsManagerError> {
    let length = usize::try_from(input.password_length.unwrap_or(DEFAULT_LENGTH)).unwrap_or(32);
    let excluded = input.exclude_characters.as_deref().unwrap_or_default();
    let keep = |set: &str| -> Vec<u8> {
        set.bytes()
            .filter(|b| !excluded.as_bytes().contains(b))
            .collect()
    };
    let mut classes: Vec<Vec<u8>> = Vec::new();
    if !input.exclude_lowercase.unwrap_or(false) {
        classes.push(keep(LOWERCASE));
    }
    if !input.exclude_uppercase.unwrap_or(false) {
        classes.push(keep(UPPERCASE));
    }
    if !input.exclude_numbers.unwrap_or(false) {
        classes.push(keep(NUMBERS));
    }
    if !input.exclude_punctuation.unwrap_or(false) {
        classes.push(keep(PUNCTUATION));
    }
    // A class whose every character is excluded is not an included type.
    classes.retain(|c| !c.is_empty());
    let mut alphabet: Vec<u8> = classes.concat();
    if input.include_space.unwrap_or(false) && !excluded.contains(' ') {
        alphabet.push(b' ');
    }
    if alphabet.is_empty() {
        // Unconfirmed: AWS does not document its answer when every character type is excluded.
        return Err(errors::invalid_parameter(
            "The password can't be generated: every character type is excluded.",
        ));
    }
    let require_each = input.require_each_included_type.unwrap_or(true);
    if require_each && length < classes.len() {
        // Unconfirmed: AWS does not document its answer when the length is below the number
        // of required character types.
        return Err(errors::invalid_parameter(format!(
            "The password length {length} is too short to include one character of each of the {} included types.",
            classes.len()
        )));
    }
    let mut chars: Vec<u8> = Vec::with_capacity(length);
    if require_each {
        for class in &classes {
            chars.push(pick(class)?);
        }
    }
    while chars.len() < length {
        chars.push(pick(&alphabet)?);
    }
    shuffle(&mut chars)?;
    let password = String::from_utf8(chars).map_err(|_| SecretsManagerError::Internal)?;
    Ok(SecretString::from(password))
}

/// A uniformly random element of `set` (rejection sampling: no modulo bias).
fn pick(set: &[u8]) -> Result<u8, SecretsManagerError> {
    let i = uniform(set.len())?;
    Ok(set[i])
}

/// A uniform index below `n` (1 ≤ n ≤ 65536).
fn uniform(n: usize) -> Result<usize, SecretsManagerError> {
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    let zone = u32::MAX - (u32::MAX % n32);
    loop {
        let bytes = tresor_crypto::random_bytes(4).map_err(errors::internal)?;
        let r = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if r < zone {
            return Ok((r % n32) as usize);
        }
    }
}

/// Fisher–Yates, so the required characters do not sit at the front.
fn shuffle(chars: &mut [u8]) -> Result<(), SecretsManagerError> {
    for i in (1..chars.len()).rev() {
        let j = uniform(i + 1)?;
        chars.swap(i, j);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> GetRandomPasswordInput {
        GetRandomPasswordInput::default()
    }

    #[test]
    fn default_is_32_characters_with_every_type() {
        for _ in 0..50 {
            let p = generate(&input())
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            assert_eq!(p.len(), 32);
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(p.bytes().any(|b| b.is_ascii_digit()));
            assert!(p.bytes().any(|b| PUNCTUATION.as_bytes().contains(&b)));
            assert!(!p.contains(' '));
        }
    }

    #[test]
    fn exclusions_are_honoured() {
        let i = GetRandomPasswordInput {
            password_length: Some(200),
            exclude_characters: Some("/@\"'\\".into()),
            exclude_numbers: Some(true),
            include_space: Some(true),
            ..input()
        };
        let p = generate(&i)
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        assert_eq!(p.len(), 200);
        assert!(
            !p.bytes()
                .any(|b| b.is_ascii_digit() || b"/@\"'\\".contains(&b))
        );
        let only_upper = GetRandomPasswordInput {
            password_length: Some(64),
            exclude_lowercase: Some(true),
            exclude_numbers: Some(true),
            exclude_punctuation: Some(true),
            ..input()
        };
        let p = generate(&only_upper)
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        assert!(p.bytes().all(|b| b.is_ascii_uppercase()));
    }

    #[test]
    fn impossible_requests_are_invalid_parameters() {
        let none = GetRandomPasswordInput {
            exclude_lowercase: Some(true),
            exclude_uppercase: Some(true),
            exclude_numbers: Some(true),
            exclude_punctuation: Some(true),
            ..input()
        };
        assert!(generate(&none).is_err());
        let short = GetRandomPasswordInput {
            password_length: Some(3),
            ..input()
        };
        assert!(generate(&short).is_err());
        let short_ok = GetRandomPasswordInput {
            password_length: Some(3),
            require_each_included_type: Some(false),
            ..input()
        };
        assert!(generate(&short_ok).is_ok());
    }
}
