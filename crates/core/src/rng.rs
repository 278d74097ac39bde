//! Randomness as a parameter, so that tests can be deterministic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub trait Rng: Send + Sync {
    fn fill(&self, dest: &mut [u8]);
}

/// `n` random bytes, base64url without padding: codes, tokens, ids.
pub fn token(rng: &dyn Rng, n: usize) -> String {
    let mut buf = vec![0u8; n];
    rng.fill(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A random (version 4) UUID in its text form, as Keycloak uses for ids.
pub fn uuid(rng: &dyn Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A deterministic generator for tests: a counter, never for production.
#[derive(Default)]
pub struct CountingRng(std::sync::atomic::AtomicU64);

impl Rng for CountingRng {
    fn fill(&self, dest: &mut [u8]) {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (i, b) in dest.iter_mut().enumerate() {
            *b = (n.wrapping_mul(31).wrapping_add(i as u64) & 0xff) as u8 ^ (n >> 8) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid(&CountingRng::default());
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn tokens_differ() {
        let r = CountingRng::default();
        assert_ne!(token(&r, 32), token(&r, 32));
    }
}
