//! A token (one slot): login state, PIN operations through the backend, and the objects
//! it holds — token objects mirrored from the store, session objects in memory only.

#[cfg(kms)]
mod remote;

#[cfg(kms)]
use crate::backend::kms::{kek_error, Kms, Listing, NewKeyPair, PairKind, WrapContext};
use crate::backend::local::{LocalBackend, MasterKey};
use crate::backend::Kek;
use crate::config::TokenConfig;
use crate::error::{Error, Result};
use crate::mechanism::{KeyMaterial, LocalKey, Mechanism};
use crate::object::{Attr, Object, Secret, Summary};
#[cfg(kms)]
use crate::store::hex;
use crate::store::{Store, StoredObject};
use cryptoki_sys::*;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Process-wide object handle counter: handles are never reused within a process.
static NEXT_OBJECT: AtomicU64 = AtomicU64::new(1);

fn next_handle() -> CK_OBJECT_HANDLE {
    NEXT_OBJECT.fetch_add(1, Ordering::Relaxed) as CK_OBJECT_HANDLE
}

/// A hasher for handles (counters we hand out, never attacker-chosen keys): one
/// multiplication instead of SipHash on every lookup.
#[derive(Default, Clone, Copy)]
pub struct HandleHasher(u64);

impl std::hash::Hasher for HandleHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by handles.
pub type HandleMap<V> = HashMap<CK_ULONG, V, std::hash::BuildHasherDefault<HandleHasher>>;

/// A set of handles.
type HandleSet = HashSet<CK_OBJECT_HANDLE, std::hash::BuildHasherDefault<HandleHasher>>;

/// One object with its process-local handle and its prepared key. An object loaded
/// from the store is decoded on first use: opening a token with many objects costs one
/// read of the store and a [`Summary`] per object, not a full decoding.
pub struct Entry {
    pub handle: CK_OBJECT_HANDLE,
    /// The owning session of a session object.
    pub session: Option<CK_SESSION_HANDLE>,
    /// The object's uid (it never changes).
    pub uid: [u8; 16],
    obj: OnceLock<RwLock<Object>>,
    /// The stored form of an entry not decoded yet.
    pending: Mutex<Option<StoredObject>>,
    /// Class, CKA_PRIVATE, CKA_LABEL, CKA_ID: what the index and visibility checks read.
    summary: RwLock<Summary>,
    /// Read-mostly: every operation init clones the Arc; only the first use writes.
    key: RwLock<Option<Arc<LocalKey>>>,
    /// The KMS key id of an object mirrored from a KMS key (not a row of the store).
    pub remote: Option<String>,
}

impl Entry {
    fn new(obj: Object, session: Option<CK_SESSION_HANDLE>) -> Arc<Entry> {
        Arc::new(Entry::decoded(obj, session, None))
    }

    fn decoded(obj: Object, session: Option<CK_SESSION_HANDLE>, remote: Option<String>) -> Entry {
        Entry {
            handle: next_handle(),
            session,
            uid: obj.uid,
            summary: RwLock::new(obj.summary()),
            obj: OnceLock::from(RwLock::new(obj)),
            pending: Mutex::new(None),
            key: RwLock::new(None),
            remote,
        }
    }

    /// An entry for a stored object, decoded later. A blob that does not summarize
    /// (corrupt) is an error now, as a full decoding would be.
    fn stored(s: StoredObject) -> Result<Arc<Entry>> {
        Ok(Arc::new(Entry {
            handle: next_handle(),
            session: None,
            uid: s.uid,
            summary: RwLock::new(summary_of(&s)?),
            obj: OnceLock::new(),
            pending: Mutex::new(Some(s)),
            key: RwLock::new(None),
            remote: None,
        }))
    }

    /// The object, decoding it on first use.
    pub fn obj(&self) -> Result<&RwLock<Object>> {
        if let Some(o) = self.obj.get() {
            return Ok(o);
        }
        let mut p = self.pending.lock();
        if let Some(o) = self.obj.get() {
            return Ok(o);
        }
        let s = p
            .as_ref()
            .ok_or_else(|| Error::general("object entry without a form"))?;
        let o = Object::from_stored(s.uid, &s.attrs, s.secret.clone())?;
        let r = self.obj.get_or_init(|| RwLock::new(o));
        *p = None;
        Ok(r)
    }

    /// The same object under a new handle (its old handle becomes invalid), with no
    /// prepared key.
    fn rehandled(&self) -> Entry {
        let pending = self.pending.lock();
        Entry {
            handle: next_handle(),
            session: self.session,
            uid: self.uid,
            obj: match self.obj.get() {
                Some(o) => OnceLock::from(RwLock::new(o.read().clone())),
                None => OnceLock::new(),
            },
            pending: Mutex::new(pending.clone()),
            summary: RwLock::new(self.summary.read().clone()),
            key: RwLock::new(None),
            remote: self.remote.clone(),
        }
    }

    /// The object if it was decoded already.
    fn decoded_obj(&self) -> Option<&RwLock<Object>> {
        self.obj.get()
    }

    /// Whether the object is private (no decoding).
    pub fn is_private(&self) -> bool {
        self.summary.read().private
    }

    /// The object's class (no decoding).
    pub fn class(&self) -> CK_OBJECT_CLASS {
        self.summary.read().class
    }

    /// Take the stored form `s` of this entry's object (another process changed it):
    /// a changed object is replaced and its prepared key forgotten.
    fn refresh_from(&self, s: StoredObject) -> Result<()> {
        let mut p = self.pending.lock();
        match self.obj.get() {
            None => {
                if p.as_ref() != Some(&s) {
                    *self.summary.write() = summary_of(&s)?;
                    *p = Some(s);
                    *self.key.write() = None;
                }
            }
            Some(lock) => {
                let mut o = lock.write();
                let same = o.encode_attrs() == s.attrs
                    && match (&o.secret, &s.secret) {
                        (Secret::Plain(_), Some(_)) => true,
                        (Secret::Wrapped(a), Some(b)) => a == b,
                        (Secret::None, None) => true,
                        _ => false,
                    };
                if !same {
                    let fresh = Object::from_stored(s.uid, &s.attrs, s.secret)?;
                    *self.summary.write() = fresh.summary();
                    *o = fresh;
                    *self.key.write() = None;
                }
            }
        }
        Ok(())
    }
}

fn summary_of(s: &StoredObject) -> Result<Summary> {
    crate::object::summarize(&s.attrs).ok_or_else(|| {
        Error::device(format!(
            "object {}: corrupt attributes",
            crate::store::hex(&s.uid)
        ))
    })
}

/// A token's objects by handle, indexed by CKA_LABEL, CKA_ID and class. These methods
/// are the only way the map changes, so the indexes cannot drift from it.
#[derive(Default)]
struct Objects {
    map: HandleMap<Arc<Entry>>,
    by_label: HashMap<Vec<u8>, HandleSet>,
    by_id: HashMap<Vec<u8>, HandleSet>,
    by_class: HandleMap<HandleSet>,
}

impl Objects {
    fn index(&mut self, h: CK_OBJECT_HANDLE, s: &Summary) {
        fn put(m: &mut HashMap<Vec<u8>, HandleSet>, k: &[u8], h: CK_OBJECT_HANDLE) {
            match m.get_mut(k) {
                Some(set) => {
                    set.insert(h);
                }
                None => {
                    m.insert(k.to_vec(), HandleSet::from_iter([h]));
                }
            }
        }
        if let Some(l) = s.get(CKA_LABEL) {
            put(&mut self.by_label, l, h);
        }
        if let Some(i) = s.get(CKA_ID) {
            put(&mut self.by_id, i, h);
        }
        self.by_class.entry(s.class).or_default().insert(h);
    }

    fn unindex(&mut self, h: CK_OBJECT_HANDLE, s: &Summary) {
        fn out<K: std::hash::Hash + Eq, S: std::hash::BuildHasher>(
            m: &mut HashMap<K, HandleSet, S>,
            k: &K,
            h: CK_OBJECT_HANDLE,
        ) {
            if let Some(set) = m.get_mut(k) {
                set.remove(&h);
                if set.is_empty() {
                    m.remove(k);
                }
            }
        }
        if let Some(l) = s.get(CKA_LABEL) {
            out(&mut self.by_label, &l.to_vec(), h);
        }
        if let Some(i) = s.get(CKA_ID) {
            out(&mut self.by_id, &i.to_vec(), h);
        }
        out(&mut self.by_class, &s.class, h);
    }

    fn insert(&mut self, e: Arc<Entry>) {
        let h = e.handle;
        self.remove(h);
        self.index(h, &e.summary.read());
        self.map.insert(h, e);
    }

    fn remove(&mut self, h: CK_OBJECT_HANDLE) -> Option<Arc<Entry>> {
        let e = self.map.remove(&h)?;
        let s = e.summary.read().clone();
        self.unindex(h, &s);
        Some(e)
    }

    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        let gone: Vec<CK_OBJECT_HANDLE> = self
            .map
            .values()
            .filter(|e| !keep(e))
            .map(|e| e.handle)
            .collect();
        for h in gone {
            self.remove(h);
        }
    }

    fn clear(&mut self) {
        *self = Objects::default();
    }

    fn get(&self, h: CK_OBJECT_HANDLE) -> Option<&Arc<Entry>> {
        self.map.get(&h)
    }

    fn values(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.map.values()
    }

    /// Re-index an entry whose summarized attributes changed.
    fn resummarize(&mut self, h: CK_OBJECT_HANDLE, next: Summary) {
        let Some(e) = self.map.get(&h).cloned() else {
            return;
        };
        let old = std::mem::replace(&mut *e.summary.write(), next.clone());
        self.unindex(h, &old);
        self.index(h, &next);
    }

    /// The handles that can match `t`: the smallest index bucket `t` selects (by
    /// label, id or class), or every handle when `t` names none of them.
    fn candidates(&self, t: &[Attr]) -> Vec<CK_OBJECT_HANDLE> {
        let mut best: Option<&HandleSet> = None;
        let empty = HandleSet::default();
        for (ty, v) in t {
            let set = match *ty {
                CKA_LABEL => self.by_label.get(v.as_slice()),
                CKA_ID => self.by_id.get(v.as_slice()),
                CKA_CLASS => match crate::object::attrs::as_ulong(v) {
                    Some(c) => self.by_class.get(&c),
                    None => None,
                },
                _ => continue,
            };
            let set = set.unwrap_or(&empty);
            if best.is_none_or(|b| set.len() < b.len()) {
                best = Some(set);
            }
        }
        match best {
            Some(b) => b.iter().copied().collect(),
            None => self.map.keys().copied().collect(),
        }
    }
}

/// When this process last tried to fetch the KMS listing (failures are retried after
/// a pause, not on every C_FindObjectsInit, and never cached as a result).
#[derive(Default)]
struct RemoteState {
    #[cfg_attr(not(kms), allow(dead_code))]
    last_attempt: Option<std::time::Instant>,
}

/// Seconds between two listing fetches after a failed one.
#[cfg(kms)]
const RETRY_AFTER_FAILURE_SECS: u64 = 30;

/// Who is logged in (application-wide per token, §5.6).
#[derive(Default)]
struct Login {
    user: Option<CK_USER_TYPE>,
    master: Option<Arc<MasterKey>>,
}

/// One token.
pub struct Token {
    pub slot_id: CK_SLOT_ID,
    pub config: TokenConfig,
    backend: LocalBackend,
    kek: Kek,
    #[cfg_attr(not(kms), allow(dead_code))]
    remote_state: Mutex<RemoteState>,
    login: RwLock<Login>,
    objects: RwLock<Objects>,
    /// Serializes reloads from the store with this process's own token-object changes
    /// (store write + map update as one step), so a reload never sees half a change: a
    /// committed row whose entry is not in the map yet (a second entry for the object),
    /// or an entry whose row is not committed yet (the object dropped or its change lost).
    reload: Mutex<()>,
    /// Bumped by every change that can alter what a handle resolves to or what its
    /// object allows (login state, objects replaced, changed or removed): sessions'
    /// key caches are valid only for the generation they were filled in.
    generation: Arc<AtomicU64>,
}

impl Token {
    /// Open the token's store and load its objects.
    pub fn open(slot_id: CK_SLOT_ID, config: TokenConfig) -> Result<Token> {
        let store = Arc::new(Store::open(&config.store_path())?);
        let kek = match config.backend {
            #[cfg(feature = "aws")]
            crate::config::BackendKind::Aws => Kek::Kms(Kms::Aws(Arc::new(
                crate::backend::aws::AwsBackend::new(&config, store.clone())?,
            ))),
            #[cfg(feature = "gcp")]
            crate::config::BackendKind::Gcp => Kek::Kms(Kms::Gcp(Arc::new(
                crate::backend::gcp::GcpBackend::new(&config, store.clone())?,
            ))),
            _ => Kek::Local,
        };
        let backend = match config.max_pin_attempts {
            Some(n) => LocalBackend::with_max_attempts(store, n),
            None => LocalBackend::new(store),
        };
        let t = Token {
            slot_id,
            config,
            backend,
            kek,
            remote_state: Mutex::new(RemoteState::default()),
            login: RwLock::new(Login::default()),
            objects: RwLock::new(Objects::default()),
            reload: Mutex::new(()),
            generation: Arc::new(AtomicU64::new(0)),
        };
        t.reload_from_store()?;
        Ok(t)
    }

    /// See the `generation` field.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The counter behind [`Token::generation`], for a session's fast path, which
    /// checks its key cache without reaching the token (`api::cached_session`).
    pub fn generation_counter(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn store(&self) -> &Arc<Store> {
        self.backend.store()
    }

    /// Mirror the store's token objects: keep handles of known uids, add new ones, drop
    /// vanished ones. Plain secrets already unwrapped stay if the stored blob is unchanged.
    fn reload_from_store(&self) -> Result<()> {
        let _g = self.reload.lock();
        let stored = self.store().objects()?;
        let mut map = self.objects.write();
        let mut by_uid: HashMap<[u8; 16], Arc<Entry>> = map
            .values()
            .filter(|e| e.session.is_none() && e.remote.is_none())
            .map(|e| (e.uid, e.clone()))
            .collect();
        map.retain(|e| e.session.is_some() || e.remote.is_some());
        for s in stored {
            match by_uid.remove(&s.uid) {
                Some(e) => {
                    e.refresh_from(s)?;
                    map.insert(e);
                }
                None => map.insert(Entry::stored(s)?),
            }
        }
        drop(map);
        self.changed();
        #[cfg(kms)]
        if let Kek::Kms(b) = &self.kek {
            // From the cache only: opening a token or noticing another process's commit
            // costs no KMS call.
            match b.listing().get() {
                Ok(Some(l)) => self.sync_remote(b, &l),
                Ok(None) => {}
                Err(e) => log_at!(Warn, "token \"{}\": {e}", self.config.label),
            }
        }
        Ok(())
    }

    /// Mirror a KMS listing: keep the entries of keys still listed, add new keys, drop
    /// vanished ones. A key whose objects cannot be built is skipped with a warning.
    #[cfg(kms)]
    fn sync_remote(&self, b: &Kms, l: &Listing) {
        let mut map = self.objects.write();
        let listed: std::collections::HashSet<&str> =
            l.keys.iter().map(|k| k.key_id.as_str()).collect();
        map.retain(|e| e.remote.as_deref().is_none_or(|k| listed.contains(k)));
        self.changed();
        let have: std::collections::HashSet<String> =
            map.values().filter_map(|e| e.remote.clone()).collect();
        for k in &l.keys {
            if have.contains(&k.key_id) {
                // Renamed (here or by another process), or its public key no longer
                // the one listed: same handles, attributes from the listing.
                let (label, id) = remote::label_and_id(k);
                let spki = remote::unhex(&k.spki).unwrap_or_default();
                let mine: Vec<Arc<Entry>> = map
                    .values()
                    .filter(|e| e.remote.as_deref() == Some(&k.key_id))
                    .cloned()
                    .collect();
                for e in mine {
                    let Ok(lock) = e.obj() else { continue };
                    let stale = {
                        let o = lock.read();
                        o.attr(CKA_LABEL) != Some(&label[..])
                            || o.attr(CKA_ID) != Some(&id[..])
                            || o.attr(CKA_PUBLIC_KEY_INFO) != Some(&spki[..])
                    };
                    if !stale {
                        continue;
                    }
                    match remote::key_objects(b, k) {
                        Ok((po, so)) => {
                            let next = {
                                let mut o = lock.write();
                                *o = if o.class == CKO_PUBLIC_KEY { po } else { so };
                                o.summary()
                            };
                            // The label and id indexes follow the rename.
                            map.resummarize(e.handle, next);
                        }
                        Err(err) => {
                            log_at!(Warn, "KMS key {} ({}): not updated: {err}", k.label, k.name)
                        }
                    }
                }
                continue;
            }
            match remote::key_objects(b, k) {
                Ok((po, so)) => {
                    for o in [po, so] {
                        map.insert(Arc::new(Entry::decoded(o, None, Some(k.key_id.clone()))));
                    }
                }
                Err(e) => log_at!(Warn, "KMS key {} ({}): not shown: {e}", k.label, k.name),
            }
        }
    }

    /// Fetch the KMS listing when the cached one is older than `refresh_secs` (or
    /// absent). A failure is logged and the cached listing stays in use.
    #[cfg(kms)]
    fn refresh_remote(&self) {
        let Kek::Kms(b) = &self.kek else { return };
        let current = match b.listing().get() {
            Ok(Some(l)) => b.listing().is_current(&l),
            Ok(None) => false,
            Err(_) => false,
        };
        if current {
            return;
        }
        {
            let mut st = self.remote_state.lock();
            if let Some(t) = st.last_attempt {
                let pause = RETRY_AFTER_FAILURE_SECS.min(b.listing().refresh_secs);
                if t.elapsed().as_secs() < pause {
                    return;
                }
            }
            st.last_attempt = Some(std::time::Instant::now());
        }
        match b.fetch_listing() {
            Ok(l) => {
                self.remote_state.lock().last_attempt = None;
                self.sync_remote(b, &l);
            }
            Err(e) => log_at!(
                Warn,
                "token \"{}\": KMS key listing not refreshed: {e}",
                self.config.label
            ),
        }
    }

    /// The token identity bound into KMS encryption contexts (hex of the token uid).
    #[cfg(kms)]
    fn token_id(&self) -> Result<String> {
        Ok(hex(&self
            .backend
            .token_uid()?
            .ok_or(CKR_USER_NOT_LOGGED_IN)?))
    }

    #[cfg(kms)]
    fn kms_context(&self, o: &Object) -> Result<WrapContext> {
        Ok(WrapContext {
            token: self.token_id()?,
            object: o.uid,
            attrs: o.attrs_digest_for_kms(),
        })
    }

    /// The KMS that wraps this token's secrets, if any.
    #[cfg(kms)]
    pub fn kms(&self) -> Option<&Kms> {
        match &self.kek {
            Kek::Kms(b) => Some(b),
            Kek::Local => None,
        }
    }

    /// Pick up what other processes wrote since we last looked.
    pub fn refresh(&self) -> Result<()> {
        if self.store().changed_elsewhere()? {
            self.reload_from_store()?;
        }
        Ok(())
    }

    // ---- token information -------------------------------------------------------

    pub fn is_initialized(&self) -> Result<bool> {
        self.backend.is_initialized()
    }

    /// The label shown in CK_TOKEN_INFO: the one set by C_InitToken, else the config's.
    pub fn label(&self) -> Result<String> {
        Ok(self
            .backend
            .label()?
            .unwrap_or_else(|| self.config.label.clone()))
    }

    pub fn serial(&self) -> Result<String> {
        Ok(self
            .backend
            .serial_number()?
            .unwrap_or_else(|| "0".repeat(16)))
    }

    /// Token flags (CK_TOKEN_INFO.flags).
    pub fn flags(&self) -> Result<CK_FLAGS> {
        Ok(CKF_RNG | CKF_LOGIN_REQUIRED | self.backend.token_flags()?)
    }

    pub fn logged_in(&self) -> Option<CK_USER_TYPE> {
        self.login.read().user
    }

    fn user_can_see_private(&self) -> bool {
        self.logged_in() == Some(CKU_USER)
    }

    // ---- PINs and login ----------------------------------------------------------

    /// C_InitToken. The caller has checked that no session is open.
    pub fn init_token(&self, so_pin: &[u8], label: &str) -> Result<()> {
        self.backend.init_token(so_pin, label)?;
        *self.login.write() = Login::default();
        self.objects.write().clear();
        self.changed();
        self.reload_from_store()
    }

    /// C_Login. `rw_sessions`/`ro_sessions` are this token's open session counts.
    pub fn login(&self, user: CK_USER_TYPE, pin: &[u8], ro_sessions: usize) -> Result<()> {
        if !matches!(user, CKU_SO | CKU_USER | CKU_CONTEXT_SPECIFIC) {
            return Err(CKR_USER_TYPE_INVALID.into());
        }
        {
            let l = self.login.read();
            match (l.user, user) {
                (Some(u), CKU_CONTEXT_SPECIFIC) => {
                    // Re-authentication for CKA_ALWAYS_AUTHENTICATE keys: verify the PIN.
                    drop(l);
                    self.backend.login(u, pin)?;
                    return Ok(());
                }
                (None, CKU_CONTEXT_SPECIFIC) => return Err(CKR_USER_NOT_LOGGED_IN.into()),
                (Some(u), _) if u == user => return Err(CKR_USER_ALREADY_LOGGED_IN.into()),
                (Some(_), _) => return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN.into()),
                (None, _) => {}
            }
        }
        if user == CKU_SO && ro_sessions > 0 {
            return Err(CKR_SESSION_READ_ONLY_EXISTS.into());
        }
        let master = self.backend.login(user, pin)?;
        let mut l = self.login.write();
        match l.user {
            // Another thread logged in while we verified the PIN.
            Some(u) if u == user => return Err(CKR_USER_ALREADY_LOGGED_IN.into()),
            Some(_) => return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN.into()),
            None => {}
        }
        *l = Login {
            user: Some(user),
            master: Some(Arc::new(master)),
        };
        drop(l);
        self.changed();
        Ok(())
    }

    /// C_Logout (also when the last session closes): forget the master key and every
    /// unwrapped token secret, and destroy the private session objects ("all private
    /// session objects from sessions belonging to the application are destroyed",
    /// C_Logout in PKCS#11 2.40/3.0 §5.6); public session objects stay.
    pub fn logout(&self) -> Result<()> {
        {
            let mut l = self.login.write();
            if l.user.is_none() {
                return Err(CKR_USER_NOT_LOGGED_IN.into());
            }
            *l = Login::default();
        }
        self.changed();
        // "Any of the application's handles to private objects become invalid (even if a
        // user is later logged back into the token, those handles remain invalid)": the
        // private token objects live on under new handles.
        {
            let mut map = self.objects.write();
            map.retain(|e| e.session.is_none() || !e.is_private());
            let private: Vec<CK_OBJECT_HANDLE> = map
                .values()
                .filter(|e| e.is_private())
                .map(|e| e.handle)
                .collect();
            for h in private {
                if let Some(old) = map.remove(h) {
                    map.insert(Arc::new(old.rehandled()));
                }
            }
        }
        let stored: HashMap<[u8; 16], Option<Vec<u8>>> = self
            .store()
            .objects()?
            .into_iter()
            .map(|s| (s.uid, s.secret))
            .collect();
        let map = self.objects.read();
        for e in map.values() {
            *e.key.write() = None;
            if e.session.is_some() {
                continue;
            }
            // Not decoded yet: still in its stored (wrapped) form.
            let Some(lock) = e.decoded_obj() else {
                continue;
            };
            let mut o = lock.write();
            if matches!(o.secret, Secret::Plain(_)) {
                // Back to the wrapped form the store holds.
                if let Some(Some(blob)) = stored.get(&o.uid) {
                    o.secret = Secret::Wrapped(blob.clone());
                }
            }
        }
        Ok(())
    }

    pub fn init_pin(&self, pin: &[u8]) -> Result<()> {
        let l = self.login.read();
        match (&l.user, &l.master) {
            (Some(CKU_SO), Some(m)) => self.backend.init_pin(m, pin),
            _ => Err(CKR_USER_NOT_LOGGED_IN.into()),
        }
    }

    /// C_SetPIN: for the logged-in role, or the user when nobody is logged in.
    ///
    /// One extension, for a *locked* user PIN in a public session: the old PIN is then
    /// taken as an unblock code and checked as the SO PIN (failures count against the
    /// SO), and on success the user PIN is reset to `new` — what OpenSC's
    /// `pkcs11-tool --unlock-pin --puk <SO PIN>` and smart cards' PUKs do. It grants
    /// nothing the SO could not do with C_Login + C_InitPIN.
    pub fn set_pin(&self, old: &[u8], new: &[u8]) -> Result<()> {
        match self.logged_in() {
            Some(user) => self.backend.set_pin(user, old, new),
            None if self.backend.token_flags()? & CKF_USER_PIN_LOCKED != 0 => {
                let master = self.backend.login(CKU_SO, old)?;
                self.backend.init_pin(&master, new)
            }
            None => self.backend.set_pin(CKU_USER, old, new),
        }
    }

    // ---- objects -----------------------------------------------------------------

    /// The entry for a handle, if visible in the current login state.
    pub fn entry(&self, h: CK_OBJECT_HANDLE) -> Result<Arc<Entry>> {
        let e = self
            .objects
            .read()
            .get(h)
            .cloned()
            .ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        if e.is_private() && !self.user_can_see_private() {
            return Err(CKR_OBJECT_HANDLE_INVALID.into());
        }
        Ok(e)
    }

    /// Check that the current state lets a session create or change this object.
    fn check_writable(&self, o: &Object, rw: bool) -> Result<()> {
        if o.is_token() && !rw {
            return Err(CKR_SESSION_READ_ONLY.into());
        }
        if o.is_private() && !self.user_can_see_private() {
            return Err(CKR_USER_NOT_LOGGED_IN.into());
        }
        Ok(())
    }

    fn master(&self) -> Result<Arc<MasterKey>> {
        self.login
            .read()
            .master
            .clone()
            .ok_or(CKR_USER_NOT_LOGGED_IN.into())
    }

    fn stored_form(&self, o: &Object) -> Result<StoredObject> {
        let secret = match (&o.secret, &self.kek) {
            (Secret::None, _) => None,
            (Secret::Wrapped(b), _) => Some(b.clone()),
            (Secret::Plain(KeyMaterial::Remote { .. }), _) => {
                return Err(Error::msg(
                    CKR_ACTION_PROHIBITED,
                    "a KMS key cannot be stored as a token object",
                ))
            }
            (Secret::Plain(_), Kek::Local) => Some(self.backend.wrap(
                &*self.master()?,
                &o.uid,
                &o.seal_secret()?,
            )?),
            #[cfg(kms)]
            (Secret::Plain(m), Kek::Kms(b)) => {
                self.master()?;
                let plain = kms_plaintext(m);
                let blob = b
                    .encrypt(&self.kms_context(o)?, &plain)
                    .map_err(kek_error)?;
                Some([&[b.blob_tag()][..], &blob].concat())
            }
        };
        Ok(StoredObject {
            uid: o.uid,
            attrs: o.encode_attrs(),
            secret,
        })
    }

    /// Add a generated secret key (C_GenerateKey). On a KMS token a token key's value
    /// comes from GenerateDataKey and only its CiphertextBlob is stored; elsewhere (and
    /// for session keys) this is [`Token::add`].
    pub fn add_generated(
        &self,
        o: Object,
        session: CK_SESSION_HANDLE,
        rw: bool,
    ) -> Result<CK_OBJECT_HANDLE> {
        #[cfg(kms)]
        if let (Kek::Kms(b), true) = (&self.kek, o.is_token()) {
            let mut o = o;
            self.check_writable(&o, rw)?;
            self.master()?;
            let len = match o.material()? {
                KeyMaterial::Secret { value, .. } => value.len(),
                _ => return Err(Error::general("add_generated without a secret key")),
            };
            let before = o.attrs_digest_for_kms();
            let (plain, blob) = b
                .generate_data_key(&self.kms_context(&o)?, len)
                .map_err(kek_error)?;
            o.replace_secret_value(plain)?;
            if o.attrs_digest_for_kms() != before {
                return Err(Error::general("attributes changed with the KMS data key"));
            }
            let s = StoredObject {
                uid: o.uid,
                attrs: o.encode_attrs(),
                secret: Some([&[b.blob_tag()][..], &blob].concat()),
            };
            let _g = self.reload.lock();
            self.store().transaction(|tx| tx.insert_object(&s))?;
            let e = Entry::new(o, None);
            let h = e.handle;
            self.objects.write().insert(e);
            return Ok(h);
        }
        self.add(o, session, rw)
    }

    /// C_GenerateKeyPair of a token key pair on a KMS token: CreateKey (+ CreateAlias)
    /// in KMS, the objects come from the listing. `None` when the pair is not for KMS
    /// (local tokens, session keys): the caller generates locally.
    pub fn generate_remote_pair(
        &self,
        mech: &Mechanism,
        pub_t: &[Attr],
        priv_t: &[Attr],
        rw: bool,
    ) -> Result<Option<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)>> {
        #[cfg(kms)]
        if let Kek::Kms(b) = &self.kek {
            use crate::object::{find, find_bool, find_ulong};
            if find_bool(priv_t, CKA_TOKEN)? != Some(true) {
                return Ok(None);
            }
            if !rw {
                return Err(CKR_SESSION_READ_ONLY.into());
            }
            if !self.user_can_see_private() {
                return Err(CKR_USER_NOT_LOGGED_IN.into());
            }
            // The templates are checked as a local key pair's are (Object::create):
            // a malformed or foreign attribute is refused before any KMS call, not
            // silently dropped (e.g. a CKA_ALLOWED_MECHANISMS that is no CK_ULONG array
            // would have made a PKCS#1 key where PSS-only was asked).
            let kt = match mech.mech {
                CKM_RSA_PKCS_KEY_PAIR_GEN => CKK_RSA,
                CKM_EC_KEY_PAIR_GEN => CKK_EC,
                _ => return Err(CKR_MECHANISM_INVALID.into()),
            };
            crate::object::check_generation_template(pub_t, CKO_PUBLIC_KEY, kt)?;
            crate::object::check_generation_template(priv_t, CKO_PRIVATE_KEY, kt)?;
            let either = |ty| -> Result<Option<Vec<u8>>> {
                match (find(pub_t, ty)?, find(priv_t, ty)?) {
                    (Some(a), Some(b)) if a != b => Err(CKR_TEMPLATE_INCONSISTENT.into()),
                    (Some(a), _) | (None, Some(a)) => Ok(Some(a.to_vec())),
                    (None, None) => Ok(None),
                }
            };
            let kind = match mech.mech {
                CKM_RSA_PKCS_KEY_PAIR_GEN => {
                    let bits =
                        find_ulong(pub_t, CKA_MODULUS_BITS)?.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
                    if let Some(e) = find(pub_t, CKA_PUBLIC_EXPONENT)? {
                        let first = e.iter().position(|b| *b != 0).unwrap_or(e.len());
                        if e[first..] != [1, 0, 1] {
                            return Err(Error::msg(
                                CKR_TEMPLATE_INCONSISTENT,
                                "KMS RSA keys have public exponent 65537",
                            ));
                        }
                    }
                    if !matches!(bits, 2048 | 3072 | 4096) {
                        return Err(CKR_KEY_SIZE_RANGE.into());
                    }
                    let decrypt = find_bool(priv_t, CKA_DECRYPT)? == Some(true)
                        && find_bool(priv_t, CKA_SIGN)? != Some(true);
                    PairKind::Rsa {
                        bits: bits as u32,
                        decrypt,
                        pss: !decrypt && pss_only(either(CKA_ALLOWED_MECHANISMS)?.as_deref()),
                    }
                }
                CKM_EC_KEY_PAIR_GEN => {
                    let params = either(CKA_EC_PARAMS)?.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
                    PairKind::Ec(crate::mechanism::curve_from_params(&params)?)
                }
                _ => return Err(CKR_MECHANISM_INVALID.into()),
            };
            let label = either(CKA_LABEL)?.map(|l| String::from_utf8_lossy(&l).into_owned());
            let info = b.create_key(NewKeyPair {
                kind,
                label,
                id: either(CKA_ID)?,
                token: self.token_id()?,
            })?;
            let l = b.listing().get()?.unwrap_or_default();
            self.sync_remote(b, &l);
            let map = self.objects.read();
            let mut ph = None;
            let mut sh = None;
            for e in map.values() {
                if e.remote.as_deref() == Some(info.key_id.as_str()) {
                    match e.class() {
                        CKO_PUBLIC_KEY => ph = Some(e.handle),
                        _ => sh = Some(e.handle),
                    }
                }
            }
            return match (ph, sh) {
                (Some(p), Some(s)) => Ok(Some((p, s))),
                _ => Err(Error::device(format!(
                    "KMS key {} created but its objects could not be built",
                    info.name
                ))),
            };
        }
        let _ = (mech, pub_t, priv_t, rw);
        Ok(None)
    }

    /// Rewrap every KMS-wrapped secret of this token under the KEK's current key
    /// material (AWS: ReEncrypt, no plaintext leaves KMS; Cloud KMS: Decrypt + Encrypt
    /// under the primary version). Returns how many were rewrapped. Needs no login.
    /// For the admin CLI.
    #[cfg(kms)]
    pub fn rewrap_all(&self) -> Result<usize> {
        let Kek::Kms(b) = &self.kek else {
            return Err(Error::msg(
                CKR_FUNCTION_NOT_SUPPORTED,
                "rewrap: the token's secrets are not wrapped by KMS",
            ));
        };
        let mut n = 0;
        for s in self.store().objects()? {
            let Some(blob) = s
                .secret
                .as_ref()
                .filter(|x| x.first() == Some(&b.blob_tag()))
            else {
                continue;
            };
            let o = Object::from_stored(s.uid, &s.attrs, None)?;
            let fresh = b
                .rewrap(&self.kms_context(&o)?, &blob[1..])
                .map_err(kek_error)?;
            let next = StoredObject {
                secret: Some([&[b.blob_tag()][..], &fresh].concat()),
                ..s.clone()
            };
            self.store().transaction(|tx| {
                // Changed meanwhile by another process: leave its newer blob alone.
                if tx.object(&s.uid)? == Some(s.clone()) {
                    tx.update_object(&next)?;
                }
                Ok(())
            })?;
            n += 1;
        }
        Ok(n)
    }

    /// Add a new object (C_CreateObject, C_CopyObject, generation, unwrap).
    pub fn add(&self, o: Object, session: CK_SESSION_HANDLE, rw: bool) -> Result<CK_OBJECT_HANDLE> {
        self.check_writable(&o, rw)?;
        if o.is_token() {
            let s = self.stored_form(&o)?;
            let _g = self.reload.lock();
            self.store().transaction(|tx| tx.insert_object(&s))?;
            // A fresh object: its plain material stays for this process.
            let e = Entry::new(o, None);
            let h = e.handle;
            self.objects.write().insert(e);
            Ok(h)
        } else {
            let e = Entry::new(o, Some(session));
            let h = e.handle;
            self.objects.write().insert(e);
            Ok(h)
        }
    }

    /// C_DestroyObject.
    pub fn destroy(&self, h: CK_OBJECT_HANDLE, rw: bool) -> Result<()> {
        let e = self.entry(h)?;
        let _g = self.reload.lock();
        {
            let o = e.obj()?.read();
            self.check_writable(&o, rw)?;
            if !o.bool_attr(CKA_DESTROYABLE) {
                return Err(CKR_ACTION_PROHIBITED.into());
            }
            #[cfg(kms)]
            if let (Some(key_id), Kek::Kms(b)) = (&e.remote, &self.kek) {
                let l = b.listing().get()?.unwrap_or_default();
                let info = l
                    .keys
                    .iter()
                    .find(|k| &k.key_id == key_id)
                    .ok_or(CKR_OBJECT_HANDLE_INVALID)?;
                let l = b.delete_key(info)?;
                drop(o);
                self.sync_remote(b, &l);
                return Ok(());
            }
            if o.is_token() {
                let uid = o.uid;
                self.store().transaction(|tx| tx.delete_object(&uid))?;
            }
        }
        self.objects.write().remove(h);
        self.changed();
        Ok(())
    }

    /// C_SetAttributeValue, persisted for token objects.
    pub fn set_attributes(&self, h: CK_OBJECT_HANDLE, t: &[Attr], rw: bool) -> Result<()> {
        let e = self.entry(h)?;
        #[cfg(kms)]
        if let (Some(key_id), Kek::Kms(b)) = (&e.remote, &self.kek) {
            return self.set_remote_attributes(b, &e, key_id, t, rw);
        }
        // The stored secret seals the attributes: changing them means re-wrapping it.
        self.ensure_plain(&e)?;
        let _g = self.reload.lock();
        let mut o = e.obj()?.write();
        self.check_writable(&o, rw)?;
        let mut next = o.clone();
        next.set(t, self.logged_in() == Some(CKU_SO))?;
        if next.is_token() {
            let s = self.stored_form(&next)?;
            self.store().transaction(|tx| tx.update_object(&s))?;
        }
        let summary = next.summary();
        *o = next;
        drop(o);
        // Not under the object's lock: the lock order is objects, then an object.
        self.objects.write().resummarize(h, summary);
        self.changed();
        Ok(())
    }

    /// C_SetAttributeValue on an object mirrored from a KMS key: CKA_ID and CKA_LABEL
    /// can change (NSS and SunPKCS11 name a key pair after generating it), and change
    /// both halves, since they are one KMS key's tag and alias; any other attribute is
    /// CKR_ATTRIBUTE_READ_ONLY. Needs the user logged in: it changes the KMS key.
    #[cfg(kms)]
    fn set_remote_attributes(
        &self,
        b: &Kms,
        e: &Entry,
        key_id: &str,
        t: &[Attr],
        rw: bool,
    ) -> Result<()> {
        self.check_writable(&e.obj()?.read(), rw)?;
        if !self.user_can_see_private() {
            return Err(CKR_USER_NOT_LOGGED_IN.into());
        }
        // Which names a tool sets (NSS: CKA_ID right after C_GenerateKeyPair); types and
        // lengths only.
        log_at!(Debug, "C_SetAttributeValue on KMS key {key_id}: {}", {
            let v: Vec<String> = t
                .iter()
                .map(|(ty, v)| format!("0x{ty:x} ({} bytes)", v.len()))
                .collect();
            v.join(", ")
        });
        let (mut id, mut label) = (None, None);
        for (ty, v) in t {
            match *ty {
                CKA_ID => id = Some(v.as_slice()),
                CKA_LABEL => {
                    label = Some(std::str::from_utf8(v).map_err(|_| {
                        Error::msg(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_LABEL is not UTF-8")
                    })?)
                }
                _ => {
                    return Err(Error::msg(
                        CKR_ATTRIBUTE_READ_ONLY,
                        format!("attribute 0x{ty:x} of a KMS key cannot change"),
                    ))
                }
            }
        }
        let l = b.listing().get()?.unwrap_or_default();
        let info = l
            .keys
            .iter()
            .find(|k| k.key_id == key_id)
            .ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let l = b.rename_key(info, id, label)?;
        self.sync_remote(b, &l);
        Ok(())
    }

    /// Handles of every visible object matching `t` (C_FindObjectsInit).
    pub fn find(&self, t: &[Attr]) -> Result<Vec<CK_OBJECT_HANDLE>> {
        self.refresh()?;
        #[cfg(kms)]
        self.refresh_remote();
        let see_private = self.user_can_see_private();
        let map = self.objects.read();
        let mut v = Vec::new();
        for h in map.candidates(t) {
            let Some(e) = map.get(h) else { continue };
            let (could, decided) = {
                let s = e.summary.read();
                if s.private && !see_private {
                    continue;
                }
                s.prefilter(t)
            };
            // Only a template naming other attributes than the summarized ones
            // decodes the (few) candidates.
            if could && (decided || e.obj()?.read().matches(t)) {
                v.push(h);
            }
        }
        v.sort_unstable();
        Ok(v)
    }

    /// Make a wrapped token secret plain (needs login); no-op otherwise.
    pub fn ensure_plain(&self, e: &Entry) -> Result<()> {
        if !matches!(e.obj()?.read().secret, Secret::Wrapped(_)) {
            return Ok(());
        }
        let master = self.master()?;
        let mut o = e.obj()?.write();
        if let Secret::Wrapped(blob) = &o.secret {
            let material = match &self.kek {
                Kek::Local => {
                    let plain = self.backend.unwrap(&master, &o.uid, blob)?;
                    o.open_secret(&plain)?
                }
                #[cfg(kms)]
                Kek::Kms(b) => {
                    let Some((_, kms_blob)) =
                        blob.split_first().filter(|(t, _)| **t == b.blob_tag())
                    else {
                        return Err(Error::device(format!(
                            "object {}: stored key is not wrapped by KMS",
                            hex(&o.uid)
                        )));
                    };
                    let plain = b
                        .decrypt(&self.kms_context(&o)?, kms_blob)
                        .map_err(kek_error)
                        .map_err(|e| match e.rv() {
                            CKR_ENCRYPTED_DATA_INVALID => Error::device(format!(
                                "object {}: KMS refused its wrapped key (attributes or blob \
                                 modified outside the module?): {e}",
                                hex(&o.uid)
                            )),
                            _ => e,
                        })?;
                    kms_material(&o, plain)?
                }
            };
            o.secret = Secret::Plain(material);
        }
        Ok(())
    }

    /// The prepared key of an object, built once (unwrapping it on first use).
    pub fn key(&self, e: &Entry) -> Result<Arc<LocalKey>> {
        if let Some(k) = e.key.read().as_ref() {
            return Ok(k.clone());
        }
        self.ensure_plain(e)?;
        let k = LocalKey::new(e.obj()?.read().material()?)?;
        *e.key.write() = Some(k.clone());
        Ok(k)
    }

    /// Drop the session objects of a closed session.
    pub fn drop_session_objects(&self, s: CK_SESSION_HANDLE) {
        self.objects.write().retain(|e| e.session != Some(s));
        self.changed();
    }
}

/// What KMS wraps for an object: a secret key's value as it is (so GenerateDataKey and
/// Encrypt blobs decrypt alike), other material in the store's material encoding.
#[cfg(kms)]
fn kms_plaintext(m: &KeyMaterial) -> zeroize::Zeroizing<Vec<u8>> {
    match m {
        KeyMaterial::Secret { value, .. } => value.clone(),
        _ => crate::object::encode_material(m),
    }
}

/// Inverse of [`kms_plaintext`] for object `o`; an AES key's value must give the
/// stored CKA_CHECK_VALUE (the one attribute the encryption context does not bind).
#[cfg(kms)]
fn kms_material(o: &Object, plain: zeroize::Zeroizing<Vec<u8>>) -> Result<KeyMaterial> {
    let corrupt = || {
        Error::device(format!(
            "object {}: KMS-wrapped key is corrupt",
            hex(&o.uid)
        ))
    };
    let m = if o.class == CKO_SECRET_KEY {
        KeyMaterial::Secret {
            key_type: o.key_type.ok_or_else(corrupt)?,
            value: plain,
        }
    } else {
        crate::object::decode_material(&plain).ok_or_else(corrupt)?
    };
    if o.class == CKO_SECRET_KEY {
        let want = o.check_value_of(&m)?;
        if o.attr(CKA_CHECK_VALUE).unwrap_or(&[]) != want.as_slice() {
            return Err(Error::device(format!(
                "object {}: CKA_CHECK_VALUE does not match its key (store modified outside the module)",
                hex(&o.uid)
            )));
        }
    }
    Ok(m)
}

/// True when a CKA_ALLOWED_MECHANISMS value names RSA-PSS signing and no PKCS#1 v1.5
/// signing: the key pair a KMS should make is a PSS key.
#[cfg(kms)]
fn pss_only(allowed: Option<&[u8]>) -> bool {
    let Some(a) = allowed else { return false };
    const N: usize = std::mem::size_of::<CK_ULONG>();
    let mechs: Vec<CK_MECHANISM_TYPE> = a
        .chunks_exact(N)
        .filter_map(|c| <[u8; N]>::try_from(c).ok())
        .map(CK_ULONG::from_ne_bytes)
        .collect();
    let pss = [
        CKM_RSA_PKCS_PSS,
        CKM_SHA256_RSA_PKCS_PSS,
        CKM_SHA384_RSA_PKCS_PSS,
        CKM_SHA512_RSA_PKCS_PSS,
    ];
    let pkcs1 = [
        CKM_RSA_PKCS,
        CKM_SHA256_RSA_PKCS,
        CKM_SHA384_RSA_PKCS,
        CKM_SHA512_RSA_PKCS,
    ];
    mechs.iter().any(|m| pss.contains(m)) && !mechs.iter().any(|m| pkcs1.contains(m))
}
