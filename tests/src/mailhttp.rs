//! The test [`Mailbox`] over HTTP on loopback, for test drivers in other languages (the
//! headless-browser scripts read sign-in codes from it).
//!
//! `GET /mail?to=EMAIL` answers `200 {"count": N, "to": [...], "subject": "...", "body": "..."}`
//! with the newest message to that address, or `404 {"count": 0}` when none has arrived yet, so a
//! script polls until the message it waits for is there. Anything else is a 404. It speaks just
//! enough HTTP/1.1 for `fetch`: one request per connection, then close.

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::smtp::Mailbox;

/// Serves `mailbox` on a loopback port until the runtime ends; returns the base URL
/// (`http://127.0.0.1:PORT`).
pub async fn serve(mailbox: Mailbox) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the mail endpoint's port");
    let port = listener.local_addr().expect("local addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mailbox = mailbox.clone();
            tokio::spawn(async move {
                let _ = answer(stream, &mailbox).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

async fn answer(stream: tokio::net::TcpStream, mailbox: &Mailbox) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    // Drain the headers; the request has no body that matters.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = respond(target, mailbox);
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    write.write_all(response.as_bytes()).await?;
    write.shutdown().await
}

fn respond(target: &str, mailbox: &Mailbox) -> (&'static str, String) {
    let Ok(url) = url::Url::parse(&format!("http://localhost{target}")) else {
        return (
            "400 Bad Request",
            json!({"error": "bad request"}).to_string(),
        );
    };
    if url.path() != "/mail" {
        return (
            "404 Not Found",
            json!({"error": "no such path"}).to_string(),
        );
    }
    let Some(to) = url
        .query_pairs()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v.into_owned())
    else {
        return (
            "400 Bad Request",
            json!({"error": "give ?to=EMAIL"}).to_string(),
        );
    };
    let mails = mailbox.to(&to);
    match mails.last() {
        Some(mail) => (
            "200 OK",
            json!({
                "count": mails.len(),
                "to": mail.to,
                "subject": mail.subject,
                "body": mail.body,
            })
            .to_string(),
        ),
        None => ("404 Not Found", json!({"count": 0}).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_newest_mail_to_an_address() {
        let (port, mailbox) = crate::smtp::start().await;
        let base = serve(mailbox.clone()).await;
        // The suite's client (it installs the TLS provider reqwest needs).
        let client = crate::Browser::new(&base).client;
        let none = client
            .get(format!("{base}/mail?to=ada@example.org"))
            .send()
            .await
            .expect("GET");
        assert_eq!(none.status(), 404);
        for (to, subject, body) in [
            ("ada@example.org", "first", "Your code: 111111"),
            ("bob@example.org", "other", "Your code: 222222"),
            ("ada@example.org", "second", "Your code: 333333"),
        ] {
            send(port, to, subject, body).await;
        }
        mailbox.wait_for("ada@example.org", 2).await;
        let found: serde_json::Value = client
            .get(format!("{base}/mail?to=ADA%40example.org"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert_eq!(found["count"], 2);
        assert_eq!(found["subject"], "second");
        assert_eq!(
            found["body"].as_str().map(str::trim),
            Some("Your code: 333333")
        );
        let bad = client
            .get(format!("{base}/elsewhere"))
            .send()
            .await
            .expect("GET");
        assert_eq!(bad.status(), 404);
    }

    /// One message through the test SMTP server, spoken by hand.
    async fn send(port: u16, to: &str, subject: &str, body: &str) {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to SMTP");
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut reply = async || loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.expect("SMTP reply");
            // "250-..." continues a multi-line reply; "250 ..." ends it.
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line;
            }
        };
        reply().await;
        let data = format!("To: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n.\r\n");
        let rcpt = format!("RCPT TO:<{to}>\r\n");
        for command in [
            "EHLO test\r\n",
            "MAIL FROM:<convene@example.org>\r\n",
            rcpt.as_str(),
            "DATA\r\n",
            data.as_str(),
            "QUIT\r\n",
        ] {
            write
                .write_all(command.as_bytes())
                .await
                .expect("SMTP write");
            let line = reply().await;
            assert!(line.starts_with('2') || line.starts_with('3'), "{line}");
        }
    }
}
