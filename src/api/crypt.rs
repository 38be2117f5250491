//! Encryption and decryption (§5.8, §5.9).

use super::{check_class, key_entry, module};
use crate::error::Result;
use crate::mechanism::{self, Mechanism};
use crate::session::{keeps_operation, with_stash, Cap, CipherOp, Output, Session};
use cryptoki_sys::*;

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
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    if slot(&mut g, d).is_some() {
        return Err(CKR_OPERATION_ACTIVE.into());
    }
    let e = key_entry(&s.token, key, CKR_KEY_HANDLE_INVALID)?;
    {
        let o = e.obj.read();
        match d {
            Dir::Encrypt => {
                check_class(&o, &[CKO_SECRET_KEY, CKO_PUBLIC_KEY])?;
                o.check_usage(CKA_ENCRYPT, mech.mech)?;
            }
            Dir::Decrypt => {
                check_class(&o, &[CKO_SECRET_KEY, CKO_PRIVATE_KEY])?;
                o.check_usage(CKA_DECRYPT, mech.mech)?;
            }
        }
    }
    let k = s.token.key(&e)?;
    let op = match d {
        Dir::Encrypt => mechanism::encrypt_init(mech, &k)?,
        Dir::Decrypt => mechanism::decrypt_init(mech, &k)?,
    };
    *slot(&mut g, d) = Some(CipherOp {
        op,
        stash: None,
        multi: false,
        multipart_ok: !single_part_only(mech.mech),
    });
    Ok(())
}

/// C_Encrypt / C_EncryptUpdate / C_EncryptFinal and the Decrypt ones.
pub fn step(h: CK_SESSION_HANDLE, d: Dir, st: Step, input: &[u8], cap: Cap) -> Result<Output> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    let sl = slot(&mut g, d);
    let op = sl.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
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
