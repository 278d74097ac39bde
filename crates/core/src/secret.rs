//! Secrets at rest: client secrets (high entropy, generated) get a fast keyed-free hash;
//! user passwords (low entropy, chosen by people) get Argon2id.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::rng::Rng;

/// SHA-256, base64url. Right for secrets with ≥128 bits of entropy (client secrets, codes,
/// refresh tokens): no salt or stretching is needed to make guessing hopeless.
pub fn hash_token(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

pub fn hash_client_secret(secret: &str) -> String {
    format!("sha256:{}", hash_token(secret))
}

pub fn verify_client_secret(secret: &str, stored: &str) -> bool {
    let computed = hash_client_secret(secret);
    verify_slices_are_equal(computed.as_bytes(), stored.as_bytes()).is_ok()
}

/// Argon2id cost. Production uses OWASP's recommendation; tests use the minimum so that
/// suites stay fast (the cost is a parameter, never a code path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl PasswordCost {
    pub const PRODUCTION: PasswordCost = PasswordCost {
        memory_kib: 19 * 1024,
        iterations: 2,
    };
    pub const MINIMUM: PasswordCost = PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

fn argon2(cost: PasswordCost) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| PasswordError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password(
    password: &str,
    cost: PasswordCost,
    rng: &dyn Rng,
) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    argon2(cost)?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Verifies with the parameters recorded in the PHC string, whatever the current cost.
pub fn verify_password(password: &str, phc: &str) -> bool {
    // `str` verification parses the PHC string and uses the parameters recorded in it.
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::CountingRng;

    #[test]
    fn client_secret_round_trip() {
        let h = hash_client_secret("s3cret");
        assert!(verify_client_secret("s3cret", &h));
        assert!(!verify_client_secret("s3creT", &h));
        assert!(!h.contains("s3cret"));
    }

    #[test]
    fn password_round_trip() {
        let h = hash_password("pw", PasswordCost::MINIMUM, &CountingRng::default()).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("pw", &h));
        assert!(!verify_password("pW", &h));
        assert!(!verify_password("pw", "garbage"));
    }
}
