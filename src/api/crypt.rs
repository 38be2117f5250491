//! Encryption and decryption (§5.8, §5.9).

use super::{module, usable_key, with_cached_key, with_session, KeyUse};
use crate::error::Result;
use crate::mechanism::{self, Mechanism};
use crate::session::{keeps_operation, with_stash, Cap, CipherOp, Output, Session};
use cryptoki_sys::*;
use std::sync::Arc;

/// Which of the two cipher slots of a session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Encrypt,
    Decrypt,
}

/// Which call of a cipher operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Single,
    Update,
    Final,
}

fn slot(s: &mut Session, d: Dir) -> &mut Option<CipherOp> {
    match d {
        Dir::Encrypt => &mut s.encrypt,
        Dir::Decrypt => &mut s.decrypt,
    }
}

/// Mechanisms the spec defines as single-part only.
pub fn single_part_only(mech: CK_MECHANISM_TYPE) -> bool {
    matches!(
        mech,
        CKM_RSA_PKCS
            | CKM_RSA_PKCS_OAEP
            | CKM_RSA_PKCS_PSS
            | CKM_RSA_X_509
            | CKM_ECDSA
            | CKM_AES_KEY_WRAP
            | CKM_AES_KEY_WRAP_PAD
            | CKM_AES_KEY_WRAP_KWP
    )
}

/// C_EncryptInit / C_DecryptInit.
pub fn init(h: CK_SESSION_HANDLE, d: Dir, mech: &Mechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
    let (classes, flag): (&'static [CK_OBJECT_CLASS], _) = match d {
        Dir::Encrypt => (&[CKO_SECRET_KEY, CKO_PUBLIC_KEY], CKA_ENCRYPT),
        Dir::Decrypt => (&[CKO_SECRET_KEY, CKO_PRIVATE_KEY], CKA_DECRYPT),
    };
    // The fast path: this thread's session, and the key it used last for this.
    let fast = with_cached_key(h, key, flag, mech.mech, |g| {
        slot(g, d).is_none().then(|| start(g, d, mech))
    });
    if let Some(r) = fast {
        return r;
    }
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    if slot(&mut g, d).is_some() {
        return Err(CKR_OPERATION_ACTIVE.into());
    }
    let use_ = KeyUse {
        invalid_rv: CKR_KEY_HANDLE_INVALID,
        classes,
        flag,
        mech: mech.mech,
    };
    usable_key(s.token, &mut g.key_cache, key, use_)?;
    start(&mut g, d, mech)
}

/// Start the operation with the session's checked key (`usable_key` put it in the
/// key cache).
fn start(g: &mut Session, d: Dir, mech: &Mechanism) -> Result<()> {
    let c = g.checked_key()?;
    let k = c.spare.take().unwrap_or_else(|| c.key.clone());
    let op = mechanism::cipher_init(mech, k, d == Dir::Encrypt)?;
    *slot(g, d) = Some(CipherOp {
        op,
        stash: None,
        multi: false,
        multipart_ok: !single_part_only(mech.mech),
    });
    Ok(())
}

/// C_EncryptUpdate / C_EncryptFinal and the Decrypt ones.
pub fn step(h: CK_SESSION_HANDLE, d: Dir, st: Step, input: &[u8], cap: Cap) -> Result<Output> {
    run(h, d, st, input, cap, None)
}

/// C_Encrypt / C_Decrypt. `direct` is the caller's output buffer when `ffi/` could lend
/// it (`cap` bytes, not overlapping `input`): a mechanism with a single-part fast path
/// (AES-GCM) writes there with no intermediate copy; otherwise, or for a buffer too
/// small for the whole output, the call takes the general path.
pub fn single(
    h: CK_SESSION_HANDLE,
    d: Dir,
    input: &[u8],
    cap: Cap,
    direct: Option<&mut [u8]>,
) -> Result<Output> {
    run(h, d, Step::Single, input, cap, direct)
}

fn run(
    h: CK_SESSION_HANDLE,
    d: Dir,
    st: Step,
    input: &[u8],
    cap: Cap,
    direct: Option<&mut [u8]>,
) -> Result<Output> {
    // Everything below needs only the session: the fast path when it is this thread's.
    with_session(h, |g| run_locked(g, d, st, input, cap, direct))
}

fn run_locked(
    g: &mut Session,
    d: Dir,
    st: Step,
    input: &[u8],
    cap: Cap,
    direct: Option<&mut [u8]>,
) -> Result<Output> {
    let sl = slot(g, d);
    let op = sl.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
    if let Some(out) = direct {
        let fits = op
            .op
            .max_output(input.len(), true)
            .is_some_and(|n| n <= out.len());
        if st == Step::Single && fits && !op.multi && op.stash.is_none() {
            if let Some(r) = op.op.oneshot_into(input, out) {
                // Done either way: this path never answers CKR_BUFFER_TOO_SMALL.
                let ended = sl.take();
                if let (Some(done), Some(c)) = (ended, g.key_cache.as_mut()) {
                    match done.op.into_key() {
                        Some(k) if Arc::ptr_eq(&k, &c.key) => c.spare = Some(k),
                        _ => {}
                    }
                }
                return r.map(Output::Written);
            }
        }
    }
    // A length query answered from the mechanism's bound costs no crypto: the repeated
    // call computes once.
    if cap.is_none() && op.stash.is_none() && (op.multipart_ok || st == Step::Single) {
        let bound = match st {
            Step::Single => op.op.max_output(input.len(), true),
            Step::Update => op.op.max_output(input.len(), false),
            Step::Final => op.op.max_output(0, true),
        };
        if let Some(n) = bound {
            return Ok(Output::Len(n));
        }
    }
    let r = match st {
        Step::Update | Step::Final if !op.multipart_ok => Err(CKR_FUNCTION_NOT_SUPPORTED.into()),
        Step::Single if op.multi && op.stash.is_none() => Err(CKR_OPERATION_ACTIVE.into()),
        Step::Single => with_stash(&mut op.stash, input, cap, || op.op.oneshot(input)),
        Step::Update => {
            op.multi = true;
            with_stash(&mut op.stash, input, cap, || op.op.update(input))
        }
        Step::Final => with_stash(&mut op.stash, &[], cap, || op.op.finish()),
    };
    match &r {
        Err(e) if !keeps_operation(e) => *sl = None,
        Ok(Output::Bytes(_)) if st != Step::Update => *sl = None,
        _ => {}
    }
    r
}
