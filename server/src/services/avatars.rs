//! Avatars: account and group pictures (docs/attachments.md, "Avatars"). Unlike attachments
//! they are not encrypted: the server checks the image (size, type by its magic bytes), decodes
//! it with limits (so a decompression bomb is refused before it is allocated), fits it into
//! 256x256 and re-encodes it as PNG, which also drops every piece of metadata (EXIF, GPS, ICC,
//! comments). The PNG goes into the blob store (`avatars/<id>`, a fresh id per upload); the
//! account or group row points at it and carries a version that goes up with every change.
//!
//! # Security
//! Only contacts (accounts sharing a conversation both have accepted, with no block between
//! them: a message request shows no avatar either way) and the account itself get an account
//! avatar's download URL; only members get a group's. Everyone else gets AVATAR_NOT_FOUND, the
//! same as for an account or group without one. Only a group's owner and admins change its
//! avatar. Decoding runs on the blocking pool, at most [`MAX_DECODES`] at once, so uploads
//! cannot starve the async runtime or use more than that many decoders' memory.

use std::io::Cursor;
use std::sync::Arc;

use image::{DynamicImage, ImageDecoder as _, ImageFormat, ImageReader, Limits};

use super::{Caller, Delivery, Error, ErrorReason};
use crate::blobs::{BlobError, BlobKey, BlobStore, SignedRequest};
use crate::bus::Notice;
pub use crate::events::AvatarEvent;
use crate::ids::{AccountId, AvatarId, ConversationId, GuildId};
use crate::store::{
    AuditAction, AuditEntry, AvatarChange, ConversationKind, GroupAvatarOutcome, Role, Store, now_ms,
};

/// Stored avatars fit into this many pixels each way.
pub const AVATAR_SIZE: u32 = 256;
/// Larger images (in either dimension) are refused before decoding.
pub const MAX_DIMENSION: u32 = 8192;
/// At most this much memory per decode.
pub const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;
/// Decodes running at once, at most.
pub const MAX_DECODES: usize = 2;

/// An avatar as the caller may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvatarState {
    /// The current avatar (`None`: none).
    pub avatar: Option<AvatarId>,
    /// Its version (0: never had one).
    pub version: i64,
}

/// Avatars.
#[derive(Clone)]
pub struct Avatars {
    pub(super) store: Arc<dyn Store>,
    pub(super) delivery: Delivery,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) settings: super::AttachmentSettings,
    pub(super) decodes: Arc<tokio::sync::Semaphore>,
}

fn not_found() -> Error {
    Error::not_found(ErrorReason::AvatarNotFound, "no such avatar")
}

fn storage(e: BlobError) -> Error {
    Error::StorageUnavailable(e.to_string())
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(ErrorReason::AvatarInvalid, "image", message)
}

/// The format the first bytes say: PNG, JPEG or WebP only.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

/// Decodes (with limits), turns upright (EXIF orientation), fits into [`AVATAR_SIZE`] and
/// encodes as PNG. Blocking: run it on the blocking pool.
pub fn process(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, Error> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let refused = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => invalid(format!(
            "the image is too large to decode (at most {MAX_DIMENSION}x{MAX_DIMENSION} pixels)"
        )),
        other => invalid(format!("the image cannot be decoded: {other}")),
    };
    let mut decoder = reader.into_decoder().map_err(refused)?;
    let orientation = decoder.orientation().map_err(refused)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(refused)?;
    image.apply_orientation(orientation);
    if image.width() > AVATAR_SIZE || image.height() > AVATAR_SIZE {
        image = image.resize(AVATAR_SIZE, AVATAR_SIZE, image::imageops::FilterType::Lanczos3);
    }
    let image = if image.color().has_alpha() {
        DynamicImage::ImageRgba8(image.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8())
    };
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| Error::Internal(format!("cannot encode an avatar: {e}")))?;
    Ok(out.into_inner())
}

impl Avatars {
    /// The largest upload taken, in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.settings.avatar_max_bytes
    }

    /// Checks, decodes and re-encodes an upload, off the async runtime.
    async fn prepare(&self, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
        if bytes.len() as u64 > self.settings.avatar_max_bytes {
            return Err(Error::limit(
                ErrorReason::AvatarTooLarge,
                format!("an avatar is at most {} bytes on this server", self.settings.avatar_max_bytes),
            ));
        }
        let Some(format) = sniff(&bytes) else {
            return Err(Error::invalid(
                ErrorReason::AvatarTypeInvalid,
                "image",
                "an avatar is a PNG, JPEG or WebP image",
            ));
        };
        let permit = self
            .decodes
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the decoder pool is closed".into()))?;
        // The permit goes with the decode: a caller that hangs up does not free it early.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            process(&bytes, format)
        })
        .await
        .map_err(|e| Error::Internal(format!("decoding an avatar failed: {e}")))?
    }

    /// Stores a prepared PNG under a fresh id.
    async fn put(&self, png: Vec<u8>) -> Result<AvatarId, Error> {
        let id = AvatarId::generate();
        self.blobs.put_bytes(&BlobKey::avatar(id), png, "image/png").await.map_err(storage)?;
        Ok(id)
    }

    /// Deletes a blob nothing points at any more (logged if it cannot be).
    async fn discard(&self, id: AvatarId) {
        if let Err(e) = self.blobs.delete(&BlobKey::avatar(id)).await {
            tracing::warn!(error = %e, avatar = %id, "cannot delete an avatar blob that is no longer used");
        }
    }

    /// After the row changed: deletes the replaced blob and tells who should refetch.
    async fn changed(
        &self,
        change: AvatarChange,
        avatar: Option<AvatarId>,
        owner: Result<AccountId, ConversationId>,
    ) -> AvatarState {
        if let Some(previous) = change.previous {
            self.discard(previous).await;
        }
        let (event, conversation, accounts) = match owner {
            Ok(account) => {
                let accounts = match self.store.contacts(account).await {
                    Ok(contacts) => contacts,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot tell contacts an avatar changed");
                        vec![account]
                    }
                };
                let event = AvatarEvent {
                    account: Some(account),
                    conversation: None,
                    avatar,
                    version: change.version,
                };
                (event, false, accounts)
            }
            Err(group) => {
                let event =
                    AvatarEvent { account: None, conversation: Some(group), avatar, version: change.version };
                (event, true, Vec::new())
            }
        };
        self.delivery.publish(Notice::Avatar { event: Arc::new(event), conversation, accounts }).await;
        AvatarState { avatar, version: change.version }
    }

    async fn set_account(&self, caller: &Caller, avatar: Option<AvatarId>) -> Result<AvatarState, Error> {
        let change = match self.store.set_account_avatar(caller.account_id, avatar).await {
            Ok(Some(change)) => change,
            Ok(None) => {
                if let Some(id) = avatar {
                    self.discard(id).await;
                }
                return Err(Error::SessionInvalid);
            }
            Err(e) => {
                if let Some(id) = avatar {
                    self.discard(id).await;
                }
                return Err(e.into());
            }
        };
        Ok(self.changed(change, avatar, Ok(caller.account_id)).await)
    }

    /// Sets the caller's avatar from an uploaded PNG, JPEG or WebP.
    pub async fn set_mine(&self, caller: &Caller, image: Vec<u8>) -> Result<AvatarState, Error> {
        let png = self.prepare(image).await?;
        let id = self.put(png).await?;
        self.set_account(caller, Some(id)).await
    }

    /// Removes the caller's avatar.
    pub async fn remove_mine(&self, caller: &Caller) -> Result<AvatarState, Error> {
        self.set_account(caller, None).await
    }

    /// Refuses early (before decoding) when the caller may not change the group's avatar.
    async fn check_group_admin(&self, caller: &Caller, conversation: ConversationId) -> Result<(), Error> {
        let member = self.store.member(conversation, caller.account_id).await?;
        let record = self.store.conversation(conversation).await?;
        let (Some(member), Some(record)) = (member, record) else {
            return Err(Error::not_found(ErrorReason::ConversationNotFound, "no such conversation"));
        };
        if record.kind != ConversationKind::Group {
            return Err(Error::precondition(
                ErrorReason::NotAGroup,
                "only groups have an avatar of their own",
            ));
        }
        if member.role == Role::Member {
            return Err(not_allowed());
        }
        Ok(())
    }

    async fn set_group(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        avatar: Option<AvatarId>,
    ) -> Result<AvatarState, Error> {
        let outcome = self.store.set_group_avatar(conversation, caller.account_id, avatar).await;
        let refused = match outcome {
            Ok(GroupAvatarOutcome::Changed(change)) => {
                return Ok(self.changed(change, avatar, Err(conversation)).await);
            }
            Ok(GroupAvatarOutcome::NotMember) => {
                Error::not_found(ErrorReason::ConversationNotFound, "no such conversation")
            }
            Ok(GroupAvatarOutcome::NotAGroup) => {
                Error::precondition(ErrorReason::NotAGroup, "only groups have an avatar of their own")
            }
            Ok(GroupAvatarOutcome::NotAllowed) => not_allowed(),
            Err(e) => e.into(),
        };
        if let Some(id) = avatar {
            self.discard(id).await;
        }
        Err(refused)
    }

    /// Sets a group's avatar (its owner and admins).
    pub async fn set_group_avatar(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        image: Vec<u8>,
    ) -> Result<AvatarState, Error> {
        self.check_group_admin(caller, conversation).await?;
        let png = self.prepare(image).await?;
        let id = self.put(png).await?;
        self.set_group(caller, conversation, Some(id)).await
    }

    /// Removes a group's avatar (its owner and admins).
    pub async fn remove_group_avatar(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<AvatarState, Error> {
        self.check_group_admin(caller, conversation).await?;
        self.set_group(caller, conversation, None).await
    }

    async fn url(
        &self,
        avatar: Option<AvatarId>,
        version: i64,
    ) -> Result<(AvatarState, SignedRequest), Error> {
        let id = avatar.ok_or_else(not_found)?;
        let download = self
            .blobs
            .download_request(&BlobKey::avatar(id), self.settings.url_ttl)
            .await
            .map_err(storage)?;
        Ok((AvatarState { avatar: Some(id), version }, download))
    }

    /// A download URL for an account's avatar: the account itself and its contacts only.
    pub async fn account_url(
        &self,
        caller: &Caller,
        account: AccountId,
    ) -> Result<(AvatarState, SignedRequest), Error> {
        if account != caller.account_id && !self.store.are_contacts(caller.account_id, account).await? {
            return Err(not_found());
        }
        let record = self.store.account(account).await?.ok_or_else(not_found)?;
        if record.disabled {
            return Err(not_found());
        }
        self.url(record.avatar_id, record.avatar_version).await
    }

    /// A download URL for a group's avatar: its members only.
    pub async fn group_url(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<(AvatarState, SignedRequest), Error> {
        if self.store.member(conversation, caller.account_id).await?.is_none() {
            return Err(not_found());
        }
        let record = self.store.conversation(conversation).await?.ok_or_else(not_found)?;
        self.url(record.avatar_id, record.avatar_version).await
    }
}

impl Avatars {
    /// Sets a guild's icon (`None`: removes it) once the caller may manage the guild, and tells
    /// its members; the previous icon's blob is deleted.
    async fn set_guild(
        &self,
        caller: &Caller,
        guild: GuildId,
        image: Option<Vec<u8>>,
    ) -> Result<AvatarState, Error> {
        let has = super::guilds::guild_permissions(&*self.store, caller.account_id, guild)
            .await?
            .ok_or_else(|| Error::not_found(ErrorReason::GuildNotFound, "no such guild"))?;
        if !has.contains(super::guilds::permissions::Permissions::MANAGE_GUILD) {
            return Err(Error::Forbidden {
                reason: ErrorReason::NotAllowed,
                message: "your roles do not allow you to change this guild's icon".into(),
            });
        }
        let icon = match image {
            Some(bytes) => {
                let png = self.prepare(bytes).await?;
                Some(self.put(png).await?)
            }
            None => None,
        };
        let detail = if icon.is_some() { "icon changed" } else { "icon removed" };
        let entry = AuditEntry {
            actor: caller.account_id,
            action: AuditAction::GuildUpdated,
            target: None,
            detail: detail.to_owned(),
            at_ms: now_ms(),
        };
        let change = match self.store.set_guild_icon(guild, icon, &entry).await {
            Ok(Some(change)) => change,
            refused => {
                if let Some(id) = icon {
                    self.discard(id).await;
                }
                refused?;
                return Err(Error::not_found(ErrorReason::GuildNotFound, "no such guild"));
            }
        };
        if let Some(previous) = change.previous {
            self.discard(previous).await;
        }
        super::guilds::tell_members(&*self.store, &self.delivery, guild).await?;
        Ok(AvatarState { avatar: icon, version: change.version })
    }

    /// Sets a guild's icon (MANAGE_GUILD).
    pub async fn set_guild_icon(
        &self,
        caller: &Caller,
        guild: GuildId,
        image: Vec<u8>,
    ) -> Result<AvatarState, Error> {
        self.set_guild(caller, guild, Some(image)).await
    }

    /// Removes a guild's icon (MANAGE_GUILD).
    pub async fn remove_guild_icon(&self, caller: &Caller, guild: GuildId) -> Result<AvatarState, Error> {
        self.set_guild(caller, guild, None).await
    }

    /// A download URL for a guild's icon: its members only.
    pub async fn guild_url(
        &self,
        caller: &Caller,
        guild: GuildId,
    ) -> Result<(AvatarState, SignedRequest), Error> {
        if self.store.guild_member(guild, caller.account_id).await?.is_none() {
            return Err(not_found());
        }
        let record = self.store.guild(guild).await?.ok_or_else(not_found)?;
        self.url(record.icon_id, record.icon_version).await
    }

    /// Deletes a guild's icon blob after the guild itself was deleted.
    pub(super) async fn forget_guild_icon(&self, icon: Option<AvatarId>) {
        if let Some(id) = icon {
            self.discard(id).await;
        }
    }
}

fn not_allowed() -> Error {
    Error::Forbidden {
        reason: ErrorReason::NotAllowed,
        message: "only the group's owner and admins change its avatar".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn only_png_jpeg_and_webp_are_taken() {
        let image = DynamicImage::new_rgb8(4, 4);
        assert_eq!(sniff(&encode(&image, ImageFormat::Png)), Some(ImageFormat::Png));
        assert_eq!(sniff(&encode(&image, ImageFormat::Jpeg)), Some(ImageFormat::Jpeg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8L"), Some(ImageFormat::WebP));
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn images_are_fitted_into_256_pixels_as_png() {
        let image = DynamicImage::new_rgb8(1000, 500);
        let png = process(&encode(&image, ImageFormat::Jpeg), ImageFormat::Jpeg).unwrap();
        assert_eq!(sniff(&png), Some(ImageFormat::Png));
        let out = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
        assert_eq!((out.width(), out.height()), (256, 128));
        // Small ones keep their size.
        let small = DynamicImage::new_rgba8(40, 30);
        let png = process(&encode(&small, ImageFormat::Png), ImageFormat::Png).unwrap();
        let out = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
        assert_eq!((out.width(), out.height()), (40, 30));
    }

    #[test]
    fn truncated_and_oversized_images_are_refused() {
        let png = encode(&DynamicImage::new_rgb8(64, 64), ImageFormat::Png);
        let err = process(&png[..png.len() / 2], ImageFormat::Png).unwrap_err();
        assert_eq!(err.reason(), ErrorReason::AvatarInvalid);
        // A header claiming 100000x100000 pixels: refused before anything is allocated.
        let mut bomb = png.clone();
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let err = process(&bomb, ImageFormat::Png).unwrap_err();
        assert_eq!(err.reason(), ErrorReason::AvatarInvalid);
    }
}
