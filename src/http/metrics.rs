//! `/metrics` in Prometheus text format, through the `metrics` facade.
//!
//! Request counts and latencies are recorded as requests end; gauges and
//! the mail counters are read from the pool and the worker at scrape time,
//! so they are exact when scraped and cost nothing in between.

use std::sync::OnceLock;
use std::sync::atomic::Ordering::Relaxed;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::App;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("signupd_http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; ours then renders empty.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn record_request(route: &'static str, status: u16, seconds: f64) {
    metrics::counter!("signupd_http_requests_total", "route" => route, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("signupd_http_request_duration_seconds", "route" => route).record(seconds);
}

/// The current figures, in Prometheus text format.
pub fn render(app: &App) -> String {
    let pool = app.accounts.auth().pool();
    metrics::gauge!("signupd_hash_pool_workers").set(pool.workers() as f64);
    metrics::gauge!("signupd_hash_pool_busy").set(pool.stats().busy.load(Relaxed) as f64);
    metrics::gauge!("signupd_hash_pool_queued").set(pool.stats().queued() as f64);
    let mail = &app.mail;
    metrics::gauge!("signupd_mail_queue_depth").set(mail.queue_depth.load(Relaxed) as f64);
    let age = mail.oldest_age(crate::auth::now()).unwrap_or(0);
    metrics::gauge!("signupd_mail_oldest_age_seconds").set(age as f64);
    metrics::gauge!("signupd_mail_dead").set(mail.dead_total.load(Relaxed) as f64);
    metrics::counter!("signupd_mail_sent_total").absolute(mail.sent.load(Relaxed));
    metrics::counter!("signupd_mail_retried_total").absolute(mail.retried.load(Relaxed));
    metrics::counter!("signupd_mail_dead_total").absolute(mail.dead.load(Relaxed));
    handle().render()
}
