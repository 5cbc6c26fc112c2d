//! Prometheus metrics of the API and the workers, in the text exposition format.
//!
//! Counters live in memory (per process; Prometheus sums processes); gauges that belong to
//! shared backends (queue depth) are read when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use crate::engine::{JobOutcome, ProgressEvent, ProgressSink};

/// (route, method, status) → (count, seconds).
type RequestCounts = BTreeMap<(String, String, u16), (u64, f64)>;

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered.
    requests: Mutex<RequestCounts>,
    /// Job outcomes since start.
    jobs: Mutex<BTreeMap<&'static str, u64>>,
    /// Stage → (count, seconds).
    stages: Mutex<BTreeMap<String, (u64, f64)>>,
    /// Asset key → (stage, since): the stage each running job is in.
    running: Mutex<BTreeMap<String, (String, Instant)>>,
    /// Unix seconds of the last worker heartbeat.
    heartbeat: AtomicI64,
}

impl Metrics {
    /// Count one request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            let e = m
                .entry((route.to_owned(), method.to_owned(), status))
                .or_default();
            e.0 += 1;
            e.1 += seconds;
        }
    }

    /// A worker is alive.
    pub fn heartbeat(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.heartbeat.store(now, Ordering::Relaxed);
    }

    fn stage_done(&self, key: &str, next: Option<&str>) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        let previous = match next {
            Some(stage) => {
                if running.get(key).is_some_and(|(s, _)| s == stage) {
                    return;
                }
                running.insert(key.to_owned(), (stage.to_owned(), Instant::now()))
            }
            None => running.remove(key),
        };
        if let (Some((stage, since)), Ok(mut stages)) = (previous, self.stages.lock()) {
            let e = stages.entry(stage).or_default();
            e.0 += 1;
            e.1 += since.elapsed().as_secs_f64();
        }
    }

    /// The exposition text; `queue` is (ready, delayed, in flight, dead) when readable.
    pub fn render(&self, queue: Option<(u64, u64, u64, u64)>) -> String {
        let mut out = String::new();
        out.push_str("# HELP heimdex_http_requests_total HTTP requests by route, method and status.\n# TYPE heimdex_http_requests_total counter\n");
        let requests = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        for ((route, method, status), (n, _)) in &requests {
            let _ = writeln!(
                out,
                "heimdex_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP heimdex_http_request_seconds_sum Time spent answering, by route.\n# TYPE heimdex_http_request_seconds_sum counter\n");
        for ((route, method, status), (_, s)) in &requests {
            let _ = writeln!(
                out,
                "heimdex_http_request_seconds_sum{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {s:.6}"
            );
        }
        out.push_str("# HELP heimdex_jobs_total Jobs finished by this process, by outcome.\n# TYPE heimdex_jobs_total counter\n");
        for (state, n) in self.jobs.lock().map(|m| m.clone()).unwrap_or_default() {
            let _ = writeln!(out, "heimdex_jobs_total{{state=\"{state}\"}} {n}");
        }
        out.push_str("# HELP heimdex_stage_seconds_sum Time jobs spent in each stage.\n# TYPE heimdex_stage_seconds_sum counter\n");
        let stages = self.stages.lock().map(|m| m.clone()).unwrap_or_default();
        for (stage, (_, s)) in &stages {
            let _ = writeln!(out, "heimdex_stage_seconds_sum{{stage=\"{stage}\"}} {s:.3}");
        }
        out.push_str("# TYPE heimdex_stage_seconds_count counter\n");
        for (stage, (n, _)) in &stages {
            let _ = writeln!(out, "heimdex_stage_seconds_count{{stage=\"{stage}\"}} {n}");
        }
        if let Some((ready, delayed, in_flight, dead)) = queue {
            out.push_str("# HELP heimdex_queue_messages Queue depth by state.\n# TYPE heimdex_queue_messages gauge\n");
            for (state, n) in [
                ("ready", ready),
                ("delayed", delayed),
                ("in_flight", in_flight),
                ("dead", dead),
            ] {
                let _ = writeln!(out, "heimdex_queue_messages{{state=\"{state}\"}} {n}");
            }
        }
        out.push_str("# HELP heimdex_worker_heartbeat_seconds Unix time of the last worker heartbeat of this process.\n# TYPE heimdex_worker_heartbeat_seconds gauge\n");
        let _ = writeln!(
            out,
            "heimdex_worker_heartbeat_seconds {}",
            self.heartbeat.load(Ordering::Relaxed)
        );
        out
    }
}

impl ProgressSink for Metrics {
    fn event(&self, event: ProgressEvent) {
        self.heartbeat();
        match event {
            ProgressEvent::Started { key } => self.stage_done(&key, Some("probe")),
            ProgressEvent::Stage { key, stage, .. } => self.stage_done(&key, Some(&stage)),
            ProgressEvent::Finished { key, outcome } => {
                self.stage_done(&key, None);
                let state = match outcome {
                    JobOutcome::Indexed { .. } => "completed",
                    JobOutcome::Failed { .. } => "failed",
                    JobOutcome::Retrying { .. } => "retrying",
                    JobOutcome::Skipped => "skipped",
                    JobOutcome::HandedBack => "handed_back",
                };
                if let Ok(mut jobs) = self.jobs.lock() {
                    *jobs.entry(state).or_default() += 1;
                }
            }
        }
    }
}
