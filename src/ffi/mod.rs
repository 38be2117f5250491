//! The C ABI shell: the only place that touches raw pointers. Every entry point goes
//! through [`entry!`]: it catches panics, logs the call at trace level and maps the
//! `Result` to a `CK_RV`. Argument reading and the output-buffer rules live in the
//! helpers below, used by every call.

pub mod awslc;
mod entries;
mod lists;

use crate::error::{Error, Result};
use crate::mechanism::{MechParam, Mechanism};
use crate::object::Attr;
use crate::session::{Cap, Output};
use cryptoki_sys::*;
use std::ffi::c_void;

/// Define an exported PKCS#11 entry point whose body returns `Result<()>`.
macro_rules! entry {
    ($(#[$m:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $body:block) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                || -> $crate::error::Result<()> { $body },
            ));
            $crate::ffi::finish(stringify!($name), r)
        }
    };
}
pub(crate) use entry;

/// Map an entry point's outcome to its return value, logging failures.
pub(crate) fn finish(name: &str, r: std::thread::Result<Result<()>>) -> CK_RV {
    match r {
        Ok(Ok(())) => {
            crate::log_at!(Trace, "{name} -> CKR_OK");
            CKR_OK
        }
        Ok(Err(e)) => {
            let rv = e.rv();
            if e.message().is_some() && rv != CKR_BUFFER_TOO_SMALL {
                crate::log_at!(Info, "{name} -> {e}");
            } else {
                crate::log_at!(Debug, "{name} -> {e}");
            }
            rv
        }
        Err(_) => {
            crate::log_at!(Error, "{name}: internal panic caught at the C boundary");
            CKR_GENERAL_ERROR
        }
    }
}

/// A caller's (pointer, length) as a slice; NULL is allowed only with length 0.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(CKR_ARGUMENTS_BAD.into());
    }
    let len = usize::try_from(len).map_err(|_| Error::from(CKR_ARGUMENTS_BAD))?;
    Ok(std::slice::from_raw_parts(p, len))
}

/// A PIN argument. A NULL PIN is CKR_ARGUMENTS_BAD (there is no protected path).
pub(crate) unsafe fn pin<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD.into());
    }
    bytes(p, len)
}

/// Write one value through a non-NULL out pointer.
pub(crate) unsafe fn put<T>(p: *mut T, v: T) -> Result<()> {
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD.into());
    }
    p.write(v);
    Ok(())
}

/// The output-buffer convention (§5.2) for calls returning bytes: a NULL buffer asks for
/// the length, a short one gets CKR_BUFFER_TOO_SMALL with the length, else the bytes.
pub(crate) unsafe fn out_bytes(
    buf: *mut u8,
    len: *mut CK_ULONG,
    f: impl FnOnce(Cap) -> Result<Output>,
) -> Result<()> {
    if len.is_null() {
        return Err(CKR_ARGUMENTS_BAD.into());
    }
    let cap = if buf.is_null() {
        None
    } else {
        Some(usize::try_from(*len).unwrap_or(usize::MAX))
    };
    match f(cap) {
        Ok(Output::Len(n)) => {
            *len = n as CK_ULONG;
            Ok(())
        }
        Ok(Output::Written(n)) => {
            *len = n as CK_ULONG;
            Ok(())
        }
        Ok(Output::Bytes(b)) => {
            if !b.is_empty() {
                std::ptr::copy_nonoverlapping(b.as_ptr(), buf, b.len());
            }
            *len = b.len() as CK_ULONG;
            Ok(())
        }
        Err(e) => {
            if let Some(n) = e.needed() {
                *len = n as CK_ULONG;
            }
            Err(e)
        }
    }
}

/// [`out_bytes`] for a single-part call that can write its output straight into the
/// caller's buffer: `f` also gets that buffer as a slice (`None` for a NULL buffer, or
/// when it overlaps `input`, since the two slices must not alias; the call then takes
/// the copying path). The slice covers the `*len` bytes the caller says it has.
pub(crate) unsafe fn out_bytes_direct(
    buf: *mut u8,
    len: *mut CK_ULONG,
    input: &[u8],
    f: impl FnOnce(Cap, Option<&mut [u8]>) -> Result<Output>,
) -> Result<()> {
    if len.is_null() {
        return Err(CKR_ARGUMENTS_BAD.into());
    }
    let mut direct = None;
    if !buf.is_null() {
        let cap = usize::try_from(*len).unwrap_or(usize::MAX);
        let (b, i) = (buf as usize, input.as_ptr() as usize);
        // A length no real buffer can have (past the address space, or more than a
        // slice may span) gets the copying path, which writes only what it produced.
        let sane = cap <= isize::MAX as usize && b.checked_add(cap).is_some();
        let apart = input.is_empty()
            || b.checked_add(cap).is_some_and(|end| end <= i)
            || i.checked_add(input.len()).is_some_and(|end| end <= b);
        if sane && apart {
            // SAFETY: the caller promises `*len` writable bytes at `buf` (§5.2); they
            // do not overlap `input`, so this is the only reference to them.
            direct = Some(std::slice::from_raw_parts_mut(buf, cap));
        }
    }
    out_bytes(buf, len, |cap| f(cap, direct.take()))
}

/// The same convention for lists of CK_ULONG-sized items (slots, mechanisms).
pub(crate) unsafe fn out_list<T: Copy>(
    buf: *mut T,
    count: *mut CK_ULONG,
    items: &[T],
) -> Result<()> {
    if count.is_null() {
        return Err(CKR_ARGUMENTS_BAD.into());
    }
    let n = items.len() as CK_ULONG;
    if buf.is_null() {
        *count = n;
        return Ok(());
    }
    if *count < n {
        *count = n;
        return Err(CKR_BUFFER_TOO_SMALL.into());
    }
    std::ptr::copy_nonoverlapping(items.as_ptr(), buf, items.len());
    *count = n;
    Ok(())
}

/// A template (creation, search or change) copied out of the caller's memory.
pub(crate) unsafe fn template(p: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Vec<Attr>> {
    if p.is_null() {
        if n == 0 {
            return Ok(vec![]);
        }
        return Err(CKR_ARGUMENTS_BAD.into());
    }
    let n = usize::try_from(n).map_err(|_| Error::from(CKR_ARGUMENTS_BAD))?;
    let attrs = std::slice::from_raw_parts(p, n);
    attrs
        .iter()
        .map(|a| {
            Ok((
                a.type_,
                bytes(a.pValue as *const u8, a.ulValueLen)?.to_vec(),
            ))
        })
        .collect()
}

unsafe fn param_struct<T: Copy>(m: &CK_MECHANISM) -> Result<T> {
    if m.pParameter.is_null() || m.ulParameterLen as usize != std::mem::size_of::<T>() {
        return Err(CKR_MECHANISM_PARAM_INVALID.into());
    }
    Ok((m.pParameter as *const T).read_unaligned())
}

/// The pre-3.0 CK_GCM_PARAMS without ulIvBits, still sent by some applications.
#[repr(C)]
#[derive(Clone, Copy)]
struct GcmParamsV240 {
    p_iv: *mut u8,
    iv_len: CK_ULONG,
    p_aad: *mut u8,
    aad_len: CK_ULONG,
    tag_bits: CK_ULONG,
}

/// A mechanism with its parameter parsed by type (CK_GCM_PARAMS, CK_RSA_PKCS_PSS_PARAMS…).
pub(crate) unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<Mechanism> {
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD.into());
    }
    let m = p.read_unaligned();
    let bad = || Error::from(CKR_MECHANISM_PARAM_INVALID);
    let param = match m.mechanism {
        CKM_AES_GCM => {
            if m.ulParameterLen as usize == std::mem::size_of::<GcmParamsV240>() {
                let g: GcmParamsV240 = param_struct(&m)?;
                MechParam::Gcm {
                    iv: bytes(g.p_iv, g.iv_len).map_err(|_| bad())?.into(),
                    aad: bytes(g.p_aad, g.aad_len).map_err(|_| bad())?.to_vec(),
                    tag_bits: g.tag_bits as u64,
                }
            } else {
                let g: CK_GCM_PARAMS = param_struct(&m)?;
                MechParam::Gcm {
                    iv: bytes(g.pIv, g.ulIvLen).map_err(|_| bad())?.into(),
                    aad: bytes(g.pAAD, g.ulAADLen).map_err(|_| bad())?.to_vec(),
                    tag_bits: g.ulTagBits as u64,
                }
            }
        }
        CKM_AES_CTR => {
            let c: CK_AES_CTR_PARAMS = param_struct(&m)?;
            MechParam::Ctr {
                counter_bits: c.ulCounterBits as u64,
                cb: c.cb,
            }
        }
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            let s: CK_RSA_PKCS_PSS_PARAMS = param_struct(&m)?;
            MechParam::Pss {
                hash: s.hashAlg,
                mgf: s.mgf,
                salt_len: s.sLen as u64,
            }
        }
        CKM_RSA_PKCS_OAEP => {
            let o: CK_RSA_PKCS_OAEP_PARAMS = param_struct(&m)?;
            let label = match o.source {
                0 => vec![],
                CKZ_DATA_SPECIFIED => bytes(o.pSourceData as *const u8, o.ulSourceDataLen)
                    .map_err(|_| bad())?
                    .to_vec(),
                _ => return Err(bad()),
            };
            MechParam::Oaep {
                hash: o.hashAlg,
                mgf: o.mgf,
                label,
            }
        }
        CKM_SHA_1_HMAC_GENERAL
        | CKM_SHA224_HMAC_GENERAL
        | CKM_SHA256_HMAC_GENERAL
        | CKM_SHA384_HMAC_GENERAL
        | CKM_SHA512_HMAC_GENERAL
        | CKM_AES_CMAC_GENERAL => {
            let l: CK_MAC_GENERAL_PARAMS = param_struct(&m)?;
            MechParam::Ulong(l as u64)
        }
        _ => {
            if m.pParameter.is_null() || m.ulParameterLen == 0 {
                MechParam::None
            } else {
                MechParam::Bytes(bytes(m.pParameter as *const u8, m.ulParameterLen)?.to_vec())
            }
        }
    };
    Ok(Mechanism {
        mech: m.mechanism,
        param,
    })
}

extern "C" fn forked_child() {
    crate::api::note_fork();
}

/// Install (once per process) the fork handler the api layer's process check relies on.
pub(crate) fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only does an atomic add in the child.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
        if rc == 0 {
            crate::api::forks_watched();
        } else {
            crate::log_at!(
                Warn,
                "pthread_atfork failed ({rc}): checking the pid on every call"
            );
        }
    });
}

/// Copy a C string (pReserved of C_Initialize) if it is valid UTF-8.
pub(crate) unsafe fn c_string(p: *const c_void) -> Option<String> {
    if p.is_null() {
        return None;
    }
    std::ffi::CStr::from_ptr(p as *const std::ffi::c_char)
        .to_str()
        .ok()
        .map(str::to_owned)
}
