//! A PKCS#11 module loaded by path and called through its function list: no wrapper
//! crate, so nothing but the module's own work is in a timed loop.

use cryptoki_sys::*;
use std::ffi::c_void;
use std::ptr::null_mut;

pub type R<T> = Result<T, String>;

/// A loaded, initialized module.
pub struct P11 {
    pub f: &'static CK_FUNCTION_LIST,
    pub name: &'static str,
    _lib: libloading::Library,
}

fn ck(rv: CK_RV, what: &str) -> R<()> {
    if rv == CKR_OK {
        Ok(())
    } else {
        Err(format!("{what}: CK_RV 0x{rv:x}"))
    }
}

/// A failed call in a timed loop is a harness or module bug: stop the run loudly.
#[cold]
#[inline(never)]
pub fn fail(what: &str, rv: CK_RV) -> ! {
    panic!("{what} failed in the timed loop: CK_RV 0x{rv:x}")
}

/// A template whose values live as long as it does.
#[derive(Default)]
pub struct Tpl {
    vals: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
}

impl Tpl {
    pub fn new() -> Tpl {
        Tpl::default()
    }
    pub fn bool(mut self, t: CK_ATTRIBUTE_TYPE, v: bool) -> Tpl {
        self.vals.push((t, vec![v as u8]));
        self
    }
    pub fn ulong(mut self, t: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> Tpl {
        self.vals.push((t, v.to_ne_bytes().to_vec()));
        self
    }
    pub fn bytes(mut self, t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Tpl {
        self.vals.push((t, v.to_vec()));
        self
    }
    /// The CK_ATTRIBUTE array; valid while `self` lives and is not changed.
    pub fn attrs(&mut self) -> Vec<CK_ATTRIBUTE> {
        self.vals
            .iter_mut()
            .map(|(t, v)| CK_ATTRIBUTE {
                type_: *t,
                pValue: v.as_mut_ptr() as *mut c_void,
                ulValueLen: v.len() as CK_ULONG,
            })
            .collect()
    }
}

/// A CK_MECHANISM without a parameter.
pub fn mech(m: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: m,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

/// A CK_MECHANISM whose parameter is `p` (which must outlive the use).
pub fn mech_with<T>(m: CK_MECHANISM_TYPE, p: &mut T) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: m,
        pParameter: p as *mut T as *mut c_void,
        ulParameterLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

pub fn gcm_params(iv: &mut [u8; 12]) -> CK_GCM_PARAMS {
    CK_GCM_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: 12,
        ulIvBits: 96,
        pAAD: null_mut(),
        ulAADLen: 0,
        ulTagBits: 128,
    }
}

impl P11 {
    /// Load `path` and C_Initialize it (OS locking, as multi-threaded callers do).
    pub fn load(path: &str, name: &'static str) -> R<P11> {
        // SAFETY: loading a PKCS#11 module runs its initializers; that is the point.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{path}: {e}"))?;
        let f = unsafe {
            let gfl: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
                lib.get(b"C_GetFunctionList")
                    .map_err(|e| format!("{path}: {e}"))?;
            let mut f: CK_FUNCTION_LIST_PTR = null_mut();
            ck(gfl(&mut f), "C_GetFunctionList")?;
            &*f
        };
        let m = P11 { f, name, _lib: lib };
        m.initialize()?;
        Ok(m)
    }

    pub fn initialize(&self) -> R<()> {
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: null_mut(),
        };
        ck(
            unsafe { self.f.C_Initialize.unwrap()(&mut args as *mut _ as *mut c_void) },
            "C_Initialize",
        )
    }

    pub fn finalize(&self) -> R<()> {
        ck(
            unsafe { self.f.C_Finalize.unwrap()(null_mut()) },
            "C_Finalize",
        )
    }

    pub fn slots(&self, present: bool) -> R<Vec<CK_SLOT_ID>> {
        let mut n: CK_ULONG = 0;
        unsafe {
            ck(
                self.f.C_GetSlotList.unwrap()(present as CK_BBOOL, null_mut(), &mut n),
                "C_GetSlotList",
            )?;
            let mut v = vec![0; n as usize];
            ck(
                self.f.C_GetSlotList.unwrap()(present as CK_BBOOL, v.as_mut_ptr(), &mut n),
                "C_GetSlotList",
            )?;
            v.truncate(n as usize);
            Ok(v)
        }
    }

    /// The slot whose token has `label` (an initialized token).
    pub fn slot_with_label(&self, label: &str) -> R<CK_SLOT_ID> {
        for s in self.slots(true)? {
            let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            ck(
                unsafe { self.f.C_GetTokenInfo.unwrap()(s, &mut info) },
                "C_GetTokenInfo",
            )?;
            if String::from_utf8_lossy(&info.label).trim_end() == label
                && info.flags & CKF_TOKEN_INITIALIZED != 0
            {
                return Ok(s);
            }
        }
        Err(format!("{}: no token labelled {label}", self.name))
    }

    pub fn init_token(&self, slot: CK_SLOT_ID, so_pin: &str, label: &str) -> R<()> {
        let mut l = [b' '; 32];
        l[..label.len()].copy_from_slice(label.as_bytes());
        ck(
            unsafe {
                self.f.C_InitToken.unwrap()(
                    slot,
                    so_pin.as_ptr() as *mut u8,
                    so_pin.len() as CK_ULONG,
                    l.as_mut_ptr(),
                )
            },
            "C_InitToken",
        )
    }

    pub fn open(&self, slot: CK_SLOT_ID) -> R<CK_SESSION_HANDLE> {
        let mut h = 0;
        ck(
            unsafe {
                self.f.C_OpenSession.unwrap()(
                    slot,
                    CKF_SERIAL_SESSION | CKF_RW_SESSION,
                    null_mut(),
                    None,
                    &mut h,
                )
            },
            "C_OpenSession",
        )?;
        Ok(h)
    }

    pub fn close(&self, s: CK_SESSION_HANDLE) -> R<()> {
        ck(
            unsafe { self.f.C_CloseSession.unwrap()(s) },
            "C_CloseSession",
        )
    }

    pub fn login(&self, s: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> R<()> {
        ck(
            unsafe {
                self.f.C_Login.unwrap()(s, user, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG)
            },
            "C_Login",
        )
    }

    pub fn logout(&self, s: CK_SESSION_HANDLE) -> R<()> {
        ck(unsafe { self.f.C_Logout.unwrap()(s) }, "C_Logout")
    }

    pub fn init_pin(&self, s: CK_SESSION_HANDLE, pin: &str) -> R<()> {
        ck(
            unsafe { self.f.C_InitPIN.unwrap()(s, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG) },
            "C_InitPIN",
        )
    }

    /// Initialize the first token without one (SO and user PIN), return its slot.
    pub fn fresh_token(&self, label: &str, so: &str, user: &str) -> R<CK_SLOT_ID> {
        let slot = *self
            .slots(false)?
            .first()
            .ok_or(format!("{}: no slot", self.name))?;
        self.init_token(slot, so, label)?;
        // SoftHSM gives an initialized token a new slot id.
        let slot = self.slot_with_label(label)?;
        let s = self.open(slot)?;
        self.login(s, CKU_SO, so)?;
        self.init_pin(s, user)?;
        self.logout(s)?;
        self.close(s)?;
        Ok(slot)
    }

    pub fn generate_key(
        &self,
        s: CK_SESSION_HANDLE,
        m: CK_MECHANISM_TYPE,
        mut t: Tpl,
    ) -> R<CK_OBJECT_HANDLE> {
        let mut a = t.attrs();
        let mut mm = mech(m);
        let mut h = 0;
        ck(
            unsafe {
                self.f.C_GenerateKey.unwrap()(s, &mut mm, a.as_mut_ptr(), a.len() as _, &mut h)
            },
            "C_GenerateKey",
        )?;
        Ok(h)
    }

    /// (public, private) handles.
    pub fn generate_pair(
        &self,
        s: CK_SESSION_HANDLE,
        m: CK_MECHANISM_TYPE,
        mut pubt: Tpl,
        mut privt: Tpl,
    ) -> R<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let mut pa = pubt.attrs();
        let mut sa = privt.attrs();
        let mut mm = mech(m);
        let (mut ph, mut sh) = (0, 0);
        ck(
            unsafe {
                self.f.C_GenerateKeyPair.unwrap()(
                    s,
                    &mut mm,
                    pa.as_mut_ptr(),
                    pa.len() as _,
                    sa.as_mut_ptr(),
                    sa.len() as _,
                    &mut ph,
                    &mut sh,
                )
            },
            "C_GenerateKeyPair",
        )?;
        Ok((ph, sh))
    }

    pub fn create(&self, s: CK_SESSION_HANDLE, mut t: Tpl) -> R<CK_OBJECT_HANDLE> {
        let mut a = t.attrs();
        let mut h = 0;
        ck(
            unsafe { self.f.C_CreateObject.unwrap()(s, a.as_mut_ptr(), a.len() as _, &mut h) },
            "C_CreateObject",
        )?;
        Ok(h)
    }

    /// Every handle matching `t` (C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal).
    pub fn find(&self, s: CK_SESSION_HANDLE, t: &mut Tpl) -> R<Vec<CK_OBJECT_HANDLE>> {
        let mut a = t.attrs();
        let mut out = Vec::new();
        unsafe {
            ck(
                self.f.C_FindObjectsInit.unwrap()(s, a.as_mut_ptr(), a.len() as _),
                "C_FindObjectsInit",
            )?;
            let mut buf = [0 as CK_OBJECT_HANDLE; 64];
            loop {
                let mut n = 0;
                ck(
                    self.f.C_FindObjects.unwrap()(s, buf.as_mut_ptr(), 64, &mut n),
                    "C_FindObjects",
                )?;
                out.extend_from_slice(&buf[..n as usize]);
                if n < 64 {
                    break;
                }
            }
            ck(self.f.C_FindObjectsFinal.unwrap()(s), "C_FindObjectsFinal")?;
        }
        Ok(out)
    }

    pub fn attr(
        &self,
        s: CK_SESSION_HANDLE,
        h: CK_OBJECT_HANDLE,
        ty: CK_ATTRIBUTE_TYPE,
    ) -> R<Vec<u8>> {
        let mut a = CK_ATTRIBUTE {
            type_: ty,
            pValue: null_mut(),
            ulValueLen: 0,
        };
        unsafe {
            ck(
                self.f.C_GetAttributeValue.unwrap()(s, h, &mut a, 1),
                "C_GetAttributeValue",
            )?;
            let mut v = vec![0u8; a.ulValueLen as usize];
            a.pValue = v.as_mut_ptr() as *mut c_void;
            ck(
                self.f.C_GetAttributeValue.unwrap()(s, h, &mut a, 1),
                "C_GetAttributeValue",
            )?;
            v.truncate(a.ulValueLen as usize);
            Ok(v)
        }
    }

    /// C_EncryptInit + C_Encrypt into `out`; the output length.
    #[inline]
    pub fn encrypt(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut CK_MECHANISM,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> usize {
        unsafe {
            let rv = self.f.C_EncryptInit.unwrap()(s, m, key);
            if rv != CKR_OK {
                fail("C_EncryptInit", rv)
            }
            let mut n = out.len() as CK_ULONG;
            let rv = self.f.C_Encrypt.unwrap()(
                s,
                data.as_ptr() as *mut u8,
                data.len() as _,
                out.as_mut_ptr(),
                &mut n,
            );
            if rv != CKR_OK {
                fail("C_Encrypt", rv)
            }
            n as usize
        }
    }

    /// C_DecryptInit + C_Decrypt into `out`; the output length.
    #[inline]
    pub fn decrypt(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut CK_MECHANISM,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> usize {
        unsafe {
            let rv = self.f.C_DecryptInit.unwrap()(s, m, key);
            if rv != CKR_OK {
                fail("C_DecryptInit", rv)
            }
            let mut n = out.len() as CK_ULONG;
            let rv = self.f.C_Decrypt.unwrap()(
                s,
                data.as_ptr() as *mut u8,
                data.len() as _,
                out.as_mut_ptr(),
                &mut n,
            );
            if rv != CKR_OK {
                fail("C_Decrypt", rv)
            }
            n as usize
        }
    }

    /// C_SignInit + C_Sign into `out`; the signature length.
    #[inline]
    pub fn sign(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut CK_MECHANISM,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> usize {
        unsafe {
            let rv = self.f.C_SignInit.unwrap()(s, m, key);
            if rv != CKR_OK {
                fail("C_SignInit", rv)
            }
            let mut n = out.len() as CK_ULONG;
            let rv = self.f.C_Sign.unwrap()(
                s,
                data.as_ptr() as *mut u8,
                data.len() as _,
                out.as_mut_ptr(),
                &mut n,
            );
            if rv != CKR_OK {
                fail("C_Sign", rv)
            }
            n as usize
        }
    }

    /// C_VerifyInit + C_Verify; panics unless the signature verifies.
    #[inline]
    pub fn verify(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut CK_MECHANISM,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        sig: &[u8],
    ) {
        unsafe {
            let rv = self.f.C_VerifyInit.unwrap()(s, m, key);
            if rv != CKR_OK {
                fail("C_VerifyInit", rv)
            }
            let rv = self.f.C_Verify.unwrap()(
                s,
                data.as_ptr() as *mut u8,
                data.len() as _,
                sig.as_ptr() as *mut u8,
                sig.len() as _,
            );
            if rv != CKR_OK {
                fail("C_Verify", rv)
            }
        }
    }
}
