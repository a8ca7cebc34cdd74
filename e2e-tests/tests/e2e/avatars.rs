//! Avatars (docs/attachments.md, "Avatars"), tested from outside against the real `kitsulan`
//! binary, on the Lite disk store (SQLite) and on a real S3 server (s3s-fs, PostgreSQL).
//!
//! Alice sets a JPEG avatar carrying an EXIF GPS tag; Bob, her contact, hears of it on the
//! gateway, sees the version in her profile, and downloads a PNG of at most 256x256 with no
//! metadata at all; Carol, who shares no conversation with Alice, cannot get it. In a group, an
//! admin sets the avatar, a plain member fetches it but cannot change it, an outsider cannot
//! fetch it. A 6 MiB file, a GIF, a truncated PNG and a decompression-bomb PNG are refused and
//! change nothing; a replaced or removed avatar's blob is deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use kitsulan_client::assert_refused;
use kitsulan_client::attachments::{BlobServer, Store, blob_url, files_named, get_status};
use kitsulan_client::avatars::fetch_avatar;
use kitsulan_client::e2ee::E2eeDevice;
use kitsulan_client::gateway::LiveInbox;
use kitsulan_client::people::person;
use kitsulan_proto::v1::avatar_event::Owner;
use kitsulan_proto::v1::event::Body;
use kitsulan_proto::v1::{AvatarInfo, Event, MemberRole};

const WAIT: Duration = Duration::from_secs(15);
const MIB: usize = 1024 * 1024;
const BUCKET: &str = "kitsulan-avatars";
/// Text inside the EXIF block of Alice's photo; it must not survive.
const EXIF_MARKER: &[u8] = b"KitsuLAN test photo at the Eiffel tower";

/// The ids of the stored avatar blobs (a store may keep more than one file per object).
fn avatar_files(setup: &BlobServer) -> BTreeSet<String> {
    files_named(&setup.blob_dir(), "")
        .into_iter()
        .filter(|f| f.components().any(|c| c.as_os_str() == "avatars"))
        .filter_map(|f| {
            let name = f.file_name()?.to_string_lossy().into_owned();
            let id = name.get(..36)?;
            uuid_like(id).then(|| id.to_owned())
        })
        .collect()
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36
        && s.chars()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

async fn gateway(setup: &BlobServer, device: &E2eeDevice) -> LiveInbox {
    let mut inbox = LiveInbox::new();
    inbox.connect(&setup.url(), device.client.access_token(), false).await.unwrap();
    inbox.sync(WAIT).await.unwrap();
    inbox
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A big-endian EXIF (TIFF) block: an ImageDescription with [`EXIF_MARKER`] and a GPS IFD
/// with latitude 48°51'29.58" N.
fn exif_with_gps() -> Vec<u8> {
    let mut description = EXIF_MARKER.to_vec();
    description.push(0);
    if description.len() % 2 == 1 {
        description.push(0);
    }
    let ifd0 = 8u32;
    let text = ifd0 + 2 + 2 * 12 + 4;
    let gps = text + description.len() as u32;
    let rationals = gps + 2 + 2 * 12 + 4;
    let mut t = Vec::new();
    t.extend_from_slice(b"MM\0\x2a");
    t.extend_from_slice(&ifd0.to_be_bytes());
    // IFD0: ImageDescription (ASCII), GPSInfo (LONG offset).
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&0x010Eu16.to_be_bytes());
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&(EXIF_MARKER.len() as u32 + 1).to_be_bytes());
    t.extend_from_slice(&text.to_be_bytes());
    t.extend_from_slice(&0x8825u16.to_be_bytes());
    t.extend_from_slice(&4u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&gps.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&description);
    // GPS IFD: GPSLatitudeRef "N", GPSLatitude 48/1 51/1 2958/100.
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&0x0001u16.to_be_bytes());
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&2u32.to_be_bytes());
    t.extend_from_slice(b"N\0\0\0");
    t.extend_from_slice(&0x0002u16.to_be_bytes());
    t.extend_from_slice(&5u16.to_be_bytes());
    t.extend_from_slice(&3u32.to_be_bytes());
    t.extend_from_slice(&rationals.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    for (num, den) in [(48u32, 1u32), (51, 1), (2958, 100)] {
        t.extend_from_slice(&num.to_be_bytes());
        t.extend_from_slice(&den.to_be_bytes());
    }
    t
}

/// A 640x480 JPEG photo with an APP1 EXIF segment (GPS position) right after its SOI.
fn jpeg_with_gps() -> Vec<u8> {
    let photo = RgbImage::from_fn(640, 480, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let jpeg = encode(&DynamicImage::ImageRgb8(photo), ImageFormat::Jpeg);
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&exif_with_gps());
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    // The photo really carries it (the image crate reads the EXIF block back).
    {
        let mut decoder =
            image::ImageReader::with_format(Cursor::new(&out), ImageFormat::Jpeg).into_decoder().unwrap();
        let exif = image::ImageDecoder::exif_metadata(&mut decoder).unwrap().expect("the photo has EXIF");
        assert!(exif.windows(EXIF_MARKER.len()).any(|w| w == EXIF_MARKER));
    }
    out
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = RgbaImage::from_fn(width, height, |x, y| Rgba([(x % 256) as u8, 0, (y % 256) as u8, 200]));
    encode(&DynamicImage::ImageRgba8(image), ImageFormat::Png)
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A well-formed PNG of 100000x100000 grey pixels (10 GB decoded) in under 100 bytes.
fn bomb_png() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    out.extend(chunk(b"IHDR", &ihdr));
    // zlib: one stored block of a single zero byte (its Adler-32 is 0x00010001).
    out.extend(chunk(b"IDAT", &[0x78, 0x01, 0x01, 0x01, 0x00, 0xFE, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x01]));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// The chunk types of a PNG, in order.
fn png_chunks(png: &[u8]) -> Vec<String> {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let mut at = 8;
    let mut kinds = Vec::new();
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned());
        at += 12 + len;
    }
    kinds
}

/// Checks a downloaded avatar: a PNG within 256x256 with nothing but pixels in it.
fn assert_clean_png(bytes: &[u8], want: (u32, u32)) {
    let kinds = png_chunks(bytes);
    assert!(
        kinds.iter().all(|k| ["IHDR", "IDAT", "IEND"].contains(&k.as_str())),
        "only pixel chunks, no eXIf/tEXt/iCCP: {kinds:?}"
    );
    assert!(!bytes.windows(4).any(|w| w == b"Exif"), "no EXIF left");
    assert!(!bytes.windows(EXIF_MARKER.len()).any(|w| w == EXIF_MARKER), "no EXIF text left");
    let image = image::load_from_memory_with_format(bytes, ImageFormat::Png).unwrap();
    assert_eq!((image.width(), image.height()), want);
}

fn avatar_event(event: &Event, owner: &Owner, version: u64) -> bool {
    matches!(&event.body, Some(Body::Avatar(a))
        if a.owner.as_ref() == Some(owner) && a.avatar.as_ref().is_some_and(|v| v.avatar_version == version))
}

async fn avatars(store: Store) {
    let setup = BlobServer::start(store, BUCKET, &[]).await;
    let url = setup.url();
    let alice = person(&setup.server, "alice").await;
    let bob = person(&setup.server, "bob").await;
    let carol = person(&setup.server, "carol").await;
    let dave = person(&setup.server, "dave").await;
    let (a, b, d) =
        (alice.account_id().to_owned(), bob.account_id().to_owned(), dave.account_id().to_owned());
    // Alice writes to Bob, who accepts: they are contacts.
    let direct = alice.client.open_direct(&b).await.unwrap().conversation.unwrap().id;
    bob.client.accept_request(&direct).await.unwrap();
    let mut bob_live = gateway(&setup, &bob).await;

    // Nobody has one yet.
    assert_eq!(bob.client.profile(&a).await.unwrap().avatar, Some(AvatarInfo::default()));
    assert_refused(bob.client.account_avatar_url(&a).await, "AVATAR_NOT_FOUND");

    // Alice sets a photo with her GPS position in it.
    let photo = jpeg_with_gps();
    let set = alice.client.set_my_avatar(photo).await.unwrap();
    assert_eq!(set.avatar_version, 1);
    assert!(!set.avatar_id.is_empty());
    let owner = Owner::AccountId(a.clone());
    bob_live.wait_event(WAIT, "Alice's avatar event", |e| avatar_event(e, &owner, 1)).await.unwrap();
    let profile = bob.client.profile(&a).await.unwrap();
    assert_eq!(profile.avatar.as_ref(), Some(&set));
    let mine = alice.client.account().get_my_account(kitsulan_proto::v1::GetMyAccountRequest {}).await;
    assert_eq!(mine.unwrap().into_inner().account.unwrap().avatar.as_ref(), Some(&set));

    // Bob downloads it: 256x192 (aspect kept), PNG, not a byte of metadata.
    let answer = bob.client.account_avatar_url(&a).await.unwrap();
    assert_eq!(answer.avatar.as_ref(), Some(&set));
    let fetched = fetch_avatar(&url, &answer).await.unwrap();
    if store == Store::Disk {
        assert_eq!(fetched.content_type, "image/png");
    }
    assert_clean_png(&fetched.bytes, (256, 192));
    // Alice may fetch her own; Carol, who shares no conversation with her, may not.
    fetch_avatar(&url, &alice.client.account_avatar_url(&a).await.unwrap()).await.unwrap();
    assert_refused(carol.client.account_avatar_url(&a).await, "AVATAR_NOT_FOUND");
    // Carol still sees the version in the profile (everyone signed in sees profiles).
    assert_eq!(carol.client.profile(&a).await.unwrap().avatar.unwrap().avatar_version, 1);
    assert_eq!(avatar_files(&setup).len(), 1, "one stored avatar: {:?}", avatar_files(&setup));

    // Bad uploads are refused and change nothing.
    let mut big = png(16, 16);
    big.resize(6 * MIB, 0);
    assert_refused(alice.client.set_my_avatar(big).await, "AVATAR_TOO_LARGE");
    assert_refused(
        alice.client.set_my_avatar(b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0".to_vec()).await,
        "AVATAR_TYPE_INVALID",
    );
    assert_refused(alice.client.set_my_avatar(Vec::new()).await, "AVATAR_TYPE_INVALID");
    let whole = png(300, 300);
    assert_refused(alice.client.set_my_avatar(whole[..whole.len() / 2].to_vec()).await, "AVATAR_INVALID");
    let bomb = bomb_png();
    assert!(bomb.len() < 100, "{} bytes", bomb.len());
    assert_refused(alice.client.set_my_avatar(bomb).await, "AVATAR_INVALID");
    assert_eq!(bob.client.profile(&a).await.unwrap().avatar.as_ref(), Some(&set), "unchanged");
    assert_eq!(avatar_files(&setup).len(), 1, "nothing stored: {:?}", avatar_files(&setup));
    assert_eq!(
        fetch_avatar(&url, &bob.client.account_avatar_url(&a).await.unwrap()).await.unwrap().bytes,
        fetched.bytes
    );

    // A new one replaces the old: the old blob goes, its URL stops working.
    let old_url = blob_url(&url, answer.download.as_ref().unwrap());
    let second = alice.client.set_my_avatar(png(100, 50)).await.unwrap();
    assert_eq!(second.avatar_version, 2);
    assert_ne!(second.avatar_id, set.avatar_id);
    bob_live.wait_event(WAIT, "the second avatar event", |e| avatar_event(e, &owner, 2)).await.unwrap();
    let files = avatar_files(&setup);
    assert_eq!(files, BTreeSet::from([second.avatar_id.clone()]), "only the new one is stored");
    assert_eq!(get_status(&old_url).await.unwrap(), 404);
    let small = fetch_avatar(&url, &bob.client.account_avatar_url(&a).await.unwrap()).await.unwrap();
    assert_clean_png(&small.bytes, (100, 50));

    // Removed: version 3, nothing to fetch, the blob is gone.
    let removed = alice.client.remove_my_avatar().await.unwrap();
    assert_eq!((removed.avatar_id.as_str(), removed.avatar_version), ("", 3));
    bob_live.wait_event(WAIT, "the removal event", |e| avatar_event(e, &owner, 3)).await.unwrap();
    assert_refused(bob.client.account_avatar_url(&a).await, "AVATAR_NOT_FOUND");
    assert!(avatar_files(&setup).is_empty(), "{:?}", avatar_files(&setup));

    // A group: Alice (owner) makes Bob an admin; Bob sets the avatar; Dave, a plain member,
    // fetches it but may not change it; Carol is not a member.
    let group = alice.client.create_group("Climbing", &[b.as_str(), d.as_str()]).await.unwrap().id;
    alice.client.set_member_role(&group, &b, MemberRole::Admin).await.unwrap();
    let mut dave_live = gateway(&setup, &dave).await;
    assert_refused(dave.client.set_group_avatar(&group, png(64, 64)).await, "NOT_ALLOWED");
    assert_refused(carol.client.set_group_avatar(&group, png(64, 64)).await, "CONVERSATION_NOT_FOUND");
    assert_refused(dave.client.group_avatar_url(&group).await, "AVATAR_NOT_FOUND");
    let group_avatar = bob.client.set_group_avatar(&group, png(512, 1024)).await.unwrap();
    assert_eq!(group_avatar.avatar_version, 1);
    let group_owner = Owner::ConversationId(group.clone());
    dave_live.wait_event(WAIT, "the group avatar event", |e| avatar_event(e, &group_owner, 1)).await.unwrap();
    let listed = dave.client.get_conversation(&group).await.unwrap();
    assert_eq!(listed.avatar.as_ref(), Some(&group_avatar));
    let fetched = fetch_avatar(&url, &dave.client.group_avatar_url(&group).await.unwrap()).await.unwrap();
    assert_clean_png(&fetched.bytes, (128, 256));
    assert_refused(carol.client.group_avatar_url(&group).await, "AVATAR_NOT_FOUND");
    assert_refused(dave.client.remove_group_avatar(&group).await, "NOT_ALLOWED");
    assert_refused(dave.client.set_group_avatar(&group, bomb_png()).await, "NOT_ALLOWED");
    // A direct conversation has no avatar of its own.
    assert_refused(alice.client.set_group_avatar(&direct, png(8, 8)).await, "NOT_A_GROUP");
    // The owner removes it.
    let removed = alice.client.remove_group_avatar(&group).await.unwrap();
    assert_eq!(removed.avatar_version, 2);
    assert_refused(dave.client.group_avatar_url(&group).await, "AVATAR_NOT_FOUND");
    assert!(avatar_files(&setup).is_empty(), "{:?}", avatar_files(&setup));

    // A guild's icon: set by who may manage the guild, seen by its members, audited; gone
    // with the guild.
    let guild = alice.client.create_guild("Crag crew").await.unwrap().id;
    let invite = alice.client.create_invite(&guild, 0, 0).await.unwrap();
    dave.client.join_guild(&invite.code).await.unwrap();
    assert_refused(dave.client.set_guild_icon(&guild, png(64, 64)).await, "NOT_ALLOWED");
    assert_refused(carol.client.set_guild_icon(&guild, png(64, 64)).await, "GUILD_NOT_FOUND");
    assert_refused(alice.client.set_guild_icon(&guild, bomb_png()).await, "AVATAR_INVALID");
    assert!(avatar_files(&setup).is_empty(), "a refused icon stores nothing");
    let icon = alice.client.set_guild_icon(&guild, png(300, 300)).await.unwrap();
    assert_eq!(icon.avatar_version, 1);
    dave_live
        .wait_event(
            WAIT,
            "the guild changed",
            |e| matches!(&e.body, Some(Body::Guild(g)) if g.guild_id == guild),
        )
        .await
        .unwrap();
    let seen = dave.client.get_guild(&guild).await.unwrap().guild.unwrap();
    assert_eq!((seen.icon_id.as_str(), seen.icon_version), (icon.avatar_id.as_str(), 1));
    let fetched = fetch_avatar(&url, &dave.client.guild_icon_url(&guild).await.unwrap()).await.unwrap();
    assert_clean_png(&fetched.bytes, (256, 256));
    assert_refused(carol.client.guild_icon_url(&guild).await, "AVATAR_NOT_FOUND");
    let log = alice
        .client
        .guilds()
        .list_audit_log(kitsulan_proto::v1::ListAuditLogRequest {
            guild_id: guild.clone(),
            before: String::new(),
            limit: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(
        (log[0].action(), log[0].detail.as_str()),
        (kitsulan_proto::v1::AuditAction::GuildUpdated, "icon changed")
    );
    // Replaced: the old blob goes; the guild deleted: the new one goes too.
    let second = alice.client.set_guild_icon(&guild, png(32, 32)).await.unwrap();
    assert_eq!(avatar_files(&setup), BTreeSet::from([second.avatar_id.clone()]));
    let delete = kitsulan_proto::v1::DeleteGuildRequest {
        guild_id: guild.clone(),
        confirm_name: "Crag crew".to_owned(),
    };
    alice.client.guilds().delete_guild(delete).await.unwrap();
    assert!(avatar_files(&setup).is_empty(), "{:?}", avatar_files(&setup));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn avatars_are_resized_stripped_and_shown_to_contacts_on_disk() {
    avatars(Store::Disk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn avatars_are_resized_stripped_and_shown_to_contacts_through_s3() {
    avatars(Store::S3).await;
}
