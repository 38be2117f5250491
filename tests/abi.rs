//! The C ABI of the shared library: exported symbols, function lists and interfaces
//! (PKCS#11 3.0 §5.2, §5.4 C_GetFunctionList / C_GetInterfaceList / C_GetInterface).

mod common;

use std::process::Command;

use common::*;
use cryptoki_sys::*;

const TOKENS: &[TokenSpec] = &[tok("abi")];

/// Every PKCS#11 2.40 entry point.
const ENTRY_POINTS_240: &[&str] = &[
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_WrapKey",
    "C_UnwrapKey",
    "C_DeriveKey",
    "C_SeedRandom",
    "C_GenerateRandom",
    "C_GetFunctionStatus",
    "C_CancelFunction",
    "C_WaitForSlotEvent",
];

fn defined_symbols() -> Vec<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(module_path())
        .output()
        .expect("nm (binutils)");
    assert!(
        out.status.success(),
        "nm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .last()
                .map(|s| s.split('@').next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn only_pkcs11_symbols_are_exported() {
    p11kms_only!(); // SoftHSM exports C++ library symbols too
    let allowed = ["_init", "_fini", "__bss_start", "_edata", "_end"];
    let syms = defined_symbols();
    let stray: Vec<_> = syms
        .iter()
        .filter(|s| !s.starts_with("C_") && !allowed.contains(&s.as_str()))
        .collect();
    assert!(
        stray.is_empty(),
        "symbols other than C_* exported: {stray:?}"
    );
    for name in ["C_GetInterfaceList", "C_GetInterface"] {
        assert!(syms.iter().any(|s| s == name), "{name} not exported");
    }
}

#[test]
fn all_240_entry_points_exported() {
    let syms = defined_symbols();
    for name in ENTRY_POINTS_240 {
        assert!(syms.iter().any(|s| s == name), "{name} not exported");
    }
}

#[test]
fn function_list_is_240_and_complete() {
    let f = raw().f;
    assert_eq!((f.version.major, f.version.minor), (2, 40));
    // Every slot after the version is a function pointer; none may be NULL.
    let n = (std::mem::size_of::<CK_FUNCTION_LIST>() - 8) / 8;
    assert_eq!(n, ENTRY_POINTS_240.len());
    let ptrs = unsafe {
        std::slice::from_raw_parts(
            (f as *const CK_FUNCTION_LIST as *const u8).add(8) as *const usize,
            n,
        )
    };
    for (i, p) in ptrs.iter().enumerate() {
        assert_ne!(*p, 0, "{} is NULL in the 2.40 list", ENTRY_POINTS_240[i]);
    }
    // C_GetFunctionList(NULL) is CKR_ARGUMENTS_BAD.
    assert_eq!(
        call!(C_GetFunctionList, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
}

type GetInterfaceList = unsafe extern "C" fn(*mut CK_INTERFACE, *mut CK_ULONG) -> CK_RV;
type GetInterface = unsafe extern "C" fn(
    *mut CK_UTF8CHAR,
    *mut CK_VERSION,
    *mut *mut CK_INTERFACE,
    CK_FLAGS,
) -> CK_RV;

fn interface_name(i: &CK_INTERFACE) -> String {
    unsafe { std::ffi::CStr::from_ptr(i.pInterfaceName as *const std::ffi::c_char) }
        .to_string_lossy()
        .into_owned()
}

fn list_version(i: &CK_INTERFACE) -> (u8, u8) {
    let v = unsafe { &*(i.pFunctionList as *const CK_VERSION) };
    (v.major, v.minor)
}

#[test]
fn interface_list_offers_30_and_240() {
    p11kms_only!(); // SoftHSM 2.6 is a 2.40 module without C_GetInterfaceList
    let lib = &raw().lib;
    let gil: libloading::Symbol<GetInterfaceList> =
        unsafe { lib.get(b"C_GetInterfaceList\0") }.unwrap();
    let mut n: CK_ULONG = 0;
    assert_eq!(unsafe { gil(std::ptr::null_mut(), &mut n) }, CKR_OK);
    assert!(n >= 2, "{n} interfaces");
    let mut list = vec![
        CK_INTERFACE {
            pInterfaceName: std::ptr::null_mut(),
            pFunctionList: std::ptr::null_mut(),
            flags: 0
        };
        n as usize
    ];
    let mut short: CK_ULONG = 1;
    assert_eq!(
        unsafe { gil(list.as_mut_ptr(), &mut short) },
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, n);
    assert_eq!(unsafe { gil(list.as_mut_ptr(), &mut n) }, CKR_OK);
    assert_eq!(
        unsafe { gil(list.as_mut_ptr(), std::ptr::null_mut()) },
        CKR_ARGUMENTS_BAD
    );
    let mut versions: Vec<(String, (u8, u8))> = list
        .iter()
        .map(|i| (interface_name(i), list_version(i)))
        .collect();
    versions.sort();
    assert!(
        versions.contains(&("PKCS 11".to_string(), (3, 0))),
        "{versions:?}"
    );
    assert!(
        versions.contains(&("PKCS 11".to_string(), (2, 40))),
        "{versions:?}"
    );
    for i in &list {
        if interface_name(i) == "PKCS 11" && list_version(i) == (3, 0) {
            check_30_list(i.pFunctionList as *const CK_FUNCTION_LIST_3_0);
        }
    }
}

fn check_30_list(p: *const CK_FUNCTION_LIST_3_0) {
    let n = (std::mem::size_of::<CK_FUNCTION_LIST_3_0>() - 8) / 8;
    assert_eq!(n, ENTRY_POINTS_240.len() + 24, "3.0 adds 24 functions");
    let ptrs = unsafe { std::slice::from_raw_parts((p as *const u8).add(8) as *const usize, n) };
    for (i, f) in ptrs.iter().enumerate() {
        assert_ne!(*f, 0, "entry {i} of the 3.0 list is NULL");
    }
}

#[test]
fn get_interface_by_name_and_version() {
    p11kms_only!(); // SoftHSM 2.6 has no C_GetInterface
    let lib = &raw().lib;
    let gi: libloading::Symbol<GetInterface> = unsafe { lib.get(b"C_GetInterface\0") }.unwrap();
    let mut iface: *mut CK_INTERFACE = std::ptr::null_mut();
    // Default interface.
    assert_eq!(
        unsafe { gi(std::ptr::null_mut(), std::ptr::null_mut(), &mut iface, 0) },
        CKR_OK
    );
    assert!(!iface.is_null());
    let def = unsafe { &*iface };
    assert_eq!(interface_name(def), "PKCS 11");
    let mut name = *b"PKCS 11\0";
    for want in [(3u8, 0u8), (2, 40)] {
        let mut v = CK_VERSION {
            major: want.0,
            minor: want.1,
        };
        iface = std::ptr::null_mut();
        assert_eq!(
            unsafe { gi(name.as_mut_ptr(), &mut v, &mut iface, 0) },
            CKR_OK,
            "{want:?}"
        );
        let i = unsafe { &*iface };
        assert_eq!(list_version(i), want);
        if want == (3, 0) {
            check_30_list(i.pFunctionList as *const CK_FUNCTION_LIST_3_0);
        }
    }
    let mut v = CK_VERSION { major: 9, minor: 9 };
    let rv = unsafe { gi(name.as_mut_ptr(), &mut v, &mut iface, 0) };
    assert_ne!(rv, CKR_OK, "unknown version");
    let mut other = *b"Vendor X\0";
    assert_ne!(
        unsafe { gi(other.as_mut_ptr(), std::ptr::null_mut(), &mut iface, 0) },
        CKR_OK,
        "unknown name"
    );
    assert_eq!(
        unsafe {
            gi(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        },
        CKR_ARGUMENTS_BAD
    );
}

/// Wrappers such as OpenSC's pkcs11-spy write into the CK_INTERFACE that C_GetInterface
/// returns: the record must be in writable memory (a read-only one crashed the spy).
#[test]
fn interface_record_is_writable() {
    p11kms_only!(); // needs C_GetInterface
    type GetInterface = unsafe extern "C" fn(
        CK_UTF8CHAR_PTR,
        CK_VERSION_PTR,
        CK_INTERFACE_PTR_PTR,
        CK_FLAGS,
    ) -> CK_RV;
    let lib = &raw().lib;
    let gi: libloading::Symbol<GetInterface> = unsafe { lib.get(b"C_GetInterface\0") }.unwrap();
    for version in [
        None,
        Some(CK_VERSION {
            major: 2,
            minor: 40,
        }),
    ] {
        let mut v = version;
        let vp = v
            .as_mut()
            .map_or(std::ptr::null_mut(), |v| v as *mut CK_VERSION);
        let mut iface: *mut CK_INTERFACE = std::ptr::null_mut();
        assert_eq!(
            unsafe { gi(std::ptr::null_mut(), vp, &mut iface, 0) },
            CKR_OK
        );
        unsafe {
            // Write back what is there (a crash here is the failure).
            let flags = std::ptr::read_volatile(&(*iface).flags);
            std::ptr::write_volatile(&mut (*iface).flags, flags);
            let list = std::ptr::read_volatile(&(*iface).pFunctionList);
            std::ptr::write_volatile(&mut (*iface).pFunctionList, list);
        }
    }
}

#[test]
fn unimplemented_30_function_is_not_supported() {
    p11kms_only!(); // needs the 3.0 list
    let e = common::env(TOKENS);
    let slot = e.fresh_token("abi");
    let s = e.ctx.open_ro_session(slot).unwrap();
    let lib = &raw().lib;
    let gi: libloading::Symbol<GetInterface> = unsafe { lib.get(b"C_GetInterface\0") }.unwrap();
    let mut name = *b"PKCS 11\0";
    let mut v = CK_VERSION { major: 3, minor: 0 };
    let mut iface: *mut CK_INTERFACE = std::ptr::null_mut();
    assert_eq!(
        unsafe { gi(name.as_mut_ptr(), &mut v, &mut iface, 0) },
        CKR_OK
    );
    let list = unsafe { &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0) };
    let mut m = CK_MECHANISM {
        mechanism: CKM_AES_GCM,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let rv = unsafe { (list.C_MessageEncryptInit.unwrap())(s.handle(), &mut m, 0) };
    assert_eq!(rv, CKR_FUNCTION_NOT_SUPPORTED, "{}", rv_name(rv));
    // The 3.0 list shares its 2.40 part with the module's 2.40 list.
    let mut info = CK_INFO::default();
    assert_eq!(unsafe { (list.C_GetInfo.unwrap())(&mut info) }, CKR_OK);
}

#[test]
fn library_info() {
    let e = common::env(TOKENS);
    let info = e.ctx.get_library_info().unwrap();
    let v = info.cryptoki_version();
    assert!(v.major() >= 2, "{v:?}");
    let mut raw_info = CK_INFO::default();
    assert_eq!(call!(C_GetInfo, &mut raw_info), CKR_OK);
    assert_eq!(raw_info.flags, 0, "CK_INFO flags are reserved");
    for field in [
        &raw_info.manufacturerID[..],
        &raw_info.libraryDescription[..],
    ] {
        assert!(
            field.iter().all(|b| (0x20..0x7f).contains(b)),
            "blank padded, printable"
        );
    }
    assert_eq!(call!(C_GetInfo, std::ptr::null_mut()), CKR_ARGUMENTS_BAD);
}
