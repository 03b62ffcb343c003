//! The packet-level TCP model held to Linux's TCP as recorded by
//! `validation/tcp/run.py` (validation/tcp/README.md): the same path as
//! scenarios/mtu_blackhole.yaml (9001-MTU hosts, a 1500-MTU hop, 20 ms,
//! 200 Mbit/s), a 2 MB download, 3 runs per case on the recording kernel.
//!
//! Each variant of mtu_blackhole is compared with its recording:
//!
//! | variant | recording |
//! | --- | --- |
//! | broken | blackhole-cubic |
//! | mss-clamp | clamp-cubic |
//! | mtu-probing | blackhole-probing1-cubic |
//! | allow-icmp | pmtud-cubic |
//!
//! Tolerances:
//! - outcome exact: every download completes, or none does;
//! - segment size exact: the MSS after "fragmentation needed" (1448) and
//!   after black-hole detection (1024) is the kernel's first segment size
//!   after the event;
//! - black-hole detection within 10% of the kernel's (the first 1024-byte
//!   segment after the SYN; the recording kernel's RTO is rounded to
//!   jiffies and its RTT read 22-29 ms through the harness's relay);
//! - completion time of the downloads within a factor 3 of the kernel's
//!   median. The factor is wide because of two known gaps, not tolerance for
//!   noise: the model's receive window is fixed at 64 KiB (the kernel's
//!   grew to 0.8-2.6 MB within one download) and its loss recovery is not
//!   CUBIC's; the recording's relay also slows the kernel down (see the
//!   README). The test prints each ratio.

use serde_json::Value;
use sim_core::SimDuration;
use sim_scenarios::datapath::{run_all, DatapathRun, DatapathScenario};
use std::path::PathBuf;

fn recording(case: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../validation/tcp/recordings")
        .join(format!("{case}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn runs(rec: &Value) -> &Vec<Value> {
    rec["runs"].as_array().unwrap()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The kernel's first segment size after the first one: the size the
/// connection moved to after ICMP or detection.
fn sizes_after_event(rec: &Value) -> Vec<(f64, u64)> {
    runs(rec)
        .iter()
        .map(|r| {
            let c = &r["segment_size_changes"][1];
            (c[0].as_f64().unwrap() / 1000.0, c[1].as_u64().unwrap())
        })
        .collect()
}

struct Model {
    scenario: DatapathScenario,
    runs: Vec<DatapathRun>,
}

impl Model {
    fn load() -> Self {
        let scenario = sim_scenarios::load_datapath("mtu_blackhole")
            .unwrap()
            .unwrap();
        let runs = run_all(&scenario, &[1], None, None).unwrap();
        Model { scenario, runs }
    }

    fn variant(&self, name: &str) -> &DatapathRun {
        let i = self
            .scenario
            .variants
            .iter()
            .position(|v| v.name == name)
            .unwrap();
        self.runs.iter().find(|r| r.variant == i).unwrap()
    }

    /// (attempts, succeeded, median time, the flow's first start) of `download`.
    fn download(&self, variant: &str) -> (u64, u64, f64, SimDuration) {
        let run = self.variant(variant);
        let i = run
            .output
            .flows
            .iter()
            .position(|f| f.name == "download")
            .unwrap();
        let f = &run.output.flows[i];
        let start = self.scenario.variants[run.variant].config.flows[i].start;
        let t = if f.succeeded > 0 {
            f.times.quantile(0.5).as_secs_f64()
        } else {
            0.0
        };
        (f.attempts, f.succeeded, t, start)
    }

    /// The first note containing `what`: (seconds after the download's
    /// first start, the MSS it names).
    fn note(&self, variant: &str, what: &str) -> (f64, u64) {
        let start = self.download(variant).3;
        let (t, text) = self
            .variant(variant)
            .output
            .notes
            .iter()
            .find(|(_, n)| n.contains(what))
            .unwrap_or_else(|| panic!("{variant}: no note with {what:?}"));
        let mss = text.rsplit("MSS now ").next().unwrap().trim();
        (
            t.since_start().as_secs_f64() - start.as_secs_f64(),
            mss.parse().unwrap(),
        )
    }
}

fn kernel_outcome(rec: &Value) -> (usize, usize) {
    let r = runs(rec);
    let done = r.iter().filter(|x| x["completed"] == true).count();
    (r.len(), done)
}

fn kernel_time(rec: &Value) -> f64 {
    median(
        runs(rec)
            .iter()
            .map(|r| r["end_s"].as_f64().unwrap())
            .collect(),
    )
}

#[test]
fn recordings_state_their_kernel_and_sysctls() {
    for case in [
        "pmtud-cubic",
        "pmtud-bbr",
        "plain1500-cubic",
        "blackhole-cubic",
        "blackhole-probing1-cubic",
        "blackhole-probing1-bbr",
        "probing2-cubic",
        "clamp-cubic",
    ] {
        let rec = recording(case);
        assert!(rec["kernel"].as_str().unwrap().len() > 2, "{case}");
        assert_eq!(
            rec["sender_sysctls"]["net.ipv4.tcp_base_mss"], "1024",
            "{case}"
        );
        assert_eq!(runs(&rec).len(), 3, "{case}");
    }
}

#[test]
fn outcomes_agree_exactly() {
    let m = Model::load();
    for (variant, case) in [
        ("broken", "blackhole-cubic"),
        ("mss-clamp", "clamp-cubic"),
        ("mtu-probing", "blackhole-probing1-cubic"),
        ("allow-icmp", "pmtud-cubic"),
    ] {
        let (n, done) = kernel_outcome(&recording(case));
        let (attempts, succeeded, _, _) = m.download(variant);
        assert!(done == 0 || done == n, "{case}: the kernel's runs disagree");
        assert_eq!(
            done == n,
            succeeded == attempts,
            "{variant} vs {case}: kernel {done}/{n}, model {succeeded}/{attempts}"
        );
        assert_eq!(done == 0, succeeded == 0, "{variant} vs {case}");
    }
}

#[test]
fn segment_sizes_after_icmp_and_after_detection_agree_exactly() {
    let m = Model::load();
    let (_, pmtud_mss) = m.note("allow-icmp", "fragmentation needed");
    for (_, size) in sizes_after_event(&recording("pmtud-cubic")) {
        assert_eq!(size, pmtud_mss, "MSS after fragmentation needed");
    }
    let (_, probed_mss) = m.note("mtu-probing", "black hole detected");
    for (_, size) in sizes_after_event(&recording("blackhole-probing1-cubic")) {
        assert_eq!(size, probed_mss, "MSS after black-hole detection");
    }
}

#[test]
fn black_hole_detection_within_ten_percent() {
    let m = Model::load();
    let (model, _) = m.note("mtu-probing", "black hole detected");
    for case in ["blackhole-probing1-cubic", "blackhole-probing1-bbr"] {
        let kernel = median(
            sizes_after_event(&recording(case))
                .into_iter()
                .map(|(t, _)| t)
                .collect(),
        );
        println!("{case}: detection kernel {kernel:.3} s, model {model:.3} s");
        assert!(
            (model / kernel - 1.0).abs() <= 0.10,
            "{case}: kernel {kernel} s, model {model} s"
        );
    }
}

#[test]
fn download_times_within_a_factor_three() {
    let m = Model::load();
    for (variant, case) in [
        ("mss-clamp", "clamp-cubic"),
        ("mtu-probing", "blackhole-probing1-cubic"),
        ("allow-icmp", "pmtud-cubic"),
    ] {
        let kernel = kernel_time(&recording(case));
        let (_, _, model, _) = m.download(variant);
        let ratio = model / kernel;
        println!("{variant} vs {case}: kernel {kernel:.3} s, model {model:.3} s, ratio {ratio:.2}");
        assert!(
            (1.0 / 3.0..=3.0).contains(&ratio),
            "{variant} vs {case}: kernel {kernel} s, model {model} s"
        );
    }
}
