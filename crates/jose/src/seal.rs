//! Sealing secrets at rest (private keys in the database) under one master key.
//!
//! Format: `version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)`, AES-256-GCM
//! with a random nonce. Random 96-bit nonces are safe for far more seals than a key store
//! will ever make (NIST's 2^32 bound). The `aad` binds a sealed blob to its context (e.g. the
//! realm and kid), so a blob copied to another row does not open there.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hmac, rand};
use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use crate::JoseError;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// The 32-byte key that seals stored secrets. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl From<[u8; KEY_LEN]> for MasterKey {
    fn from(bytes: [u8; KEY_LEN]) -> Self {
        MasterKey(bytes)
    }
}

impl MasterKey {
    /// Exactly 32 bytes, or [`JoseError::MasterKeyLength`].
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, JoseError> {
        <[u8; KEY_LEN]>::try_from(bytes)
            .map(MasterKey)
            .map_err(|_| JoseError::MasterKeyLength(bytes.len()))
    }

    /// A new random key (for `pforte admin` to print, or for dev mode).
    pub fn generate() -> Result<MasterKey, JoseError> {
        let mut bytes = [0u8; KEY_LEN];
        rand::fill(&mut bytes).map_err(|_| JoseError::Random)?;
        Ok(MasterKey(bytes))
    }

    /// Accepts standard or URL-safe base64, padded or not, with surrounding whitespace — people
    /// paste keys from `openssl rand -base64 32` as well as from JOSE tooling.
    pub fn from_base64(text: &str) -> Result<MasterKey, JoseError> {
        let config =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let text = text.trim();
        let bytes = if text.contains(['-', '_']) {
            GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(text)
        } else {
            GeneralPurpose::new(&alphabet::STANDARD, config).decode(text)
        }
        .map_err(|_| JoseError::MasterKeyEncoding)?;
        MasterKey::from_bytes(&bytes)
    }

    /// Standard base64 with padding (44 characters).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn aead(&self) -> Result<LessSafeKey, JoseError> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| JoseError::Seal)
    }

    /// Encrypts and authenticates `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, JoseError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| JoseError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| JoseError::Seal)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Reverses [`MasterKey::seal`]. Any change to the blob, a different key or a different
    /// `aad` gives [`JoseError::OpenFailed`].
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, JoseError> {
        let (version, rest) = match sealed {
            [version, rest @ ..] if rest.len() >= NONCE_LEN + TAG_LEN => (*version, rest),
            _ => return Err(JoseError::SealedTooShort(sealed.len())),
        };
        if version != VERSION {
            return Err(JoseError::SealVersion(version));
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| JoseError::OpenFailed)?;
        let mut body = body.to_vec();
        let plaintext = self
            .aead()?
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| JoseError::OpenFailed)?;
        Ok(plaintext.to_vec())
    }

    /// A 32-byte subkey for a purpose named by `label` (HMAC-SHA256(master key, label)), e.g.
    /// `"cookie"` or `"csrf"`. Different labels give independent keys; the master key itself
    /// never leaves this type.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.0),
            label.as_bytes(),
        );
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::generate().unwrap()
    }

    #[test]
    fn round_trip() {
        let k = key();
        for plaintext in [&b""[..], b"x", &[7u8; 1000]] {
            let sealed = k.seal(plaintext, b"realm/kid").unwrap();
            assert_eq!(sealed.len(), 1 + 12 + plaintext.len() + 16);
            assert_eq!(sealed[0], 1);
            assert_eq!(k.open(&sealed, b"realm/kid").unwrap(), plaintext);
        }
    }

    #[test]
    fn nonces_differ() {
        let k = key();
        assert_ne!(k.seal(b"same", b"").unwrap(), k.seal(b"same", b"").unwrap());
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = key().seal(b"secret", b"a").unwrap();
        assert_eq!(key().open(&sealed, b"a"), Err(JoseError::OpenFailed));
    }

    #[test]
    fn wrong_aad_fails() {
        let k = key();
        let sealed = k.seal(b"secret", b"realm-a/kid").unwrap();
        assert_eq!(k.open(&sealed, b"realm-b/kid"), Err(JoseError::OpenFailed));
        assert_eq!(k.open(&sealed, b""), Err(JoseError::OpenFailed));
    }

    #[test]
    fn every_tampered_byte_fails() {
        let k = key();
        let sealed = k.seal(b"secret", b"a").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let err = k.open(&bad, b"a").unwrap_err();
            if i == 0 {
                assert_eq!(err, JoseError::SealVersion(0));
            } else {
                assert_eq!(err, JoseError::OpenFailed, "byte {i}");
            }
        }
    }

    #[test]
    fn truncated_input_errors() {
        let k = key();
        let sealed = k.seal(b"secret", b"a").unwrap();
        for len in 0..sealed.len() {
            assert!(k.open(&sealed[..len], b"a").is_err(), "length {len}");
        }
        assert_eq!(k.open(&[], b"a"), Err(JoseError::SealedTooShort(0)));
        assert_eq!(k.open(&[1; 28], b"a"), Err(JoseError::SealedTooShort(28)));
        // Version, nonce and tag but no ciphertext: well-formed, still not authentic.
        assert_eq!(k.open(&[1; 29], b"a"), Err(JoseError::OpenFailed));
    }

    #[test]
    fn base64_forms() {
        let k = MasterKey::from(core::array::from_fn::<u8, 32, _>(|i| (i * 8 + 3) as u8));
        let standard = k.to_base64();
        assert_eq!(standard.len(), 44);
        assert!(
            standard.contains('+') || standard.contains('/'),
            "{standard}"
        );
        let url = standard.replace('+', "-").replace('/', "_");
        for text in [
            standard.clone(),
            standard.trim_end_matches('=').to_string(),
            url.clone(),
            url.trim_end_matches('=').to_string(),
            format!("  {standard}\n"),
        ] {
            assert_eq!(MasterKey::from_base64(&text).unwrap(), k, "{text:?}");
        }
    }

    #[test]
    fn base64_errors_are_clear() {
        let short = STANDARD.encode([1u8; 16]);
        let err = MasterKey::from_base64(&short).unwrap_err();
        assert_eq!(err.to_string(), "master key must be 32 bytes, got 16 bytes");
        assert_eq!(
            MasterKey::from_base64("not base64!"),
            Err(JoseError::MasterKeyEncoding)
        );
        assert_eq!(
            MasterKey::from_bytes(&[0; 33]),
            Err(JoseError::MasterKeyLength(33))
        );
    }

    #[test]
    fn debug_hides_key() {
        let k = MasterKey::from([0xab; 32]);
        assert_eq!(format!("{k:?}"), "MasterKey(..)");
    }

    #[test]
    fn derive_is_hmac_of_label() {
        let k = MasterKey::from([0x0b; 32]);
        let cookie = k.derive("cookie");
        assert_eq!(cookie, k.derive("cookie"));
        assert_ne!(cookie, k.derive("csrf"));
        assert_ne!(cookie, MasterKey::from([0x0c; 32]).derive("cookie"));
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 32]), b"cookie");
        assert_eq!(&cookie[..], expected.as_ref());
    }
}
