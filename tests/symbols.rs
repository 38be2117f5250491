//! Symbol binding: a host process that has already loaded another PKCS#11 module
//! globally (p11-kit's proxy exports every C_* name) must still reach p11kms's own
//! functions through p11kms's function lists. Without -Bsymbolic the lists' entries
//! would bind to the first C_* definitions in the global scope: p11-kit's.

use cryptoki_sys::*;
use libloading::os::unix::{Library, Symbol, RTLD_GLOBAL, RTLD_NOW};

mod common;

fn p11kit_proxy() -> std::path::PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("p11-kit-proxy.so"))
        .find(|p| p.exists());
    found.expect("p11-kit-proxy.so not found: install p11-kit-modules (scripts/test.sh does)")
}

#[test]
fn function_lists_bind_to_our_symbols_with_p11kit_loaded_globally() {
    if common::is_reference() {
        println!("skipped: p11kms-only");
        return;
    }
    unsafe {
        // p11-kit's proxy exports C_GetFunctionList (newer releases C_GetInterface too).
        let proxy = Library::open(Some(p11kit_proxy()), RTLD_NOW | RTLD_GLOBAL)
            .expect("load p11-kit proxy");
        let theirs: Symbol<CK_C_GetFunctionList> = proxy
            .get(b"C_GetFunctionList")
            .expect("proxy C_GetFunctionList");
        let ours_lib = Library::open(Some(common::module_path()), RTLD_NOW | RTLD_GLOBAL)
            .expect("load p11kms");
        let ours: Symbol<CK_C_GetFunctionList> = ours_lib
            .get(b"C_GetFunctionList")
            .expect("our C_GetFunctionList");
        let ours_gfl = (*ours).expect("non-null");
        let theirs_addr = (*theirs).expect("non-null") as usize;
        assert_ne!(ours_gfl as usize, theirs_addr);
        let our_init: Symbol<CK_C_Initialize> =
            ours_lib.get(b"C_Initialize").expect("our C_Initialize");
        let our_init = (*our_init).expect("non-null") as usize;

        let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
        assert_eq!(ours_gfl(&mut list), CKR_OK);
        assert_eq!((*list).C_Initialize.expect("list entry") as usize, our_init);
        let listed_gfl = (*list).C_GetFunctionList.expect("list entry");
        assert_eq!(
            listed_gfl as usize, ours_gfl as usize,
            "the list's C_GetFunctionList is p11-kit's"
        );
        let mut again: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
        assert_eq!(listed_gfl(&mut again), CKR_OK);
        assert_eq!(again, list);

        let gi: Symbol<CK_C_GetInterface> =
            ours_lib.get(b"C_GetInterface").expect("C_GetInterface");
        let mut iface: CK_INTERFACE_PTR = std::ptr::null_mut();
        assert_eq!(
            (*gi).expect("non-null")(std::ptr::null_mut(), std::ptr::null_mut(), &mut iface, 0),
            CKR_OK
        );
        let l30 = (*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0;
        assert_eq!((*l30).C_Initialize.expect("3.0 entry") as usize, our_init);
        assert_eq!(
            (*l30).C_GetFunctionList.expect("3.0 entry") as usize,
            ours_gfl as usize
        );
    }
}
