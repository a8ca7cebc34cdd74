//! Found on the LAN: the server's mDNS/DNS-SD announcement, checked by an independent client
//! (python-zeroconf, `e2e-tests/scripts/mdns_browse.py`) over the machine's real interfaces.
//! Each test uses its own host and instance names, so parallel runs do not see each other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kitsulan_client::{Database, Options, TestServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/mdns_browse.py")
}

/// Fails loudly when python-zeroconf is missing (`.ci/run` installs it).
async fn require_zeroconf() {
    let check = Command::new("python3").args(["-c", "import zeroconf"]).output().await;
    match check {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "these tests need python3 with python-zeroconf (an independent mDNS client): \
             `python3 -m pip install zeroconf`"
        ),
    }
}

/// A name no other run on this LAN uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// The script, with its stdout read line by line as JSON.
struct Browser {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg(script())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot run python3");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    async fn next(&mut self, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("mdns_browse.py said nothing within {within:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("mdns_browse.py ended without output"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON from mdns_browse.py ({e}): {line}"))
    }
}

/// This machine's addresses, from the kernel (IPv4 local routes and IPv6 interface addresses).
fn machine_addresses() -> BTreeSet<IpAddr> {
    let mut found = BTreeSet::new();
    // /proc/net/fib_trie: an address line followed by "/32 host LOCAL" is one of ours.
    let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let mut last = None;
    for line in trie.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.parse::<IpAddr>().ok();
        } else if line.contains("host LOCAL")
            && let Some(addr) = last
        {
            found.insert(addr);
        }
    }
    // /proc/net/if_inet6: 32 hex digits per address.
    for line in std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default().lines() {
        if let Some(hex) = line.split_whitespace().next()
            && let Ok(bits) = u128::from_str_radix(hex, 16)
        {
            found.insert(IpAddr::V6(bits.into()));
        }
    }
    found
}

fn parse_addresses(value: &Value) -> Vec<IpAddr> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            // Link-local IPv6 comes scoped: fe80::1%eth0.
            let text = a.as_str().unwrap();
            text.split('%').next().unwrap().parse().unwrap()
        })
        .collect()
}

async fn start(mode: &str, name: &str, host: &str, extra: &[(&str, &str)]) -> TestServer {
    let mut options = Options::new(Database::Sqlite)
        .env("KITSULAN_MDNS", mode)
        .env("KITSULAN_LISTEN", "0.0.0.0:0")
        .env("KITSULAN_SERVER_NAME", name)
        .env("KITSULAN_MDNS_HOSTNAME", host);
    for (key, value) in extra {
        options = options.env(key, value);
    }
    TestServer::start_with(options).await.unwrap()
}

#[tokio::test]
async fn the_server_is_found_on_the_lan_and_says_goodbye() {
    require_zeroconf().await;
    let (name, host) = (unique("KitsuLAN e2e"), unique("kt"));
    let mut server = start("on", &name, &host, &[]).await;
    let port = server.addr().port();

    let mut browser =
        Browser::start(&["find", "--instance", &name, "--host", &host, "--watch-goodbye", "15"]);
    let found = browser.next(Duration::from_secs(40)).await;
    assert_eq!(found["found"], true, "{name} not found over mDNS: {found}\n{}", server.log_text());
    assert_eq!(found["port"], port, "{found}");
    assert_eq!(found["server"], format!("{host}.local."), "{found}");
    assert_eq!(found["txt"]["path"], "/", "{found}");
    assert_eq!(found["txt"]["version"], env!("CARGO_PKG_VERSION"), "{found}");
    assert!(found["txt"].get("tls").is_none(), "plain HTTP must not claim tls: {found}");

    let ours = machine_addresses();
    for key in ["addresses", "host_addresses"] {
        let addresses = parse_addresses(&found[key]);
        assert!(!addresses.is_empty(), "{key}: {host}.local resolved to nothing: {found}");
        for addr in &addresses {
            assert!(ours.contains(addr), "{key}: {addr} is not an address of this machine ({ours:?})");
            assert!(!addr.is_loopback(), "{key}: loopback announced on the LAN: {found}");
        }
    }
    // The server listens on 0.0.0.0: IPv4 only, so no IPv6 address is announced.
    assert!(parse_addresses(&found["host_addresses"]).iter().all(IpAddr::is_ipv4), "{found}");

    // Shutting down withdraws the service (goodbye packets), so browsers forget it at once.
    server.terminate().unwrap();
    let gone = browser.next(Duration::from_secs(30)).await;
    assert_eq!(gone["removed"], true, "no goodbye seen: {gone}\n{}", server.log_text());
    server.wait_exit(Duration::from_secs(20)).await.unwrap();
    assert!(server.log_text().contains("mDNS announcement withdrawn"));
    let _ = browser.child.wait().await;
}

/// Two KitsuLAN boxes at one party, or a printer that already calls itself `kitsulan.local`: the
/// server must not answer for a name another device holds (that would send people's browsers to
/// the wrong box, or take the name from the device that had it). It probes first, the owner
/// answers, and the server announces itself as `<name>-2.local` instead; the owner keeps its name.
#[tokio::test]
async fn a_name_another_device_holds_is_left_to_it_and_the_server_takes_the_next_one() {
    require_zeroconf().await;
    let (name, host) = (unique("KitsuLAN taken"), unique("kt-taken"));
    // The other device: answering for <host>.local with a neighbour's address, defending it.
    let mut claimant = Browser::start(&["claim", "--host", &host, "--address", "auto", "--seconds", "90"]);
    let claimed = claimant.next(Duration::from_secs(30)).await;
    assert_eq!(claimed["claimed"], format!("{host}.local."), "{claimed}");
    let theirs: IpAddr = claimed["address"].as_str().unwrap().parse().unwrap();
    assert!(!machine_addresses().contains(&theirs), "the claimant must look like another machine: {theirs}");

    let server = start("on", &name, &host, &[]).await;
    let renamed = format!("{host}-2");
    let mut browser = Browser::start(&["find", "--instance", &name, "--host", &renamed, "--timeout", "20"]);
    let found = browser.next(Duration::from_secs(60)).await;
    assert_eq!(found["found"], true, "{name} not found over mDNS: {found}\n{}", server.log_text());
    assert_eq!(found["port"], server.addr().port(), "{found}");
    assert_eq!(
        found["server"],
        format!("{renamed}.local."),
        "the service must point at the new name: {found}"
    );
    let ours = machine_addresses();
    let addresses = parse_addresses(&found["host_addresses"]);
    assert!(!addresses.is_empty(), "{renamed}.local resolved to nothing: {found}");
    assert!(addresses.iter().all(|a| ours.contains(a)), "{renamed}.local must be this machine: {found}");
    assert!(
        server.log_text().contains("another device on the LAN already uses this mDNS name"),
        "the admin is told why the name changed:\n{}",
        server.log_text()
    );

    // The owner keeps its name: <host>.local answers with its address only, never ours.
    let mut other = Browser::start(&["find", "--instance", &name, "--host", &host, "--timeout", "10"]);
    let kept = other.next(Duration::from_secs(40)).await;
    let answered = parse_addresses(&kept["host_addresses"]);
    assert_eq!(answered, vec![theirs], "{host}.local was taken from the device that had it: {kept}");
    drop(claimant);
}

/// Whether process `pid` holds a UDP socket bound to port 5353 (from /proc, no tools).
fn holds_mdns_socket(pid: u32) -> bool {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && fields[1].ends_with(":14E9") {
                inodes.insert(format!("socket:[{}]", fields[9]));
            }
        }
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| inodes.contains(target.to_string_lossy().as_ref()))
}

#[tokio::test]
async fn off_announces_nothing_and_opens_no_mdns_socket() {
    require_zeroconf().await;
    let (name, host) = (unique("KitsuLAN off"), unique("kt-off"));
    let server = start("off", &name, &host, &[]).await;
    assert!(!holds_mdns_socket(server.pid().unwrap()), "KITSULAN_MDNS=off opened port 5353");

    let mut browser = Browser::start(&["find", "--instance", &name, "--host", &host, "--timeout", "4"]);
    let found = browser.next(Duration::from_secs(30)).await;
    assert_eq!(found["found"], false, "announced with KITSULAN_MDNS=off: {found}");
    assert_eq!(found["host_addresses"], serde_json::json!([]), "{host}.local answered: {found}");
    assert!(
        !found["seen"].as_array().unwrap().iter().any(|s| s.as_str().unwrap().starts_with(&name)),
        "{found}"
    );

    // The same settings with `on` do open it: the check above can see a responder.
    let (name_on, host_on) = (unique("KitsuLAN on"), unique("kt-on"));
    let on = start("on", &name_on, &host_on, &[]).await;
    assert!(holds_mdns_socket(on.pid().unwrap()), "KITSULAN_MDNS=on holds no socket on 5353");
}
