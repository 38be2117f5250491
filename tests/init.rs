//! C_Initialize / C_Finalize and process life (PKCS#11 3.0 §5.4, §6.7).
//!
//! C_Initialize is process-global, so every test here re-executes this test binary as a
//! child (selected by `P11KMS_INIT_CHILD`) and runs its body there, alone.

mod common;

use std::process::Command;
use std::sync::{Arc, Barrier};

use common::*;
use cryptoki_sys::*;

const CHILD_ENV: &str = "P11KMS_INIT_CHILD";

/// Runs `body` in a fresh child process; the parent asserts it passed.
fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        body();
        return;
    }
    let out = run_child(name, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {name} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "child {name} ran no test\n{stdout}"
    );
    print!("{stdout}");
}

fn run_child(name: &str, envs: &[(&str, &str)]) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .envs(envs.iter().copied())
        .output()
        .expect("spawn child test process")
}

/// Configures a scratch token directory for this (child) process; returns it.
fn scratch(tokens: &[TokenSpec]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    configure_env(dir.path(), tokens);
    dir
}

fn init_null() -> CK_RV {
    call!(C_Initialize, std::ptr::null_mut())
}

fn init_args(args: &mut CK_C_INITIALIZE_ARGS) -> CK_RV {
    call!(C_Initialize, (args as *mut CK_C_INITIALIZE_ARGS).cast())
}

fn no_callbacks(flags: CK_FLAGS) -> CK_C_INITIALIZE_ARGS {
    CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags,
        pReserved: std::ptr::null_mut(),
    }
}

extern "C" fn create_mutex(pp: *mut *mut std::ffi::c_void) -> CK_RV {
    unsafe { *pp = Box::into_raw(Box::new(0u8)).cast() };
    CKR_OK
}
extern "C" fn destroy_mutex(p: *mut std::ffi::c_void) -> CK_RV {
    unsafe { drop(Box::from_raw(p.cast::<u8>())) };
    CKR_OK
}
extern "C" fn lock_mutex(_: *mut std::ffi::c_void) -> CK_RV {
    CKR_OK
}
extern "C" fn unlock_mutex(_: *mut std::ffi::c_void) -> CK_RV {
    CKR_OK
}

/// The slot of an initialized token labelled `label` (raw calls only, one process).
fn raw_init_token(label: &str) -> CK_SLOT_ID {
    let mut n: CK_ULONG = 16;
    let mut slots = [0 as CK_SLOT_ID; 16];
    assert_eq!(
        call!(C_GetSlotList, CK_TRUE, slots.as_mut_ptr(), &mut n),
        CKR_OK
    );
    let mut target = None;
    for s in &slots[..n as usize] {
        let mut info = CK_TOKEN_INFO::default();
        assert_eq!(call!(C_GetTokenInfo, *s, &mut info), CKR_OK);
        if info.flags & CKF_TOKEN_INITIALIZED == 0 {
            target = Some(*s);
            break;
        }
    }
    let slot = target.expect("an uninitialized token");
    let mut lbl = padded32(label);
    let mut so = SO_PIN.as_bytes().to_vec();
    assert_eq!(
        call!(
            C_InitToken,
            slot,
            so.as_mut_ptr(),
            so.len() as CK_ULONG,
            lbl.as_mut_ptr()
        ),
        CKR_OK
    );
    // SoftHSM renumbers slots after C_InitToken: look the token up by label.
    let mut n: CK_ULONG = 16;
    assert_eq!(
        call!(C_GetSlotList, CK_TRUE, slots.as_mut_ptr(), &mut n),
        CKR_OK
    );
    for s in &slots[..n as usize] {
        let mut info = CK_TOKEN_INFO::default();
        assert_eq!(call!(C_GetTokenInfo, *s, &mut info), CKR_OK);
        if info.label == padded32(label) {
            return *s;
        }
    }
    panic!("token {label} not found after C_InitToken");
}

fn open_session(slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    let mut h: CK_SESSION_HANDLE = 0;
    let rv = call!(
        C_OpenSession,
        slot,
        CKF_SERIAL_SESSION | CKF_RW_SESSION,
        std::ptr::null_mut(),
        None,
        &mut h
    );
    assert_eq!(rv, CKR_OK);
    h
}

fn login(h: CK_SESSION_HANDLE, user: CK_USER_TYPE, p: &str) -> CK_RV {
    let mut p = p.as_bytes().to_vec();
    call!(C_Login, h, user, p.as_mut_ptr(), p.len() as CK_ULONG)
}

#[test]
fn calls_before_initialize() {
    isolated("calls_before_initialize", || {
        let _d = scratch(&[tok("t")]);
        let mut info = CK_INFO::default();
        assert_eq!(call!(C_GetInfo, &mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut n: CK_ULONG = 0;
        assert_eq!(
            call!(C_GetSlotList, CK_FALSE, std::ptr::null_mut(), &mut n),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        let mut si = CK_SESSION_INFO::default();
        assert_eq!(
            call!(C_GetSessionInfo, 1, &mut si),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(
            call!(C_Finalize, std::ptr::null_mut()),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(init_null(), CKR_OK);
        assert_eq!(call!(C_GetInfo, &mut info), CKR_OK);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
        assert_eq!(
            call!(C_GetInfo, &mut info),
            CKR_CRYPTOKI_NOT_INITIALIZED,
            "after C_Finalize"
        );
    });
}

#[test]
fn initialize_argument_forms() {
    isolated("initialize_argument_forms", || {
        let _d = scratch(&[tok("t")]);
        assert_eq!(init_null(), CKR_OK, "NULL pInitArgs");
        assert_eq!(init_null(), CKR_CRYPTOKI_ALREADY_INITIALIZED);
        let mut a = no_callbacks(CKF_OS_LOCKING_OK);
        assert_eq!(init_args(&mut a), CKR_CRYPTOKI_ALREADY_INITIALIZED);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);

        let mut a = no_callbacks(CKF_OS_LOCKING_OK);
        assert_eq!(init_args(&mut a), CKR_OK, "CKF_OS_LOCKING_OK");
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);

        let mut a = no_callbacks(0);
        assert_eq!(
            init_args(&mut a),
            CKR_OK,
            "no flags, no callbacks: single-threaded app"
        );
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);

        // Some but not all callbacks: CKR_ARGUMENTS_BAD (§5.4).
        let mut a = no_callbacks(CKF_OS_LOCKING_OK);
        a.CreateMutex = Some(create_mutex);
        assert_eq!(init_args(&mut a), CKR_ARGUMENTS_BAD);

        let mut f = [0u8; 4];
        assert_eq!(init_null(), CKR_OK);
        assert_eq!(
            call!(C_Finalize, f.as_mut_ptr().cast()),
            CKR_ARGUMENTS_BAD,
            "C_Finalize pReserved must be NULL"
        );
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

#[test]
fn mutex_callbacks_without_os_locking() {
    p11kms_only!(); // §5.4 lets a module use the callbacks (SoftHSM does); p11kms cannot
    isolated("mutex_callbacks_without_os_locking", || {
        let _d = scratch(&[tok("t")]);
        let mut a = CK_C_INITIALIZE_ARGS {
            CreateMutex: Some(create_mutex),
            DestroyMutex: Some(destroy_mutex),
            LockMutex: Some(lock_mutex),
            UnlockMutex: Some(unlock_mutex),
            flags: 0,
            pReserved: std::ptr::null_mut(),
        };
        assert_eq!(init_args(&mut a), CKR_CANT_LOCK);
        let mut info = CK_INFO::default();
        assert_eq!(call!(C_GetInfo, &mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
        // With CKF_OS_LOCKING_OK the module may use its own locks.
        a.flags = CKF_OS_LOCKING_OK;
        assert_eq!(init_args(&mut a), CKR_OK);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

#[test]
fn sixteen_threads_race_initialize() {
    p11kms_only!(); // SoftHSM 2.6 segfaults when C_Initialize calls race
    isolated("sixteen_threads_race_initialize", || {
        let _d = scratch(&[tok("t")]);
        let barrier = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let b = barrier.clone();
                std::thread::spawn(move || {
                    let mut a = no_callbacks(CKF_OS_LOCKING_OK);
                    b.wait();
                    init_args(&mut a)
                })
            })
            .collect();
        let rvs: Vec<CK_RV> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(rvs.iter().filter(|r| **r == CKR_OK).count(), 1, "{rvs:?}");
        assert!(
            rvs.iter()
                .all(|r| *r == CKR_OK || *r == CKR_CRYPTOKI_ALREADY_INITIALIZED),
            "{rvs:?}"
        );
        let mut info = CK_INFO::default();
        assert_eq!(call!(C_GetInfo, &mut info), CKR_OK);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

#[test]
fn finalize_then_initialize() {
    isolated("finalize_then_initialize", || {
        let _d = scratch(&[tok("t")]);
        assert_eq!(init_null(), CKR_OK);
        let slot = raw_init_token("t");
        let h = open_session(slot);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
        assert_eq!(init_null(), CKR_OK, "C_Initialize after C_Finalize");
        let mut si = CK_SESSION_INFO::default();
        assert_eq!(
            call!(C_GetSessionInfo, h, &mut si),
            CKR_SESSION_HANDLE_INVALID,
            "sessions end with C_Finalize"
        );
        let slot = raw_init_token_lookup("t");
        let h2 = open_session(slot);
        assert_eq!(call!(C_GetSessionInfo, h2, &mut si), CKR_OK);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

/// The slot of an already initialized token, by label.
fn raw_init_token_lookup(label: &str) -> CK_SLOT_ID {
    let mut n: CK_ULONG = 16;
    let mut slots = [0 as CK_SLOT_ID; 16];
    assert_eq!(
        call!(C_GetSlotList, CK_TRUE, slots.as_mut_ptr(), &mut n),
        CKR_OK
    );
    for s in &slots[..n as usize] {
        let mut info = CK_TOKEN_INFO::default();
        assert_eq!(call!(C_GetTokenInfo, *s, &mut info), CKR_OK);
        if info.label == padded32(label) {
            return *s;
        }
    }
    panic!("no token {label}");
}

#[test]
fn token_objects_persist_across_reinitialize() {
    isolated("token_objects_persist_across_reinitialize", || {
        let _d = scratch(&[tok("persist")]);
        assert_eq!(init_null(), CKR_OK);
        let slot = raw_init_token("persist");
        let h = open_session(slot);
        assert_eq!(login(h, CKU_SO, SO_PIN), CKR_OK);
        let mut up = USER_PIN.as_bytes().to_vec();
        assert_eq!(
            call!(C_InitPIN, h, up.as_mut_ptr(), up.len() as CK_ULONG),
            CKR_OK
        );
        assert_eq!(call!(C_Logout, h), CKR_OK);
        assert_eq!(login(h, CKU_USER, USER_PIN), CKR_OK);
        let pub_h = create_data(h, b"public-obj", false);
        let priv_h = create_data(h, b"private-obj", true);
        assert_ne!(pub_h, priv_h);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);

        assert_eq!(init_null(), CKR_OK);
        let slot = raw_init_token_lookup("persist");
        let h = open_session(slot);
        assert_eq!(
            find_labels(h),
            vec![b"public-obj".to_vec()],
            "only public objects before login"
        );
        assert_eq!(login(h, CKU_USER, USER_PIN), CKR_OK);
        let mut labels = find_labels(h);
        labels.sort();
        assert_eq!(
            labels,
            vec![b"private-obj".to_vec(), b"public-obj".to_vec()]
        );
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

fn create_data(h: CK_SESSION_HANDLE, label: &[u8], private: bool) -> CK_OBJECT_HANDLE {
    let (mut class, mut t, mut p) = (CKO_DATA, CK_TRUE, if private { CK_TRUE } else { CK_FALSE });
    let mut l = label.to_vec();
    let mut v = b"persisted value".to_vec();
    let mut tmpl = [
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: (&mut class as *mut CK_ULONG).cast(),
            ulValueLen: 8,
        },
        CK_ATTRIBUTE {
            type_: CKA_TOKEN,
            pValue: (&mut t as *mut CK_BBOOL).cast(),
            ulValueLen: 1,
        },
        CK_ATTRIBUTE {
            type_: CKA_PRIVATE,
            pValue: (&mut p as *mut CK_BBOOL).cast(),
            ulValueLen: 1,
        },
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: l.as_mut_ptr().cast(),
            ulValueLen: l.len() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: v.as_mut_ptr().cast(),
            ulValueLen: v.len() as CK_ULONG,
        },
    ];
    let mut o: CK_OBJECT_HANDLE = 0;
    assert_eq!(
        call!(
            C_CreateObject,
            h,
            tmpl.as_mut_ptr(),
            tmpl.len() as CK_ULONG,
            &mut o
        ),
        CKR_OK
    );
    o
}

fn find_labels(h: CK_SESSION_HANDLE) -> Vec<Vec<u8>> {
    let mut class = CKO_DATA;
    let mut tmpl = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: (&mut class as *mut CK_ULONG).cast(),
        ulValueLen: 8,
    }];
    assert_eq!(call!(C_FindObjectsInit, h, tmpl.as_mut_ptr(), 1), CKR_OK);
    let mut objs = [0 as CK_OBJECT_HANDLE; 16];
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(C_FindObjects, h, objs.as_mut_ptr(), 16, &mut n),
        CKR_OK
    );
    assert_eq!(call!(C_FindObjectsFinal, h), CKR_OK);
    objs[..n as usize]
        .iter()
        .map(|o| {
            let v = get_attr(h, *o, CKA_LABEL).unwrap();
            assert_eq!(get_attr(h, *o, CKA_VALUE).unwrap(), b"persisted value");
            v
        })
        .collect()
}

#[test]
fn fork_child_reinitializes() {
    // §6.7.1 (3.0): a forked child must C_Initialize afresh. SoftHSM 2.6 has no fork
    // detection and answers CKR_CRYPTOKI_ALREADY_INITIALIZED there.
    p11kms_only!();
    isolated("fork_child_reinitializes", || {
        let _d = scratch(&[tok("fork")]);
        assert_eq!(init_null(), CKR_OK);
        let slot = raw_init_token("fork");
        let h = open_session(slot);
        in_fork_child(
            || {
                let mut si = CK_SESSION_INFO::default();
                let rv = call!(C_GetSessionInfo, h, &mut si);
                if rv != CKR_CRYPTOKI_NOT_INITIALIZED
                    && rv != CKR_SESSION_HANDLE_INVALID
                    && rv != CKR_OK
                {
                    return 10;
                }
                let rv = init_null();
                if rv != CKR_OK {
                    return 11;
                }
                if call!(C_GetSessionInfo, h, &mut si) != CKR_SESSION_HANDLE_INVALID {
                    return 12; // the parent's sessions do not exist in the child
                }
                let s2 = open_session_rv(slot_by_label_raw("fork"));
                if s2.is_none() {
                    return 13;
                }
                if call!(C_Finalize, std::ptr::null_mut()) != CKR_OK {
                    return 14;
                }
                0
            },
            "10: pre-init, 11: init, 12: stale handle, 13: open, 14: finalize",
        );
        let mut si = CK_SESSION_INFO::default();
        assert_eq!(
            call!(C_GetSessionInfo, h, &mut si),
            CKR_OK,
            "parent session survives the child"
        );
        assert_eq!(si.slotID, slot);
        let mut r = [0u8; 8];
        assert_eq!(call!(C_GenerateRandom, h, r.as_mut_ptr(), 8), CKR_OK);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

/// Run `child` in a fork()ed child, which reports only through its exit code (no
/// unwinding into the test harness: a panic is 29); the parent asserts it exited 0.
fn in_fork_child(child: impl FnOnce() -> i32, steps: &str) {
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(29);
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child crashed: status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child step failed ({steps})");
}

fn slot_by_label_raw(label: &str) -> CK_SLOT_ID {
    raw_init_token_lookup(label)
}

fn open_session_rv(slot: CK_SLOT_ID) -> Option<CK_SESSION_HANDLE> {
    let mut h: CK_SESSION_HANDLE = 0;
    let rv = call!(
        C_OpenSession,
        slot,
        CKF_SERIAL_SESSION,
        std::ptr::null_mut(),
        None,
        &mut h
    );
    (rv == CKR_OK).then_some(h)
}

#[test]
fn bad_config_is_reported() {
    p11kms_only!(); // the configuration file is p11kms's
    const NAME: &str = "bad_config_is_reported";
    if std::env::var(CHILD_ENV).as_deref() == Ok(NAME) {
        let rv = init_null();
        println!("C_Initialize rv = {rv:#x}");
        assert_ne!(rv, CKR_OK, "C_Initialize must fail on a bad configuration");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broken.toml");
    // Line 5 has the wrong type for max_pin_attempts.
    std::fs::write(
        &conf,
        format!(
            "log_level = \"warn\"\n[[token]]\nlabel = \"t\"\nbackend = \"local\"\nmax_pin_attempts = \"ten\"\nstore = \"{}\"\n",
            dir.path().join("t.sqlite").display()
        ),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let xdg = dir.path().to_str().unwrap();
    let out = run_child(
        NAME,
        &[
            ("P11KMS_CONF", conf_s),
            ("XDG_DATA_HOME", xdg),
            ("XDG_CONFIG_HOME", xdg),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains(conf_s), "stderr names the file:\n{stderr}");
    assert!(
        stderr.contains("max_pin_attempts"),
        "stderr names the field:\n{stderr}"
    );
    assert!(
        stderr.contains("line 5") || stderr.contains(":5:") || stderr.contains(":5,"),
        "stderr names the line:\n{stderr}"
    );
}

#[test]
fn fork_token_objects_both_ways() {
    // Fork in both directions: a token object the parent made before fork() is there for
    // the child once it has initialized, and one the child makes appears in the parent's
    // still-open session. SoftHSM's child cannot C_Initialize (see above).
    p11kms_only!();
    isolated("fork_token_objects_both_ways", || {
        let _d = scratch(&[tok("forkobj")]);
        assert_eq!(init_null(), CKR_OK);
        let slot = raw_init_token("forkobj");
        let h = open_session(slot);
        create_data(h, b"from-parent", false);
        in_fork_child(
            || {
                if init_null() != CKR_OK {
                    return 20;
                }
                let s = open_session(slot_by_label_raw("forkobj"));
                if find_labels(s) != vec![b"from-parent".to_vec()] {
                    return 21;
                }
                create_data(s, b"from-child", false);
                if call!(C_Finalize, std::ptr::null_mut()) != CKR_OK {
                    return 22;
                }
                0
            },
            "20: init, 21: the parent's object missing, 22: finalize, 29: panic",
        );
        let mut labels = find_labels(h);
        labels.sort();
        assert_eq!(
            labels,
            vec![b"from-child".to_vec(), b"from-parent".to_vec()],
            "the child's token object in the parent's open session"
        );
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

/// A public session AES-256 key of value [7; 32] (no login needed), for C_EncryptInit.
fn session_aes_key(h: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    let (mut class, mut kt, mut f, mut t) = (CKO_SECRET_KEY, CKK_AES, CK_FALSE, CK_TRUE);
    let mut v = [7u8; 32];
    let attr = |type_, p: *mut std::ffi::c_void, n: usize| CK_ATTRIBUTE {
        type_,
        pValue: p,
        ulValueLen: n as CK_ULONG,
    };
    let mut tmpl = [
        attr(CKA_CLASS, (&mut class as *mut CK_ULONG).cast(), 8),
        attr(CKA_KEY_TYPE, (&mut kt as *mut CK_ULONG).cast(), 8),
        attr(CKA_TOKEN, (&mut f as *mut CK_BBOOL).cast(), 1),
        attr(CKA_PRIVATE, (&mut f as *mut CK_BBOOL).cast(), 1),
        attr(CKA_ENCRYPT, (&mut t as *mut CK_BBOOL).cast(), 1),
        attr(CKA_VALUE, v.as_mut_ptr().cast(), 32),
    ];
    let mut o: CK_OBJECT_HANDLE = 0;
    let rv = call!(
        C_CreateObject,
        h,
        tmpl.as_mut_ptr(),
        tmpl.len() as CK_ULONG,
        &mut o
    );
    assert_eq!(rv, CKR_OK, "C_CreateObject of a session AES key");
    o
}

/// The thread that used a session last keeps a reference to it for its next call (the
/// fast path of api::cached_session). After C_Finalize and C_Initialize handle numbers
/// start again: the new session with the old number must be the new one, with no
/// operation, and the old key must not resolve.
#[test]
fn finalize_ends_this_threads_cached_session() {
    isolated("finalize_ends_this_threads_cached_session", || {
        let _d = scratch(&[tok("cached")]);
        assert_eq!(init_null(), CKR_OK);
        let slot = raw_init_token("cached");
        let h = open_session(slot);
        let key = session_aes_key(h);
        for _ in 0..2 {
            assert_eq!(gcm_encrypt_init(h, key), CKR_OK);
            assert_eq!(encrypt_64(h).0, CKR_OK);
        }
        assert_eq!(gcm_encrypt_init(h, key), CKR_OK, "an operation left active");
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
        assert_eq!(encrypt_64(h).0, CKR_CRYPTOKI_NOT_INITIALIZED);
        assert_eq!(init_null(), CKR_OK);
        let h2 = open_session(raw_init_token_lookup("cached"));
        if h2 != h {
            assert_eq!(encrypt_64(h).0, CKR_SESSION_HANDLE_INVALID);
        }
        assert_eq!(encrypt_64(h2).0, CKR_OPERATION_NOT_INITIALIZED);
        let rv = gcm_encrypt_init(h2, key);
        assert!(
            rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID,
            "the old session key after re-initialize: {}",
            rv_name(rv)
        );
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

/// The same across fork(): the child's copy of the thread's cached session (with an
/// operation active in it) must not be usable there.
#[test]
fn fork_child_cannot_use_the_parents_cached_session() {
    p11kms_only!();
    isolated("fork_child_cannot_use_the_parents_cached_session", || {
        let _d = scratch(&[tok("cachefork")]);
        assert_eq!(init_null(), CKR_OK);
        let h = open_session(raw_init_token("cachefork"));
        let key = session_aes_key(h);
        for _ in 0..2 {
            assert_eq!(gcm_encrypt_init(h, key), CKR_OK);
            assert_eq!(encrypt_64(h).0, CKR_OK);
        }
        assert_eq!(gcm_encrypt_init(h, key), CKR_OK);
        in_fork_child(
            || {
                if encrypt_64(h).0 != CKR_CRYPTOKI_NOT_INITIALIZED {
                    return 20;
                }
                if gcm_encrypt_init(h, key) != CKR_CRYPTOKI_NOT_INITIALIZED {
                    return 21;
                }
                if init_null() != CKR_OK {
                    return 22;
                }
                if encrypt_64(h).0 != CKR_SESSION_HANDLE_INVALID {
                    return 23;
                }
                0
            },
            "20/21: the parent's session before C_Initialize, 23: after",
        );
        // The parent's operation is still there.
        assert_eq!(encrypt_64(h).0, CKR_OK);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    });
}

/// A store that cannot be opened: C_Initialize answers CKR_FUNCTION_FAILED (§5.4 lists
/// neither CKR_DEVICE_ERROR nor CKR_TOKEN_NOT_RECOGNIZED for it), and stderr names the
/// token and the path.
#[test]
fn unopenable_store_is_function_failed() {
    p11kms_only!();
    const NAME: &str = "unopenable_store_is_function_failed";
    if std::env::var(CHILD_ENV).as_deref() == Ok(NAME) {
        assert_eq!(init_null(), CKR_FUNCTION_FAILED);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("p11kms.toml");
    // A directory can never be created under /proc.
    std::fs::write(
        &conf,
        "[[token]]\nlabel = \"nowhere\"\nstore = \"/proc/p11kms-none/t.sqlite\"\n",
    )
    .unwrap();
    let out = run_child(NAME, &[("P11KMS_CONF", conf.to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("nowhere") && stderr.contains("/proc/p11kms-none/t.sqlite"),
        "stderr names the token and the store:\n{stderr}"
    );
}
