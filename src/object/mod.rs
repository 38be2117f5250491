//! Objects: the attribute model, templates and the per-class rules of `attrs`.
//! Secret parts of keys (key values, private components) never sit in the attribute
//! map: they live in [`KeyMaterial`] and are read through the sensitivity rules.

pub mod attrs;

use crate::error::{Error, Result};
use crate::mechanism::{self, Curve, KeyMaterial, MechParam, Mechanism, RsaComponents};
use attrs::{as_ulong, bool_, class_bit, ulong, Change, Dflt as D, Kind, Rule};
use cryptoki_sys::*;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A template entry as the api layer hands it over.
pub type Attr = (CK_ATTRIBUTE_TYPE, Vec<u8>);

/// Result of reading one attribute.
pub enum Read<'a> {
    Value(std::borrow::Cow<'a, [u8]>),
    /// CKR_ATTRIBUTE_SENSITIVE.
    Sensitive,
    /// CKR_ATTRIBUTE_TYPE_INVALID.
    Invalid,
}

/// The secret part of a key, plain or (token objects not yet unwrapped) wrapped.
#[derive(Clone)]
pub enum Secret {
    None,
    Plain(KeyMaterial),
    Wrapped(Vec<u8>),
}

/// One object.
#[derive(Clone)]
pub struct Object {
    pub uid: [u8; 16],
    pub class: CK_OBJECT_CLASS,
    pub key_type: Option<CK_KEY_TYPE>,
    attrs: BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>,
    pub secret: Secret,
}

fn new_uid() -> Result<[u8; 16]> {
    let mut uid = [0u8; 16];
    mechanism::random(&mut uid)?;
    Ok(uid)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Find an attribute in a template; duplicates with different values are inconsistent.
pub fn find(t: &[Attr], ty: CK_ATTRIBUTE_TYPE) -> Result<Option<&[u8]>> {
    let mut found: Option<&[u8]> = None;
    for (k, v) in t {
        if *k == ty {
            if let Some(f) = found {
                if f != v.as_slice() {
                    return Err(CKR_TEMPLATE_INCONSISTENT.into());
                }
            }
            found = Some(v);
        }
    }
    Ok(found)
}

/// A CK_ULONG from a template.
pub fn find_ulong(t: &[Attr], ty: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
    match find(t, ty)? {
        None => Ok(None),
        Some(v) => as_ulong(v)
            .map(Some)
            .ok_or(CKR_ATTRIBUTE_VALUE_INVALID.into()),
    }
}

/// A CK_BBOOL from a template.
pub fn find_bool(t: &[Attr], ty: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
    match find(t, ty)? {
        None => Ok(None),
        Some([b]) => Ok(Some(*b != CK_FALSE)),
        Some(_) => Err(CKR_ATTRIBUTE_VALUE_INVALID.into()),
    }
}

/// DER OCTET STRING around `v`.
pub fn der_octet_string(v: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    let n = v.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(v);
    out
}

/// Accept CKA_EC_POINT as DER OCTET STRING (the spec) or a raw point (some clients).
fn ec_point_raw(v: &[u8], curve: Curve) -> Result<Vec<u8>> {
    let want = 1 + 2 * mechanism::curve_field_len(curve);
    if v.len() == want && v[0] == 0x04 {
        return Ok(v.to_vec());
    }
    let bad = || {
        Error::msg(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "CKA_EC_POINT is not a DER OCTET STRING of an uncompressed point",
        )
    };
    if v.len() < 2 || v[0] != 0x04 {
        return Err(bad());
    }
    let (len, hdr) = match v[1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 if v.len() > 2 => (v[2] as usize, 3),
        _ => return Err(bad()),
    };
    if v.len() != hdr + len || len != want || v[hdr] != 0x04 {
        return Err(bad());
    }
    Ok(v[hdr..].to_vec())
}

fn strip_zeros(v: &[u8]) -> Vec<u8> {
    let i = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v[i..].to_vec()
}

/// One creation-template entry against the rules of its class: a known attribute of
/// the class, a well-formed value, not one the token sets, duplicates agreeing. The rule.
fn check_entry(
    template: &[Attr],
    ty: CK_ATTRIBUTE_TYPE,
    v: &[u8],
    class: CK_OBJECT_CLASS,
    cbit: attrs::ClassSet,
    key_type: Option<CK_KEY_TYPE>,
) -> Result<&'static attrs::Rule> {
    let rule = attrs::rule(ty, cbit, key_type).ok_or_else(|| {
        Error::msg(
            CKR_ATTRIBUTE_TYPE_INVALID,
            format!("attribute 0x{ty:x} not valid for class 0x{class:x}"),
        )
    })?;
    if !attrs::check_kind(rule.kind, v) {
        return Err(Error::msg(
            CKR_ATTRIBUTE_VALUE_INVALID,
            format!("attribute 0x{ty:x}: malformed value"),
        ));
    }
    if rule.change == Change::TokenOnly {
        return Err(Error::msg(
            CKR_ATTRIBUTE_READ_ONLY,
            format!("attribute 0x{ty:x} is set by the token"),
        ));
    }
    find(template, ty)?; // duplicates must agree
    Ok(rule)
}

/// The checks [`Object::create`] makes of a key-generation template, for a key the
/// token does not build itself (a KMS key pair, whose objects come from the KMS
/// listing): class and key type consistent, every entry valid for the class, no
/// secret attribute (the key material is generated). Before any KMS call.
pub fn check_generation_template(
    template: &[Attr],
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
) -> Result<()> {
    if find_ulong(template, CKA_CLASS)?.is_some_and(|c| c != class)
        || find_ulong(template, CKA_KEY_TYPE)?.is_some_and(|k| k != key_type)
    {
        return Err(CKR_TEMPLATE_INCONSISTENT.into());
    }
    let cbit = class_bit(class).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?;
    for (ty, v) in template {
        if check_entry(template, *ty, v, class, cbit, Some(key_type))?.sensitive {
            return Err(CKR_TEMPLATE_INCONSISTENT.into());
        }
    }
    Ok(())
}

/// Format byte of a sealed secret: attribute digest, then the material.
const SEALED_V1: u8 = 0x81;

/// How a new object came to be (sets CKA_LOCAL, ALWAYS_SENSITIVE, …).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// C_CreateObject or C_UnwrapKey.
    Imported,
    /// C_GenerateKey / C_GenerateKeyPair with this mechanism.
    Generated(CK_MECHANISM_TYPE),
}

impl Object {
    /// Build an object from a creation template plus, for generated or unwrapped keys,
    /// the key material. Every attribute is checked against the rules of its class.
    pub fn create(
        template: &[Attr],
        class_default: Option<CK_OBJECT_CLASS>,
        key_type_default: Option<CK_KEY_TYPE>,
        material: Option<KeyMaterial>,
        origin: Origin,
    ) -> Result<Object> {
        let class = match (find_ulong(template, CKA_CLASS)?, class_default) {
            (Some(c), Some(d)) if c != d => return Err(CKR_TEMPLATE_INCONSISTENT.into()),
            (Some(c), _) => c,
            (None, Some(d)) => d,
            (None, None) => return Err(CKR_TEMPLATE_INCOMPLETE.into()),
        };
        let cbit = class_bit(class).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?;
        let key_type = if cbit & attrs::KEYS != 0 {
            let kt = match (find_ulong(template, CKA_KEY_TYPE)?, key_type_default) {
                (Some(k), Some(d)) if k != d => return Err(CKR_TEMPLATE_INCONSISTENT.into()),
                (Some(k), _) => k,
                (None, Some(d)) => d,
                (None, None) => return Err(CKR_TEMPLATE_INCOMPLETE.into()),
            };
            let ok = match class {
                CKO_SECRET_KEY => kt == CKK_AES || kt == CKK_GENERIC_SECRET,
                _ => kt == CKK_RSA || kt == CKK_EC,
            };
            if !ok {
                return Err(Error::msg(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    format!("key type 0x{kt:x} not supported for class 0x{class:x}"),
                ));
            }
            Some(kt)
        } else {
            None
        };
        if class == CKO_CERTIFICATE {
            match find_ulong(template, CKA_CERTIFICATE_TYPE)? {
                Some(CKC_X_509) => {}
                Some(_) => return Err(CKR_ATTRIBUTE_VALUE_INVALID.into()),
                None => return Err(CKR_TEMPLATE_INCOMPLETE.into()),
            }
        }
        let mut obj = Object {
            uid: new_uid()?,
            class,
            key_type,
            attrs: BTreeMap::new(),
            secret: Secret::None,
        };
        // Check every entry; sensitive entries are collected for the material.
        let mut secret_in: BTreeMap<CK_ATTRIBUTE_TYPE, Zeroizing<Vec<u8>>> = BTreeMap::new();
        for (ty, v) in template {
            let rule = check_entry(template, *ty, v, class, cbit, key_type)?;
            if rule.sensitive {
                if material.is_some() {
                    return Err(CKR_TEMPLATE_INCONSISTENT.into());
                }
                secret_in.insert(*ty, Zeroizing::new(v.clone()));
            } else if rule.default == D::Computed && !matches!(*ty, CKA_KEY_TYPE) {
                // Public parts of keys come from the material when it is given (generation
                // templates carry e.g. CKA_MODULUS_BITS or CKA_EC_PARAMS as requests).
                if material.is_none() {
                    obj.attrs.insert(*ty, v.clone());
                }
            } else {
                obj.attrs.insert(*ty, v.clone());
            }
        }
        obj.attrs.insert(CKA_CLASS, ulong(class));
        if let Some(kt) = key_type {
            obj.attrs.insert(CKA_KEY_TYPE, ulong(kt));
        }
        // Defaults.
        for rule in attrs::rules_for(cbit, key_type) {
            if obj.attrs.contains_key(&rule.ty) || rule.sensitive {
                continue;
            }
            match rule.default {
                D::Required => {
                    return Err(Error::msg(
                        CKR_TEMPLATE_INCOMPLETE,
                        format!("attribute 0x{:x} is required", rule.ty),
                    ));
                }
                D::Bool(b) => {
                    obj.attrs.insert(rule.ty, bool_(b));
                }
                D::Ulong(u) => {
                    obj.attrs.insert(rule.ty, ulong(u));
                }
                D::Empty => {
                    obj.attrs.insert(rule.ty, vec![]);
                }
                D::Computed => {}
            }
        }
        obj.attrs.insert(CKA_UNIQUE_ID, hex(&obj.uid).into_bytes());
        if let Some(kt) = key_type {
            let material = match material {
                Some(m) => Some(m),
                None => obj.material_from_template(kt, &secret_in)?,
            };
            obj.set_key_parts(kt, material, origin)?;
        }
        if class == CKO_CERTIFICATE && obj.attr(CKA_CHECK_VALUE).is_none() {
            obj.attrs.insert(CKA_CHECK_VALUE, vec![]);
        }
        Ok(obj)
    }

    /// The material of an imported key, from the sensitive and public attributes given.
    fn material_from_template(
        &mut self,
        kt: CK_KEY_TYPE,
        secret_in: &BTreeMap<CK_ATTRIBUTE_TYPE, Zeroizing<Vec<u8>>>,
    ) -> Result<Option<KeyMaterial>> {
        let need =
            |m: &BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>, ty: CK_ATTRIBUTE_TYPE| -> Result<Vec<u8>> {
                m.get(&ty).cloned().ok_or_else(|| {
                    Error::msg(
                        CKR_TEMPLATE_INCOMPLETE,
                        format!("attribute 0x{ty:x} is required"),
                    )
                })
            };
        let need_s = |ty: CK_ATTRIBUTE_TYPE| -> Result<Zeroizing<Vec<u8>>> {
            secret_in.get(&ty).cloned().ok_or_else(|| {
                Error::msg(
                    CKR_TEMPLATE_INCOMPLETE,
                    format!("attribute 0x{ty:x} is required"),
                )
            })
        };
        Ok(Some(match (self.class, kt) {
            (CKO_SECRET_KEY, _) => {
                let value = need_s(CKA_VALUE)?;
                if let Some(l) = self.attrs.remove(&CKA_VALUE_LEN) {
                    if as_ulong(&l) != Some(value.len() as CK_ULONG) {
                        return Err(CKR_TEMPLATE_INCONSISTENT.into());
                    }
                }
                KeyMaterial::Secret {
                    key_type: kt,
                    value,
                }
            }
            (CKO_PUBLIC_KEY, CKK_RSA) => {
                let n = strip_zeros(&need(&self.attrs, CKA_MODULUS)?);
                let e = strip_zeros(&need(&self.attrs, CKA_PUBLIC_EXPONENT)?);
                self.attrs.remove(&CKA_MODULUS_BITS);
                KeyMaterial::RsaPublic { n, e }
            }
            (CKO_PUBLIC_KEY, _) => {
                let curve = mechanism::curve_from_params(&need(&self.attrs, CKA_EC_PARAMS)?)?;
                let point = ec_point_raw(&need(&self.attrs, CKA_EC_POINT)?, curve)?;
                KeyMaterial::EcPublic { curve, point }
            }
            (_, CKK_RSA) => {
                let c = RsaComponents {
                    n: strip_zeros(&need(&self.attrs, CKA_MODULUS)?),
                    e: strip_zeros(&need(&self.attrs, CKA_PUBLIC_EXPONENT)?),
                    d: need_s(CKA_PRIVATE_EXPONENT)?,
                    p: need_s(CKA_PRIME_1)?,
                    q: need_s(CKA_PRIME_2)?,
                    dp: need_s(CKA_EXPONENT_1)?,
                    dq: need_s(CKA_EXPONENT_2)?,
                    qinv: need_s(CKA_COEFFICIENT)?,
                };
                KeyMaterial::RsaPrivate {
                    der: mechanism::rsa_private_from_components(&c)?,
                }
            }
            _ => {
                let curve = mechanism::curve_from_params(&need(&self.attrs, CKA_EC_PARAMS)?)?;
                let d = need_s(CKA_VALUE)?;
                let flen = mechanism::curve_field_len(curve);
                if d.is_empty() || d.len() > flen {
                    return Err(CKR_ATTRIBUTE_VALUE_INVALID.into());
                }
                let mut dd = Zeroizing::new(vec![0u8; flen - d.len()]);
                dd.extend_from_slice(&d);
                let point = mechanism::ec_public_point(curve, &dd)?;
                KeyMaterial::EcPrivate {
                    curve,
                    d: dd,
                    point,
                }
            }
        }))
    }

    /// Set the computed attributes of a key from its material and keep the material.
    fn set_key_parts(
        &mut self,
        kt: CK_KEY_TYPE,
        material: Option<KeyMaterial>,
        origin: Origin,
    ) -> Result<()> {
        let material = material.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
        // Validates and rejects unsupported sizes.
        let key = mechanism::LocalKey::new(material.clone())?;
        match (&material, kt) {
            (KeyMaterial::Secret { value, key_type }, _) if *key_type == kt => {
                check_secret_len(kt, value.len(), CKR_ATTRIBUTE_VALUE_INVALID)?;
                self.attrs
                    .insert(CKA_VALUE_LEN, ulong(value.len() as CK_ULONG));
                if kt == CKK_AES {
                    let ecb = Mechanism {
                        mech: CKM_AES_ECB,
                        param: MechParam::None,
                    };
                    let kcv = mechanism::encrypt_init(&ecb, &key)?.oneshot(&[0u8; 16])?;
                    self.attrs.insert(CKA_CHECK_VALUE, kcv[..3].to_vec());
                } else {
                    self.attrs.insert(CKA_CHECK_VALUE, vec![]);
                }
            }
            (KeyMaterial::RsaPublic { n, e }, CKK_RSA) => {
                self.attrs.insert(CKA_MODULUS, n.clone());
                self.attrs.insert(CKA_PUBLIC_EXPONENT, e.clone());
                self.attrs.insert(CKA_MODULUS_BITS, ulong(bits(n)));
            }
            (KeyMaterial::RsaPrivate { der }, CKK_RSA) => {
                let c = mechanism::rsa_components(der)?;
                self.attrs.insert(CKA_MODULUS, c.n.clone());
                self.attrs.insert(CKA_PUBLIC_EXPONENT, c.e.clone());
            }
            (KeyMaterial::EcPublic { curve, point }, CKK_EC) => {
                self.attrs
                    .insert(CKA_EC_PARAMS, mechanism::curve_params(*curve).to_vec());
                self.attrs.insert(CKA_EC_POINT, der_octet_string(point));
            }
            (KeyMaterial::EcPrivate { curve, .. }, CKK_EC) => {
                self.attrs
                    .insert(CKA_EC_PARAMS, mechanism::curve_params(*curve).to_vec());
            }
            (KeyMaterial::Remote { public, .. }, _) if self.class == CKO_PRIVATE_KEY => {
                match (public.as_ref(), kt) {
                    (KeyMaterial::RsaPublic { n, e }, CKK_RSA) => {
                        self.attrs.insert(CKA_MODULUS, n.clone());
                        self.attrs.insert(CKA_PUBLIC_EXPONENT, e.clone());
                    }
                    (KeyMaterial::EcPublic { curve, .. }, CKK_EC) => {
                        self.attrs
                            .insert(CKA_EC_PARAMS, mechanism::curve_params(*curve).to_vec());
                    }
                    _ => return Err(CKR_TEMPLATE_INCONSISTENT.into()),
                }
            }
            _ => return Err(CKR_TEMPLATE_INCONSISTENT.into()),
        }
        if self.class != CKO_SECRET_KEY {
            self.attrs
                .insert(CKA_PUBLIC_KEY_INFO, mechanism::public_key_info(&material)?);
        }
        let (local, mech) = match origin {
            Origin::Generated(m) => (true, m),
            Origin::Imported => (false, CK_UNAVAILABLE_INFORMATION),
        };
        self.attrs.insert(CKA_LOCAL, bool_(local));
        self.attrs.insert(CKA_KEY_GEN_MECHANISM, ulong(mech));
        if self.class != CKO_PUBLIC_KEY {
            let sensitive = self.bool_attr(CKA_SENSITIVE);
            let extractable = self.bool_attr(CKA_EXTRACTABLE);
            self.attrs
                .insert(CKA_ALWAYS_SENSITIVE, bool_(local && sensitive));
            self.attrs
                .insert(CKA_NEVER_EXTRACTABLE, bool_(local && !extractable));
        }
        // Public keys keep no secret: their material is in the attributes.
        self.secret = if self.class == CKO_PUBLIC_KEY {
            Secret::None
        } else {
            Secret::Plain(material)
        };
        Ok(())
    }

    /// Restore an object from its stored form.
    pub fn from_stored(
        uid: [u8; 16],
        attrs_blob: &[u8],
        secret: Option<Vec<u8>>,
    ) -> Result<Object> {
        let attrs = decode_attrs(attrs_blob)
            .ok_or_else(|| Error::device(format!("object {}: corrupt attributes", hex(&uid))))?;
        let class = attrs
            .get(&CKA_CLASS)
            .and_then(|v| as_ulong(v))
            .ok_or_else(|| Error::device("object without class"))?;
        let key_type = attrs.get(&CKA_KEY_TYPE).and_then(|v| as_ulong(v));
        Ok(Object {
            uid,
            class,
            key_type,
            attrs,
            secret: secret.map(Secret::Wrapped).unwrap_or(Secret::None),
        })
    }

    /// Serialized attributes for the store.
    pub fn encode_attrs(&self) -> Vec<u8> {
        encode_attrs(&self.attrs)
    }

    /// SHA-256 of the serialized attributes without CKA_CHECK_VALUE: what a KMS
    /// EncryptionContext binds (the check value is a function of the key, not known
    /// before GenerateDataKey returns it; it is checked against the key on unwrap).
    pub fn attrs_digest_for_kms(&self) -> [u8; 32] {
        let mut a = self.attrs.clone();
        a.remove(&CKA_CHECK_VALUE);
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &encode_attrs(&a));
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// Give the object another identity (KMS key pairs: derived from the key ARN, so
    /// CKA_UNIQUE_ID is the same in every process).
    pub fn set_uid(&mut self, uid: [u8; 16]) {
        self.uid = uid;
        self.attrs.insert(CKA_UNIQUE_ID, hex(&uid).into_bytes());
    }

    /// Set an attribute the token owns (CKA_P11KMS_KEY_ARN), bypassing template rules.
    pub fn put_attr(&mut self, ty: CK_ATTRIBUTE_TYPE, v: Vec<u8>) {
        self.attrs.insert(ty, v);
    }

    /// Replace a generated secret key's value (KMS GenerateDataKey returns it after the
    /// object was built around a placeholder): recomputes CKA_CHECK_VALUE.
    pub fn replace_secret_value(&mut self, value: Zeroizing<Vec<u8>>) -> Result<()> {
        let kt = self.key_type.ok_or(CKR_GENERAL_ERROR)?;
        if self.class != CKO_SECRET_KEY {
            return Err(Error::general(
                "replace_secret_value on a non-secret object",
            ));
        }
        let origin = match self.attr(CKA_KEY_GEN_MECHANISM).and_then(as_ulong) {
            Some(m) if m != CK_UNAVAILABLE_INFORMATION && self.bool_attr(CKA_LOCAL) => {
                Origin::Generated(m)
            }
            _ => Origin::Imported,
        };
        self.set_key_parts(
            kt,
            Some(KeyMaterial::Secret {
                key_type: kt,
                value,
            }),
            origin,
        )
    }

    /// The CKA_CHECK_VALUE an AES key's value gives (empty for other keys).
    pub fn check_value_of(&self, m: &KeyMaterial) -> Result<Vec<u8>> {
        match m {
            KeyMaterial::Secret { key_type, .. } if *key_type == CKK_AES => {
                let key = mechanism::LocalKey::new(m.clone())?;
                let ecb = Mechanism {
                    mech: CKM_AES_ECB,
                    param: MechParam::None,
                };
                let kcv = mechanism::encrypt_init(&ecb, &key)?.oneshot(&[0u8; 16])?;
                Ok(kcv[..3].to_vec())
            }
            _ => Ok(vec![]),
        }
    }

    /// The plaintext to wrap for the store: the key material together with a digest of
    /// every attribute, so that an attribute edited in the store file (CKA_SENSITIVE,
    /// CKA_EXTRACTABLE, usage flags…) is detected when the secret is unwrapped.
    pub fn seal_secret(&self) -> Result<Zeroizing<Vec<u8>>> {
        let Secret::Plain(m) = &self.secret else {
            return Err(Error::general("seal_secret without plain material"));
        };
        let mut out = Zeroizing::new(vec![SEALED_V1]);
        out.extend_from_slice(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.encode_attrs()).as_ref(),
        );
        out.extend_from_slice(&encode_material(m));
        Ok(out)
    }

    /// Inverse of [`Object::seal_secret`], against the object's current attributes.
    pub fn open_secret(&self, plain: &[u8]) -> Result<KeyMaterial> {
        let tampered = || {
            Error::device(format!("object {}: stored attributes do not match its key (store modified outside the module)", hex(&self.uid)))
        };
        let (&v, rest) = plain.split_first().ok_or_else(tampered)?;
        if v != SEALED_V1 || rest.len() < 32 {
            return Err(tampered());
        }
        let (digest, material) = rest.split_at(32);
        let want = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.encode_attrs());
        if aws_lc_rs::constant_time::verify_slices_are_equal(digest, want.as_ref()).is_err() {
            return Err(tampered());
        }
        decode_material(material).ok_or_else(|| {
            Error::device(format!(
                "object {}: stored key material is corrupt",
                hex(&self.uid)
            ))
        })
    }

    /// A raw attribute value (no sensitivity rules: internal use).
    pub fn attr(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.attrs.get(&ty).map(|v| v.as_slice())
    }

    /// A boolean attribute (false if absent).
    pub fn bool_attr(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.attrs.get(&ty).map(|v| v.as_slice()), Some([b]) if *b != CK_FALSE)
    }

    pub fn is_token(&self) -> bool {
        self.bool_attr(CKA_TOKEN)
    }

    pub fn is_private(&self) -> bool {
        self.bool_attr(CKA_PRIVATE)
    }

    fn cbit(&self) -> attrs::ClassSet {
        class_bit(self.class).unwrap_or(0)
    }

    fn rule(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&'static Rule> {
        attrs::rule(ty, self.cbit(), self.key_type)
    }

    /// Read one attribute under the spec's rules (C_GetAttributeValue).
    pub fn read(&self, ty: CK_ATTRIBUTE_TYPE) -> Read<'_> {
        let Some(rule) = self.rule(ty) else {
            return Read::Invalid;
        };
        if rule.sensitive {
            if self.bool_attr(CKA_SENSITIVE) || !self.bool_attr(CKA_EXTRACTABLE) {
                return Read::Sensitive;
            }
            let Secret::Plain(m) = &self.secret else {
                return Read::Sensitive;
            };
            return match secret_part(m, ty) {
                Some(v) => Read::Value(std::borrow::Cow::Owned(v)),
                None => Read::Invalid,
            };
        }
        match self.attrs.get(&ty) {
            Some(v) => Read::Value(std::borrow::Cow::Borrowed(v)),
            None => Read::Invalid,
        }
    }

    /// Would reading `ty` reveal a part of the secret that is still wrapped (CKA_VALUE
    /// of a non-sensitive, extractable key)? Only then does C_GetAttributeValue need
    /// the secret unwrapped: on a KMS token that is a Decrypt call, which no other
    /// attribute (label, ID, class, sizes) is worth.
    pub fn reads_wrapped_secret(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.secret, Secret::Wrapped(_))
            && self.rule(ty).is_some_and(|r| r.sensitive)
            && !self.bool_attr(CKA_SENSITIVE)
            && self.bool_attr(CKA_EXTRACTABLE)
    }

    /// Does the object match a search template? Sensitive attributes never match.
    pub fn matches(&self, template: &[Attr]) -> bool {
        template.iter().all(|(ty, v)| match self.read(*ty) {
            Read::Value(have) => have.as_ref() == v.as_slice(),
            _ => false,
        })
    }

    /// Apply C_SetAttributeValue (all checked first: nothing changes on error).
    /// `so` says whether the SO is logged in (only the SO may set CKA_TRUSTED).
    pub fn set(&mut self, template: &[Attr], so: bool) -> Result<()> {
        if !self.bool_attr(CKA_MODIFIABLE) {
            return Err(CKR_ACTION_PROHIBITED.into());
        }
        let mut next = self.attrs.clone();
        for (ty, v) in template {
            let rule = self.rule(*ty).ok_or(CKR_ATTRIBUTE_TYPE_INVALID)?;
            if !attrs::check_kind(rule.kind, v) {
                return Err(CKR_ATTRIBUTE_VALUE_INVALID.into());
            }
            let cur = self.attrs.get(ty).map(|c| c.as_slice());
            if cur == Some(v.as_slice()) {
                continue;
            }
            let to_true = v.as_slice() != [CK_FALSE];
            match rule.change {
                Change::Free => {}
                Change::OnlyToTrue if to_true => {}
                Change::OnlyToFalse if !to_true => {}
                _ if *ty == CKA_TRUSTED && so => {}
                _ => return Err(CKR_ATTRIBUTE_READ_ONLY.into()),
            }
            next.insert(*ty, v.clone());
        }
        self.attrs = next;
        Ok(())
    }

    /// C_CopyObject: a new object with `template` applied. CKA_TOKEN, CKA_PRIVATE and
    /// CKA_MODIFIABLE may change on copy (§5.7), besides what C_SetAttributeValue allows.
    pub fn copy_with(&self, template: &[Attr], so: bool) -> Result<Object> {
        if !self.bool_attr(CKA_COPYABLE) {
            return Err(CKR_ACTION_PROHIBITED.into());
        }
        let mut out = self.clone();
        out.uid = new_uid()?;
        out.attrs.insert(CKA_UNIQUE_ID, hex(&out.uid).into_bytes());
        // The copy is modifiable while we apply the template.
        out.attrs.insert(CKA_MODIFIABLE, bool_(true));
        let (free, rest): (Vec<Attr>, Vec<Attr>) = template
            .iter()
            .cloned()
            .partition(|(ty, _)| matches!(*ty, CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE));
        for (ty, v) in &free {
            if !attrs::check_kind(Kind::Bool, v) {
                return Err(CKR_ATTRIBUTE_VALUE_INVALID.into());
            }
            if *ty != CKA_MODIFIABLE {
                out.attrs.insert(*ty, v.clone());
            }
        }
        out.set(&rest, so)?;
        let modifiable = match find_bool(&free, CKA_MODIFIABLE)? {
            Some(m) => m,
            None => self.bool_attr(CKA_MODIFIABLE),
        };
        out.attrs.insert(CKA_MODIFIABLE, bool_(modifiable));
        Ok(out)
    }

    /// An estimate of the object's size in bytes (C_GetObjectSize).
    pub fn size(&self) -> usize {
        let secret = match &self.secret {
            Secret::None => 0,
            Secret::Plain(m) => material_len(m),
            Secret::Wrapped(b) => b.len(),
        };
        self.attrs.values().map(|v| v.len() + 16).sum::<usize>() + secret
    }

    /// The key material if it is at hand (public keys: from the attributes).
    pub fn material(&self) -> Result<KeyMaterial> {
        // A public key missing its own parts can only come from a damaged store.
        let need = |ty: CK_ATTRIBUTE_TYPE| {
            self.attr(ty).ok_or_else(|| {
                Error::device(format!(
                    "object {}: stored public key lacks attribute 0x{ty:x}",
                    hex(&self.uid)
                ))
            })
        };
        match (&self.secret, self.class, self.key_type) {
            (Secret::Plain(m), _, _) => Ok(m.clone()),
            (Secret::Wrapped(_), _, _) => Err(CKR_USER_NOT_LOGGED_IN.into()),
            (Secret::None, CKO_PUBLIC_KEY, Some(CKK_RSA)) => Ok(KeyMaterial::RsaPublic {
                n: need(CKA_MODULUS)?.to_vec(),
                e: need(CKA_PUBLIC_EXPONENT)?.to_vec(),
            }),
            (Secret::None, CKO_PUBLIC_KEY, Some(CKK_EC)) => {
                let curve = mechanism::curve_from_params(need(CKA_EC_PARAMS)?)?;
                Ok(KeyMaterial::EcPublic {
                    curve,
                    point: ec_point_raw(need(CKA_EC_POINT)?, curve)?,
                })
            }
            _ => Err(CKR_KEY_TYPE_INCONSISTENT.into()),
        }
    }

    /// Check a key's usage flag for an operation (CKA_ENCRYPT, CKA_SIGN, …).
    pub fn check_usage(&self, flag: CK_ATTRIBUTE_TYPE, mech: CK_MECHANISM_TYPE) -> Result<()> {
        if self.key_type.is_none() {
            return Err(CKR_KEY_HANDLE_INVALID.into());
        }
        if !self.bool_attr(flag) {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED.into());
        }
        if let Some(list) = self.attrs.get(&CKA_ALLOWED_MECHANISMS) {
            if !list.is_empty() {
                let allowed = list
                    .chunks_exact(std::mem::size_of::<CK_ULONG>())
                    .any(|c| as_ulong(c) == Some(mech));
                if !allowed {
                    return Err(Error::msg(
                        CKR_MECHANISM_INVALID,
                        format!("mechanism 0x{mech:x} is not in the key's CKA_ALLOWED_MECHANISMS"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Check a secret key length for its type: AES 16/24/32 bytes, generic secret 1..=512;
/// `rv` is the code for a bad one (it depends on the call).
pub fn check_secret_len(kt: CK_KEY_TYPE, len: usize, rv: CK_RV) -> Result<()> {
    let ok = match kt {
        CKK_AES => matches!(len, 16 | 24 | 32),
        _ => (1..=512).contains(&len),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::msg(
            rv,
            format!("secret key length {len} not supported"),
        ))
    }
}

fn bits(n: &[u8]) -> CK_ULONG {
    let n = strip_zeros(n);
    match n.first() {
        None => 0,
        Some(b) => (n.len() * 8 - b.leading_zeros() as usize) as CK_ULONG,
    }
}

fn material_len(m: &KeyMaterial) -> usize {
    match m {
        KeyMaterial::Secret { value, .. } => value.len(),
        KeyMaterial::RsaPrivate { der } => der.len(),
        KeyMaterial::RsaPublic { n, e } => n.len() + e.len(),
        KeyMaterial::EcPrivate { d, point, .. } => d.len() + point.len(),
        KeyMaterial::EcPublic { point, .. } => point.len(),
        KeyMaterial::Remote { public, .. } => material_len(public),
    }
}

/// The value of a sensitive attribute, from the material.
fn secret_part(m: &KeyMaterial, ty: CK_ATTRIBUTE_TYPE) -> Option<Vec<u8>> {
    match (m, ty) {
        (KeyMaterial::Secret { value, .. }, CKA_VALUE) => Some(value.to_vec()),
        (KeyMaterial::EcPrivate { d, .. }, CKA_VALUE) => Some(d.to_vec()),
        (KeyMaterial::RsaPrivate { der }, _) => {
            let c = mechanism::rsa_components(der).ok()?;
            Some(match ty {
                CKA_PRIVATE_EXPONENT => c.d.to_vec(),
                CKA_PRIME_1 => c.p.to_vec(),
                CKA_PRIME_2 => c.q.to_vec(),
                CKA_EXPONENT_1 => c.dp.to_vec(),
                CKA_EXPONENT_2 => c.dq.to_vec(),
                CKA_COEFFICIENT => c.qinv.to_vec(),
                _ => return None,
            })
        }
        _ => None,
    }
}

// CK_ULONG is u64 here but not on every target: the casts keep the format fixed.
#[allow(clippy::unnecessary_cast)]
fn encode_attrs(attrs: &BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>) -> Vec<u8> {
    let mut out = vec![1u8]; // format version
    for (ty, v) in attrs {
        out.extend_from_slice(&(*ty as u64).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The attributes the token's index and visibility check need (CKA_CLASS, CKA_PRIVATE,
/// CKA_LABEL, CKA_ID), as stored, so that an object loaded from the store need not be
/// decoded until it is used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub class: CK_OBJECT_CLASS,
    pub private: bool,
    /// Stored bytes of the summarized attributes, in [`SUMMARY_TYPES`] order.
    raw: [Option<Vec<u8>>; 4],
}

/// The attribute types a [`Summary`] holds.
pub const SUMMARY_TYPES: [CK_ATTRIBUTE_TYPE; 4] = [CKA_CLASS, CKA_PRIVATE, CKA_LABEL, CKA_ID];

impl Summary {
    fn from_raw(raw: [Option<Vec<u8>>; 4]) -> Option<Summary> {
        let class = raw[0].as_deref().and_then(as_ulong)?;
        let private = matches!(raw[1].as_deref(), Some([b]) if *b != CK_FALSE);
        Some(Summary {
            class,
            private,
            raw,
        })
    }

    /// The stored value of one summarized attribute (`None` if absent or not summarized).
    pub fn get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        let i = SUMMARY_TYPES.iter().position(|t| *t == ty)?;
        self.raw[i].as_deref()
    }

    /// `(could match, decided)`: false if a summarized attribute of `t` differs; `decided`
    /// when `t` names only summarized attributes (else the object itself must be asked).
    pub fn prefilter(&self, t: &[Attr]) -> (bool, bool) {
        let mut decided = true;
        for (ty, v) in t {
            match SUMMARY_TYPES.iter().position(|x| x == ty) {
                Some(i) => {
                    if self.raw[i].as_deref() != Some(v.as_slice()) {
                        return (false, true);
                    }
                }
                None => decided = false,
            }
        }
        (true, decided)
    }
}

/// The summary of a stored attribute blob, checking the blob's whole structure as
/// [`Object::from_stored`] does (so a blob that summarizes also decodes).
pub fn summarize(mut b: &[u8]) -> Option<Summary> {
    if b.first() != Some(&1) {
        return None;
    }
    b = &b[1..];
    let mut raw: [Option<Vec<u8>>; 4] = Default::default();
    while !b.is_empty() {
        let ty = u64::from_le_bytes(b.get(..8)?.try_into().ok()?) as CK_ATTRIBUTE_TYPE;
        let len = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
        let v = b.get(12..12usize.checked_add(len)?)?;
        if let Some(i) = SUMMARY_TYPES.iter().position(|t| *t == ty) {
            raw[i] = Some(v.to_vec());
        }
        b = &b[12 + len..];
    }
    Summary::from_raw(raw)
}

impl Object {
    /// This object's [`Summary`].
    pub fn summary(&self) -> Summary {
        let raw = SUMMARY_TYPES.map(|t| self.attrs.get(&t).cloned());
        Summary::from_raw(raw).unwrap_or(Summary {
            class: self.class,
            private: self.is_private(),
            raw: Default::default(),
        })
    }
}

fn decode_attrs(mut b: &[u8]) -> Option<BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>> {
    if b.first() != Some(&1) {
        return None;
    }
    b = &b[1..];
    let mut out = BTreeMap::new();
    while !b.is_empty() {
        let ty = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let len = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
        let v = b.get(12..12 + len)?.to_vec();
        out.insert(ty as CK_ATTRIBUTE_TYPE, v);
        b = &b[12 + len..];
    }
    Some(out)
}

/// Serialize key material for wrapping (plaintext: callers keep it in `Zeroizing`).
#[allow(clippy::unnecessary_cast)]
pub fn encode_material(m: &KeyMaterial) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    let put = |out: &mut Vec<u8>, v: &[u8]| {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    };
    match m {
        KeyMaterial::Secret { key_type, value } => {
            out.push(1);
            put(&mut out, &(*key_type as u64).to_le_bytes());
            put(&mut out, value);
        }
        KeyMaterial::RsaPrivate { der } => {
            out.push(2);
            put(&mut out, der);
        }
        KeyMaterial::EcPrivate { curve, d, point } => {
            out.push(3);
            put(&mut out, &[curve_id(*curve)]);
            put(&mut out, d);
            put(&mut out, point);
        }
        KeyMaterial::RsaPublic { n, e } => {
            out.push(4);
            put(&mut out, n);
            put(&mut out, e);
        }
        KeyMaterial::EcPublic { curve, point } => {
            out.push(5);
            put(&mut out, &[curve_id(*curve)]);
            put(&mut out, point);
        }
        // A KMS key is never serialized (the token refuses to store one); the tag
        // decodes to nothing.
        KeyMaterial::Remote { .. } => out.push(0),
    }
    out
}

fn curve_id(c: Curve) -> u8 {
    match c {
        Curve::P256 => 1,
        Curve::P384 => 2,
        Curve::P521 => 3,
        Curve::K256 => 4,
    }
}

/// Inverse of [`encode_material`].
pub fn decode_material(b: &[u8]) -> Option<KeyMaterial> {
    let (&tag, mut rest) = b.split_first()?;
    let mut fields: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        fields.push(Zeroizing::new(rest.get(4..4 + len)?.to_vec()));
        rest = &rest[4 + len..];
    }
    let curve = |f: &[u8]| match f {
        [1] => Some(Curve::P256),
        [2] => Some(Curve::P384),
        [3] => Some(Curve::P521),
        [4] => Some(Curve::K256),
        _ => None,
    };
    Some(match (tag, fields.as_slice()) {
        (1, [kt, v]) => KeyMaterial::Secret {
            key_type: u64::from_le_bytes(kt.as_slice().try_into().ok()?) as CK_KEY_TYPE,
            value: v.clone(),
        },
        (2, [der]) => KeyMaterial::RsaPrivate { der: der.clone() },
        (3, [c, d, p]) => KeyMaterial::EcPrivate {
            curve: curve(c)?,
            d: d.clone(),
            point: p.to_vec(),
        },
        (4, [n, e]) => KeyMaterial::RsaPublic {
            n: n.to_vec(),
            e: e.to_vec(),
        },
        (5, [c, p]) => KeyMaterial::EcPublic {
            curve: curve(c)?,
            point: p.to_vec(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_round_trip() {
        let mut m = BTreeMap::new();
        m.insert(CKA_LABEL, b"x".to_vec());
        m.insert(CKA_ID, vec![]);
        assert_eq!(decode_attrs(&encode_attrs(&m)).unwrap(), m);
        assert!(decode_attrs(&[1, 2, 3]).is_none());
        assert!(decode_attrs(&[]).is_none());
    }

    #[test]
    fn material_round_trip() {
        let m = KeyMaterial::Secret {
            key_type: CKK_AES,
            value: Zeroizing::new(vec![7; 16]),
        };
        let b = encode_material(&m);
        match decode_material(&b).unwrap() {
            KeyMaterial::Secret { key_type, value } => {
                assert_eq!(key_type, CKK_AES);
                assert_eq!(value.as_slice(), &[7; 16]);
            }
            _ => panic!("wrong kind"),
        }
        assert!(decode_material(&b[..b.len() - 1]).is_none());
    }

    #[test]
    fn data_object_defaults_and_rules() {
        let t = vec![
            (CKA_CLASS, ulong(CKO_DATA)),
            (CKA_LABEL, b"d".to_vec()),
            (CKA_VALUE, b"v".to_vec()),
        ];
        let mut o = Object::create(&t, None, None, None, Origin::Imported).unwrap();
        assert!(!o.is_private());
        assert!(matches!(o.read(CKA_MODULUS), Read::Invalid));
        assert_eq!(
            o.set(&[(CKA_CLASS, ulong(CKO_CERTIFICATE))], false)
                .unwrap_err()
                .rv(),
            CKR_ATTRIBUTE_READ_ONLY
        );
        o.set(&[(CKA_LABEL, b"e".to_vec())], false).unwrap();
        assert_eq!(o.attr(CKA_LABEL).unwrap(), b"e");
        let bad = vec![(CKA_CLASS, ulong(CKO_DATA)), (CKA_MODULUS, vec![1])];
        assert_eq!(
            Object::create(&bad, None, None, None, Origin::Imported)
                .err()
                .unwrap()
                .rv(),
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        let inc = vec![
            (CKA_CLASS, ulong(CKO_DATA)),
            (CKA_LABEL, b"a".to_vec()),
            (CKA_LABEL, b"b".to_vec()),
        ];
        assert_eq!(
            Object::create(&inc, None, None, None, Origin::Imported)
                .err()
                .unwrap()
                .rv(),
            CKR_TEMPLATE_INCONSISTENT
        );
    }

    #[test]
    fn der_octet_string_forms() {
        assert_eq!(der_octet_string(&[1, 2]), vec![4, 2, 1, 2]);
        assert_eq!(der_octet_string(&[0; 133])[..3], [4, 0x81, 133]);
    }
}
