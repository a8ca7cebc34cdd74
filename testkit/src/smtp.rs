//! [`SmtpSink`]: a real SMTP server the server under test delivers its email to, so tests read
//! one-time codes out of the mail a person would get, not out of a log or the database.
//!
//! It is `testkit/smtp_sink.py` (aiosmtpd) on a port the OS picks on 127.0.0.1, printing
//! each accepted message as a JSON line; [`SmtpSink::wait_for_mail`] takes them in order.
//! Without aiosmtpd the sink fails to start and says how to install it; nothing is skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// One delivered message.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The `From:` header.
    pub from: String,
    /// The `Subject:` header, decoded.
    pub subject: String,
    /// The text/plain body, decoded.
    pub body: String,
}

impl Mail {
    /// The 6-digit code in this mail's body (see [`code_in`]).
    pub fn code(&self) -> anyhow::Result<String> {
        code_in(&self.body)
            .with_context(|| format!("no 6-digit code on a line of its own in:\n{}", self.body))
    }
}

/// The first line of `body` that is exactly six ASCII digits (after trimming), as docs/api.md
/// promises for code emails.
pub fn code_in(body: &str) -> Option<String> {
    body.lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
}

/// A running SMTP sink; stopped when dropped.
pub struct SmtpSink {
    port: u16,
    _child: Child,
    inbox: Arc<Mutex<Vec<Mail>>>,
    arrived: Arc<Notify>,
    stderr: Arc<Mutex<String>>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smtp_sink.py")
}

impl SmtpSink {
    /// Starts the sink and waits until it listens.
    pub async fn start() -> anyhow::Result<Self> {
        let mut child = Command::new("python3")
            .arg(script())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run python3 for the SMTP sink (the e2e tests need python3 and aiosmtpd)")?;
        let stdout = child.stdout.take().context("no stdout from the SMTP sink")?;
        let stderr_pipe = child.stderr.take().context("no stderr from the SMTP sink")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr_pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut text) = stderr.lock() {
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
            });
        }
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        let port = match first {
            Ok(Ok(Some(line))) => serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("listening")?.as_u64())
                .and_then(|p| u16::try_from(p).ok())
                .with_context(|| format!("unexpected first line from the SMTP sink: {line}"))?,
            _ => {
                // Give stderr a moment to arrive, then say why.
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let text = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                bail!(
                    "the SMTP sink ({}) did not start ({status:?}): {}",
                    script().display(),
                    if text.is_empty() {
                        "no output; is aiosmtpd installed? (`pip install aiosmtpd`)"
                    } else {
                        &text
                    }
                );
            }
        };
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        {
            let (inbox, arrived) = (inbox.clone(), arrived.clone());
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                    let text =
                        |key: &str| event.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                    let to = event
                        .get("rcpt_tos")
                        .and_then(|v| v.as_array())
                        .map(|a| a.iter().filter_map(|s| s.as_str()).map(str::to_lowercase).collect())
                        .unwrap_or_default();
                    let mail = Mail { to, from: text("from"), subject: text("subject"), body: text("body") };
                    if let Ok(mut inbox) = inbox.lock() {
                        inbox.push(mail);
                    }
                    arrived.notify_waiters();
                }
            });
        }
        Ok(Self { port, _child: child, inbox, arrived, stderr })
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Takes the oldest not yet taken mail addressed to `to` (case-insensitive), waiting up to
    /// `timeout` for it to arrive.
    pub async fn wait_for_mail(&self, to: &str, timeout: Duration) -> anyhow::Result<Mail> {
        let to = to.to_lowercase();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            if let Some(mail) = self.take(&to) {
                return Ok(mail);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let others: Vec<Vec<String>> =
                    self.inbox.lock().map(|i| i.iter().map(|m| m.to.clone()).collect()).unwrap_or_default();
                let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
                bail!(
                    "no mail to {to} within {timeout:?} (untaken mail is for {others:?}){}",
                    if stderr.is_empty() { String::new() } else { format!("; sink stderr:\n{stderr}") }
                );
            }
        }
    }

    /// How many untaken mails are addressed to `to` right now.
    pub fn count_for(&self, to: &str) -> usize {
        let to = to.to_lowercase();
        self.inbox.lock().map(|inbox| inbox.iter().filter(|m| m.to.contains(&to)).count()).unwrap_or(0)
    }

    /// Every mail received and not yet taken by [`Self::wait_for_mail`].
    pub fn untaken(&self) -> Vec<Mail> {
        self.inbox.lock().map(|inbox| inbox.clone()).unwrap_or_default()
    }

    fn take(&self, to: &str) -> Option<Mail> {
        let mut inbox = self.inbox.lock().ok()?;
        let index = inbox.iter().position(|m| m.to.iter().any(|r| r == to))?;
        Some(inbox.remove(index))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_code_is_the_line_of_six_digits() {
        let cases = [
            ("Your code:\r\n\r\n  042917  \r\n\r\nValid 10 minutes.", Some("042917")),
            ("Code 123456 inline\n1234567\n12345\n", None),
            ("KitsuLAN\n\n000000\n999999\n", Some("000000")),
            ("", None),
        ];
        for (body, want) in cases {
            assert_eq!(code_in(body).as_deref(), want, "{body:?}");
        }
    }

    #[tokio::test]
    async fn the_sink_receives_real_smtp() {
        let sink = SmtpSink::start().await.unwrap();
        // Speak SMTP to it by hand, the way a mail server would.
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", sink.port())).await.unwrap();
        let script = "EHLO test\r\nMAIL FROM:<noreply@kitsulan.test>\r\nRCPT TO:<Alice@KitsuLAN.test>\r\nDATA\r\n\
                      From: KitsuLAN <noreply@kitsulan.test>\r\nTo: alice@kitsulan.test\r\n\
                      Subject: Your KitsuLAN code\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                      Your code:\r\n\r\n314159\r\n.\r\nQUIT\r\n";
        socket.write_all(script.as_bytes()).await.unwrap();
        let mut reply = String::new();
        socket.read_to_string(&mut reply).await.unwrap();
        assert!(reply.contains("250 Message accepted"), "{reply}");

        let mail = sink.wait_for_mail("alice@kitsulan.test", Duration::from_secs(10)).await.unwrap();
        assert_eq!(mail.subject, "Your KitsuLAN code");
        assert_eq!(mail.code().unwrap(), "314159");
        assert_eq!(sink.count_for("alice@kitsulan.test"), 0);
        assert!(sink.wait_for_mail("bob@kitsulan.test", Duration::from_millis(300)).await.is_err());
    }
}
