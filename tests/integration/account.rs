//! The whole account lifecycle through real mail, each route's refusals,
//! revocation, tokens used outside their place, and the abuse limits.

use crate::common::*;
use serde_json::{Value, json};

const PW: &str = "first pass phrase";

/// The link token of the newest mail whose body has `marker`.
fn token_after(raw: &[u8], marker: &str) -> String {
    link_token(&String::from_utf8_lossy(raw), marker)
}

async fn login(d: &TestDaemon, email: &str, password: &str) -> reqwest::Response {
    d.post_json(
        "/api/auth/login",
        json!({"email": email, "password": password}),
    )
    .await
}

async fn access_token(d: &TestDaemon, email: &str, password: &str) -> String {
    let r = login(d, email, password).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    v["access_token"].as_str().unwrap().to_string()
}

async fn me(d: &TestDaemon, token: &str) -> reqwest::Response {
    d.http
        .get(d.url("/api/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn bearer_post(d: &TestDaemon, path: &str, token: &str, body: Value) -> reqwest::Response {
    d.http
        .post(d.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Registers and confirms through the mailed link; returns the mail count seen.
async fn active_account(d: &TestDaemon, sink: &TestSink, email: &str, password: &str) -> usize {
    let before = sink.inbox.list().len();
    assert_eq!(d.register(email, password).await.status(), 202);
    let mail = sink.wait_for(before + 1).await;
    assert_eq!(d.verify(&token_in(&mail[0].raw)).await.status(), 200);
    before + 1
}

async fn forgot(d: &TestDaemon, email: &str) -> reqwest::Response {
    d.post_json("/api/auth/password/forgot", json!({"email": email}))
        .await
}

async fn reset_password(d: &TestDaemon, token: &str, password: &str) -> reqwest::Response {
    d.post_json(
        "/api/auth/password/reset",
        json!({"token": token, "password": password}),
    )
    .await
}

fn form(d: &TestDaemon, path: &str, body: String) -> reqwest::RequestBuilder {
    d.http
        .post(d.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

#[tokio::test]
async fn the_whole_lifecycle_through_real_mail() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    let email = "life@example.com";
    let mut seen = active_account(&d, &sink, email, PW).await;

    let token = access_token(&d, email, PW).await;
    let r = me(&d, &token).await;
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["email"], email);
    assert_eq!(user["status"], "active");

    let r = bearer_post(
        &d,
        "/api/auth/password/change",
        &token,
        json!({"current_password": PW, "new_password": "second pass phrase"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        problem_code(me(&d, &token).await).await,
        (401, "unauthorized".into()),
        "old token revoked"
    );
    assert_eq!(
        problem_code(login(&d, email, PW).await).await.1,
        "invalid_credentials"
    );
    let token = access_token(&d, email, "second pass phrase").await;

    let r = d
        .post_json("/api/auth/password/forgot", json!({"email": email}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "reset_sent"})
    );
    seen += 1;
    let mail = sink.wait_for(seen).await;
    assert_eq!(mail[0].subject, "Reset your password");
    let reset = token_after(&mail[0].raw, "/reset/");
    // The page behind the link uses nothing; its form posts the token.
    let page = d
        .http
        .get(d.url(&format!("/reset/{reset}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("action=\"/api/auth/password/reset\""),
        "{html}"
    );
    assert!(
        html.contains(&format!("name=\"token\" value=\"{reset}\"")),
        "{html}"
    );
    let r = form(
        &d,
        "/api/auth/password/reset",
        format!("token={reset}&password=third+pass+phrase&password_confirm=third+pass+phrase"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Password changed"));
    assert_eq!(
        problem_code(me(&d, &token).await).await.1,
        "unauthorized",
        "reset revokes access tokens"
    );
    let token = access_token(&d, email, "third pass phrase").await;

    let r = d
        .http
        .delete(d.url("/api/auth/me"))
        .bearer_auth(&token)
        .json(&json!({"password": "third pass phrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(problem_code(me(&d, &token).await).await.1, "unauthorized");
    assert_eq!(
        problem_code(login(&d, email, "third pass phrase").await)
            .await
            .1,
        "invalid_credentials"
    );

    // The address is free again: a new account, a new confirmation.
    assert_eq!(d.register(email, PW).await.status(), 202);
    let mail = sink.wait_for(seen + 1).await;
    assert_eq!(mail[0].subject, "Please confirm your registration");
    let r = d.verify(&token_in(&mail[0].raw)).await;
    let again: Value = r.json().await.unwrap();
    assert_ne!(again["id"], user["id"]);
}

#[tokio::test]
async fn login_refuses_alike_and_tells_unconfirmed_only_to_the_owner() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    active_account(&d, &sink, "known@example.com", PW).await;
    d.register("pending@example.com", PW).await;

    let unknown = login(&d, "nobody@example.com", PW).await;
    let wrong = login(&d, "known@example.com", "not the password").await;
    let (u_status, w_status) = (unknown.status(), wrong.status());
    assert_eq!(u_status, 401);
    assert_eq!(
        unknown.text().await.unwrap(),
        wrong.text().await.unwrap(),
        "same answer"
    );
    assert_eq!(w_status, 401);
    for (email, pw) in [
        ("pending@example.com", "not the password"),
        ("not an address", PW),
    ] {
        assert_eq!(
            problem_code(login(&d, email, pw).await).await,
            (401, "invalid_credentials".into())
        );
    }
    let long = "x".repeat(100);
    assert_eq!(
        problem_code(login(&d, "known@example.com", &long).await)
            .await
            .1,
        "invalid_credentials"
    );
    assert_eq!(
        problem_code(login(&d, "pending@example.com", PW).await).await,
        (403, "email_unconfirmed".into())
    );
    let r = d
        .post_json("/api/auth/login", json!({"email": "known@example.com"}))
        .await;
    assert_eq!(problem_code(r).await, (400, "missing_field".into()));
    // Addresses compare case-insensitively.
    assert_eq!(login(&d, "KNOWN@Example.com", PW).await.status(), 200);
}

#[tokio::test]
async fn bearer_tokens_are_checked_and_logout_revokes_only_that_one() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    active_account(&d, &sink, "bear@example.com", PW).await;
    let r = d.http.get(d.url("/api/auth/me")).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(problem_code(r).await, (401, "unauthorized".into()));
    let r = d
        .http
        .get(d.url("/api/auth/me"))
        .header("authorization", "Basic Ym9iOnB3")
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(r).await.1, "unauthorized");
    assert_eq!(
        problem_code(me(&d, "not.a.jwt").await).await.1,
        "unauthorized"
    );

    let one = access_token(&d, "bear@example.com", PW).await;
    let two = access_token(&d, "bear@example.com", PW).await;
    let r = d
        .http
        .post(d.url("/api/auth/logout"))
        .bearer_auth(&one)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(problem_code(me(&d, &one).await).await.1, "unauthorized");
    let r = d
        .http
        .post(d.url("/api/auth/logout"))
        .bearer_auth(&one)
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(r).await.1, "unauthorized", "twice is refused");
    assert_eq!(me(&d, &two).await.status(), 200, "other sessions stay");
    // Revocation is durable.
    let d = d.restart();
    assert_eq!(problem_code(me(&d, &one).await).await.1, "unauthorized");
    assert_eq!(me(&d, &two).await.status(), 200);
}

#[tokio::test]
async fn every_token_works_only_in_its_own_place() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    d.register("scope@example.com", PW).await;
    let confirmation = token_in(&sink.wait_for(1).await[0].raw);
    forgot(&d, "scope@example.com").await;
    let reset = token_after(&sink.wait_for(2).await[0].raw, "/reset/");
    // A reset proves the mailbox: the pending account becomes active.
    let r = reset_password(&d, &reset, "reset pass phrase").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "active");
    // Single use.
    let r = reset_password(&d, &reset, "other pass phrase").await;
    assert_eq!(problem_code(r).await.1, "token_used");
    let access = access_token(&d, "scope@example.com", "reset pass phrase").await;
    forgot(&d, "scope@example.com").await;
    let reset2 = token_after(&sink.wait_for(3).await[0].raw, "/reset/");

    assert_eq!(
        problem_code(d.verify(&access).await).await.1,
        "token_invalid"
    );
    assert_eq!(
        problem_code(d.verify(&reset2).await).await.1,
        "token_invalid"
    );
    for t in [&confirmation, &reset2] {
        assert_eq!(problem_code(me(&d, t).await).await.1, "unauthorized");
    }
    for t in [&access, &confirmation] {
        let r = reset_password(&d, t, "other pass phrase").await;
        assert_eq!(problem_code(r).await.1, "token_invalid");
    }
    assert_eq!(me(&d, &access).await.status(), 200);
}

#[tokio::test]
async fn password_rules_apply_to_register_reset_and_change() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    assert_eq!(
        problem_code(d.register("c@example.com", "password1").await).await,
        (400, "password_too_common".into())
    );
    assert_eq!(
        problem_code(d.register("c@example.com", "P@ssw0rd").await)
            .await
            .1,
        "password_too_common"
    );
    active_account(&d, &sink, "rules@example.com", PW).await;
    let token = access_token(&d, "rules@example.com", PW).await;
    let change = |current: &str, new: &str| {
        bearer_post(
            &d,
            "/api/auth/password/change",
            &token,
            json!({"current_password": current, "new_password": new}),
        )
    };
    assert_eq!(
        problem_code(change("wrong", "new pass phrase").await).await,
        (401, "invalid_credentials".into())
    );
    assert_eq!(
        problem_code(change(PW, "short").await).await,
        (400, "password_too_short".into())
    );
    assert_eq!(
        problem_code(change(PW, &"x".repeat(73)).await).await,
        (400, "password_too_long".into())
    );
    assert_eq!(
        problem_code(change(PW, "iloveyou").await).await,
        (400, "password_too_common".into())
    );
    let r = bearer_post(
        &d,
        "/api/auth/password/change",
        &token,
        json!({"current_password": PW}),
    )
    .await;
    assert_eq!(problem_code(r).await, (400, "missing_field".into()));
    assert_eq!(
        me(&d, &token).await.status(),
        200,
        "refused changes changed nothing"
    );

    forgot(&d, "rules@example.com").await;
    let reset = token_after(&sink.wait_for(2).await[0].raw, "/reset/");
    let r = reset_password(&d, &reset, "qwerty123").await;
    assert_eq!(problem_code(r).await, (400, "password_too_common".into()));
    // The form shows the reason next to the field and keeps the token.
    for (body, reason) in [
        (
            format!("token={reset}&password=short&password_confirm=short"),
            "at least 8",
        ),
        (
            format!("token={reset}&password=long+pass+phrase&password_confirm=other+pass+phrase"),
            "not the same",
        ),
        (
            format!("token={reset}&password=baseball&password_confirm=baseball"),
            "most common",
        ),
    ] {
        let r = form(&d, "/api/auth/password/reset", body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("class=\"err\"") && html.contains(reason),
            "{reason}: {html}"
        );
        assert!(
            html.contains(&format!("value=\"{reset}\"")),
            "the form keeps its token"
        );
    }
    let r = form(
        &d,
        "/api/auth/password/reset",
        "token=garbage&password=long+pass+phrase&password_confirm=long+pass+phrase".into(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not valid"));
    // The refusals above did not use the link.
    let r = reset_password(&d, &reset, "finally good phrase").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn forgot_answers_alike_and_deletion_takes_unsent_mail_along() {
    // No relay: everything queued stays in the outbox to be inspected.
    let mut d = TestDaemon::start();
    d.register("del@example.com", PW).await;
    d.register("stay@example.com", PW).await;
    d.stop();
    let mail = d.outbox();
    let d = d.restart();
    assert_eq!(d.verify(&verify_token(&mail[0])).await.status(), 200);
    let token = access_token(&d, "del@example.com", PW).await;

    let mut answers = Vec::new();
    for email in ["del@example.com", "nobody@example.com"] {
        let r = d
            .post_json("/api/auth/password/forgot", json!({"email": email}))
            .await;
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1]);
    let r = d
        .http
        .delete(d.url("/api/auth/me"))
        .bearer_auth(&token)
        .json(&json!({"password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(r).await, (401, "invalid_credentials".into()));
    let r = d
        .http
        .delete(d.url("/api/auth/me"))
        .bearer_auth(&token)
        .json(&json!({"password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let mut d = d;
    d.stop();
    let left: Vec<String> = d.outbox().iter().map(|m| m.to.clone()).collect();
    assert_eq!(
        left,
        ["stay@example.com"],
        "the deleted account's confirmation and reset mail are gone"
    );
    assert_eq!(d.users().len(), 1);
}

#[tokio::test]
async fn limits_trip_per_ip_per_address_and_per_account() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[
        ("SIGNUPD_MAIL__SMTP_PORT", &sink.port()),
        ("SIGNUPD_LIMITS__ENABLED", "true"),
        ("SIGNUPD_LIMITS__PER_IP_PER_MINUTE", "6"),
        ("SIGNUPD_LIMITS__LOGIN_FAILURES_BEFORE_DELAY", "2"),
    ]);
    active_account(&d, &sink, "lim@example.com", PW).await;

    // One reset mail per address per interval; the answers stay 202.
    for _ in 0..3 {
        let r = d
            .post_json(
                "/api/auth/password/forgot",
                json!({"email": "lim@example.com"}),
            )
            .await;
        assert_eq!(r.status(), 202);
    }
    let r = d
        .post_json("/api/auth/resend", json!({"email": "lim@example.com"}))
        .await;
    assert_eq!(r.status(), 202);
    let mail = sink.wait_for(2).await;
    d.wait_ready("the queue to drain", |v| {
        v["mail"]["queue_depth"] == 0 && v["mail"]["sent"] == 2
    })
    .await;
    assert_eq!(
        sink.inbox.list().len(),
        2,
        "{:?}",
        mail.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );

    // Failed logins slow the account down, known or not, then let its owner in.
    for email in ["lim@example.com", "ghost@example.com"] {
        for _ in 0..2 {
            assert_eq!(
                problem_code(login(&d, email, "wrong guess").await).await.1,
                "invalid_credentials"
            );
        }
        let r = login(&d, email, PW).await;
        let wait: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(problem_code(r).await, (429, "rate_limited".into()));
        assert!((1..=60).contains(&wait));
    }
    // The login route's own bucket (6 a minute) is now spent: 7 logins so far.
    let r = login(&d, "lim@example.com", PW).await;
    assert_eq!(problem_code(r).await.1, "rate_limited");
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let limited = [
        ("SIGNUPD_LIMITS__ENABLED", "true"),
        ("SIGNUPD_LIMITS__PER_IP_PER_MINUTE", "1"),
    ];
    let forgot = |d: &TestDaemon, client: &'static str| {
        d.http
            .post(d.url("/api/auth/password/forgot"))
            .header("x-forwarded-for", format!("6.6.6.6, {client}"))
            .json(&json!({"email": "x@example.com"}))
            .send()
    };
    // Behind a trusted proxy, each client has its own bucket; the spoofable left part is ignored.
    let mut env = limited.to_vec();
    env.push(("SIGNUPD_LIMITS__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#));
    let d = TestDaemon::start_with(&env);
    assert_eq!(forgot(&d, "203.0.113.1").await.unwrap().status(), 202);
    assert_eq!(forgot(&d, "203.0.113.2").await.unwrap().status(), 202);
    assert_eq!(
        problem_code(forgot(&d, "203.0.113.1").await.unwrap())
            .await
            .1,
        "rate_limited"
    );
    // From an untrusted peer the header is ignored: all share the peer's bucket.
    let d = TestDaemon::start_with(&limited);
    assert_eq!(forgot(&d, "203.0.113.1").await.unwrap().status(), 202);
    assert_eq!(
        problem_code(forgot(&d, "203.0.113.2").await.unwrap())
            .await
            .1,
        "rate_limited"
    );
}

#[tokio::test]
async fn one_confirmation_per_address_per_interval_and_the_answers_stay_202() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[
        ("SIGNUPD_MAIL__SMTP_PORT", &sink.port()),
        ("SIGNUPD_LIMITS__ENABLED", "true"),
        ("SIGNUPD_LIMITS__PER_IP_PER_MINUTE", "100"),
    ]);
    for _ in 0..3 {
        assert_eq!(d.register("once@example.com", PW).await.status(), 202);
    }
    let r = d
        .post_json("/api/auth/resend", json!({"email": "once@example.com"}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(d.register("other@example.com", PW).await.status(), 202);
    sink.wait_for(2).await;
    d.wait_ready("the queue to drain", |v| v["mail"]["queue_depth"] == 0)
        .await;
    let to: Vec<Vec<String>> = sink.inbox.list().into_iter().map(|m| m.to).collect();
    assert_eq!(
        to,
        [["other@example.com"], ["once@example.com"]],
        "one each"
    );
    // The one link sent still confirms the account.
    let first = sink
        .inbox
        .list()
        .into_iter()
        .find(|m| m.to[0] == "once@example.com")
        .unwrap();
    assert_eq!(d.verify(&token_in(&first.raw)).await.status(), 200);
}
