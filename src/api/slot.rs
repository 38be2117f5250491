//! Slot and token management (§5.5).

use super::general::{crate_version, pad, pad32};
use super::module;
use crate::error::Result;
use crate::mechanism;
use cryptoki_sys::*;

/// Minimum and maximum PIN lengths (bytes), as the token info reports them.
pub const MIN_PIN: usize = 4;
pub const MAX_PIN: usize = 64;

/// C_GetSlotList: every slot has its token present.
pub fn slot_list(_token_present: bool) -> Result<Vec<CK_SLOT_ID>> {
    let m = module()?;
    Ok(m.tokens.iter().map(|t| t.slot_id).collect())
}

/// C_GetSlotInfo.
pub fn slot_info(slot: CK_SLOT_ID) -> Result<CK_SLOT_INFO> {
    let m = module()?;
    let t = m.token(slot)?;
    Ok(CK_SLOT_INFO {
        slotDescription: pad::<64>(
            &format!("p11kms {} ({})", t.config.label, t.config.backend.name()).to_lowercase(),
        ),
        manufacturerID: pad32("p11kms"),
        flags: CKF_TOKEN_PRESENT,
        hardwareVersion: crate_version(),
        firmwareVersion: crate_version(),
    })
}

/// C_GetTokenInfo.
pub fn token_info(slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
    let m = module()?;
    let t = m.token(slot)?;
    let (ro, rw) = m.session_counts(slot as usize);
    Ok(CK_TOKEN_INFO {
        label: pad32(&t.label()?),
        manufacturerID: pad32("p11kms"),
        // The backend, so a tool (and its user) can tell a KMS token from a local one.
        model: pad::<16>(t.config.backend.name()),
        serialNumber: pad::<16>(&t.serial()?),
        flags: t.flags()?,
        ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
        ulSessionCount: (ro + rw) as CK_ULONG,
        ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
        ulRwSessionCount: rw as CK_ULONG,
        ulMaxPinLen: MAX_PIN as CK_ULONG,
        ulMinPinLen: MIN_PIN as CK_ULONG,
        ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: crate_version(),
        firmwareVersion: crate_version(),
        utcTime: [b' '; 16],
    })
}

/// C_GetMechanismList.
pub fn mechanism_list(slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
    module()?.token(slot)?;
    Ok(mechanism::registry().iter().map(|m| m.mech).collect())
}

/// C_GetMechanismInfo.
pub fn mechanism_info(slot: CK_SLOT_ID, mech: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    module()?.token(slot)?;
    let i = mechanism::info(mech)?;
    Ok(CK_MECHANISM_INFO {
        ulMinKeySize: i.min_key as CK_ULONG,
        ulMaxKeySize: i.max_key as CK_ULONG,
        flags: i.flags,
    })
}

/// C_InitToken: refused while any session is open on the token.
pub fn init_token(slot: CK_SLOT_ID, so_pin: &[u8], label: &[u8; 32]) -> Result<()> {
    let m = module()?;
    let t = m.token(slot)?;
    if !m.sessions_of(slot as usize).is_empty() {
        return Err(CKR_SESSION_EXISTS.into());
    }
    let label =
        std::str::from_utf8(label).map_err(|_| crate::error::Error::from(CKR_ARGUMENTS_BAD))?;
    t.init_token(so_pin, label.trim_end_matches([' ', '\0']))
}

/// C_InitPIN: the SO, in a read-write session.
pub fn init_pin(h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    if s.token.logged_in() != Some(CKU_SO) {
        return Err(CKR_USER_NOT_LOGGED_IN.into());
    }
    if !s.rw {
        return Err(CKR_SESSION_READ_ONLY.into());
    }
    s.token.init_pin(pin)
}

/// C_SetPIN: in a read-write session.
pub fn set_pin(h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
    let m = module()?;
    let s = m.session(h)?;
    if !s.rw {
        return Err(CKR_SESSION_READ_ONLY.into());
    }
    s.token.set_pin(old, new)
}
