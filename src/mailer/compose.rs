//! The tutorial's `Mailer`: one function per message, rendered with
//! mail-builder into the bytes that are queued and sent.
//!
//! Bodies are sent as one raw `text/plain; charset="utf-8"` part in 7bit or
//! 8bit, not quoted-printable: a JWT link is longer than a QP line, and a
//! wrapped link is what a developer reading the sink output cannot click.
//! `From` and `To` are written as bare addresses (`From: noreply@example.com`),
//! as the tutorial's mails show them. An address reaches a header only after
//! `accounts::validate_email` refused white space and control characters,
//! and [`Composer`] refuses them again, so no input can start a new header.

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use uuid::Uuid;

pub const CONFIRMATION_SUBJECT: &str = "Please confirm your registration";
pub const ALREADY_REGISTERED_SUBJECT: &str = "You already have an account";
pub const RESET_SUBJECT: &str = "Reset your password";

#[derive(Debug, Clone)]
pub struct Composer {
    from: String,
    public_url: String,
    id_domain: String,
}

impl Composer {
    pub fn new(from: &str, public_url: &str) -> Composer {
        let id_domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
        Composer {
            from: from.to_string(),
            public_url: public_url.trim_end_matches('/').to_string(),
            id_domain: id_domain.to_string(),
        }
    }

    pub fn from(&self) -> &str {
        &self.from
    }

    pub fn verify_link(&self, token: &str) -> String {
        format!("{}/verify/{token}", self.public_url)
    }

    pub fn reset_link(&self, token: &str) -> String {
        format!("{}/reset/{token}", self.public_url)
    }

    /// `Mailer.send_confirmation_message`'s message, word for word.
    pub fn confirmation(&self, to: &str, token: &str) -> std::io::Result<Vec<u8>> {
        let body = format!(
            "Hi!\n\nPlease confirm your registration: {}.\n",
            self.verify_link(token)
        );
        self.render(to, CONFIRMATION_SUBJECT, &body)
    }

    /// Sent instead of a confirmation when an active account registers again,
    /// so the API's answer stays the same and the owner learns of the attempt.
    pub fn already_registered(&self, to: &str) -> std::io::Result<Vec<u8>> {
        let body = format!(
            "Hi!\n\nSomeone, hopefully you, tried to register with this address, \
             but it already has an account.\n\n\
             If it was you, just log in; if you have forgotten your password, \
             you can choose a new one at {}/reset.\n\
             If it was not you, you can ignore this mail: nothing has changed.\n",
            self.public_url
        );
        self.render(to, ALREADY_REGISTERED_SUBJECT, &body)
    }

    pub fn password_reset(&self, to: &str, token: &str) -> std::io::Result<Vec<u8>> {
        let body = format!(
            "Hi!\n\nTo choose a new password, open this link: {}.\n\n\
             If you did not ask for this, you can ignore this mail: \
             your password stays as it is.\n",
            self.reset_link(token)
        );
        self.render(to, RESET_SUBJECT, &body)
    }

    fn render(&self, to: &str, subject: &str, body: &str) -> std::io::Result<Vec<u8>> {
        for addr in [self.from.as_str(), to] {
            if addr.is_empty() || addr.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "an address with white space or control characters cannot go into a header",
                ));
            }
        }
        let encoding = if body.is_ascii() { "7bit" } else { "8bit" };
        let body = body.replace('\n', "\r\n");
        let part = MimePart::new(
            ContentType::new("text/plain").attribute("charset", "utf-8"),
            body,
        )
        .transfer_encoding(encoding);
        MessageBuilder::new()
            .header("From", Raw::new(self.from.as_str()))
            .header("To", Raw::new(to))
            .subject(subject)
            .message_id(MessageId::new(format!(
                "{}@{}",
                Uuid::now_v7(),
                self.id_domain
            )))
            .body(part)
            .write_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(raw: &[u8]) -> String {
        String::from_utf8(raw.to_vec()).unwrap()
    }

    #[test]
    fn confirmation_matches_the_contract() {
        let c = Composer::new("noreply@example.com", "http://localhost:8000/");
        let long = "t".repeat(400);
        let m = text(&c.confirmation("test@example.com", &long).unwrap());
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("Subject: Please confirm your registration\r\n"),
            "{head}"
        );
        assert!(head.contains("From: noreply@example.com\r\n"), "{head}");
        assert!(head.contains("To: test@example.com\r\n"), "{head}");
        assert!(
            head.contains("Content-Type: text/plain; charset=\"utf-8\""),
            "{head}"
        );
        assert!(head.contains("Date: "), "{head}");
        assert!(head.contains("Message-ID: <"), "{head}");
        assert!(head.contains("@example.com>"), "{head}");
        assert_eq!(
            body,
            format!(
                "Hi!\r\n\r\nPlease confirm your registration: http://localhost:8000/verify/{long}.\r\n"
            )
        );
    }

    #[test]
    fn address_cannot_add_a_header() {
        let c = Composer::new("noreply@example.com", "http://localhost:8000");
        for evil in [
            "a@b.org\r\nBcc: evil@x.org",
            "a@b.org\nBcc: e@x.org",
            "a@b.org\rX: y",
            "",
        ] {
            assert!(c.confirmation(evil, "tok").is_err(), "{evil:?}");
        }
    }

    #[test]
    fn non_ascii_address_round_trips() {
        let c = Composer::new("noreply@example.com", "http://localhost:8000");
        let m = text(&c.already_registered("jürgen@bücher.example").unwrap());
        assert!(m.contains("jürgen@bücher.example"), "{m}");
    }
}
