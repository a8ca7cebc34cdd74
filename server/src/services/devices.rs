//! The signed-in person's devices: list, rename, sign out another one.

use super::Error;
use super::auth::{Auth, Caller};
use super::names::DeviceName;
use crate::ids::DeviceId;
use crate::store::DeviceRecord;

/// Operations on the caller's own devices.
#[derive(Clone)]
pub struct Devices {
    pub(super) auth: Auth,
}

impl Devices {
    /// The caller's devices, oldest first.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<DeviceRecord>, Error> {
        Ok(self.auth.core.store.list_devices(caller.account_id).await?)
    }

    /// Renames one of the caller's devices.
    pub async fn rename(&self, caller: &Caller, device: DeviceId, name: &str) -> Result<DeviceRecord, Error> {
        let name = DeviceName::parse(name)?;
        self.auth
            .core
            .store
            .rename_device(caller.account_id, device, name.as_str())
            .await?
            .ok_or(Error::DeviceNotFound)
    }

    /// Signs out another of the caller's devices; its tokens stop working at once.
    pub async fn sign_out_other(&self, caller: &Caller, device: DeviceId) -> Result<(), Error> {
        if device == caller.device_id {
            return Err(Error::CannotSignOutCurrentDevice);
        }
        if !self.auth.core.store.delete_device(Some(caller.account_id), device).await? {
            return Err(Error::DeviceNotFound);
        }
        self.auth.core.delivery.device_gone(caller.account_id, device).await;
        tracing::info!(%device, by = %caller.device_id, "device signed out by its owner");
        Ok(())
    }
}
