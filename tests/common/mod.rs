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

use signupd::store::{QueuedMail, Store, User};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PUBLIC_URL: &str = "http://signupd.test";
pub const BIN: &str = env!("CARGO_BIN_EXE_signupd");

pub struct TestDaemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: Arc<tempfile::TempDir>,
    env: Vec<(String, String)>,
    pub log: Arc<Mutex<Vec<String>>>,
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
             [limits]\nenabled = false\n",
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

    fn spawn(dir: Arc<tempfile::TempDir>, env: Vec<(String, String)>) -> TestDaemon {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(Self::config_path(dir.path()))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening")
                    && let Some(addr) = line.split("addr=").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let addr = addr.split_whitespace().next().unwrap_or("").to_string();
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
        TestDaemon {
            child: Some(child),
            addr,
            dir,
            env,
            log,
            http: reqwest::Client::new(),
        }
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
    pub fn restart(mut self) -> TestDaemon {
        if self.child.is_some() {
            assert!(self.stop().success());
        }
        Self::spawn(self.dir.clone(), std::mem::take(&mut self.env))
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
