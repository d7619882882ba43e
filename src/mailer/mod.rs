//! Outgoing mail: [`compose`] renders each message of the contract (the
//! tutorial's `Mailer`), the queue lives in the store's `outbox` tree
//! (written in the same transaction as the account change that caused
//! it), [`queue`] delivers it through [`smtp`].

pub mod compose;
pub mod queue;
pub mod smtp;

use crate::config::Config;
use crate::store::{MailKind, QueuedMail};
use compose::Composer;
use queue::{DeliveryError, Transport};
use smtp::{RelayConfig, SmtpRelay};

/// The tutorial's `Mailer.send_confirmation_message(token, email)`: sends
/// now over the configured relay, without the queue.
pub async fn send_confirmation_message(
    config: &Config,
    token: &str,
    email: &str,
) -> Result<(), DeliveryError> {
    let composer = Composer::new(&config.mail.from, &config.server.public_url);
    let raw = composer
        .confirmation(email, token)
        .map_err(|e| DeliveryError::new(queue::FailureKind::Permanent, e.to_string()))?;
    let mail = QueuedMail::new(
        MailKind::Confirmation,
        uuid::Uuid::nil(),
        &config.mail.from,
        email,
        &raw,
        None,
        crate::auth::now(),
    );
    let mut relay = SmtpRelay::new(RelayConfig::from_config(&config.mail));
    let result = relay.send(&mail).await;
    relay.finish().await;
    result
}
