//! A small SMTP server on loopback that keeps what it receives, so tests read real email.
//!
//! It speaks enough of RFC 5321 for lettre's client (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT) and decodes quoted-printable and base64 bodies so tests can search the text.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// The `Message-ID` header as sent (with its angle brackets).
    pub message_id: String,
}

#[derive(Clone, Default)]
pub struct Mailbox {
    mails: Arc<Mutex<Vec<Mail>>>,
    arrived: Arc<Notify>,
    /// When set, the server answers DATA with a temporary failure (to test retries).
    pub refuse: Arc<std::sync::atomic::AtomicBool>,
    /// When set, the server answers DATA with a permanent failure (to test dead jobs).
    pub reject: Arc<std::sync::atomic::AtomicBool>,
    /// Messages answered with a failure (temporary or permanent), to count attempts.
    pub refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl Mailbox {
    pub fn all(&self) -> Vec<Mail> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn to(&self, address: &str) -> Vec<Mail> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Waits until `count` messages to `address` have arrived, and returns the newest.
    pub async fn wait_for(&self, address: &str, count: usize) -> Mail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.arrived.notified();
            let mails = self.to(address);
            if mails.len() >= count {
                return mails[count - 1].clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no mail #{count} to {address} within 20 s; mailbox has {:?}",
                    self.all()
                        .iter()
                        .map(|m| (&m.to, &m.subject))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

/// Starts the server; returns its port and the mailbox it fills.
pub async fn start() -> (u16, Mailbox) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind SMTP port");
    let port = listener.local_addr().expect("local addr").port();
    let mailbox = Mailbox::default();
    let mb = mailbox.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let mb = mb.clone();
            tokio::spawn(async move {
                let _ = session(socket, mb).await;
            });
        }
    });
    (port, mailbox)
}

async fn session(socket: tokio::net::TcpStream, mailbox: Mailbox) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 localhost test SMTP\r\n").await?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-localhost\r\n250 8BITMIME\r\n")
                .await?;
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            write.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("MAIL FROM") {
            to.clear();
            write.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("RCPT TO") {
            let address = command
                .split_once(':')
                .map(|(_, a)| {
                    a.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                })
                .unwrap_or_default();
            to.push(address);
            write.write_all(b"250 ok\r\n").await?;
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let l = line
                    .strip_prefix('.')
                    .filter(|_| line.starts_with(".."))
                    .unwrap_or(&line);
                data.push_str(l);
            }
            if mailbox.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                mailbox
                    .refused
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                write.write_all(b"451 try again later\r\n").await?;
                continue;
            }
            if mailbox.reject.load(std::sync::atomic::Ordering::SeqCst) {
                mailbox
                    .refused
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                write.write_all(b"550 no such mailbox here\r\n").await?;
                continue;
            }
            let mail = parse(&data, std::mem::take(&mut to));
            if let Ok(mut m) = mailbox.mails.lock() {
                m.push(mail);
            }
            mailbox.arrived.notify_waiters();
            write.write_all(b"250 queued\r\n").await?;
        } else if upper.starts_with("RSET") {
            to.clear();
            write.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"502 not implemented\r\n").await?;
        }
    }
}

fn parse(data: &str, to: Vec<String>) -> Mail {
    let data = data.replace("\r\n", "\n");
    let (head, body) = data.split_once("\n\n").unwrap_or((&data, ""));
    // Unfold continuation lines before reading headers.
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let encoding = header("Content-Transfer-Encoding").to_ascii_lowercase();
    let body = match encoding.as_str() {
        "quoted-printable" => decode_qp(body),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(body.split_whitespace().collect::<String>())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        _ => body.to_string(),
    };
    Mail {
        to,
        subject: decode_subject(&header("Subject")),
        body,
        message_id: header("Message-ID"),
    }
}

fn decode_qp(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(hex) = text.get(i + 1..i + 3)
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes `=?utf-8?b?...?=` encoded words, which lettre uses for non-ASCII subjects.
fn decode_subject(s: &str) -> String {
    let mut out = String::new();
    for word in s.split(' ') {
        let decoded = word
            .strip_prefix("=?utf-8?b?")
            .or_else(|| word.strip_prefix("=?UTF-8?B?"))
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if !out.is_empty() && decoded.is_none() {
            out.push(' ');
        }
        out.push_str(&decoded.unwrap_or_else(|| word.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_soft_breaks_are_joined() {
        assert_eq!(decode_qp("abc=\ndef =3D x"), "abcdef = x");
    }
}
