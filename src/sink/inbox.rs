//! The newest `keep` messages the sink accepted, for `/dev/mail`.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use uuid::Uuid;

use super::session::Received;

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: Uuid,
    pub received_at: u64,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub raw: Vec<u8>,
}

pub struct Inbox {
    keep: usize,
    messages: Mutex<VecDeque<StoredMessage>>,
    /// Woken on every new message, for callers that wait for mail.
    pub arrived: Notify,
}

impl Inbox {
    pub fn new(keep: usize) -> Inbox {
        Inbox {
            keep: keep.max(1),
            messages: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
        }
    }

    pub fn push(&self, m: &Received) {
        let stored = StoredMessage {
            id: Uuid::now_v7(),
            received_at: crate::auth::now(),
            from: m.mail_from.clone(),
            to: m.rcpt_to.clone(),
            subject: header(&m.data, "subject").unwrap_or_default(),
            raw: m.data.clone(),
        };
        if let Ok(mut q) = self.messages.lock() {
            q.push_front(stored);
            q.truncate(self.keep);
        }
        self.arrived.notify_waiters();
    }

    /// Newest first.
    pub fn list(&self) -> Vec<StoredMessage> {
        self.messages
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, id: Uuid) -> Option<StoredMessage> {
        self.messages
            .lock()
            .ok()
            .and_then(|q| q.iter().find(|m| m.id == id).cloned())
    }

    pub fn clear(&self) {
        if let Ok(mut q) = self.messages.lock() {
            q.clear();
        }
    }
}

/// The first header `name` of a raw message, unfolded.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .split("\n\n")
        .next()
        .unwrap_or("");
    let mut found: Option<String> = None;
    for line in head.lines() {
        match &mut found {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line.trim_end_matches('\r')),
            Some(_) => break,
            None => {
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case(name)
                {
                    found = Some(v.trim().trim_end_matches('\r').to_string());
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_first() {
        let inbox = Inbox::new(2);
        for s in ["one", "two", "three"] {
            inbox.push(&Received {
                mail_from: "a@x.org".into(),
                rcpt_to: vec!["b@y.org".into()],
                mail_options: vec![],
                data: format!("Subject: {s}\r\n  folded\r\n\r\nbody").into_bytes(),
            });
        }
        let subjects: Vec<String> = inbox.list().into_iter().map(|m| m.subject).collect();
        assert_eq!(subjects, ["three  folded", "two  folded"]);
    }
}
