//! Slot, token and session management (PKCS#11 3.0 §5.5–§5.6, §5.15 random).
//!
//! Each test owns a token (by label) of the one shared, process-wide context, so the
//! tests run in parallel threads.

mod common;

use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki_sys::*;

const TOKENS: &[TokenSpec] = &[
    tok("uninit"),
    tok("slotids"),
    tok("login"),
    tok("setpin"),
    tok("pinlen"),
    TokenSpec {
        label: "lockout",
        max_pin_attempts: Some(3),
    },
    TokenSpec {
        label: "unblock",
        max_pin_attempts: Some(2),
    },
    tok("lockdefault"),
    tok("lockreset"),
    tok("pinlen-login"),
    tok("loggedin"),
    tok("rosess"),
    tok("sessexists"),
    tok("parallel"),
    tok("states"),
    tok("closeall"),
    tok("invalid"),
    tok("mechs"),
    tok("random"),
];

fn env() -> &'static Env {
    common::env(TOKENS)
}

fn raw_token_info(slot: Slot) -> CK_TOKEN_INFO {
    let mut info = CK_TOKEN_INFO::default();
    assert_eq!(
        call!(C_GetTokenInfo, slot.id() as CK_SLOT_ID, &mut info),
        CKR_OK
    );
    info
}

fn flags(slot: Slot) -> CK_FLAGS {
    raw_token_info(slot).flags
}

#[test]
fn uninitialized_token_then_init() {
    let e = env();
    let slot = e.with_uninit_token("uninit", |slot| {
        let si = e.ctx.get_slot_info(slot).unwrap();
        assert!(si.token_present(), "CKF_TOKEN_PRESENT");
        let f = flags(slot);
        assert_eq!(
            f & CKF_TOKEN_INITIALIZED,
            0,
            "fresh token must not be initialized"
        );
        assert_eq!(f & CKF_USER_PIN_INITIALIZED, 0);
        // A session needs an initialized token (§5.6 C_OpenSession: CKR_TOKEN_NOT_RECOGNIZED
        // or similar) — not asserted: codes differ and the spec leaves it open.

        // Too short an SO PIN. C_InitToken does not list CKR_PIN_LEN_RANGE (§5.5): it is
        // CKR_PIN_INCORRECT (SoftHSM's answer too); the fuzzer checks the list.
        let r = rv_err(e.ctx.init_token(slot, &pin("abc"), "uninit"));
        assert_eq!(r, RvError::PinIncorrect);
        assert_eq!(flags(slot) & CKF_TOKEN_INITIALIZED, 0);

        e.ctx.init_token(slot, &pin(SO_PIN), "uninit").unwrap();
    });
    let info = raw_token_info(slot);
    assert_ne!(info.flags & CKF_TOKEN_INITIALIZED, 0);
    assert_ne!(info.flags & CKF_RNG, 0, "CKF_RNG");
    assert_ne!(info.flags & CKF_LOGIN_REQUIRED, 0, "CKF_LOGIN_REQUIRED");
    assert_eq!(info.flags & CKF_USER_PIN_INITIALIZED, 0);
    assert_eq!(
        info.label,
        padded32("uninit"),
        "label is blank padded, not NUL terminated"
    );
    assert!(
        info.ulMinPinLen >= 1 && info.ulMinPinLen <= 4,
        "min PIN {}",
        info.ulMinPinLen
    );
    assert!(info.ulMaxPinLen >= 64, "max PIN {}", info.ulMaxPinLen);
    assert_eq!(&info.model[..6], b"local ", "the model names the backend");
    for field in [
        &info.manufacturerID[..],
        &info.model[..],
        &info.serialNumber[..],
    ] {
        assert!(
            field.iter().all(|b| (0x20..0x7f).contains(b)),
            "printable, blank padded"
        );
    }

    let s = e.ctx.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin(USER_PIN)).unwrap();
    assert_ne!(
        flags(slot) & CKF_USER_PIN_INITIALIZED,
        0,
        "CKF_USER_PIN_INITIALIZED after C_InitPIN"
    );
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

#[test]
fn slot_ids_follow_config_order() {
    p11kms_only!(); // slot numbering comes from the p11kms configuration file
    let e = env();
    let all: Vec<u64> = e
        .ctx
        .get_all_slots()
        .unwrap()
        .iter()
        .map(|s| s.id())
        .collect();
    assert_eq!(all, (0..TOKENS.len() as u64).collect::<Vec<_>>());
    let present = e.ctx.get_slots_with_token().unwrap();
    assert_eq!(
        present.len(),
        TOKENS.len(),
        "every slot has a token present"
    );
    let slot = e.fresh_token("slotids");
    assert_eq!(slot.id(), 1);
    let info = raw_token_info(slot);
    assert_eq!(info.ulMinPinLen, 4);
    assert_eq!(info.ulMaxPinLen, 64);
}

#[test]
fn login_logout_so_and_user() {
    let e = env();
    let slot = e.user_token("login");
    let s = e.ctx.open_rw_session(slot).unwrap();
    if !is_reference() {
        // §5.6 C_Logout: CKR_USER_NOT_LOGGED_IN; SoftHSM answers CKR_OK.
        assert_eq!(rv_err(s.logout()), RvError::UserNotLoggedIn);
    }
    assert_eq!(
        rv_err(s.login(UserType::User, Some(&pin("wrong-pin")))),
        RvError::PinIncorrect
    );
    assert_eq!(
        rv_err(s.login(UserType::So, Some(&pin(USER_PIN)))),
        RvError::PinIncorrect
    );
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    s.logout().unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwSecurityOfficer
    );
    s.logout().unwrap();
    if !is_reference() {
        assert_eq!(rv_err(s.logout()), RvError::UserNotLoggedIn);
    }
    // Unknown user type (§5.6 C_Login).
    let r = call!(
        C_Login,
        s.handle(),
        7,
        USER_PIN.as_ptr() as *mut u8,
        USER_PIN.len() as CK_ULONG
    );
    assert_eq!(r, CKR_USER_TYPE_INVALID);
}

#[test]
fn set_pin_user_and_so() {
    let e = env();
    let slot = e.user_token("setpin");
    let s = e.ctx.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        rv_err(s.set_pin(&pin("not-the-pin"), &pin("new-user-pin"))),
        RvError::PinIncorrect
    );
    assert_eq!(
        rv_err(s.set_pin(&pin(USER_PIN), &pin("abc"))),
        RvError::PinLenRange
    );
    s.set_pin(&pin(USER_PIN), &pin("new-user-pin")).unwrap();
    s.logout().unwrap();
    assert_eq!(
        rv_err(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinIncorrect
    );
    s.login(UserType::User, Some(&pin("new-user-pin"))).unwrap();
    s.logout().unwrap();

    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.set_pin(&pin(SO_PIN), &pin("new-so-pin")).unwrap();
    s.logout().unwrap();
    assert_eq!(
        rv_err(s.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::PinIncorrect
    );
    s.login(UserType::So, Some(&pin("new-so-pin"))).unwrap();
    // The SO resets the user PIN.
    s.init_pin(&pin(USER_PIN)).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    s.logout().unwrap();

    // C_SetPIN in a R/O session is CKR_SESSION_READ_ONLY (§5.6).
    let ro = e.ctx.open_ro_session(slot).unwrap();
    ro.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        rv_err(ro.set_pin(&pin(USER_PIN), &pin("other-pin"))),
        RvError::SessionReadOnly
    );
}

#[test]
fn pin_length_rules() {
    let e = env();
    let slot = e.fresh_token("pinlen");
    let s = e.ctx.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(rv_err(s.init_pin(&pin("abc"))), RvError::PinLenRange);
    assert_eq!(rv_err(s.init_pin(&pin(""))), RvError::PinLenRange);
    s.init_pin(&pin("abcd")).unwrap();
    if !is_reference() {
        // p11kms caps PINs at 64 bytes (SoftHSM allows 255).
        s.init_pin(&pin(&"x".repeat(64))).unwrap();
        assert_eq!(
            rv_err(s.init_pin(&pin(&"x".repeat(65)))),
            RvError::PinLenRange
        );
    }
}

#[test]
fn lockout_flags_sequence() {
    p11kms_only!(); // SoftHSM has no PIN retry counter; max_pin_attempts is p11kms config
    let e = env();
    let slot = e.user_token("lockout");
    let s = e.ctx.open_rw_session(slot).unwrap();
    let lock_bits = CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED;
    assert_eq!(flags(slot) & lock_bits, 0);

    assert_eq!(
        rv_err(s.login(UserType::User, Some(&pin("bad-pin-1")))),
        RvError::PinIncorrect
    );
    let f = flags(slot);
    assert_ne!(f & CKF_USER_PIN_COUNT_LOW, 0, "COUNT_LOW after one failure");
    assert_eq!(f & (CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED), 0);

    assert_eq!(
        rv_err(s.login(UserType::User, Some(&pin("bad-pin-2")))),
        RvError::PinIncorrect
    );
    let f = flags(slot);
    assert_ne!(f & CKF_USER_PIN_FINAL_TRY, 0, "FINAL_TRY with one try left");
    assert_eq!(f & CKF_USER_PIN_LOCKED, 0);

    let r = rv_err(s.login(UserType::User, Some(&pin("bad-pin-3"))));
    assert!(
        matches!(r, RvError::PinIncorrect | RvError::PinLocked),
        "{r:?}"
    );
    assert_ne!(
        flags(slot) & CKF_USER_PIN_LOCKED,
        0,
        "LOCKED after max_pin_attempts"
    );
    assert_eq!(
        rv_err(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinLocked
    );

    // The SO unlocks by setting a new user PIN.
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin(USER_PIN)).unwrap();
    s.logout().unwrap();
    assert_eq!(flags(slot) & CKF_USER_PIN_LOCKED, 0);
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(flags(slot) & lock_bits, 0);
}

/// On a locked user PIN, C_SetPIN in a public session takes the old PIN as an unblock
/// code checked as the SO PIN (OpenSC's `--unlock-pin --puk`); on an unlocked one it
/// stays the user's own PIN change.
#[test]
fn set_pin_with_so_pin_unblocks_a_locked_user_pin() {
    p11kms_only!(); // an extension for OpenSC's --unlock-pin; needs the retry counter
    let e = env();
    let slot = e.user_token("unblock");
    let s = e.ctx.open_rw_session(slot).unwrap();
    // Not locked: the SO PIN is not the user's old PIN.
    assert_eq!(
        rv_err(s.set_pin(&pin(SO_PIN), &pin("new-user-pin"))),
        RvError::PinIncorrect
    );
    while flags(slot) & CKF_USER_PIN_LOCKED == 0 {
        let _ = s.login(UserType::User, Some(&pin("bad-pin")));
    }
    // Locked: a wrong unblock code counts against the SO, the right one resets the PIN.
    assert_eq!(
        rv_err(s.set_pin(&pin("not-the-so-pin"), &pin("new-user-pin"))),
        RvError::PinIncorrect
    );
    assert_ne!(
        flags(slot) & CKF_SO_PIN_COUNT_LOW,
        0,
        "a wrong unblock code is an SO failure"
    );
    s.set_pin(&pin(SO_PIN), &pin("new-user-pin")).unwrap();
    assert_eq!(flags(slot) & CKF_USER_PIN_LOCKED, 0);
    s.login(UserType::User, Some(&pin("new-user-pin"))).unwrap();
    s.logout().unwrap();
}

#[test]
fn lockout_default_is_ten() {
    p11kms_only!(); // default max_pin_attempts = 10 is a p11kms promise
    let e = env();
    let slot = e.user_token("lockdefault");
    let s = e.ctx.open_rw_session(slot).unwrap();
    for i in 1..=8 {
        assert_eq!(
            rv_err(s.login(UserType::User, Some(&pin("bad-pin")))),
            RvError::PinIncorrect
        );
        assert_eq!(
            flags(slot) & CKF_USER_PIN_FINAL_TRY,
            0,
            "FINAL_TRY too early after {i}"
        );
    }
    assert_eq!(
        rv_err(s.login(UserType::User, Some(&pin("bad-pin")))),
        RvError::PinIncorrect
    );
    assert_ne!(flags(slot) & CKF_USER_PIN_FINAL_TRY, 0);
    let _ = s.login(UserType::User, Some(&pin("bad-pin")));
    assert_ne!(flags(slot) & CKF_USER_PIN_LOCKED, 0);
    assert_eq!(
        rv_err(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinLocked
    );
}

#[test]
fn successful_login_resets_count() {
    p11kms_only!(); // SoftHSM does not report CKF_USER_PIN_COUNT_LOW
    let e = env();
    let slot = e.user_token("lockreset");
    let s = e.ctx.open_rw_session(slot).unwrap();
    for _ in 0..2 {
        assert_eq!(
            rv_err(s.login(UserType::User, Some(&pin("bad-pin")))),
            RvError::PinIncorrect
        );
    }
    assert_ne!(flags(slot) & CKF_USER_PIN_COUNT_LOW, 0);
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        flags(slot) & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY),
        0
    );
}

/// C_Login lists no CKR_PIN_LEN_RANGE (§5.6): a PIN of a length no PIN can have is
/// incorrect, and is not counted as a guess.
#[test]
fn login_with_impossible_pin_length() {
    p11kms_only!(); // needs the retry counter flags
    let e = env();
    let slot = e.user_token("pinlen-login");
    let s = e.ctx.open_rw_session(slot).unwrap();
    for p in ["", "abc", &"x".repeat(65)] {
        assert_eq!(
            rv_err(s.login(UserType::User, Some(&pin(p)))),
            RvError::PinIncorrect,
            "{p:?}"
        );
    }
    assert_eq!(
        flags(slot) & CKF_USER_PIN_COUNT_LOW,
        0,
        "impossible PINs are not guesses"
    );
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

#[test]
fn already_logged_in_codes() {
    let e = env();
    let slot = e.user_token("loggedin");
    let s1 = e.ctx.open_rw_session(slot).unwrap();
    let s2 = e.ctx.open_rw_session(slot).unwrap();
    s1.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    // Login state is per application and token: every session sees it (§5.6).
    assert_eq!(
        s2.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    assert_eq!(
        rv_err(s1.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::UserAlreadyLoggedIn
    );
    assert_eq!(
        rv_err(s2.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::UserAlreadyLoggedIn
    );
    assert_eq!(
        rv_err(s2.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::UserAnotherAlreadyLoggedIn
    );
    s2.logout().unwrap();
    assert_eq!(
        s1.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    s1.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(
        rv_err(s2.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::UserAlreadyLoggedIn
    );
    assert_eq!(
        rv_err(s2.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::UserAnotherAlreadyLoggedIn
    );
}

#[test]
fn so_login_with_read_only_session() {
    let e = env();
    let slot = e.fresh_token("rosess");
    let ro = e.ctx.open_ro_session(slot).unwrap();
    let rw = e.ctx.open_rw_session(slot).unwrap();
    assert_eq!(
        rv_err(rw.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::SessionReadOnlyExists
    );
    drop(ro);
    rw.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    // No R/O session while the SO is logged in (§5.6 C_OpenSession).
    assert_eq!(
        rv_err(e.ctx.open_ro_session(slot)),
        RvError::SessionReadWriteSoExists
    );
    rw.logout().unwrap();
    e.ctx.open_ro_session(slot).unwrap();
}

#[test]
fn init_token_with_open_session() {
    let e = env();
    let slot = e.user_token("sessexists");
    let s = e.ctx.open_ro_session(slot).unwrap();
    assert_eq!(
        rv_err(e.ctx.init_token(slot, &pin(SO_PIN), "sessexists")),
        RvError::SessionExists
    );
    drop(s);
    assert_eq!(
        rv_err(e.ctx.init_token(slot, &pin("wrong-so-pin"), "sessexists")),
        RvError::PinIncorrect
    );
    // Re-initializing with the right SO PIN wipes the user PIN.
    e.ctx.init_token(slot, &pin(SO_PIN), "sessexists").unwrap();
    let slot = e.slot_by_label("sessexists");
    assert_eq!(flags(slot) & CKF_USER_PIN_INITIALIZED, 0);
    let s = e.ctx.open_rw_session(slot).unwrap();
    let r = rv_err(s.login(UserType::User, Some(&pin(USER_PIN))));
    assert!(
        matches!(r, RvError::UserPinNotInitialized | RvError::PinIncorrect),
        "{r:?}"
    );
}

#[test]
fn open_session_requires_serial_flag() {
    let e = env();
    let slot = e.fresh_token("parallel");
    let mut h: CK_SESSION_HANDLE = 0;
    let r = call!(
        C_OpenSession,
        slot.id() as CK_SLOT_ID,
        CKF_RW_SESSION,
        std::ptr::null_mut(),
        None,
        &mut h
    );
    assert_eq!(r, CKR_SESSION_PARALLEL_NOT_SUPPORTED, "{}", rv_name(r));
    let r = call!(
        C_OpenSession,
        slot.id() as CK_SLOT_ID,
        CKF_SERIAL_SESSION,
        std::ptr::null_mut(),
        None,
        std::ptr::null_mut()
    );
    assert_eq!(r, CKR_ARGUMENTS_BAD, "NULL phSession");
    let r = call!(
        C_OpenSession,
        slot.id() as CK_SLOT_ID,
        CKF_SERIAL_SESSION,
        std::ptr::null_mut(),
        None,
        &mut h
    );
    assert_eq!(r, CKR_OK);
    assert_ne!(h, CK_INVALID_HANDLE);
    let mut info = CK_SESSION_INFO::default();
    assert_eq!(call!(C_GetSessionInfo, h, &mut info), CKR_OK);
    assert_eq!(info.slotID, slot.id() as CK_SLOT_ID);
    assert_eq!(info.flags & CKF_SERIAL_SESSION, CKF_SERIAL_SESSION);
    assert_eq!(info.flags & CKF_RW_SESSION, 0);
    assert_eq!(info.state, CKS_RO_PUBLIC_SESSION);
    assert_eq!(call!(C_CloseSession, h), CKR_OK);
    assert_eq!(
        call!(C_GetSessionInfo, h, &mut info),
        CKR_SESSION_HANDLE_INVALID
    );
}

#[test]
fn session_states() {
    let e = env();
    let slot = e.user_token("states");
    let ro = e.ctx.open_ro_session(slot).unwrap();
    let rw = e.ctx.open_rw_session(slot).unwrap();
    assert_eq!(
        ro.get_session_info().unwrap().session_state(),
        SessionState::RoPublic
    );
    assert!(!ro.get_session_info().unwrap().read_write());
    assert_eq!(
        rw.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    assert!(rw.get_session_info().unwrap().read_write());
    assert_eq!(rw.get_session_info().unwrap().slot_id(), slot);
    ro.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        ro.get_session_info().unwrap().session_state(),
        SessionState::RoUser
    );
    assert_eq!(
        rw.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    // A session opened while logged in starts in the logged-in state.
    let rw2 = e.ctx.open_rw_session(slot).unwrap();
    assert_eq!(
        rw2.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    rw.logout().unwrap();
    assert_eq!(
        ro.get_session_info().unwrap().session_state(),
        SessionState::RoPublic
    );
    drop(ro);
    rw.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(
        rw.get_session_info().unwrap().session_state(),
        SessionState::RwSecurityOfficer
    );
    assert_eq!(
        rw2.get_session_info().unwrap().session_state(),
        SessionState::RwSecurityOfficer
    );
    let info = raw_token_info(slot);
    if info.ulSessionCount != CK_UNAVAILABLE_INFORMATION {
        assert_eq!(info.ulSessionCount, 2);
        assert_eq!(info.ulRwSessionCount, 2);
    }
}

#[test]
fn close_all_sessions() {
    let e = env();
    let slot = e.user_token("closeall");
    let sessions: Vec<_> = (0..3)
        .map(|_| e.ctx.open_rw_session(slot).unwrap())
        .collect();
    sessions[0]
        .login(UserType::User, Some(&pin(USER_PIN)))
        .unwrap();
    assert_eq!(call!(C_CloseAllSessions, slot.id() as CK_SLOT_ID), CKR_OK);
    for s in &sessions {
        assert_eq!(rv_err(s.get_session_info()), RvError::SessionHandleInvalid);
    }
    // Closing the last session logs the user out (§5.6 C_CloseSession).
    let s = e.ctx.open_rw_session(slot).unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    let info = raw_token_info(slot);
    if info.ulSessionCount != CK_UNAVAILABLE_INFORMATION {
        assert_eq!(info.ulSessionCount, 1);
    }
    drop(sessions);
    assert_eq!(call!(C_CloseAllSessions, 0x7fff_fff0), CKR_SLOT_ID_INVALID);
}

#[test]
fn invalid_handles() {
    let e = env();
    let slot = e.fresh_token("invalid");
    let bad_slot = Slot::try_from(0x7fff_fff0u64).unwrap();
    assert_eq!(
        rv_err(e.ctx.get_slot_info(bad_slot)),
        RvError::SlotIdInvalid
    );
    assert_eq!(
        rv_err(e.ctx.get_token_info(bad_slot)),
        RvError::SlotIdInvalid
    );
    assert_eq!(
        rv_err(e.ctx.open_ro_session(bad_slot)),
        RvError::SlotIdInvalid
    );
    assert_eq!(
        rv_err(e.ctx.get_mechanism_list(bad_slot)),
        RvError::SlotIdInvalid
    );
    let mut info = CK_SESSION_INFO::default();
    assert_eq!(
        call!(C_GetSessionInfo, 0x7fff_fff0, &mut info),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        call!(C_CloseSession, 0x7fff_fff0),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        call!(C_GetSessionInfo, CK_INVALID_HANDLE, &mut info),
        CKR_SESSION_HANDLE_INVALID
    );
    let s = e.ctx.open_ro_session(slot).unwrap();
    assert_eq!(
        call!(C_GetSessionInfo, s.handle(), std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            C_GetTokenInfo,
            slot.id() as CK_SLOT_ID,
            std::ptr::null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(C_GetSlotInfo, slot.id() as CK_SLOT_ID, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn slot_list_two_call_convention() {
    let _e = env();
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(C_GetSlotList, CK_TRUE, std::ptr::null_mut(), &mut n),
        CKR_OK
    );
    assert!(n >= 1);
    let mut buf = vec![0 as CK_SLOT_ID; n as usize];
    if n > 1 {
        let mut short = n - 1;
        assert_eq!(
            call!(C_GetSlotList, CK_TRUE, buf.as_mut_ptr(), &mut short),
            CKR_BUFFER_TOO_SMALL
        );
        // SoftHSM may add a slot between calls when another test initializes a token.
        assert!(short >= n);
        buf.resize(short as usize + 4, 0);
    }
    let mut len = buf.len() as CK_ULONG;
    assert_eq!(
        call!(C_GetSlotList, CK_TRUE, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );
    assert!(len >= n);
    assert_eq!(
        call!(
            C_GetSlotList,
            CK_TRUE,
            std::ptr::null_mut(),
            std::ptr::null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn mechanism_list_and_info() {
    let e = env();
    let slot = e.fresh_token("mechs");
    // Raw list: the cryptoki wrapper drops mechanism numbers it does not know.
    let id = slot.id() as CK_SLOT_ID;
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(C_GetMechanismList, id, std::ptr::null_mut(), &mut n),
        CKR_OK
    );
    let mut raw_list = vec![0 as CK_MECHANISM_TYPE; n as usize];
    assert_eq!(
        call!(C_GetMechanismList, id, raw_list.as_mut_ptr(), &mut n),
        CKR_OK
    );
    let list: Vec<MechanismType> = raw_list
        .iter()
        .filter_map(|m| MechanismType::try_from(*m).ok())
        .collect();
    let list_has = |m: MechanismType| raw_list.contains(&(*m));
    let required = [
        MechanismType::AES_KEY_GEN,
        MechanismType::AES_ECB,
        MechanismType::AES_CBC,
        MechanismType::AES_CBC_PAD,
        MechanismType::AES_CTR,
        MechanismType::AES_GCM,
        MechanismType::AES_KEY_WRAP,
        MechanismType::AES_KEY_WRAP_PAD,
        MechanismType::AES_CMAC,
        MechanismType::GENERIC_SECRET_KEY_GEN,
        MechanismType::SHA1,
        MechanismType::SHA224,
        MechanismType::SHA256,
        MechanismType::SHA384,
        MechanismType::SHA512,
        MechanismType::SHA1_HMAC,
        MechanismType::SHA224_HMAC,
        MechanismType::SHA256_HMAC,
        MechanismType::SHA384_HMAC,
        MechanismType::SHA512_HMAC,
        MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        MechanismType::RSA_PKCS,
        MechanismType::RSA_PKCS_PSS,
        MechanismType::RSA_PKCS_OAEP,
        MechanismType::SHA1_RSA_PKCS,
        MechanismType::SHA256_RSA_PKCS,
        MechanismType::SHA384_RSA_PKCS,
        MechanismType::SHA512_RSA_PKCS,
        MechanismType::SHA256_RSA_PKCS_PSS,
        MechanismType::SHA384_RSA_PKCS_PSS,
        MechanismType::SHA512_RSA_PKCS_PSS,
        MechanismType::ECC_KEY_PAIR_GEN,
        MechanismType::ECDSA,
    ];
    for m in required {
        assert!(list_has(m), "{m} missing from C_GetMechanismList");
    }
    if !is_reference() {
        // SoftHSM 2.6 has no hash-and-sign ECDSA mechanisms.
        for m in [
            MechanismType::ECDSA_SHA256,
            MechanismType::ECDSA_SHA384,
            MechanismType::ECDSA_SHA512,
        ] {
            assert!(list_has(m), "{m} missing from C_GetMechanismList");
        }
    }

    let aes = e
        .ctx
        .get_mechanism_info(slot, MechanismType::AES_KEY_GEN)
        .unwrap();
    assert!(aes.generate());
    assert!(
        aes.min_key_size() <= 16 && aes.max_key_size() >= 32,
        "AES sizes are in bytes"
    );
    let gcm = e
        .ctx
        .get_mechanism_info(slot, MechanismType::AES_GCM)
        .unwrap();
    assert!(gcm.encrypt() && gcm.decrypt());
    let kw = e
        .ctx
        .get_mechanism_info(slot, MechanismType::AES_KEY_WRAP)
        .unwrap();
    assert!(kw.wrap() && kw.unwrap());
    let rsa = e
        .ctx
        .get_mechanism_info(slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)
        .unwrap();
    assert!(rsa.generate_key_pair());
    assert!(
        rsa.min_key_size() <= 2048 && rsa.max_key_size() >= 4096,
        "RSA sizes in bits"
    );
    let pkcs = e
        .ctx
        .get_mechanism_info(slot, MechanismType::RSA_PKCS)
        .unwrap();
    assert!(pkcs.sign() && pkcs.verify());
    let ec = e
        .ctx
        .get_mechanism_info(slot, MechanismType::ECC_KEY_PAIR_GEN)
        .unwrap();
    assert!(ec.generate_key_pair());
    assert!(
        ec.min_key_size() <= 256 && ec.max_key_size() >= 521,
        "EC sizes in bits"
    );
    let ecdsa = e
        .ctx
        .get_mechanism_info(slot, MechanismType::ECDSA)
        .unwrap();
    assert!(ecdsa.sign() && ecdsa.verify());
    let sha = e
        .ctx
        .get_mechanism_info(slot, MechanismType::SHA256)
        .unwrap();
    assert!(sha.digest());
    let hmac = e
        .ctx
        .get_mechanism_info(slot, MechanismType::SHA256_HMAC)
        .unwrap();
    assert!(hmac.sign() && hmac.verify());

    let mut info = CK_MECHANISM_INFO::default();
    let r = call!(
        C_GetMechanismInfo,
        slot.id() as CK_SLOT_ID,
        CKM_VENDOR_DEFINED | 0x1234_5678,
        &mut info
    );
    assert_eq!(r, CKR_MECHANISM_INVALID);
    let r = call!(C_GetMechanismInfo, 0x7fff_fff0, CKM_SHA256, &mut info);
    assert_eq!(r, CKR_SLOT_ID_INVALID);

    // Two-call convention for the list.
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(C_GetMechanismList, id, std::ptr::null_mut(), &mut n),
        CKR_OK
    );
    assert_eq!(n as usize, raw_list.len());
    assert!(list.len() <= raw_list.len());
    let mut buf = vec![0 as CK_MECHANISM_TYPE; n as usize];
    let mut short: CK_ULONG = 1;
    assert_eq!(
        call!(C_GetMechanismList, id, buf.as_mut_ptr(), &mut short),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, n);
    assert_eq!(
        call!(C_GetMechanismList, id, buf.as_mut_ptr(), &mut n),
        CKR_OK
    );
}

#[test]
fn generate_random() {
    let e = env();
    let slot = e.fresh_token("random");
    let s = e.ctx.open_ro_session(slot).unwrap();
    let a = s.generate_random_vec(32).unwrap();
    let b = s.generate_random_vec(32).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    assert_ne!(a, vec![0u8; 32]);
    let big = s.generate_random_vec(4096).unwrap();
    // Every byte value appears in 4 KiB of random data with overwhelming probability... not
    // quite; check a weaker property: not constant and roughly balanced bits.
    let ones: u32 = big.iter().map(|b| b.count_ones()).sum();
    assert!((14_000..18_800).contains(&ones), "{ones} one-bits in 32768");
    let r = call!(C_GenerateRandom, s.handle(), std::ptr::null_mut(), 16);
    assert_eq!(r, CKR_ARGUMENTS_BAD);
}
