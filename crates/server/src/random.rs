//! The server's randomness: aws-lc-rs's generator, drawn in blocks per thread.
//!
//! Why blocks: each call of aws-lc's generator has a fixed cost beyond the bytes it returns
//! (it mixes fresh CPU entropy into its DRBG every time), and a token request draws
//! randomness several times in small pieces: a `jti` per token, a new refresh token. Taking
//! those pieces from a per-thread block of 4 KiB, refilled when used up, costs one call per
//! about a hundred pieces. The bytes are the generator's output all the same; each byte is
//! handed out once and zeroed as it is taken, so the randomness of tokens already issued
//! does not stay behind in the block.

use std::cell::RefCell;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use pforte_core::rng::Rng;

const BLOCK: usize = 4096;
/// Larger requests (none on request paths) go to the generator directly.
const FROM_BLOCK_MAX: usize = 256;

struct Block {
    bytes: Box<[u8; BLOCK]>,
    /// How many bytes from the start have been handed out (and zeroed).
    used: usize,
}

thread_local! {
    static BLOCKS: RefCell<Block> = RefCell::new(Block {
        bytes: Box::new([0; BLOCK]),
        used: BLOCK,
    });
}

/// Randomness from the operating system's generator (via aws-lc-rs).
pub struct SystemRng(SystemRandom);

impl SystemRng {
    pub fn new() -> SystemRng {
        SystemRng(SystemRandom::new())
    }

    fn direct(&self, dest: &mut [u8]) {
        // It only fails when the operating system has no entropy source; a zeroed buffer
        // must never be mistaken for randomness, so the process ends instead.
        if self.0.fill(dest).is_err() {
            tracing::error!("the operating system's random source failed");
            std::process::abort();
        }
    }

    fn take_from_block(&self, block: &mut Block, dest: &mut [u8]) {
        let mut filled = 0;
        while filled < dest.len() {
            if block.used == BLOCK {
                self.direct(&mut block.bytes[..]);
                block.used = 0;
            }
            let n = (dest.len() - filled).min(BLOCK - block.used);
            let taken = &mut block.bytes[block.used..block.used + n];
            dest[filled..filled + n].copy_from_slice(taken);
            taken.fill(0);
            block.used += n;
            filled += n;
        }
    }
}

impl Default for SystemRng {
    fn default() -> Self {
        SystemRng::new()
    }
}

impl Rng for SystemRng {
    fn fill(&self, dest: &mut [u8]) {
        if dest.len() > FROM_BLOCK_MAX {
            return self.direct(dest);
        }
        // The block is out of reach only while its thread ends (or, which cannot happen
        // here, while it is borrowed): then the generator answers directly.
        let served = BLOCKS
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut block) => {
                    self.take_from_block(&mut block, dest);
                    true
                }
                Err(_) => false,
            })
            .unwrap_or(false);
        if !served {
            self.direct(dest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_differ_and_span_refills() {
        let rng = SystemRng::new();
        let mut seen = std::collections::HashSet::new();
        // 3 blocks' worth of 24-byte pieces: the block is refilled on the way, and a piece
        // may straddle two blocks.
        for _ in 0..(3 * BLOCK / 24 + 1) {
            let mut piece = [0u8; 24];
            rng.fill(&mut piece);
            assert_ne!(piece, [0u8; 24]);
            assert!(seen.insert(piece), "a piece came out twice");
        }
    }

    #[test]
    fn taken_bytes_are_zeroed_in_the_block() {
        let rng = SystemRng::new();
        let mut piece = [0u8; 32];
        rng.fill(&mut piece);
        BLOCKS.with_borrow(|block| {
            assert!(block.used >= 32);
            assert!(block.bytes[..block.used].iter().all(|b| *b == 0));
            assert!(
                block.bytes[block.used..].iter().any(|b| *b != 0),
                "the rest is still unused randomness"
            );
        });
    }

    #[test]
    fn large_requests_are_served_whole() {
        let rng = SystemRng::new();
        let mut big = vec![0u8; 10 * BLOCK];
        rng.fill(&mut big);
        // 40 KiB of zeros at the end would mean the buffer was not filled.
        assert!(big[9 * BLOCK..].iter().any(|b| *b != 0));
        assert!(big[..BLOCK].iter().any(|b| *b != 0));
    }
}
