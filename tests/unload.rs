//! Unloading: a host that calls C_Finalize and dlclose()s the module while its own
//! threads live on must not crash when those threads exit. aws-lc registers per-thread
//! destructors inside the module; had the module been unmapped, glibc would call into
//! nothing at thread exit (found by the cryptoki crate's own test suite).

use cryptoki_sys::*;

mod common;

#[test]
fn thread_exit_after_finalize_and_dlclose_does_not_crash() {
    if common::is_reference() {
        println!("skipped: p11kms-only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("p11kms.conf");
    std::fs::write(
        &conf,
        format!(
            "[[token]]\nlabel = \"unload\"\nstore = \"{}\"\n",
            dir.path().join("u.sqlite").display()
        ),
    )
    .unwrap();
    std::env::set_var("P11KMS_CONF", &conf);
    let module = common::module_path();
    // This test binary loads the module nowhere else, so dropping the handle is the last
    // dlclose() of it.
    let worker = std::thread::spawn(move || unsafe {
        let lib = libloading::Library::new(&module).expect("load module");
        let gfl: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
            lib.get(b"C_GetFunctionList").expect("C_GetFunctionList");
        let mut f: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
        assert_eq!(gfl(&mut f), CKR_OK);
        let f = &*f;
        assert_eq!(f.C_Initialize.unwrap()(std::ptr::null_mut()), CKR_OK);
        let mut h: CK_SESSION_HANDLE = 0;
        let rv =
            f.C_OpenSession.unwrap()(0, CKF_SERIAL_SESSION, std::ptr::null_mut(), None, &mut h);
        assert_eq!(rv, CKR_OK);
        // Random bytes and a digest: both go through aws-lc on this thread.
        let mut buf = [0u8; 32];
        assert_eq!(
            f.C_GenerateRandom.unwrap()(h, buf.as_mut_ptr(), buf.len() as CK_ULONG),
            CKR_OK
        );
        let mut m = CK_MECHANISM {
            mechanism: CKM_SHA256,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(f.C_DigestInit.unwrap()(h, &mut m), CKR_OK);
        let mut out = [0u8; 32];
        let mut n = out.len() as CK_ULONG;
        assert_eq!(
            f.C_Digest.unwrap()(
                h,
                buf.as_mut_ptr(),
                buf.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut n
            ),
            CKR_OK
        );
        assert_eq!(f.C_Finalize.unwrap()(std::ptr::null_mut()), CKR_OK);
        drop(lib);
    });
    // The worker's thread-exit destructors run here; a crash kills this process.
    worker.join().expect("worker thread");
}
