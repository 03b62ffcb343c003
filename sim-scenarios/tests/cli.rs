//! The `knsim` binary as a user meets it: bad input gets a located error and
//! exit status 2 with no output left behind; results are byte-identical
//! across runs and thread counts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn knsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knsim"))
        .args(args)
        .output()
        .expect("knsim runs")
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

fn bundled_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/black_friday_cidr.yaml"),
    )
    .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("knsim-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the bundled scenario with one edit, runs `knsim run` on it with
/// `--out`, and checks the error: exit 2, `file:line:column: error:` with the
/// expected words and position, a hint, no panic, no output directory.
fn assert_rejected(case: &str, from: &str, to: &str, want: &str, line: usize) {
    let dir = scratch(case);
    let file = dir.join(format!("{case}.yaml"));
    let text = bundled_text();
    assert!(text.contains(from), "{case}: the edit must apply");
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
    let out_dir = dir.join("out");
    let out = knsim(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{case}: {err}");
    let prefix = format!("{}:{line}:", file.display());
    assert!(
        err.starts_with(&prefix),
        "{case}: want {prefix}..., got: {err}"
    );
    assert!(
        err.contains(": error: ") && err.contains(want),
        "{case}: {err}"
    );
    assert!(err.contains("\n  hint: "), "{case}: no hint: {err}");
    assert!(!err.contains("panicked"), "{case}: {err}");
    assert!(
        !out_dir.exists(),
        "{case}: output written despite the error"
    );
    assert!(out.stdout.is_empty(), "{case}: partial report on stdout");
}

#[test]
fn misspelt_field() {
    assert_rejected(
        "typo",
        "    replicas: 50",
        "    replica: 50",
        "unknown field `replica`",
        38,
    );
}

#[test]
fn invalid_cidr() {
    assert_rejected(
        "cidr",
        "pod_cidr: 10.0.0.0/24}",
        "pod_cidr: 10.0.0.0/33}",
        "/33 is out of range",
        31,
    );
}

#[test]
fn negative_replica_count() {
    assert_rejected(
        "negative",
        "    replicas: 50",
        "    replicas: -5",
        "negative",
        38,
    );
}

#[test]
fn unknown_node_in_a_cni_fault_points_at_the_name() {
    assert_rejected(
        "node",
        "  - {at: 10m, scale: checkout, replicas: 500}",
        "  - {at: 10m, cni_down: [node-1, node-99]}",
        "no node is called `node-99`",
        49,
    );
}

#[test]
fn duration_without_unit() {
    assert_rejected("unit", "duration: 3h30m", "duration: 90", "has no unit", 22);
}

#[test]
fn unknown_workload_in_timeline_points_at_it() {
    assert_rejected(
        "name",
        "scale: checkout, replicas: 500",
        "scale: chekout, replicas: 500",
        "did you mean `checkout`",
        49,
    );
}

#[test]
fn window_ending_before_it_starts() {
    assert_rejected(
        "window",
        "{name: normal, from: 0s, to: 10m}",
        "{name: normal, from: 10m, to: 5m}",
        "ends (5m) before it starts",
        54,
    );
}

#[test]
fn latency_threshold_needs_a_duration() {
    assert_rejected(
        "threshold",
        "    above: 2s",
        "    above: 2",
        "does not fit metric latency_p50",
        76,
    );
}

#[test]
fn missing_file() {
    let out = knsim(&["run", "no/such/scenario.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.starts_with("no/such/scenario.yaml: error: cannot read the file"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn empty_file() {
    let dir = scratch("empty");
    for (i, text) in ["", "# only a comment\n\n"].iter().enumerate() {
        let file = dir.join(format!("empty{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        let out = knsim(&["check", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("error: the file is empty") && err.contains("hint: "),
            "{err}"
        );
    }
}

#[test]
fn bad_seed_range_is_a_usage_error() {
    let out = knsim(&["run", &data("short_failover.yaml"), "--seeds", "8..1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));
}

#[test]
fn list_and_check_the_bundled_scenarios() {
    let out = knsim(&["list"]);
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines().any(|l| l.starts_with("black_friday_cidr ")),
        "{list}"
    );
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap();
        let out = knsim(&["check", name]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn eight_seeds_give_identical_bytes_with_one_thread_and_with_two() {
    let dir = scratch("threads");
    let (a, b) = (dir.join("one"), dir.join("two"));
    let scenario = data("short_failover.yaml");
    let one = knsim(&[
        "run",
        &scenario,
        "--seeds",
        "1..8",
        "--threads",
        "1",
        "--out",
        a.to_str().unwrap(),
    ]);
    let two = knsim(&[
        "run",
        &scenario,
        "--seeds",
        "1..8",
        "--threads",
        "2",
        "--out",
        b.to_str().unwrap(),
    ]);
    assert_eq!(
        one.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&one.stdout)
    );
    assert_eq!(
        one.stdout, two.stdout,
        "stdout differs between 1 and 2 threads"
    );
    let (fa, fb) = (files_in(&a), files_in(&b));
    assert_eq!(
        fa.len(),
        2 + 2 * 2 * 8,
        "report, summary, and per variant and seed a time series and an event log"
    );
    assert_eq!(fa, fb, "output files differ between 1 and 2 threads");
    let report = String::from_utf8_lossy(&one.stdout);
    assert!(
        report.contains("per seed") && report.contains("seed 8"),
        "{report}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&fa.iter().find(|(n, _)| n == "summary.json").unwrap().1).unwrap();
    assert_eq!(summary["variants"][0]["runs"].as_array().unwrap().len(), 8);
    assert_eq!(
        summary["expectations"]["held"],
        summary["expectations"]["total"]
    );
}

#[test]
fn story_tells_a_bundled_replay_and_rejects_a_missing_one() {
    let out = knsim(&["story", "cni_not_initialized", "--seed", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\nwhy\n"), "{text}");
    assert!(text.contains("TaintManagerEviction"), "{text}");
    assert!(text.contains("-- the numbers"), "{text}");
    let out = knsim(&["story", "no_such_scenario"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn sweep_writes_a_table_and_charts_identically_on_any_thread_count() {
    let dir = scratch("sweep");
    let scenario = data("short_failover.yaml");
    let sweep = |out: &Path, threads: &str| {
        knsim(&[
            "sweep",
            &scenario,
            "--set",
            "cluster.ipam.pod_cidr=10.1.0.0/26,10.1.0.0/25,10.1.0.0/24",
            "--seeds",
            "1..2",
            "--threads",
            threads,
            "--out",
            out.to_str().unwrap(),
            "--plot",
            "short: error rate",
        ])
    };
    let (a, b) = (dir.join("one"), dir.join("two"));
    let one = sweep(&a, "1");
    assert_eq!(
        one.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let two = sweep(&b, "2");
    assert_eq!(one.stdout, two.stdout);
    let files = files_in(&a);
    assert_eq!(files, files_in(&b));
    let table = &files.iter().find(|f| f.0 == "sweep.csv").unwrap().1;
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(&table[..])
        .records()
        .map(Result::unwrap)
        .collect();
    // The model, not the sweep, decides: a /26 leaves pods without an
    // address, a /24 does not.
    let no_ip = |cidr: &str| -> f64 {
        let row = rows
            .iter()
            .find(|r| &r[1] == cidr && &r[2] == "web: pods with no IP address, most at once")
            .expect("row");
        row[5].parse().unwrap()
    };
    assert!(no_ip("10.1.0.0/26") > 0.0);
    assert_eq!(no_ip("10.1.0.0/24"), 0.0);
    let svg = files
        .iter()
        .find(|f| f.0 == "plot-web_in_short__error_rate.svg")
        .expect("chart");
    assert!(svg.1.starts_with(b"<svg"));
}

#[test]
fn sweep_of_a_missing_field_points_into_the_file() {
    let scenario = data("short_failover.yaml");
    let out = knsim(&["sweep", &scenario, "--set", "workloads.web.replica=1,2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("short_failover.yaml:12:5:"), "{err}");
    assert!(err.contains("unknown field `replica`"), "{err}");
    let out = knsim(&["sweep", &scenario, "--set", "workloads.api.replicas=1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no entry `api`") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn failing_expectations_exit_1() {
    let dir = scratch("failing");
    let file = dir.join("f.yaml");
    let text = std::fs::read_to_string(data("short_failover.yaml")).unwrap();
    std::fs::write(
        &file,
        text.replace("at: 20m, equals: 38}", "at: 20m, equals: 37}"),
    )
    .unwrap();
    let out = knsim(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(
            "FAIL small-pool seed 1: pods_pending{deployment=web} at 20m: 38 (want == 37)"
        ),
        "{report}"
    );
}

#[test]
fn netpol_truth_table_for_a_directory() {
    let out = knsim(&["netpol", &data("netpol")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("prod/frontend-0 -> prod/db-0 TCP/5432: denied"),
        "{text}"
    );
    assert!(
        text.contains("isolated for ingress by policy [db-allow-reporting]"),
        "{text}"
    );
    // A misspelt field in a policy: located error, exit 2.
    let dir = scratch("netpol-bad");
    let bad = std::fs::read_to_string(Path::new(&data("netpol")).join("policies.yaml"))
        .unwrap()
        .replace("  ingress:\n", "  ingres:\n");
    std::fs::write(dir.join("p.yaml"), bad).unwrap();
    let out = knsim(&["netpol", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("p.yaml:33:3: error:") && err.contains("hint:"),
        "{err}"
    );
}

fn netpol_ci(extra: &[&str]) -> Output {
    let dir = data("netpol");
    let mut args = vec![
        "netpol",
        dir.as_str(),
        "--peer",
        "internet=8.8.8.8",
        "--peer",
        "corp=10.20.0.5",
    ];
    args.extend_from_slice(extra);
    knsim(&args)
}

#[test]
fn netpol_json_flows_with_peers_and_nodes() {
    let out = netpol_ci(&["--port", "TCP/80", "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON array");
    let flows = flows.as_array().expect("an array");
    // 3 pods, 1 node, 2 peers; ports TCP/80 (added), 443, 5432, 8080.
    assert_eq!(flows.len(), 6 * 6 * 4);
    let find = |from: &str, to: &str, port: u64| {
        flows
            .iter()
            .find(|f| f["from"] == from && f["to"] == to && f["port"] == port)
            .unwrap_or_else(|| panic!("no flow {from} -> {to} {port}"))
    };
    // Into the ipBlock's `except`: denied by the pod's egress; the peer's
    // side has no pod to isolate and allows.
    let f = find("prod/frontend-0", "peer:corp", 443);
    assert_eq!(f["protocol"], "TCP");
    assert_eq!(
        (&f["allowed"], &f["egress"], &f["ingress"]),
        (&false.into(), &false.into(), &true.into()),
        "{f}"
    );
    assert!(
        f["why"]
            .as_str()
            .is_some_and(|w| w.contains("isolated for egress by policy [frontend-egress]")),
        "{f}"
    );
    assert_eq!(
        find("prod/frontend-0", "peer:internet", 443)["allowed"],
        true
    );
    assert_eq!(
        find("prod/frontend-0", "peer:internet", 80)["allowed"],
        false
    );
    // Nodes are rows: the pod's own node reaches it whatever its policy says.
    assert_eq!(find("node:knsim-node", "prod/db-0", 5432)["allowed"], true);
    assert_eq!(find("peer:internet", "prod/db-0", 5432)["ingress"], false);
    // Same input, same bytes.
    assert_eq!(
        netpol_ci(&["--port", "TCP/80", "--output", "json"]).stdout,
        out.stdout
    );
}

#[test]
fn netpol_expect_is_a_ci_test() {
    let intentions = Path::new(&data("netpol")).join("expect/intentions.yaml");
    let out = netpol_ci(&["--expect", intentions.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.ends_with("7 of 7 expectations hold\n"), "{text}");
    // A violated intention: exit 1, naming the flow and why.
    let dir = scratch("netpol-expect");
    let file = dir.join("intentions.yaml");
    let flipped = std::fs::read_to_string(&intentions).unwrap().replace(
        "to: peer:corp, protocol: TCP, port: 443, allowed: false",
        "to: peer:corp, protocol: TCP, port: 443, allowed: true",
    );
    std::fs::write(&file, flipped).unwrap();
    let out = netpol_ci(&["--expect", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL prod/frontend-0 -> peer:corp TCP/443: expected allowed, but denied\n"),
        "{text}"
    );
    assert!(text.ends_with("6 of 7 expectations hold\n"), "{text}");
    // An unknown name: located error, exit 2.
    std::fs::write(
        &file,
        "- {from: prod/frontend-0, to: peer:crop, port: 443, allowed: false}\n",
    )
    .unwrap();
    let out = netpol_ci(&["--expect", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!("{}:1:31: error:", file.display()))
            && err.contains("no endpoint is called `peer:crop`")
            && err.contains("hint: did you mean `peer:corp`?"),
        "{err}"
    );
    // Bad --peer and --port values: exit 2 with a hint, never a panic.
    for (args, want) in [
        (vec!["--peer", "internet"], "is not NAME=IP; write e.g."),
        (vec!["--peer", "x=10.300.0.1"], "is not an IPv4 address"),
        (
            vec!["--peer", "x=172.18.0.2"],
            "hint: nodes are rows already",
        ),
        (vec!["--port", "443"], "is not PROTO/PORT"),
    ] {
        let out = netpol_ci(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn policy_sets_can_come_from_manifest_files() {
    let dir = scratch("policy-files");
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::copy(
        Path::new(&data("netpol")).join("policies.yaml"),
        dir.join("manifests/db.yaml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/netpol_friday_ingress.yaml"),
    )
    .unwrap();
    let start = text.find("  policy_sets:").unwrap();
    let end = text.find("\nworkloads:").unwrap();
    let edited = format!(
        "{}  policy_files:\n    db-allow-reporting: manifests/db.yaml\n{}",
        &text[..start],
        &text[end..]
    );
    let edited = edited.replace("planned-set\n    description: the policy lists every client of the database, applied as one change\n    timeline:\n      - {at: 30m, policies: [db-allow-all-clients]}", "planned-set\n    description: unused here");
    let file = dir.join("s.yaml");
    std::fs::write(&file, edited).unwrap();
    let out = knsim(&["check", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(dir.join("manifests/db.yaml")).unwrap();
    let out = knsim(&["check", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("cannot read")
            && err.contains("hint: paths are relative to the scenario file"),
        "{err}"
    );
}

#[test]
fn packet_level_scenarios_run_check_list_and_trace() {
    let list = knsim(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("mtu_blackhole") && text.contains("calico_vxlan_mtu"),
        "{text}"
    );
    assert!(!text.contains("(invalid"), "{text}");
    let check = knsim(&["check", "calico_vxlan_mtu"]);
    assert_eq!(check.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&check.stdout).contains("packet-level; 2 variants"));
    let run = knsim(&["run", "calico_vxlan_mtu", "--trace", "--variant", "broken"]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = String::from_utf8_lossy(&run.stdout);
    // The trace follows packets hop by hop and names the drop.
    assert!(
        out.contains("to-overlay (vxlan) node-1/eth0 FORWARDED"),
        "{out}"
    );
    assert!(
        out.contains("DROPPED (frame larger than the underlay MTU"),
        "{out}"
    );
    let again = knsim(&[
        "run",
        "calico_vxlan_mtu",
        "--trace",
        "--variant",
        "broken",
        "--threads",
        "1",
    ]);
    assert_eq!(run.stdout, again.stdout, "same bytes at any thread count");
    let bad = knsim(&["run", "calico_vxlan_mtu", "--variant", "fixed"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("variants: broken, pod-mtu-1422"));
    let cluster = knsim(&["run", "black_friday_cidr", "--trace"]);
    assert_eq!(cluster.status.code(), Some(2));
}

#[test]
fn packet_level_errors_are_located() {
    let dir = scratch("dp-bad");
    let file = dir.join("bad.yaml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/calico_vxlan_mtu.yaml"),
    )
    .unwrap();
    std::fs::write(
        &file,
        text.replacen("cni: calico-vxlan", "cni: calico-vxlna", 1),
    )
    .unwrap();
    let out = knsim(&["run", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!(
            "{}:24:3: error: `calico-vxlna` is not a CNI configuration",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("did you mean `calico-vxlan`"), "{err}");
}

#[test]
fn pcap_reads_back_with_the_encapsulation() {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let dir = scratch("pcap");
    let file = dir.join("broken.pcap");
    let run = knsim(&["run", "calico_vxlan_mtu", "--pcap", file.to_str().unwrap()]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut reader = pcap_file::pcap::PcapReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(reader.header().datalink, pcap_file::DataLink::ETHERNET);
    let (mut frames, mut vxlan, mut big_vxlan) = (0, 0, 0);
    let mut last = std::time::Duration::ZERO;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        assert!(pkt.timestamp >= last, "time-ordered");
        last = pkt.timestamp;
        frames += 1;
        let s = SlicedPacket::from_ethernet(&pkt.data).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &s.net else {
            panic!("IPv4 frames only")
        };
        if let Some(TransportSlice::Udp(u)) = &s.transport {
            if u.destination_port() == 4789 {
                vxlan += 1;
                let inner = SlicedPacket::from_ethernet(&u.payload()[8..]).unwrap();
                assert!(matches!(inner.net, Some(NetSlice::Ipv4(_))));
                if ip.header().total_len() > 1472 {
                    big_vxlan += 1;
                }
            }
        }
    }
    println!("{frames} frames, {vxlan} VXLAN, {big_vxlan} larger than the 1472 path");
    assert!(frames > 100 && vxlan > 0);
    assert!(
        big_vxlan > 0,
        "the frames the underlay dropped are in the capture, as they left node-1"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sizes a new user tried (issue 13): each is refused at once with the
/// estimate, at the field that drove it, before anything grows with it.
#[test]
fn absurd_sizes_are_refused_before_they_run() {
    for (case, from, to, want, line) in [
        (
            "nodes",
            "count: 8,",
            "count: 1000000000,",
            "1000000000 nodes is more than one cluster holds",
            30,
        ),
        (
            "sample-every",
            "sample_every: 1m",
            "sample_every: 1ns",
            "too big to run",
            23,
        ),
        (
            "rate",
            "rate: 120/s, timeout",
            "rate: 1000000000/s, timeout",
            "too big to run",
            45,
        ),
        (
            "duration",
            "duration: 3h30m",
            "duration: 100000000h",
            "too big to run",
            45,
        ),
    ] {
        assert_rejected(case, from, to, want, line);
    }
}

/// The bundled ingress_prefix_surprise manifests and intentions.
fn surprise(file: &str) -> String {
    format!(
        "{}/../scenarios/ingress_prefix_surprise/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn ingress_intentions_hold_on_a_conformant_controller_and_not_on_ingress_nginx() {
    let (manifests, intentions) = (surprise("manifests"), surprise("intentions.yaml"));
    let check = |controller: &str| {
        knsim(&[
            "ingress",
            &manifests,
            "--controller",
            controller,
            "--expect",
            &intentions,
        ])
    };
    let out = check("conformant");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("5 of 5 expected routes hold"), "{text}");
    let out = check("ingress-nginx");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL shop.example.com/api-docs: expected web:80, routed to api:8080 (location `~* \"^/api\"`)"),
        "{text}"
    );
    // One request as JSON.
    let out = knsim(&[
        "ingress",
        &manifests,
        "--controller",
        "ingress-nginx",
        "--request",
        "shop.example.com/API/v1",
        "--output",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["backend"], "api:8080");
    assert_eq!(json[0]["ingress"], "shop/api");
}

#[test]
fn ingress_bad_input_is_a_located_error_and_exit_2() {
    let dir = scratch("ingress-bad");
    let text = std::fs::read_to_string(surprise("manifests/api.yaml"))
        .unwrap()
        .replace("pathType: Prefix", "pathType: prefix");
    std::fs::write(dir.join("api.yaml"), text).unwrap();
    let out = knsim(&[
        "ingress",
        dir.to_str().unwrap(),
        "--controller",
        "conformant",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "api.yaml:15:23: error: spec.rules[0].http.paths[0].pathType: unknown variant `prefix`"
        ),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

/// Runs `args` once whole into `whole` and as `n` shards into
/// `parts/shard-I`, merges the shards (with `merge_extra`) into `merged`,
/// and checks the merged directory and report equal the whole's, byte for
/// byte. Returns the shard directories.
fn sharded_equals_whole(
    name: &str,
    args: &[&str],
    whole_extra: &[&str],
    merge_extra: &[&str],
    n: usize,
) -> Vec<PathBuf> {
    let dir = scratch(name);
    let whole = dir.join("whole");
    let mut a: Vec<&str> = args.to_vec();
    a.extend(whole_extra);
    a.extend(["--out", whole.to_str().unwrap()]);
    let one = knsim(&a);
    assert!(
        matches!(one.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let shards: Vec<PathBuf> = (1..=n).map(|i| dir.join(format!("shard-{i}"))).collect();
    // Shards run in reverse order and are given to merge shuffled: neither matters.
    for (i, out) in shards.iter().enumerate().rev() {
        let spec = format!("{}/{n}", i + 1);
        let mut a: Vec<&str> = args.to_vec();
        a.extend([
            "--shard",
            &spec,
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
        ]);
        let part = knsim(&a);
        assert!(
            matches!(part.status.code(), Some(0 | 1)),
            "shard {spec}: {}",
            String::from_utf8_lossy(&part.stderr)
        );
        assert!(
            out.join("knsim-shard.json").exists(),
            "shard {spec} wrote no manifest"
        );
    }
    let merged = dir.join("merged");
    let mut m: Vec<String> = vec!["merge".into()];
    m.extend(
        shards
            .iter()
            .skip(1)
            .chain(shards.first())
            .map(|p| p.display().to_string()),
    );
    m.extend(["--out".into(), merged.display().to_string()]);
    m.extend(merge_extra.iter().map(|s| s.to_string()));
    let m: Vec<&str> = m.iter().map(String::as_str).collect();
    let joined = knsim(&m);
    assert_eq!(
        joined.status.code(),
        one.status.code(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&joined.stdout),
        String::from_utf8_lossy(&one.stdout),
        "merged report differs from the whole's"
    );
    let (w, j) = (files_in(&whole), files_in(&merged));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&j), names(&w), "merged files differ from the whole's");
    for (a, b) in w.iter().zip(&j) {
        assert!(a.1 == b.1, "{} differs between whole and merged", a.0);
    }
    shards
}

#[test]
fn a_two_setting_sweep_as_two_shards_merges_into_the_whole_byte_for_byte() {
    let scenario = data("short_failover.yaml");
    let args = [
        "sweep",
        &scenario,
        "--set",
        "cluster.ipam.pod_cidr=10.1.0.0/26,10.1.0.0/24",
        "--set",
        "workloads.web.replicas=10,20,30",
        "--seeds",
        "1..2",
    ];
    let plot = ["--plot", "short: error rate"];
    let shards = sharded_equals_whole("shard-sweep", &args, &plot, &plot, 2);
    // 6 variants x 2 seeds = 12 runs, 6 per shard.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shards[1].join("knsim-shard.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["runs"].as_array().unwrap().len(), 6);
    assert_eq!(
        manifest["shard"],
        serde_json::json!({"index": 2, "count": 2})
    );
    let whole = std::env::temp_dir()
        .join(format!("knsim-test-{}-shard-sweep", std::process::id()))
        .join("whole");
    let table = std::fs::read_to_string(whole.join("sweep.csv")).unwrap();
    let head = table.lines().next().unwrap();
    assert!(
        head.starts_with("cluster.ipam.pod_cidr,workloads.web.replicas,figure,"),
        "{head}"
    );
    assert!(table.contains("\n10.1.0.0/24,30,"), "{table}");
}

#[test]
fn seven_seeds_as_three_uneven_shards_merge_into_the_whole_byte_for_byte() {
    let scenario = data("short_failover.yaml");
    // 2 variants x 7 seeds = 14 runs: shards of 4, 5 and 5, the second
    // straddling the two variants.
    sharded_equals_whole(
        "shard-seeds",
        &["run", &scenario, "--seeds", "1..7"],
        &[],
        &[],
        3,
    );
    // More shards than runs: some shards are empty, the merge still whole.
    sharded_equals_whole("shard-empty", &["run", &scenario], &[], &[], 3);
}

#[test]
fn merge_refuses_missing_duplicate_and_foreign_shards_and_writes_nothing() {
    let dir = scratch("shard-bad");
    let scenario = data("short_failover.yaml");
    let shard = |name: &str, spec: &str, seeds: &str| -> String {
        let out = dir.join(name);
        let o = knsim(&[
            "run",
            &scenario,
            "--seeds",
            seeds,
            "--shard",
            spec,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out.display().to_string()
    };
    let (a, b, c) = (
        shard("a", "1/3", "1..2"),
        shard("b", "2/3", "1..2"),
        shard("c", "3/3", "1..2"),
    );
    let foreign = shard("f", "3/3", "1..3");
    let merged = dir.join("merged");
    let merge = |dirs: &[&str]| {
        let mut args = vec!["merge"];
        args.extend(dirs);
        args.extend(["--out", merged.to_str().unwrap()]);
        let o = knsim(&args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!merged.exists(), "partial output left behind");
        assert!(o.stdout.is_empty());
        err
    };
    let err = merge(&[&a, &c]);
    assert!(err.contains("shard 2/3 missing"), "{err}");
    let err = merge(&[&a, &b, &b, &c]);
    assert!(err.contains("shard 2/3 is given twice"), "{err}");
    let err = merge(&[&a, &b, &foreign]);
    assert!(
        err.contains(&foreign)
            && err.contains("not part of the same run")
            && err.contains("the seeds differs"),
        "{err}"
    );
    let err = merge(&[dir.to_str().unwrap()]);
    assert!(
        err.contains("knsim-shard.json") && err.contains("hint:"),
        "{err}"
    );
    // A damaged digest is reported with its place in the file.
    let digest = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("digest-")
        })
        .unwrap();
    std::fs::write(&digest, "{\"variant\": 0,\n \"seed\": x}").unwrap();
    let err = merge(&[&a, &b, &c]);
    assert!(err.contains(&format!("{}:2:", digest.display())), "{err}");
}

#[test]
fn bad_shards_are_refused_with_exit_2() {
    let scenario = data("short_failover.yaml");
    let dir = scratch("shard-arg");
    let out = dir.join("out");
    for bad in ["0/2", "3/2", "x", "1/0"] {
        let o = knsim(&[
            "run",
            &scenario,
            "--shard",
            bad,
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("I/N"), "{bad}: {err}");
        assert!(!out.exists());
    }
    let o = knsim(&["run", &scenario, "--shard", "1/2"]);
    assert_eq!(o.status.code(), Some(2), "--shard needs --out");
}

#[test]
fn a_network_plan_runs_tells_its_story_and_fails_a_broken_expectation() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/cidr_overlap.yaml");
    let out = knsim(&["run", path.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("9 of 9 expectations hold"), "{report}");
    let story = knsim(&["story", "cidr_overlap"]);
    assert_eq!(story.status.code(), Some(0));
    assert_eq!(story.stdout, out.stdout, "the story is the report");
    let check = knsim(&["check", "cidr_overlap"]);
    assert!(String::from_utf8_lossy(&check.stdout).contains("network plan; 2 variants"));
    // A broken expectation: exit 1, the failing check named.
    let dir = scratch("plan-failing");
    let file = dir.join("p.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "metric: max_nodes, equals: 128",
            "metric: max_nodes, equals: 127",
        ),
    )
    .unwrap();
    let out_dir = dir.join("out");
    let out = knsim(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("FAIL broken: max_nodes: 128 (want == 127)"),
        "{report}"
    );
    let summary = std::fs::read_to_string(out_dir.join("summary.json")).unwrap();
    assert!(summary.contains("\"peering_refused\": 1"), "{summary}");
    // Bad input: a located error, exit 2; a sweep is refused.
    std::fs::write(
        &file,
        text.replacen("cidrs: [10.0.0.0/16]", "cidrs: [10.0.0.0/33]", 1),
    )
    .unwrap();
    let out = knsim(&["run", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!(
            "{}:35:15: error: prefix length /33",
            file.display()
        )),
        "{err}"
    );
    let out = knsim(&["sweep", "cidr_overlap", "--set", "x=1,2"]);
    assert_eq!(out.status.code(), Some(2));
}
