//! Object management (§5.7).

use super::module;
use crate::error::Result;
use crate::object::{Attr, Object, Origin, Read};
use crate::session::FindOp;
use cryptoki_sys::*;

/// C_CreateObject.
pub fn create(h: CK_SESSION_HANDLE, template: &[Attr]) -> Result<CK_OBJECT_HANDLE> {
    let m = module()?;
    let s = m.session(h)?;
    let o = Object::create(template, None, None, None, Origin::Imported)?;
    if o.bool_attr(CKA_TRUSTED) && s.token.logged_in() != Some(CKU_SO) {
        return Err(CKR_ATTRIBUTE_READ_ONLY.into());
    }
    s.token.add(o, h, s.rw)
}

/// C_CopyObject.
pub fn copy(
    h: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    template: &[Attr],
) -> Result<CK_OBJECT_HANDLE> {
    let m = module()?;
    let s = m.session(h)?;
    let e = s.token.entry(obj)?;
    s.token.ensure_plain(&e)?;
    let copy = e
        .obj()?
        .read()
        .copy_with(template, s.token.logged_in() == Some(CKU_SO))?;
    s.token.add(copy, h, s.rw)
}

/// C_DestroyObject.
pub fn destroy(h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    s.token.destroy(obj, s.rw)?;
    m.clear_key_caches(s.slot);
    Ok(())
}

/// C_GetObjectSize.
pub fn size(h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> Result<CK_ULONG> {
    let m = module()?;
    let s = m.session(h)?;
    let e = s.token.entry(obj)?;
    let n = e.obj()?.read().size();
    Ok(n as CK_ULONG)
}

/// One entry of a C_GetAttributeValue answer.
pub enum AttrOut {
    Value(Vec<u8>),
    Sensitive,
    Invalid,
}

/// C_GetAttributeValue: every entry answered; the overall code is chosen by `ffi/`.
pub fn get(
    h: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> Result<Vec<AttrOut>> {
    let m = module()?;
    let s = m.session(h)?;
    let e = s.token.entry(obj)?;
    // Reading a secret part of a non-sensitive token key needs it unwrapped; nothing
    // else does (on a KMS token unwrapping is a KMS call).
    let unwrap = {
        let o = e.obj()?.read();
        types.iter().any(|t| o.reads_wrapped_secret(*t))
    };
    if unwrap {
        let _ = s.token.ensure_plain(&e);
    }
    let o = e.obj()?.read();
    Ok(types
        .iter()
        .map(|t| match o.read(*t) {
            Read::Value(v) => AttrOut::Value(v.into_owned()),
            Read::Sensitive => AttrOut::Sensitive,
            Read::Invalid => AttrOut::Invalid,
        })
        .collect())
}

/// C_SetAttributeValue.
pub fn set(h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE, template: &[Attr]) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    s.token.set_attributes(obj, template, s.rw)
}

/// C_FindObjectsInit.
pub fn find_init(h: CK_SESSION_HANDLE, template: &[Attr]) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    if g.find.is_some() {
        return Err(CKR_OPERATION_ACTIVE.into());
    }
    let handles = s.token.find(template)?;
    g.find = Some(FindOp { handles, pos: 0 });
    Ok(())
}

/// C_FindObjects: up to `max` more handles.
pub fn find(h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    let f = g.find.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
    let end = (f.pos + max).min(f.handles.len());
    let out = f.handles[f.pos..end].to_vec();
    f.pos = end;
    Ok(out)
}

/// C_FindObjectsFinal.
pub fn find_final(h: CK_SESSION_HANDLE) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    let mut g = s.session.lock();
    g.find.take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
    Ok(())
}
