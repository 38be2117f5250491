//! The harness the KMS-backed tests (tests/aws.rs, tests/gcp.rs) share: the token setup,
//! the configuration's common head, re-running the test binary as a second process, and
//! the object and timing helpers that do not depend on the cloud. What is specific to
//! one cloud (its emulator, its config lines, how its calls are counted) stays in its file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki_sys::CK_ULONG;

use super::{p11kms_path, pin, SO_PIN, USER_PIN};

/// The tests count KMS calls (in a shared log or at the emulator): they run one at a
/// time. Hold the guard for the whole test.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary directory that outlives the run (store, logs and configs are left to
/// look at when a test fails).
pub fn kept_dir() -> PathBuf {
    tempfile::tempdir().unwrap().keep()
}

/// A loopback port nothing listens on (for a moment: bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The head of a one-token configuration: debug log into `dir/log`, then the
/// `[[token]]` table's label and backend (both `backend`); the caller appends the rest.
pub fn config_head(dir: &Path, log: &str, backend: &str) -> String {
    format!(
        "log_level = \"debug\"\nlog_file = \"{}\"\n\n[[token]]\nlabel = \"{backend}\"\nbackend = \"{backend}\"\n",
        dir.join(log).display()
    )
}

/// Writes `config` as `dir/p11kms.toml`, points P11KMS_CONF at it (and XDG_DATA_HOME
/// into `dir`), loads the module and initializes the token `label` with SO_PIN and
/// USER_PIN.
pub fn setup_token(dir: &Path, config: &str, label: &str) -> (Pkcs11, Slot) {
    let conf = dir.join("p11kms.toml");
    std::fs::write(&conf, config).unwrap();
    std::env::set_var("P11KMS_CONF", &conf);
    std::env::set_var("XDG_DATA_HOME", dir.join("xdg"));
    load_token(Some(label))
}

/// Loads the module (P11KMS_CONF names its configuration) and C_Initializes it; with
/// `init` = Some(label), C_InitToken with SO_PIN, then the SO sets USER_PIN.
pub fn load_token(init: Option<&str>) -> (Pkcs11, Slot) {
    let ctx = Pkcs11::new(p11kms_path()).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx.get_all_slots().unwrap()[0];
    if let Some(label) = init {
        ctx.init_token(slot, &pin(SO_PIN), label).unwrap();
        let s = ctx.open_rw_session(slot).unwrap();
        s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
        s.init_pin(&pin(USER_PIN)).unwrap();
        s.logout().unwrap();
    }
    (ctx, slot)
}

/// A R/W session with the user logged in (the login is per token: an earlier session
/// of this process may have done it).
pub fn user_session(ctx: &Pkcs11, slot: Slot) -> Session {
    let s = ctx.open_rw_session(slot).unwrap();
    match s.login(UserType::User, Some(&pin(USER_PIN))) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => s,
        Err(e) => panic!("login: {e}"),
    }
}

/// In a second process: the module loaded (see `load_token`) and a R/W session with
/// the user logged in, the first login of this process.
pub fn child_token(init: Option<&str>) -> (Pkcs11, Session) {
    let (ctx, slot) = load_token(init);
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    (ctx, s)
}

/// Re-runs this test binary as a second process running only test `test` (output
/// shown, one thread), with `clear` removed from and `envs` added to the environment.
/// Asserts that it passed (and, with `must_print`, that its stdout says so); returns its
/// stdout. `what` names it in the failure message.
pub fn run_self(
    test: &str,
    what: &str,
    envs: &[(&str, OsString)],
    clear: &[&str],
    must_print: Option<&str>,
) -> String {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for k in clear {
        c.env_remove(k);
    }
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && must_print.is_none_or(|m| stdout.contains(m)),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The objects of `class` labelled `label`.
pub fn find(s: &Session, class: ObjectClass, label: &str) -> Vec<ObjectHandle> {
    s.find_objects(&[
        Attribute::Class(class),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
    .unwrap()
}

/// The one object of `class` labelled `label`.
pub fn find_one(s: &Session, class: ObjectClass, label: &str) -> ObjectHandle {
    let v = find(s, class, label);
    assert_eq!(v.len(), 1, "{label}: {v:?}");
    v[0]
}

/// A vendor-defined attribute holding UTF-8 (the key's ARN, version, algorithm...).
pub fn vendor(s: &Session, h: ObjectHandle, ty: CK_ULONG) -> String {
    match &s
        .get_attributes(h, &[AttributeType::VendorDefined(ty)])
        .unwrap()[0]
    {
        Attribute::VendorDefined((_, b)) => String::from_utf8(b.clone()).unwrap(),
        o => panic!("{o:?}"),
    }
}

pub fn id_of(s: &Session, h: ObjectHandle) -> Vec<u8> {
    match &s.get_attributes(h, &[AttributeType::Id]).unwrap()[0] {
        Attribute::Id(i) => i.clone(),
        o => panic!("{o:?}"),
    }
}

/// The key-pair templates pkcs11-tool --keypairgen sends (token, label, id; the
/// private half private), each followed by its `extra`.
pub fn pair_templates(
    label: &str,
    id: &[u8],
    extra_pub: Vec<Attribute>,
    extra_priv: Vec<Attribute>,
) -> (Vec<Attribute>, Vec<Attribute>) {
    let mut pub_t = vec![
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    pub_t.extend(extra_pub);
    let mut priv_t = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    priv_t.extend(extra_priv);
    (pub_t, priv_t)
}

pub fn rv_of(e: &cryptoki::error::Error) -> RvError {
    match e {
        cryptoki::error::Error::Pkcs11(rv, _) => *rv,
        o => panic!("{o}"),
    }
}

pub fn hex_str(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Median time of 30 calls of `f` in µs, after one warm-up call (the connection).
/// Reported by the latency tests, never asserted.
pub fn median_of_30_us(f: &mut dyn FnMut()) -> u128 {
    f();
    let mut v: Vec<u128> = (0..30)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_micros()
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}
