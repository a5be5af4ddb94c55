//! An SMTP sink for tests and development: a small server on a loopback
//! listener bound beforehand, speaking as much of RFC 5321 as an SMTP
//! client such as lettre needs (the `220` greeting, `EHLO`/`HELO`,
//! `MAIL FROM`, `RCPT TO`, `DATA` with its dots unstuffed, `RSET`, `NOOP`,
//! `QUIT`; no `AUTH`, no `STARTTLS`). It keeps every message it accepts,
//! lets a test wait for one ([`SmtpSink::wait_for`]), and can be told to
//! refuse the next transactions with a `451` ([`SmtpSink::refuse_next`]),
//! to test a sender's retries.

use std::{
    net::TcpListener as StdListener,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// The longest message the sink takes (`SIZE` in its `EHLO` answer); a
/// longer one is answered `552` and not kept.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope's sender (`MAIL FROM`), without its angle brackets.
    pub from: String,
    /// The envelope's recipients (`RCPT TO`), in order.
    pub recipients: Vec<String>,
    /// The message as sent after `DATA`, dots unstuffed, lines ending in
    /// CRLF, without the final `.` line.
    pub data: String,
    /// The `Subject` header, unfolded, if there is one.
    pub subject: Option<String>,
    /// The `Message-ID` header, angle brackets included, if there is one.
    pub message_id: Option<String>,
}

impl ReceivedMail {
    /// The value of header `name` (any case), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(&self.data, name)
    }

    /// What follows the headers.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    /// Transactions still to refuse.
    refuse: AtomicUsize,
    /// Transactions refused so far.
    refused: AtomicUsize,
}

/// A running sink; it stops when dropped.
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl SmtpSink {
    /// A sink on a free loopback port. Call it inside a tokio runtime.
    pub fn start() -> Self {
        let listener = StdListener::bind("127.0.0.1:0").expect("a free loopback port");
        Self::on(listener)
    }

    /// A sink on `listener`, bound beforehand (its port could be handed
    /// out first). Call it inside a tokio runtime.
    pub fn on(listener: StdListener) -> Self {
        let port = listener.local_addr().expect("a bound listener").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = TcpListener::from_std(listener).expect("a tokio listener");
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            port,
            shared,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message accepted so far, in the order they arrived.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared
            .messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The messages accepted so far whose `Message-ID` is `id`.
    pub fn with_message_id(&self, id: &str) -> Vec<ReceivedMail> {
        self.messages()
            .into_iter()
            .filter(|m| m.message_id.as_deref() == Some(id))
            .collect()
    }

    /// Refuses the next `n` transactions: their `MAIL FROM` is answered
    /// `451` (try again later), whoever sends them.
    pub fn refuse_next(&self, n: usize) {
        self.shared.refuse.store(n, Ordering::SeqCst);
    }

    /// How many transactions were refused so far.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Waits up to `secs` seconds for a message that `matches`, and returns
    /// the first one (see [`crate::eventually`]).
    pub async fn wait_for(
        &self,
        secs: u64,
        what: &str,
        matches: impl Fn(&ReceivedMail) -> bool,
    ) -> ReceivedMail {
        crate::eventually(secs, what, || {
            let found = self.messages().into_iter().find(|m| matches(m));
            async move { found }
        })
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(stream, &shared).await {
                        tracing::debug!(error = %e, "SMTP sink session ended");
                    }
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "SMTP sink accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The transaction under way: `MAIL FROM` seen, recipients so far.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    recipients: Vec<String>,
}

/// One client's conversation, until `QUIT` or the connection closes.
async fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 testkit SMTP sink ready\r\n").await?;
    let mut tx = Transaction::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                tx = Transaction::default();
                let greeting = format!(
                    "250-testkit greets {arg}\r\n250-8BITMIME\r\n250 SIZE {MAX_MESSAGE_BYTES}\r\n"
                );
                write.write_all(greeting.as_bytes()).await?;
                continue;
            }
            "HELO" => {
                tx = Transaction::default();
                b"250 testkit\r\n"
            }
            "MAIL" => match path_of(arg, "FROM:") {
                None => b"501 5.5.4 syntax: MAIL FROM:<address>\r\n",
                Some(_) if tx.from.is_some() => b"503 5.5.1 a transaction is under way\r\n",
                Some(from) => {
                    let refuse = shared
                        .refuse
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if refuse {
                        shared.refused.fetch_add(1, Ordering::SeqCst);
                        b"451 4.3.0 refused for this test; try again later\r\n"
                    } else {
                        tx.from = Some(from);
                        b"250 2.1.0 OK\r\n"
                    }
                }
            },
            "RCPT" => match path_of(arg, "TO:") {
                None => b"501 5.5.4 syntax: RCPT TO:<address>\r\n",
                Some(_) if tx.from.is_none() => b"503 5.5.1 MAIL first\r\n",
                Some(to) => {
                    tx.recipients.push(to);
                    b"250 2.1.5 OK\r\n"
                }
            },
            "DATA" if tx.recipients.is_empty() => b"503 5.5.1 RCPT first\r\n",
            "DATA" => {
                write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let Some(data) = read_data(&mut read).await? else {
                    return Ok(());
                };
                let tx = std::mem::take(&mut tx);
                if data.len() > MAX_MESSAGE_BYTES {
                    write.write_all(b"552 5.3.4 message too big\r\n").await?;
                    continue;
                }
                let mail = ReceivedMail {
                    from: tx.from.unwrap_or_default(),
                    recipients: tx.recipients,
                    subject: header_of(&data, "Subject"),
                    message_id: header_of(&data, "Message-ID"),
                    data,
                };
                shared
                    .messages
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(mail);
                b"250 2.0.0 OK: queued\r\n"
            }
            "RSET" => {
                tx = Transaction::default();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address of `MAIL FROM:<a>` or `RCPT TO:<a>` (`prefix` is `FROM:` or
/// `TO:`, any case), parameters after it ignored.
fn path_of(arg: &str, prefix: &str) -> Option<String> {
    let arg = arg.trim_start();
    if arg.len() < prefix.len() || !arg[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// The lines after `DATA` up to the lone `.`, dots unstuffed (RFC 5321
/// 4.5.2), each ending in CRLF; `None` when the connection closed first.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
) -> std::io::Result<Option<String>> {
    let mut data = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text == "." {
            return Ok(Some(data));
        }
        data.push_str(text.strip_prefix('.').unwrap_or(text));
        data.push_str("\r\n");
    }
}

/// Header `name` (any case) of the message `data`, folded lines joined.
fn header_of(data: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in data.split("\r\n") {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(v) = found.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                found = Some(v.trim().to_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_unfolded_and_in_any_case() {
        let data =
            "From: a@example.com\r\nsubject: Hello\r\n there\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n";
        assert_eq!(header_of(data, "Subject").as_deref(), Some("Hello there"));
        assert_eq!(header_of(data, "message-id").as_deref(), Some("<1@x>"));
        assert_eq!(header_of(data, "To"), None);
        assert_eq!(header_of("\r\nSubject: in the body\r\n", "Subject"), None);
    }

    #[test]
    fn envelope_paths_are_read_without_their_brackets_and_parameters() {
        assert_eq!(
            path_of("FROM:<a@example.com> BODY=8BITMIME", "FROM:").as_deref(),
            Some("a@example.com")
        );
        assert_eq!(
            path_of("to: <b@example.com>", "TO:").as_deref(),
            Some("b@example.com")
        );
        assert_eq!(path_of("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path_of("a@example.com", "FROM:"), None);
    }

    #[tokio::test]
    async fn data_is_read_to_the_lone_dot_with_its_dots_unstuffed() {
        let input: &[u8] = b"Subject: x\r\n\r\n..leading dot\r\nplain\r\n.\r\nNOOP\r\n";
        let mut read = BufReader::new(input);
        let data = read_data(&mut read).await.unwrap().unwrap();
        assert_eq!(data, "Subject: x\r\n\r\n.leading dot\r\nplain\r\n");
    }
}
