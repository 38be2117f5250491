//! The function lists (2.40 and 3.0) and the interfaces of C_GetInterfaceList.

use super::entries::*;
use cryptoki_sys::*;
use std::ffi::c_void;

macro_rules! list {
    ($ty:ident, $major:expr, $minor:expr; $($f:ident),* $(,)?) => {
        $ty {
            version: CK_VERSION { major: $major, minor: $minor },
            $( $f: Some($f), )*
        }
    };
}

macro_rules! fns240 {
    ($m:ident, $ty:ident, $maj:expr, $min:expr $(, $extra:ident)*) => {
        $m!($ty, $maj, $min;
            C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo,
            C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN,
            C_OpenSession, C_CloseSession, C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState,
            C_SetOperationState, C_Login, C_Logout, C_CreateObject, C_CopyObject, C_DestroyObject,
            C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit, C_FindObjects,
            C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal, C_DecryptInit,
            C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest, C_DigestUpdate,
            C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal, C_SignRecoverInit,
            C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal, C_VerifyRecoverInit,
            C_VerifyRecover, C_DigestEncryptUpdate, C_DecryptDigestUpdate, C_SignEncryptUpdate,
            C_DecryptVerifyUpdate, C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey,
            C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent
            $(, $extra)*
        )
    };
}

/// The tables live in statics; their raw pointers never change, so sharing them is sound.
struct Tables {
    v240: CK_FUNCTION_LIST,
    v30: CK_FUNCTION_LIST_3_0,
}

// SAFETY: the tables are immutable function pointers; callers only read them.
unsafe impl Sync for Tables {}

static TABLES: Tables = Tables {
    v240: fns240!(list, CK_FUNCTION_LIST, 2, 40),
    v30: fns240!(
        list,
        CK_FUNCTION_LIST_3_0,
        3,
        0,
        C_GetInterfaceList,
        C_GetInterface,
        C_LoginUser,
        C_SessionCancel,
        C_MessageEncryptInit,
        C_EncryptMessage,
        C_EncryptMessageBegin,
        C_EncryptMessageNext,
        C_MessageEncryptFinal,
        C_MessageDecryptInit,
        C_DecryptMessage,
        C_DecryptMessageBegin,
        C_DecryptMessageNext,
        C_MessageDecryptFinal,
        C_MessageSignInit,
        C_SignMessage,
        C_SignMessageBegin,
        C_SignMessageNext,
        C_MessageSignFinal,
        C_MessageVerifyInit,
        C_VerifyMessage,
        C_VerifyMessageBegin,
        C_VerifyMessageNext,
        C_MessageVerifyFinal
    ),
};

static NAME: &[u8] = b"PKCS 11\0";

/// The interface records live in writable memory: some wrappers (OpenSC's pkcs11-spy)
/// write into the CK_INTERFACE that C_GetInterface hands out, and a record in read-only
/// memory makes them crash. We never write them ourselves, only hand out pointers.
struct Interfaces(std::cell::UnsafeCell<[CK_INTERFACE; 2]>);

// SAFETY: the module never writes the records; what a caller writes through the pointer
// it was given is the caller's business, as with any C module's static data.
unsafe impl Sync for Interfaces {}

static INTERFACES: Interfaces = Interfaces(std::cell::UnsafeCell::new([
    CK_INTERFACE {
        pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &TABLES.v30 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &TABLES.v240 as *const CK_FUNCTION_LIST as *mut c_void,
        flags: 0,
    },
]));

/// One interface record, by index (0: 3.0, 1: 2.40).
fn record(i: usize) -> *mut CK_INTERFACE {
    // SAFETY: i < 2 at every call site; the pointer stays valid for the process.
    unsafe { (INTERFACES.0.get() as *mut CK_INTERFACE).add(i) }
}

/// C_GetFunctionList's answer.
pub(super) fn function_list_240() -> CK_FUNCTION_LIST_PTR {
    &TABLES.v240 as *const CK_FUNCTION_LIST as CK_FUNCTION_LIST_PTR
}

/// C_GetInterfaceList's answer: 3.0 first (the default), then 2.40.
pub(super) fn interfaces() -> [CK_INTERFACE; 2] {
    // SAFETY: reading our own records; see `Interfaces`.
    unsafe { [copy(&*record(0)), copy(&*record(1))] }
}

fn copy(i: &CK_INTERFACE) -> CK_INTERFACE {
    CK_INTERFACE {
        pInterfaceName: i.pInterfaceName,
        pFunctionList: i.pFunctionList,
        flags: i.flags,
    }
}

/// C_GetInterface: by name ("PKCS 11" or NULL), version (NULL: the newest) and flags.
pub(super) fn interface(
    name: Option<&str>,
    version: Option<CK_VERSION>,
    flags: CK_FLAGS,
) -> Option<CK_INTERFACE_PTR> {
    if name.is_some_and(|n| n != "PKCS 11") || flags != 0 {
        return None;
    }
    match version.map(|v| (v.major, v.minor)) {
        None | Some((3, 0)) => Some(record(0)),
        Some((2, 40)) => Some(record(1)),
        _ => None,
    }
}
