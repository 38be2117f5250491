//! The token store: one SQLite file per token (WAL, busy timeout), holding the token
//! record (key/value `meta`), and objects (attributes blob + optional wrapped secret).
//! Every write is one IMMEDIATE transaction: a crash leaves the old or the new state.

use crate::error::Result;
use std::path::Path;

/// One persisted object. `uid` is a random 16-byte identity chosen by the caller; it is
/// also what wrapped blobs bind as associated data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub uid: [u8; 16],
    /// Serialized non-secret attributes (format owned by `object/`).
    pub attrs: Vec<u8>,
    /// Wrapped secret material, if the object has any.
    pub secret: Option<Vec<u8>>,
}

/// An open token store.
pub struct Store {}

/// Writes inside one transaction.
pub struct Tx<'a> {
    _p: std::marker::PhantomData<&'a ()>,
}

impl Store {
    /// Open (creating if absent, with parent directories, mode 0600) the store at `path`.
    pub fn open(_path: &Path) -> Result<Store> {
        Ok(Store {})
    }

    /// Read one meta value.
    pub fn get_meta(&self, _key: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Every object.
    pub fn objects(&self) -> Result<Vec<StoredObject>> {
        Ok(vec![])
    }

    /// True if another connection (process) committed since the last call.
    pub fn changed_elsewhere(&self) -> Result<bool> {
        Ok(false)
    }

    /// Run `f` in one IMMEDIATE transaction; commit if it returns Ok, roll back otherwise.
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        f(&Tx { _p: std::marker::PhantomData })
    }
}

impl Tx<'_> {
    pub fn get_meta(&self, _key: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    pub fn set_meta(&self, _key: &str, _value: &[u8]) -> Result<()> {
        Ok(())
    }
    pub fn delete_meta(&self, _key: &str) -> Result<()> {
        Ok(())
    }
    /// Insert a new object; a duplicate uid is an error.
    pub fn insert_object(&self, _o: &StoredObject) -> Result<()> {
        Ok(())
    }
    /// Replace an object's attributes and secret; a missing uid is CKR_OBJECT_HANDLE_INVALID.
    pub fn update_object(&self, _o: &StoredObject) -> Result<()> {
        Ok(())
    }
    /// Delete an object; a missing uid is CKR_OBJECT_HANDLE_INVALID.
    pub fn delete_object(&self, _uid: &[u8; 16]) -> Result<()> {
        Ok(())
    }
    /// Delete every object (C_InitToken).
    pub fn clear_objects(&self) -> Result<()> {
        Ok(())
    }
}
