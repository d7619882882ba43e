//! End-to-end tests: each starts a real `signupd serve` on port 0 and
//! checks what a client or an operator would see.

mod common;

#[path = "integration/account.rs"]
mod account;
#[path = "integration/admin.rs"]
mod admin;
#[path = "integration/bad_input.rs"]
mod bad_input;
#[path = "integration/cli.rs"]
mod cli;
#[path = "integration/durability.rs"]
mod durability;
#[path = "integration/mail.rs"]
mod mail;
#[path = "integration/server.rs"]
mod server;
#[path = "integration/service.rs"]
mod service;
#[path = "integration/signup.rs"]
mod signup;
#[path = "integration/sink.rs"]
mod sink;
