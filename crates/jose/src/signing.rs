use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde::Serialize;

use crate::verify::{MAX_TOKEN_LEN, rsa_bits};
use crate::{Alg, JoseError, Jwk, VerifyingKey, b64};

/// A private key ready to sign, parsed once.
///
/// Cloning is cheap (an `Arc`); the type is `Send + Sync`, so one key can serve every request
/// thread. `Debug` shows the algorithm and kid only.
#[derive(Clone)]
pub struct SigningKey(Arc<Inner>);

struct Inner {
    alg: Alg,
    pair: Pair,
    // Serialised once at construction so `to_pkcs8` cannot fail later.
    pkcs8: Vec<u8>,
    jwk: Jwk,
    verifying: VerifyingKey,
}

enum Pair {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.0.alg)
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key: P-256 for ES256, Ed25519 for EdDSA, RSA-2048 for RS256.
    pub fn generate(alg: Alg) -> Result<SigningKey, JoseError> {
        let failed = |_| JoseError::KeyGeneration { alg };
        let pair = match alg {
            Alg::ES256 => Pair::Es256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?,
            ),
            Alg::EdDSA => Pair::Ed25519(Ed25519KeyPair::generate().map_err(failed)?),
            Alg::RS256 => Pair::Rs256(RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?),
            Alg::ES384 | Alg::PS256 => return Err(JoseError::CannotSign(alg)),
        };
        SigningKey::from_pair(alg, pair)
    }

    /// Loads a key from unencrypted PKCS#8 DER (what [`SigningKey::to_pkcs8`] produces, or
    /// `openssl genpkey` output). RSA keys must have at least 2048 bits.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<SigningKey, JoseError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| JoseError::InvalidPrivateKey {
            alg,
            reason: e.to_string(),
        };
        let pair = match alg {
            Alg::ES256 => Pair::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            Alg::EdDSA => Pair::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?),
            Alg::RS256 => Pair::Rs256(RsaKeyPair::from_pkcs8(der).map_err(rejected)?),
            Alg::ES384 | Alg::PS256 => return Err(JoseError::CannotSign(alg)),
        };
        SigningKey::from_pair(alg, pair)
    }

    fn from_pair(alg: Alg, pair: Pair) -> Result<SigningKey, JoseError> {
        let internal = |reason: &str| JoseError::InvalidPrivateKey {
            alg,
            reason: reason.into(),
        };
        // PKCS#8 v1 (RFC 5208) for all three: what OpenSSL writes and every parser reads. For RSA
        // it wraps an RFC 8017 RSAPrivateKey.
        let (pkcs8, jwk) = match &pair {
            Pair::Es256(k) => {
                let der = k.to_pkcs8v1().map_err(|_| internal("cannot serialise"))?;
                // Uncompressed SEC1 point: 0x04 || x || y.
                let point = k.public_key().as_ref();
                let (x, y) = match point {
                    [0x04, xy @ ..] if xy.len() == 64 => xy.split_at(32),
                    _ => return Err(internal("unexpected public point encoding")),
                };
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(b64::encode(x)),
                    y: Some(b64::encode(y)),
                    ..Jwk::default()
                };
                (der.as_ref().to_vec(), jwk)
            }
            Pair::Ed25519(k) => {
                let der = k.to_pkcs8v1().map_err(|_| internal("cannot serialise"))?;
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(b64::encode(k.public_key().as_ref())),
                    ..Jwk::default()
                };
                (der.as_ref().to_vec(), jwk)
            }
            Pair::Rs256(k) => {
                let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(k)
                    .map_err(|_| internal("cannot serialise"))?;
                let public = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                let bits = rsa_bits(&public.n);
                if bits < 2048 {
                    return Err(JoseError::RsaKeySize { bits });
                }
                let jwk = Jwk {
                    kty: "RSA".into(),
                    n: Some(b64::encode(&public.n)),
                    e: Some(b64::encode(&public.e)),
                    ..Jwk::default()
                };
                (der.as_ref().to_vec(), jwk)
            }
        };
        let kid = jwk.thumbprint()?;
        let jwk = Jwk {
            kid: Some(kid),
            alg: Some(alg.as_str().into()),
            use_: Some("sig".into()),
            ..jwk
        };
        let verifying = VerifyingKey::from_jwk(&jwk)?;
        Ok(SigningKey(Arc::new(Inner {
            alg,
            pair,
            pkcs8,
            jwk,
            verifying,
        })))
    }

    /// Unencrypted PKCS#8 v1 (RFC 5208 `PrivateKeyInfo`) DER, re-serialised from the parsed key
    /// so it is the same whatever form was loaded: for ES256 it wraps an RFC 5915 EC key, for
    /// EdDSA the RFC 8410 seed, for RS256 an RFC 8017 `RSAPrivateKey`.
    /// [`SigningKey::from_pkcs8`] reads it back. Seal it (see [`crate::seal`]) before it
    /// touches storage.
    pub fn to_pkcs8(&self) -> Vec<u8> {
        self.0.pkcs8.clone()
    }

    pub fn alg(&self) -> Alg {
        self.0.alg
    }

    /// RFC 7638 thumbprint of the public key: stable across restarts and nodes.
    pub fn kid(&self) -> &str {
        self.0.jwk.kid.as_deref().unwrap_or_default()
    }

    /// The public half as a JWK with `kid`, `alg` and `use: "sig"`, ready for the JWKS.
    pub fn public_jwk(&self) -> Jwk {
        self.0.jwk.clone()
    }

    /// The public half, ready to verify this key's own tokens.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0.verifying
    }

    /// Signs raw bytes. ES256 signatures are JOSE's fixed 64-byte `r || s`, not DER.
    pub fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, JoseError> {
        match &self.0.pair {
            Pair::Es256(k) => k
                .sign(&SystemRandom::new(), signing_input)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| JoseError::Signing),
            Pair::Ed25519(k) => k
                .try_sign(signing_input)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| JoseError::Signing),
            Pair::Rs256(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    signing_input,
                    &mut sig,
                )
                .map_err(|_| JoseError::Signing)?;
                Ok(sig)
            }
        }
    }

    /// Produces a compact JWS with header `{"alg","typ","kid"}`. `claims` must serialise to a
    /// JSON object, and the token must stay within what [`crate::verify_jwt`] accepts.
    pub fn sign_jwt<C: Serialize + ?Sized>(
        &self,
        typ: &str,
        claims: &C,
    ) -> Result<String, JoseError> {
        let header = serde_json::to_vec(&JwsHeader {
            alg: self.0.alg.as_str(),
            typ,
            kid: self.kid(),
        })
        .map_err(|e| JoseError::Claims(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| JoseError::Claims(e.to_string()))?;
        // serde_json writes objects with no leading whitespace.
        if payload.first() != Some(&b'{') {
            return Err(JoseError::Claims("claims must be a JSON object".into()));
        }
        let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 360);
        b64::encode_into(&header, &mut token);
        token.push('.');
        b64::encode_into(&payload, &mut token);
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        b64::encode_into(&signature, &mut token);
        if token.len() > MAX_TOKEN_LEN {
            return Err(JoseError::TokenTooLong {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shareable() {
        assert_send_sync::<SigningKey>();
        assert_send_sync::<VerifyingKey>();
    }

    #[test]
    fn generate_only_signing_algs() {
        for alg in [Alg::ES384, Alg::PS256] {
            assert!(!alg.can_sign());
            assert_eq!(
                SigningKey::generate(alg).unwrap_err(),
                JoseError::CannotSign(alg)
            );
            assert_eq!(
                SigningKey::from_pkcs8(alg, b"").unwrap_err(),
                JoseError::CannotSign(alg)
            );
        }
    }

    #[test]
    fn pkcs8_round_trip() {
        for alg in [Alg::ES256, Alg::EdDSA, Alg::RS256] {
            let key = SigningKey::generate(alg).unwrap();
            let der = key.to_pkcs8();
            let again = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(again.kid(), key.kid(), "{alg}");
            assert_eq!(again.public_jwk(), key.public_jwk(), "{alg}");
            assert_eq!(again.to_pkcs8(), der, "{alg}: serialisation is stable");
        }
    }

    #[test]
    fn pkcs8_of_the_wrong_type_is_refused() {
        let ec = SigningKey::generate(Alg::ES256).unwrap().to_pkcs8();
        for alg in [Alg::EdDSA, Alg::RS256] {
            let err = SigningKey::from_pkcs8(alg, &ec).unwrap_err();
            assert!(
                matches!(err, JoseError::InvalidPrivateKey { .. }),
                "{alg}: {err}"
            );
        }
        let err = SigningKey::from_pkcs8(Alg::ES256, b"\x30\x03garbage").unwrap_err();
        assert!(
            err.to_string().starts_with("not a valid ES256 private key"),
            "{err}"
        );
    }

    #[test]
    fn public_jwk_shape() {
        let es = SigningKey::generate(Alg::ES256).unwrap().public_jwk();
        assert_eq!((es.kty.as_str(), es.crv.as_deref()), ("EC", Some("P-256")));
        assert_eq!(es.x.as_deref().map(str::len), Some(43));
        assert_eq!(es.y.as_deref().map(str::len), Some(43));
        assert_eq!(es.use_.as_deref(), Some("sig"));
        assert_eq!(es.alg.as_deref(), Some("ES256"));
        assert_eq!(es.kid, Some(es.thumbprint().unwrap()));

        let ed = SigningKey::generate(Alg::EdDSA).unwrap().public_jwk();
        assert_eq!(
            (ed.kty.as_str(), ed.crv.as_deref()),
            ("OKP", Some("Ed25519"))
        );
        assert!(ed.y.is_none() && ed.n.is_none());

        let rs = SigningKey::generate(Alg::RS256).unwrap().public_jwk();
        assert_eq!(rs.kty, "RSA");
        assert_eq!(rs.e.as_deref(), Some("AQAB"));
        assert_eq!(rs.n.as_deref().map(str::len), Some(342), "2048-bit modulus");
        assert!(rs.crv.is_none());
    }

    #[test]
    fn debug_does_not_leak() {
        let key = SigningKey::generate(Alg::EdDSA).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()));
        assert!(!shown.contains(&b64::encode(&key.to_pkcs8())));
        assert!(!shown.to_lowercase().contains("pkcs8"));
    }

    #[test]
    fn claims_must_be_an_object() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let err = key.sign_jwt("JWT", &serde_json::json!([1, 2])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "claims could not be serialised: claims must be a JSON object"
        );
        assert!(key.sign_jwt("JWT", "text").is_err());
    }

    #[test]
    fn oversized_tokens_are_not_produced() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let big = serde_json::json!({ "x": "a".repeat(MAX_TOKEN_LEN) });
        assert!(matches!(
            key.sign_jwt("JWT", &big),
            Err(JoseError::TokenTooLong { .. })
        ));
    }

    #[test]
    fn rfc8037_ed25519_known_answer() {
        // RFC 8037 A.1 private key `d`, wrapped in PKCS#8 v1 (RFC 8410) by hand.
        let seed = b64::decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let key = SigningKey::from_pkcs8(Alg::EdDSA, &der).unwrap();
        assert_eq!(
            key.public_jwk().x.as_deref(),
            Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        );
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        // RFC 8037 A.4: Ed25519 is deterministic, so the signature must match exactly.
        let sig = key
            .sign(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc")
            .unwrap();
        assert_eq!(
            b64::encode(&sig),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }
}
