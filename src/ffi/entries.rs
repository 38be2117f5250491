//! The PKCS#11 entry points. Each one only reads its arguments, calls `api/` and
//! writes the results back; the spec section is named where it helps.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use super::{
    bytes, c_string, entry, mechanism, out_bytes, out_bytes_direct, out_list, pin, put, template,
};
use crate::api::{self, crypt::Dir, crypt::Step, object::AttrOut};
use crate::error::Error;
use cryptoki_sys::*;
use std::ffi::c_void;

// ---- General purpose (§5.4) ---------------------------------------------------------

entry! {
    /// C_Initialize: arguments are checked and copied here, never kept.
    fn C_Initialize(pInitArgs: *mut c_void) {
        let mut reserved = None;
        if !pInitArgs.is_null() {
            let a = (pInitArgs as *const CK_C_INITIALIZE_ARGS).read_unaligned();
            let n = [a.CreateMutex.is_some(), a.DestroyMutex.is_some(), a.LockMutex.is_some(), a.UnlockMutex.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if n != 0 && n != 4 {
                return Err(CKR_ARGUMENTS_BAD.into());
            }
            // We lock with the OS's primitives; with only the caller's we cannot.
            if n == 4 && a.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(CKR_CANT_LOCK.into());
            }
            reserved = c_string(a.pReserved);
        }
        super::watch_forks();
        api::general::initialize(reserved)
    }
}

entry! {
    fn C_Finalize(pReserved: *mut c_void) {
        if !pReserved.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        api::general::finalize()
    }
}

entry! {
    fn C_GetInfo(pInfo: CK_INFO_PTR) {
        let i = api::general::info()?;
        put(pInfo, i)
    }
}

entry! {
    fn C_GetFunctionList(ppFunctionList: CK_FUNCTION_LIST_PTR_PTR) {
        put(ppFunctionList, super::lists::function_list_240())
    }
}

entry! {
    fn C_GetInterfaceList(pInterfacesList: CK_INTERFACE_PTR, pulCount: CK_ULONG_PTR) {
        out_list(pInterfacesList, pulCount, &super::lists::interfaces())
    }
}

entry! {
    fn C_GetInterface(pInterfaceName: CK_UTF8CHAR_PTR, pVersion: CK_VERSION_PTR, ppInterface: CK_INTERFACE_PTR_PTR, flags: CK_FLAGS) {
        if ppInterface.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let name = if pInterfaceName.is_null() { None } else { c_string(pInterfaceName as *const c_void) };
        let version = if pVersion.is_null() { None } else { Some(pVersion.read_unaligned()) };
        let i = super::lists::interface(name.as_deref(), version, flags).ok_or(Error::from(CKR_ARGUMENTS_BAD))?;
        put(ppInterface, i)
    }
}

// ---- Slot and token management (§5.5) -----------------------------------------------

entry! {
    fn C_GetSlotList(tokenPresent: CK_BBOOL, pSlotList: CK_SLOT_ID_PTR, pulCount: CK_ULONG_PTR) {
        let l = api::slot::slot_list(tokenPresent != CK_FALSE)?;
        out_list(pSlotList, pulCount, &l)
    }
}

entry! {
    fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: CK_SLOT_INFO_PTR) {
        if pInfo.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        put(pInfo, api::slot::slot_info(slotID)?)
    }
}

entry! {
    fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: CK_TOKEN_INFO_PTR) {
        if pInfo.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        put(pInfo, api::slot::token_info(slotID)?)
    }
}

entry! {
    fn C_WaitForSlotEvent(_flags: CK_FLAGS, _pSlot: CK_SLOT_ID_PTR, _pReserved: *mut c_void) {
        api::module()?;
        Err(CKR_FUNCTION_NOT_SUPPORTED.into())
    }
}

entry! {
    fn C_GetMechanismList(slotID: CK_SLOT_ID, pMechanismList: CK_MECHANISM_TYPE_PTR, pulCount: CK_ULONG_PTR) {
        let l = api::slot::mechanism_list(slotID)?;
        out_list(pMechanismList, pulCount, &l)
    }
}

entry! {
    fn C_GetMechanismInfo(slotID: CK_SLOT_ID, type_: CK_MECHANISM_TYPE, pInfo: CK_MECHANISM_INFO_PTR) {
        if pInfo.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        put(pInfo, api::slot::mechanism_info(slotID, type_)?)
    }
}

entry! {
    fn C_InitToken(slotID: CK_SLOT_ID, pPin: CK_UTF8CHAR_PTR, ulPinLen: CK_ULONG, pLabel: CK_UTF8CHAR_PTR) {
        let p = pin(pPin, ulPinLen)?;
        if pLabel.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let label = (pLabel as *const [u8; 32]).read_unaligned();
        api::slot::init_token(slotID, p, &label)
    }
}

entry! {
    fn C_InitPIN(hSession: CK_SESSION_HANDLE, pPin: CK_UTF8CHAR_PTR, ulPinLen: CK_ULONG) {
        api::slot::init_pin(hSession, pin(pPin, ulPinLen)?)
    }
}

entry! {
    fn C_SetPIN(hSession: CK_SESSION_HANDLE, pOldPin: CK_UTF8CHAR_PTR, ulOldLen: CK_ULONG, pNewPin: CK_UTF8CHAR_PTR, ulNewLen: CK_ULONG) {
        api::slot::set_pin(hSession, pin(pOldPin, ulOldLen)?, pin(pNewPin, ulNewLen)?)
    }
}

// ---- Session management (§5.6) ------------------------------------------------------

entry! {
    fn C_OpenSession(slotID: CK_SLOT_ID, flags: CK_FLAGS, _pApplication: *mut c_void, _Notify: CK_NOTIFY, phSession: CK_SESSION_HANDLE_PTR) {
        if phSession.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        put(phSession, api::session::open(slotID, flags)?)
    }
}

entry! {
    fn C_CloseSession(hSession: CK_SESSION_HANDLE) {
        api::session::close(hSession)
    }
}

entry! {
    fn C_CloseAllSessions(slotID: CK_SLOT_ID) {
        api::session::close_all(slotID)
    }
}

entry! {
    fn C_GetSessionInfo(hSession: CK_SESSION_HANDLE, pInfo: CK_SESSION_INFO_PTR) {
        if pInfo.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        put(pInfo, api::session::info(hSession)?)
    }
}

entry! {
    fn C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS) {
        api::session::cancel(hSession, flags)
    }
}

entry! {
    fn C_GetOperationState(hSession: CK_SESSION_HANDLE, _pOperationState: CK_BYTE_PTR, _pulOperationStateLen: CK_ULONG_PTR) {
        api::module()?.session(hSession)?;
        Err(CKR_FUNCTION_NOT_SUPPORTED.into())
    }
}

entry! {
    fn C_SetOperationState(hSession: CK_SESSION_HANDLE, _pOperationState: CK_BYTE_PTR, _ulOperationStateLen: CK_ULONG, _hEncryptionKey: CK_OBJECT_HANDLE, _hAuthenticationKey: CK_OBJECT_HANDLE) {
        api::module()?.session(hSession)?;
        Err(CKR_FUNCTION_NOT_SUPPORTED.into())
    }
}

entry! {
    fn C_Login(hSession: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pPin: CK_UTF8CHAR_PTR, ulPinLen: CK_ULONG) {
        api::session::login(hSession, userType, pin(pPin, ulPinLen)?)
    }
}

entry! {
    fn C_LoginUser(hSession: CK_SESSION_HANDLE, _userType: CK_USER_TYPE, _pPin: CK_UTF8CHAR_PTR, _ulPinLen: CK_ULONG, _pUsername: CK_UTF8CHAR_PTR, _ulUsernameLen: CK_ULONG) {
        api::module()?.session(hSession)?;
        Err(CKR_FUNCTION_NOT_SUPPORTED.into())
    }
}

entry! {
    fn C_Logout(hSession: CK_SESSION_HANDLE) {
        api::session::logout(hSession)
    }
}

// ---- Object management (§5.7) -------------------------------------------------------

entry! {
    fn C_CreateObject(hSession: CK_SESSION_HANDLE, pTemplate: CK_ATTRIBUTE_PTR, ulCount: CK_ULONG, phObject: CK_OBJECT_HANDLE_PTR) {
        if phObject.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let t = template(pTemplate, ulCount)?;
        put(phObject, api::object::create(hSession, &t)?)
    }
}

entry! {
    fn C_CopyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: CK_ATTRIBUTE_PTR, ulCount: CK_ULONG, phNewObject: CK_OBJECT_HANDLE_PTR) {
        if phNewObject.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let t = template(pTemplate, ulCount)?;
        put(phNewObject, api::object::copy(hSession, hObject, &t)?)
    }
}

entry! {
    fn C_DestroyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE) {
        api::object::destroy(hSession, hObject)
    }
}

entry! {
    fn C_GetObjectSize(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pulSize: CK_ULONG_PTR) {
        if pulSize.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        put(pulSize, api::object::size(hSession, hObject)?)
    }
}

entry! {
    /// C_GetAttributeValue (§5.7): every entry is processed; the overall code is
    /// CKR_ATTRIBUTE_SENSITIVE, else CKR_ATTRIBUTE_TYPE_INVALID, else CKR_BUFFER_TOO_SMALL.
    fn C_GetAttributeValue(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: CK_ATTRIBUTE_PTR, ulCount: CK_ULONG) {
        if pTemplate.is_null() && ulCount != 0 {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let n = usize::try_from(ulCount).map_err(|_| Error::from(CKR_ARGUMENTS_BAD))?;
        let entries: &mut [CK_ATTRIBUTE] = if n == 0 { &mut [] } else { std::slice::from_raw_parts_mut(pTemplate, n) };
        let types: Vec<CK_ATTRIBUTE_TYPE> = entries.iter().map(|a| a.type_).collect();
        let values = api::object::get(hSession, hObject, &types)?;
        let (mut sensitive, mut invalid, mut small) = (false, false, false);
        for (a, v) in entries.iter_mut().zip(values) {
            match v {
                AttrOut::Value(v) => {
                    if a.pValue.is_null() {
                        a.ulValueLen = v.len() as CK_ULONG;
                    } else if (a.ulValueLen as usize) < v.len() {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        small = true;
                    } else {
                        std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len());
                        a.ulValueLen = v.len() as CK_ULONG;
                    }
                }
                AttrOut::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    sensitive = true;
                }
                AttrOut::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    invalid = true;
                }
            }
        }
        if sensitive {
            Err(CKR_ATTRIBUTE_SENSITIVE.into())
        } else if invalid {
            Err(CKR_ATTRIBUTE_TYPE_INVALID.into())
        } else if small {
            Err(CKR_BUFFER_TOO_SMALL.into())
        } else {
            Ok(())
        }
    }
}

entry! {
    fn C_SetAttributeValue(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: CK_ATTRIBUTE_PTR, ulCount: CK_ULONG) {
        let t = template(pTemplate, ulCount)?;
        api::object::set(hSession, hObject, &t)
    }
}

entry! {
    fn C_FindObjectsInit(hSession: CK_SESSION_HANDLE, pTemplate: CK_ATTRIBUTE_PTR, ulCount: CK_ULONG) {
        let t = template(pTemplate, ulCount)?;
        api::object::find_init(hSession, &t)
    }
}

entry! {
    fn C_FindObjects(hSession: CK_SESSION_HANDLE, phObject: CK_OBJECT_HANDLE_PTR, ulMaxObjectCount: CK_ULONG, pulObjectCount: CK_ULONG_PTR) {
        if pulObjectCount.is_null() || (phObject.is_null() && ulMaxObjectCount != 0) {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let found = api::object::find(hSession, ulMaxObjectCount as usize)?;
        if !found.is_empty() {
            std::ptr::copy_nonoverlapping(found.as_ptr(), phObject, found.len());
        }
        *pulObjectCount = found.len() as CK_ULONG;
        Ok(())
    }
}

entry! {
    fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) {
        api::object::find_final(hSession)
    }
}

// ---- Encryption and decryption (§5.8, §5.9) -----------------------------------------

macro_rules! cipher_entries {
    ($dir:expr, $init:ident, $one:ident, $update:ident, $final:ident) => {
        entry! {
            fn $init(hSession: CK_SESSION_HANDLE, pMechanism: CK_MECHANISM_PTR, hKey: CK_OBJECT_HANDLE) {
                let m = mechanism(pMechanism)?;
                api::crypt::init(hSession, $dir, &m, hKey)
            }
        }
        entry! {
            fn $one(hSession: CK_SESSION_HANDLE, pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pOut: CK_BYTE_PTR, pulOutLen: CK_ULONG_PTR) {
                let d = bytes(pData, ulDataLen)?;
                out_bytes_direct(pOut, pulOutLen, d, |cap, direct| api::crypt::single(hSession, $dir, d, cap, direct))
            }
        }
        entry! {
            fn $update(hSession: CK_SESSION_HANDLE, pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG, pOut: CK_BYTE_PTR, pulOutLen: CK_ULONG_PTR) {
                let d = bytes(pPart, ulPartLen)?;
                out_bytes(pOut, pulOutLen, |cap| api::crypt::step(hSession, $dir, Step::Update, d, cap))
            }
        }
        entry! {
            fn $final(hSession: CK_SESSION_HANDLE, pOut: CK_BYTE_PTR, pulOutLen: CK_ULONG_PTR) {
                out_bytes(pOut, pulOutLen, |cap| api::crypt::step(hSession, $dir, Step::Final, &[], cap))
            }
        }
    };
}

cipher_entries!(
    Dir::Encrypt,
    C_EncryptInit,
    C_Encrypt,
    C_EncryptUpdate,
    C_EncryptFinal
);
cipher_entries!(
    Dir::Decrypt,
    C_DecryptInit,
    C_Decrypt,
    C_DecryptUpdate,
    C_DecryptFinal
);

// ---- Message digesting (§5.10) ------------------------------------------------------

entry! {
    fn C_DigestInit(hSession: CK_SESSION_HANDLE, pMechanism: CK_MECHANISM_PTR) {
        let m = mechanism(pMechanism)?;
        api::digest::init(hSession, &m)
    }
}

entry! {
    fn C_Digest(hSession: CK_SESSION_HANDLE, pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pDigest: CK_BYTE_PTR, pulDigestLen: CK_ULONG_PTR) {
        let d = bytes(pData, ulDataLen)?;
        out_bytes(pDigest, pulDigestLen, |cap| api::digest::digest(hSession, Some(d), cap))
    }
}

entry! {
    fn C_DigestUpdate(hSession: CK_SESSION_HANDLE, pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG) {
        api::digest::update(hSession, bytes(pPart, ulPartLen)?)
    }
}

entry! {
    fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) {
        api::digest::digest_key(hSession, hKey)
    }
}

entry! {
    fn C_DigestFinal(hSession: CK_SESSION_HANDLE, pDigest: CK_BYTE_PTR, pulDigestLen: CK_ULONG_PTR) {
        out_bytes(pDigest, pulDigestLen, |cap| api::digest::digest(hSession, None, cap))
    }
}

// ---- Signing and MACing, verifying (§5.11, §5.12) -----------------------------------

entry! {
    fn C_SignInit(hSession: CK_SESSION_HANDLE, pMechanism: CK_MECHANISM_PTR, hKey: CK_OBJECT_HANDLE) {
        let m = mechanism(pMechanism)?;
        api::sign::sign_init(hSession, &m, hKey)
    }
}

entry! {
    fn C_Sign(hSession: CK_SESSION_HANDLE, pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pSignature: CK_BYTE_PTR, pulSignatureLen: CK_ULONG_PTR) {
        let d = bytes(pData, ulDataLen)?;
        out_bytes(pSignature, pulSignatureLen, |cap| api::sign::sign(hSession, Some(d), cap))
    }
}

entry! {
    fn C_SignUpdate(hSession: CK_SESSION_HANDLE, pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG) {
        api::sign::sign_update(hSession, bytes(pPart, ulPartLen)?)
    }
}

entry! {
    fn C_SignFinal(hSession: CK_SESSION_HANDLE, pSignature: CK_BYTE_PTR, pulSignatureLen: CK_ULONG_PTR) {
        out_bytes(pSignature, pulSignatureLen, |cap| api::sign::sign(hSession, None, cap))
    }
}

entry! {
    fn C_VerifyInit(hSession: CK_SESSION_HANDLE, pMechanism: CK_MECHANISM_PTR, hKey: CK_OBJECT_HANDLE) {
        let m = mechanism(pMechanism)?;
        api::sign::verify_init(hSession, &m, hKey)
    }
}

entry! {
    fn C_Verify(hSession: CK_SESSION_HANDLE, pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pSignature: CK_BYTE_PTR, ulSignatureLen: CK_ULONG) {
        let d = bytes(pData, ulDataLen)?;
        let s = bytes(pSignature, ulSignatureLen)?;
        api::sign::verify(hSession, Some(d), s)
    }
}

entry! {
    fn C_VerifyUpdate(hSession: CK_SESSION_HANDLE, pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG) {
        api::sign::verify_update(hSession, bytes(pPart, ulPartLen)?)
    }
}

entry! {
    fn C_VerifyFinal(hSession: CK_SESSION_HANDLE, pSignature: CK_BYTE_PTR, ulSignatureLen: CK_ULONG) {
        api::sign::verify(hSession, None, bytes(pSignature, ulSignatureLen)?)
    }
}

// ---- Key management (§5.14) ---------------------------------------------------------

entry! {
    fn C_GenerateKey(hSession: CK_SESSION_HANDLE, pMechanism: CK_MECHANISM_PTR, pTemplate: CK_ATTRIBUTE_PTR, ulCount: CK_ULONG, phKey: CK_OBJECT_HANDLE_PTR) {
        if phKey.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let m = mechanism(pMechanism)?;
        let t = template(pTemplate, ulCount)?;
        put(phKey, api::keys::generate_key(hSession, &m, &t)?)
    }
}

entry! {
    fn C_GenerateKeyPair(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        pPublicKeyTemplate: CK_ATTRIBUTE_PTR,
        ulPublicKeyAttributeCount: CK_ULONG,
        pPrivateKeyTemplate: CK_ATTRIBUTE_PTR,
        ulPrivateKeyAttributeCount: CK_ULONG,
        phPublicKey: CK_OBJECT_HANDLE_PTR,
        phPrivateKey: CK_OBJECT_HANDLE_PTR,
    ) {
        if phPublicKey.is_null() || phPrivateKey.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let m = mechanism(pMechanism)?;
        let pt = template(pPublicKeyTemplate, ulPublicKeyAttributeCount)?;
        let st = template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)?;
        let (p, s) = api::keys::generate_key_pair(hSession, &m, &pt, &st)?;
        put(phPublicKey, p)?;
        put(phPrivateKey, s)
    }
}

entry! {
    fn C_WrapKey(hSession: CK_SESSION_HANDLE, pMechanism: CK_MECHANISM_PTR, hWrappingKey: CK_OBJECT_HANDLE, hKey: CK_OBJECT_HANDLE, pWrappedKey: CK_BYTE_PTR, pulWrappedKeyLen: CK_ULONG_PTR) {
        let m = mechanism(pMechanism)?;
        out_bytes(pWrappedKey, pulWrappedKeyLen, |cap| api::keys::wrap_key(hSession, &m, hWrappingKey, hKey, cap))
    }
}

entry! {
    fn C_UnwrapKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hUnwrappingKey: CK_OBJECT_HANDLE,
        pWrappedKey: CK_BYTE_PTR,
        ulWrappedKeyLen: CK_ULONG,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulAttributeCount: CK_ULONG,
        phKey: CK_OBJECT_HANDLE_PTR,
    ) {
        if phKey.is_null() {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let m = mechanism(pMechanism)?;
        let w = bytes(pWrappedKey, ulWrappedKeyLen)?;
        let t = template(pTemplate, ulAttributeCount)?;
        put(phKey, api::keys::unwrap_key(hSession, &m, hUnwrappingKey, w, &t)?)
    }
}

// ---- Random number generation (§5.15) -----------------------------------------------

entry! {
    fn C_SeedRandom(hSession: CK_SESSION_HANDLE, pSeed: CK_BYTE_PTR, ulSeedLen: CK_ULONG) {
        bytes(pSeed, ulSeedLen)?;
        api::random::seed(hSession)
    }
}

entry! {
    fn C_GenerateRandom(hSession: CK_SESSION_HANDLE, RandomData: CK_BYTE_PTR, ulRandomLen: CK_ULONG) {
        if RandomData.is_null() && ulRandomLen != 0 {
            return Err(CKR_ARGUMENTS_BAD.into());
        }
        let n = usize::try_from(ulRandomLen).map_err(|_| Error::from(CKR_ARGUMENTS_BAD))?;
        let out: &mut [u8] = if n == 0 { &mut [] } else { std::slice::from_raw_parts_mut(RandomData, n) };
        api::random::generate(hSession, out)
    }
}

// ---- Parallel function management (§5.16): legacy, always "not parallel" ------------

entry! {
    fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) {
        api::module()?.session(hSession)?;
        Err(CKR_FUNCTION_NOT_PARALLEL.into())
    }
}

entry! {
    fn C_CancelFunction(hSession: CK_SESSION_HANDLE) {
        api::module()?.session(hSession)?;
        Err(CKR_FUNCTION_NOT_PARALLEL.into())
    }
}

// ---- Not supported: answer CKR_FUNCTION_NOT_SUPPORTED (after the usual checks) ------

macro_rules! unsupported {
    ($( fn $name:ident ( $($arg:ident : $ty:ty),* ); )*) => {
        $(
            entry! {
                fn $name($($arg: $ty),*) {
                    $( let _ = $arg; )*
                    api::module()?;
                    Err(CKR_FUNCTION_NOT_SUPPORTED.into())
                }
            }
        )*
    };
}

unsupported! {
    fn C_SignRecoverInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    fn C_SignRecover(h: CK_SESSION_HANDLE, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG_PTR);
    fn C_VerifyRecoverInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    fn C_VerifyRecover(h: CK_SESSION_HANDLE, s: CK_BYTE_PTR, sl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG_PTR);
    fn C_DigestEncryptUpdate(h: CK_SESSION_HANDLE, a: CK_BYTE_PTR, al: CK_ULONG, b: CK_BYTE_PTR, bl: CK_ULONG_PTR);
    fn C_DecryptDigestUpdate(h: CK_SESSION_HANDLE, a: CK_BYTE_PTR, al: CK_ULONG, b: CK_BYTE_PTR, bl: CK_ULONG_PTR);
    fn C_SignEncryptUpdate(h: CK_SESSION_HANDLE, a: CK_BYTE_PTR, al: CK_ULONG, b: CK_BYTE_PTR, bl: CK_ULONG_PTR);
    fn C_DecryptVerifyUpdate(h: CK_SESSION_HANDLE, a: CK_BYTE_PTR, al: CK_ULONG, b: CK_BYTE_PTR, bl: CK_ULONG_PTR);
    fn C_DeriveKey(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_PTR, n: CK_ULONG, o: CK_OBJECT_HANDLE_PTR);
    fn C_MessageEncryptInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    fn C_EncryptMessage(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, a: CK_BYTE_PTR, al: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, o: CK_BYTE_PTR, ol: CK_ULONG_PTR);
    fn C_EncryptMessageBegin(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, a: CK_BYTE_PTR, al: CK_ULONG);
    fn C_EncryptMessageNext(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, o: CK_BYTE_PTR, ol: CK_ULONG_PTR, f: CK_FLAGS);
    fn C_MessageEncryptFinal(h: CK_SESSION_HANDLE);
    fn C_MessageDecryptInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    fn C_DecryptMessage(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, a: CK_BYTE_PTR, al: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, o: CK_BYTE_PTR, ol: CK_ULONG_PTR);
    fn C_DecryptMessageBegin(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, a: CK_BYTE_PTR, al: CK_ULONG);
    fn C_DecryptMessageNext(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, o: CK_BYTE_PTR, ol: CK_ULONG_PTR, f: CK_FLAGS);
    fn C_MessageDecryptFinal(h: CK_SESSION_HANDLE);
    fn C_MessageSignInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    fn C_SignMessage(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG_PTR);
    fn C_SignMessageBegin(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG);
    fn C_SignMessageNext(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG_PTR);
    fn C_MessageSignFinal(h: CK_SESSION_HANDLE);
    fn C_MessageVerifyInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    fn C_VerifyMessage(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG);
    fn C_VerifyMessageBegin(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG);
    fn C_VerifyMessageNext(h: CK_SESSION_HANDLE, p: *mut c_void, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG);
    fn C_MessageVerifyFinal(h: CK_SESSION_HANDLE);
}
