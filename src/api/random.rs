//! Random number generation (§5.15).

use super::module;
use crate::error::Result;
use crate::mechanism;
use cryptoki_sys::*;

/// C_GenerateRandom.
pub fn generate(h: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
    module()?.session(h)?;
    mechanism::random(out)
}

/// C_SeedRandom: the RNG is the system's and takes no seed.
pub fn seed(h: CK_SESSION_HANDLE) -> Result<()> {
    module()?.session(h)?;
    Err(CKR_RANDOM_SEED_NOT_SUPPORTED.into())
}
