//! The conntrack table's default size against the real kernel: every
//! recording made by `validation/conntrack/record.py` (the kernel release,
//! its usable RAM and the `nf_conntrack_buckets` and `nf_conntrack_max` it
//! chose when the module loaded) is checked against
//! [`kernel_buckets`] and [`kernel_max`] for that release's generation.
//!
//! This is validation, not calibration: the model's sizes come from
//! `nf_conntrack_init_start` (net/netfilter/nf_conntrack_core.c) as read,
//! not from these recordings. Held exactly: the kernel's arithmetic has no
//! noise. `nf_conntrack_max` can be raised after the module loads
//! (kube-proxy does), so a recording whose max is not the default fails
//! here with that said, rather than passing by luck.

use serde::Deserialize;
use sim_models::conntrack::{kernel_buckets, kernel_max, Kernel};
use std::path::PathBuf;

#[derive(Deserialize)]
struct Recording {
    kernel: String,
    mem_total_bytes: u64,
    nf_conntrack_buckets: u64,
    nf_conntrack_max: u64,
}

/// The model's generation for a kernel release (`6.18.44-...`): the 2021
/// sizing change (commit d532bcd0b269) is in 5.15 and later; 4.19 and 3.10
/// size the table alike.
fn generation(release: &str) -> Kernel {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a kernel release");
    let minor: u32 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a kernel release");
    match (major, minor) {
        (m, _) if m > 5 => Kernel::V5_15,
        (5, n) if n >= 15 => Kernel::V5_15,
        (m, n) if m > 4 || (m == 4 && n >= 19) => Kernel::V4_19,
        _ => Kernel::V3_10,
    }
}

#[test]
fn generations_follow_the_2021_change() {
    assert_eq!(generation("6.18.44-fc-v1272"), Kernel::V5_15);
    assert_eq!(generation("5.15.0-91-generic"), Kernel::V5_15);
    assert_eq!(generation("5.10.0-27-amd64"), Kernel::V4_19);
    assert_eq!(generation("4.19.0"), Kernel::V4_19);
    assert_eq!(generation("3.10.0-1160.el7.x86_64"), Kernel::V3_10);
}

#[test]
fn default_table_sizes_agree_with_the_recorded_kernels() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../validation/conntrack/recordings");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("validation/conntrack/recordings") {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a readable recording");
        let rec: Recording = serde_yaml_ng::from_str(&text)
            .expect("a recording as record.py writes it (JSON, read as YAML)");
        let kernel = generation(&rec.kernel);
        assert_eq!(
            kernel_buckets(rec.mem_total_bytes, kernel),
            rec.nf_conntrack_buckets,
            "{}: buckets for {} bytes of RAM on {}",
            path.display(),
            rec.mem_total_bytes,
            rec.kernel
        );
        assert_eq!(
            kernel_max(rec.mem_total_bytes, kernel),
            rec.nf_conntrack_max,
            "{}: nf_conntrack_max on {} (if kube-proxy or an operator raised it, re-record on a host where it is the default)",
            path.display(),
            rec.kernel
        );
        checked += 1;
    }
    assert!(checked > 0, "no recordings in {}", dir.display());
}
