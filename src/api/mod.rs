//! The PKCS#11 API in safe Rust, one file per chapter of the spec (§5). `ffi/` turns
//! C arguments into these typed calls and their results back into C.

pub mod crypt;
pub mod digest;
pub mod general;
pub mod keys;
pub mod object;
pub mod random;
pub mod session;
pub mod sign;
pub mod slot;

use crate::error::{Error, Result};
use crate::object::Object;
use crate::session::Session;
use crate::token::{Entry, Token};
use cryptoki_sys::*;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bumped in the child of every fork() (a pthread_atfork handler that `ffi/` installs),
/// so telling "this process initialized" costs one atomic load per call, not a getpid()
/// system call. The pid is kept too, for the slow path in C_Initialize.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Called in the child after fork() (async-signal-safe: one atomic add).
pub fn note_fork() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Whether the fork handler is installed; without it every call checks the pid.
static FORKS_WATCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `ffi/` says the handler is in place.
pub fn forks_watched() {
    FORKS_WATCHED.store(true, Ordering::Release);
}

fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

impl Module {
    fn is_this_process(&self) -> bool {
        if FORKS_WATCHED.load(Ordering::Acquire) {
            self.generation == fork_generation()
        } else {
            self.pid == std::process::id()
        }
    }
}

/// The library's state between C_Initialize and C_Finalize.
pub struct Module {
    /// The process that initialized: after fork() the child must initialize anew.
    pid: u32,
    /// The fork generation at C_Initialize (see `FORK_GENERATION`).
    generation: u64,
    pub tokens: Vec<Arc<Token>>,
    sessions: RwLock<HashMap<CK_SESSION_HANDLE, Arc<SessionSlot>>>,
    next_session: AtomicU64,
}

static MODULE: RwLock<Option<Arc<Module>>> = RwLock::new(None);

/// The initialized module of this process, or `CKR_CRYPTOKI_NOT_INITIALIZED`.
pub fn module() -> Result<Arc<Module>> {
    match MODULE.read().as_ref() {
        Some(m) if m.is_this_process() => Ok(m.clone()),
        _ => Err(CKR_CRYPTOKI_NOT_INITIALIZED.into()),
    }
}

/// A session handle resolved: the session (locked by the caller) and its token.
pub struct SessionRef {
    pub session: Arc<Mutex<Session>>,
    pub token: Arc<Token>,
    pub slot: usize,
    pub rw: bool,
}

impl Module {
    /// The token of a slot id.
    pub fn token(&self, slot: CK_SLOT_ID) -> Result<&Arc<Token>> {
        self.tokens
            .get(slot as usize)
            .ok_or(CKR_SLOT_ID_INVALID.into())
    }

    /// Resolve a session handle.
    pub fn session(&self, h: CK_SESSION_HANDLE) -> Result<SessionRef> {
        let s = self
            .sessions
            .read()
            .get(&h)
            .cloned()
            .ok_or(CKR_SESSION_HANDLE_INVALID)?;
        Ok(SessionRef {
            token: self.tokens[s.slot].clone(),
            slot: s.slot,
            rw: s.rw,
            session: s.inner.clone(),
        })
    }

    /// (read-only, read-write) session counts of a token. Takes no session lock.
    pub fn session_counts(&self, slot: usize) -> (usize, usize) {
        let map = self.sessions.read();
        let rw = map.values().filter(|s| s.slot == slot && s.rw).count();
        let ro = map.values().filter(|s| s.slot == slot && !s.rw).count();
        (ro, rw)
    }

    fn add_session(&self, slot: usize, rw: bool) -> CK_SESSION_HANDLE {
        let h = self.next_session.fetch_add(1, Ordering::Relaxed) as CK_SESSION_HANDLE;
        let inner = Arc::new(Mutex::new(Session::default()));
        self.sessions
            .write()
            .insert(h, Arc::new(SessionSlot { slot, rw, inner }));
        h
    }

    fn remove_session(&self, h: CK_SESSION_HANDLE) -> Result<usize> {
        let s = self
            .sessions
            .write()
            .remove(&h)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?;
        Ok(s.slot)
    }

    fn sessions_of(&self, slot: usize) -> Vec<CK_SESSION_HANDLE> {
        self.sessions
            .read()
            .iter()
            .filter(|(_, s)| s.slot == slot)
            .map(|(h, _)| *h)
            .collect()
    }
}

/// A session table entry: what never changes is kept outside the session's lock.
pub struct SessionSlot {
    slot: usize,
    rw: bool,
    inner: Arc<Mutex<Session>>,
}

/// Resolve a key handle for an operation: invalid handles become `invalid_rv`
/// (CKR_KEY_HANDLE_INVALID, CKR_WRAPPING_KEY_HANDLE_INVALID, …).
pub(crate) fn key_entry(
    token: &Token,
    h: CK_OBJECT_HANDLE,
    invalid_rv: CK_RV,
) -> Result<Arc<Entry>> {
    let e = token.entry(h).map_err(|e| {
        if e.rv() == CKR_OBJECT_HANDLE_INVALID {
            Error::new(invalid_rv)
        } else {
            e
        }
    })?;
    if e.obj.read().key_type.is_none() {
        return Err(invalid_rv.into());
    }
    Ok(e)
}

/// Check the class of a key for a use: `classes` lists the allowed ones.
pub(crate) fn check_class(o: &Object, classes: &[CK_OBJECT_CLASS]) -> Result<()> {
    if classes.contains(&o.class) {
        Ok(())
    } else {
        Err(CKR_KEY_TYPE_INCONSISTENT.into())
    }
}
