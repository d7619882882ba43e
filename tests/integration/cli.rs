//! The command line: exit codes, messages, and what each command prints.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env_remove("SIGNUPD_AUTH__SECRET_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_prints_effective_settings_with_secrets_masked() {
    let out = run(
        &["check-config"],
        &[
            ("SIGNUPD_AUTH__SECRET_KEY", SECRET),
            ("SIGNUPD_MAIL__SMTP_PORT", "587"),
            ("SIGNUPD_MAIL__SMTP_PASSWORD", "relay-password"),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("embedded defaults"), "{shown}");
    assert!(shown.contains("smtp_port = 587"), "{shown}");
    assert!(shown.contains("bcrypt_cost = 12"), "{shown}");
    assert!(
        !shown.contains(SECRET) && !shown.contains("relay-password"),
        "{shown}"
    );
    assert!(shown.contains("secret_key = \"********\""), "{shown}");
}

#[test]
fn configuration_errors_exit_1_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[auth]\nbcrypt_cots = 10\n").unwrap();
    let out = run(
        &["check-config", "--config", file.to_str().unwrap()],
        &[("SIGNUPD_AUTH__SECRET_KEY", SECRET)],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("auth.bcrypt_cots") && err.contains("bcrypt_cost"),
        "{err}"
    );

    let out = run(
        &["check-config"],
        &[
            ("SIGNUPD_AUTH__SECRET_KEY", SECRET),
            ("SIGNUPD_AUTH__BCRYPT_COST", "ten"),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("SIGNUPD_AUTH__BCRYPT_COST"),
        "{}",
        text(&out.stderr)
    );

    // Outside --dev the secret is required, and the message says how to set it.
    let out = run(&["serve"], &[], "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("secret") && err.contains("--dev"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let out = run(
        &["check-config", "--config", "/nonexistent/daemon.toml"],
        &[],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["frobnicate"], &[], "").status.code(), Some(2));
    assert_eq!(
        run(&["token", "confirmation", "not-a-uuid"], &[], "")
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&["serve", "--bogus"], &[], "").status.code(), Some(2));
}

#[test]
fn token_confirmation_prints_a_registration_token_for_the_user() {
    let id = uuid::Uuid::new_v4();
    let out = run(
        &["token", "confirmation", &id.to_string()],
        &[("SIGNUPD_AUTH__SECRET_KEY", SECRET)],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    let mut c = signupd::config::Config::default().auth;
    c.secret_key = signupd::config::Secret::new(SECRET);
    let auth = signupd::auth::Auth::new(&c, signupd::pool::HashPool::new(1, 0).unwrap()).unwrap();
    let claims = auth
        .decode(&token, signupd::store::Scope::Registration)
        .unwrap();
    assert_eq!(claims.sub, id.to_string());
    assert_eq!(claims.iss, "signupd");
    assert_eq!(claims.scope, "registration");
    assert_eq!(claims.exp - claims.iat, 86400);
}

#[test]
fn hash_password_reads_stdin_and_refuses_what_bcrypt_would_truncate() {
    let out = run(
        &["hash-password"],
        &[("SIGNUPD_AUTH__BCRYPT_COST", "4")],
        "correct horse\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = text(&out.stdout).trim().to_string();
    assert!(hash.starts_with("$2b$04$"), "{hash}");
    assert!(bcrypt::verify("correct horse", &hash).unwrap());

    let long = format!("{}\n", "x".repeat(73));
    let out = run(
        &["hash-password"],
        &[("SIGNUPD_AUTH__BCRYPT_COST", "4")],
        &long,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("at most 72"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_packaged_config_runs_on_a_systemd_credential() {
    let packaged = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/daemon.toml");
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("secret_key"), format!("{SECRET}\n")).unwrap();
    let out = run(
        &["check-config", "--config", packaged],
        &[("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap())],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("path = \"/var/lib/signupd\""), "{shown}");
    assert!(shown.contains("sink = false"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    // Without the credential the secret is missing, and the message says so.
    let out = run(&["check-config", "--config", packaged], &[], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no secret key"),
        "{}",
        text(&out.stderr)
    );
}
