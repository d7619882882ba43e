//! Outgoing mail. `compose` renders each message of the contract; the
//! queue lives in the store's `outbox` tree, written in the same
//! transaction as the account change that caused it.

pub mod compose;
