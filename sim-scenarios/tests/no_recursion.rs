//! Chains of simulated work do not recurse (issue 11): zalando_dns_oom with
//! `retries: 1000` used to abort with a stack overflow, because a failed
//! lookup's retry began inside the call that failed it, down to the next
//! ICMP port unreachable. The run here is cut to 1m26s and its broken
//! variant (CoreDNS is OOM-killed at 1m25s; for the last second kube-dns has
//! no endpoint and every try fails at once, 1,000 times per request), on a
//! thread with a 256 KiB stack.

use sim_core::NullSink;
use sim_scenarios::bundled;

/// zalando_dns_oom, broken variant only, `retries: 1000`, 1m26s, edited as
/// text the way a user would edit the file.
fn zalando_with_1000_retries() -> String {
    let text = bundled::find("zalando_dns_oom").expect("bundled");
    let text = &text[..text.find("\nmeasure:").expect("a measure section")];
    let edited = text
        .replace("retries: 3}", "retries: 1000}")
        .replace("duration: 5m\n", "duration: 1m26s\n")
        .replace("  - {at: 2m30s, scale: payments, replicas: 20}\n", "");
    assert!(edited.contains("retries: 1000}") && edited.contains("duration: 1m26s"));
    format!("{edited}\n")
}

#[test]
fn zalando_dns_oom_with_1000_retries_runs_on_a_256_kib_stack() {
    let scenario = sim_scenarios::parse("zalando_1000_retries.yaml", &zalando_with_1000_retries())
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = scenario.variants[0].config.clone();
    let out = std::thread::Builder::new()
        .name("256k-stack".into())
        .stack_size(256 * 1024)
        .spawn(move || sim_models::cluster::run(&cfg, 1, &mut NullSink))
        .unwrap()
        .join()
        .expect("the run completes");
    let pay = &out.requests[0];
    assert_eq!(out.dns_restarts, 1, "CoreDNS is killed once, at 1m25s");
    assert!(
        pay.retried > 100_000 && pay.lookup_failed > 0,
        "the requests of the last second each retried up to 1,000 times: {pay:?}"
    );
    assert_eq!(
        pay.sent,
        pay.answered + pay.errors() + pay.in_flight,
        "every request is accounted for"
    );
}
