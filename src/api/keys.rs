//! Key management (§5.14): generation, wrapping, unwrapping.

use super::{check_class, key_entry, module};
use crate::error::{Error, Result};
use crate::mechanism::{self, KeyMaterial, MechParam, Mechanism};
use crate::object::{check_secret_len, find, find_ulong, Attr, Object, Origin};
use crate::session::{Cap, Output};
use cryptoki_sys::*;
use zeroize::Zeroizing;

/// C_GenerateKey.
pub fn generate_key(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    template: &[Attr],
) -> Result<CK_OBJECT_HANDLE> {
    let m = module()?;
    let s = m.session(h)?;
    let kt = match mech.mech {
        CKM_AES_KEY_GEN => CKK_AES,
        CKM_GENERIC_SECRET_KEY_GEN => CKK_GENERIC_SECRET,
        _ => return Err(CKR_MECHANISM_INVALID.into()),
    };
    if mech.param != MechParam::None {
        return Err(CKR_MECHANISM_PARAM_INVALID.into());
    }
    let len = find_ulong(template, CKA_VALUE_LEN)?.ok_or(CKR_TEMPLATE_INCOMPLETE)? as usize;
    check_secret_len(kt, len, CKR_KEY_SIZE_RANGE)?;
    if find(template, CKA_VALUE)?.is_some() {
        return Err(CKR_TEMPLATE_INCONSISTENT.into());
    }
    let value = mechanism::generate_secret(len)?;
    let material = KeyMaterial::Secret {
        key_type: kt,
        value,
    };
    let o = Object::create(
        template,
        Some(CKO_SECRET_KEY),
        Some(kt),
        Some(material),
        Origin::Generated(mech.mech),
    )?;
    s.token.add_generated(o, h, s.rw)
}

/// The public half of a private key's material.
fn public_of(m: &KeyMaterial) -> Result<KeyMaterial> {
    Ok(match m {
        KeyMaterial::RsaPrivate { der } => {
            let c = mechanism::rsa_components(der)?;
            KeyMaterial::RsaPublic {
                n: c.n.clone(),
                e: c.e.clone(),
            }
        }
        KeyMaterial::EcPrivate { curve, point, .. } => KeyMaterial::EcPublic {
            curve: *curve,
            point: point.clone(),
        },
        _ => return Err(CKR_GENERAL_ERROR.into()),
    })
}

/// A default CKA_ID for a key pair whose templates name none: SHA-1 of the public
/// value (modulus or EC point), as pkcs11-tool and most modules do.
fn default_id(public: &KeyMaterial) -> Result<Vec<u8>> {
    let v = match public {
        KeyMaterial::RsaPublic { n, .. } => n.clone(),
        KeyMaterial::EcPublic { point, .. } => point.clone(),
        _ => vec![],
    };
    let mut d = mechanism::digest_init(&Mechanism {
        mech: CKM_SHA_1,
        param: MechParam::None,
    })?;
    d.update(&v)?;
    d.finish()
}

/// C_GenerateKeyPair: returns (public, private) handles.
pub fn generate_key_pair(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    pub_t: &[Attr],
    priv_t: &[Attr],
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    let m = module()?;
    let s = m.session(h)?;
    if mech.param != MechParam::None {
        return Err(CKR_MECHANISM_PARAM_INVALID.into());
    }
    // A token key pair on a KMS token is made by KMS.
    if let Some(pair) = s.token.generate_remote_pair(mech, pub_t, priv_t, s.rw)? {
        return Ok(pair);
    }
    let (kt, material) = match mech.mech {
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            let bits = find_ulong(pub_t, CKA_MODULUS_BITS)?.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let e = find(pub_t, CKA_PUBLIC_EXPONENT)?
                .map(|e| e.to_vec())
                .unwrap_or(vec![1, 0, 1]);
            (CKK_RSA, mechanism::generate_rsa(bits as u64, &e)?)
        }
        CKM_EC_KEY_PAIR_GEN => {
            let params = match (find(pub_t, CKA_EC_PARAMS)?, find(priv_t, CKA_EC_PARAMS)?) {
                (Some(a), Some(b)) if a != b => return Err(CKR_TEMPLATE_INCONSISTENT.into()),
                (Some(a), _) | (None, Some(a)) => a,
                (None, None) => return Err(CKR_TEMPLATE_INCOMPLETE.into()),
            };
            let curve = mechanism::curve_from_params(params)?;
            (CKK_EC, mechanism::generate_ec(curve)?)
        }
        _ => return Err(CKR_MECHANISM_INVALID.into()),
    };
    let public = public_of(&material)?;
    // Both halves share CKA_ID: take it from either template, else derive it.
    let id = match (find(pub_t, CKA_ID)?, find(priv_t, CKA_ID)?) {
        (Some(a), Some(b)) if a != b => return Err(CKR_TEMPLATE_INCONSISTENT.into()),
        (Some(a), _) | (None, Some(a)) => a.to_vec(),
        (None, None) => default_id(&public)?,
    };
    let with_id = |t: &[Attr]| -> Vec<Attr> {
        let mut v: Vec<Attr> = t.iter().filter(|(ty, _)| *ty != CKA_ID).cloned().collect();
        v.push((CKA_ID, id.clone()));
        v
    };
    let origin = Origin::Generated(mech.mech);
    let po = Object::create(
        &with_id(pub_t),
        Some(CKO_PUBLIC_KEY),
        Some(kt),
        Some(public),
        origin,
    )?;
    let so = Object::create(
        &with_id(priv_t),
        Some(CKO_PRIVATE_KEY),
        Some(kt),
        Some(material),
        origin,
    )?;
    let ph = s.token.add(po, h, s.rw)?;
    match s.token.add(so, h, s.rw) {
        Ok(sh) => Ok((ph, sh)),
        Err(e) => {
            let _ = s.token.destroy(ph, s.rw);
            Err(e)
        }
    }
}

/// C_WrapKey: secret keys only, under AES-KW/KWP or RSA-OAEP (or any encryption the
/// wrapping key and mechanism allow).
pub fn wrap_key(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    cap: Cap,
) -> Result<Output> {
    let m = module()?;
    let s = m.session(h)?;
    let we = key_entry(s.token, wrapping, CKR_WRAPPING_KEY_HANDLE_INVALID)?;
    let ke = key_entry(s.token, key, CKR_KEY_HANDLE_INVALID)?;
    let trusted = {
        let w = we.obj()?.read();
        check_class(&w, &[CKO_SECRET_KEY, CKO_PUBLIC_KEY])
            .map_err(|_| Error::from(CKR_WRAPPING_KEY_TYPE_INCONSISTENT))?;
        w.check_usage(CKA_WRAP, mech.mech)?;
        w.bool_attr(CKA_TRUSTED)
    };
    {
        let k = ke.obj()?.read();
        if k.class != CKO_SECRET_KEY {
            return Err(CKR_KEY_NOT_WRAPPABLE.into());
        }
        if !k.bool_attr(CKA_EXTRACTABLE) {
            return Err(CKR_KEY_UNEXTRACTABLE.into());
        }
        if k.bool_attr(CKA_WRAP_WITH_TRUSTED) && !trusted {
            return Err(CKR_KEY_NOT_WRAPPABLE.into());
        }
    }
    let wk = s.token.key(&we)?;
    s.token.ensure_plain(&ke)?;
    let value = match ke.obj()?.read().material()? {
        KeyMaterial::Secret { value, .. } => value,
        _ => return Err(CKR_KEY_NOT_WRAPPABLE.into()),
    };
    let out = mechanism::encrypt_init(mech, &wk)
        .map_err(|e| {
            if e.rv() == CKR_KEY_TYPE_INCONSISTENT {
                CKR_WRAPPING_KEY_TYPE_INCONSISTENT.into()
            } else {
                e
            }
        })?
        .oneshot(&value)?;
    match cap {
        None => Ok(Output::Len(out.len())),
        Some(c) if c < out.len() => Err(Error::too_small(out.len())),
        _ => Ok(Output::Bytes(out)),
    }
}

/// C_UnwrapKey: the template names the class (secret key) and key type.
pub fn unwrap_key(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: &[u8],
    template: &[Attr],
) -> Result<CK_OBJECT_HANDLE> {
    let m = module()?;
    let s = m.session(h)?;
    let ue = key_entry(s.token, unwrapping, CKR_UNWRAPPING_KEY_HANDLE_INVALID)?;
    {
        let u = ue.obj()?.read();
        check_class(&u, &[CKO_SECRET_KEY, CKO_PRIVATE_KEY])
            .map_err(|_| Error::from(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT))?;
        u.check_usage(CKA_UNWRAP, mech.mech)?;
    }
    let class = find_ulong(template, CKA_CLASS)?.unwrap_or(CKO_SECRET_KEY);
    if class != CKO_SECRET_KEY {
        return Err(CKR_TEMPLATE_INCONSISTENT.into());
    }
    let kt = find_ulong(template, CKA_KEY_TYPE)?.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    if find(template, CKA_VALUE)?.is_some() {
        return Err(CKR_TEMPLATE_INCONSISTENT.into());
    }
    let uk = s.token.key(&ue)?;
    let value = Zeroizing::new(
        mechanism::decrypt_init(mech, &uk)
            .map_err(|e| {
                if e.rv() == CKR_KEY_TYPE_INCONSISTENT {
                    CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT.into()
                } else {
                    e
                }
            })?
            .oneshot(wrapped)
            .map_err(|e| match e.rv() {
                CKR_ENCRYPTED_DATA_INVALID => Error::from(CKR_WRAPPED_KEY_INVALID),
                CKR_ENCRYPTED_DATA_LEN_RANGE | CKR_DATA_LEN_RANGE => {
                    Error::from(CKR_WRAPPED_KEY_LEN_RANGE)
                }
                _ => e,
            })?,
    );
    if let Some(l) = find_ulong(template, CKA_VALUE_LEN)? {
        if l as usize != value.len() {
            return Err(CKR_TEMPLATE_INCONSISTENT.into());
        }
    }
    check_secret_len(kt, value.len(), CKR_WRAPPED_KEY_INVALID)?;
    let t: Vec<Attr> = template
        .iter()
        .filter(|(ty, _)| *ty != CKA_VALUE_LEN)
        .cloned()
        .collect();
    let material = KeyMaterial::Secret {
        key_type: kt,
        value,
    };
    let o = Object::create(
        &t,
        Some(CKO_SECRET_KEY),
        Some(kt),
        Some(material),
        Origin::Imported,
    )?;
    s.token.add(o, h, s.rw)
}
