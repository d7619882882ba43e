//! The pages people see, driven in headless Chromium through chromedriver:
//! the link in the confirmation mail, the reset form, the dev inbox, and
//! that nothing from a user or a mail runs as HTML.
//!
//! `.ci/run` installs chromium and chromium-driver and always runs these.
//! Elsewhere, without chromedriver on PATH, they say so and pass, so that
//! `cargo test` works for a developer who has no browser.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

struct Browser {
    client: Client,
    _driver: KillOnDrop,
    _profile: tempfile::TempDir,
    /// Browser tests take turns: several Chromiums on two cores only slow
    /// each other down.
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Browser {
    async fn start() -> Option<Browser> {
        let turn = TURN.lock().await;
        let Some(driver) = find_program("chromedriver") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromedriver is not installed; .ci/run installs chromium-driver"
            );
            eprintln!(
                "skipped: no chromedriver on PATH (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let (driver, port) = spawn_listening(|port| {
            let mut c = std::process::Command::new(&driver);
            c.arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c
        });
        let profile = tempfile::tempdir().unwrap();
        let mut options = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=420,900",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        });
        if let Some(bin) = find_program("chromium") {
            options["binary"] = json!(bin);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver starts a Chromium session");
        Some(Browser {
            client,
            _driver: driver,
            _profile: profile,
            _one_at_a_time: turn,
        })
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks, then waits until the old document is gone: the browser has
    /// navigated to whatever the click submitted or linked to.
    async fn click_and_navigate(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.click(css).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while old.tag_name().await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "clicking {css} loaded no page"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits for the page that has an `h1` reading `title` (a form's answer).
    async fn wait_for_title(&self, title: &str) {
        self.client
            .wait()
            .at_most(std::time::Duration::from_secs(20))
            .for_element(Locator::XPath(&format!(
                "//h1[normalize-space()='{title}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("no page titled {title:?}: {e}"));
    }

    /// Opens the newest mail in the dev inbox and follows its link.
    async fn follow_newest_mail(&self, d: &TestDaemon, link: &str) {
        self.client.goto(&d.url("/dev/mail")).await.unwrap();
        self.click("details.message summary").await;
        self.click_and_navigate(&format!("details.message a[href*='{link}']"))
            .await;
    }
}

/// Waits until `old` (an element of the previous page) is gone.
async fn wait_gone(old: fantoccini::elements::Element) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while old.tag_name().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "no new page loaded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(name))
        .find(|p| p.is_file())
}

async fn wait_for_mail(d: &TestDaemon, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get_json(&d.http, &d.url("/dev/mail/messages"))
        .await
        .as_array()
        .unwrap()
        .len()
        < n
    {
        assert!(
            std::time::Instant::now() < deadline,
            "mail {n} never reached the sink"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn confirm_from_the_inbox_by_clicking() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let d = TestDaemon::start_dev();
    assert_eq!(
        d.register("click@example.com", "clicking pass phrase")
            .await
            .status(),
        202
    );
    wait_for_mail(&d, 1).await;

    b.follow_newest_mail(&d, "/verify/").await;
    b.wait_for_title("Confirm your address").await;
    assert_eq!(
        b.client
            .find(Locator::Css("html"))
            .await
            .unwrap()
            .attr("lang")
            .await
            .unwrap()
            .as_deref(),
        Some("en")
    );
    // Only pressing the button confirms; the page alone changed nothing.
    let r = d
        .post_json(
            "/api/auth/login",
            json!({"email": "click@example.com", "password": "clicking pass phrase"}),
        )
        .await;
    assert_eq!(problem_code(r).await.1, "email_unconfirmed");
    // By keyboard: focus the button and press Enter.
    let old = b.client.find(Locator::Css("html")).await.unwrap();
    let button = b
        .client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap();
    button.send_keys("\u{E007}").await.unwrap();
    wait_gone(old).await;
    b.wait_for_title("Address confirmed").await;
    assert!(b.text("main").await.contains("click@example.com"));
    let r = d
        .post_json(
            "/api/auth/login",
            json!({"email": "click@example.com", "password": "clicking pass phrase"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn reset_through_the_form_with_an_inline_error_first() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let d = TestDaemon::start_dev();
    d.register("forgetful@example.com", "old pass phrase").await;
    wait_for_mail(&d, 1).await;
    let r = d
        .post_json(
            "/api/auth/password/forgot",
            json!({"email": "forgetful@example.com"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    wait_for_mail(&d, 2).await;

    b.follow_newest_mail(&d, "/reset/").await;
    b.wait_for_title("Choose a new password").await;
    // Labels name the fields.
    assert_eq!(
        b.text("label[for=password]").await,
        "New password (8 to 72 bytes)"
    );
    b.type_into("#password", "short").await;
    b.type_into("#password_confirm", "short").await;
    b.click_and_navigate("form button[type=submit]").await;
    assert!(
        b.text("#error").await.contains("at least 8"),
        "inline error"
    );
    b.type_into("#password", "a brand new pass phrase").await;
    b.type_into("#password_confirm", "a brand new pass phrase")
        .await;
    b.click_and_navigate("form button[type=submit]").await;
    b.wait_for_title("Password changed").await;

    let r = d
        .post_json(
            "/api/auth/login",
            json!({"email": "forgetful@example.com", "password": "a brand new pass phrase"}),
        )
        .await;
    assert_eq!(
        r.status(),
        200,
        "the reset also confirmed the pending address"
    );
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn markup_in_a_mail_shows_as_text_and_the_inbox_empties() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let d = TestDaemon::start_dev();
    let sink = d.sink_addr.expect("dev mode runs the sink");
    let mut smtp = mail_send::SmtpClientBuilder::new("127.0.0.1".to_string(), sink.port())
        .unwrap()
        .implicit_tls(false)
        .connect_plain()
        .await
        .unwrap();
    let body = "Subject: <b>bold</b>\r\n\r\n<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">\r\n";
    let msg = mail_send::smtp::message::Message::new(
        "a@example.com",
        ["b@example.org"],
        body.as_bytes().to_vec(),
    );
    smtp.send(msg).await.unwrap();
    smtp.quit().await.unwrap();

    b.client.goto(&d.url("/dev/mail")).await.unwrap();
    b.click("details.message summary").await;
    assert!(
        b.text("details.message summary")
            .await
            .contains("<b>bold</b>")
    );
    assert!(
        b.text("details.message pre")
            .await
            .contains("<script>document.title='pwned'</script>")
    );
    assert!(
        b.client
            .find_all(Locator::Css("main script, main img, main b"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_ne!(b.client.title().await.unwrap(), "pwned");

    b.click_and_navigate("form[action='/dev/mail/clear'] button")
        .await;
    // Back on the inbox, now empty.
    assert!(b.text("main p").await.starts_with("0 message(s)"));
    assert!(
        b.client
            .find_all(Locator::Css("details.message"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.client.current_url().await.unwrap().path(), "/dev/mail");
    b.client.close().await.unwrap();
}
