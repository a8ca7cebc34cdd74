//! Key backup and recovery of an [`E2eeDevice`] (docs/e2ee.md, "Backup and recovery";
//! crypto/FORMAT.md, "Key backup v1"), over `KeyBackupService` ([`crate::backup`]).
//!
//! A device that holds the account key sets a backup up with a new recovery key
//! ([`E2eeDevice::set_up_key_backup`]): the auth data (the key check), the identity (the account
//! key's secret) and every Megolm session it holds, each encrypted under the backup key `B`
//! before it leaves the device. New sessions follow with [`E2eeDevice::back_up_sessions`].
//! A brand-new device of the person signs in with the password and restores with the recovery
//! key alone ([`E2eeDevice::restore_from_backup`]): the key is checked against the auth data
//! (a wrong key stops here, before the device sets anything up), the identity gives the account
//! key (it must be the one the account publishes), the device signs and uploads its own
//! certificate, then every session entry is imported, bound to the sender device, account and
//! conversation the entry names.

use anyhow::{Context as _, bail};
use kitsulan_crypto::backup::BackupKey;
use kitsulan_crypto::{AccountKey, OsRng};
use kitsulan_proto::v1::{BackupSession, BackupVersion};

use crate::Client;
use crate::e2ee::{E2eeDevice, uuid_bytes};

/// At most this many session entries per `PutBackupSessions` (backup.proto).
pub const PUT_BATCH: usize = 100;

/// A key backup this device writes to: the backup key and the server's version. Which
/// sessions are in it is the machine's to know (a flag on each inbound session).
pub struct KeyBackup {
    key: BackupKey,
    version: String,
}

impl std::fmt::Debug for KeyBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBackup").field("version", &self.version).finish_non_exhaustive()
    }
}

impl KeyBackup {
    /// The backup version written to.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The recovery key (display form), to write down.
    pub fn recovery_key(&self) -> String {
        self.key.recovery_key().to_string()
    }

    /// The backup key and its recovery key in the forms a server must never hold, labelled
    /// (for the secrets scan).
    pub fn secrets(&self) -> Vec<(String, Vec<u8>)> {
        let display = self.recovery_key();
        let compact: String = display.chars().filter(|c| !c.is_whitespace()).collect();
        vec![
            ("backup key B".to_owned(), self.key.to_bytes().to_vec()),
            ("recovery key".to_owned(), display.into_bytes()),
            ("recovery key without spaces".to_owned(), compact.into_bytes()),
        ]
    }
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Session entries imported.
    pub imported: usize,
    /// Entries refused, by session id, with why (the others are imported all the same).
    pub refused: Vec<(String, String)>,
}

impl E2eeDevice {
    /// Sets up a new key backup with a new recovery key (and a passphrase wrap when
    /// `passphrase` is given): `CreateBackupVersion` with the auth data and the identity, then
    /// every session this device holds. An older version is replaced (the server keeps only the
    /// current one for writes).
    pub async fn set_up_key_backup(&mut self, passphrase: Option<&str>) -> anyhow::Result<KeyBackup> {
        let mut rng = OsRng::new();
        let key = BackupKey::generate(&mut rng);
        let account = uuid_bytes(self.account_id())?;
        let auth_data = key.auth_data(passphrase.map(str::as_bytes), &mut rng)?;
        let secret = self.machine().account_key_secret()?;
        let identity = key.encrypt_identity(&account, &secret, &mut rng);
        let version =
            self.client.create_backup_version(auth_data, identity).await.context("CreateBackupVersion")?;
        let mut backup = KeyBackup { key, version: version.version };
        // A new version holds nothing yet: every session goes again.
        self.machine_step(|m| {
            m.reset_backed_up();
            Ok(())
        })?;
        self.back_up_sessions(&mut backup).await?;
        Ok(backup)
    }

    /// Puts the sessions the machine has not backed up yet (or that improved since) into
    /// `backup`, [`PUT_BATCH`] at a time, marking each batch once the server took it; returns
    /// how many went.
    pub async fn back_up_sessions(&mut self, backup: &mut KeyBackup) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let batch = self.machine_step(|m| Ok(m.sessions_to_back_up(&backup.key, PUT_BATCH)))?;
            if batch.is_empty() {
                return Ok(total);
            }
            let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
            let sessions =
                batch.into_iter().map(|(session_id, data)| BackupSession { session_id, data }).collect();
            self.client.put_backup_sessions(&backup.version, sessions).await.context("PutBackupSessions")?;
            total += ids.len();
            self.machine_step(|m| {
                m.mark_backed_up(&ids);
                Ok(())
            })?;
        }
    }

    /// Opens the account's current backup with `recovery_key`: a malformed key is
    /// `recovery_key_malformed` before any network use; a key that is not this backup's is
    /// `wrong_recovery_key` (a [`kitsulan_crypto::Error`] in the chain). `client` must be
    /// signed in. Nothing is written.
    pub async fn open_key_backup(
        client: &Client,
        recovery_key: &str,
    ) -> anyhow::Result<(BackupKey, BackupVersion)> {
        let key = BackupKey::from_recovery_key(recovery_key)?;
        let version = client.get_backup().await.context("GetBackup")?;
        key.check(&version.auth_data)?;
        Ok((key, version))
    }

    /// A brand-new device of `username`, restored from the account's key backup with the
    /// recovery key alone: signs in with the password, opens the backup (a wrong key fails
    /// here, and the device signs out), takes the account key from the identity (it must be
    /// the key the account publishes), uploads its certificate and `one_time_keys` one-time
    /// keys, and imports every session entry.
    pub async fn restore_from_backup(
        url: &str,
        username: &str,
        password: &str,
        device_name: &str,
        recovery_key: &str,
        one_time_keys: usize,
    ) -> anyhow::Result<(Self, KeyBackup, Restored)> {
        // A malformed key is refused before any network use.
        BackupKey::from_recovery_key(recovery_key)?;
        let mut client = Client::connect(url).await?;
        client
            .sign_in_as(username, password, device_name)
            .await
            .with_context(|| format!("SignIn of {username}"))?;
        let (key, version) = match Self::open_key_backup(&client, recovery_key).await {
            Ok(opened) => opened,
            Err(e) => {
                let _ = client.sign_out().await;
                return Err(e);
            }
        };
        let account_id = client.session().map(|s| s.account_id.clone()).unwrap_or_default();
        let secret = key.decrypt_identity(&uuid_bytes(&account_id)?, &version.identity)?;
        let account_key = AccountKey::from_secret_bytes(&secret);
        let published = client
            .keys()
            .query_keys(kitsulan_proto::v1::QueryKeysRequest { account_ids: vec![account_id.clone()] })
            .await
            .context("QueryKeys (own account)")?
            .into_inner()
            .accounts
            .into_iter()
            .find(|a| a.account_id == account_id)
            .map(|a| a.account_key)
            .unwrap_or_default();
        if published != account_key.public_key() {
            let _ = client.sign_out().await;
            bail!("the backed-up account key is not the one the account publishes");
        }
        let mut device = Self::new(client, account_key);
        device.upload_keys(one_time_keys).await?;
        let entries =
            device.client.all_backup_sessions(&version.version, 0).await.context("ListBackupSessions")?;
        let backup = KeyBackup { key, version: version.version };
        let mut restored = Restored::default();
        for entry in &entries {
            match device.import_backed_up(&backup, entry) {
                Ok(()) => restored.imported += 1,
                Err(e) => restored.refused.push((entry.session_id.clone(), format!("{e:#}"))),
            }
        }
        Ok((device, backup, restored))
    }

    /// Imports one entry of `backup`'s version (e.g. one put by another device since) through
    /// the machine: bound to the sender device, account and conversation the entry names; a
    /// session held with the same or an earlier first index is kept (and marked backed up,
    /// as it came from the backup).
    pub fn import_backed_up(&mut self, backup: &KeyBackup, entry: &BackupSession) -> anyhow::Result<()> {
        self.machine_step(|m| m.import_backed_up(&backup.key, &entry.session_id, &entry.data))?;
        Ok(())
    }
}
