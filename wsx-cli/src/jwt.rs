//! JSON Web Tokens: the `jsonwebtoken` crate for the format and the checks, `ring` (which rustls
//! already brings) for the signatures. `jsonwebtoken` has no backend of its own here: this module
//! is its [`CryptoProvider`], a thin adapter from its signer and verifier traits to ring's
//! functions (no cryptography is written here). Used by `wsx serve --auth-*` (verify) and
//! `wsx token` (sign).

use std::path::Path;

use anyhow::Context as _;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::{hmac, signature as sig};

/// Makes ring the signature backend of `jsonwebtoken` (once; later calls change nothing).
pub(crate) fn install() {
    static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory: signer,
        verifier_factory: verifier,
        key_utils: KeyUtils::new_unimplemented(),
    };
    // Err only when already installed (by an earlier call): the same provider.
    let _ = PROVIDER.install_default();
}

/// The environment variable that holds an HS256 secret itself.
pub(crate) const SECRET_ENV: &str = "WSX_AUTH_SECRET";

/// The HS256 secret: the contents of `file` (one trailing newline ignored), else the value of
/// WSX_AUTH_SECRET; `None` when neither is given.
pub(crate) fn secret(file: Option<&Path>) -> anyhow::Result<Option<Vec<u8>>> {
    let mut secret = match file {
        Some(file) => std::fs::read(file)
            .with_context(|| format!("cannot read the secret file {}", file.display()))?,
        None => match std::env::var_os(SECRET_ENV) {
            Some(value) => value.into_encoded_bytes(),
            None => return Ok(None),
        },
    };
    if secret.ends_with(b"\n") {
        secret.pop();
        if secret.ends_with(b"\r") {
            secret.pop();
        }
    }
    anyhow::ensure!(!secret.is_empty(), "the HS256 secret is empty");
    if secret.len() < 32 {
        tracing::warn!("the HS256 secret has {} bytes; use at least 32 random bytes", secret.len());
    }
    Ok(Some(secret))
}

/// The key family of an algorithm wsx signs and verifies (HS256, RS256, ES256); any other
/// algorithm is refused.
fn family(algorithm: Algorithm) -> Result<AlgorithmFamily, Error> {
    match algorithm {
        Algorithm::HS256 => Ok(AlgorithmFamily::Hmac),
        Algorithm::RS256 => Ok(AlgorithmFamily::Rsa),
        Algorithm::ES256 => Ok(AlgorithmFamily::Ec),
        _ => Err(ErrorKind::UnsupportedAlgorithm.into()),
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if key.family() != family(*algorithm)? {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let key = match algorithm {
        Algorithm::HS256 => SigningKey::Hmac(hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes())),
        Algorithm::RS256 => SigningKey::Rsa(
            sig::RsaKeyPair::from_der(key.as_bytes())
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?,
        ),
        _ => SigningKey::Ecdsa(
            sig::EcdsaKeyPair::from_pkcs8(
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                key.as_bytes(),
                &SystemRandom::new(),
            )
            .map_err(|_| ErrorKind::InvalidEcdsaKey)?,
        ),
    };
    Ok(Box::new(Ring { algorithm: *algorithm, key }))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if key.family() != family(*algorithm)? {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let key = match (algorithm, key.kind()) {
        (Algorithm::HS256, _) => {
            VerifyingKey::Hmac(hmac::Key::new(hmac::HMAC_SHA256, key.try_get_as_bytes()?))
        }
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            VerifyingKey::RsaComponents { n: n.clone(), e: e.clone() }
        }
        (Algorithm::RS256, DecodingKeyKind::SecretOrDer(der)) => VerifyingKey::Rsa(der.clone()),
        (_, DecodingKeyKind::SecretOrDer(point)) => VerifyingKey::Ecdsa(point.clone()),
        (_, DecodingKeyKind::RsaModulusExponent { .. }) => {
            return Err(ErrorKind::InvalidKeyFormat.into())
        }
    };
    Ok(Box::new(Ring { algorithm: *algorithm, key }))
}

/// A ring key for one algorithm.
struct Ring<K> {
    algorithm: Algorithm,
    key: K,
}

enum SigningKey {
    Hmac(hmac::Key),
    Rsa(sig::RsaKeyPair),
    Ecdsa(sig::EcdsaKeyPair),
}

enum VerifyingKey {
    Hmac(hmac::Key),
    /// RSAPublicKey DER (what `DecodingKey::from_rsa_pem` keeps).
    Rsa(Vec<u8>),
    RsaComponents {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point (what `DecodingKey::from_ec_pem` keeps).
    Ecdsa(Vec<u8>),
}

impl Signer<Vec<u8>> for Ring<SigningKey> {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match &self.key {
            SigningKey::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            SigningKey::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&sig::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| signature::Error::new())?;
                Ok(out)
            }
            SigningKey::Ecdsa(pair) => {
                Ok(pair.sign(&rng, message).map_err(|_| signature::Error::new())?.as_ref().to_vec())
            }
        }
    }
}

impl JwtSigner for Ring<SigningKey> {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl Verifier<Vec<u8>> for Ring<VerifyingKey> {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let rsa = &sig::RSA_PKCS1_2048_8192_SHA256;
        match &self.key {
            VerifyingKey::Hmac(key) => hmac::verify(key, message, signature),
            VerifyingKey::Rsa(der) => {
                sig::UnparsedPublicKey::new(rsa, der).verify(message, signature)
            }
            VerifyingKey::RsaComponents { n, e } => {
                sig::RsaPublicKeyComponents { n, e }.verify(rsa, message, signature)
            }
            VerifyingKey::Ecdsa(point) => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
            }
        }
        .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Ring<VerifyingKey> {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{decode, encode, Header, Validation};
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn hs256_round_trip_and_a_wrong_secret() {
        install();
        let claims = json!({ "sub": "alice", "exp": jsonwebtoken::get_current_timestamp() + 60 });
        let token =
            encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"k1"))
                .unwrap();
        let validation = Validation::new(Algorithm::HS256);
        let ok = decode::<Value>(&token, &DecodingKey::from_secret(b"k1"), &validation).unwrap();
        assert_eq!(ok.claims["sub"], "alice");
        let bad = decode::<Value>(&token, &DecodingKey::from_secret(b"k2"), &validation);
        assert_eq!(*bad.unwrap_err().kind(), ErrorKind::InvalidSignature);
    }

    #[test]
    fn the_algorithm_is_the_servers_not_the_tokens() {
        install();
        let claims = json!({ "sub": "mallory", "exp": jsonwebtoken::get_current_timestamp() + 60 });
        // HS256 signed with what an RS256 server would hold as its key: refused.
        let token =
            encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"pub"))
                .unwrap();
        let validation = Validation::new(Algorithm::RS256);
        let key = DecodingKey::from_rsa_raw_components(b"pub", b"\x01\x00\x01");
        assert!(decode::<Value>(&token, &key, &validation).is_err());
        // alg none: refused.
        let none = format!("eyJhbGciOiJub25lIn0.{}.", token.split('.').nth(1).unwrap());
        let hs = Validation::new(Algorithm::HS256);
        assert!(decode::<Value>(&none, &DecodingKey::from_secret(b"pub"), &hs).is_err());
    }
}
