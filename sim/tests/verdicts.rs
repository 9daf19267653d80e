//! Verdicts a user can trust (issue 9): three states per check, `liveness`, named
//! expectations, and checks that judge the majority. Each test runs a small scenario
//! written here and asserts on the report, the way a user reads it.

use sim::check::Status;
use sim::report::RunReport;
use sim::run::run_scenario;
use sim::scenario;

fn run(text: &str) -> RunReport {
    let scenario = scenario::parse("<test>", text).expect("the test scenario parses");
    let seed = scenario.default_seed();
    run_scenario(&scenario, "<test>", seed)
        .expect("the scenario runs")
        .report
}

fn check<'a>(report: &'a RunReport, kind: &str) -> &'a sim::check::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} check in {:?}", report.checks))
}

/// A chat cluster that is dead from 1 s on (fixtures/dead-chat.toml).
const DEAD_CHAT: &str = include_str!("fixtures/dead-chat.toml");

#[test]
fn a_dead_cluster_is_vacuous_and_fails_the_run() {
    let report = run(DEAD_CHAT);
    assert_eq!(check(&report, "total_order").status, Status::Vacuous);
    assert_eq!(check(&report, "delivered").status, Status::Vacuous);
    assert_eq!(report.outcome, "vacuous");
    assert_eq!(report.verdict, "fail");
    assert!(
        report.reason.contains("nothing to judge"),
        "{}",
        report.reason
    );
}

#[test]
fn allow_vacuous_lets_a_check_with_nothing_to_judge_pass() {
    let text = DEAD_CHAT.replace(
        "kind = \"total_order\"",
        "kind = \"total_order\"\nallow_vacuous = true",
    );
    let text = text.replace(
        "kind = \"delivered\"",
        "kind = \"delivered\"\nallow_vacuous = true",
    );
    let report = run(&text);
    let order = check(&report, "total_order");
    assert_eq!(order.status, Status::Vacuous);
    assert!(order.passed);
    assert_eq!(report.verdict, "pass", "{}", report.reason);
}

#[test]
fn liveness_with_no_live_server_is_vacuous() {
    let text = DEAD_CHAT.replace("kind = \"delivered\"", "kind = \"liveness\"");
    let report = run(&text);
    let liveness = check(&report, "liveness");
    assert_eq!(liveness.status, Status::Vacuous, "{}", liveness.detail);
    assert!(liveness.detail.contains("no probe was possible"));
}

const SPLIT_BRAIN: &str = r#"
name = "split-brain-named"
system = "chat"
nodes = 5
duration = "40s"
expect = { violation = ["total_order"] }

[config]
quorum = false
commit = "leader"

[workload]
clients = 4
ops = 200
rate = "10/s"

[[fault]]
at = "8s"
action = "partition"
groups = [["n5", "n4"], ["n1", "n2", "n3"]]

[[fault]]
at = "25s"
action = "heal"

[[check]]
kind = "total_order"

[[check]]
kind = "election_safety"
"#;

#[test]
fn a_named_expectation_holds_when_exactly_that_check_fails() {
    let report = run(SPLIT_BRAIN);
    assert_eq!(check(&report, "total_order").status, Status::Violation);
    assert_eq!(check(&report, "election_safety").status, Status::Pass);
    assert_eq!(report.verdict, "pass", "{}", report.reason);
}

#[test]
fn a_named_expectation_fails_when_the_named_check_holds() {
    let text = SPLIT_BRAIN.replace(
        "expect = { violation = [\"total_order\"] }",
        "expect = { violation = [\"election_safety\"] }",
    );
    let report = run(&text);
    assert_eq!(report.verdict, "fail");
    assert!(
        report.reason.contains("expected only election_safety"),
        "{}",
        report.reason
    );
}

#[test]
fn a_named_expectation_fails_when_another_check_fails_too() {
    // Plain bully's election_safety holds here, so name a check that fails alongside:
    // add single_leader (two leaders at once during the partition) and name only
    // total_order.
    let text = format!("{SPLIT_BRAIN}\n[[check]]\nkind = \"single_leader\"\n");
    let report = run(&text);
    assert_eq!(check(&report, "single_leader").status, Status::Violation);
    assert_eq!(report.verdict, "fail");
    assert!(report.reason.contains("single_leader"), "{}", report.reason);
}

#[test]
fn the_bare_forms_of_expect_keep_working() {
    let text = SPLIT_BRAIN.replace(
        "expect = { violation = [\"total_order\"] }",
        "expect = \"violation\"",
    );
    assert_eq!(run(&text).verdict, "pass");
    let text = SPLIT_BRAIN.replace(
        "expect = { violation = [\"total_order\"] }",
        "expect = \"pass\"",
    );
    assert_eq!(run(&text).verdict, "fail");
}

#[test]
fn naming_a_check_the_scenario_lacks_is_a_scenario_error() {
    let text = SPLIT_BRAIN.replace(
        "expect = { violation = [\"total_order\"] }",
        "expect = { violation = [\"delivered\"] }",
    );
    let error = scenario::parse("named.toml", &text).expect_err("must be refused");
    let message = error.to_string();
    assert!(message.starts_with("named.toml:6:"), "{message}");
    assert!(message.contains("no such [[check]]"), "{message}");
}

/// Plain bully split three ways: every group elects its own leader, none a majority.
const THREE_WAY_BULLY: &str = r#"
name = "three-way-bully"
system = "election"
nodes = 5
duration = "30s"
expect = { violation = ["leader_elected", "liveness"] }

[config]
quorum = false

[[fault]]
at = "5s"
action = "partition"
groups = [["n1", "n2"], ["n3", "n4"], ["n5"]]

[[check]]
kind = "leader_elected"

[[check]]
kind = "liveness"
"#;

#[test]
fn leader_elected_and_liveness_judge_the_majority_not_a_minority_component() {
    let report = run(THREE_WAY_BULLY);
    let elected = check(&report, "leader_elected");
    assert_eq!(elected.status, Status::Violation, "{}", elected.detail);
    let liveness = check(&report, "liveness");
    assert_eq!(liveness.status, Status::Violation, "{}", liveness.detail);
    assert!(liveness.detail.contains("majority"), "{}", liveness.detail);
    assert_eq!(report.verdict, "pass", "{}", report.reason);
}

#[test]
fn kv_liveness_fails_while_a_partition_never_heals() {
    let text = r#"
name = "kv-partition-forever"
system = "kv"
nodes = 5
duration = "30s"
expect = { violation = ["liveness"] }

[workload]
clients = 2
ops = 100
rate = "10/s"
stop = "10s"

[[fault]]
at = "12s"
action = "partition"
groups = [["n1", "n2"], ["n3", "n4", "n5"]]

[[check]]
kind = "liveness"
"#;
    let report = run(text);
    let liveness = check(&report, "liveness");
    assert_eq!(liveness.status, Status::Violation, "{}", liveness.detail);
    assert!(
        liveness.detail.contains("not readable via"),
        "{}",
        liveness.detail
    );
    // The evidence cites the pending probes' operations, for the report's jump link.
    assert!(!liveness.evidence.is_empty(), "no evidence cited");
    assert!(liveness.evidence.iter().all(|c| c.role == "pending probe"));
    assert_eq!(report.verdict, "pass", "{}", report.reason);
}

#[test]
fn json_checks_carry_their_status() {
    let report = run(SPLIT_BRAIN);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["checks"][0]["status"], "violation");
    assert_eq!(json["checks"][1]["status"], "pass");
}
