//! The arm64 build (Raspberry Pi 3, 4, 5 and other 64-bit ARM boards), run under Debian's
//! `qemu-aarch64` user-mode emulator on this x86-64 machine: it starts, answers `/readyz`,
//! serves the embedded PWA, and two people sign up and exchange an end-to-end encrypted
//! message that arrives live. `make pi-check` builds the binary and runs this test with
//! `KITSULAN_ARM64_BIN` pointing at it; `make test` does the same. Without it (or without
//! qemu) the test fails, saying what is missing.
//!
//! The binary is checked to be an AArch64 ELF before it is run, so a host build put in its
//! place cannot pass. A dynamically linked (glibc) build runs with the Debian arm64 loader and
//! libraries from `/usr/aarch64-linux-gnu` (package libc6-arm64-cross); a static (musl) build
//! runs as it is.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kitsulan_client::conversations::Content;
use kitsulan_client::people::{online, person, start_with};
use kitsulan_client::{Database, Options};
use kitsulan_proto::v1::{MessageChange, event};

/// Everything is emulated, so allow several times the usual waits.
const WAIT: Duration = Duration::from_secs(60);
/// The Debian arm64 glibc the cross compiler uses (its loader and shared libraries).
const SYSROOT: &str = "/usr/aarch64-linux-gnu";
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;

/// How an ELF file is built: for which machine, and whether it asks for a dynamic loader.
#[derive(Debug)]
struct Elf {
    machine: u16,
    dynamic: bool,
}

/// Reads the ELF header and program headers of `path` (64-bit little-endian only, as every
/// Linux build we make is).
fn read_elf(path: &Path) -> Result<Elf, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at =
        |at: usize| bytes.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes);
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(format!("{} is not a 64-bit little-endian ELF file", path.display()));
    }
    let bad = || format!("{} has a truncated ELF header", path.display());
    let machine = u16_at(18).ok_or_else(bad)?;
    let phoff = usize::try_from(u64_at(32).ok_or_else(bad)?).map_err(|_| bad())?;
    let phentsize = usize::from(u16_at(54).ok_or_else(bad)?);
    let phnum = usize::from(u16_at(56).ok_or_else(bad)?);
    let mut dynamic = false;
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize).ok_or_else(bad)? == PT_INTERP {
            dynamic = true;
        }
    }
    Ok(Elf { machine, dynamic })
}

/// `name` found on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// The arm64 binary from `KITSULAN_ARM64_BIN`, and how to run it under qemu. Panics, saying
/// what to do, when anything is missing.
fn arm64_under_qemu() -> Options {
    let binary = std::env::var_os("KITSULAN_ARM64_BIN").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "KITSULAN_ARM64_BIN is not set: it must name an aarch64 build of kitsulan \
             (`make pi-check` builds one and runs this test with it)"
        )
    });
    let elf = read_elf(&binary).unwrap_or_else(|e| panic!("KITSULAN_ARM64_BIN: {e}"));
    assert_eq!(
        elf.machine,
        EM_AARCH64,
        "KITSULAN_ARM64_BIN={} is not an AArch64 binary (ELF machine {}); build it with \
         `--target aarch64-unknown-linux-gnu` or `-musl`",
        binary.display(),
        elf.machine
    );
    let qemu = on_path("qemu-aarch64")
        .unwrap_or_else(|| panic!("qemu-aarch64 is not on PATH: install Debian's qemu-user"));
    let args: &[&str] = if elf.dynamic {
        let loader = Path::new(SYSROOT).join("lib/ld-linux-aarch64.so.1");
        assert!(
            loader.is_file(),
            "{} is missing: the glibc build needs Debian's arm64 libc (libc6-arm64-cross, \
             installed with gcc-aarch64-linux-gnu)",
            loader.display()
        );
        &["-L", SYSROOT]
    } else {
        &[]
    };
    Options::new(Database::Sqlite).binary(binary).under(qemu, args)
}

#[tokio::test]
async fn the_arm64_binary_serves_two_people_under_qemu() {
    let server = start_with(arm64_under_qemu()).await;
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();

    // Ready, on its SQLite database.
    let ready = http.get(format!("{}/readyz", server.url())).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "sqlite", "{body}");

    // The web app is embedded (not the page a build without it serves).
    let page = http.get(server.url()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<html") && !page.contains("built without the web app"),
        "the arm64 binary does not embed the PWA:\n{page}"
    );

    // Two people sign up (Argon2id, key upload), open a direct conversation, and Alice's
    // encrypted message reaches Bob live over the gateway and decrypts there.
    let mut alice = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let mut bob_in = online(&server, &bob.client, "bob").await;
    let chat = alice.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap();
    bob.client.accept_if_request(&chat.id).await.unwrap();
    let text = "hello bob, from a raspberry pi";
    let sent = alice.send_to_conversation(&chat.id, text.as_bytes()).await.unwrap().message;
    let arrived = bob_in
        .wait_event(WAIT, &format!("message {} at bob", sent.id), |e| {
            matches!(&e.body, Some(event::Body::Message(m))
                if m.change() == MessageChange::New && m.message.as_ref().is_some_and(|m| m.id == sent.id))
        })
        .await
        .unwrap();
    let Some(event::Body::Message(arrived)) = arrived.body else { unreachable!() };
    assert_eq!(arrived.message.as_deref(), Some(&sent), "the message as stored");
    let content = bob_in.decrypted(&mut bob, &sent.id, WAIT).await.unwrap();
    assert_eq!(content, Content::Text(text.as_bytes().to_vec()));

    // And it stays in Bob's history.
    let history = bob.read_history(&chat.id).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.message.id == sent.id && e.content == Content::Text(text.as_bytes().to_vec())),
        "bob's history lacks the message"
    );

    // It stops cleanly on SIGTERM, as under systemd.
    let mut server = server;
    server.terminate().unwrap();
    let status = server.wait_exit(WAIT).await.unwrap();
    assert!(status.success(), "kitsulan under qemu exited with {status}:\n{}", server.log_text());
}
