//! The embedded local backend: an HSM-like partition in the token store.
//!
//! Key hierarchy: a random 256-bit master key (the local KEK) is stored only wrapped
//! (AES-256-GCM) under keys derived with Argon2id from the SO PIN and from the user PIN.
//! PIN verification is memory-hard as well. Every wrapped blob binds the token identity
//! and the object identity as associated data.

use crate::error::Result;
use crate::store::Store;
use cryptoki_sys::*;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The unwrapped token master key, present in memory only while someone is logged in.
pub struct MasterKey(pub(crate) Zeroizing<[u8; 32]>);

/// The local backend of one token.
pub struct LocalBackend {
    store: Arc<Store>,
}

impl LocalBackend {
    pub fn new(store: Arc<Store>) -> LocalBackend {
        LocalBackend { store }
    }

    pub fn with_max_attempts(store: Arc<Store>, _n: u32) -> LocalBackend {
        LocalBackend { store }
    }

    pub fn serial_number(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// The store this backend lives in.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// True once C_InitToken has run.
    pub fn is_initialized(&self) -> Result<bool> {
        Ok(false)
    }

    /// The token label set by C_InitToken (already trimmed), if initialized.
    pub fn label(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// CKF_TOKEN_INITIALIZED, CKF_USER_PIN_INITIALIZED and the PIN counter flags
    /// (CKF_{USER,SO}_PIN_{COUNT_LOW,FINAL_TRY,LOCKED}).
    pub fn token_flags(&self) -> Result<CK_FLAGS> {
        Ok(0)
    }

    /// C_InitToken: on a fresh token set the SO PIN; on an initialized one the SO PIN must
    /// match (failures count toward lockout). Creates a new master key, destroys every
    /// object and the user PIN.
    pub fn init_token(&self, _so_pin: &[u8], _label: &str) -> Result<()> {
        Ok(())
    }

    /// C_Login: verify the PIN (CKR_PIN_INCORRECT, CKR_PIN_LOCKED,
    /// CKR_USER_PIN_NOT_INITIALIZED) and return the unwrapped master key.
    pub fn login(&self, _user: CK_USER_TYPE, _pin: &[u8]) -> Result<MasterKey> {
        Err(CKR_PIN_INCORRECT.into())
    }

    /// C_InitPIN (SO logged in, holding `master`): set or reset the user PIN, unlocking it.
    pub fn init_pin(&self, _master: &MasterKey, _pin: &[u8]) -> Result<()> {
        Ok(())
    }

    /// C_SetPIN for `user` (CKU_USER or CKU_SO): old PIN verified (counts failures).
    pub fn set_pin(&self, _user: CK_USER_TYPE, _old: &[u8], _new: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Wrap an object's secret under the master key, bound to token and `object_uid`.
    pub fn wrap(&self, _master: &MasterKey, _object_uid: &[u8; 16], _plain: &[u8]) -> Result<Vec<u8>> {
        Ok(vec![])
    }

    /// Unwrap what `wrap` produced; any mismatch (other token, other object, tampering)
    /// is `CKR_DEVICE_ERROR` with a log line naming the object, never the bytes.
    pub fn unwrap(&self, _master: &MasterKey, _object_uid: &[u8; 16], _blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(vec![]))
    }
}
