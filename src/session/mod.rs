//! Sessions: the handle table entry and the active operations of one session. Each
//! kind of operation has its own slot (a session may e.g. find while it signs); an
//! operation ends on success of its final call or on any error except a length query.

use crate::error::{Error, Result};
use crate::mechanism::{Cipher, Digester, LocalKey, Signer, Verifier};
use cryptoki_sys::*;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Output held back after a length query (NULL buffer) or a short buffer, so the
/// repeated call returns exactly what the first one computed (§5.2 conventions).
pub struct Stash {
    /// The input of the call that computed it (updates must repeat it).
    pub input: Vec<u8>,
    pub out: Zeroizing<Vec<u8>>,
}

/// An active encrypt or decrypt.
pub struct CipherOp {
    pub op: Box<dyn Cipher>,
    pub stash: Option<Stash>,
    /// C_*Update was called: the single-part call is no longer allowed.
    pub multi: bool,
    pub multipart_ok: bool,
}

/// An active sign.
pub struct SignOp {
    pub op: Box<dyn Signer>,
    pub multi: bool,
    pub multipart_ok: bool,
    /// CKA_ALWAYS_AUTHENTICATE key awaiting C_Login(CKU_CONTEXT_SPECIFIC).
    pub needs_auth: bool,
}

/// An active verify.
pub struct VerifyOp {
    pub op: Box<dyn Verifier>,
    pub multi: bool,
    pub multipart_ok: bool,
}

/// An active digest.
pub struct DigestOp {
    pub op: Box<dyn Digester>,
    pub multi: bool,
}

/// An active C_FindObjects.
pub struct FindOp {
    pub handles: Vec<CK_OBJECT_HANDLE>,
    pub pos: usize,
}

/// The key this session last started an operation with, and the checks it passed: an
/// init with the same key (the usual loop) then skips the object table, the object's
/// lock and the attribute checks, and touches no lock another thread also takes. Valid
/// while the token's generation ([`crate::token::Token::generation`]) is unchanged;
/// cleared on logout and when the object is destroyed.
pub struct KeyCache {
    pub handle: CK_OBJECT_HANDLE,
    pub generation: u64,
    pub key: Arc<LocalKey>,
    pub always_authenticate: bool,
    /// A second reference to `key`, handed back by the last operation that ended: the
    /// next operation takes it instead of a new one (see `Cipher::into_key`).
    pub spare: Option<Arc<LocalKey>>,
    /// (usage attribute, mechanism) pairs this key was checked for, most recent first.
    pub passed: [Option<(CK_ATTRIBUTE_TYPE, CK_MECHANISM_TYPE)>; 4],
}

impl KeyCache {
    /// Key `h` passed the checks for (usage `flag`, `mech`) in token `generation`.
    pub fn hit(
        &self,
        h: CK_OBJECT_HANDLE,
        generation: u64,
        flag: CK_ATTRIBUTE_TYPE,
        mech: CK_MECHANISM_TYPE,
    ) -> bool {
        self.handle == h
            && self.generation == generation
            && self.passed.iter().flatten().any(|p| *p == (flag, mech))
    }
}

/// One session's operations. Its handle, slot and read-write flag never change and
/// live beside it in the session table (`api::SessionSlot`), outside this lock.
#[derive(Default)]
pub struct Session {
    /// Closed (C_CloseSession, C_CloseAllSessions, C_Finalize): everything else is
    /// empty. A thread's cached reference to the session (`api::cached_session`) sees
    /// this and goes the slow way, which answers with the right error.
    pub closed: bool,
    pub find: Option<FindOp>,
    pub encrypt: Option<CipherOp>,
    pub decrypt: Option<CipherOp>,
    pub sign: Option<SignOp>,
    pub verify: Option<VerifyOp>,
    pub digest: Option<DigestOp>,
    pub key_cache: Option<KeyCache>,
}

impl Session {
    /// Cancel every active operation (C_SessionCancel with all flags, logout).
    pub fn cancel_all(&mut self) {
        *self = Session {
            closed: self.closed,
            ..Session::default()
        };
    }

    /// The key `usable_key` (or the fast path's cache check) just approved: the one an
    /// init starts its operation with.
    pub fn checked_key(&mut self) -> Result<&mut KeyCache> {
        self.key_cache
            .as_mut()
            .ok_or_else(|| Error::general("key cache empty after a key check"))
    }

    /// The session is gone: drop its operations and cached key now (a thread may hold
    /// a reference to it for a while, see `closed`).
    pub fn close(&mut self) {
        *self = Session {
            closed: true,
            ..Session::default()
        };
    }
}

/// How much room the caller gave: None for a NULL buffer (a length query).
pub type Cap = Option<usize>;

/// What a call that returns bytes produces: the length only (query) or the bytes.
/// Outputs are ciphertext, plaintext the caller asked for, signatures and digests —
/// never key material — so they are plain vectors: wiping every 16 KiB output byte by
/// byte would cost more than the AES-GCM that made it.
pub enum Output {
    Len(usize),
    Bytes(Vec<u8>),
    /// This many bytes were written straight into the caller's buffer (the single-part
    /// fast path: no intermediate copy).
    Written(usize),
}

impl Output {
    pub fn len(&self) -> usize {
        match self {
            Output::Len(n) | Output::Written(n) => *n,
            Output::Bytes(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Run one output-producing step under the output-buffer rules (§5.2): compute once,
/// and on a length query or a short buffer keep the bytes so the repeated call (with
/// the same input) returns them. `CKR_BUFFER_TOO_SMALL` carries the needed length.
pub fn with_stash(
    stash: &mut Option<Stash>,
    input: &[u8],
    cap: Cap,
    compute: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Output> {
    let out = match stash.take() {
        Some(mut s) if s.input == input => Zeroizing::new(std::mem::take(&mut *s.out)),
        Some(_) => {
            return Err(Error::msg(
                CKR_ARGUMENTS_BAD,
                "repeated call after a length query changed its input",
            ))
        }
        None => Zeroizing::new(compute()?),
    };
    let n = out.len();
    match cap {
        Some(c) if c >= n => {
            let mut out = out;
            Ok(Output::Bytes(std::mem::take(&mut *out)))
        }
        _ => {
            *stash = Some(Stash {
                input: input.to_vec(),
                out,
            });
            match cap {
                None => Ok(Output::Len(n)),
                Some(_) => Err(Error::too_small(n)),
            }
        }
    }
}

/// True if an error leaves the operation active (only the short-buffer answer does).
pub fn keeps_operation(e: &Error) -> bool {
    e.rv() == CKR_BUFFER_TOO_SMALL
}
