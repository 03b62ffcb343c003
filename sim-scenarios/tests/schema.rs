//! The JSON Schema of scenario files: the committed copy is the command's
//! output, every bundled scenario validates, misspelt fields are rejected
//! (by the schema and by the parser alike).

use serde_json::Value;
use sim_scenarios::bundled::BUNDLED;
use sim_scenarios::schema::{json_schema, COMMITTED_PATH};

fn compiled() -> (boon::Schemas, boon::SchemaIndex) {
    let schema: Value = serde_json::from_str(&json_schema()).expect("the schema is JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("urn:knsim:scenario", schema)
        .expect("the schema is added");
    let index = compiler
        .compile("urn:knsim:scenario", &mut schemas)
        .unwrap_or_else(|e| panic!("the schema is a valid JSON Schema: {e:#}"));
    (schemas, index)
}

fn as_json(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).expect("YAML reads as JSON values")
}

fn parses(name: &str, text: &str) -> bool {
    if sim_scenarios::datapath::is_datapath(text) {
        sim_scenarios::datapath::parse(name, text).is_ok()
    } else if sim_scenarios::network_plan::is_network_plan(text) {
        sim_scenarios::network_plan::parse(name, text).is_ok()
    } else {
        sim_scenarios::parse(name, text).is_ok()
    }
}

#[test]
fn committed_schema_is_the_commands_output() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(COMMITTED_PATH);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == json_schema(),
        "{COMMITTED_PATH} differs from `knsim schema`; regenerate it with \
         `cargo run --release --bin knsim -- schema > {COMMITTED_PATH}`"
    );
}

#[test]
fn every_bundled_scenario_validates() {
    let (schemas, index) = compiled();
    for (name, text) in BUNDLED {
        if let Err(e) = schemas.validate(&as_json(text), index) {
            panic!("bundled scenario {name} fails the schema: {e:#}");
        }
    }
}

/// A bundled scenario with one edit, checked against the schema and the parser.
fn rejected(name: &str, edit: impl Fn(&mut Value)) {
    let (schemas, index) = compiled();
    let text = sim_scenarios::bundled::find(name).expect("bundled");
    let mut doc = as_json(text);
    edit(&mut doc);
    assert!(
        schemas.validate(&doc, index).is_err(),
        "the schema accepts the edited {name}"
    );
    let edited = serde_yaml_ng::to_string(&doc).expect("YAML");
    assert!(
        !parses(name, &edited),
        "the parser accepts the edited {name}"
    );
}

fn rename(map: &mut Value, from: &str, to: &str) {
    let map = map.as_object_mut().expect("a mapping");
    let v = map
        .remove(from)
        .unwrap_or_else(|| panic!("no field {from}"));
    map.insert(to.to_string(), v);
}

#[test]
fn a_misspelt_field_at_the_top_level_is_rejected() {
    rejected("black_friday_cidr", |d| rename(d, "summary", "sumary"));
    rejected("mtu_blackhole", |d| rename(d, "summary", "sumary"));
}

#[test]
fn a_misspelt_field_inside_a_variant_is_rejected() {
    rejected("black_friday_cidr", |d| {
        rename(&mut d["variants"][0], "description", "descripton")
    });
    rejected("mtu_blackhole", |d| {
        rename(&mut d["variants"][0], "description", "descripton")
    });
}

#[test]
fn a_misspelt_field_inside_an_untagged_form_is_rejected() {
    // `connections: {long_lived: 1}`, one of the forms of an untagged field.
    rejected("grpc_lb_imbalance", |d| {
        rename(
            &mut d["traffic"][0]["connections"],
            "long_lived",
            "long_livd",
        )
    });
}

#[test]
fn a_quantity_without_its_unit_is_rejected() {
    rejected("black_friday_cidr", |d| d["duration"] = Value::from(3600));
    rejected("black_friday_cidr", |d| {
        d["traffic"][0]["rate"] = Value::from(120)
    });
}
