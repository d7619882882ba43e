//! Sign-up and confirmation, through the API and through the mail's link.

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn register_queues_the_contract_mail_and_its_link_confirms() {
    let mut d = TestDaemon::start();
    let r = d.register("Ada@Example.com", "correct horse").await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "confirmation_sent"})
    );
    d.stop();

    let mail = d.outbox();
    assert_eq!(mail.len(), 1);
    let m = &mail[0];
    assert_eq!(m.to, "Ada@Example.com");
    assert_eq!(m.from, "noreply@example.com");
    let (head, body) = m.raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Subject: Please confirm your registration\r\n"),
        "{head}"
    );
    assert!(head.contains("From: noreply@example.com\r\n"), "{head}");
    assert!(head.contains("To: Ada@Example.com\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; charset=\"utf-8\""),
        "{head}"
    );
    let token = verify_token(m);
    assert_eq!(
        body,
        format!("Hi!\r\n\r\nPlease confirm your registration: {PUBLIC_URL}/verify/{token}.\r\n")
    );
    let users = d.users();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].status.as_str(), "pending");

    let d = d.restart();
    let r = d.verify(&token).await;
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["email"], "Ada@Example.com");
    assert_eq!(user["status"], "active");
    assert_eq!(user["id"], users[0].id.to_string());
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(user["confirmed_at"].as_str().unwrap().ends_with('Z'));

    // Single use.
    assert_eq!(
        problem_code(d.verify(&token).await).await,
        (400, "token_used".into())
    );
}

#[tokio::test]
async fn register_answers_alike_for_new_pending_and_active_addresses() {
    let mut d = TestDaemon::start();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = d.register("bob@example.org", "first password").await;
        answers.push((r.status(), r.text().await.unwrap()));
    }
    d.stop();
    let mail = d.outbox();
    assert_eq!(mail.len(), 2, "a pending address gets a new confirmation");
    let (old, new) = (verify_token(&mail[0]), verify_token(&mail[1]));
    let mut d = d.restart();
    assert_eq!(
        problem_code(d.verify(&old).await).await,
        (400, "token_invalid".into()),
        "a newer confirmation voids the older one"
    );
    assert_eq!(d.verify(&new).await.status(), 200);

    let r = d.register("BOB@example.org", "other password").await;
    answers.push((r.status(), r.text().await.unwrap()));
    for a in &answers {
        assert_eq!(a, &answers[0]);
    }
    d.stop();
    let mail = d.outbox();
    assert_eq!(mail.len(), 3);
    assert!(
        mail[2].raw.contains("Subject: You already have an account"),
        "{}",
        mail[2].raw
    );
    assert!(
        !mail[2].raw.contains("/verify/"),
        "the notice carries no token"
    );
    let users = d.users();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].status.as_str(), "active");
    assert!(
        bcrypt::verify("first password", &users[0].password_hash).unwrap(),
        "registering an active address changes nothing"
    );
}

#[tokio::test]
async fn fifty_parallel_registrations_of_one_address_make_one_account() {
    let mut d = TestDaemon::start();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let http = d.http.clone();
        let url = d.url("/api/auth/register");
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .json(&json!({"email": email, "password": "race password"}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    d.stop();
    assert_eq!(d.users().len(), 1);
    assert_eq!(d.outbox().len(), 50, "every request queued its mail");
}

#[tokio::test]
async fn the_mail_link_shows_a_button_and_only_the_post_confirms() {
    let mut d = TestDaemon::start();
    d.register("carol@example.net", "carol's password").await;
    d.stop();
    let token = verify_token(&d.outbox()[0]);
    let d = d.restart();

    let page = d
        .http
        .get(d.url(&format!("/verify/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(page.headers()[h], v);
    }
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "<form method=\"post\" action=\"/verify/{token}\">"
        )),
        "{html}"
    );
    // Opening the link twice (a scanner, then the person) used nothing.
    d.http
        .get(d.url(&format!("/verify/{token}")))
        .send()
        .await
        .unwrap();

    let post = |t: String| {
        let http = d.http.clone();
        let url = d.url(&format!("/verify/{t}"));
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, html) = post(token.clone()).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Address confirmed") && html.contains("carol@example.net"),
        "{html}"
    );
    let (status, html) = post(token.clone()).await;
    assert_eq!(status, 200);
    assert!(html.contains("already confirmed"), "{html}");
    let (status, html) = post("not-a-token".into()).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("action=\"/resend\""),
        "offers a new link: {html}"
    );
}

#[tokio::test]
async fn resend_answers_alike_and_mails_only_pending_accounts() {
    let mut d = TestDaemon::start();
    d.register("pending@example.com", "password one").await;
    d.register("active@example.com", "password two").await;
    d.stop();
    let active_token = verify_token(&d.outbox()[1]);
    let d = d.restart();
    assert_eq!(d.verify(&active_token).await.status(), 200);

    let mut answers = Vec::new();
    for email in [
        "pending@example.com",
        "active@example.com",
        "nobody@example.com",
    ] {
        let r = d
            .post_json("/api/auth/resend", json!({"email": email}))
            .await;
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 202);
    assert_eq!(answers[0].1, r#"{"status":"confirmation_sent"}"#);
    assert!(answers.iter().all(|a| a == &answers[0]));

    // The HTML form resends too and says so without telling whether the address exists.
    let r = d
        .http
        .post(d.url("/resend"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=pending%40example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("If the address is registered, a new mail is on its way")
    );

    let mut d = d;
    d.stop();
    let to: Vec<String> = d.outbox().iter().map(|m| m.to.clone()).collect();
    assert_eq!(
        to,
        [
            "pending@example.com",
            "active@example.com",
            "pending@example.com",
            "pending@example.com"
        ]
    );
    // Only the newest of the pending account's three links works.
    let mail = d.outbox();
    let d = d.restart();
    assert_eq!(
        problem_code(d.verify(&verify_token(&mail[2])).await)
            .await
            .1,
        "token_invalid"
    );
    assert_eq!(d.verify(&verify_token(&mail[3])).await.status(), 200);
}

#[tokio::test]
async fn pages_carry_the_configured_branding() {
    let d = TestDaemon::start_with(&[
        ("SIGNUPD_BRANDING__PRODUCT_NAME", "Acme <Accounts>"),
        ("SIGNUPD_BRANDING__SUPPORT_EMAIL", "help@acme.example"),
    ]);
    let html = get_text(&d.http, &d.url("/verify/some-token")).await;
    assert!(
        html.contains("<header>Acme &lt;Accounts&gt;</header>"),
        "{html}"
    );
    assert!(
        html.contains("<title>Confirm your address · Acme &lt;Accounts&gt;</title>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"mailto:help@acme.example\">help@acme.example</a>"),
        "{html}"
    );
    assert!(
        html.contains("<html lang=\"en\">") && html.contains("name=\"viewport\""),
        "{html}"
    );
}
