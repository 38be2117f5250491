//! Attribute rules as data: for each standard attribute, its value kind, the classes
//! (and key types) that carry it, its default, and what may be done with it. The rules
//! follow PKCS#11 3.0 §4 and the footnotes of its attribute tables.

use cryptoki_sys::*;

/// CKA_P11KMS_KEY_ARN (include/p11kms.h): the ARN of the KMS key behind a key object.
pub const CKA_P11KMS_KEY_ARN: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x504B_0001;
/// CKA_P11KMS_KEY_VERSION: the resource name of the Cloud KMS CryptoKeyVersion behind a
/// key object.
pub const CKA_P11KMS_KEY_VERSION: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x504B_0002;
/// CKA_P11KMS_KEY_ALGORITHM: the Cloud KMS algorithm of that version.
pub const CKA_P11KMS_KEY_ALGORITHM: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x504B_0003;
/// CKA_P11KMS_PROTECTION_LEVEL: the Cloud KMS protection level of that version.
pub const CKA_P11KMS_PROTECTION_LEVEL: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x504B_0004;

/// Object classes as a bit set, so a rule can name several.
pub type ClassSet = u8;
pub const DATA: ClassSet = 1;
pub const CERT: ClassSet = 2;
pub const PUBLIC: ClassSet = 4;
pub const PRIVATE: ClassSet = 8;
pub const SECRET: ClassSet = 16;
pub const KEYS: ClassSet = PUBLIC | PRIVATE | SECRET;
pub const ALL: ClassSet = DATA | CERT | KEYS;

/// The class bit of a `CKO_*`; None for classes the module does not hold.
pub fn class_bit(class: CK_OBJECT_CLASS) -> Option<ClassSet> {
    Some(match class {
        CKO_DATA => DATA,
        CKO_CERTIFICATE => CERT,
        CKO_PUBLIC_KEY => PUBLIC,
        CKO_PRIVATE_KEY => PRIVATE,
        CKO_SECRET_KEY => SECRET,
        _ => return None,
    })
}

/// How a value is encoded (as the C caller sees it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Ulong,
    Bytes,
    /// CK_DATE: 8 ASCII digits, or empty.
    Date,
    /// An array of CK_MECHANISM_TYPE.
    MechList,
    /// A nested attribute template (CKA_WRAP_TEMPLATE…): only the empty one is accepted.
    Template,
}

/// Which key types carry the attribute (for key classes); ANY for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTypes {
    Any,
    Rsa,
    Ec,
    /// AES and generic secret (VALUE_LEN etc.).
    Secret,
}

/// What may be done with the attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// May be set at creation and changed later (if the object is modifiable).
    Free,
    /// May be set at creation only (C_CopyObject may still change it where noted).
    Fixed,
    /// May be set at creation; afterwards only false→true (CKA_SENSITIVE, WRAP_WITH_TRUSTED).
    OnlyToTrue,
    /// May be set at creation; afterwards only true→false (CKA_EXTRACTABLE).
    OnlyToFalse,
    /// Set by the token only (CKA_LOCAL, CKA_ALWAYS_SENSITIVE, …): never in a template.
    TokenOnly,
}

/// Default value when a template leaves the attribute out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dflt {
    /// Required at creation: CKR_TEMPLATE_INCOMPLETE if absent.
    Required,
    /// Computed by the object layer (key values, public parts, token-set values).
    Computed,
    Bool(bool),
    Ulong(CK_ULONG),
    Empty,
}

/// One rule.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub ty: CK_ATTRIBUTE_TYPE,
    pub kind: Kind,
    pub classes: ClassSet,
    pub key_types: KeyTypes,
    pub default: Dflt,
    pub change: Change,
    /// The value is secret: readable only when the key is not sensitive and extractable.
    pub sensitive: bool,
}

const fn r(
    ty: CK_ATTRIBUTE_TYPE,
    kind: Kind,
    classes: ClassSet,
    key_types: KeyTypes,
    default: Dflt,
    change: Change,
) -> Rule {
    Rule {
        ty,
        kind,
        classes,
        key_types,
        default,
        change,
        sensitive: false,
    }
}

const fn secret(ty: CK_ATTRIBUTE_TYPE, classes: ClassSet, key_types: KeyTypes) -> Rule {
    Rule {
        ty,
        kind: Kind::Bytes,
        classes,
        key_types,
        default: Dflt::Computed,
        change: Change::Fixed,
        sensitive: true,
    }
}

use Change::*;
use Dflt as D;
use KeyTypes::{Any, Ec, Rsa, Secret as Sec};
use Kind::*;

/// The rules. Where a type appears twice, the first rule whose classes match applies.
pub static RULES: &[Rule] = &[
    // Common storage attributes (§4.4).
    r(CKA_CLASS, Ulong, ALL, Any, D::Required, Fixed),
    r(CKA_TOKEN, Bool, ALL, Any, D::Bool(false), Fixed),
    r(
        CKA_PRIVATE,
        Bool,
        DATA | CERT | PUBLIC,
        Any,
        D::Bool(false),
        Fixed,
    ),
    r(
        CKA_PRIVATE,
        Bool,
        PRIVATE | SECRET,
        Any,
        D::Bool(true),
        Fixed,
    ),
    r(CKA_MODIFIABLE, Bool, ALL, Any, D::Bool(true), Fixed),
    r(CKA_COPYABLE, Bool, ALL, Any, D::Bool(true), OnlyToFalse),
    r(CKA_DESTROYABLE, Bool, ALL, Any, D::Bool(true), Fixed),
    r(CKA_LABEL, Bytes, ALL, Any, D::Empty, Free),
    r(CKA_UNIQUE_ID, Bytes, ALL, Any, D::Computed, TokenOnly),
    // Data objects (§4.5).
    r(CKA_APPLICATION, Bytes, DATA, Any, D::Empty, Free),
    r(CKA_OBJECT_ID, Bytes, DATA, Any, D::Empty, Free),
    r(CKA_VALUE, Bytes, DATA, Any, D::Empty, Free),
    // Certificates (§4.6, X.509 §4.6.3).
    r(CKA_CERTIFICATE_TYPE, Ulong, CERT, Any, D::Required, Fixed),
    r(
        CKA_TRUSTED,
        Bool,
        CERT | PUBLIC | SECRET,
        Any,
        D::Bool(false),
        Fixed,
    ),
    r(
        CKA_CERTIFICATE_CATEGORY,
        Ulong,
        CERT,
        Any,
        D::Ulong(0),
        Fixed,
    ),
    r(CKA_CHECK_VALUE, Bytes, CERT, Any, D::Computed, Fixed),
    r(CKA_START_DATE, Date, CERT | KEYS, Any, D::Empty, Free),
    r(CKA_END_DATE, Date, CERT | KEYS, Any, D::Empty, Free),
    r(CKA_PUBLIC_KEY_INFO, Bytes, CERT, Any, D::Empty, Fixed),
    r(CKA_SUBJECT, Bytes, CERT, Any, D::Required, Fixed),
    r(CKA_ID, Bytes, CERT | KEYS, Any, D::Empty, Free),
    r(CKA_ISSUER, Bytes, CERT, Any, D::Empty, Free),
    r(CKA_SERIAL_NUMBER, Bytes, CERT, Any, D::Empty, Free),
    r(CKA_VALUE, Bytes, CERT, Any, D::Required, Fixed),
    r(CKA_URL, Bytes, CERT, Any, D::Empty, Fixed),
    r(
        CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
        Bytes,
        CERT,
        Any,
        D::Empty,
        Fixed,
    ),
    r(
        CKA_HASH_OF_ISSUER_PUBLIC_KEY,
        Bytes,
        CERT,
        Any,
        D::Empty,
        Fixed,
    ),
    r(
        CKA_JAVA_MIDP_SECURITY_DOMAIN,
        Ulong,
        CERT,
        Any,
        D::Ulong(0),
        Fixed,
    ),
    r(
        CKA_NAME_HASH_ALGORITHM,
        Ulong,
        CERT,
        Any,
        D::Ulong(CKM_SHA_1),
        Fixed,
    ),
    // Keys (§4.7).
    r(CKA_KEY_TYPE, Ulong, KEYS, Any, D::Computed, Fixed),
    r(CKA_DERIVE, Bool, KEYS, Any, D::Bool(false), Free),
    r(CKA_LOCAL, Bool, KEYS, Any, D::Computed, TokenOnly),
    r(
        CKA_KEY_GEN_MECHANISM,
        Ulong,
        KEYS,
        Any,
        D::Computed,
        TokenOnly,
    ),
    r(CKA_ALLOWED_MECHANISMS, MechList, KEYS, Any, D::Empty, Fixed),
    // Public keys (§4.8). Usage defaults are the token's choice: EC keys neither
    // encrypt nor wrap here (no such mechanism), so those default to false for them.
    r(CKA_ENCRYPT, Bool, PUBLIC, Ec, D::Bool(false), Free),
    r(CKA_WRAP, Bool, PUBLIC, Ec, D::Bool(false), Free),
    r(CKA_DECRYPT, Bool, PRIVATE, Ec, D::Bool(false), Free),
    r(CKA_UNWRAP, Bool, PRIVATE, Ec, D::Bool(false), Free),
    r(CKA_SUBJECT, Bytes, PUBLIC | PRIVATE, Any, D::Empty, Free),
    r(CKA_ENCRYPT, Bool, PUBLIC | SECRET, Any, D::Bool(true), Free),
    r(CKA_VERIFY, Bool, PUBLIC | SECRET, Any, D::Bool(true), Free),
    r(CKA_VERIFY_RECOVER, Bool, PUBLIC, Any, D::Bool(false), Free),
    r(CKA_WRAP, Bool, PUBLIC | SECRET, Any, D::Bool(true), Free),
    r(
        CKA_WRAP_TEMPLATE,
        Template,
        PUBLIC | SECRET,
        Any,
        D::Empty,
        Fixed,
    ),
    r(
        CKA_PUBLIC_KEY_INFO,
        Bytes,
        PUBLIC | PRIVATE,
        Any,
        D::Computed,
        Fixed,
    ),
    // p11kms vendor attributes (include/p11kms.h): the KMS key's ARN (aws), version
    // name, algorithm and protection level (gcp), set by the token on both halves of a
    // KMS key pair; absent (CKR_ATTRIBUTE_TYPE_INVALID) elsewhere.
    r(
        CKA_P11KMS_KEY_ARN,
        Bytes,
        PUBLIC | PRIVATE,
        Any,
        D::Computed,
        TokenOnly,
    ),
    r(
        CKA_P11KMS_KEY_VERSION,
        Bytes,
        PUBLIC | PRIVATE,
        Any,
        D::Computed,
        TokenOnly,
    ),
    r(
        CKA_P11KMS_KEY_ALGORITHM,
        Bytes,
        PUBLIC | PRIVATE,
        Any,
        D::Computed,
        TokenOnly,
    ),
    r(
        CKA_P11KMS_PROTECTION_LEVEL,
        Bytes,
        PUBLIC | PRIVATE,
        Any,
        D::Computed,
        TokenOnly,
    ),
    // Private keys (§4.9).
    r(
        CKA_SENSITIVE,
        Bool,
        PRIVATE | SECRET,
        Any,
        D::Bool(true),
        OnlyToTrue,
    ),
    r(
        CKA_DECRYPT,
        Bool,
        PRIVATE | SECRET,
        Any,
        D::Bool(true),
        Free,
    ),
    r(CKA_SIGN, Bool, PRIVATE | SECRET, Any, D::Bool(true), Free),
    r(CKA_SIGN_RECOVER, Bool, PRIVATE, Any, D::Bool(false), Free),
    r(CKA_UNWRAP, Bool, PRIVATE | SECRET, Any, D::Bool(true), Free),
    r(
        CKA_EXTRACTABLE,
        Bool,
        PRIVATE,
        Any,
        D::Bool(false),
        OnlyToFalse,
    ),
    r(
        CKA_EXTRACTABLE,
        Bool,
        SECRET,
        Any,
        D::Bool(true),
        OnlyToFalse,
    ),
    r(
        CKA_ALWAYS_SENSITIVE,
        Bool,
        PRIVATE | SECRET,
        Any,
        D::Computed,
        TokenOnly,
    ),
    r(
        CKA_NEVER_EXTRACTABLE,
        Bool,
        PRIVATE | SECRET,
        Any,
        D::Computed,
        TokenOnly,
    ),
    r(
        CKA_WRAP_WITH_TRUSTED,
        Bool,
        PRIVATE | SECRET,
        Any,
        D::Bool(false),
        OnlyToTrue,
    ),
    r(
        CKA_UNWRAP_TEMPLATE,
        Template,
        PRIVATE | SECRET,
        Any,
        D::Empty,
        Fixed,
    ),
    r(
        CKA_ALWAYS_AUTHENTICATE,
        Bool,
        PRIVATE,
        Any,
        D::Bool(false),
        Fixed,
    ),
    // Secret keys (§4.10).
    r(CKA_CHECK_VALUE, Bytes, SECRET, Sec, D::Computed, Fixed),
    // RSA (§2.1.2, §2.1.3).
    r(
        CKA_MODULUS,
        Bytes,
        PUBLIC | PRIVATE,
        Rsa,
        D::Computed,
        Fixed,
    ),
    r(CKA_MODULUS_BITS, Ulong, PUBLIC, Rsa, D::Computed, Fixed),
    r(
        CKA_PUBLIC_EXPONENT,
        Bytes,
        PUBLIC | PRIVATE,
        Rsa,
        D::Computed,
        Fixed,
    ),
    secret(CKA_PRIVATE_EXPONENT, PRIVATE, Rsa),
    secret(CKA_PRIME_1, PRIVATE, Rsa),
    secret(CKA_PRIME_2, PRIVATE, Rsa),
    secret(CKA_EXPONENT_1, PRIVATE, Rsa),
    secret(CKA_EXPONENT_2, PRIVATE, Rsa),
    secret(CKA_COEFFICIENT, PRIVATE, Rsa),
    // EC (§2.3.3, §2.3.4).
    r(
        CKA_EC_PARAMS,
        Bytes,
        PUBLIC | PRIVATE,
        Ec,
        D::Computed,
        Fixed,
    ),
    r(CKA_EC_POINT, Bytes, PUBLIC, Ec, D::Computed, Fixed),
    secret(CKA_VALUE, PRIVATE, Ec),
    // AES / generic secret (§2.8, §2.9?).
    secret(CKA_VALUE, SECRET, Sec),
    r(CKA_VALUE_LEN, Ulong, SECRET, Sec, D::Computed, Fixed),
];

/// The rule for `ty` on an object of `class` with key type `kt`, if the attribute
/// belongs to such objects.
pub fn rule(
    ty: CK_ATTRIBUTE_TYPE,
    class: ClassSet,
    kt: Option<CK_KEY_TYPE>,
) -> Option<&'static Rule> {
    RULES.iter().find(|r| {
        r.ty == ty
            && r.classes & class != 0
            && match (r.key_types, kt) {
                (Any, _) => true,
                (_, None) => false,
                (Rsa, Some(k)) => k == CKK_RSA,
                (Ec, Some(k)) => k == CKK_EC,
                (Sec, Some(k)) => k == CKK_AES || k == CKK_GENERIC_SECRET,
            }
    })
}

/// Every rule that applies to such an object (deduplicated by type, first wins).
pub fn rules_for(class: ClassSet, kt: Option<CK_KEY_TYPE>) -> Vec<&'static Rule> {
    let mut out: Vec<&'static Rule> = Vec::new();
    for r in RULES {
        if out.iter().any(|o| o.ty == r.ty) {
            continue;
        }
        if let Some(found) = rule(r.ty, class, kt) {
            if std::ptr::eq(found, r) {
                out.push(r);
            }
        }
    }
    out
}

/// Check an encoded value against its kind: CKR_ATTRIBUTE_VALUE_INVALID when malformed.
pub fn check_kind(kind: Kind, v: &[u8]) -> bool {
    match kind {
        Kind::Bool => v.len() == 1,
        Kind::Ulong => v.len() == std::mem::size_of::<CK_ULONG>(),
        Kind::Bytes => true,
        Kind::Date => v.is_empty() || (v.len() == 8 && v.iter().all(u8::is_ascii_digit)),
        Kind::MechList => v.len() % std::mem::size_of::<CK_ULONG>() == 0,
        Kind::Template => v.is_empty(),
    }
}

/// Encode a CK_ULONG the way the C caller reads it.
pub fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// Decode a CK_ULONG value (length already checked).
pub fn as_ulong(v: &[u8]) -> Option<CK_ULONG> {
    Some(CK_ULONG::from_ne_bytes(v.try_into().ok()?))
}

/// Encode a CK_BBOOL.
pub fn bool_(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rule_depends_on_class() {
        assert!(!rule(CKA_VALUE, DATA, None).unwrap().sensitive);
        assert!(rule(CKA_VALUE, SECRET, Some(CKK_AES)).unwrap().sensitive);
        assert!(rule(CKA_VALUE, PRIVATE, Some(CKK_EC)).unwrap().sensitive);
        assert!(rule(CKA_VALUE, PRIVATE, Some(CKK_RSA)).is_none());
        assert!(rule(CKA_MODULUS, PUBLIC, Some(CKK_EC)).is_none());
    }

    #[test]
    fn ec_keys_default_to_no_encryption() {
        assert_eq!(
            rule(CKA_ENCRYPT, PUBLIC, Some(CKK_EC)).unwrap().default,
            D::Bool(false)
        );
        assert_eq!(
            rule(CKA_DECRYPT, PRIVATE, Some(CKK_EC)).unwrap().default,
            D::Bool(false)
        );
        assert_eq!(
            rule(CKA_ENCRYPT, PUBLIC, Some(CKK_RSA)).unwrap().default,
            D::Bool(true)
        );
        let rs = rules_for(PUBLIC, Some(CKK_EC));
        assert_eq!(rs.iter().filter(|r| r.ty == CKA_WRAP).count(), 1);
        assert_eq!(
            rs.iter().find(|r| r.ty == CKA_WRAP).unwrap().default,
            D::Bool(false)
        );
    }

    #[test]
    fn defaults_per_class() {
        assert_eq!(
            rule(CKA_PRIVATE, PRIVATE, Some(CKK_RSA)).unwrap().default,
            D::Bool(true)
        );
        assert_eq!(
            rule(CKA_PRIVATE, CERT, None).unwrap().default,
            D::Bool(false)
        );
        let rs = rules_for(SECRET, Some(CKK_AES));
        assert_eq!(rs.iter().filter(|r| r.ty == CKA_EXTRACTABLE).count(), 1);
        assert!(rs.iter().any(|r| r.ty == CKA_VALUE_LEN));
    }
}
