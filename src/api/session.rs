//! Session management (§5.6).

use super::module;
use crate::error::Result;
use cryptoki_sys::*;

/// C_OpenSession.
pub fn open(slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
    let m = module()?;
    let t = m.token(slot)?;
    if flags & CKF_SERIAL_SESSION == 0 {
        return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED.into());
    }
    let rw = flags & CKF_RW_SESSION != 0;
    if !rw && t.logged_in() == Some(CKU_SO) {
        return Err(CKR_SESSION_READ_WRITE_SO_EXISTS.into());
    }
    Ok(m.add_session(slot as usize, rw))
}

/// C_CloseSession: its session objects go; the last session of a token logs out.
pub fn close(h: CK_SESSION_HANDLE) -> Result<()> {
    let m = module()?;
    let slot = m.remove_session(h)?;
    let t = &m.tokens[slot];
    t.drop_session_objects(h);
    m.clear_key_caches(slot);
    if m.sessions_of(slot).is_empty() && t.logged_in().is_some() {
        let _ = t.logout();
    }
    Ok(())
}

/// C_CloseAllSessions.
pub fn close_all(slot: CK_SLOT_ID) -> Result<()> {
    let m = module()?;
    m.token(slot)?;
    for h in m.sessions_of(slot as usize) {
        let _ = close(h);
    }
    Ok(())
}

/// C_GetSessionInfo.
pub fn info(h: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
    let m = module()?;
    let s = m.session(h)?;
    let state = match (s.token.logged_in(), s.rw) {
        (Some(CKU_SO), _) => CKS_RW_SO_FUNCTIONS,
        (Some(_), true) => CKS_RW_USER_FUNCTIONS,
        (Some(_), false) => CKS_RO_USER_FUNCTIONS,
        (None, true) => CKS_RW_PUBLIC_SESSION,
        (None, false) => CKS_RO_PUBLIC_SESSION,
    };
    let mut flags = CKF_SERIAL_SESSION;
    if s.rw {
        flags |= CKF_RW_SESSION;
    }
    Ok(CK_SESSION_INFO {
        slotID: s.token.slot_id,
        state,
        flags,
        ulDeviceError: 0,
    })
}

/// C_Login.
pub fn login(h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    if user == CKU_CONTEXT_SPECIFIC {
        let mut g = s.session.lock();
        let pending = g.sign.as_ref().is_some_and(|op| op.needs_auth);
        if !pending {
            return Err(CKR_OPERATION_NOT_INITIALIZED.into());
        }
        s.token.login(user, pin, 0)?;
        if let Some(op) = g.sign.as_mut() {
            op.needs_auth = false;
        }
        return Ok(());
    }
    let (ro, _) = m.session_counts(s.slot);
    s.token.login(user, pin, ro)
}

/// C_Logout: active operations of the token's sessions end.
pub fn logout(h: CK_SESSION_HANDLE) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    s.token.logout()?;
    for sh in m.sessions_of(s.slot) {
        if let Ok(r) = m.session(sh) {
            r.session.lock().cancel_all();
        }
    }
    Ok(())
}

/// C_SessionCancel (3.0): cancel the operations named by `flags`.
pub fn cancel(h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    if flags & CKF_FIND_OBJECTS != 0 {
        g.find = None;
    }
    if flags & CKF_ENCRYPT != 0 {
        g.encrypt = None;
    }
    if flags & CKF_DECRYPT != 0 {
        g.decrypt = None;
    }
    if flags & CKF_SIGN != 0 {
        g.sign = None;
    }
    if flags & CKF_VERIFY != 0 {
        g.verify = None;
    }
    if flags & CKF_DIGEST != 0 {
        g.digest = None;
    }
    Ok(())
}
