//! An acknowledged sign-up survives kill -9.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn kill_9_right_after_202_loses_nothing() {
    let mut d = TestDaemon::start();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (http, url) = (d.http.clone(), d.url("/api/auth/register"));
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .json(&json!({"email": format!("k{i}@example.com"), "password": "kill password"}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    d.kill9();
    let users = d.users();
    let mail = d.outbox();
    assert_eq!(users.len(), 20);
    assert_eq!(mail.len(), 20);
    for i in 0..20 {
        let email = format!("k{i}@example.com");
        assert!(users.iter().any(|u| u.email == email), "{email} lost");
        assert!(mail.iter().any(|m| m.to == email), "mail to {email} lost");
    }
    // And the restarted daemon confirms with the mailed link.
    let d = d.restart();
    assert_eq!(d.verify(&verify_token(&mail[0])).await.status(), 200);
}
