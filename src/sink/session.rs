//! One SMTP session as a state machine that does no I/O: bytes in, replies
//! and received messages out. smtp-proto parses each command line and
//! unstuffs DATA; this module frames lines, caps their length and the
//! message size, keeps the transaction state and words the replies.
//!
//! What it advertises and accepts follows `python -m smtpd -n -c
//! DebuggingServer` (8BITMIME and HELP, SMTPUTF8 only when asked for, no
//! SIZE), so that one client sends both servers the same commands and the
//! printouts can be compared byte for byte.

use smtp_proto::request::receiver::{DataReceiver, RequestReceiver};
use smtp_proto::{
    Error as ParseError, MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_SMTPUTF8, MailFrom, Request,
};

/// Limits and switches of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub smtputf8: bool,
    pub max_message_bytes: usize,
    pub max_line_bytes: usize,
    pub max_recipients: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            hostname: "localhost".into(),
            smtputf8: false,
            max_message_bytes: 32 << 20,
            max_line_bytes: 2048,
            max_recipients: 100,
        }
    }
}

/// A message as accepted: envelope, MAIL parameters as Python lists them,
/// and the unstuffed payload without the CRLF before the final dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub mail_options: Vec<String>,
    pub data: Vec<u8>,
}

/// What one call to [`Session::feed`] produced.
#[derive(Debug, Default)]
pub struct Output {
    pub reply: Vec<u8>,
    pub messages: Vec<Received>,
    pub close: bool,
}

#[derive(Debug, Default)]
struct Transaction {
    mail_from: Option<String>,
    mail_options: Vec<String>,
    rcpt_to: Vec<String>,
}

enum State {
    Command,
    Data {
        receiver: DataReceiver,
        buf: Vec<u8>,
        too_large: bool,
    },
    Closed,
}

pub struct Session {
    cfg: SessionConfig,
    state: State,
    greeted: bool,
    extended: bool,
    tx: Transaction,
    line: Vec<u8>,
    line_too_long: bool,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        Session {
            cfg,
            state: State::Command,
            greeted: false,
            extended: false,
            tx: Transaction::default(),
            line: Vec::new(),
            line_too_long: false,
        }
    }

    pub fn greeting(&self) -> Vec<u8> {
        format!("220 {} signupd sink ESMTP\r\n", self.cfg.hostname).into_bytes()
    }

    /// Consumes `input` whole; pipelined commands and DATA may share it.
    pub fn feed(&mut self, input: &[u8]) -> Output {
        let mut out = Output::default();
        let mut rest = input;
        while !rest.is_empty() {
            match &mut self.state {
                State::Closed => break,
                State::Data {
                    receiver,
                    buf,
                    too_large,
                } => {
                    let mut iter = rest.iter();
                    let done = receiver.ingest(&mut iter, buf);
                    rest = iter.as_slice();
                    if buf.len() > self.cfg.max_message_bytes + 2 {
                        // Keep unstuffing to find the end, but stop keeping the bytes.
                        *too_large = true;
                        buf.clear();
                    }
                    if done {
                        let too_large = *too_large;
                        let mut data = std::mem::take(buf);
                        self.state = State::Command;
                        let tx = std::mem::take(&mut self.tx);
                        if too_large {
                            out.reply
                                .extend_from_slice(b"552 5.3.4 Error: Too much mail data\r\n");
                        } else {
                            // Drop the CRLF primer (see `start_data`) and the CRLF before the dot.
                            data.drain(..2.min(data.len()));
                            if data.ends_with(b"\r\n") {
                                data.truncate(data.len() - 2);
                            }
                            out.messages.push(Received {
                                mail_from: tx.mail_from.unwrap_or_default(),
                                rcpt_to: tx.rcpt_to,
                                mail_options: tx.mail_options,
                                data,
                            });
                            out.reply.extend_from_slice(b"250 OK\r\n");
                        }
                    }
                }
                State::Command => {
                    let Some(pos) = rest.iter().position(|&c| c == b'\n') else {
                        self.take_partial(rest);
                        break;
                    };
                    self.take_partial(&rest[..=pos]);
                    rest = &rest[pos + 1..];
                    let line = std::mem::take(&mut self.line);
                    if std::mem::take(&mut self.line_too_long) {
                        out.reply
                            .extend_from_slice(b"500 5.5.2 Error: line too long\r\n");
                        continue;
                    }
                    self.command(&line, &mut out);
                }
            }
        }
        out
    }

    fn take_partial(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            return;
        }
        if self.line.len() + bytes.len() > self.cfg.max_line_bytes {
            self.line.clear();
            self.line_too_long = true;
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn command(&mut self, line: &[u8], out: &mut Output) {
        let reply = |out: &mut Output, text: &str| {
            out.reply.extend_from_slice(text.as_bytes());
            out.reply.extend_from_slice(b"\r\n");
        };
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.iter().all(|c| c.is_ascii_whitespace()) {
            return reply(out, "500 5.5.2 Error: bad syntax");
        }
        // smtp-proto wants the line terminated by CRLF.
        let mut framed = trimmed.to_vec();
        framed.extend_from_slice(b"\r\n");
        let mut receiver = RequestReceiver::default();
        let parsed = receiver.ingest(&mut framed.iter());
        let request = match parsed {
            Ok(r) => r,
            Err(e) => return reply(out, &parse_error_reply(&e, trimmed)),
        };
        match request {
            Request::Ehlo { host } | Request::Helo { host } if host.is_empty() => {
                reply(out, "501 5.5.4 Syntax: EHLO hostname")
            }
            Request::Ehlo { .. } => {
                self.greeted = true;
                self.extended = true;
                self.tx = Transaction::default();
                let mut lines = vec![self.cfg.hostname.clone(), "8BITMIME".into()];
                if self.cfg.smtputf8 {
                    lines.push("SMTPUTF8".into());
                }
                lines.push("HELP".into());
                let last = lines.len() - 1;
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    reply(out, &format!("250{sep}{l}"));
                }
            }
            Request::Helo { .. } => {
                self.greeted = true;
                self.extended = false;
                self.tx = Transaction::default();
                reply(out, &format!("250 {}", self.cfg.hostname));
            }
            Request::Mail { from } => {
                let r = self.mail(from, trimmed);
                reply(out, &r);
            }
            Request::Rcpt { to } => {
                let r = if !self.greeted {
                    "503 5.5.1 Error: send HELO first".to_string()
                } else if self.tx.mail_from.is_none() {
                    "503 5.5.1 Error: need MAIL command".to_string()
                } else if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
                    "555 5.5.4 RCPT TO parameters not recognized or not implemented".to_string()
                } else if to.address.is_empty() {
                    "501 5.1.3 Syntax: RCPT TO: <address>".to_string()
                } else if self.tx.rcpt_to.len() >= self.cfg.max_recipients {
                    "452 4.5.3 Error: too many recipients".to_string()
                } else if !to.address.is_ascii() && !self.smtputf8_allowed() {
                    "553 5.6.7 Error: non-ASCII address without SMTPUTF8".to_string()
                } else {
                    self.tx.rcpt_to.push(to.address.into_owned());
                    "250 OK".to_string()
                };
                reply(out, &r);
            }
            Request::Data => {
                if !self.greeted {
                    reply(out, "503 5.5.1 Error: send HELO first")
                } else if self.tx.rcpt_to.is_empty() {
                    reply(out, "503 5.5.1 Error: need RCPT command")
                } else {
                    self.start_data();
                    reply(out, "354 End data with <CR><LF>.<CR><LF>");
                }
            }
            Request::Rset => {
                self.tx = Transaction::default();
                reply(out, "250 OK");
            }
            Request::Noop { .. } => reply(out, "250 OK"),
            Request::Help { .. } => reply(
                out,
                "250 Supported commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY",
            ),
            Request::Vrfy { .. } => reply(
                out,
                "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
            ),
            Request::Quit => {
                reply(out, "221 Bye");
                self.state = State::Closed;
                out.close = true;
            }
            other => reply(
                out,
                &format!("502 5.5.1 Error: {} not implemented", other.name()),
            ),
        }
    }

    fn smtputf8_allowed(&self) -> bool {
        self.cfg.smtputf8
    }

    fn mail(&mut self, from: MailFrom<std::borrow::Cow<'_, str>>, line: &[u8]) -> String {
        if !self.greeted {
            return "503 5.5.1 Error: send HELO first".into();
        }
        if self.tx.mail_from.is_some() {
            return "503 5.5.1 Error: nested MAIL command".into();
        }
        let options = mail_options(line);
        if !self.extended && !options.is_empty() {
            return "501 5.5.4 Syntax: MAIL FROM: <address>".into();
        }
        let known = MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_SMTPUTF8;
        let extra_params = from.env_id.is_some()
            || from.auth.is_some()
            || from.trans_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.by != 0
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0;
        if from.flags & !known != 0 || extra_params {
            return "555 5.5.4 MAIL FROM parameters not recognized or not implemented".into();
        }
        if from.flags & MAIL_SMTPUTF8 != 0 && !self.cfg.smtputf8 {
            return "555 5.5.4 MAIL FROM parameters not recognized or not implemented".into();
        }
        if from.size > self.cfg.max_message_bytes {
            return "552 5.3.4 Error: message size exceeds fixed maximum message size".into();
        }
        if !from.address.is_ascii() && from.flags & MAIL_SMTPUTF8 == 0 {
            return "553 5.6.7 Error: non-ASCII address without SMTPUTF8".into();
        }
        self.tx.mail_from = Some(from.address.into_owned());
        self.tx.mail_options = options;
        "250 OK".into()
    }

    fn start_data(&mut self) {
        let mut receiver = DataReceiver::new();
        let mut buf = Vec::new();
        // smtp-proto only unstuffs a dot that follows CRLF, and the CRLF that
        // ended the DATA command was consumed as a command. Feeding it one
        // CRLF (removed again at the end) makes a dot on the very first line
        // unstuffed as DebuggingServer does, and ".\r\n" end an empty message.
        receiver.ingest(&mut b"\r\n".iter(), &mut buf);
        self.state = State::Data {
            receiver,
            buf,
            too_large: false,
        };
    }
}

/// The MAIL parameters as DebuggingServer lists them: whatever follows the
/// address, upper-cased and split on white space.
fn mail_options(line: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(line);
    let Some(colon) = text.find(':') else {
        return Vec::new();
    };
    let arg = text[colon + 1..].trim_start();
    let rest = if arg.starts_with('<') {
        arg.find('>').map_or("", |i| &arg[i + 1..])
    } else {
        arg.find(char::is_whitespace).map_or("", |i| &arg[i..])
    };
    rest.to_uppercase()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn parse_error_reply(e: &ParseError, line: &[u8]) -> String {
    let verb = String::from_utf8_lossy(line)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_uppercase();
    match e {
        ParseError::UnknownCommand => {
            let shown: String = verb.chars().filter(|c| !c.is_control()).take(32).collect();
            format!("500 5.5.2 Error: command \"{shown}\" not recognized")
        }
        ParseError::InvalidSenderAddress => "501 5.1.7 Syntax: MAIL FROM: <address>".into(),
        ParseError::InvalidRecipientAddress => "501 5.1.3 Syntax: RCPT TO: <address>".into(),
        ParseError::SyntaxError { syntax } => format!("501 5.5.4 Syntax: {syntax}"),
        ParseError::InvalidParameter { param } => {
            format!("501 5.5.4 Error: invalid value for {param}")
        }
        ParseError::UnsupportedParameter { .. } => {
            "555 5.5.4 Parameters not recognized or not implemented".into()
        }
        ParseError::ResponseTooLong => "500 5.5.2 Error: line too long".into(),
        _ => "500 5.5.2 Error: bad syntax".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(SessionConfig::default())
    }

    fn talk(s: &mut Session, input: &str) -> String {
        String::from_utf8(s.feed(input.as_bytes()).reply).unwrap()
    }

    #[test]
    fn a_whole_transaction_pipelined_in_one_write() {
        let mut s = session();
        let out = s.feed(
            b"EHLO client\r\nMAIL FROM:<a@x.org> BODY=8BITMIME\r\nRCPT TO:<b@y.org>\r\n\
              RCPT TO:<c@y.org>\r\nDATA\r\nSubject: t\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n",
        );
        let reply = String::from_utf8(out.reply).unwrap();
        assert_eq!(
            reply,
            "250-localhost\r\n250-8BITMIME\r\n250 HELP\r\n250 OK\r\n250 OK\r\n250 OK\r\n\
             354 End data with <CR><LF>.<CR><LF>\r\n250 OK\r\n221 Bye\r\n"
        );
        assert!(out.close);
        assert_eq!(
            out.messages,
            vec![Received {
                mail_from: "a@x.org".into(),
                rcpt_to: vec!["b@y.org".into(), "c@y.org".into()],
                mail_options: vec!["BODY=8BITMIME".into()],
                data: b"Subject: t\r\n\r\n.dot\r\nbody".to_vec(),
            }]
        );
    }

    #[test]
    fn byte_at_a_time_gives_the_same_message() {
        let input =
            b"HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n.first\r\nx\r\n.\r\n";
        let mut s = session();
        let mut messages = Vec::new();
        for b in input {
            messages.extend(s.feed(std::slice::from_ref(b)).messages);
        }
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].data, b"first\r\nx");
    }

    #[test]
    fn bad_sequences_and_garbage_get_5xx_and_the_session_goes_on() {
        let mut s = session();
        assert!(talk(&mut s, "MAIL FROM:<a@x.org>\r\n").starts_with("503 "));
        assert!(talk(&mut s, "FROB\r\n").starts_with("500 "));
        assert!(talk(&mut s, "\r\n").starts_with("500 "));
        assert!(talk(&mut s, "\u{1}\u{2}garbage\r\n").starts_with("500 "));
        assert!(talk(&mut s, "EHLO\r\n").starts_with("501 "));
        assert!(talk(&mut s, "EHLO c\r\n").starts_with("250-"));
        assert!(talk(&mut s, "RCPT TO:<b@y.org>\r\n").starts_with("503 "));
        assert!(talk(&mut s, "DATA\r\n").starts_with("503 "));
        assert!(talk(&mut s, "MAIL FROM:<a@x.org> SMTPUTF8\r\n").starts_with("555 "));
        assert!(talk(&mut s, "MAIL FROM:<a@x.org> RET=FULL\r\n").starts_with("555 "));
        assert!(talk(&mut s, "MAIL FROM:<a@x.org>\r\n").starts_with("250 "));
        assert!(talk(&mut s, "MAIL FROM:<a@x.org>\r\n").starts_with("503 "));
        assert!(talk(&mut s, "RCPT TO:<b@y.org> NOTIFY=NEVER\r\n").starts_with("555 "));
        assert!(talk(&mut s, "STARTTLS\r\n").starts_with("502 "));
        assert!(talk(&mut s, "AUTH PLAIN AHVAcA==\r\n").starts_with("502 "));
        let long = format!("NOOP {}\r\n", "x".repeat(5000));
        assert!(talk(&mut s, &long).starts_with("500 "));
        assert_eq!(talk(&mut s, "NOOP\r\n"), "250 OK\r\n");
        assert_eq!(talk(&mut s, "RSET\r\n"), "250 OK\r\n");
        assert!(talk(&mut s, "HELP\r\n").starts_with("250 Supported"));
        assert!(talk(&mut s, "VRFY someone\r\n").starts_with("252 "));
    }

    #[test]
    fn smtputf8_only_when_enabled() {
        let mut s = Session::new(SessionConfig {
            smtputf8: true,
            ..SessionConfig::default()
        });
        let r = talk(&mut s, "EHLO c\r\n");
        assert!(r.contains("250-SMTPUTF8\r\n"), "{r}");
        assert_eq!(
            talk(
                &mut s,
                "MAIL FROM:<jürgen@x.org> SMTPUTF8 BODY=8BITMIME\r\n"
            ),
            "250 OK\r\n"
        );
        assert_eq!(talk(&mut s, "RCPT TO:<ü@y.org>\r\n"), "250 OK\r\n");
        let out = s.feed("DATA\r\nSubject: ü\r\n\r\nü\r\n.\r\n".as_bytes());
        assert_eq!(out.messages[0].mail_options, ["SMTPUTF8", "BODY=8BITMIME"]);
    }

    #[test]
    fn oversized_messages_are_refused_and_the_session_recovers() {
        let mut s = Session::new(SessionConfig {
            max_message_bytes: 100,
            ..SessionConfig::default()
        });
        talk(
            &mut s,
            "HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n",
        );
        let big = format!("{}\r\n.\r\n", "y".repeat(500));
        let out = s.feed(big.as_bytes());
        assert!(out.messages.is_empty());
        assert!(String::from_utf8(out.reply).unwrap().starts_with("552 "));
        assert_eq!(
            talk(
                &mut s,
                "MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\nsmall\r\n.\r\n"
            ),
            "250 OK\r\n250 OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 OK\r\n"
        );
    }

    #[test]
    fn empty_message_ends_at_the_first_dot() {
        let mut s = session();
        let out = s.feed(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n.\r\n");
        assert_eq!(out.messages.len(), 1);
        assert!(out.messages[0].data.is_empty());
    }
}
