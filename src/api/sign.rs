//! Signing and MACing (§5.11), verifying signatures and MACs (§5.12).

use super::crypt::single_part_only;
use super::{module, usable_key, with_cached_key, with_session, KeyUse};
use crate::error::{Error, Result};
use crate::mechanism::{self, Mechanism};
use crate::session::{keeps_operation, Cap, Output, Session, SignOp, VerifyOp};
use cryptoki_sys::*;

/// C_SignInit.
pub fn sign_init(h: CK_SESSION_HANDLE, mech: &Mechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
    let fast = with_cached_key(h, key, CKA_SIGN, mech.mech, |g| {
        g.sign.is_none().then(|| sign_start(g, mech))
    });
    if let Some(r) = fast {
        return r;
    }
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    if g.sign.is_some() {
        return Err(CKR_OPERATION_ACTIVE.into());
    }
    let use_ = KeyUse {
        invalid_rv: CKR_KEY_HANDLE_INVALID,
        classes: &[CKO_SECRET_KEY, CKO_PRIVATE_KEY],
        flag: CKA_SIGN,
        mech: mech.mech,
    };
    usable_key(s.token, &mut g.key_cache, key, use_)?;
    sign_start(&mut g, mech)
}

/// Start a sign with the session's checked key (`usable_key` put it in the cache).
fn sign_start(g: &mut Session, mech: &Mechanism) -> Result<()> {
    let c = g.checked_key()?;
    let op = mechanism::sign_init(mech, &c.key)?;
    let needs_auth = c.always_authenticate;
    g.sign = Some(SignOp {
        op,
        multi: false,
        multipart_ok: !single_part_only(mech.mech),
        needs_auth,
    });
    Ok(())
}

/// C_Sign (`data` Some) or C_SignFinal (`data` None).
pub fn sign(h: CK_SESSION_HANDLE, data: Option<&[u8]>, cap: Cap) -> Result<Output> {
    with_session(h, |g| sign_locked(g, data, cap))
}

fn sign_locked(g: &mut Session, data: Option<&[u8]>, cap: Cap) -> Result<Output> {
    let op = g.sign.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
    let r = (|| {
        if op.needs_auth {
            return Err(Error::from(CKR_USER_NOT_LOGGED_IN));
        }
        match data {
            Some(_) if op.multi => return Err(CKR_OPERATION_ACTIVE.into()),
            None if !op.multipart_ok => return Err(CKR_FUNCTION_NOT_SUPPORTED.into()),
            _ => {}
        }
        // Length queries are answered from the key size: no signature is made (for a
        // KMS key that would be a remote call) until the caller's buffer is big enough.
        let n = op.op.sig_len();
        match cap {
            None => return Ok(Output::Len(n)),
            Some(c) if c < n => return Err(Error::too_small(n)),
            _ => {}
        }
        let sig = match data {
            Some(d) => op.op.oneshot(d)?,
            None => op.op.finish()?,
        };
        Ok(Output::Bytes(sig))
    })();
    match &r {
        Err(e) if !keeps_operation(e) => g.sign = None,
        Ok(Output::Bytes(_)) => g.sign = None,
        _ => {}
    }
    r
}

/// C_SignUpdate.
pub fn sign_update(h: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    with_session(h, |g| {
        let op = g.sign.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let r = if !op.multipart_ok {
            Err(CKR_FUNCTION_NOT_SUPPORTED.into())
        } else {
            op.multi = true;
            op.op.update(part)
        };
        if r.is_err() {
            g.sign = None;
        }
        r
    })
}

/// C_VerifyInit.
pub fn verify_init(h: CK_SESSION_HANDLE, mech: &Mechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
    let fast = with_cached_key(h, key, CKA_VERIFY, mech.mech, |g| {
        g.verify.is_none().then(|| verify_start(g, mech))
    });
    if let Some(r) = fast {
        return r;
    }
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    if g.verify.is_some() {
        return Err(CKR_OPERATION_ACTIVE.into());
    }
    let use_ = KeyUse {
        invalid_rv: CKR_KEY_HANDLE_INVALID,
        classes: &[CKO_SECRET_KEY, CKO_PUBLIC_KEY],
        flag: CKA_VERIFY,
        mech: mech.mech,
    };
    usable_key(s.token, &mut g.key_cache, key, use_)?;
    verify_start(&mut g, mech)
}

/// Start a verify with the session's checked key.
fn verify_start(g: &mut Session, mech: &Mechanism) -> Result<()> {
    let c = g.checked_key()?;
    let op = mechanism::verify_init(mech, &c.key)?;
    g.verify = Some(VerifyOp {
        op,
        multi: false,
        multipart_ok: !single_part_only(mech.mech),
    });
    Ok(())
}

/// C_Verify (`data` Some) or C_VerifyFinal (`data` None). Always ends the operation.
pub fn verify(h: CK_SESSION_HANDLE, data: Option<&[u8]>, sig: &[u8]) -> Result<()> {
    with_session(h, |g| {
        let mut op = g.verify.take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        match data {
            Some(_) if op.multi => Err(CKR_OPERATION_ACTIVE.into()),
            Some(d) => op.op.oneshot(d, sig),
            None if !op.multipart_ok => Err(CKR_FUNCTION_NOT_SUPPORTED.into()),
            None => op.op.finish(sig),
        }
    })
}

/// C_VerifyUpdate.
pub fn verify_update(h: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    with_session(h, |g| {
        let op = g.verify.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let r = if !op.multipart_ok {
            Err(CKR_FUNCTION_NOT_SUPPORTED.into())
        } else {
            op.multi = true;
            op.op.update(part)
        };
        if r.is_err() {
            g.verify = None;
        }
        r
    })
}
