//! pforte's domain. Pure logic: no HTTP, no SQL, no clock, no ambient randomness.
//! Time arrives as `now: Timestamp`, randomness through [`rng::Rng`].

pub mod model;
pub mod representation;
pub mod rng;
pub mod secret;
pub mod store;

pub use model::Timestamp;
pub use store::{Store, StoreError, StoreResult};
