//! General-purpose functions (§5.4): C_Initialize, C_Finalize, C_GetInfo.

use super::{Module, MODULE};
use crate::config;
use crate::error::{Error, Result};
use crate::token::Token;
use cryptoki_sys::*;
use parking_lot::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

static INIT: Mutex<()> = Mutex::new(());

/// C_Initialize, after `ffi/` has checked and copied the arguments. `reserved` is the
/// pReserved string, which may name the configuration file.
pub fn initialize(reserved: Option<String>) -> Result<()> {
    let _g = INIT.lock();
    let pid = std::process::id();
    let current = MODULE.load_full();
    if let Some(old) = current {
        if old.pid == pid && old.is_this_process() {
            return Err(CKR_CRYPTOKI_ALREADY_INITIALIZED.into());
        }
        // Inherited across fork(): the parent's state (SQLite connections among it)
        // must not be touched, let alone closed, by the child.
        std::mem::forget(old);
        std::mem::forget(MODULE.swap(None));
    }
    let cfg = config::load(reserved.as_deref()).map_err(|msg| {
        eprintln!("{msg}");
        Error::msg(CKR_GENERAL_ERROR, msg)
    })?;
    crate::log::configure(cfg.log_level, cfg.log_file.as_deref()).map_err(|msg| {
        eprintln!("{msg}");
        Error::msg(CKR_GENERAL_ERROR, msg)
    })?;
    let mut tokens = Vec::new();
    for (i, t) in cfg.token.iter().enumerate() {
        let tok = Token::open(i as CK_SLOT_ID, t.clone()).map_err(|e| {
            let msg = format!(
                "p11kms: token \"{}\" ({}): {e}",
                t.label,
                t.store_path().display()
            );
            eprintln!("{msg}");
            // C_Initialize may answer only what §5.4 lists: a store it cannot open or
            // read (CKR_DEVICE_ERROR, CKR_TOKEN_NOT_RECOGNIZED inside) is a failure of
            // the function; stderr and the log name the token and the cause.
            let rv = match e.rv() {
                CKR_HOST_MEMORY | CKR_GENERAL_ERROR | CKR_CANT_LOCK => e.rv(),
                _ => CKR_FUNCTION_FAILED,
            };
            Error::msg(rv, msg)
        })?;
        tokens.push(Arc::new(tok));
    }
    MODULE.store(Some(Arc::new(Module {
        pid,
        generation: super::fork_generation(),
        tokens,
        sessions: Default::default(),
        epoch: super::new_epoch(),
        next_session: AtomicU64::new(1),
    })));
    Ok(())
}

/// C_Finalize.
pub fn finalize() -> Result<()> {
    let _g = INIT.lock();
    let Some(old) = MODULE.load_full() else {
        return Err(CKR_CRYPTOKI_NOT_INITIALIZED.into());
    };
    if !(old.pid == std::process::id() && old.is_this_process()) {
        return Err(CKR_CRYPTOKI_NOT_INITIALIZED.into());
    }
    MODULE.store(None);
    // Threads' cached sessions are stale from here; close the sessions too, which
    // waits for the calls in them and leaves no key behind in a thread's cache.
    super::new_epoch();
    old.close_all_sessions();
    Ok(())
}

/// C_GetInfo.
pub fn info() -> Result<CK_INFO> {
    super::module()?;
    Ok(CK_INFO {
        cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
        manufacturerID: pad32("p11kms"),
        flags: 0,
        libraryDescription: pad32("p11kms PKCS#11 module"),
        libraryVersion: crate_version(),
    })
}

/// The crate version as a CK_VERSION.
pub fn crate_version() -> CK_VERSION {
    let mut it = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u8>().unwrap_or(0));
    CK_VERSION {
        major: it.next().unwrap_or(0),
        minor: it.next().unwrap_or(0),
    }
}

/// Blank-padded fixed-width field.
pub fn pad<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let b = s.as_bytes();
    // Cut at a character boundary so the field stays valid UTF-8.
    let mut n = b.len().min(N);
    while n > 0 && !s.is_char_boundary(n) {
        n -= 1;
    }
    out[..n].copy_from_slice(&b[..n]);
    out
}

pub fn pad32(s: &str) -> [u8; 32] {
    pad::<32>(s)
}
