//! Message digesting (§5.10).

use super::{key_entry, module};
use crate::error::{Error, Result};
use crate::mechanism::{self, Mechanism};
use crate::session::{keeps_operation, Cap, DigestOp, Output};
use cryptoki_sys::*;

/// C_DigestInit.
pub fn init(h: CK_SESSION_HANDLE, mech: &Mechanism) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    if g.digest.is_some() {
        return Err(CKR_OPERATION_ACTIVE.into());
    }
    g.digest = Some(DigestOp {
        op: mechanism::digest_init(mech)?,
        multi: false,
    });
    Ok(())
}

/// C_Digest (`data` Some) or C_DigestFinal (`data` None).
pub fn digest(h: CK_SESSION_HANDLE, data: Option<&[u8]>, cap: Cap) -> Result<Output> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    let op = g.digest.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
    let r = (|| {
        if data.is_some() && op.multi {
            return Err(Error::from(CKR_OPERATION_ACTIVE));
        }
        let n = op.op.output_len();
        match cap {
            None => return Ok(Output::Len(n)),
            Some(c) if c < n => return Err(Error::too_small(n)),
            _ => {}
        }
        if let Some(d) = data {
            op.op.update(d)?;
        }
        Ok(Output::Bytes(op.op.finish()?))
    })();
    match &r {
        Err(e) if !keeps_operation(e) => g.digest = None,
        Ok(Output::Bytes(_)) => g.digest = None,
        _ => {}
    }
    r
}

/// C_DigestUpdate.
pub fn update(h: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    let op = g.digest.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
    op.multi = true;
    let r = op.op.update(part);
    if r.is_err() {
        g.digest = None;
    }
    r
}

/// C_DigestKey: digest the value of a secret key.
pub fn digest_key(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    if g.digest.is_none() {
        return Err(CKR_OPERATION_NOT_INITIALIZED.into());
    }
    let r = (|| {
        let e = key_entry(s.token, key, CKR_KEY_HANDLE_INVALID)?;
        if e.obj()?.read().class != CKO_SECRET_KEY {
            return Err(Error::from(CKR_KEY_INDIGESTIBLE));
        }
        let k = s.token.key(&e)?;
        let op = g.digest.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        op.multi = true;
        op.op.update_key(&k)
    })();
    if r.is_err() {
        g.digest = None;
    }
    r
}
