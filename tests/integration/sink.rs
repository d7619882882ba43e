//! The dev sink: prints exactly what Python's DebuggingServer prints, takes
//! mail from clients we did not write, and is what `serve --dev` delivers to.

use crate::common::*;
use crate::mail::python_debugging_server;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// `signupd sink` on a free port, its standard output collected as it comes.
fn signupd_sink(extra: &[&str]) -> (KillOnDrop, u16) {
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["sink", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines.next().expect("sink exited").unwrap();
        if let Some(a) = line.split("addr=").nth(1) {
            let addr: std::net::SocketAddr = a.split_whitespace().next().unwrap().parse().unwrap();
            break addr.port();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

/// Drains a child's standard output on a thread, so the child never blocks on a full pipe.
fn collect_stdout(child: &mut KillOnDrop) -> std::thread::JoinHandle<Vec<u8>> {
    let mut out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).unwrap();
        buf
    })
}

fn send_corpus(port: u16, mode: &str) {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smtp_corpus.py");
    let status = Command::new(python())
        .args([corpus, "127.0.0.1", &port.to_string(), mode])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "smtplib could not send the {mode} corpus to port {port}"
    );
}

fn stop_and_read(mut child: KillOnDrop) -> Vec<u8> {
    signal(child.id(), "TERM");
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.wait().unwrap();
    out
}

fn compare_with_python(python_flags: &[&str], sink_flags: &[&str], mode: &str) {
    let (python, py_port, py_lines) = python_debugging_server(python_flags);
    send_corpus(py_port, mode);
    drop(python);
    let expected: Vec<String> = py_lines.iter().collect();

    let (ours, port) = signupd_sink(sink_flags);
    send_corpus(port, mode);
    let printed = String::from_utf8(stop_and_read(ours)).unwrap();
    let printed: Vec<&str> = printed.lines().collect();

    assert!(
        expected
            .iter()
            .filter(|l| l.contains("END MESSAGE"))
            .count()
            >= 2,
        "{expected:#?}"
    );
    for (i, (want, got)) in expected.iter().zip(&printed).enumerate() {
        assert_eq!(got, want, "line {i} differs");
    }
    assert_eq!(printed.len(), expected.len(), "{printed:#?}");
}

#[test]
fn prints_byte_for_byte_what_debugging_server_prints() {
    compare_with_python(&[], &[], "ascii");
}

#[test]
fn prints_utf8_mail_like_debugging_server_with_smtputf8() {
    compare_with_python(&["-u"], &["--smtputf8"], "utf8");
}

#[test]
fn mail_confirmation_shows_the_tutorials_screen() {
    let (sink, port) = signupd_sink(&[]);
    let out = Command::new(BIN)
        .args(["mail", "confirmation", "test-token", "test@example.com"])
        .env("SIGNUPD_MAIL__SMTP_HOST", "127.0.0.1")
        .env("SIGNUPD_MAIL__SMTP_PORT", port.to_string())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(stop_and_read(sink)).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines[0], "---------- MESSAGE FOLLOWS ----------");
    for want in [
        "b'From: noreply@example.com'",
        "b'To: test@example.com'",
        "b'Subject: Please confirm your registration'",
        "b'Content-Type: text/plain; charset=\"utf-8\"'",
        "b'X-Peer: 127.0.0.1'",
        "b'Hi!'",
        "b'Please confirm your registration: http://localhost:8000/verify/test-token.'",
    ] {
        assert!(lines.contains(&want), "{want} missing from:\n{printed}");
    }
    assert_eq!(lines.last(), Some(&"------------ END MESSAGE ------------"));
    assert!(lines.iter().any(|l| l.starts_with("b'Date: ")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("b'Message-ID: <") && l.ends_with("@example.com>'"))
    );
}

#[tokio::test]
async fn many_clients_at_once_each_message_printed_whole() {
    let (mut sink, port) = signupd_sink(&[]);
    let stdout = collect_stdout(&mut sink);
    let mut tasks = Vec::new();
    for i in 0..20 {
        tasks.push(tokio::spawn(async move {
            let mut c = mail_send::SmtpClientBuilder::new("127.0.0.1".to_string(), port)
                .unwrap()
                .implicit_tls(false)
                .connect_plain()
                .await
                .unwrap();
            for j in 0..5 {
                let body = format!(
                    "Subject: client {i} message {j}\r\n\r\n{}\r\n",
                    "z".repeat(5000)
                );
                let msg = mail_send::smtp::message::Message::new(
                    "a@example.com",
                    ["b@example.org"],
                    body.into_bytes(),
                );
                c.send(msg).await.unwrap();
            }
            c.quit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    signal(sink.id(), "TERM");
    sink.wait().unwrap();
    let printed = String::from_utf8(stdout.join().unwrap()).unwrap();
    let blocks: Vec<&str> = printed
        .split("---------- MESSAGE FOLLOWS ----------\n")
        .skip(1)
        .collect();
    assert_eq!(blocks.len(), 100);
    for b in blocks {
        let lines: Vec<&str> = b.lines().collect();
        let short: String = b.chars().take(300).collect();
        assert!(lines[0].starts_with("b'Subject: client "), "{short}");
        // Subject, X-Peer, blank, body, end: nothing from another message in between.
        assert_eq!(lines.len(), 5, "interleaved or cut: {short}");
        assert_eq!(lines[3].len(), 5003, "{short}");
        assert_eq!(lines[4], "------------ END MESSAGE ------------");
    }
}

#[tokio::test]
async fn serve_dev_is_a_complete_local_setup() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["serve", "--dev"])
            .current_dir(dir.path())
            .env_remove("SIGNUPD_AUTH__SECRET_KEY")
            .env("SIGNUPD_SERVER__LISTEN", "127.0.0.1:0")
            .env("SIGNUPD_DEV__SINK_LISTEN", "127.0.0.1:0")
            .env("SIGNUPD_AUTH__BCRYPT_COST", "4")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines.next().expect("daemon exited").unwrap();
        seen.push(line.clone());
        if line.contains(" listening")
            && !line.contains("SMTP")
            && let Some(a) = line.split("addr=").nth(1)
        {
            break a.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    assert!(
        seen.iter()
            .any(|l| l.contains("WARN") && l.contains("random")),
        "a made-up secret is announced: {seen:?}"
    );
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"email": "ivy@example.com", "password": "ivy password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let list = loop {
        let list = get_json(&http, &format!("{base}/dev/mail/messages")).await;
        if !list.as_array().unwrap().is_empty() {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no mail reached the sink"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let m = &list[0];
    assert_eq!(m["to"], serde_json::json!(["ivy@example.com"]));
    assert_eq!(m["from"], "noreply@example.com");
    assert_eq!(m["subject"], "Please confirm your registration");
    assert!(m["size"].as_u64().unwrap() > 100);
    assert!(m["received_at"].as_str().unwrap().ends_with('Z'));
    let one = get_json(
        &http,
        &format!("{base}/dev/mail/messages/{}", m["id"].as_str().unwrap()),
    )
    .await;
    let token = token_in(one["raw"].as_str().unwrap().as_bytes());

    let page = get_text(&http, &format!("{base}/dev/mail")).await;
    assert!(
        page.contains(&format!(
            "<a href=\"http://localhost:8000/verify/{token}\">"
        )),
        "{page}"
    );

    let r = http
        .post(format!("{base}/api/auth/verify"))
        .json(&serde_json::json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = http
        .delete(format!("{base}/dev/mail/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let list = get_json(&http, &format!("{base}/dev/mail/messages")).await;
    assert_eq!(list, serde_json::json!([]));
    let r = http
        .get(format!("{base}/dev/mail/messages/not-an-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let printed = stop_and_read(child);
    let printed = String::from_utf8(printed).unwrap();
    assert!(
        dir.path().join("data").is_dir(),
        "the store lives in ./data by default"
    );
    assert!(
        printed.starts_with("---------- MESSAGE FOLLOWS ----------\n"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "b'Please confirm your registration: http://localhost:8000/verify/{token}.'"
        )),
        "{printed}"
    );
}

#[tokio::test]
async fn without_dev_there_is_no_dev_mail() {
    let d = TestDaemon::start();
    for (method, path) in [
        ("GET", "/dev/mail"),
        ("GET", "/dev/mail/messages"),
        ("DELETE", "/dev/mail/messages"),
    ] {
        let r = d
            .http
            .request(method.parse().unwrap(), d.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem_code(r).await,
            (404, "not_found".into()),
            "{method} {path}"
        );
    }
}
