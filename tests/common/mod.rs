//! Starts a whole `signupd serve` process on port 0 in a temporary
//! directory, learns its address from the "listening" log line, and talks
//! to it over real HTTP. The store can be read only while the daemon is
//! stopped (sled holds a lock), so tests stop it, read, and start it again.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signupd::sink::Sink;
use signupd::sink::inbox::{Inbox, StoredMessage};
use signupd::sink::session::SessionConfig;
use signupd::store::{QueuedMail, Store, User};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PUBLIC_URL: &str = "http://signupd.test";
pub const BIN: &str = env!("CARGO_BIN_EXE_signupd");

pub struct TestDaemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: Arc<tempfile::TempDir>,
    env: Vec<(String, String)>,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The dev sink's address, in `--dev` mode.
    pub sink_addr: Option<SocketAddr>,
    close_log: Arc<std::sync::atomic::AtomicBool>,
    pub http: reqwest::Client,
}

impl TestDaemon {
    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("daemon.toml")
    }

    fn write_config(dir: &Path) {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC_URL}\"\n\
             [storage]\npath = \"{}\"\n\
             [auth]\nsecret_key = \"{SECRET}\"\nbcrypt_cost = 4\n\
             [limits]\nenabled = false\n\
             [mail]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = 1\n",
            dir.join("data").display()
        );
        std::fs::write(Self::config_path(dir), text).unwrap();
    }

    /// A daemon with limits off and bcrypt cost 4.
    pub fn start() -> TestDaemon {
        Self::start_with(&[])
    }

    /// Same, with `SIGNUPD_*` overrides.
    pub fn start_with(env: &[(&str, &str)]) -> TestDaemon {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Self::write_config(dir.path());
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn(dir, env)
    }

    /// `serve --dev`: the built-in sink on a port of its own, and links in
    /// mails that point at this daemon, so a browser can follow them.
    pub fn start_dev() -> TestDaemon {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let url = format!("http://127.0.0.1:{port}");
        Self::start_with(&[
            ("--dev", ""),
            ("SIGNUPD_SERVER__LISTEN", &listen),
            ("SIGNUPD_SERVER__PUBLIC_URL", &url),
            ("SIGNUPD_DEV__SINK_LISTEN", "127.0.0.1:0"),
        ])
    }

    fn spawn(dir: Arc<tempfile::TempDir>, env: Vec<(String, String)>) -> TestDaemon {
        let dev = env.iter().any(|(k, _)| k == "--dev");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(Self::config_path(dir.path()))
            .args(dev.then_some("--dev"))
            // Tests may ask for another filter in `env`.
            .env("RUST_LOG", "info")
            .envs(
                env.iter()
                    .filter(|(k, _)| k != "--dev")
                    .map(|(k, v)| (k, v)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        let close = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let closing = close.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if closing.load(std::sync::atomic::Ordering::SeqCst) {
                    // Dropping the reader closes the daemon's stderr.
                    break;
                }
                if line.contains("listening")
                    && !line.contains("SMTP")
                    && let Some(addr) = listen_addr(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("daemon did not start:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        let sink_addr = log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("SMTP sink listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        TestDaemon {
            child: Some(child),
            addr,
            dir,
            env,
            log,
            sink_addr,
            close_log: close,
            http: reqwest::Client::new(),
        }
    }

    /// Closes the daemon's stderr at its next log line, as when the
    /// process reading it goes away.
    pub fn close_log(&self) {
        self.close_log
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        signal(child.id(), "TERM");
        child.wait().unwrap()
    }

    /// Stops the daemon from another thread and hands it back.
    pub fn stop_and_return(mut self) -> (ExitStatus, TestDaemon) {
        let status = self.stop();
        (status, self)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("daemon already stopped");
        signal(child.id(), "KILL");
        child.wait().unwrap();
    }

    /// Starts again on the same directory and settings, on a new port.
    pub fn restart(self) -> TestDaemon {
        self.restart_with(&[])
    }

    /// Same, with further `SIGNUPD_*` overrides.
    pub fn restart_with(mut self, more: &[(&str, &str)]) -> TestDaemon {
        if self.child.is_some() {
            assert!(self.stop().success());
        }
        let mut env = std::mem::take(&mut self.env);
        env.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self::spawn(self.dir.clone(), env)
    }

    pub async fn readyz(&self) -> serde_json::Value {
        get_json(&self.http, &self.url("/readyz")).await
    }

    /// Waits until `/readyz` satisfies `f` (the worker reports after each round).
    pub async fn wait_ready(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.readyz().await;
            if f(&v) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads the stopped daemon's store.
    pub fn read_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        self.with_store(f)
    }

    fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        assert!(
            self.child.is_none(),
            "stop the daemon before reading its store"
        );
        let store = Store::open(&self.dir.path().join("data"), 4).unwrap();
        let out = f(&store);
        store.close();
        out
    }

    /// The queued mail, oldest first (daemon must be stopped).
    pub fn outbox(&self) -> Vec<QueuedMail> {
        self.with_store(|s| s.outbox().unwrap())
    }

    pub fn users(&self) -> Vec<User> {
        self.with_store(|s| s.users().unwrap())
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/auth/register",
            serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn verify(&self, token: &str) -> reqwest::Response {
        self.post_json("/api/auth/verify", serde_json::json!({"token": token}))
            .await
    }

    pub async fn healthy(&self) -> bool {
        match self.http.get(self.url("/healthz")).send().await {
            Ok(r) => r.status() == 200 && r.text().await.unwrap() == "ok",
            Err(_) => false,
        }
    }
}

/// The address in a "listening" log line, plain (`addr=…`) or JSON (`"addr":"…"`).
fn listen_addr(line: &str) -> Option<String> {
    if let Some(rest) = line.split("addr=").nth(1) {
        return rest.split_whitespace().next().map(str::to_string);
    }
    let rest = line.split("\"addr\":\"").nth(1)?;
    rest.split('"').next().map(str::to_string)
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// The token in a mail's `/verify/` link.
pub fn verify_token(mail: &QueuedMail) -> String {
    link_token(&mail.raw, "/verify/")
}

pub fn link_token(raw: &str, marker: &str) -> String {
    let start = raw
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} link in:\n{raw}"))
        + marker.len();
    let rest = &raw[start..];
    let end = rest.find(".\r\n").expect("link ends the sentence");
    rest[..end].to_string()
}

/// A problem document's `code`, after checking its shape.
pub async fn problem_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "status {status}");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["status"].as_u64(), Some(status as u64), "{v}");
    assert_eq!(v["type"], "about:blank");
    assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
    (status, v["code"].as_str().unwrap().to_string())
}

/// An SMTP server in the test process: the library's sink, not printing.
pub struct TestSink {
    pub addr: SocketAddr,
    pub inbox: Arc<Inbox>,
    stop: CancellationToken,
}

impl TestSink {
    pub async fn start() -> TestSink {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> TestSink {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Inbox::new(100));
        let mut sink = Sink::new(SessionConfig {
            smtputf8: true,
            ..SessionConfig::default()
        });
        sink.printer = None;
        sink.inbox = Some(inbox.clone());
        let stop = CancellationToken::new();
        tokio::spawn(sink.serve(listener, stop.clone()));
        TestSink { addr, inbox, stop }
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Waits for the `n`th message (newest first in the inbox).
    pub async fn wait_for(&self, n: usize) -> Vec<StoredMessage> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let arrived = self.inbox.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let list = self.inbox.list();
            if list.len() >= n {
                return list;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("timed out waiting for {n} message(s); have {}", list.len());
            }
        }
    }
}

impl Drop for TestSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The token in a raw message's `/verify/` link.
pub fn token_in(raw: &[u8]) -> String {
    link_token(&String::from_utf8_lossy(raw), "/verify/")
}

/// The Python that has `smtpd` (3.11); `.ci/run` makes sure it exists.
pub fn python() -> String {
    std::env::var("SMTPD_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Blocks until something accepts connections on `port`.
pub fn wait_listening(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// A child process that is killed when the test ends, passed or failed.
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the program `command(port)` builds on a free port and waits until
/// it listens. A free port can be taken between the check and the program's
/// bind; then the program exits, and another port is tried.
pub fn spawn_listening(command: impl Fn(u16) -> Command) -> (KillOnDrop, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = command(port);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        let mut child = KillOnDrop(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nothing listens on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("the program kept exiting instead of listening");
}

/// An SMTP server that refuses every recipient with `reply`.
pub async fn refusing_relay(reply: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = tokio::io::BufReader::new(r).lines();
                w.write_all(b"220 refusing ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
                    let answer = match verb.as_str() {
                        "EHLO" => "250-refusing\r\n250 8BITMIME\r\n".to_string(),
                        "RCPT" => format!("{reply}\r\n"),
                        "QUIT" => "221 bye\r\n".to_string(),
                        _ => "250 OK\r\n".to_string(),
                    };
                    if w.write_all(answer.as_bytes()).await.is_err() || verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    port
}
