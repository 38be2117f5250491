//! The differential suite (issue 5, item 1): one corpus of scenarios, run step by step
//! against p11kms and SoftHSM (`/usr/lib/softhsm/libsofthsm2.so`), each on a fresh token,
//! through their raw function lists.
//!
//! The corpus (`tests/differential/corpus.txt`, its language is described at its top) is
//! data: every step is executed on both modules in lockstep and yields one observation
//! string per module (return codes, lengths, flags, values where they are not random).
//! Equal observations are `agree`; unequal ones must carry an annotation
//! (`!! softhsm-bug …` citing the spec, or `!! p11kms-deliberate …` citing README/DESIGN).
//! The test fails on an unannotated difference, on an annotation whose step agrees
//! (stale), and on a step whose observation misses an expected token (`=> …`).
//! Values that differ by nature (signatures, IVs, key material) are compared by property:
//! lengths, and verification by the *other* module (`$other.var`).

mod common;

#[path = "differential/names.rs"]
mod names;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use cryptoki_sys::*;

const CORPUS: &str = include_str!("differential/corpus.txt");
const SO_PIN: &str = "so-pin-1234";
const USER_PIN: &str = "user-pin-1234";
const BIG: usize = 8192;

// ---------------------------------------------------------------------------------------
// Names.

fn lookup(name: &str) -> Option<u64> {
    names::NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

fn name_of(prefix: &str, v: u64) -> String {
    names::NAMES
        .iter()
        .find(|(n, x)| *x == v && n.starts_with(prefix) && !n.ends_with("VENDOR_DEFINED"))
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("{prefix}{v:#x}"))
}

fn rv_name(rv: CK_RV) -> String {
    name_of("CKR_", rv)
}

/// A constant by name (`CKM_SHA256`), or a number (decimal or 0x hex).
fn constant(s: &str) -> Result<u64, String> {
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).map_err(|e| format!("{s}: {e}"));
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    lookup(s).ok_or_else(|| format!("unknown constant {s}"))
}

// ---------------------------------------------------------------------------------------
// The corpus.

#[derive(Debug, Clone)]
struct Step {
    line: usize,
    text: String,
    words: Vec<String>,
    /// Tokens that must appear in the observation (both modules unless annotated).
    expect: Vec<String>,
    /// `(class, reason)` of a documented difference.
    note: Option<(String, String)>,
}

#[derive(Debug)]
struct Scenario {
    name: String,
    steps: Vec<Step>,
}

const CLASSES: &[&str] = &["softhsm-bug", "p11kms-deliberate"];

fn parse_corpus(src: &str) -> Result<Vec<Scenario>, String> {
    let mut out: Vec<Scenario> = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(name) = l.strip_prefix("scenario ") {
            out.push(Scenario {
                name: name.trim().to_string(),
                steps: Vec::new(),
            });
            continue;
        }
        let sc = out
            .last_mut()
            .ok_or_else(|| format!("line {line}: step before any scenario"))?;
        let (body, note) = match l.split_once("!!") {
            Some((b, n)) => {
                let n = n.trim();
                let (class, reason) = n.split_once(' ').unwrap_or((n, ""));
                if !CLASSES.contains(&class) {
                    return Err(format!("line {line}: unknown difference class {class:?}"));
                }
                if reason.trim().is_empty() {
                    return Err(format!("line {line}: a difference needs its reason"));
                }
                (b, Some((class.to_string(), reason.trim().to_string())))
            }
            None => (l, None),
        };
        let (body, expect) = match body.split_once("=>") {
            Some((b, e)) => (b, e.split_whitespace().map(String::from).collect()),
            None => (body, Vec::new()),
        };
        sc.steps.push(Step {
            line,
            text: body.trim().to_string(),
            words: body.split_whitespace().map(String::from).collect(),
            expect,
            note,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Modules and their per-scenario state.

struct Module {
    name: &'static str,
    _lib: libloading::Library,
    f: &'static CK_FUNCTION_LIST,
}

impl Module {
    fn load(name: &'static str, path: &Path) -> Module {
        unsafe {
            let lib = libloading::Library::new(path)
                .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
            let gfl: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
                lib.get(b"C_GetFunctionList\0").unwrap();
            let mut p: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
            assert_eq!(gfl(&mut p), CKR_OK);
            Module {
                name,
                f: &*p,
                _lib: lib,
            }
        }
    }
}

/// Calls a function of a module's list: `ck!(m, C_Login, a, b)` → CK_RV.
macro_rules! ck {
    ($m:expr, $name:ident $(, $arg:expr)* $(,)?) => {
        unsafe { ($m.f.$name.expect(stringify!($name)))($($arg),*) }
    };
}

#[derive(Default)]
struct State {
    slot: CK_SLOT_ID,
    sessions: HashMap<String, CK_SESSION_HANDLE>,
    objects: HashMap<String, CK_OBJECT_HANDLE>,
    vars: HashMap<String, Vec<u8>>,
    /// The last `init` of each (session, op): its mechanism text and key name, so that
    /// `active` can probe whether the operation is still running.
    inits: HashMap<(String, String), (String, Option<String>)>,
    /// Counts `init` steps; a multi-part output variable written under an older count is
    /// overwritten rather than appended to.
    epoch: u64,
    var_epoch: HashMap<String, u64>,
}

// ---------------------------------------------------------------------------------------
// Values, templates, mechanisms.

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd hex {s}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("hex {s}: {e}")))
        .collect()
}

/// A byte value: `hex:..`, `str:..`, `zero:N`, `seq:N`, `$var`, `$other.var`,
/// `hash:ALG:VALUE`, `di:ALG:VALUE` (DigestInfo of the hash), `cat:A+B`.
fn value(s: &str, me: &State, other: &State) -> Result<Vec<u8>, String> {
    if let Some(v) = s.strip_prefix("cat:") {
        let mut out = Vec::new();
        for part in v.split('+') {
            out.extend(value(part, me, other)?);
        }
        return Ok(out);
    }
    if let Some(h) = s.strip_prefix("hex:") {
        return unhex(h);
    }
    if let Some(t) = s.strip_prefix("str:") {
        return Ok(t.as_bytes().to_vec());
    }
    if let Some(n) = s.strip_prefix("zero:") {
        return Ok(vec![0; n.parse().map_err(|_| format!("zero:{n}"))?]);
    }
    if let Some(n) = s.strip_prefix("seq:") {
        let n: usize = n.parse().map_err(|_| format!("seq:{n}"))?;
        return Ok((0..n).map(|i| (i * 7 + 3) as u8).collect());
    }
    if let Some(v) = s.strip_prefix("$other.") {
        return other
            .vars
            .get(v)
            .cloned()
            .ok_or_else(|| format!("unset $other.{v}"));
    }
    if let Some(v) = s.strip_prefix('$') {
        return me.vars.get(v).cloned().ok_or_else(|| format!("unset ${v}"));
    }
    if let Some(v) = s.strip_prefix("strip:") {
        // The content of a DER TLV (CKA_EC_POINT's OCTET STRING → the raw point).
        let b = value(v, me, other)?;
        if b.len() < 2 {
            return Err("strip: too short".into());
        }
        let (_, c, _) = common::der_read(&b);
        return Ok(c.to_vec());
    }
    if let Some(rest) = s.strip_prefix("head:") {
        let (n, v) = rest.split_once(':').ok_or("head:N:VALUE")?;
        let mut b = value(v, me, other)?;
        b.truncate(n.parse().map_err(|_| format!("head:{n}"))?);
        return Ok(b);
    }
    if let Some(v) = s.strip_prefix("octet:") {
        return Ok(common::der(0x04, &value(v, me, other)?));
    }
    for (pfx, info) in [("hash:", false), ("di:", true)] {
        if let Some(rest) = s.strip_prefix(pfx) {
            let (alg, v) = rest.split_once(':').ok_or("hash:ALG:VALUE")?;
            let d = common::sha(alg, &value(v, me, other)?);
            return Ok(if info {
                common::digest_info(alg, &d)
            } else {
                d
            });
        }
    }
    Err(format!("bad value {s}"))
}

/// Attribute value bytes: `true`/`false` → CK_BBOOL; a number or a constant name →
/// CK_ULONG; `mechs:A,B` → a CK_MECHANISM_TYPE array; else a byte value.
fn attr_value(s: &str, me: &State, other: &State) -> Result<Vec<u8>, String> {
    match s {
        "true" => return Ok(vec![1]),
        "false" => return Ok(vec![0]),
        "empty" => return Ok(Vec::new()),
        _ => {}
    }
    if let Some(list) = s.strip_prefix("mechs:") {
        let mut out = Vec::new();
        for m in list.split(',') {
            out.extend(constant(m)?.to_ne_bytes());
        }
        return Ok(out);
    }
    if s.parse::<u64>().is_ok() || (s.starts_with("CK") && !s.contains(':')) {
        return Ok(constant(s)?.to_ne_bytes().to_vec());
    }
    value(s, me, other)
}

/// An owned template: `CKA_X=VALUE ...`.
struct Template {
    _vals: Vec<Vec<u8>>,
    attrs: Vec<CK_ATTRIBUTE>,
}

fn template(words: &[String], me: &State, other: &State) -> Result<Template, String> {
    let mut vals = Vec::new();
    let mut types = Vec::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("bad attribute {w}"))?;
        types.push(constant(k)?);
        vals.push(attr_value(v, me, other)?);
    }
    let attrs = vals
        .iter_mut()
        .zip(types)
        .map(|(v, t)| CK_ATTRIBUTE {
            type_: t,
            pValue: if v.is_empty() {
                std::ptr::null_mut()
            } else {
                v.as_mut_ptr().cast()
            },
            ulValueLen: v.len() as CK_ULONG,
        })
        .collect();
    Ok(Template { _vals: vals, attrs })
}

/// An owned mechanism with its parameter: `CKM_X` or `CKM_X(k=v,k=v)`.
struct Mech {
    _store: Vec<Vec<u8>>,
    _param: Vec<u8>,
    m: CK_MECHANISM,
}

fn mechanism(s: &str, me: &State, other: &State) -> Result<Mech, String> {
    let (name, args) = match s.split_once('(') {
        Some((n, a)) => (n, a.strip_suffix(')').ok_or("missing )")?),
        None => (s, ""),
    };
    let mtype = constant(name)?;
    let mut kv: HashMap<&str, &str> = HashMap::new();
    for a in args.split(',').filter(|a| !a.is_empty()) {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("bad parameter {a}"))?;
        kv.insert(k, v);
    }
    let get = |k: &str| -> Result<Option<Vec<u8>>, String> {
        kv.get(k).map(|v| value(v, me, other)).transpose()
    };
    let num = |k: &str, d: u64| -> Result<u64, String> {
        kv.get(k)
            .map(|v| constant(v))
            .transpose()
            .map(|o| o.unwrap_or(d))
    };
    let mut store: Vec<Vec<u8>> = Vec::new();
    let mut param: Vec<u8> = Vec::new();
    fn bytes_of<T>(t: &T) -> Vec<u8> {
        unsafe {
            std::slice::from_raw_parts((t as *const T).cast::<u8>(), std::mem::size_of::<T>())
                .to_vec()
        }
    }
    let ptr = |v: &mut Vec<u8>| -> *mut u8 {
        if v.is_empty() {
            std::ptr::null_mut()
        } else {
            v.as_mut_ptr()
        }
    };
    if let Some(raw) = get("raw")? {
        param = raw;
    } else if kv.contains_key("iv") && kv.contains_key("tag") {
        // CK_GCM_PARAMS
        let mut iv = get("iv")?.unwrap_or_default();
        let mut aad = get("aad")?.unwrap_or_default();
        let p = CK_GCM_PARAMS {
            pIv: ptr(&mut iv),
            ulIvLen: iv.len() as CK_ULONG,
            ulIvBits: num("ivbits", iv.len() as u64 * 8)?,
            pAAD: ptr(&mut aad),
            ulAADLen: aad.len() as CK_ULONG,
            ulTagBits: num("tag", 128)?,
        };
        param = bytes_of(&p);
        store.push(iv);
        store.push(aad);
    } else if let Some(iv) = get("iv")? {
        param = iv;
    } else if kv.contains_key("cb") {
        let cb = get("cb")?.unwrap();
        let mut p = CK_AES_CTR_PARAMS {
            ulCounterBits: num("bits", 128)?,
            cb: [0; 16],
        };
        if cb.len() != 16 {
            return Err("cb must be 16 bytes".into());
        }
        p.cb.copy_from_slice(&cb);
        param = bytes_of(&p);
    } else if kv.contains_key("salt") {
        let p = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: num("hash", 0)?,
            mgf: num("mgf", 0)?,
            sLen: num("salt", 0)?,
        };
        param = bytes_of(&p);
    } else if kv.contains_key("mgf") {
        let mut label = get("label")?.unwrap_or_default();
        let p = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: num("hash", 0)?,
            mgf: num("mgf", 0)?,
            source: num("source", CKZ_DATA_SPECIFIED)?,
            pSourceData: ptr(&mut label).cast(),
            ulSourceDataLen: label.len() as CK_ULONG,
        };
        param = bytes_of(&p);
        store.push(label);
    } else if kv.contains_key("len") {
        param = num("len", 0)?.to_ne_bytes().to_vec();
    }
    let null = kv.contains_key("null");
    let plen = num("plen", param.len() as u64)?;
    let mut m = Mech {
        _store: store,
        _param: param,
        m: CK_MECHANISM {
            mechanism: mtype,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: plen,
        },
    };
    if !null && !m._param.is_empty() {
        m.m.pParameter = m._param.as_mut_ptr().cast();
    }
    Ok(m)
}

/// Named function flags of CK_MECHANISM_INFO.
fn mech_flags(f: CK_FLAGS) -> String {
    let names = [
        (CKF_ENCRYPT, "E"),
        (CKF_DECRYPT, "D"),
        (CKF_DIGEST, "Dig"),
        (CKF_SIGN, "S"),
        (CKF_SIGN_RECOVER, "SR"),
        (CKF_VERIFY, "V"),
        (CKF_VERIFY_RECOVER, "VR"),
        (CKF_GENERATE, "Gen"),
        (CKF_GENERATE_KEY_PAIR, "GenKP"),
        (CKF_WRAP, "W"),
        (CKF_UNWRAP, "U"),
        (CKF_DERIVE, "Der"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join("|")
}

// Attributes every object of a kind must answer (PKCS#11 3.0 §4), by kind.
const A_STORAGE: &[&str] = &[
    "CKA_CLASS",
    "CKA_TOKEN",
    "CKA_PRIVATE",
    "CKA_MODIFIABLE",
    "CKA_LABEL",
    "CKA_COPYABLE",
    "CKA_DESTROYABLE",
    "CKA_UNIQUE_ID",
];
const A_KEY: &[&str] = &[
    "CKA_KEY_TYPE",
    "CKA_ID",
    "CKA_START_DATE",
    "CKA_END_DATE",
    "CKA_DERIVE",
    "CKA_LOCAL",
    "CKA_KEY_GEN_MECHANISM",
    "CKA_ALLOWED_MECHANISMS",
];
const A_SECRET: &[&str] = &[
    "CKA_SENSITIVE",
    "CKA_ENCRYPT",
    "CKA_DECRYPT",
    "CKA_SIGN",
    "CKA_VERIFY",
    "CKA_WRAP",
    "CKA_UNWRAP",
    "CKA_EXTRACTABLE",
    "CKA_ALWAYS_SENSITIVE",
    "CKA_NEVER_EXTRACTABLE",
    "CKA_CHECK_VALUE",
    "CKA_WRAP_WITH_TRUSTED",
    "CKA_TRUSTED",
    "CKA_WRAP_TEMPLATE",
    "CKA_UNWRAP_TEMPLATE",
    "CKA_VALUE",
    "CKA_VALUE_LEN",
];
const A_PUBLIC: &[&str] = &[
    "CKA_SUBJECT",
    "CKA_ENCRYPT",
    "CKA_VERIFY",
    "CKA_VERIFY_RECOVER",
    "CKA_WRAP",
    "CKA_TRUSTED",
    "CKA_WRAP_TEMPLATE",
    "CKA_PUBLIC_KEY_INFO",
];
const A_PRIVATE: &[&str] = &[
    "CKA_SUBJECT",
    "CKA_SENSITIVE",
    "CKA_DECRYPT",
    "CKA_SIGN",
    "CKA_SIGN_RECOVER",
    "CKA_UNWRAP",
    "CKA_EXTRACTABLE",
    "CKA_ALWAYS_SENSITIVE",
    "CKA_NEVER_EXTRACTABLE",
    "CKA_WRAP_WITH_TRUSTED",
    "CKA_UNWRAP_TEMPLATE",
    "CKA_ALWAYS_AUTHENTICATE",
    "CKA_PUBLIC_KEY_INFO",
];
const A_RSA_PUB: &[&str] = &["CKA_MODULUS", "CKA_MODULUS_BITS", "CKA_PUBLIC_EXPONENT"];
const A_RSA_PRIV: &[&str] = &[
    "CKA_MODULUS",
    "CKA_PUBLIC_EXPONENT",
    "CKA_PRIVATE_EXPONENT",
    "CKA_PRIME_1",
    "CKA_PRIME_2",
    "CKA_EXPONENT_1",
    "CKA_EXPONENT_2",
    "CKA_COEFFICIENT",
];
const A_EC_PUB: &[&str] = &["CKA_EC_PARAMS", "CKA_EC_POINT"];
const A_EC_PRIV: &[&str] = &["CKA_EC_PARAMS", "CKA_VALUE"];
const A_CERT: &[&str] = &[
    "CKA_CERTIFICATE_TYPE",
    "CKA_TRUSTED",
    "CKA_CERTIFICATE_CATEGORY",
    "CKA_CHECK_VALUE",
    "CKA_START_DATE",
    "CKA_END_DATE",
    "CKA_PUBLIC_KEY_INFO",
    "CKA_SUBJECT",
    "CKA_ID",
    "CKA_ISSUER",
    "CKA_SERIAL_NUMBER",
    "CKA_VALUE",
    "CKA_URL",
    "CKA_HASH_OF_SUBJECT_PUBLIC_KEY",
    "CKA_HASH_OF_ISSUER_PUBLIC_KEY",
    "CKA_JAVA_MIDP_SECURITY_DOMAIN",
    "CKA_NAME_HASH_ALGORITHM",
];
const A_DATA: &[&str] = &["CKA_APPLICATION", "CKA_OBJECT_ID", "CKA_VALUE"];

fn class_attrs(kind: &str) -> Result<Vec<&'static str>, String> {
    let parts: &[&[&str]] = match kind {
        "secret" => &[A_STORAGE, A_KEY, A_SECRET],
        "rsa-pub" => &[A_STORAGE, A_KEY, A_PUBLIC, A_RSA_PUB],
        "rsa-priv" => &[A_STORAGE, A_KEY, A_PRIVATE, A_RSA_PRIV],
        "ec-pub" => &[A_STORAGE, A_KEY, A_PUBLIC, A_EC_PUB],
        "ec-priv" => &[A_STORAGE, A_KEY, A_PRIVATE, A_EC_PRIV],
        "cert" => &[A_STORAGE, A_CERT],
        "data" => &[A_STORAGE, A_DATA],
        _ => return Err(format!("unknown kind {kind}")),
    };
    Ok(parts.iter().flat_map(|p| p.iter().copied()).collect())
}

// ---------------------------------------------------------------------------------------
// The interpreter.

struct Ctx<'a> {
    m: &'a Module,
    me: &'a mut State,
    other: &'a State,
}

/// `key=value` options of a step (after the positional words).
fn opts(words: &[String]) -> HashMap<String, String> {
    words
        .iter()
        .filter_map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The `-> VAR` target of a step, and the words before it.
fn target(words: &[String]) -> (&[String], Option<String>) {
    match words.iter().position(|w| w == "->") {
        Some(i) => (&words[..i], words.get(i + 1).cloned()),
        None => (words, None),
    }
}

/// How an output buffer is passed: `null`, `short` (needed-1 after a size query),
/// `exact` (after a size query), `big` (BIG bytes), or a length.
#[derive(Clone, Copy)]
enum Out {
    Null,
    Short,
    Exact,
    Big,
    Len(usize),
}

fn out_spec(o: &HashMap<String, String>) -> Result<Out, String> {
    Ok(match o.get("out").map(String::as_str) {
        None | Some("big") => Out::Big,
        Some("null") => Out::Null,
        Some("short") => Out::Short,
        Some("exact") => Out::Exact,
        Some(n) => Out::Len(n.parse().map_err(|_| format!("out={n}"))?),
    })
}

/// Calls `f(buf, len)` with the buffer convention `out`; returns the observation and
/// the output bytes on CKR_OK.
fn with_out(
    out: Out,
    mut f: impl FnMut(*mut u8, *mut CK_ULONG) -> CK_RV,
) -> (String, Option<Vec<u8>>) {
    let mut obs = String::new();
    let size = match out {
        Out::Null => 0,
        Out::Big => BIG,
        Out::Len(n) => n,
        Out::Short | Out::Exact => {
            let mut l: CK_ULONG = 0;
            let rv = f(std::ptr::null_mut(), &mut l);
            if rv != CKR_OK {
                return (format!("query={}", rv_name(rv)), None);
            }
            write!(obs, "query=len:{l} ").unwrap();
            if matches!(out, Out::Short) {
                (l as usize).saturating_sub(1)
            } else {
                l as usize
            }
        }
    };
    let mut buf = vec![0u8; size.max(1)];
    let mut l = size as CK_ULONG;
    let p = if matches!(out, Out::Null) {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    };
    let rv = f(p, &mut l);
    write!(obs, "{} len={l}", rv_name(rv)).unwrap();
    if rv == CKR_OK && !matches!(out, Out::Null) {
        buf.truncate(l as usize);
        (obs, Some(buf))
    } else {
        (obs, None)
    }
}

impl Ctx<'_> {
    fn sess(&self, name: &str) -> Result<CK_SESSION_HANDLE, String> {
        match name {
            // A handle no session has (for the invalid-handle rules).
            "bogus" => Ok(0x7fff_fff1),
            _ => self
                .me
                .sessions
                .get(name)
                .copied()
                .ok_or_else(|| format!("no session {name}")),
        }
    }

    fn obj(&self, name: &str) -> Result<CK_OBJECT_HANDLE, String> {
        match name {
            "bogus" => Ok(0x7fff_fff1),
            "none" => Ok(CK_INVALID_HANDLE),
            _ => self
                .me
                .objects
                .get(name)
                .copied()
                .ok_or_else(|| format!("no object {name}")),
        }
    }

    fn val(&self, s: &str) -> Result<Vec<u8>, String> {
        value(s, self.me, self.other)
    }

    fn tmpl(&self, w: &[String]) -> Result<Template, String> {
        template(w, self.me, self.other)
    }

    fn mech(&self, s: &str) -> Result<Mech, String> {
        mechanism(s, self.me, self.other)
    }

    fn store(&mut self, var: &Option<String>, v: Vec<u8>) {
        if let Some(n) = var {
            self.me.vars.insert(n.clone(), v);
        }
    }

    /// Runs one step; `nolen` drops the lengths from its observation (where the spec
    /// lets a module answer a size query with a bound rather than the exact size).
    fn exec(&mut self, w: &[String]) -> Result<String, String> {
        let obs = self.exec_inner(w)?;
        if !w.iter().any(|x| x == "nolen") {
            return Ok(obs);
        }
        let kept: Vec<&str> = obs
            .split_whitespace()
            .filter(|t| !t.starts_with("len=") && !t.starts_with("query=len:"))
            .collect();
        Ok(kept.join(" "))
    }

    fn exec_inner(&mut self, w: &[String]) -> Result<String, String> {
        let (w, var) = target(w);
        let arg = |i: usize| -> Result<&str, String> {
            w.get(i)
                .map(String::as_str)
                .ok_or_else(|| format!("missing argument {i}"))
        };
        let o = opts(w);
        let m = self.m;
        let slot = self.me.slot;
        Ok(match arg(0)? {
            "info" => {
                let mut i: CK_INFO = unsafe { std::mem::zeroed() };
                let rv = ck!(m, C_GetInfo, &mut i);
                format!("{} v{}", rv_name(rv), i.cryptokiVersion.major)
            }
            "tokeninfo" => {
                let mut i: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
                let rv = ck!(m, C_GetTokenInfo, slot, &mut i);
                let f = [
                    (CKF_RNG, "RNG"),
                    (CKF_LOGIN_REQUIRED, "LOGIN_REQUIRED"),
                    (CKF_USER_PIN_INITIALIZED, "USER_PIN_INITIALIZED"),
                    (CKF_TOKEN_INITIALIZED, "TOKEN_INITIALIZED"),
                    (CKF_WRITE_PROTECTED, "WRITE_PROTECTED"),
                ];
                let set: Vec<&str> = f
                    .iter()
                    .filter(|(b, _)| i.flags & b != 0)
                    .map(|(_, n)| *n)
                    .collect();
                format!("{} flags={}", rv_name(rv), set.join("|"))
            }
            "slotlist" => {
                let present = o.get("present").map(|v| v == "1").unwrap_or(true) as CK_BBOOL;
                let mut n: CK_ULONG = 0;
                let rv = ck!(m, C_GetSlotList, present, std::ptr::null_mut(), &mut n);
                if rv != CKR_OK {
                    return Ok(format!("query={}", rv_name(rv)));
                }
                let need = n as usize;
                self.list_call(&o, need, |p, l| ck!(m, C_GetSlotList, present, p, l))?
            }
            "mechlist" => {
                let mut n: CK_ULONG = 0;
                let rv = ck!(m, C_GetMechanismList, slot, std::ptr::null_mut(), &mut n);
                if rv != CKR_OK {
                    return Ok(format!("query={}", rv_name(rv)));
                }
                self.list_call(&o, n as usize, |p, l| {
                    ck!(m, C_GetMechanismList, slot, p, l)
                })?
            }
            "mechinfo" => {
                let mt = constant(arg(1)?)?;
                let mut i: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
                let rv = ck!(m, C_GetMechanismInfo, slot, mt, &mut i);
                let mut s = rv_name(rv);
                if o.get("flags").map(String::as_str) != Some("no") {
                    write!(s, " {}", mech_flags(i.flags)).unwrap();
                }
                if let Some(sizes) = o.get("sizes") {
                    for sz in sizes.split(',') {
                        let n: u64 = sz.parse().map_err(|_| format!("size {sz}"))?;
                        let inr = n >= i.ulMinKeySize && n <= i.ulMaxKeySize;
                        write!(s, " {n}:{}", if inr { "in" } else { "out" }).unwrap();
                    }
                }
                s
            }
            "open" => {
                let mut flags = CKF_SERIAL_SESSION;
                match arg(2)? {
                    "rw" => flags |= CKF_RW_SESSION,
                    "ro" => {}
                    "noserial" => flags = CKF_RW_SESSION,
                    x => return Err(format!("open {x}")),
                }
                let mut h: CK_SESSION_HANDLE = 0;
                let rv = ck!(
                    m,
                    C_OpenSession,
                    slot,
                    flags,
                    std::ptr::null_mut(),
                    None,
                    &mut h
                );
                if rv == CKR_OK {
                    self.me.sessions.insert(arg(1)?.to_string(), h);
                }
                rv_name(rv)
            }
            "close" => rv_name(ck!(m, C_CloseSession, self.sess(arg(1)?)?)),
            "closeall" => rv_name(ck!(m, C_CloseAllSessions, slot)),
            "sessinfo" => {
                let mut i: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
                let rv = ck!(m, C_GetSessionInfo, self.sess(arg(1)?)?, &mut i);
                if rv != CKR_OK {
                    return Ok(rv_name(rv));
                }
                let mut f = Vec::new();
                if i.flags & CKF_RW_SESSION != 0 {
                    f.push("RW");
                }
                if i.flags & CKF_SERIAL_SESSION != 0 {
                    f.push("SERIAL");
                }
                format!(
                    "{} {} {}{}",
                    rv_name(rv),
                    name_of("CKS_", i.state),
                    f.join("|"),
                    if i.slotID == slot { "" } else { " wrong-slot" }
                )
            }
            "login" | "relogin" => {
                let user = match arg(2)? {
                    "user" => CKU_USER,
                    "so" => CKU_SO,
                    "context" => CKU_CONTEXT_SPECIFIC,
                    x => return Err(format!("login {x}")),
                };
                let default = if user == CKU_SO { SO_PIN } else { USER_PIN };
                let mut pin = o
                    .get("pin")
                    .map(|p| self.val(p))
                    .transpose()?
                    .unwrap_or_else(|| default.as_bytes().to_vec());
                let rv = ck!(
                    m,
                    C_Login,
                    self.sess(arg(1)?)?,
                    user,
                    pin.as_mut_ptr(),
                    pin.len() as CK_ULONG
                );
                rv_name(rv)
            }
            "logout" => rv_name(ck!(m, C_Logout, self.sess(arg(1)?)?)),
            "random" => {
                let n: usize = arg(2)?.parse().map_err(|_| "random N")?;
                let mut b = vec![0u8; n.max(1)];
                let rv = ck!(
                    m,
                    C_GenerateRandom,
                    self.sess(arg(1)?)?,
                    b.as_mut_ptr(),
                    n as CK_ULONG
                );
                b.truncate(n);
                let distinct = b.iter().collect::<std::collections::HashSet<_>>().len();
                // n random bytes with fewer than n/8 distinct values: not random.
                format!(
                    "{}{}",
                    rv_name(rv),
                    if n >= 64 && distinct < n / 8 {
                        " not-random"
                    } else {
                        ""
                    }
                )
            }
            "create" | "genkey" | "copy" | "unwrap" => self.make_object(w)?,
            "genpair" => {
                let s = self.sess(arg(1)?)?;
                let mech = self.mech(arg(4)?)?;
                let rest = &w[5..];
                let bar = rest.iter().position(|x| x == "|").unwrap_or(rest.len());
                let mut pubt = self.tmpl(&rest[..bar])?;
                let mut privt = self.tmpl(rest.get(bar + 1..).unwrap_or(&[]))?;
                let (mut hp, mut hq) = (0, 0);
                let rv = ck!(
                    m,
                    C_GenerateKeyPair,
                    s,
                    &mech.m as *const _ as *mut _,
                    pubt.attrs.as_mut_ptr(),
                    pubt.attrs.len() as CK_ULONG,
                    privt.attrs.as_mut_ptr(),
                    privt.attrs.len() as CK_ULONG,
                    &mut hp,
                    &mut hq
                );
                if rv == CKR_OK {
                    self.me.objects.insert(arg(2)?.to_string(), hp);
                    self.me.objects.insert(arg(3)?.to_string(), hq);
                }
                rv_name(rv)
            }
            "destroy" => rv_name(ck!(
                m,
                C_DestroyObject,
                self.sess(arg(1)?)?,
                self.obj(arg(2)?)?
            )),
            "get" => {
                let r = common_get(
                    m,
                    self.sess(arg(1)?)?,
                    self.obj(arg(2)?)?,
                    constant(arg(3)?)?,
                );
                match r {
                    Ok(v) => {
                        let s = format!("CKR_OK len={}", v.len());
                        self.store(&var, v);
                        s
                    }
                    Err(rv) => rv_name(rv),
                }
            }
            "getattr" => self.getattr(w)?,
            "allattrs" => {
                let s = self.sess(arg(1)?)?;
                let h = self.obj(arg(2)?)?;
                let mut bad = Vec::new();
                for a in class_attrs(arg(3)?)? {
                    let t = constant(a)?;
                    let r = common_get(m, s, h, t);
                    match r {
                        Ok(_) => {}
                        Err(CKR_ATTRIBUTE_SENSITIVE) => bad.push(format!("{a}=sensitive")),
                        Err(rv) => bad.push(format!("{a}={}", rv_name(rv))),
                    }
                }
                format!("answers-all-but[{}]", bad.join(","))
            }
            "setattr" => {
                let mut t = self.tmpl(&w[3..])?;
                rv_name(ck!(
                    m,
                    C_SetAttributeValue,
                    self.sess(arg(1)?)?,
                    self.obj(arg(2)?)?,
                    t.attrs.as_mut_ptr(),
                    t.attrs.len() as CK_ULONG
                ))
            }
            "objsize" => {
                let mut n: CK_ULONG = 0;
                let rv = ck!(
                    m,
                    C_GetObjectSize,
                    self.sess(arg(1)?)?,
                    self.obj(arg(2)?)?,
                    &mut n
                );
                rv_name(rv)
            }
            "find" => self.find(w, &var)?,
            "findinit" => {
                let mut t = self.tmpl(&w[2..])?;
                rv_name(ck!(
                    m,
                    C_FindObjectsInit,
                    self.sess(arg(1)?)?,
                    t.attrs.as_mut_ptr(),
                    t.attrs.len() as CK_ULONG
                ))
            }
            "findobjects" => {
                let max: usize = o.get("max").map(|x| x.parse().unwrap_or(1)).unwrap_or(16);
                let mut hs = vec![0; max.max(1)];
                let mut n: CK_ULONG = 0;
                let rv = ck!(
                    m,
                    C_FindObjects,
                    self.sess(arg(1)?)?,
                    hs.as_mut_ptr(),
                    max as CK_ULONG,
                    &mut n
                );
                format!("{} n={n}", rv_name(rv))
            }
            "findfinal" => rv_name(ck!(m, C_FindObjectsFinal, self.sess(arg(1)?)?)),
            "init" => self.op_init(w)?,
            "single" | "update" | "final" => self.op_call(w, &var)?,
            "active" => self.active(arg(1)?, arg(2)?)?,
            // Ends OP on S if one is running; observes nothing (a cleanup step).
            "cancel" => {
                let s = self.sess(arg(2)?)?;
                end_op(m, s, arg(1)?);
                "done".into()
            }
            "digestkey" => rv_name(ck!(m, C_DigestKey, self.sess(arg(1)?)?, self.obj(arg(2)?)?)),
            "wrap" => {
                let s = self.sess(arg(1)?)?;
                let mech = self.mech(arg(2)?)?;
                let (wk, k) = (self.obj(arg(3)?)?, self.obj(arg(4)?)?);
                let (mut obs, bytes) = with_out(out_spec(&o)?, |p, l| {
                    ck!(m, C_WrapKey, s, &mech.m as *const _ as *mut _, wk, k, p, l)
                });
                if let (Some(b), true) = (&bytes, w.iter().any(|x| x == "show")) {
                    write!(obs, " ={}", hexs(b)).unwrap();
                }
                if let Some(b) = bytes {
                    self.store(&var, b);
                }
                obs
            }
            "signlens" => {
                // signlens S MECH KEY N data=V: the distinct signature lengths of N signs.
                let s = self.sess(arg(1)?)?;
                let k = self.obj(arg(3)?)?;
                let n: usize = arg(4)?.parse().map_err(|_| "signlens N")?;
                let data = self.val(o.get("data").ok_or("data=")?)?;
                let mut lens = std::collections::BTreeSet::new();
                let mut rvs = std::collections::BTreeSet::new();
                for _ in 0..n {
                    let mech = self.mech(arg(2)?)?;
                    let rv = ck!(m, C_SignInit, s, &mech.m as *const _ as *mut _, k);
                    if rv != CKR_OK {
                        rvs.insert(rv_name(rv));
                        continue;
                    }
                    let mut d = data.clone();
                    let mut sig = vec![0u8; 1024];
                    let mut l = sig.len() as CK_ULONG;
                    let rv = ck!(
                        m,
                        C_Sign,
                        s,
                        d.as_mut_ptr(),
                        d.len() as CK_ULONG,
                        sig.as_mut_ptr(),
                        &mut l
                    );
                    rvs.insert(rv_name(rv));
                    if rv == CKR_OK {
                        lens.insert(l);
                    }
                }
                format!("{rvs:?} lens={lens:?}")
            }
            "flagswork" => self.flags_work(w)?,
            "eq" => {
                let (a, b) = (self.val(arg(1)?)?, self.val(arg(2)?)?);
                if a == b {
                    "equal".into()
                } else {
                    "unequal".into()
                }
            }
            x => return Err(format!("unknown command {x}")),
        })
    }

    /// flagswork MECH KEY [PUBKEY] [target=KEY]: for each function flag of
    /// C_GetMechanismInfo, whether the function really starts with that mechanism (E, V
    /// and W with PUBKEY when given; D, S with KEY; Dig without a key; W wraps `target`),
    /// and whether the functions without a flag are refused. `consistent`, or the list
    /// of mismatches.
    fn flags_work(&mut self, w: &[String]) -> Result<String, String> {
        let m = self.m;
        let o = opts(w);
        let mech = self.mech(&w[1])?;
        let k = self.obj(&w[2])?;
        let kp = match w.get(3).filter(|x| !x.contains('=')) {
            Some(x) => self.obj(x)?,
            None => k,
        };
        let target = o.get("target").map(|t| self.obj(t)).transpose()?;
        let mut i: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
        let rv = ck!(
            m,
            C_GetMechanismInfo,
            self.me.slot,
            mech.m.mechanism,
            &mut i
        );
        if rv != CKR_OK {
            return Ok(rv_name(rv));
        }
        let s = self.sess("rw")?;
        let pm = &mech.m as *const _ as *mut _;
        let mut bad = Vec::new();
        let checks: [(CK_FLAGS, &str); 6] = [
            (CKF_ENCRYPT, "encrypt"),
            (CKF_DECRYPT, "decrypt"),
            (CKF_SIGN, "sign"),
            (CKF_VERIFY, "verify"),
            (CKF_DIGEST, "digest"),
            (CKF_WRAP, "wrap"),
        ];
        for (flag, op) in checks {
            let rv = match op {
                "encrypt" => ck!(m, C_EncryptInit, s, pm, kp),
                "decrypt" => ck!(m, C_DecryptInit, s, pm, k),
                "sign" => ck!(m, C_SignInit, s, pm, k),
                "verify" => ck!(m, C_VerifyInit, s, pm, kp),
                "digest" => ck!(m, C_DigestInit, s, pm),
                _ => {
                    let Some(t) = target else { continue };
                    let mut out = vec![0u8; BIG];
                    let mut l = BIG as CK_ULONG;
                    ck!(m, C_WrapKey, s, pm, kp, t, out.as_mut_ptr(), &mut l)
                }
            };
            if rv == CKR_OK && op != "wrap" {
                end_op(m, s, op);
            }
            let flagged = i.flags & flag != 0;
            match (flagged, rv == CKR_OK) {
                (true, false) => bad.push(format!("{op}:flag-but-{}", rv_name(rv))),
                (false, true) => bad.push(format!("{op}:works-without-flag")),
                _ => {}
            }
        }
        Ok(if bad.is_empty() {
            format!("consistent {}", mech_flags(i.flags))
        } else {
            format!("inconsistent[{}]", bad.join(","))
        })
    }

    /// The list-returning convention for C_GetSlotList/C_GetMechanismList: `buf=` null,
    /// short (needed-1), exact, big; the observation relates the length to the need.
    fn list_call(
        &self,
        o: &HashMap<String, String>,
        need: usize,
        mut f: impl FnMut(*mut CK_ULONG, *mut CK_ULONG) -> CK_RV,
    ) -> Result<String, String> {
        let size = match o.get("buf").map(String::as_str).unwrap_or("exact") {
            "null" => None,
            "short" => Some(need.saturating_sub(1)),
            "exact" => Some(need),
            "big" => Some(need + 8),
            "zero" => Some(0),
            x => return Err(format!("buf={x}")),
        };
        let mut buf = vec![0 as CK_ULONG; size.unwrap_or(0) + 1];
        let mut l = size.unwrap_or(0) as CK_ULONG;
        let p = if size.is_some() {
            buf.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        let rv = f(p, &mut l);
        let rel = match (l as usize).cmp(&need) {
            std::cmp::Ordering::Equal => "len=need".to_string(),
            _ => format!("len=need{:+}", l as i64 - need as i64),
        };
        Ok(format!(
            "{} {rel}{}",
            rv_name(rv),
            if need == 0 { " need=0" } else { "" }
        ))
    }

    fn make_object(&mut self, w: &[String]) -> Result<String, String> {
        let m = self.m;
        let s = self.sess(&w[1])?;
        let mut h: CK_OBJECT_HANDLE = 0;
        let (name, rv) = match w[0].as_str() {
            // create S NAME TEMPLATE
            "create" => {
                let mut t = self.tmpl(&w[3..])?;
                let rv = ck!(
                    m,
                    C_CreateObject,
                    s,
                    t.attrs.as_mut_ptr(),
                    t.attrs.len() as CK_ULONG,
                    &mut h
                );
                (&w[2], rv)
            }
            // genkey S NAME MECH TEMPLATE
            "genkey" => {
                let mech = self.mech(w.get(3).ok_or("genkey S NAME MECH")?)?;
                let mut t = self.tmpl(&w[4..])?;
                let rv = ck!(
                    m,
                    C_GenerateKey,
                    s,
                    &mech.m as *const _ as *mut _,
                    t.attrs.as_mut_ptr(),
                    t.attrs.len() as CK_ULONG,
                    &mut h
                );
                (&w[2], rv)
            }
            // copy S FROM NAME TEMPLATE
            "copy" => {
                let from = self.obj(&w[2])?;
                let mut t = self.tmpl(&w[4..])?;
                let rv = ck!(
                    m,
                    C_CopyObject,
                    s,
                    from,
                    t.attrs.as_mut_ptr(),
                    t.attrs.len() as CK_ULONG,
                    &mut h
                );
                (&w[3], rv)
            }
            // unwrap S MECH KEY DATA NAME TEMPLATE
            _ => {
                let mech = self.mech(&w[2])?;
                let k = self.obj(&w[3])?;
                let mut data = self.val(&w[4])?;
                let mut t = self.tmpl(&w[6..])?;
                let rv = ck!(
                    m,
                    C_UnwrapKey,
                    s,
                    &mech.m as *const _ as *mut _,
                    k,
                    data.as_mut_ptr(),
                    data.len() as CK_ULONG,
                    t.attrs.as_mut_ptr(),
                    t.attrs.len() as CK_ULONG,
                    &mut h
                );
                (&w[5], rv)
            }
        };
        if rv == CKR_OK {
            self.me.objects.insert(name.clone(), h);
        }
        Ok(rv_name(rv))
    }

    /// getattr S OBJ ENTRY...: one C_GetAttributeValue call over a mixed template. An
    /// entry is `CKA_X:null` (pValue NULL), `CKA_X:N` (an N-byte buffer), `CKA_X`
    /// (BIG bytes); a trailing `!` prints the value returned.
    fn getattr(&self, w: &[String]) -> Result<String, String> {
        let s = self.sess(&w[1])?;
        let h = self.obj(&w[2])?;
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        let mut attrs = Vec::new();
        let mut show = Vec::new();
        for e in &w[3..] {
            let (e, sh) = match e.strip_suffix('!') {
                Some(x) => (x, true),
                None => (e.as_str(), false),
            };
            let (t, size) = match e.split_once(':') {
                Some((t, "null")) => (t, None),
                Some((t, n)) => (t, Some(n.parse::<usize>().map_err(|_| e.to_string())?)),
                None => (e, Some(1024)),
            };
            bufs.push(vec![0u8; size.unwrap_or(0).max(1)]);
            attrs.push((constant(t)?, size));
            show.push(sh);
        }
        let mut tmpl: Vec<CK_ATTRIBUTE> = attrs
            .iter()
            .zip(bufs.iter_mut())
            .map(|((t, size), b)| CK_ATTRIBUTE {
                type_: *t,
                pValue: if size.is_some() {
                    b.as_mut_ptr().cast()
                } else {
                    std::ptr::null_mut()
                },
                ulValueLen: size.unwrap_or(0) as CK_ULONG,
            })
            .collect();
        let rv = ck!(
            self.m,
            C_GetAttributeValue,
            s,
            h,
            tmpl.as_mut_ptr(),
            tmpl.len() as CK_ULONG
        );
        let mut obs = rv_name(rv);
        for (i, a) in tmpl.iter().enumerate() {
            if a.ulValueLen == CK_UNAVAILABLE_INFORMATION {
                obs.push_str(" unavail");
            } else {
                write!(obs, " {}", a.ulValueLen).unwrap();
                if show[i] && !a.pValue.is_null() && a.ulValueLen as usize <= bufs[i].len() {
                    write!(obs, "={}", hexs(&bufs[i][..a.ulValueLen as usize])).unwrap();
                }
            }
        }
        Ok(obs)
    }

    /// find S TEMPLATE... [max=N]: C_FindObjectsInit, C_FindObjects with at most N handles
    /// per call until it returns none, C_FindObjectsFinal; `-> NAME` binds the first one.
    fn find(&mut self, w: &[String], var: &Option<String>) -> Result<String, String> {
        let m = self.m;
        let s = self.sess(&w[1])?;
        let o = opts(w);
        let max: usize = o.get("max").map(|x| x.parse().unwrap_or(1)).unwrap_or(8);
        let tw: Vec<String> = w[2..]
            .iter()
            .filter(|x| !x.starts_with("max="))
            .cloned()
            .collect();
        let mut t = self.tmpl(&tw)?;
        let rv = ck!(
            m,
            C_FindObjectsInit,
            s,
            t.attrs.as_mut_ptr(),
            t.attrs.len() as CK_ULONG
        );
        if rv != CKR_OK {
            return Ok(format!("init={}", rv_name(rv)));
        }
        let mut all = Vec::new();
        let mut counts = Vec::new();
        let mut last = CKR_OK;
        for _ in 0..64 {
            let mut hs = vec![0; max];
            let mut n: CK_ULONG = 0;
            last = ck!(
                m,
                C_FindObjects,
                s,
                hs.as_mut_ptr(),
                max as CK_ULONG,
                &mut n
            );
            if last != CKR_OK {
                break;
            }
            counts.push(n);
            all.extend_from_slice(&hs[..n as usize]);
            if n == 0 {
                break;
            }
        }
        let fin = ck!(m, C_FindObjectsFinal, s);
        let distinct = all.iter().collect::<std::collections::HashSet<_>>().len();
        if let (Some(v), Some(h)) = (var, all.first()) {
            self.me.objects.insert(v.clone(), *h);
        }
        Ok(format!(
            "{} counts=[{}] found={}{} final={}",
            rv_name(last),
            counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(","),
            all.len(),
            if distinct == all.len() {
                ""
            } else {
                " duplicates"
            },
            rv_name(fin)
        ))
    }

    /// init OP S MECH [KEY]: C_{Encrypt,Decrypt,Sign,Verify,Digest}Init.
    fn op_init(&mut self, w: &[String]) -> Result<String, String> {
        let m = self.m;
        let op = w.get(1).ok_or("init OP")?.clone();
        let sname = w.get(2).ok_or("init OP S")?.clone();
        let s = self.sess(&sname)?;
        let mtext = w.get(3).ok_or("init OP S MECH")?.clone();
        let mech = self.mech(&mtext)?;
        let key = w.get(4).cloned();
        let k = match &key {
            Some(k) => self.obj(k)?,
            None => CK_INVALID_HANDLE,
        };
        let pm = &mech.m as *const _ as *mut _;
        let pm = if mtext == "NULL" {
            std::ptr::null_mut()
        } else {
            pm
        };
        let rv = match op.as_str() {
            "encrypt" => ck!(m, C_EncryptInit, s, pm, k),
            "decrypt" => ck!(m, C_DecryptInit, s, pm, k),
            "sign" => ck!(m, C_SignInit, s, pm, k),
            "verify" => ck!(m, C_VerifyInit, s, pm, k),
            "digest" => ck!(m, C_DigestInit, s, pm),
            x => return Err(format!("init {x}")),
        };
        self.me.inits.insert((sname, op), (mtext, key));
        self.me.epoch += 1;
        Ok(rv_name(rv))
    }

    /// single|update|final OP S [data=V] [sig=V] [out=..] [show] [-> VAR].
    fn op_call(&mut self, w: &[String], var: &Option<String>) -> Result<String, String> {
        let m = self.m;
        let kind = w[0].as_str();
        let op = w.get(1).ok_or("OP")?.as_str();
        let s = self.sess(w.get(2).ok_or("S")?)?;
        let o = opts(w);
        let show = w.iter().any(|x| x == "show");
        let mut data = o.get("data").map(|v| self.val(v)).transpose()?;
        let mut sig = o.get("sig").map(|v| self.val(v)).transpose()?;
        let dp = |d: &mut Option<Vec<u8>>| -> (*mut u8, CK_ULONG) {
            match d {
                Some(v) if !v.is_empty() => (v.as_mut_ptr(), v.len() as CK_ULONG),
                Some(_) => (std::ptr::NonNull::dangling().as_ptr(), 0),
                None => (std::ptr::null_mut(), 0),
            }
        };
        let (d, dl) = dp(&mut data);
        let (sg, sl) = dp(&mut sig);
        let out = out_spec(&o)?;
        let (obs, bytes) = match (kind, op) {
            ("single", "verify") => (rv_name(ck!(m, C_Verify, s, d, dl, sg, sl)), None),
            ("update", "sign") => (rv_name(ck!(m, C_SignUpdate, s, d, dl)), None),
            ("update", "verify") => (rv_name(ck!(m, C_VerifyUpdate, s, d, dl)), None),
            ("update", "digest") => (rv_name(ck!(m, C_DigestUpdate, s, d, dl)), None),
            ("final", "verify") => (rv_name(ck!(m, C_VerifyFinal, s, sg, sl)), None),
            ("single", "encrypt") => with_out(out, |p, l| ck!(m, C_Encrypt, s, d, dl, p, l)),
            ("single", "decrypt") => with_out(out, |p, l| ck!(m, C_Decrypt, s, d, dl, p, l)),
            ("single", "sign") => with_out(out, |p, l| ck!(m, C_Sign, s, d, dl, p, l)),
            ("single", "digest") => with_out(out, |p, l| ck!(m, C_Digest, s, d, dl, p, l)),
            ("update", "encrypt") => with_out(out, |p, l| ck!(m, C_EncryptUpdate, s, d, dl, p, l)),
            ("update", "decrypt") => with_out(out, |p, l| ck!(m, C_DecryptUpdate, s, d, dl, p, l)),
            ("final", "encrypt") => with_out(out, |p, l| ck!(m, C_EncryptFinal, s, p, l)),
            ("final", "decrypt") => with_out(out, |p, l| ck!(m, C_DecryptFinal, s, p, l)),
            ("final", "sign") => with_out(out, |p, l| ck!(m, C_SignFinal, s, p, l)),
            ("final", "digest") => with_out(out, |p, l| ck!(m, C_DigestFinal, s, p, l)),
            x => return Err(format!("no call {x:?}")),
        };
        let mut obs = obs;
        if let Some(b) = bytes {
            if show {
                write!(obs, " ={}", hexs(&b)).unwrap();
            }
            if let Some(v) = var {
                // Within one operation, update and final append, so a multi-part output
                // accumulates in one variable.
                let epoch = self.me.epoch;
                let fresh = kind == "single" || self.me.var_epoch.get(v) != Some(&epoch);
                let e = self.me.vars.entry(v.clone()).or_default();
                if fresh {
                    e.clear();
                }
                e.extend(b);
                self.me.var_epoch.insert(v.clone(), epoch);
            }
        }
        Ok(obs)
    }

    /// active OP S: whether S still has an OP operation, probed by re-initialising it with
    /// the last init's mechanism and key: CKR_OPERATION_ACTIVE means it is; CKR_OK means it
    /// was not (the probe's own operation is then ended by a failing or complete call).
    fn active(&mut self, op: &str, sname: &str) -> Result<String, String> {
        let m = self.m;
        let s = self.sess(sname)?;
        let (mtext, key) = self
            .me
            .inits
            .get(&(sname.to_string(), op.to_string()))
            .cloned()
            .ok_or_else(|| format!("no init of {op} on {sname}"))?;
        let mech = self.mech(&mtext)?;
        let k = match &key {
            Some(k) => self.obj(k)?,
            None => CK_INVALID_HANDLE,
        };
        let pm = &mech.m as *const _ as *mut _;
        let rv = match op {
            "encrypt" => ck!(m, C_EncryptInit, s, pm, k),
            "decrypt" => ck!(m, C_DecryptInit, s, pm, k),
            "sign" => ck!(m, C_SignInit, s, pm, k),
            "verify" => ck!(m, C_VerifyInit, s, pm, k),
            "digest" => ck!(m, C_DigestInit, s, pm),
            x => return Err(format!("active {x}")),
        };
        if rv == CKR_OPERATION_ACTIVE {
            return Ok("active".into());
        }
        if rv != CKR_OK {
            return Ok(format!("probe={}", rv_name(rv)));
        }
        if end_op(m, s, op) == CKR_BUFFER_TOO_SMALL {
            return Err("probe could not end its operation".into());
        }
        Ok("idle".into())
    }
}

/// Ends an OP operation on `s` with a single-part call over 32 zero bytes into a big
/// buffer: any outcome but CKR_BUFFER_TOO_SMALL ends it (and there is no such outcome).
fn end_op(m: &Module, s: CK_SESSION_HANDLE, op: &str) -> CK_RV {
    let mut d = vec![0u8; 32];
    let mut out = vec![0u8; BIG];
    let mut l = BIG as CK_ULONG;
    let (dp, dl, op_) = (d.as_mut_ptr(), 32, out.as_mut_ptr());
    match op {
        "encrypt" => ck!(m, C_Encrypt, s, dp, dl, op_, &mut l),
        "decrypt" => ck!(m, C_Decrypt, s, dp, dl, op_, &mut l),
        "sign" => ck!(m, C_Sign, s, dp, dl, op_, &mut l),
        "verify" => ck!(m, C_Verify, s, dp, dl, op_, 1),
        _ => ck!(m, C_Digest, s, dp, dl, op_, &mut l),
    }
}

/// Reads one attribute with the two-call convention.
fn common_get(
    m: &Module,
    s: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
    t: CK_ATTRIBUTE_TYPE,
) -> Result<Vec<u8>, CK_RV> {
    let mut a = CK_ATTRIBUTE {
        type_: t,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    };
    let rv = ck!(m, C_GetAttributeValue, s, h, &mut a, 1);
    if rv != CKR_OK {
        return Err(rv);
    }
    let mut buf = vec![0u8; (a.ulValueLen as usize).max(1)];
    a.pValue = buf.as_mut_ptr().cast();
    let rv = ck!(m, C_GetAttributeValue, s, h, &mut a, 1);
    if rv != CKR_OK {
        return Err(rv);
    }
    buf.truncate(a.ulValueLen as usize);
    Ok(buf)
}

// ---------------------------------------------------------------------------------------
// Fresh tokens.

/// Initialises a fresh token labelled `label` (SO PIN, then the user PIN) on `slot`.
fn init_token(m: &Module, slot: CK_SLOT_ID, label: &str) -> CK_SLOT_ID {
    let mut lab = [b' '; 32];
    lab[..label.len()].copy_from_slice(label.as_bytes());
    let mut so = SO_PIN.as_bytes().to_vec();
    let rv = ck!(
        m,
        C_InitToken,
        slot,
        so.as_mut_ptr(),
        so.len() as CK_ULONG,
        lab.as_mut_ptr()
    );
    assert_eq!(rv, CKR_OK, "{}: C_InitToken", m.name);
    let slot = find_slot(m, label);
    let mut h = 0;
    let rv = ck!(
        m,
        C_OpenSession,
        slot,
        CKF_SERIAL_SESSION | CKF_RW_SESSION,
        std::ptr::null_mut(),
        None,
        &mut h
    );
    assert_eq!(rv, CKR_OK, "{}: C_OpenSession", m.name);
    let rv = ck!(m, C_Login, h, CKU_SO, so.as_mut_ptr(), so.len() as CK_ULONG);
    assert_eq!(rv, CKR_OK, "{}: SO login", m.name);
    let mut up = USER_PIN.as_bytes().to_vec();
    let rv = ck!(m, C_InitPIN, h, up.as_mut_ptr(), up.len() as CK_ULONG);
    assert_eq!(rv, CKR_OK, "{}: C_InitPIN", m.name);
    assert_eq!(ck!(m, C_Logout, h), CKR_OK);
    assert_eq!(ck!(m, C_CloseSession, h), CKR_OK);
    slot
}

fn slots(m: &Module) -> Vec<CK_SLOT_ID> {
    let mut n: CK_ULONG = 0;
    assert_eq!(
        ck!(m, C_GetSlotList, CK_TRUE, std::ptr::null_mut(), &mut n),
        CKR_OK
    );
    let mut v = vec![0; n as usize];
    assert_eq!(
        ck!(m, C_GetSlotList, CK_TRUE, v.as_mut_ptr(), &mut n),
        CKR_OK
    );
    v.truncate(n as usize);
    v
}

fn token_info(m: &Module, slot: CK_SLOT_ID) -> CK_TOKEN_INFO {
    let mut i: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(ck!(m, C_GetTokenInfo, slot, &mut i), CKR_OK);
    i
}

fn find_slot(m: &Module, label: &str) -> CK_SLOT_ID {
    let mut lab = [b' '; 32];
    lab[..label.len()].copy_from_slice(label.as_bytes());
    slots(m)
        .into_iter()
        .find(|s| {
            let i = token_info(m, *s);
            i.flags & CKF_TOKEN_INITIALIZED != 0 && i.label == lab
        })
        .unwrap_or_else(|| panic!("{}: no token {label}", m.name))
}

fn uninit_slot(m: &Module) -> CK_SLOT_ID {
    slots(m)
        .into_iter()
        .find(|s| token_info(m, *s).flags & CKF_TOKEN_INITIALIZED == 0)
        .unwrap_or_else(|| panic!("{}: no uninitialized token", m.name))
}

/// Values both modules start every scenario with: one RSA key and one self-signed EC
/// certificate made by the openssl CLI (so deterministic operations compare by bytes).
fn preset_values(dir: &Path) -> HashMap<String, Vec<u8>> {
    let k = common::openssl_rsa_key(2048);
    let mut v = HashMap::new();
    for (n, b) in [
        ("rsa_n", &k.n),
        ("rsa_e", &k.e),
        ("rsa_d", &k.d),
        ("rsa_p", &k.p),
        ("rsa_q", &k.q),
        ("rsa_dp", &k.dp),
        ("rsa_dq", &k.dq),
        ("rsa_qinv", &k.qinv),
    ] {
        v.insert(n.to_string(), b.clone());
    }
    let key = dir.join("cert-key.pem");
    let cert = dir.join("cert.der");
    common::openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            key.to_str().unwrap(),
        ],
        &[],
    );
    common::openssl(
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/CN=diff",
            "-days",
            "30",
            "-outform",
            "DER",
            "-out",
            cert.to_str().unwrap(),
        ],
        &[],
    );
    v.insert("cert".into(), std::fs::read(&cert).unwrap());
    // The certificate's EC key: private scalar and public point (SEC1 ECPrivateKey).
    let sec1 = common::openssl(
        &["ec", "-in", key.to_str().unwrap(), "-outform", "DER"],
        &[],
    );
    let (_, seq, _) = common::der_read(&sec1);
    let (_, _version, rest) = common::der_read(seq);
    let (_, d, rest) = common::der_read(rest);
    let (_, _params, rest) = common::der_read(rest);
    let (_, pubkey, _) = common::der_read(rest);
    let (_, bits, _) = common::der_read(pubkey);
    v.insert("ec_d".into(), d.to_vec());
    v.insert("ec_point".into(), bits[1..].to_vec());
    // The certificate's subject, DER (openssl's view, independent of both modules).
    let subj = common::openssl(
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            cert.to_str().unwrap(),
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&subj).contains("CN=diff"));
    v
}

// ---------------------------------------------------------------------------------------
// The test.

#[derive(Default)]
struct Tally {
    agree: usize,
    one_sided: usize,
    softhsm_bug: usize,
    deliberate: usize,
}

#[test]
fn differential() {
    if !Path::new(common::SOFTHSM_MODULE).exists() {
        // Without softhsm2 there is no reference; CI (scripts/test.sh) installs it and sets
        // P11KMS_REQUIRE_SOFTHSM so that its absence fails there.
        assert!(
            std::env::var_os("P11KMS_REQUIRE_SOFTHSM").is_none(),
            "{} is not installed",
            common::SOFTHSM_MODULE
        );
        println!("skipped: {} not installed", common::SOFTHSM_MODULE);
        return;
    }
    let scenarios = parse_corpus(CORPUS).unwrap_or_else(|e| panic!("corpus: {e}"));
    let only = std::env::var("P11KMS_DIFF_ONLY").ok();

    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("XDG_DATA_HOME", dir.path().join("xdg-data"));
    std::env::set_var("XDG_CONFIG_HOME", dir.path().join("xdg-config"));
    let specs: Vec<common::TokenSpec> = (0..scenarios.len())
        .map(|i| common::tok(Box::leak(format!("d{i:03}").into_boxed_str())))
        .collect();
    std::env::set_var(
        "P11KMS_CONF",
        common::write_p11kms_config(dir.path(), &specs),
    );
    std::env::set_var("SOFTHSM2_CONF", common::write_softhsm_config(dir.path()));

    let mods = [
        Module::load("p11kms", &common::p11kms_path()),
        Module::load("softhsm", Path::new(common::SOFTHSM_MODULE)),
    ];
    for m in &mods {
        let mut args: CK_C_INITIALIZE_ARGS = unsafe { std::mem::zeroed() };
        args.flags = CKF_OS_LOCKING_OK;
        let rv = ck!(
            m,
            C_Initialize,
            (&mut args as *mut CK_C_INITIALIZE_ARGS).cast()
        );
        assert_eq!(rv, CKR_OK, "{}: C_Initialize", m.name);
    }

    let presets = preset_values(dir.path());
    let mut failures = Vec::new();
    let mut table = String::new();
    let mut total = Tally::default();
    let mut differ_lines = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        if only.as_deref().is_some_and(|o| !sc.name.contains(o)) {
            continue;
        }
        let label = format!("d{i:03}");
        let mut st: [State; 2] = Default::default();
        for s in st.iter_mut() {
            s.vars = presets.clone();
        }
        // p11kms: the scenario's own configured slot; SoftHSM: its spare uninitialized one.
        st[0].slot = init_token(&mods[0], i as CK_SLOT_ID, &label);
        st[1].slot = init_token(&mods[1], uninit_slot(&mods[1]), &label);
        let mut tally = Tally::default();
        println!("--- scenario {}", sc.name);
        for step in &sc.steps {
            // `[p11kms] …` / `[softhsm] …`: a one-sided step (cross-verification with a
            // mechanism only one module offers); only its expectations are checked.
            let side = match step.words.first().map(String::as_str) {
                Some("[p11kms]") => Some(0),
                Some("[softhsm]") => Some(1),
                _ => None,
            };
            let words = if side.is_some() {
                &step.words[1..]
            } else {
                &step.words[..]
            };
            let mut obs = [String::new(), String::new()];
            for k in 0..2 {
                if side.is_some_and(|s| s != k) {
                    continue;
                }
                let (a, b) = st.split_at_mut(1);
                let (me, other) = if k == 0 {
                    (&mut a[0], &b[0])
                } else {
                    (&mut b[0], &a[0])
                };
                let mut ctx = Ctx {
                    m: &mods[k],
                    me,
                    other,
                };
                obs[k] = ctx.exec(words).unwrap_or_else(|e| format!("error: {e}"));
            }
            let at = format!("{}:{} `{}`", sc.name, step.line, step.text);
            for (k, o) in obs.iter().enumerate() {
                if o.starts_with("error: ") {
                    failures.push(format!("{at}: harness {} on {}", o, mods[k].name));
                }
            }
            if let Some(k) = side {
                if step.note.is_some() {
                    failures.push(format!("{at}: a one-sided step cannot carry a difference"));
                }
                let toks: Vec<&str> = obs[k].split_whitespace().collect();
                for tok in &step.expect {
                    if !toks.contains(&tok.as_str()) {
                        failures.push(format!(
                            "{at}: {} gave `{}`, expected {tok}",
                            mods[k].name, obs[k]
                        ));
                    }
                }
                tally.one_sided += 1;
                println!("one-sided {at}: {} `{}`", mods[k].name, obs[k]);
                continue;
            }
            let agree = obs[0] == obs[1];
            // Expected tokens: always of p11kms; of SoftHSM too unless the step differs
            // by annotation.
            for tok in &step.expect {
                let toks0: Vec<&str> = obs[0].split_whitespace().collect();
                if !toks0.contains(&tok.as_str()) {
                    failures.push(format!("{at}: p11kms gave `{}`, expected {tok}", obs[0]));
                }
                let toks1: Vec<&str> = obs[1].split_whitespace().collect();
                if step.note.is_none() && !toks1.contains(&tok.as_str()) {
                    failures.push(format!("{at}: softhsm gave `{}`, expected {tok}", obs[1]));
                }
            }
            match (&step.note, agree) {
                (None, true) => {
                    tally.agree += 1;
                    println!("agree   {at}: {}", obs[0]);
                }
                (None, false) => {
                    println!("DIFFER  {at}: p11kms `{}` softhsm `{}`", obs[0], obs[1]);
                    failures.push(format!(
                        "{at}: unannotated difference: p11kms `{}` softhsm `{}`",
                        obs[0], obs[1]
                    ));
                }
                (Some((class, _)), true) => {
                    println!("STALE   {at}: both `{}`", obs[0]);
                    failures.push(format!(
                        "{at}: annotated {class} but both give `{}`",
                        obs[0]
                    ));
                }
                (Some((class, reason)), false) => {
                    if class == "softhsm-bug" {
                        tally.softhsm_bug += 1;
                    } else {
                        tally.deliberate += 1;
                    }
                    println!(
                        "differ  {at}: p11kms `{}` softhsm `{}` ({class})",
                        obs[0], obs[1]
                    );
                    differ_lines.push(format!(
                        "| {}:{} | {class} | {reason} |",
                        sc.name, step.line
                    ));
                }
            }
        }
        for (k, m) in mods.iter().enumerate() {
            ck!(m, C_CloseAllSessions, st[k].slot);
        }
        writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            sc.name,
            sc.steps.len(),
            tally.agree,
            tally.one_sided,
            tally.softhsm_bug,
            tally.deliberate
        )
        .unwrap();
        total.agree += tally.agree;
        total.one_sided += tally.one_sided;
        total.softhsm_bug += tally.softhsm_bug;
        total.deliberate += tally.deliberate;
    }
    for m in &mods {
        ck!(m, C_Finalize, std::ptr::null_mut());
    }
    let steps: usize = scenarios.iter().map(|s| s.steps.len()).sum();
    println!(
        "\n| scenario | steps | agree | one-sided | differ: softhsm-bug | differ: p11kms-deliberate |"
    );
    println!("|---|---|---|---|---|---|");
    print!("{table}");
    println!(
        "| **total ({} scenarios)** | {steps} | {} | {} | {} | {} |",
        scenarios.len(),
        total.agree,
        total.one_sided,
        total.softhsm_bug,
        total.deliberate
    );
    println!("\n| step | class | reason |\n|---|---|---|");
    for l in &differ_lines {
        println!("{l}");
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
