//! Broken scenario files fail early with `file:line:col`, the key, and what was expected.

use sim::scenario::{parse, ScenarioError};

const GOOD: &str = r#"name = "x"
system = "election"
nodes = 3
duration = "20s"

[[check]]
kind = "election_safety"
"#;

fn error(text: &str) -> ScenarioError {
    match parse("bad.toml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn a_good_file_parses() {
    let s = parse("good.toml", GOOD).unwrap();
    assert_eq!(s.server_count(), 3);
}

#[test]
fn unknown_top_level_key_is_named_with_its_position() {
    let e = error(&GOOD.replace("nodes = 3", "nodes = 3\nnodez = 4"));
    assert_eq!((e.line, e.col), (4, 1), "{e}");
    assert_eq!(e.key.as_deref(), Some("nodez"));
    assert!(
        e.to_string()
            .starts_with("bad.toml:4:1: key `nodez`: unknown field"),
        "{e}"
    );
}

#[test]
fn bad_duration_points_at_the_value() {
    let e = error(&GOOD.replace("\"20s\"", "\"20 seconds\""));
    assert_eq!((e.line, e.col), (4, 12), "{e}");
    assert_eq!(e.key.as_deref(), Some("duration"));
    assert!(e.message.contains("expected a duration like"), "{e}");
}

#[test]
fn unknown_system_lists_the_choices() {
    let e = error(&GOOD.replace("\"election\"", "\"paxos\""));
    assert_eq!(e.line, 2, "{e}");
    assert!(
        e.message.contains("kv") && e.message.contains("chat"),
        "{e}"
    );
}

#[test]
fn unknown_knob_is_an_error() {
    let e = error(&format!("{GOOD}\n[config]\nheartbeat = \"1s\"\n"));
    assert_eq!(e.key.as_deref(), Some("heartbeat"), "{e}");
    assert_eq!(e.line, 10, "{e}");
}

#[test]
fn knob_of_another_system_is_an_error() {
    let e = error(&format!("{GOOD}\n[config]\nversioning = \"lamport\"\n"));
    assert_eq!(e.key.as_deref(), Some("versioning"), "{e}");
    assert!(e.message.contains("applies to kv, not to election"), "{e}");
}

#[test]
fn node_out_of_range_names_the_valid_ones() {
    let e = error(&format!(
        "{GOOD}\n[[fault]]\nat = \"1s\"\naction = \"crash\"\nnode = \"n9\"\n"
    ));
    assert_eq!((e.line, e.col), (12, 8), "{e}");
    assert!(e.message.contains("n1..n3"), "{e}");
}

#[test]
fn action_parameters_are_checked() {
    let e = error(&format!(
        "{GOOD}\n[[fault]]\nat = \"1s\"\naction = \"crash\"\n"
    ));
    assert_eq!(e.key.as_deref(), Some("node"), "{e}");
    assert!(e.message.contains("needs `node`"), "{e}");
    let e = error(&format!(
        "{GOOD}\n[[fault]]\nat = \"1s\"\naction = \"heal\"\nnode = \"n1\"\n"
    ));
    assert!(e.message.contains("does not take `node`"), "{e}");
    let e = error(&format!(
        "{GOOD}\n[[fault]]\nat = \"1s\"\naction = \"explode\"\n"
    ));
    assert_eq!(e.key.as_deref(), Some("action"), "{e}");
    assert!(e.message.contains("partition"), "{e}");
}

#[test]
fn check_of_another_system_is_an_error() {
    let e = error(&GOOD.replace("election_safety", "converged"));
    assert!(e.message.contains("applies to kv, not to election"), "{e}");
}

#[test]
fn no_checks_is_an_error() {
    let text = GOOD.replace("[[check]]\nkind = \"election_safety\"\n", "");
    let e = error(&text);
    assert_eq!(e.key.as_deref(), Some("check"), "{e}");
}

#[test]
fn missing_required_key_is_named() {
    let e = error(&GOOD.replace("nodes = 3\n", ""));
    assert_eq!(e.key.as_deref(), Some("nodes"), "{e}");
    assert!(e.message.contains("missing field"), "{e}");
}

#[test]
fn broken_toml_syntax_has_a_position() {
    let e = error("name = \"x\nsystem = 3");
    assert!(e.line >= 1 && e.col >= 1, "{e}");
}

#[test]
fn every_shared_scenario_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/scenarios");
    let Ok(systems) = std::fs::read_dir(&dir) else {
        eprintln!("note: {} not present; nothing to validate", dir.display());
        return;
    };
    let mut count = 0;
    for system in systems.flatten() {
        for file in std::fs::read_dir(system.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            sim::scenario::load(&file.path()).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        }
    }
    assert!(count > 0, "no scenario files under {}", dir.display());
}

const KV: &str = r#"name = "x"
system = "kv"
nodes = 3
duration = "20s"

[[check]]
kind = "converged"
"#;

#[test]
fn lb_table_is_validated_with_positions() {
    let ok = parse(
        "lb.toml",
        &format!(
            "{KV}\n[lb]\nstrategy = \"least_connections\"\nbackends = [\"n1\", \"n3\"]\n\
             [workload]\nvia = \"lb\"\n[[fault]]\nat = \"1s\"\naction = \"crash\"\nnode = \"lb\"\n"
        ),
    );
    assert!(ok.is_ok(), "{ok:?}");
    let e = error(&format!("{KV}\n[lb]\nbackends = [\"n1\", \"n4\"]\n"));
    assert_eq!((e.line, e.key.as_deref()), (10, Some("backends")), "{e}");
    assert!(
        e.message
            .contains("unknown server \"n4\": expected one of n1..n3"),
        "{e}"
    );
    let e = error(&format!("{KV}\n[lb]\nbackends = [\"n2\", \"n2\"]\n"));
    assert!(e.message.contains("\"n2\" is listed twice"), "{e}");
    let e = error(&format!("{KV}\n[lb]\nbackends = []\n"));
    assert!(e.message.contains("at least one server"), "{e}");
    let e = error(&format!("{KV}\n[lb]\nstrategy = \"random\"\n"));
    assert_eq!((e.line, e.col), (10, 12), "{e}");
    assert!(
        e.message.contains("round_robin") && e.message.contains("least_connections"),
        "{e}"
    );
    let e = error(&format!("{KV}\n[lb]\nhealth_interval = \"0s\"\n"));
    assert_eq!(e.key.as_deref(), Some("health_interval"), "{e}");
    let e = error(&format!("{KV}\n[lb]\nstrategies = \"round_robin\"\n"));
    assert_eq!(e.key.as_deref(), Some("strategies"), "{e}");
}

#[test]
fn lb_is_for_kv_and_via_lb_needs_it() {
    let e = error(&format!("{GOOD}\n[lb]\nstrategy = \"round_robin\"\n"));
    assert_eq!(e.key.as_deref(), Some("lb"), "{e}");
    assert!(
        e.message.contains("[lb] applies to kv, not to election"),
        "{e}"
    );
    let e = error(&format!("{KV}\n[workload]\nvia = \"lb\"\n"));
    assert_eq!(
        (e.line, e.col, e.key.as_deref()),
        (10, 7, Some("via")),
        "{e}"
    );
    assert!(e.message.contains("add an [lb] table"), "{e}");
    let e = error(&format!("{KV}\n[lb]\n[workload]\nvia = \"direct\"\n"));
    assert!(e.message.contains("`lb`"), "{e}");
    // Without [lb] there is no node `lb` to fault.
    let e = error(&format!(
        "{KV}\n[[fault]]\nat = \"1s\"\naction = \"crash\"\nnode = \"lb\"\n"
    ));
    assert!(e.message.contains("unknown node \"lb\""), "{e}");
    // `lb` is no server: its clock and disk are not the scenario's to skew or damage.
    let e = error(&format!(
        "{KV}\n[lb]\n[[fault]]\nat = \"1s\"\naction = \"skew\"\nnode = \"lb\"\ndrift = 0.1\n"
    ));
    assert!(e.message.contains("servers only"), "{e}");
}
