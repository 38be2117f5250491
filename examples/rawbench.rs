//! Per-operation cost through the raw function list (no wrapper allocations): AES-256-GCM
//! C_EncryptInit + C_Encrypt at 64 B and 16 KiB on one thread.
//!
//!   cargo run --release --example rawbench [-- path/to/libp11kms.so]

use cryptoki_sys::*;
use std::time::Instant;

fn main() {
    let module = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/libp11kms.so").into()
    });
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("p11kms.conf");
    std::fs::write(
        &conf,
        format!(
            "[[token]]\nlabel = \"raw\"\nstore = \"{}\"\n",
            dir.path().join("r.sqlite").display()
        ),
    )
    .unwrap();
    std::env::set_var("P11KMS_CONF", &conf);
    unsafe {
        let lib = libloading::Library::new(&module).unwrap();
        let gfl: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
            lib.get(b"C_GetFunctionList").unwrap();
        let mut f: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
        gfl(&mut f);
        let f = &*f;
        assert_eq!(f.C_Initialize.unwrap()(std::ptr::null_mut()), CKR_OK);
        let mut h = 0;
        assert_eq!(
            f.C_OpenSession.unwrap()(
                0,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                std::ptr::null_mut(),
                None,
                &mut h
            ),
            CKR_OK
        );
        let mut key_bytes = [7u8; 32];
        let class = CKO_SECRET_KEY;
        let kt = CKK_AES;
        let t = CK_TRUE;
        let fls = CK_FALSE;
        let mut tpl = [
            CK_ATTRIBUTE {
                type_: CKA_PRIVATE,
                pValue: &fls as *const _ as *mut _,
                ulValueLen: 1,
            },
            CK_ATTRIBUTE {
                type_: CKA_CLASS,
                pValue: &class as *const _ as *mut _,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE {
                type_: CKA_KEY_TYPE,
                pValue: &kt as *const _ as *mut _,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE {
                type_: CKA_ENCRYPT,
                pValue: &t as *const _ as *mut _,
                ulValueLen: 1,
            },
            CK_ATTRIBUTE {
                type_: CKA_VALUE,
                pValue: key_bytes.as_mut_ptr() as *mut _,
                ulValueLen: 32,
            },
        ];
        let mut key = 0;
        assert_eq!(
            f.C_CreateObject.unwrap()(h, tpl.as_mut_ptr(), tpl.len() as CK_ULONG, &mut key),
            CKR_OK
        );
        let sizes: Vec<usize> = std::env::var("RAWBENCH_SIZES")
            .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_else(|_| vec![64, 16 * 1024]);
        for size in sizes {
            let mut data = vec![0x5au8; size];
            let mut out = vec![0u8; size + 16];
            let mut iv = [0u8; 12];
            let n: u32 = std::env::var("RAWBENCH_N")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or((64_000_000 / (size as u64 + 48)).clamp(2_000, 1_000_000) as u32);
            let t0 = Instant::now();
            for i in 0..n {
                iv[..4].copy_from_slice(&i.to_be_bytes());
                let mut p = CK_GCM_PARAMS {
                    pIv: iv.as_mut_ptr(),
                    ulIvLen: 12,
                    ulIvBits: 96,
                    pAAD: std::ptr::null_mut(),
                    ulAADLen: 0,
                    ulTagBits: 128,
                };
                let mut m = CK_MECHANISM {
                    mechanism: CKM_AES_GCM,
                    pParameter: &mut p as *mut _ as *mut _,
                    ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG,
                };
                assert_eq!(f.C_EncryptInit.unwrap()(h, &mut m, key), CKR_OK);
                let mut ol = out.len() as CK_ULONG;
                assert_eq!(
                    f.C_Encrypt.unwrap()(
                        h,
                        data.as_mut_ptr(),
                        size as CK_ULONG,
                        out.as_mut_ptr(),
                        &mut ol
                    ),
                    CKR_OK
                );
            }
            let el = t0.elapsed().as_secs_f64();
            println!(
                "AES-256-GCM {size:>6} B init+encrypt, 1 thread: {:>9.0} ops/s, {:>7.0} MB/s",
                n as f64 / el,
                n as f64 * size as f64 / el / 1e6
            );
        }
        f.C_Finalize.unwrap()(std::ptr::null_mut());
    }
}
