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
use crate::mechanism::LocalKey;
use crate::object::Object;
use crate::session::{KeyCache, Session};
use crate::token::{Entry, HandleMap, Token};
use arc_swap::ArcSwapOption;
use cryptoki_sys::*;
use parking_lot::{Mutex, RwLock};
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
    sessions: Sessions,
    /// The module epoch (`EPOCH`) this module was initialized in.
    epoch: u64,
    next_session: AtomicU64,
}

static MODULE: ArcSwapOption<Module> = ArcSwapOption::const_empty();

/// The initialized module, borrowed for one call (no reference count is touched).
pub struct ModuleRef(arc_swap::Guard<Option<Arc<Module>>>);

impl std::ops::Deref for ModuleRef {
    type Target = Module;
    fn deref(&self) -> &Module {
        // `module()` only builds a ModuleRef around Some.
        self.0.as_deref().expect("ModuleRef holds a module")
    }
}

/// The initialized module of this process, or `CKR_CRYPTOKI_NOT_INITIALIZED`.
pub fn module() -> Result<ModuleRef> {
    let g = MODULE.load();
    match g.as_deref() {
        Some(m) if m.is_this_process() => Ok(ModuleRef(g)),
        _ => Err(CKR_CRYPTOKI_NOT_INITIALIZED.into()),
    }
}

/// A session handle resolved: the session (locked by the caller) and its token.
pub struct SessionRef<'m> {
    pub session: Arc<Mutex<Session>>,
    pub token: &'m Token,
    pub slot: usize,
    pub rw: bool,
}

/// Shards of the session table: consecutive handles land in different shards, each on
/// its own cache line, so threads working on their own sessions share no lock word.
const SESSION_SHARDS: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Shard(RwLock<HandleMap<Arc<SessionSlot>>>);

#[derive(Default)]
struct Sessions([Shard; SESSION_SHARDS]);

impl Sessions {
    fn shard(&self, h: CK_SESSION_HANDLE) -> &RwLock<HandleMap<Arc<SessionSlot>>> {
        &self.0[(h as usize) % SESSION_SHARDS].0
    }

    /// Every (handle, slot entry), shard by shard.
    fn each(&self, mut f: impl FnMut(CK_SESSION_HANDLE, &SessionSlot)) {
        for sh in &self.0 {
            for (h, s) in sh.0.read().iter() {
                f(*h, s);
            }
        }
    }
}

impl Module {
    /// The token of a slot id.
    pub fn token(&self, slot: CK_SLOT_ID) -> Result<&Arc<Token>> {
        self.tokens
            .get(slot as usize)
            .ok_or(CKR_SLOT_ID_INVALID.into())
    }

    /// Resolve a session handle.
    pub fn session(&self, h: CK_SESSION_HANDLE) -> Result<SessionRef<'_>> {
        let map = self.sessions.shard(h).read();
        let s = map.get(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        remember(self.epoch, h, s);
        Ok(SessionRef {
            token: &self.tokens[s.slot],
            slot: s.slot,
            rw: s.rw,
            session: s.inner.clone(),
        })
    }

    /// (read-only, read-write) session counts of a token. Takes no session lock.
    pub fn session_counts(&self, slot: usize) -> (usize, usize) {
        let (mut ro, mut rw) = (0, 0);
        self.sessions.each(|_, s| match (s.slot == slot, s.rw) {
            (true, true) => rw += 1,
            (true, false) => ro += 1,
            _ => {}
        });
        (ro, rw)
    }

    fn add_session(&self, slot: usize, rw: bool) -> CK_SESSION_HANDLE {
        let h = self.next_session.fetch_add(1, Ordering::Relaxed) as CK_SESSION_HANDLE;
        let inner = Arc::new(Mutex::new(Session::default()));
        let token_generation = self.tokens[slot].generation_counter();
        self.sessions.shard(h).write().insert(
            h,
            Arc::new(SessionSlot {
                slot,
                rw,
                inner,
                token_generation,
            }),
        );
        h
    }

    fn remove_session(&self, h: CK_SESSION_HANDLE) -> Result<usize> {
        let s = self
            .sessions
            .shard(h)
            .write()
            .remove(&h)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?;
        // After the table's lock: no one takes it while holding a session's.
        s.inner.lock().close();
        Ok(s.slot)
    }

    fn sessions_of(&self, slot: usize) -> Vec<CK_SESSION_HANDLE> {
        let mut v = Vec::new();
        self.sessions.each(|h, s| {
            if s.slot == slot {
                v.push(h)
            }
        });
        v.sort_unstable();
        v
    }
}

/// A session table entry: what never changes is kept outside the session's lock.
pub struct SessionSlot {
    slot: usize,
    rw: bool,
    inner: Arc<Mutex<Session>>,
    /// The token's generation counter: the fast path checks the key cache with it.
    token_generation: Arc<AtomicU64>,
}

/// Bumped by every C_Initialize and C_Finalize: a thread's cached session (below) is
/// good only in the epoch it was cached in.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Called by C_Initialize and C_Finalize (under their lock).
pub(crate) fn new_epoch() -> u64 {
    EPOCH.fetch_add(1, Ordering::AcqRel) + 1
}

/// The session this thread last looked up, kept so that the next call on it (the usual
/// loop: C_EncryptInit, C_Encrypt, C_EncryptInit, …) needs neither the module nor the
/// session table: per call that saves the module's and the table's atomics (measured
/// at 4.5 ns each here, 6 of the 8 a call took: issue 6). It holds no token and no
/// secret once the session is closed (see `Session::closed`): a thread keeps a few
/// hundred bytes of a closed session until its next call.
struct CachedSession {
    epoch: u64,
    fork: u64,
    handle: CK_SESSION_HANDLE,
    slot: Arc<SessionSlot>,
}

thread_local! {
    static LAST_SESSION: std::cell::RefCell<Option<CachedSession>> =
        const { std::cell::RefCell::new(None) };
}

/// `f` on session `h`, locked: through this thread's cached session when it is `h` (see
/// [`cached_session`]), else through the module and the session table.
pub(crate) fn with_session<R>(
    h: CK_SESSION_HANDLE,
    f: impl FnOnce(&mut Session) -> Result<R>,
) -> Result<R> {
    let mut f = Some(f);
    if let Some(r) = cached_session(h, |g, _| f.take().map(|f| f(g))) {
        return r;
    }
    let f = f.ok_or_else(|| Error::general("session call already made"))?;
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    f(&mut g)
}

/// The fast path of an operation's init with `key` for (usage `flag`, `mech`): `start`
/// on session `h` when it is this thread's cached session and its key cache says the
/// key passed those checks in the token's current generation. None: take the slow way.
pub(crate) fn with_cached_key<R>(
    h: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    flag: CK_ATTRIBUTE_TYPE,
    mech: CK_MECHANISM_TYPE,
    start: impl FnOnce(&mut Session) -> Option<Result<R>>,
) -> Option<Result<R>> {
    cached_session(h, |g, generation| {
        let hit = g
            .key_cache
            .as_ref()
            .is_some_and(|c| c.hit(key, generation, flag, mech));
        if hit {
            start(g)
        } else {
            None
        }
    })
}

/// Remember `slot` as this thread's session `h` (see [`CachedSession`]).
fn remember(epoch: u64, h: CK_SESSION_HANDLE, slot: &Arc<SessionSlot>) {
    let _ = LAST_SESSION.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if !c
                .as_ref()
                .is_some_and(|c| c.handle == h && c.epoch == epoch && Arc::ptr_eq(&c.slot, slot))
            {
                *c = Some(CachedSession {
                    epoch,
                    fork: fork_generation(),
                    handle: h,
                    slot: slot.clone(),
                });
            }
        }
    });
}

/// The fast path of a call on session `h`: `f` with the session locked and its token's
/// current generation, when `h` is the session this thread last looked up, in this
/// module epoch and process, and still open; else None, and the caller takes the
/// slow path (module, session table), which also answers every error.
pub(crate) fn cached_session<R>(
    h: CK_SESSION_HANDLE,
    f: impl FnOnce(&mut Session, u64) -> Option<R>,
) -> Option<R> {
    // Without the fork handler "this process" costs a getpid(): no fast path.
    if !FORKS_WATCHED.load(Ordering::Relaxed) {
        return None;
    }
    LAST_SESSION
        .try_with(|c| {
            let c = c.try_borrow().ok()?;
            let c = c.as_ref()?;
            if c.handle != h
                || c.epoch != EPOCH.load(Ordering::Acquire)
                || c.fork != fork_generation()
            {
                return None;
            }
            let mut g = c.slot.inner.lock();
            if g.closed {
                return None;
            }
            f(&mut g, c.slot.token_generation.load(Ordering::Acquire))
        })
        .ok()
        .flatten()
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
    if e.obj()?.read().key_type.is_none() {
        return Err(invalid_rv.into());
    }
    Ok(e)
}

/// What an operation init asks of its key.
pub(crate) struct KeyUse {
    /// CKR_KEY_HANDLE_INVALID or another code for a bad handle (see [`key_entry`]).
    pub invalid_rv: CK_RV,
    /// The classes allowed for this use.
    pub classes: &'static [CK_OBJECT_CLASS],
    /// The usage attribute (CKA_ENCRYPT, CKA_SIGN…).
    pub flag: CK_ATTRIBUTE_TYPE,
    pub mech: CK_MECHANISM_TYPE,
}

/// The prepared key of handle `h` for `u`, checked (class, usage, allowed mechanisms),
/// and its CKA_ALWAYS_AUTHENTICATE; answered from the session's [`KeyCache`] when
/// the same key passed the same checks and the token has not changed since.
///
/// The key is lent from the cache: the operation takes the one reference it keeps, so
/// a repeated init touches the key's shared reference count once, not twice.
pub(crate) fn usable_key<'c>(
    token: &Token,
    cache: &'c mut Option<KeyCache>,
    h: CK_OBJECT_HANDLE,
    u: KeyUse,
) -> Result<(&'c Arc<LocalKey>, bool)> {
    // Read before checking: a change that races with the checks bumps it, so the
    // entry stored below is stale at once rather than wrongly current.
    let generation = token.generation();
    if cache
        .as_ref()
        .is_some_and(|c| c.hit(h, generation, u.flag, u.mech))
    {
        let c = cache
            .as_ref()
            .ok_or_else(|| Error::general("key cache emptied"))?;
        return Ok((&c.key, c.always_authenticate));
    }
    let e = key_entry(token, h, u.invalid_rv)?;
    let always_authenticate = {
        let o = e.obj()?.read();
        check_class(&o, u.classes)?;
        o.check_usage(u.flag, u.mech)?;
        o.bool_attr(CKA_ALWAYS_AUTHENTICATE)
    };
    let key = token.key(&e)?;
    let mut passed = [None; 4];
    passed[0] = Some((u.flag, u.mech));
    if let Some(c) = cache
        .take()
        .filter(|c| c.handle == h && c.generation == generation)
    {
        passed[1..].copy_from_slice(&c.passed[..3]);
    }
    let c = cache.insert(KeyCache {
        handle: h,
        generation,
        key,
        always_authenticate,
        passed,
        spare: None,
    });
    Ok((&c.key, always_authenticate))
}

impl Module {
    /// C_Finalize: every session closed (each waits for the call in it, if any).
    fn close_all_sessions(&self) {
        let mut sessions = Vec::new();
        self.sessions.each(|_, s| sessions.push(s.inner.clone()));
        for s in sessions {
            s.lock().close();
        }
    }

    /// Forget every session's cached key of token `slot` (an object went away: its
    /// prepared key must not outlive it in a cache).
    pub(crate) fn clear_key_caches(&self, slot: usize) {
        let mut sessions = Vec::new();
        self.sessions.each(|_, s| {
            if s.slot == slot {
                sessions.push(s.inner.clone());
            }
        });
        for s in sessions {
            s.lock().key_cache = None;
        }
    }
}

/// Check the class of a key for a use: `classes` lists the allowed ones.
pub(crate) fn check_class(o: &Object, classes: &[CK_OBJECT_CLASS]) -> Result<()> {
    if classes.contains(&o.class) {
        Ok(())
    } else {
        Err(CKR_KEY_TYPE_INCONSISTENT.into())
    }
}
