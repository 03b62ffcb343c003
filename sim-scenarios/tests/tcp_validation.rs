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
//! - the MTU probes after black-hole detection exact: the sizes the kernel
//!   probed, in order, each size once (4986, 3004, 2013, 1518, 1270, 1393,
//!   1455, 1423, 1438, 1446, 1450), against the model's probe notes;
//! - black-hole detection within 5% of the kernel's (the first 1024-byte
//!   segment after the SYN): the recording kernel's RTO is rounded to
//!   jiffies (first RTO 224 ms against the model's 220 ms, a documented
//!   limitation) and its RTT read 22-29 ms through the harness's relay;
//!   the model lands 4% early;
//! - completion time of the downloads, model / kernel median, per case:
//!   clamping 0.7-1.1 and PMTUD 0.4-1.0, because the recording's relay adds
//!   latency under load (RTT up to 43 ms) and caps throughput, so the kernel
//!   is slower here than on a netem path (issue 16 measured PMTUD at
//!   0.236-0.245 s with netem; the model gives 0.237 s); probing 0.9-1.3:
//!   after the probes both run at 1446 bytes, and the model's go-back-N
//!   after each lost probe (no SACK) costs it more than the kernel. The
//!   test prints each ratio. The window's growth is held by unit tests in
//!   sim-models (`datapath::tcp::tests`), not here: the scenario output has
//!   no window figure.

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

/// The MTU probes in a run: segment sizes above the base MSS that the next
/// size change undercuts, each size once, in order.
fn kernel_probes(run: &Value) -> Vec<u64> {
    let ch: Vec<(u64, bool)> = run["segment_size_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c[1].as_u64().unwrap(), c[2].as_bool().unwrap()))
        .collect();
    let mut probes = Vec::new();
    for w in ch.windows(2).skip(1) {
        let ((size, retrans), (next, _)) = (w[0], w[1]);
        if !retrans && size > 1024 && next < size && !probes.contains(&size) {
            probes.push(size);
        }
    }
    probes
}

#[test]
fn mtu_probe_sequence_agrees_exactly() {
    let m = Model::load();
    let mut model: Vec<u64> = Vec::new();
    for (_, n) in &m.variant("mtu-probing").output.notes {
        let Some(rest) = n.split("tcp_mtu_probing: probe of ").nth(1) else {
            continue;
        };
        let size: u64 = rest.split(' ').next().unwrap().parse().unwrap();
        if !model.contains(&size) {
            model.push(size);
        }
    }
    let final_mss = m
        .variant("mtu-probing")
        .output
        .notes
        .iter()
        .rev()
        .find(|(_, n)| n.contains("acknowledged"))
        .map(|(_, n)| n.rsplit("MSS now ").next().unwrap().parse::<u64>().unwrap())
        .unwrap();
    let rec = recording("blackhole-probing1-cubic");
    for run in runs(&rec) {
        let kernel = kernel_probes(run);
        println!("kernel probes {kernel:?}, model {model:?}");
        assert_eq!(model, kernel);
        let last = run["segment_size_changes"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|c| c[1].as_u64().unwrap())
            .find(|&s| s > 1024)
            .unwrap();
        assert_eq!(final_mss, last, "the MSS the search settles on");
    }
}

#[test]
fn black_hole_detection_within_five_percent() {
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
            (model / kernel - 1.0).abs() <= 0.05,
            "{case}: kernel {kernel} s, model {model} s"
        );
    }
}

#[test]
fn download_times_within_their_stated_ratios() {
    let m = Model::load();
    for (variant, case, lo, hi) in [
        ("mss-clamp", "clamp-cubic", 0.7, 1.1),
        ("mtu-probing", "blackhole-probing1-cubic", 0.9, 1.3),
        ("allow-icmp", "pmtud-cubic", 0.4, 1.0),
    ] {
        let kernel = kernel_time(&recording(case));
        let (_, _, model, _) = m.download(variant);
        let ratio = model / kernel;
        println!("{variant} vs {case}: kernel {kernel:.3} s, model {model:.3} s, ratio {ratio:.2}");
        assert!(
            (lo..=hi).contains(&ratio),
            "{variant} vs {case}: kernel {kernel} s, model {model} s"
        );
    }
}
