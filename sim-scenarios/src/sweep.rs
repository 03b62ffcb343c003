//! Sweeps: one scenario run over a list of values of one or more fields, for
//! capacity planning (pod CIDR sizes, replica counts, request rates,
//! timeouts...).
//!
//! `knsim sweep FILE --set PATH=V1,V2,...` edits the scenario file's YAML at
//! `PATH` once per value, validates each edited file exactly as `knsim run`
//! would, and makes each value one variant of a new scenario, so that the
//! runner, the side-by-side report and the output files need nothing new:
//! the report's columns are the swept values. Several `--set` sweep the
//! cross product of their values, the first flag outermost (see
//! [`combination`]); a variant is then named by its values joined by `, `.
//!
//! `PATH` is dotted: mapping keys (`cluster.ipam.pod_cidr`), list indices
//! (`workloads.0.replicas`), or, in a list of entries, an entry's `name`
//! (or, for traffic, its `to`): `workloads.checkout.replicas`,
//! `variants.fix-22.cluster.ipam.pod_cidr`. A key missing from an existing
//! mapping is added (the edited file is then checked like any other, so a
//! misspelt key is reported as an unknown field). Values are YAML scalars as
//! they would be written in the file (`10.0.0.0/22`, `500`, `200/s`, `90s`).
//!
//! Errors name the file, line and column of the swept field in the user's
//! file, the value that made the edited scenario invalid, and a hint.
//!
//! Which variant of the file is swept: the top level by default, or the one
//! named with `--variant`; its expectations are checked at every value and
//! reported, but a sweep's purpose is to find where they stop holding, so
//! `knsim sweep` exits 0 whatever they say.

use crate::digest::{Header, RunDigest};
use crate::error::InputError;
use crate::figures::Unit;
use crate::locate::{Positions, Seg};
use crate::report;
use crate::spec::{parse, Scenario};
use serde_yaml_ng::{Mapping, Value};

/// A parsed `--set PATH=V1,V2,...`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// The dotted path as written.
    pub path: String,
    /// The values as written, in order.
    pub values: Vec<String>,
}

/// Parses `PATH=V1,V2,...`; at least one value, no empty path or value.
pub fn parse_setting(s: &str) -> Result<Setting, String> {
    let (path, values) = s.split_once('=').ok_or_else(|| {
        format!("`{s}` has no `=`; write e.g. cluster.ipam.pod_cidr=10.0.0.0/24,10.0.0.0/22")
    })?;
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!(
            "`{path}` is not a path; write keys joined by dots, e.g. workloads.checkout.replicas"
        ));
    }
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(String::is_empty) {
        return Err(format!(
            "`{s}` has an empty value; separate values with single commas"
        ));
    }
    Ok(Setting {
        path: path.to_string(),
        values,
    })
}

/// The values of every setting at variant `v` of the sweep over
/// `settings`: their cross product, the first setting outermost (it changes
/// slowest), each setting's values in the order given.
pub fn combination(settings: &[Setting], v: usize) -> Vec<&str> {
    settings
        .iter()
        .zip(indices(settings, v))
        .map(|(s, j)| s.values[j].as_str())
        .collect()
}

/// Which value of each setting variant `v` has (see [`combination`]).
fn indices(settings: &[Setting], v: usize) -> Vec<usize> {
    let mut inner = variant_count(settings);
    settings
        .iter()
        .map(|s| {
            inner /= s.values.len();
            (v / inner) % s.values.len()
        })
        .collect()
}

/// The number of variants of the sweep over `settings`.
pub fn variant_count(settings: &[Setting]) -> usize {
    settings.iter().map(|s| s.values.len()).product()
}

/// The swept paths as one label: `a.b` or `a.b x c.d`.
pub fn paths_label(settings: &[Setting]) -> String {
    settings
        .iter()
        .map(|s| s.path.as_str())
        .collect::<Vec<_>>()
        .join(" x ")
}

/// Builds the sweep scenario: one variant per combination of values of
/// `settings` (see [`combination`]), each the variant `variant` (default:
/// the top level) of `text` with the values set. A variant is named by its
/// value (one setting) or its values joined by `, ` (several).
pub fn build(
    file: &str,
    text: &str,
    settings: &[Setting],
    variant: Option<&str>,
) -> Result<Scenario, InputError> {
    // A file that does not parse is reported by the normal path, located.
    let original = parse(file, text)?;
    let pick = match variant {
        None => 0,
        Some(name) => original
            .variants
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = original.variants.iter().map(|v| v.name.as_str()).collect();
                InputError::whole(
                    file,
                    format!("no variant is called `{name}`"),
                    format!("variants: {}", known.join(", ")),
                )
            })?,
    };
    let doc: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| InputError::whole(file, format!("cannot read the YAML: {e}"), ""))?;
    let positions = Positions::of(text);
    // Each setting's place and values, each value checked alone first so
    // that an invalid one is reported at its own field.
    let mut swept: Vec<Swept> = Vec::new();
    for (k, setting) in settings.iter().enumerate() {
        let (segs, at) = resolve(file, &doc, &positions, &setting.path)?;
        if let Some(earlier) = settings[..k].iter().find(|s| s.path == setting.path) {
            return Err(InputError::at(
                file,
                at,
                format!("{} is swept twice", earlier.path),
                "give each path one --set with all its values",
            ));
        }
        let mut values = Vec::with_capacity(setting.values.len());
        for value in &setting.values {
            let new: Value = serde_yaml_ng::from_str(value).map_err(|e| {
                InputError::at(
                    file,
                    at,
                    format!("`{value}` is not a YAML value: {e}"),
                    "give values as they would be written in the file",
                )
            })?;
            if settings.len() > 1 {
                let mut edited = doc.clone();
                set(&mut edited, &segs, new.clone());
                edited_variant(
                    file,
                    &edited,
                    pick,
                    at,
                    &format!("{} = {value}", setting.path),
                )?;
            }
            values.push(new);
        }
        swept.push(Swept { segs, at, values });
    }
    let at = swept.first().map_or((1, 1), |s| s.at);
    let count = variant_count(settings);
    let mut variants = Vec::with_capacity(count);
    for v in 0..count {
        let values = combination(settings, v);
        let mut edited = doc.clone();
        for (one, j) in swept.iter().zip(indices(settings, v)) {
            set(&mut edited, &one.segs, one.values[j].clone());
        }
        let with = settings
            .iter()
            .zip(&values)
            .map(|(s, value)| format!("{} = {value}", s.path))
            .collect::<Vec<_>>()
            .join(", ");
        let mut variant = edited_variant(file, &edited, pick, at, &with)?;
        variant.description = format!("{with} ({})", variant.name);
        variant.name = values.join(", ");
        variants.push(variant);
    }
    Ok(Scenario {
        name: format!("{} sweep", original.name),
        summary: format!("{} over {}", original.summary, paths_label(settings)),
        story: original.story,
        variants,
    })
}

/// One setting located in the document: its path, where to report its
/// errors, and its values.
struct Swept {
    segs: Vec<Seg>,
    at: (usize, usize),
    values: Vec<Value>,
}

/// Variant `pick` of the edited document `edited`, checked as `knsim run`
/// checks a file; an error is located at `at` and says `with ...`.
fn edited_variant(
    file: &str,
    edited: &Value,
    pick: usize,
    at: (usize, usize),
    with: &str,
) -> Result<crate::spec::Variant, InputError> {
    let edited_text = serde_yaml_ng::to_string(edited)
        .map_err(|e| InputError::whole(file, format!("cannot write the edited YAML: {e}"), ""))?;
    let scenario = parse(file, &edited_text)
        .map_err(|e| InputError::at(file, at, format!("with {with}: {}", e.message), e.hint))?;
    scenario.variants.into_iter().nth(pick).ok_or_else(|| {
        InputError::at(
            file,
            at,
            format!("with {with} the scenario has no variant {pick}"),
            "sweep a field inside the variant, not the variants list itself",
        )
    })
}

/// Per variant and figure: the figure's mean, standard deviation, minimum
/// and maximum over the seeds, as CSV (one row per variant and figure,
/// variants in sweep order, figures in report order). The first columns
/// say the variant: `parameter,value` for one setting; for several, one
/// column per setting, named by its path, holding its value.
pub fn table_csv(
    header: &Header,
    runs: &[RunDigest],
    settings: &[Setting],
) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |e: csv::Error| e.to_string();
    let mut head: Vec<&str> = match settings {
        [_] => vec!["parameter", "value"],
        _ => settings.iter().map(|s| s.path.as_str()).collect(),
    };
    head.extend(["figure", "unit", "seeds", "mean", "sd", "min", "max"]);
    w.write_record(&head).map_err(e)?;
    for (v, variant) in header.variants.iter().enumerate() {
        let first: Vec<&str> = match settings {
            [one] => vec![one.path.as_str(), variant.name.as_str()],
            _ => combination(settings, v),
        };
        for (name, unit, xs) in figure_values(runs, v) {
            let (mean, sd, min, max) = report::spread(&xs);
            let cells = [
                name.to_string(),
                unit.name().to_string(),
                xs.len().to_string(),
                mean.to_string(),
                sd.to_string(),
                min.to_string(),
                max.to_string(),
            ];
            let row = first
                .iter()
                .copied()
                .chain(cells.iter().map(String::as_str));
            w.write_record(row).map_err(e)?;
        }
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// Figures whose name contains `pattern`, in report order.
pub fn matching_figures(runs: &[RunDigest], pattern: &str) -> Vec<String> {
    figure_values(runs, 0)
        .into_iter()
        .map(|(name, _, _)| name.to_string())
        .filter(|n| n.contains(pattern))
        .collect()
}

/// An SVG chart of one figure against the sweep's variants: the mean over
/// the seeds, with a bar from the minimum to the maximum.
pub fn plot_svg(
    header: &Header,
    runs: &[RunDigest],
    settings: &[Setting],
    figure: &str,
) -> Result<String, String> {
    use plotters::prelude::*;
    let swept = paths_label(settings);
    let mut points: Vec<(String, f64, f64, f64, Unit)> = Vec::new();
    for (v, variant) in header.variants.iter().enumerate() {
        let found = figure_values(runs, v)
            .into_iter()
            .find(|(n, _, _)| *n == figure);
        if let Some((_, unit, xs)) = found {
            let (mean, _, min, max) = report::spread(&xs);
            points.push((variant.name.clone(), mean, min, max, unit));
        }
    }
    let unit = points.first().map_or(Unit::Count, |p| p.4);
    let scale = if unit == Unit::Ratio { 100.0 } else { 1.0 };
    let top = points.iter().map(|p| p.3 * scale).fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let e = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
        let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let n = points.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{figure} vs {swept}"), ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top)
            .map_err(e)?;
        let labels: Vec<String> = points.iter().map(|p| p.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(swept.as_str())
            .y_desc(match unit {
                Unit::Ratio => "percent",
                Unit::Seconds => "seconds",
                Unit::Count => "count",
            })
            .x_labels(n.max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-9 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(e)?;
        let xy = |i: usize, y: f64| (i as f64, y * scale);
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| xy(i, p.1)),
                &BLUE,
            ))
            .map_err(e)?;
        chart
            .draw_series(
                points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Circle::new(xy(i, p.1), 4, BLUE.filled())),
            )
            .map_err(e)?;
        chart
            .draw_series(
                points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| PathElement::new(vec![xy(i, p.2), xy(i, p.3)], BLUE)),
            )
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(svg)
}

/// Figures by name: name, unit, and the value per seed.
type FigureValues<'r> = Vec<(&'r str, Unit, Vec<f64>)>;

/// Each figure of variant `v`: name, unit, and its value per seed.
fn figure_values(runs: &[RunDigest], v: usize) -> FigureValues<'_> {
    let mut out: FigureValues = Vec::new();
    // Where each name is in `out` (finds only; `out` keeps first-seen order).
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in runs.iter().filter(|r| r.variant == v) {
        for f in &r.figures {
            match at.get(f.name.as_str()) {
                Some(&i) => out[i].2.push(f.value),
                None => {
                    at.insert(f.name.as_str(), out.len());
                    out.push((f.name.as_str(), f.unit, vec![f.value]));
                }
            }
        }
    }
    out
}

/// Follows the dotted `path` in `doc`: the concrete path (list entries
/// named by their index) and the position to report errors at (the field's,
/// or its mapping's when the field is not written yet).
fn resolve(
    file: &str,
    doc: &Value,
    positions: &Positions,
    path: &str,
) -> Result<(Vec<Seg>, (usize, usize)), InputError> {
    let mut segs: Vec<Seg> = Vec::new();
    let mut node = Some(doc);
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let here = positions.find(&segs);
        let last = i + 1 == parts.len();
        match node {
            Some(Value::Mapping(m)) => {
                segs.push(Seg::Key((*part).to_string()));
                node = m.get(*part);
                if node.is_none() && !last {
                    // Sections not written yet are created; the strict
                    // parse of the edited file rejects a misspelt one.
                    segs.extend(parts[i + 1..].iter().map(|p| Seg::Key((*p).to_string())));
                    break;
                }
            }
            Some(Value::Sequence(items)) => {
                let index = part
                    .parse::<usize>()
                    .ok()
                    .filter(|&k| k < items.len())
                    .or_else(|| {
                        items.iter().position(|it| {
                            ["name", "to"]
                                .iter()
                                .any(|k| it.get(*k).and_then(Value::as_str) == Some(*part))
                        })
                    });
                let Some(index) = index else {
                    return Err(InputError::at(
                        file,
                        here,
                        format!("`{}` has no entry `{part}`", shown(&segs)),
                        format!(
                            "give an index from 0 to {} or an entry's name",
                            items.len().saturating_sub(1)
                        ),
                    ));
                };
                segs.push(Seg::Index(index));
                node = items.get(index);
            }
            _ => {
                return Err(InputError::at(
                    file,
                    here,
                    format!(
                        "`{}` is a single value; `{part}` cannot be under it",
                        shown(&segs)
                    ),
                    "end the path at the value to sweep",
                ))
            }
        }
    }
    let at = positions.find(&segs);
    Ok((segs, at))
}

/// Sets the node at `segs` (keys may be new: their mappings are created) to `value`.
fn set(doc: &mut Value, segs: &[Seg], value: Value) {
    let mut node = doc;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        node = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) if last => {
                m.insert(Value::String(k.clone()), value);
                return;
            }
            (Seg::Key(k), Value::Mapping(m)) => {
                let child = m.entry(Value::String(k.clone())).or_insert(Value::Null);
                if child.is_null() {
                    *child = Value::Mapping(Mapping::new());
                }
                child
            }
            (Seg::Index(j), Value::Sequence(items)) if last => {
                items[*j] = value;
                return;
            }
            (Seg::Index(j), Value::Sequence(items)) => &mut items[*j],
            // `resolve` produced the path from this document.
            _ => return,
        };
    }
}

fn shown(segs: &[Seg]) -> String {
    if segs.is_empty() {
        return "the file".into();
    }
    segs.iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = include_str!("../../scenarios/black_friday_cidr.yaml");

    fn setting(s: &str) -> Setting {
        parse_setting(s).unwrap()
    }

    #[test]
    fn settings_parse_and_bad_ones_say_why() {
        assert_eq!(
            setting("workloads.checkout.replicas=50, 100"),
            Setting {
                path: "workloads.checkout.replicas".into(),
                values: vec!["50".into(), "100".into()]
            }
        );
        assert!(parse_setting("replicas").unwrap_err().contains("no `=`"));
        assert!(parse_setting("a..b=1").unwrap_err().contains("not a path"));
        assert!(parse_setting("a=1,,2").unwrap_err().contains("empty value"));
    }

    #[test]
    fn each_value_becomes_a_variant_with_the_field_set() {
        let s = build(
            "bf.yaml",
            FILE,
            &[setting("cluster.ipam.pod_cidr=10.0.0.0/24,10.0.0.0/23")],
            None,
        )
        .unwrap();
        let names: Vec<&str> = s.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["10.0.0.0/24", "10.0.0.0/23"]);
        let prefixes: Vec<String> = s
            .variants
            .iter()
            .map(|v| match &v.config.ipam {
                sim_models::ipam::IpamLayout::Flat { pod_cidr, .. } => pod_cidr.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(prefixes, ["10.0.0.0/24", "10.0.0.0/23"]);
    }

    #[test]
    fn several_settings_sweep_their_cross_product_first_outermost() {
        let s = build(
            "bf.yaml",
            FILE,
            &[
                setting("cluster.ipam.pod_cidr=10.0.0.0/24,10.0.0.0/23"),
                setting("workloads.checkout.replicas=60,70,80"),
            ],
            None,
        )
        .unwrap();
        let names: Vec<&str> = s.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "10.0.0.0/24, 60",
                "10.0.0.0/24, 70",
                "10.0.0.0/24, 80",
                "10.0.0.0/23, 60",
                "10.0.0.0/23, 70",
                "10.0.0.0/23, 80"
            ]
        );
        let replicas: Vec<u32> = s
            .variants
            .iter()
            .map(|v| v.config.deployments[0].replicas)
            .collect();
        assert_eq!(replicas, [60, 70, 80, 60, 70, 80]);
        assert!(s.variants[4]
            .description
            .starts_with("cluster.ipam.pod_cidr = 10.0.0.0/23, workloads.checkout.replicas = 70"));
        assert!(s
            .summary
            .ends_with("over cluster.ipam.pod_cidr x workloads.checkout.replicas"));
        // An invalid value of the second setting is located at its field.
        let line_of = |needle: &str| FILE.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let e = build(
            "bf.yaml",
            FILE,
            &[
                setting("cluster.ipam.pod_cidr=10.0.0.0/24"),
                setting("workloads.checkout.replicas=60,many"),
            ],
            None,
        )
        .unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(line_of("replicas: 50")));
        assert!(
            e.message
                .starts_with("with workloads.checkout.replicas = many:"),
            "{e}"
        );
        let e = build(
            "bf.yaml",
            FILE,
            &[
                setting("workloads.checkout.replicas=60"),
                setting("workloads.checkout.replicas=70"),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("swept twice"), "{e}");
    }

    #[test]
    fn sections_not_written_yet_are_created() {
        let text = include_str!("../../scenarios/coredns_cpu_throttled.yaml");
        assert!(!text.contains("  coredns: {"));
        let s = build(
            "dns.yaml",
            text,
            &[setting("dns.coredns.cpu=200m,1")],
            Some("100m-x2"),
        )
        .unwrap();
        let cpu: Vec<u32> = s
            .variants
            .iter()
            .filter_map(|v| v.config.dns.as_ref().map(|d| d.coredns.cpu_millicores))
            .collect();
        assert_eq!(cpu, [200, 1000]);
    }

    #[test]
    fn entries_are_found_by_name_and_variants_by_name() {
        let s = build(
            "bf.yaml",
            FILE,
            &[setting("workloads.checkout.replicas=60")],
            Some("fix-22"),
        )
        .unwrap();
        assert_eq!(s.variants.len(), 1);
        assert_eq!(s.variants[0].config.deployments[0].replicas, 60);
        assert!(s.variants[0].description.contains("(fix-22)"));
    }

    #[test]
    fn errors_point_at_the_swept_field_in_the_users_file() {
        let line_of = |needle: &str| FILE.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let e = build(
            "bf.yaml",
            FILE,
            &[setting("cluster.ipam.pod_cidr=10.0.0.0/33")],
            None,
        )
        .unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(line_of("pod_cidr")));
        assert!(
            e.message
                .starts_with("with cluster.ipam.pod_cidr = 10.0.0.0/33:"),
            "{e}"
        );
        let e = build(
            "bf.yaml",
            FILE,
            &[setting("cluster.ipam.pod_cdir=10.0.0.0/22")],
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("unknown field `pod_cdir`"), "{e}");
        let e = build(
            "bf.yaml",
            FILE,
            &[setting("workloads.payments.replicas=1")],
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("no entry `payments`"), "{e}");
        let e = build("bf.yaml", FILE, &[setting("clustr.ipam=1")], None).unwrap_err();
        assert!(
            e.message.contains("unknown field `clustr`") && e.hint.contains("`cluster`"),
            "{e}"
        );
        let e = build("bf.yaml", FILE, &[setting("duration=1h")], Some("nope")).unwrap_err();
        assert!(e.message.contains("no variant is called `nope`"), "{e}");
    }
}
