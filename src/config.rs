//! Configuration: TOML, found in the order DESIGN.md gives (`P11KMS_CONF`, the
//! C_Initialize `pReserved` string, `$XDG_CONFIG_HOME/p11kms/pkcs11.conf`,
//! `/etc/p11kms/pkcs11.conf`); with none, one local token under `$XDG_DATA_HOME/p11kms/`.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Log verbosity.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    #[default]
    Warn,
    Info,
    Debug,
    Trace,
}

/// Which backend a token uses.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Local,
    Aws,
    Gcp,
}

impl BackendKind {
    /// The name as the configuration spells it (`backend = "aws"`), which is also the
    /// token's CK_TOKEN_INFO.model and part of its slot description.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Aws => "aws",
            BackendKind::Gcp => "gcp",
        }
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub log_level: LogLevel,
    pub log_file: Option<PathBuf>,
    #[serde(default)]
    pub token: Vec<TokenConfig>,
    /// Where the configuration came from (None: built-in default).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// One `[[token]]` table: one slot.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub label: String,
    #[serde(default = "default_backend")]
    pub backend: BackendKind,
    /// SQLite token store; default `$XDG_DATA_HOME/p11kms/<label>.sqlite`.
    pub store: Option<PathBuf>,
    /// Wrong PIN attempts before a role locks (local backend). Default 10.
    pub max_pin_attempts: Option<u32>,
    // Cloud backend fields, accepted now so configuration files stay valid when the
    // backends land.
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    pub kek: Option<String>,
    pub alias_prefix: Option<String>,
    /// Cloud KMS key ring, `projects/P/locations/L/keyRings/R` (gcp).
    pub key_ring: Option<String>,
    /// Cloud KMS credentials: "adc" (default), "anonymous" (emulators), or the path of a
    /// service-account or authorized-user JSON file (gcp).
    pub credentials: Option<String>,
    /// Show SOFTWARE-protection Cloud KMS keys too (gcp). Default true.
    pub show_software: Option<bool>,
    /// Where data-key bytes come from: "os" (default) or "hsm" (Cloud KMS
    /// GenerateRandomBytes) (gcp).
    pub random: Option<String>,
    /// Protection level of Cloud KMS keys C_GenerateKeyPair creates: "hsm" (default) or
    /// "software" (gcp).
    pub protection_level: Option<String>,
    /// Seconds a cached KMS key listing stays current (aws, gcp). Default 300.
    pub refresh_secs: Option<u64>,
    /// Pending window of ScheduleKeyDeletion for destroyed KMS keys, 7..=30 (aws).
    /// Default 30.
    pub deletion_window_days: Option<u32>,
    /// Upper bound in seconds of one KMS call, retries included (aws, gcp). Default 10.
    pub timeout_secs: Option<u64>,
}

/// Default of [`TokenConfig::refresh_secs`].
pub const DEFAULT_REFRESH_SECS: u64 = 300;
/// Default of [`TokenConfig::deletion_window_days`].
pub const DEFAULT_DELETION_WINDOW_DAYS: u32 = 30;
/// Default of [`TokenConfig::timeout_secs`].
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

fn default_backend() -> BackendKind {
    BackendKind::Local
}

/// Label of the built-in token when there is no configuration.
pub const DEFAULT_LABEL: &str = "p11kms";

impl TokenConfig {
    fn default_local() -> TokenConfig {
        TokenConfig {
            label: DEFAULT_LABEL.into(),
            backend: BackendKind::Local,
            store: None,
            max_pin_attempts: None,
            region: None,
            endpoint: None,
            profile: None,
            kek: None,
            alias_prefix: None,
            key_ring: None,
            credentials: None,
            show_software: None,
            random: None,
            protection_level: None,
            refresh_secs: None,
            deletion_window_days: None,
            timeout_secs: None,
        }
    }

    /// [`TokenConfig::refresh_secs`] or its default.
    pub fn refresh_secs(&self) -> u64 {
        self.refresh_secs.unwrap_or(DEFAULT_REFRESH_SECS)
    }

    /// [`TokenConfig::deletion_window_days`] or its default.
    pub fn deletion_window_days(&self) -> u32 {
        self.deletion_window_days
            .unwrap_or(DEFAULT_DELETION_WINDOW_DAYS)
    }

    /// [`TokenConfig::timeout_secs`] or its default.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }

    /// The token store path, resolved.
    pub fn store_path(&self) -> PathBuf {
        match &self.store {
            Some(p) => p.clone(),
            None => data_home()
                .join("p11kms")
                .join(format!("{}.sqlite", self.label)),
        }
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> PathBuf {
    env_path("HOME").unwrap_or_else(|| PathBuf::from("/"))
}

fn data_home() -> PathBuf {
    env_path("XDG_DATA_HOME").unwrap_or_else(|| home().join(".local/share"))
}

fn config_home() -> PathBuf {
    env_path("XDG_CONFIG_HOME").unwrap_or_else(|| home().join(".config"))
}

/// Find and load the configuration. `reserved` is the C_Initialize pReserved string.
/// The error is a complete human message naming the file, line and field.
pub fn load(reserved: Option<&str>) -> Result<Config, String> {
    if let Some(p) = env_path("P11KMS_CONF") {
        return load_file(&p);
    }
    if let Some(r) = reserved.map(str::trim).filter(|r| !r.is_empty()) {
        // pReserved is a path, or "configfile=<path>". Other strings (NSS passes its
        // module parameters there) are not ours and are ignored.
        match r.strip_prefix("configfile=") {
            Some(p) => return load_file(Path::new(p)),
            None if Path::new(r).is_file() => return load_file(Path::new(r)),
            None => {}
        }
    }
    for p in [
        config_home().join("p11kms/pkcs11.conf"),
        PathBuf::from("/etc/p11kms/pkcs11.conf"),
    ] {
        if p.exists() {
            return load_file(&p);
        }
    }
    Ok(Config {
        log_level: LogLevel::Warn,
        log_file: None,
        token: vec![TokenConfig::default_local()],
        source: None,
    })
}

/// Load one file.
pub fn load_file(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "p11kms: cannot read configuration file {}: {e}",
            path.display()
        )
    })?;
    parse(&text, path)
}

/// Parse configuration text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, String> {
    let mut cfg: Config = toml::from_str(text).map_err(|e| describe(text, path, &e))?;
    cfg.source = Some(path.to_path_buf());
    if cfg.token.is_empty() {
        cfg.token.push(TokenConfig::default_local());
    }
    validate(&cfg, text, path)?;
    Ok(cfg)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn describe(text: &str, path: &Path, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let line_text = text.lines().nth(line - 1).unwrap_or("");
            // The field is the key on that line (for a bad value) or the token itself.
            let field = line_text
                .split_once('=')
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| text.get(span.clone()).unwrap_or("").trim());
            format!(
                "p11kms: bad configuration file {}: line {line}: field `{field}`: {msg}",
                path.display()
            )
        }
        None => format!("p11kms: bad configuration file {}: {msg}", path.display()),
    }
}

fn validate(cfg: &Config, text: &str, path: &Path) -> Result<(), String> {
    let find_line = |needle: &str| {
        text.find(needle)
            .map(|o| line_of(text, o))
            .map(|l| format!("line {l}: "))
            .unwrap_or_default()
    };
    let mut seen = std::collections::HashSet::new();
    let mut stores = std::collections::HashMap::new();
    for t in &cfg.token {
        let bad = |field: &str, why: &str| {
            format!(
                "p11kms: bad configuration file {}: {}field `{field}`: {why}",
                path.display(),
                find_line(&format!("\"{}\"", t.label))
            )
        };
        if t.label.is_empty() || t.label.len() > 32 {
            return Err(bad("label", "must be 1 to 32 bytes"));
        }
        if !seen.insert(t.label.clone()) {
            return Err(bad("label", "two tokens have this label"));
        }
        if let Some(p) = &t.store {
            if !p.is_absolute() {
                return Err(bad(
                    "store",
                    "must be an absolute path: a relative one (also `~/...` or `$HOME/...`, \
                     which are not expanded) is a different file in every working directory",
                ));
            }
        }
        // One store per token: two tokens on one file are one token in two slots, and
        // C_InitToken on one would wipe the other's keys.
        if let Some(other) = stores.insert(same_file_key(&t.store_path()), t.label.clone()) {
            return Err(bad(
                "store",
                &format!(
                    "token \"{other}\" uses this store too: each token needs its own \
                     (initializing one would wipe the other)"
                ),
            ));
        }
        // A field's own line when it is there, else the token's label line.
        #[cfg_attr(not(kms), allow(unused_variables))]
        let bad_field = |field: &str, why: &str| {
            let at = text
                .lines()
                .enumerate()
                .find(|(_, l)| l.split_once('=').is_some_and(|(k, _)| k.trim() == field))
                .map(|(i, _)| format!("line {}: ", i + 1));
            match at {
                Some(at) => format!(
                    "p11kms: bad configuration file {}: {at}field `{field}`: {why}",
                    path.display()
                ),
                None => bad(field, why),
            }
        };
        match t.backend {
            BackendKind::Local => {}
            #[cfg(feature = "aws")]
            BackendKind::Aws => {
                let need = |field: &str, v: &Option<String>| match v {
                    Some(v) if !v.trim().is_empty() => Ok(()),
                    _ => Err(bad(field, "required for backend = \"aws\"")),
                };
                need("region", &t.region)?;
                need("kek", &t.kek)?;
                need("alias_prefix", &t.alias_prefix)?;
                let prefix = t.alias_prefix.as_deref().unwrap_or("");
                if !prefix.starts_with("alias/") || prefix == "alias/" {
                    return Err(bad_field(
                        "alias_prefix",
                        "must start with \"alias/\" and name more than \"alias/\"",
                    ));
                }
                if prefix.starts_with("alias/aws/") {
                    return Err(bad_field(
                        "alias_prefix",
                        "alias/aws/ is reserved for AWS managed keys",
                    ));
                }
                if let Some(d) = t.deletion_window_days {
                    if !(7..=30).contains(&d) {
                        return Err(bad_field("deletion_window_days", "must be 7 to 30"));
                    }
                }
                check_common(t, &bad_field)?;
            }
            #[cfg(not(feature = "aws"))]
            BackendKind::Aws => {
                return Err(bad(
                    "backend",
                    "the \"aws\" backend is not built into this module (Cargo feature `aws`)",
                ));
            }
            #[cfg(feature = "gcp")]
            BackendKind::Gcp => {
                match &t.key_ring {
                    Some(r) if !r.trim().is_empty() => {
                        if !is_key_ring_name(r) {
                            return Err(bad_field(
                                "key_ring",
                                "must be projects/PROJECT/locations/LOCATION/keyRings/RING",
                            ));
                        }
                    }
                    _ => return Err(bad("key_ring", "required for backend = \"gcp\"")),
                }
                match t.kek.as_deref().map(str::trim) {
                    Some(k) if !k.is_empty() => {
                        let ok = if k.contains('/') {
                            k.strip_prefix(t.key_ring.as_deref().unwrap_or(""))
                                .and_then(|r| r.strip_prefix("/cryptoKeys/"))
                                .is_some_and(is_resource_id)
                        } else {
                            is_resource_id(k)
                        };
                        if !ok {
                            return Err(bad_field(
                                "kek",
                                "must be a CryptoKey id of the key ring, or its full name \
                                 KEY_RING/cryptoKeys/ID",
                            ));
                        }
                    }
                    _ => return Err(bad("kek", "required for backend = \"gcp\"")),
                }
                if let Some(c) = &t.credentials {
                    if c != "adc" && c != "anonymous" && !Path::new(c).is_file() {
                        return Err(bad_field(
                            "credentials",
                            "must be \"adc\", \"anonymous\" or the path of a JSON key file",
                        ));
                    }
                }
                if t.random.as_deref().is_some_and(|r| r != "os" && r != "hsm") {
                    return Err(bad_field("random", "must be \"os\" or \"hsm\""));
                }
                if t.protection_level
                    .as_deref()
                    .is_some_and(|r| r != "hsm" && r != "software")
                {
                    return Err(bad_field(
                        "protection_level",
                        "must be \"hsm\" or \"software\"",
                    ));
                }
                check_common(t, &bad_field)?;
            }
            #[cfg(not(feature = "gcp"))]
            BackendKind::Gcp => {
                return Err(bad(
                    "backend",
                    "the \"gcp\" backend is not built into this module (Cargo feature `gcp`)",
                ));
            }
        }
        if let Some(n) = t.max_pin_attempts {
            if n == 0 || n > 1000 {
                return Err(bad("max_pin_attempts", "must be 1 to 1000"));
            }
        }
    }
    Ok(())
}

/// Checks shared by the cloud backends: timeout and endpoint.
#[cfg(kms)]
/// A path as the file it names, for telling two spellings of one store apart: `.` and
/// `..` resolved, and the directory's symbolic links when it exists already.
fn same_file_key(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    match (out.parent(), out.file_name()) {
        (Some(dir), Some(name)) => match std::fs::canonicalize(dir) {
            Ok(d) => d.join(name),
            Err(_) => out,
        },
        _ => out,
    }
}

fn check_common(t: &TokenConfig, bad_field: &dyn Fn(&str, &str) -> String) -> Result<(), String> {
    if t.timeout_secs == Some(0) || t.timeout_secs.is_some_and(|s| s > 600) {
        return Err(bad_field("timeout_secs", "must be 1 to 600"));
    }
    if let Some(e) = &t.endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(bad_field("endpoint", "must be an http:// or https:// URL"));
        }
    }
    Ok(())
}

/// A Cloud KMS resource id (key ring, CryptoKey): 1 to 63 of [a-zA-Z0-9_-].
#[cfg(feature = "gcp")]
pub fn is_resource_id(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `projects/P/locations/L/keyRings/R`.
#[cfg(feature = "gcp")]
pub fn is_key_ring_name(s: &str) -> bool {
    let p: Vec<&str> = s.split('/').collect();
    p.len() == 6
        && p[0] == "projects"
        && p[2] == "locations"
        && p[4] == "keyRings"
        && [p[1], p[3]].iter().all(|x| !x.is_empty())
        && is_resource_id(p[5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_in_order() {
        let c = parse(
            "log_level = \"debug\"\n[[token]]\nlabel = \"a\"\n[[token]]\nlabel = \"b\"\nbackend = \"local\"\nstore = \"/tmp/b.sqlite\"\n",
            Path::new("x.conf"),
        )
        .unwrap();
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.token.len(), 2);
        assert_eq!(c.token[1].store_path(), PathBuf::from("/tmp/b.sqlite"));
    }

    #[test]
    fn bad_value_names_file_line_and_field() {
        let e = parse(
            "log_level = \"warn\"\n\n[[token]]\nlabel = \"a\"\nbackend = \"cloud\"\n",
            Path::new("/etc/x.conf"),
        )
        .unwrap_err();
        assert!(e.contains("/etc/x.conf"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("`backend`"), "{e}");
    }

    #[test]
    fn unknown_field_is_named() {
        let e = parse("[[token]]\nlabel = \"a\"\nlabl = \"b\"\n", Path::new("c")).unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("labl"), "{e}");
    }

    #[test]
    fn shipped_example_parses() {
        let c = parse(
            include_str!("../pkcs11.conf.example"),
            Path::new("pkcs11.conf.example"),
        )
        .unwrap();
        assert!(!c.token.is_empty());
    }

    #[test]
    fn duplicate_labels_refused() {
        let e = parse(
            "[[token]]\nlabel = \"a\"\n[[token]]\nlabel = \"a\"\n",
            Path::new("c"),
        )
        .unwrap_err();
        assert!(e.contains("`label`"), "{e}");
    }

    #[test]
    fn one_store_per_token_and_absolute_paths() {
        // The same file, however spelled: refused (C_InitToken on one wiped the other).
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        for second in [format!("{d}/s.sqlite"), format!("{d}/./x/../s.sqlite")] {
            let e = parse(
                &format!("[[token]]\nlabel = \"one\"\nstore = \"{d}/s.sqlite\"\n[[token]]\nlabel = \"two\"\nstore = \"{second}\"\n"),
                Path::new("c"),
            )
            .unwrap_err();
            assert!(
                e.contains("`store`") && e.contains("\"one\" uses this store"),
                "{e}"
            );
        }
        parse(
            &format!("[[token]]\nlabel = \"one\"\nstore = \"{d}/a.sqlite\"\n[[token]]\nlabel = \"two\"\nstore = \"{d}/b.sqlite\"\n"),
            Path::new("c"),
        )
        .unwrap();
        for bad in [
            "",
            "x.sqlite",
            "~/p11/x.sqlite",
            "$HOME/x.sqlite",
            "./x.sqlite",
        ] {
            let e = parse(
                &format!("[[token]]\nlabel = \"a\"\nstore = \"{bad}\"\n"),
                Path::new("c"),
            )
            .unwrap_err();
            assert!(e.contains("absolute path"), "{bad:?}: {e}");
        }
    }

    #[cfg(feature = "gcp")]
    #[test]
    fn gcp_fields_checked() {
        let ok = "[[token]]\nlabel = \"g\"\nbackend = \"gcp\"\nkey_ring = \"projects/p/locations/global/keyRings/r\"\nkek = \"k\"\n";
        parse(ok, Path::new("c")).unwrap();
        let full = ok.replace(
            "kek = \"k\"",
            "kek = \"projects/p/locations/global/keyRings/r/cryptoKeys/k\"",
        );
        parse(&full, Path::new("c")).unwrap();
        for (from, to, field) in [
            ("keyRings/r", "keyRing/r", "key_ring"),
            (
                "kek = \"k\"",
                "kek = \"projects/x/locations/global/keyRings/r/cryptoKeys/k\"",
                "kek",
            ),
            ("kek = \"k\"", "kek = \"k\"\nrandom = \"tpm\"", "random"),
            (
                "kek = \"k\"",
                "kek = \"k\"\ncredentials = \"/nonexistent.json\"",
                "credentials",
            ),
            (
                "kek = \"k\"",
                "kek = \"k\"\nprotection_level = \"external\"",
                "protection_level",
            ),
            (
                "kek = \"k\"",
                "kek = \"k\"\nendpoint = \"127.0.0.1:1\"",
                "endpoint",
            ),
            ("kek = \"k\"\n", "", "kek"),
        ] {
            let e = parse(&ok.replace(from, to), Path::new("c")).unwrap_err();
            assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
        }
    }
}
