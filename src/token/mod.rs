//! A token (one slot): login state, PIN operations through the backend, and the objects
//! it holds — token objects mirrored from the store, session objects in memory only.

use crate::backend::local::{LocalBackend, MasterKey};
use crate::config::TokenConfig;
use crate::error::Result;
use crate::mechanism::LocalKey;
use crate::object::{Attr, Object, Secret};
use crate::store::{Store, StoredObject};
use cryptoki_sys::*;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Process-wide object handle counter: handles are never reused within a process.
static NEXT_OBJECT: AtomicU64 = AtomicU64::new(1);

fn next_handle() -> CK_OBJECT_HANDLE {
    NEXT_OBJECT.fetch_add(1, Ordering::Relaxed) as CK_OBJECT_HANDLE
}

/// One object with its process-local handle and its prepared key.
pub struct Entry {
    pub handle: CK_OBJECT_HANDLE,
    /// The owning session of a session object.
    pub session: Option<CK_SESSION_HANDLE>,
    pub obj: RwLock<Object>,
    /// Read-mostly: every operation init clones the Arc; only the first use writes.
    key: RwLock<Option<Arc<LocalKey>>>,
}

impl Entry {
    fn new(obj: Object, session: Option<CK_SESSION_HANDLE>) -> Arc<Entry> {
        Arc::new(Entry {
            handle: next_handle(),
            session,
            obj: RwLock::new(obj),
            key: RwLock::new(None),
        })
    }
}

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
    login: RwLock<Login>,
    objects: RwLock<HashMap<CK_OBJECT_HANDLE, Arc<Entry>>>,
    /// Serializes reloads from the store.
    reload: Mutex<()>,
}

impl Token {
    /// Open the token's store and load its objects.
    pub fn open(slot_id: CK_SLOT_ID, config: TokenConfig) -> Result<Token> {
        let store = Arc::new(Store::open(&config.store_path())?);
        let backend = match config.max_pin_attempts {
            Some(n) => LocalBackend::with_max_attempts(store, n),
            None => LocalBackend::new(store),
        };
        let t = Token {
            slot_id,
            config,
            backend,
            login: RwLock::new(Login::default()),
            objects: RwLock::new(HashMap::new()),
            reload: Mutex::new(()),
        };
        t.reload_from_store()?;
        Ok(t)
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
            .filter(|e| e.session.is_none())
            .map(|e| (e.obj.read().uid, e.clone()))
            .collect();
        map.retain(|_, e| e.session.is_some());
        for s in stored {
            let fresh = Object::from_stored(s.uid, &s.attrs, s.secret.clone())?;
            match by_uid.remove(&s.uid) {
                Some(e) => {
                    {
                        let mut o = e.obj.write();
                        let same = o.encode_attrs() == s.attrs
                            && match (&o.secret, &s.secret) {
                                (Secret::Plain(_), Some(_)) => true,
                                (Secret::Wrapped(a), Some(b)) => a == b,
                                (Secret::None, None) => true,
                                _ => false,
                            };
                        if !same {
                            *o = fresh;
                            *e.key.write() = None;
                        }
                    }
                    map.insert(e.handle, e);
                }
                None => {
                    let e = Entry::new(fresh, None);
                    map.insert(e.handle, e);
                }
            }
        }
        Ok(())
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
        Ok(())
    }

    /// C_Logout (also when the last session closes): forget the master key and every
    /// unwrapped token secret; session objects stay (private ones become invisible).
    pub fn logout(&self) -> Result<()> {
        {
            let mut l = self.login.write();
            if l.user.is_none() {
                return Err(CKR_USER_NOT_LOGGED_IN.into());
            }
            *l = Login::default();
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
            let mut o = e.obj.write();
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
            .get(&h)
            .cloned()
            .ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        if e.obj.read().is_private() && !self.user_can_see_private() {
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
        let secret = match &o.secret {
            Secret::None => None,
            Secret::Wrapped(b) => Some(b.clone()),
            Secret::Plain(_) => Some(self.backend.wrap(
                &*self.master()?,
                &o.uid,
                &o.seal_secret()?,
            )?),
        };
        Ok(StoredObject {
            uid: o.uid,
            attrs: o.encode_attrs(),
            secret,
        })
    }

    /// Add a new object (C_CreateObject, C_CopyObject, generation, unwrap).
    pub fn add(&self, o: Object, session: CK_SESSION_HANDLE, rw: bool) -> Result<CK_OBJECT_HANDLE> {
        self.check_writable(&o, rw)?;
        if o.is_token() {
            let s = self.stored_form(&o)?;
            self.store().transaction(|tx| tx.insert_object(&s))?;
            // A fresh object: its plain material stays for this process.
            let e = Entry::new(o, None);
            let h = e.handle;
            self.objects.write().insert(h, e);
            Ok(h)
        } else {
            let e = Entry::new(o, Some(session));
            let h = e.handle;
            self.objects.write().insert(h, e);
            Ok(h)
        }
    }

    /// C_DestroyObject.
    pub fn destroy(&self, h: CK_OBJECT_HANDLE, rw: bool) -> Result<()> {
        let e = self.entry(h)?;
        {
            let o = e.obj.read();
            self.check_writable(&o, rw)?;
            if !o.bool_attr(CKA_DESTROYABLE) {
                return Err(CKR_ACTION_PROHIBITED.into());
            }
            if o.is_token() {
                let uid = o.uid;
                self.store().transaction(|tx| tx.delete_object(&uid))?;
            }
        }
        self.objects.write().remove(&h);
        Ok(())
    }

    /// C_SetAttributeValue, persisted for token objects.
    pub fn set_attributes(&self, h: CK_OBJECT_HANDLE, t: &[Attr], rw: bool) -> Result<()> {
        let e = self.entry(h)?;
        // The stored secret seals the attributes: changing them means re-wrapping it.
        self.ensure_plain(&e)?;
        let mut o = e.obj.write();
        self.check_writable(&o, rw)?;
        let mut next = o.clone();
        next.set(t, self.logged_in() == Some(CKU_SO))?;
        if next.is_token() {
            let s = self.stored_form(&next)?;
            self.store().transaction(|tx| tx.update_object(&s))?;
        }
        *o = next;
        Ok(())
    }

    /// Handles of every visible object matching `t` (C_FindObjectsInit).
    pub fn find(&self, t: &[Attr]) -> Result<Vec<CK_OBJECT_HANDLE>> {
        self.refresh()?;
        let see_private = self.user_can_see_private();
        let map = self.objects.read();
        let mut v: Vec<CK_OBJECT_HANDLE> = map
            .values()
            .filter(|e| {
                let o = e.obj.read();
                (see_private || !o.is_private()) && o.matches(t)
            })
            .map(|e| e.handle)
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Make a wrapped token secret plain (needs login); no-op otherwise.
    pub fn ensure_plain(&self, e: &Entry) -> Result<()> {
        if !matches!(e.obj.read().secret, Secret::Wrapped(_)) {
            return Ok(());
        }
        let master = self.master()?;
        let mut o = e.obj.write();
        if let Secret::Wrapped(blob) = &o.secret {
            let plain = self.backend.unwrap(&master, &o.uid, blob)?;
            o.secret = Secret::Plain(o.open_secret(&plain)?);
        }
        Ok(())
    }

    /// The prepared key of an object, built once (unwrapping it on first use).
    pub fn key(&self, e: &Entry) -> Result<Arc<LocalKey>> {
        if let Some(k) = e.key.read().as_ref() {
            return Ok(k.clone());
        }
        self.ensure_plain(e)?;
        let k = LocalKey::new(e.obj.read().material()?)?;
        *e.key.write() = Some(k.clone());
        Ok(k)
    }

    /// Drop the session objects of a closed session.
    pub fn drop_session_objects(&self, s: CK_SESSION_HANDLE) {
        self.objects.write().retain(|_, e| e.session != Some(s));
    }
}
