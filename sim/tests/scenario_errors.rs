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

#[test]
fn per_server_overrides_apply_to_their_server_only() {
    let s = parse(
        "good.toml",
        &format!("{KV}\n[config]\nworkers = 4\nload_factor = 25\n[servers.n2]\nworkers = 1\n"),
    )
    .unwrap();
    let workers = |i| s.knobs_for(i).workers.map(|w| w.into_inner());
    assert_eq!(
        (workers(1), workers(2), workers(3)),
        (Some(4), Some(1), Some(4))
    );
    let load = s.knobs_for(2).load_factor.map(|l| l.into_inner());
    assert_eq!(load, Some(25.0), "the rest of [config] still applies to n2");
}

#[test]
fn an_override_for_a_server_that_does_not_exist_is_named_with_its_position() {
    let e = error(&format!("{KV}\n[servers.n4]\nworkers = 1\n"));
    assert_eq!((e.line, e.col), (9, 10), "{e}");
    assert!(
        e.message
            .contains("unknown server \"n4\": expected one of n1..n3"),
        "{e}"
    );
    let e = error(&format!("{KV}\n[servers.c1]\nworkers = 1\n"));
    assert!(e.message.contains("unknown server \"c1\""), "{e}");
}

#[test]
fn overrides_are_checked_like_config() {
    let e = error(&format!("{KV}\n[servers.n2]\nworkerz = 1\n"));
    assert_eq!((e.line, e.key.as_deref()), (10, Some("workerz")), "{e}");
    let e = error(&format!("{KV}\n[servers.n2]\nworkers = 0\n"));
    assert!(e.message.contains("at least 1"), "{e}");
    let e = error(&format!(
        "{KV}\n[servers.n2]\nheartbeat_interval = \"1s\"\n"
    ));
    assert!(e.message.contains("not to kv"), "{e}");
    let e = error(&format!("{KV}\n[config]\nload_factor = -1\n"));
    assert_eq!(e.key.as_deref(), Some("load_factor"), "{e}");
    let e = error(&format!("{GOOD}\n[config]\nheartbeat_interval = \"1s\"\n[servers.n1]\nelection_timeout = \"500ms\"\n"));
    assert!(e.message.contains("longer than heartbeat_interval"), "{e}");
}

#[test]
fn breaker_settings_need_a_breaker_on_the_servers_they_apply_to() {
    let e = error(&format!("{KV}\n[config]\nbreaker_failures = 3\n"));
    assert_eq!(e.key.as_deref(), Some("breaker_failures"), "{e}");
    assert!(e.message.contains("circuit_breaker = true"), "{e}");
    let ok = format!(
        "{KV}\n[config]\nbreaker_cooldown = \"2s\"\n[servers.n1]\ncircuit_breaker = true\n"
    );
    assert!(parse("ok.toml", &ok).is_ok());
    let e = error(&format!("{KV}\n[config]\ncircuit_breaker = true\n[servers.n2]\ncircuit_breaker = false\nbreaker_failures = 2\n"));
    assert_eq!(e.key.as_deref(), Some("breaker_failures"), "{e}");
}

#[test]
fn slow_takes_a_server_and_a_factor_of_at_least_one() {
    let fault =
        |params: &str| format!("{KV}\n[[fault]]\nat = \"1s\"\naction = \"slow\"\n{params}\n");
    assert!(parse("ok.toml", &fault("node = \"n2\"\nfactor = 4.0")).is_ok());
    assert!(parse("ok.toml", &fault("node = \"random\"\nfactor = 1")).is_ok());
    let e = error(&fault("node = \"n2\"\nfactor = 0.5"));
    assert_eq!(e.key.as_deref(), Some("factor"), "{e}");
    let e = error(&fault("node = \"n2\""));
    assert!(e.message.contains("needs `factor`"), "{e}");
    let e = error(&fault("node = \"registry\"\nfactor = 2"));
    assert!(e.message.contains("servers only"), "{e}");
    let e = error(&fault("node = \"n2\"\nfactor = 2\nrate = 0.5"));
    assert!(e.message.contains("does not take `rate`"), "{e}");
    let election =
        format!("{GOOD}\n[[fault]]\nat = \"1s\"\naction = \"slow\"\nnode = \"n1\"\nfactor = 2\n");
    assert!(error(&election).message.contains("load_factor"));
}

const KV_100: &str = r#"name = "x"
system = "kv"
nodes = 100
duration = "20s"

[[check]]
kind = "converged"
"#;

#[test]
fn gossip_membership_allows_a_thousand_servers_and_the_registry_sixty_four() {
    let e = error(KV_100);
    assert_eq!(e.key.as_deref(), Some("nodes"), "{e}");
    assert!(e.message.contains("up to 1000 with kv"), "{e}");
    let gossip = format!("{KV_100}\n[config]\nmembership = \"gossip\"\n");
    let s = parse("ok.toml", &gossip.replace("nodes = 100", "nodes = 1000")).unwrap();
    assert!(s.gossip_membership());
    let e = error(&gossip.replace("nodes = 100", "nodes = 1001"));
    assert!(e.message.contains("expected 1 to 1000 servers"), "{e}");
}

#[test]
fn gossip_has_no_registry_and_membership_is_cluster_wide() {
    let gossip = format!(
        "{}\n[config]\nmembership = \"gossip\"\n",
        KV_100.replace("nodes = 100", "nodes = 3")
    );
    let crash_registry =
        format!("{gossip}\n[[fault]]\nat = \"1s\"\naction = \"crash\"\nnode = \"registry\"\n");
    let e = error(&crash_registry);
    assert_eq!(e.key.as_deref(), Some("node"), "{e}");
    let per_server = format!(
        "{}\n[servers.n2]\nmembership = \"gossip\"\n",
        KV_100.replace("nodes = 100", "nodes = 3")
    );
    let e = error(&per_server);
    assert_eq!(e.key.as_deref(), Some("membership"), "{e}");
    assert!(e.message.contains("[config]"), "{e}");
    let chat = "name = \"x\"\nsystem = \"chat\"\nnodes = 3\nduration = \"20s\"\n\n[config]\nmembership = \"gossip\"\n\n[[check]]\nkind = \"total_order\"\n";
    assert_eq!(error(chat).key.as_deref(), Some("membership"));
}

#[test]
fn a_client_override_names_a_client_of_the_workload_and_known_keys() {
    let workload = "[workload]\nclients = 2\nops = 20\n";
    let ok = sim::scenario::parse(
        "ok.toml",
        &format!("{KV}\n{workload}[clients.c2]\nrate = \"50/s\"\nops = 300\n"),
    );
    assert!(ok.is_ok(), "{ok:?}");
    let e = error(&format!("{KV}\n{workload}[clients.c3]\nrate = \"50/s\"\n"));
    assert!(
        e.message
            .contains("unknown client \"c3\": expected one of c1..c2"),
        "{e}"
    );
    let e = error(&format!("{KV}\n[clients.c1]\nrate = \"50/s\"\n"));
    assert!(e.message.contains("need a [workload]"), "{e}");
    let e = error(&format!("{KV}\n{workload}[clients.c1]\nrat = \"50/s\"\n"));
    assert_eq!(e.key.as_deref(), Some("rat"), "{e}");
    let e = error(&format!("{KV}\n{workload}[clients.c1]\nrate = \"fast\"\n"));
    assert!(e.message.contains("expected a rate like"), "{e}");
}
