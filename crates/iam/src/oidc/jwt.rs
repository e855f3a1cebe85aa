//! JSON Web Tokens as OpenID Connect ID tokens (RFC 7519, RFC 7515 compact serialization):
//! parsing, signature verification against one JSON Web Key (RFC 7517/7518) with `ring`, and
//! the registered claims `iss`, `sub`, `aud`, `azp`, `exp`, `nbf`, `iat`, `amr`.
//!
//! Only `RS256` (RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys or larger) and `ES256` (ECDSA
//! P-256 with SHA-256) are accepted — the algorithms AWS STS supports for OIDC identity
//! providers (IAM User Guide, "Create an OpenID Connect (OIDC) identity provider in IAM").
//! `none` and the HMAC algorithms are refused before any key is looked at: a verifier that
//! takes the algorithm from the token must never let the token choose a shared secret.
//! Pure functions: no I/O, no clock (the time is passed in).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

/// A signature algorithm tresor accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON, or a claim of the wrong type.
    #[error("not a valid JWT")]
    Malformed,
    /// `alg` is not RS256 or ES256 (`none`, `HS256`, …).
    #[error("unsupported signature algorithm")]
    Algorithm,
    /// The key does not fit the algorithm, or the signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// `exp` has passed (beyond the allowed skew).
    #[error("expired")]
    Expired { now: i64, exp: i64 },
    /// `nbf` or `iat` lies in the future (beyond the allowed skew).
    #[error("not yet valid")]
    NotYetValid,
}

/// A parsed, not yet verified token.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Claims,
    /// `<header>.<payload>`, the bytes the signature covers.
    signing_input: String,
    signature: Vec<u8>,
}

/// The claims tresor reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: Option<String>,
    /// `aud` as a list (a single string is a list of one).
    pub aud: Vec<String>,
    pub azp: Option<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub amr: Vec<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    // Tolerate padding, which some issuers leave in.
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('=').as_bytes())
        .map_err(|_| JwtError::Malformed)
}

/// A NumericDate (seconds, integer or fractional).
fn numeric_date(v: Option<&Value>) -> Result<Option<i64>, JwtError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(JwtError::Malformed),
        Some(_) => Err(JwtError::Malformed),
    }
}

fn string_or_list(v: Option<&Value>) -> Result<Vec<String>, JwtError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or(JwtError::Malformed))
            .collect(),
        Some(_) => Err(JwtError::Malformed),
    }
}

fn opt_string(v: Option<&Value>) -> Result<Option<String>, JwtError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::Malformed),
    }
}

impl Jwt {
    /// Splits and decodes a compact JWS; checks the algorithm, verifies nothing else.
    pub fn parse(token: &str) -> Result<Jwt, JwtError> {
        let token = token.trim();
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Malformed)?;
        let payload: Value = serde_json::from_slice(&b64(p)?).map_err(|_| JwtError::Malformed)?;
        let alg = match header.alg.as_str() {
            "RS256" => Alg::Rs256,
            "ES256" => Alg::Es256,
            _ => return Err(JwtError::Algorithm),
        };
        let Value::Object(map) = &payload else {
            return Err(JwtError::Malformed);
        };
        let iss = opt_string(map.get("iss"))?.ok_or(JwtError::Malformed)?;
        let claims = Claims {
            iss,
            sub: opt_string(map.get("sub"))?,
            aud: string_or_list(map.get("aud"))?,
            azp: opt_string(map.get("azp"))?,
            exp: numeric_date(map.get("exp"))?,
            nbf: numeric_date(map.get("nbf"))?,
            iat: numeric_date(map.get("iat"))?,
            amr: string_or_list(map.get("amr"))?,
        };
        let signature = b64(s)?;
        Ok(Jwt {
            alg,
            kid: header.kid,
            claims,
            signing_input: format!("{h}.{p}"),
            signature,
        })
    }

    /// Verifies the signature with `key`, which must be of the token's algorithm.
    pub fn verify(&self, key: &Jwk) -> Result<(), JwtError> {
        use ring::signature::{
            ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
            UnparsedPublicKey,
        };
        let msg = self.signing_input.as_bytes();
        match (self.alg, key) {
            (Alg::Rs256, Jwk::Rsa { n, e, .. }) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, msg, &self.signature)
                .map_err(|_| JwtError::Signature),
            (Alg::Es256, Jwk::EcP256 { x, y, .. }) => {
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                    .verify(msg, &self.signature)
                    .map_err(|_| JwtError::Signature)
            }
            _ => Err(JwtError::Signature),
        }
    }

    /// `exp` (required), `nbf` and `iat` against `now` (Unix seconds), each with `skew`
    /// seconds of tolerance for clocks that disagree.
    pub fn check_times(&self, now: i64, skew: i64) -> Result<(), JwtError> {
        let c = &self.claims;
        let exp = c.exp.ok_or(JwtError::Malformed)?;
        if now > exp.saturating_add(skew) {
            return Err(JwtError::Expired { now, exp });
        }
        let future = |t: Option<i64>| t.is_some_and(|t| t > now.saturating_add(skew));
        if future(c.nbf) || future(c.iat) {
            return Err(JwtError::NotYetValid);
        }
        Ok(())
    }
}

/// A public key of a JWK Set that tresor can verify with.
#[derive(Clone, PartialEq, Eq)]
pub enum Jwk {
    Rsa {
        kid: Option<String>,
        /// Modulus and exponent, big-endian.
        n: Vec<u8>,
        e: Vec<u8>,
    },
    EcP256 {
        kid: Option<String>,
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Jwk::Rsa { kid, n, .. } => write!(f, "Jwk::Rsa({kid:?}, {} bits)", n.len() * 8),
            Jwk::EcP256 { kid, .. } => write!(f, "Jwk::EcP256({kid:?})"),
        }
    }
}

impl Jwk {
    pub fn kid(&self) -> Option<&str> {
        match self {
            Jwk::Rsa { kid, .. } | Jwk::EcP256 { kid, .. } => kid.as_deref(),
        }
    }

    pub fn alg(&self) -> Alg {
        match self {
            Jwk::Rsa { .. } => Alg::Rs256,
            Jwk::EcP256 { .. } => Alg::Es256,
        }
    }
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

/// The usable signing keys of a JWK Set document (`{"keys": [...]}`). Keys of other types,
/// for encryption (`"use": "enc"`), or that do not decode are left out; a document that is
/// not a JWK Set is `None`.
pub fn parse_jwks(doc: &[u8]) -> Option<Vec<Jwk>> {
    let raw: RawJwks = serde_json::from_slice(doc).ok()?;
    Some(
        raw.keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<RawJwk>(k).ok())
            .filter_map(|k| decode_jwk(&k))
            .collect(),
    )
}

fn decode_jwk(k: &RawJwk) -> Option<Jwk> {
    if k.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let field = |v: &Option<String>| v.as_deref().and_then(|s| b64(s).ok());
    match (k.kty.as_str(), k.alg.as_deref()) {
        ("RSA", None | Some("RS256")) => Some(Jwk::Rsa {
            kid: k.kid.clone(),
            n: field(&k.n)?,
            e: field(&k.e)?,
        }),
        ("EC", None | Some("ES256")) if k.crv.as_deref() == Some("P-256") => {
            let (x, y) = (field(&k.x)?, field(&k.y)?);
            (x.len() == 32 && y.len() == 32).then(|| Jwk::EcP256 {
                kid: k.kid.clone(),
                x,
                y,
            })
        }
        _ => None,
    }
}

/// The key of `keys` that verifies `jwt`: the one with its `kid`, or — for a token without a
/// `kid` — the only key of its algorithm.
pub fn select_key<'a>(keys: &'a [Jwk], jwt: &Jwt) -> Option<&'a Jwk> {
    let mut fitting = keys.iter().filter(|k| k.alg() == jwt.alg);
    match &jwt.kid {
        Some(kid) => fitting.find(|k| k.kid() == Some(kid)),
        None => {
            let first = fitting.next()?;
            fitting.next().is_none().then_some(first)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    };

    /// A 2048-bit RSA test key (PKCS#8, base64), made once with
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`; ring cannot generate
    /// RSA keys.
    pub(crate) const RSA_PKCS8: &str = include_str!("testdata/rsa2048.pk8.b64");

    pub(crate) fn enc(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    pub(crate) struct Signer {
        pub(crate) alg: Alg,
        rsa: Option<RsaKeyPair>,
        ec: Option<EcdsaKeyPair>,
    }

    impl Signer {
        pub(crate) fn rsa() -> Signer {
            let der = base64::engine::general_purpose::STANDARD
                .decode(RSA_PKCS8.split_whitespace().collect::<String>())
                .expect("test key base64");
            Signer {
                alg: Alg::Rs256,
                rsa: Some(RsaKeyPair::from_pkcs8(&der).expect("test key")),
                ec: None,
            }
        }

        pub(crate) fn ec() -> Signer {
            let rng = SystemRandom::new();
            let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("generate");
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pk8.as_ref(), &rng)
                .expect("ec key");
            Signer {
                alg: Alg::Es256,
                rsa: None,
                ec: Some(kp),
            }
        }

        pub(crate) fn jwk(&self, kid: &str) -> Value {
            if let Some(k) = &self.rsa {
                let p = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": enc(&p.n), "e": enc(&p.e)})
            } else if let Some(k) = &self.ec {
                let point = k.public_key().as_ref();
                serde_json::json!({"kty": "EC", "kid": kid, "crv": "P-256",
                    "x": enc(&point[1..33]), "y": enc(&point[33..65])})
            } else {
                Value::Null
            }
        }

        pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                enc(header.to_string().as_bytes()),
                enc(claims.to_string().as_bytes())
            );
            let rng = SystemRandom::new();
            let sig = if let Some(k) = &self.rsa {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .expect("sign");
                sig
            } else if let Some(k) = &self.ec {
                k.sign(&rng, input.as_bytes())
                    .expect("sign")
                    .as_ref()
                    .to_vec()
            } else {
                Vec::new()
            };
            format!("{input}.{}", enc(&sig))
        }

        pub(crate) fn token(&self, kid: &str, claims: &Value) -> String {
            self.sign(
                &serde_json::json!({"alg": self.alg.name(), "kid": kid, "typ": "JWT"}),
                claims,
            )
        }
    }

    pub(crate) fn claims(now: i64) -> Value {
        serde_json::json!({"iss": "https://issuer.example", "sub": "repo:org/app:ref:refs/heads/main",
            "aud": "sts.amazonaws.com", "iat": now, "nbf": now, "exp": now + 300})
    }

    fn keys(s: &Signer, kid: &str) -> Vec<Jwk> {
        let doc = serde_json::json!({"keys": [s.jwk(kid)]}).to_string();
        parse_jwks(doc.as_bytes()).expect("jwks")
    }

    #[test]
    fn rs256_and_es256_tokens_verify_with_their_keys() {
        for s in [Signer::rsa(), Signer::ec()] {
            let token = s.token("k1", &claims(1000));
            let jwt = Jwt::parse(&token).expect("parses");
            assert_eq!(jwt.alg, s.alg);
            assert_eq!(jwt.claims.iss, "https://issuer.example");
            assert_eq!(jwt.claims.aud, vec!["sts.amazonaws.com".to_string()]);
            let ks = keys(&s, "k1");
            let key = select_key(&ks, &jwt).expect("key by kid");
            assert_eq!(jwt.verify(key), Ok(()));
            assert_eq!(jwt.check_times(1000, 60), Ok(()));
            // Another key of the same type does not verify it.
            let other = if s.alg == Alg::Es256 {
                Signer::ec()
            } else {
                continue;
            };
            let ok = keys(&other, "k1");
            assert_eq!(jwt.verify(&ok[0]), Err(JwtError::Signature));
        }
    }

    #[test]
    fn a_tampered_payload_or_signature_fails() {
        for s in [Signer::rsa(), Signer::ec()] {
            let token = s.token("k1", &claims(1000));
            let ks = keys(&s, "k1");
            let parts: Vec<&str> = token.split('.').collect();
            let mut c = claims(1000);
            c["sub"] = Value::String("repo:attacker/app".into());
            let forged = format!(
                "{}.{}.{}",
                parts[0],
                enc(c.to_string().as_bytes()),
                parts[2]
            );
            let jwt = Jwt::parse(&forged).expect("parses");
            assert_eq!(jwt.verify(&ks[0]), Err(JwtError::Signature));
            let mut sig = b64(parts[2]).expect("sig");
            sig[5] ^= 1;
            let flipped = format!("{}.{}.{}", parts[0], parts[1], enc(&sig));
            let jwt = Jwt::parse(&flipped).expect("parses");
            assert_eq!(jwt.verify(&ks[0]), Err(JwtError::Signature));
        }
    }

    #[test]
    fn alg_none_and_hmac_are_refused_before_any_key() {
        let c = claims(1000);
        for alg in ["none", "HS256", "HS512", "RS512", "PS256", ""] {
            let token = format!(
                "{}.{}.",
                enc(serde_json::json!({"alg": alg}).to_string().as_bytes()),
                enc(c.to_string().as_bytes())
            );
            assert_eq!(Jwt::parse(&token).err(), Some(JwtError::Algorithm), "{alg}");
        }
        // An RS256 token verified with an EC key (algorithm confusion) fails.
        let token = Signer::rsa().token("k1", &c);
        let jwt = Jwt::parse(&token).expect("parses");
        let ec = keys(&Signer::ec(), "k1");
        assert!(select_key(&ec, &jwt).is_none());
        assert_eq!(jwt.verify(&ec[0]), Err(JwtError::Signature));
    }

    #[test]
    fn times_are_checked_with_skew() {
        let s = Signer::ec();
        let jwt = Jwt::parse(&s.token("k", &claims(1000))).expect("parses");
        assert_eq!(jwt.check_times(1300, 0), Ok(()));
        assert_eq!(jwt.check_times(1360, 60), Ok(()));
        assert_eq!(
            jwt.check_times(1361, 60),
            Err(JwtError::Expired {
                now: 1361,
                exp: 1300
            })
        );
        // nbf / iat in the future.
        assert_eq!(jwt.check_times(900, 60), Err(JwtError::NotYetValid));
        assert_eq!(jwt.check_times(940, 60), Ok(()));
        let mut c = claims(1000);
        c.as_object_mut().map(|m| m.remove("exp"));
        let jwt = Jwt::parse(&s.token("k", &c)).expect("parses");
        assert_eq!(jwt.check_times(1000, 60), Err(JwtError::Malformed));
    }

    #[test]
    fn audiences_may_be_a_string_or_a_list() {
        let s = Signer::ec();
        let mut c = claims(1000);
        c["aud"] = serde_json::json!(["a", "b"]);
        c["amr"] = serde_json::json!("authenticated");
        let jwt = Jwt::parse(&s.token("k", &c)).expect("parses");
        assert_eq!(jwt.claims.aud, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(jwt.claims.amr, vec!["authenticated".to_string()]);
        c["aud"] = serde_json::json!(7);
        assert_eq!(
            Jwt::parse(&s.token("k", &c)).err(),
            Some(JwtError::Malformed)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for t in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            "e30.e30.",
            "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AA",
        ] {
            assert!(Jwt::parse(t).is_err(), "{t}");
        }
        // Hostile payloads: deep nesting, numbers out of range, wrong claim types.
        let header = enc(br#"{"alg":"ES256"}"#);
        let deep = format!(
            "{{\"iss\":\"x\",\"n\":{}{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        for payload in [
            deep.as_str(),
            r#"{"iss":"x","exp":1e400}"#,
            r#"{"iss":"x","exp":"tomorrow"}"#,
            r#"{"iss":7}"#,
            r#"{"iss":"x","aud":[1,2]}"#,
            r#"["iss"]"#,
        ] {
            let t = format!("{header}.{}.AA", enc(payload.as_bytes()));
            assert_eq!(
                Jwt::parse(&t).err(),
                Some(JwtError::Malformed),
                "{payload:.40}"
            );
        }
    }

    #[test]
    fn jwks_keeps_signing_keys_and_selects_by_kid() {
        let rsa = Signer::rsa();
        let ec = Signer::ec();
        let doc = serde_json::json!({"keys": [
            rsa.jwk("r1"), ec.jwk("e1"),
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
        ]})
        .to_string();
        let ks = parse_jwks(doc.as_bytes()).expect("jwks");
        assert_eq!(ks.len(), 2);
        let jwt = Jwt::parse(&ec.token("e1", &claims(1))).expect("parses");
        assert_eq!(select_key(&ks, &jwt).and_then(Jwk::kid), Some("e1"));
        let unknown = Jwt::parse(&ec.token("e2", &claims(1))).expect("parses");
        assert!(select_key(&ks, &unknown).is_none());
        assert!(parse_jwks(b"{\"nokeys\": 1}").is_none());
        // A Debug rendering shows no key material.
        assert!(!format!("{:?}", ks[0]).contains("AQAB"));
    }
}
