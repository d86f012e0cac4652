//! The Prometheus text exposition format, version 0.0.4: `# HELP`, `# TYPE`, then one line per
//! series. Rendering allocates (one string per scrape); recording never does.

use std::fmt::Write;

use crate::build_info;

use super::{
    Decision, Histogram, LATENCY_BUCKETS, Metrics, Outcome, Protocol, StateWrite, UpstreamClass,
};

/// The `Content-Type` of a scrape answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) fn render(metrics: &Metrics) -> String {
    let mut out = String::with_capacity(8 * 1024);
    header(
        &mut out,
        "casegate_build_info",
        "gauge",
        "Always 1; the labels say which casegate is running: its version, how it was built \
         (profile-guided, release) and from which commit (unknown when the build did not say).",
    );
    series(
        &mut out,
        "casegate_build_info",
        &[
            ("version", build_info::VERSION),
            ("build", build_info::BUILD),
            ("commit", build_info::COMMIT.unwrap_or("unknown")),
        ],
        1,
    );
    header(
        &mut out,
        "casegate_requests_total",
        "counter",
        "Requests on the public listener, by the gateway's decision.",
    );
    for decision in Decision::ALL {
        series(
            &mut out,
            "casegate_requests_total",
            &[("decision", decision.as_str())],
            metrics.requests(decision),
        );
    }
    header(
        &mut out,
        "casegate_upstream_responses_total",
        "counter",
        "Forwarded requests by the class of the upstream's status, or error when it did not answer.",
    );
    for class in UpstreamClass::ALL {
        let count = metrics.per_thread.upstream_responses(class);
        series(
            &mut out,
            "casegate_upstream_responses_total",
            &[("class", class.as_str())],
            count,
        );
    }
    histogram(
        &mut out,
        "casegate_request_duration_seconds",
        "From the request head to the response head, upstream wait included.",
        &metrics.per_thread.request_duration(),
    );
    histogram(
        &mut out,
        "casegate_gateway_duration_seconds",
        "The gateway's own share of a request: its whole duration minus the wait for the upstream.",
        &metrics.per_thread.gateway_duration(),
    );
    header(
        &mut out,
        "casegate_open_connections",
        "gauge",
        "Open connections on the public listener by protocol; websocket counts tunnels.",
    );
    for protocol in Protocol::ALL {
        let open = metrics.open_connections(protocol).get();
        let _ = writeln!(
            out,
            "casegate_open_connections{{protocol=\"{}\"}} {open}",
            protocol.as_str()
        );
    }
    header(
        &mut out,
        "casegate_worker_connections",
        "gauge",
        "Open connections each worker serves on the public listener; new ones go to the worker with the fewest.",
    );
    for (worker, open) in metrics.worker_connections().into_iter().enumerate() {
        let _ = writeln!(
            out,
            "casegate_worker_connections{{worker=\"{worker}\"}} {open}"
        );
    }
    let singles: [(&str, &str, u64); 8] = [
        (
            "casegate_link_exchanges_total",
            "Links exchanged for a guest cookie.",
            metrics.link_exchanges.get(),
        ),
        (
            "casegate_upstream_connections_opened_total",
            "Connections opened to the upstream; upstream responses divided by this is how many \
             requests each kept connection carried.",
            metrics.upstream_connections_opened.get(),
        ),
        (
            "casegate_response_bytes_spliced_total",
            "Response body bytes moved from the upstream's socket to the client's by splice(2), \
             never copied through casegate: bodies of 1 MiB or more over plain HTTP/1.",
            metrics.spliced_bytes.get(),
        ),
        (
            "casegate_verify_codes_sent_total",
            "Verification codes mailed to guests.",
            metrics.codes_sent.get(),
        ),
        (
            "casegate_verify_codes_verified_total",
            "Verification codes typed correctly.",
            metrics.codes_verified.get(),
        ),
        (
            "casegate_verify_codes_failed_total",
            "Verification code guesses that were wrong or refused (no tries left, rate limited).",
            metrics.codes_failed.get(),
        ),
        (
            "casegate_access_log_dropped_total",
            "Access-log lines dropped because a worker's shelf of lines was full or the sink failed.",
            metrics.access_log_dropped(),
        ),
        (
            "casegate_panics_total",
            "Panics since start, each a bug; the log's error line says where and what stopped.",
            crate::panic_report::panics(),
        ),
    ];
    for (name, help, value) in singles {
        header(&mut out, name, "counter", help);
        series(&mut out, name, &[], value);
    }
    header(
        &mut out,
        "casegate_state_writes_total",
        "counter",
        "Durable state-store writes made by the admin API, by operation and result.",
    );
    for write in StateWrite::ALL {
        for outcome in Outcome::ALL {
            let count = metrics.state_writes[write as usize][outcome as usize].get();
            series(
                &mut out,
                "casegate_state_writes_total",
                &[("operation", write.as_str()), ("result", outcome.as_str())],
                count,
            );
        }
    }
    histogram(
        &mut out,
        "casegate_state_write_duration_seconds",
        "How long a durable state-store write took, fsync included.",
        &metrics.state_write_duration,
    );
    header(
        &mut out,
        "casegate_reloads_total",
        "counter",
        "Configuration reloads by result.",
    );
    for outcome in Outcome::ALL {
        series(
            &mut out,
            "casegate_reloads_total",
            &[("result", outcome.as_str())],
            metrics.reloads[outcome as usize].get(),
        );
    }
    header(
        &mut out,
        "casegate_config_last_reload_successful",
        "gauge",
        "0 when the last reload was refused and the file on disk is not the config in force; 1 otherwise.",
    );
    series(
        &mut out,
        "casegate_config_last_reload_successful",
        &[],
        u64::from(
            !metrics
                .last_reload_failed
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    );
    header(
        &mut out,
        "casegate_config_restart_pending",
        "gauge",
        "1 when the last successful reload changed settings that only a restart applies (see the reload's restart_needed); 0 otherwise.",
    );
    series(
        &mut out,
        "casegate_config_restart_pending",
        &[],
        u64::from(
            metrics
                .restart_pending
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    );
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label values here are our own constants, never request data, so nothing needs escaping.
fn series(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (index, (label, value)) in labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{value}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn histogram(out: &mut String, name: &str, help: &str, histogram: &Histogram) {
    header(out, name, "histogram", help);
    let cumulative = histogram.cumulative();
    for (bound, count) in LATENCY_BUCKETS.iter().zip(cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {}",
        cumulative[LATENCY_BUCKETS.len()]
    );
    let _ = writeln!(out, "{name}_sum {}", histogram.sum_secs());
    let _ = writeln!(out, "{name}_count {}", histogram.count());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_series_is_there_from_the_start_and_moves_when_recorded() {
        let metrics = Metrics::new();
        let before = metrics.render();
        assert!(
            before.contains("casegate_requests_total{decision=\"revoked\"} 0\n"),
            "{before}"
        );
        assert!(
            before.contains("casegate_reloads_total{result=\"failed\"} 0\n"),
            "{before}"
        );
        assert!(before.contains("# TYPE casegate_request_duration_seconds histogram\n"));

        metrics.record_request(
            Decision::Revoked,
            Duration::from_millis(2),
            Some(Duration::ZERO),
        );
        metrics.record_upstream(UpstreamClass::ServerError);
        let after = metrics.render();
        assert!(
            after.contains("casegate_requests_total{decision=\"revoked\"} 1\n"),
            "{after}"
        );
        assert!(
            after.contains("casegate_upstream_responses_total{class=\"5xx\"} 1\n"),
            "{after}"
        );
        assert!(
            after.contains("casegate_request_duration_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{after}"
        );
        assert!(
            after.contains("casegate_request_duration_seconds_bucket{le=\"0.001\"} 0\n"),
            "{after}"
        );
        assert!(
            after.contains("casegate_request_duration_seconds_count 1\n"),
            "{after}"
        );
        assert!(
            after.contains("casegate_gateway_duration_seconds_count 1\n"),
            "{after}"
        );
    }

    #[test]
    fn every_line_is_a_comment_or_a_name_and_a_number() {
        for line in Metrics::new().render().lines() {
            if line.starts_with('#') {
                continue;
            }
            let (name, value) = line.rsplit_once(' ').expect("name value");
            assert!(name.starts_with("casegate_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
