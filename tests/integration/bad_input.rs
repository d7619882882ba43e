//! Every refusal: its status, its problem `code`, and a server that is
//! still healthy afterwards.

use crate::common::*;
use serde_json::json;
use signupd::auth::Auth;
use signupd::config::{Config, Secret};
use signupd::pool::HashPool;
use signupd::store::Scope;
use std::io::{Read, Write};

async fn raw_post(d: &TestDaemon, path: &str, ct: Option<&str>, body: &str) -> (u16, String) {
    let mut req = d.http.post(d.url(path)).body(body.to_string());
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    problem_code(req.send().await.unwrap()).await
}

#[tokio::test]
async fn malformed_bodies_and_fields() {
    let d = TestDaemon::start();
    let json_ct = Some("application/json");
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        (
            "/api/auth/register",
            json_ct,
            "{".into(),
            400,
            "malformed_json",
        ),
        (
            "/api/auth/register",
            json_ct,
            "".into(),
            400,
            "malformed_json",
        ),
        (
            "/api/auth/register",
            json_ct,
            "[1,2]".into(),
            400,
            "malformed_json",
        ),
        (
            "/api/auth/register",
            json_ct,
            "\"a@b.org\"".into(),
            400,
            "malformed_json",
        ),
        (
            "/api/auth/register",
            json_ct,
            r#"{"password":"12345678"}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/api/auth/register",
            json_ct,
            r#"{"email":"a@b.org"}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/api/auth/register",
            json_ct,
            r#"{"email":42,"password":"12345678"}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "/api/auth/register",
            json_ct,
            r#"{"email":"a@b.org","password":["x"]}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "/api/auth/verify",
            json_ct,
            r#"{"token":null}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/api/auth/resend",
            json_ct,
            r#"{"email":true}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "/api/auth/register",
            Some("text/plain"),
            r#"{"email":"a@b.org","password":"12345678"}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "/api/auth/register",
            None,
            r#"{"email":"a@b.org","password":"12345678"}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "/api/auth/register",
            Some("application/x-www-form-urlencoded"),
            "email=a".into(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (path, ct, body, status, code) in cases {
        assert_eq!(
            raw_post(&d, path, ct, &body).await,
            (status, code.to_string()),
            "{path} {ct:?} {body}"
        );
    }
    // Extra fields are ignored; a charset parameter is fine.
    let r = d
        .http
        .post(d.url("/api/auth/register"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"email":"extra@example.com","password":"kq8#vz2m","plan":"gold"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(d.healthy().await);
}

#[tokio::test]
async fn addresses_and_passwords_are_checked_before_anything_is_stored() {
    let mut d = TestDaemon::start();
    let long_email = format!("{}@example.com", "a".repeat(243));
    let cases = [
        (
            "a@example.com\r\nBcc: x@evil.org",
            "12345678",
            "email_invalid",
        ),
        ("a@example.com\nX: y", "12345678", "email_invalid"),
        ("a\u{1}b@example.com", "12345678", "email_invalid"),
        ("a\u{7f}@example.com", "12345678", "email_invalid"),
        (long_email.as_str(), "12345678", "email_invalid"),
        ("nodomain", "12345678", "email_invalid"),
        ("nodomain@", "12345678", "email_invalid"),
        ("", "12345678", "email_invalid"),
        ("ok@example.com", "1234567", "password_too_short"),
        ("ok@example.com", &"p".repeat(73), "password_too_long"),
        ("ok@example.com", &"ü".repeat(37), "password_too_long"),
    ];
    for (email, password, code) in cases {
        let r = d.register(email, password).await;
        assert_eq!(
            problem_code(r).await,
            (400, code.to_string()),
            "{email:?} / {} bytes",
            password.len()
        );
    }
    // Boundaries that pass: 8 and 72 bytes, and non-ASCII that round-trips.
    assert_eq!(
        d.register("eight@example.com", "kq8#vz2m").await.status(),
        202
    );
    assert_eq!(
        d.register("seventy2@example.com", &"p".repeat(72))
            .await
            .status(),
        202
    );
    assert_eq!(
        d.register("Jürgen.Ä@bücher.example", "pässwörd-ü-✓")
            .await
            .status(),
        202
    );
    assert!(d.healthy().await);
    d.stop();
    let mail = d.outbox();
    assert_eq!(mail.len(), 3, "refused requests stored nothing");
    let users = d.users();
    let jurgen = users
        .iter()
        .find(|u| u.email.starts_with("Jürgen"))
        .unwrap();
    assert!(bcrypt::verify("pässwörd-ü-✓", &jurgen.password_hash).unwrap());
    let d = d.restart();
    let r = d.verify(&verify_token(&mail[2])).await;
    assert_eq!(r.status(), 200);
    let user: serde_json::Value = r.json().await.unwrap();
    assert_eq!(user["email"], "Jürgen.Ä@bücher.example");
}

#[tokio::test]
async fn oversized_body_is_refused_before_it_is_sent() {
    let d = TestDaemon::start_with(&[("SIGNUPD_SERVER__MAX_BODY_BYTES", "1024")]);
    // Declared too large: the answer comes without the body ever being sent.
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    write!(
        s,
        "POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"body_too_large\""), "{answer}");
    // Chunked, with no length to check up front: cut off at the limit.
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    let big = json!({"email": "a@example.com", "password": "x".repeat(2000)}).to_string();
    write!(
        s,
        "POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(d.healthy().await);
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let d = TestDaemon::start();
    let r = d.http.get(d.url("/api/auth/nope")).send().await.unwrap();
    assert_eq!(problem_code(r).await, (404, "not_found".into()));
    let r = d
        .http
        .get(d.url("/api/auth/register"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    assert_eq!(problem_code(r).await, (405, "method_not_allowed".into()));
    let r = d.http.delete(d.url("/verify/abc")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, POST");
    assert_eq!(problem_code(r).await, (405, "method_not_allowed".into()));
}

fn auth(issuer: &str, secret: &str) -> Auth {
    let mut c = Config::default().auth;
    c.secret_key = Secret::new(secret);
    c.issuer = issuer.into();
    Auth::new(&c, HashPool::new(1, 0).unwrap()).unwrap()
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused() {
    let mut d = TestDaemon::start();
    d.register("tok@example.com", "token password").await;
    d.register("tok@example.com", "token password").await;
    d.stop();
    let mail = d.outbox();
    let user = d.users()[0].id;
    let (voided, good) = (verify_token(&mail[0]), verify_token(&mail[1]));
    let d = d.restart();

    let ours = auth("signupd", SECRET);
    let claims = |scope: &str| {
        let mut m = serde_json::Map::new();
        m.insert("sub".into(), user.to_string().into());
        m.insert("scope".into(), scope.into());
        m.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
        m
    };
    let expired = ours.create_token(claims("registration"), 0).unwrap();
    let (wrong_scope, _) = ours
        .create_scoped_token(user, Scope::PasswordReset, 600)
        .unwrap();
    let (wrong_issuer, _) = auth("someone-else", SECRET)
        .create_confirmation_token(user)
        .unwrap();
    let (wrong_key, _) = auth("signupd", "another-secret-another-secret-0123456")
        .create_confirmation_token(user)
        .unwrap();
    let payload = good.split('.').nth(1).unwrap();
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let mut tampered = good.clone();
    tampered.insert_str(good.find('.').unwrap() + 1, "e30");
    let (valid_but_unissued, _) = ours.create_confirmation_token(user).unwrap();

    let cases = [
        ("garbage", "not-a-jwt".to_string(), "token_invalid"),
        ("tampered", tampered, "token_invalid"),
        ("expired", expired, "token_expired"),
        ("wrong scope", wrong_scope, "token_invalid"),
        ("wrong issuer", wrong_issuer, "token_invalid"),
        ("wrong key", wrong_key, "token_invalid"),
        ("alg none", alg_none, "token_invalid"),
        ("voided by a newer one", voided, "token_invalid"),
        ("never issued", valid_but_unissued, "token_invalid"),
    ];
    for (what, token, code) in cases {
        assert_eq!(
            problem_code(d.verify(&token).await).await,
            (400, code.to_string()),
            "{what}"
        );
    }
    assert_eq!(d.verify(&good).await.status(), 200);
    assert_eq!(
        problem_code(d.verify(&good).await).await,
        (400, "token_used".into()),
        "reused"
    );
    assert!(d.healthy().await);
}
