//! Found on the LAN: the server announces itself over mDNS/DNS-SD (RFC 6762, RFC 6763), so
//! people on the same network open `http(s)://kitsulan.local` instead of an address.
//!
//! - a `_kitsulan._tcp.local.` service named after the server (`KITSULAN_SERVER_NAME`), whose
//!   SRV record points at `<host>.local.` and the listening port, and whose TXT record carries
//!   `version`, `path=/` and, with HTTPS on, `tls=1`;
//! - A/AAAA answers for `<host>.local.` (`KITSULAN_MDNS_HOSTNAME`, default `kitsulan`) with the
//!   machine's addresses on the interfaces the server listens on (never loopback).
//!
//! The names are probed first; if another machine on the LAN already answers for
//! `kitsulan.local`, this one becomes `kitsulan-2.local` (then `-3` …) and says so in the log
//! ([`Announcer::hostname`] has the name in use). On shutdown it sends goodbye packets (TTL 0)
//! so browsers forget it at once. The responder is the `mdns-sd` crate on its own thread.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceInfo};
use tracing::{info, warn};

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_kitsulan._tcp.local.";

/// The TXT record of the service: the server's version, the path of the app, and `tls=1`
/// when the server speaks HTTPS on the announced port.
pub fn txt_properties(version: &str, tls: bool) -> Vec<(String, String)> {
    let mut txt = vec![("version".to_owned(), version.to_owned()), ("path".to_owned(), "/".to_owned())];
    if tls {
        txt.push(("tls".to_owned(), "1".to_owned()));
    }
    txt
}

/// What to announce.
#[derive(Clone, Debug)]
pub struct Announcement {
    /// The service instance name: the server's name as people see it.
    pub instance: String,
    /// The host label, without `.local` (`kitsulan`).
    pub hostname: String,
    /// The address the server listens on: its port is announced, and its IP chooses the
    /// interfaces (`0.0.0.0`: every IPv4 one; `::`: every one; an address: that interface).
    pub listen: SocketAddr,
    /// Whether the announced port speaks HTTPS.
    pub tls: bool,
    /// The server's version (TXT `version`).
    pub version: String,
}

/// The running responder; [`Announcer::stop`] says goodbye.
pub struct Announcer {
    daemon: ServiceDaemon,
    fullname: String,
    hostname: Arc<Mutex<String>>,
}

impl Announcer {
    /// Starts answering on the LAN. Fails if the multicast socket cannot be set up or the
    /// names are unusable; a name taken by another host is not a failure (it is renamed).
    pub fn start(what: &Announcement) -> anyhow::Result<Self> {
        let ip = what.listen.ip();
        anyhow::ensure!(
            !ip.is_loopback(),
            "the server listens on {ip} (KITSULAN_LISTEN), which nobody on the LAN can reach: \
             listen on 0.0.0.0 or a LAN address, or set KITSULAN_MDNS=off"
        );
        let daemon =
            ServiceDaemon::new().map_err(|e| anyhow::anyhow!("cannot start the mDNS responder: {e}"))?;
        let interfaces = || -> mdns_sd::Result<()> {
            // Loopback addresses mean nothing to another machine.
            daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
            match ip {
                IpAddr::V4(v4) if v4.is_unspecified() => daemon.disable_interface(IfKind::IPv6),
                IpAddr::V6(v6) if v6.is_unspecified() => Ok(()),
                specific => {
                    daemon.disable_interface(IfKind::All)?;
                    daemon.enable_interface(IfKind::Addr(specific))
                }
            }
        };
        interfaces().map_err(|e| anyhow::anyhow!("cannot choose the mDNS interfaces: {e}"))?;
        let host = format!("{}.local.", what.hostname);
        let service = ServiceInfo::new(
            SERVICE_TYPE,
            &instance_label(&what.instance),
            &host,
            "",
            what.listen.port(),
            txt_properties(&what.version, what.tls).as_slice(),
        )
        .map_err(|e| anyhow::anyhow!("cannot describe the mDNS service: {e}"))?
        .enable_addr_auto();
        let fullname = service.get_fullname().to_owned();
        let hostname = Arc::new(Mutex::new(host.clone()));
        let events = daemon.monitor().map_err(|e| anyhow::anyhow!("mDNS responder: {e}"))?;
        let watching = hostname.clone();
        std::thread::Builder::new()
            .name("mdns-events".into())
            .spawn(move || watch(&events, &watching))
            .context("cannot start the mDNS event thread")?;
        daemon.register(service).map_err(|e| anyhow::anyhow!("cannot announce over mDNS: {e}"))?;
        info!(service = %fullname, host = %host, port = what.listen.port(), tls = what.tls,
              "announcing on the LAN over mDNS");
        Ok(Self { daemon, fullname, hostname })
    }

    /// The host name in use (`kitsulan.local.`, or `kitsulan-2.local.` after a conflict).
    pub fn hostname(&self) -> String {
        self.hostname.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Withdraws the announcement (goodbye packets with TTL 0) and stops the responder.
    pub async fn stop(self) {
        let stopped = tokio::task::spawn_blocking(move || {
            if let Ok(unregistered) = self.daemon.unregister(&self.fullname) {
                // The goodbyes are sent before the answer comes back.
                let _ = unregistered.recv_timeout(Duration::from_secs(2));
            }
            if let Ok(shut_down) = self.daemon.shutdown() {
                let _ = shut_down.recv_timeout(Duration::from_secs(2));
            }
        });
        if stopped.await.is_err() {
            warn!("the mDNS responder did not stop cleanly");
        }
        info!("mDNS announcement withdrawn");
    }
}

/// Logs what the responder reports until it stops; remembers a renamed host.
fn watch(events: &mdns_sd::Receiver<DaemonEvent>, hostname: &Mutex<String>) {
    while let Ok(event) = events.recv() {
        match event {
            DaemonEvent::NameChange(change) => {
                warn!(original = %change.original, new = %change.new_name, interface = %change.intf_name,
                      "another device on the LAN already uses this mDNS name: announcing under the new one");
                if let Ok(mut current) = hostname.lock()
                    && current.eq_ignore_ascii_case(&change.original)
                    && change.new_name.ends_with(".local.")
                    && !change.new_name.contains(' ')
                {
                    *current = change.new_name;
                }
            }
            DaemonEvent::Error(e) => warn!(error = %e, "mDNS responder"),
            _ => {}
        }
    }
}

/// A DNS label (at most 63 bytes) from the server's name, cut at a character boundary.
fn instance_label(name: &str) -> String {
    let mut label = String::new();
    for c in name.chars() {
        if label.len() + c.len_utf8() > 63 {
            break;
        }
        label.push(c);
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_txt_record_says_version_path_and_tls_only_when_on() {
        assert_eq!(
            txt_properties("1.2.3", false),
            vec![("version".into(), "1.2.3".into()), ("path".into(), "/".into())]
        );
        assert_eq!(txt_properties("1.2.3", true).last(), Some(&("tls".into(), "1".into())));
    }

    #[test]
    fn long_server_names_are_cut_to_a_label() {
        let name = "ё".repeat(40);
        let label = instance_label(&name);
        assert!(label.len() <= 63 && name.starts_with(&label) && label.chars().count() == 31);
    }

    #[test]
    fn a_loopback_listener_is_refused_with_the_settings_named() {
        let what = Announcement {
            instance: "KitsuLAN".into(),
            hostname: "kitsulan".into(),
            listen: "127.0.0.1:8080".parse().unwrap(),
            tls: false,
            version: "0".into(),
        };
        let error = Announcer::start(&what).err().unwrap().to_string();
        assert!(error.contains("KITSULAN_LISTEN") && error.contains("KITSULAN_MDNS"), "{error}");
    }
}
