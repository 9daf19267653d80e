//! The overload client model (`[workload] timeout`, `retries`, `retry_backoff`,
//! `retry_base`, `arrival`) and the checks that judge client service (`latency`,
//! `availability`, `recovers`): what parses, and what is refused with `file:line:col`,
//! the key and what was expected.

use sim::scenario::{parse, Arrival, Backoff, ScenarioError};
use std::time::Duration;

const KV: &str = r#"name = "x"
system = "kv"
nodes = 3
duration = "30s"

[workload]
clients = 2
ops = 40
rate = "10/s"
"#;

const CHECK: &str = "\n[[check]]\nkind = \"converged\"\n";

fn scenario(workload_extra: &str, checks: &str) -> String {
    format!("{KV}{workload_extra}{CHECK}{checks}")
}

fn error(text: &str) -> ScenarioError {
    match parse("bad.toml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn the_client_model_keys_parse_with_their_values() {
    let text = scenario(
        "timeout = \"500ms\"\nretries = 3\nretry_backoff = \"exponential\"\n\
         retry_base = \"20ms\"\narrival = \"open\"\n",
        "",
    );
    let s = parse("good.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let w = s.workload.as_ref().unwrap();
    assert_eq!(w.request_timeout(), Duration::from_millis(500));
    assert_eq!(w.retry_count(), 3);
    assert_eq!(
        w.retry_backoff.as_ref().map(|b| *b.get_ref()),
        Some(Backoff::Exponential)
    );
    assert_eq!(w.arrival_mode(), Arrival::Open);
    assert!(s.records_attempts());
}

#[test]
fn without_the_new_keys_the_client_is_todays() {
    let s = parse("good.toml", &scenario("", "")).unwrap();
    let w = s.workload.as_ref().unwrap();
    assert_eq!(w.request_timeout(), Duration::from_secs(2));
    assert_eq!(w.retry_count(), 0);
    assert_eq!(w.arrival_mode(), Arrival::Closed);
    assert!(!s.records_attempts(), "old traces must keep their hashes");
    // Retries with no backoff named retry at once; `retries = 0` needs no timeout.
    let s = parse(
        "good.toml",
        &scenario(
            "timeout = \"1s\"\nretries = 2\nretry_backoff = \"none\"\n",
            "",
        ),
    )
    .unwrap();
    assert_eq!(s.workload.unwrap().retry_count(), 2);
    parse("good.toml", &scenario("retries = 0\n", "")).unwrap();
}

#[test]
fn retries_without_a_timeout_are_refused() {
    let e = error(&scenario("retries = 2\n", ""));
    assert_eq!((e.line, e.col), (10, 11), "{e}");
    assert_eq!(e.key.as_deref(), Some("retries"));
    assert!(
        e.to_string()
            .contains("a retrying client needs `timeout`: how long an attempt waits"),
        "{e}"
    );
    let e = error(&scenario("timeout = \"1s\"\nretries = 11\n", ""));
    assert!(e.message.contains("expected 0 to 10 extra attempts"), "{e}");
}

#[test]
fn backoff_keys_out_of_place_are_refused() {
    let e = error(&scenario("retry_backoff = \"exponential\"\n", ""));
    assert_eq!(e.key.as_deref(), Some("retry_backoff"), "{e}");
    assert!(
        e.message
            .contains("has no effect without `retries` above 0"),
        "{e}"
    );
    let e = error(&scenario(
        "timeout = \"1s\"\nretries = 2\nretry_backoff = \"exponential\"\n",
        "",
    ));
    assert!(
        e.message.contains("`exponential` needs `retry_base`"),
        "{e}"
    );
    let e = error(&scenario(
        "timeout = \"1s\"\nretries = 2\nretry_base = \"10ms\"\n",
        "",
    ));
    assert_eq!(e.key.as_deref(), Some("retry_base"), "{e}");
    assert!(
        e.message
            .contains("applies only with retry_backoff = \"exponential\""),
        "{e}"
    );
    let e = error(&scenario(
        "timeout = \"1s\"\nretries = 2\nretry_backoff = \"linear\"\n",
        "",
    ));
    assert_eq!(e.line, 12, "{e}");
    assert!(
        e.message.contains("none") && e.message.contains("exponential"),
        "{e}"
    );
}

#[test]
fn bad_values_are_refused() {
    let e = error(&scenario("timeout = \"0s\"\n", ""));
    assert_eq!(e.key.as_deref(), Some("timeout"), "{e}");
    assert!(e.message.contains("above 0s"), "{e}");
    let e = error(&scenario("arrival = \"poisson\"\n", ""));
    assert_eq!(e.key.as_deref(), Some("arrival"), "{e}");
    assert!(
        e.message.contains("closed") && e.message.contains("open"),
        "{e}"
    );
}

#[test]
fn chat_refuses_the_client_model_naming_its_own_policy() {
    let text = r#"name = "x"
system = "chat"
nodes = 3
duration = "30s"

[workload]
clients = 2
timeout = "1s"

[[check]]
kind = "total_order"
"#;
    let e = error(text);
    assert_eq!((e.line, e.col), (8, 11), "{e}");
    assert_eq!(e.key.as_deref(), Some("timeout"));
    assert!(
        e.message.contains(
            "applies to kv workloads, not chat: the chat client has its own fixed retry policy"
        ),
        "{e}"
    );
    let e = error(&text.replace("timeout = \"1s\"", "arrival = \"open\""));
    assert_eq!(e.key.as_deref(), Some("arrival"), "{e}");
}

#[test]
fn the_client_checks_parse() {
    let checks = r#"
[[check]]
kind = "latency"
max = "250ms"
percentile = 99.9
from = "5s"
until = "25s"
clients = ["c1", "c2"]

[[check]]
kind = "availability"
min = 0.95
window = "1s"

[[check]]
kind = "recovers"
min = 0.9
within = "5s"
"#;
    let s = parse("good.toml", &scenario("", checks)).unwrap_or_else(|e| panic!("{e}"));
    let latency = s.checks[1].get_ref();
    assert_eq!(
        latency.client_filter(),
        Some(vec!["c1".into(), "c2".into()])
    );
    assert_eq!(latency.invoked_range(), 5_000_000_000..25_000_000_000);
    assert_eq!(
        s.checks[2].get_ref().window_length(),
        Duration::from_secs(1)
    );
    assert_eq!(
        s.checks[3].get_ref().window_length(),
        Duration::from_secs(2)
    );
}

#[test]
fn a_client_check_without_its_bound_is_refused_at_the_check() {
    let e = error(&scenario("", "\n[[check]]\nkind = \"latency\"\n"));
    assert_eq!(e.key.as_deref(), Some("max"), "{e}");
    assert_eq!(e.line, 14, "{e}");
    assert!(e.message.contains("check `latency` needs `max`"), "{e}");
    let e = error(&scenario(
        "",
        "\n[[check]]\nkind = \"recovers\"\nmin = 0.9\n",
    ));
    assert!(e.message.contains("check `recovers` needs `within`"), "{e}");
    let e = error(&scenario("", "\n[[check]]\nkind = \"availability\"\n"));
    assert!(
        e.message.contains("check `availability` needs `min`"),
        "{e}"
    );
}

#[test]
fn a_parameter_on_the_wrong_check_is_refused() {
    let e = error(&scenario(
        "",
        "\n[[check]]\nkind = \"availability\"\nmin = 0.9\nmax = \"1s\"\n",
    ));
    assert_eq!((e.line, e.col), (17, 7), "{e}");
    assert_eq!(e.key.as_deref(), Some("max"));
    assert!(
        e.message
            .contains("`max` applies to check latency, not availability"),
        "{e}"
    );
    let e = error(&scenario(
        "",
        "\n[[check]]\nkind = \"latency\"\nmax = \"1s\"\nwithin = \"3s\"\n",
    ));
    assert!(
        e.message.contains(
            "`within` applies to checks leader_elected, liveness, recovers and membership_converged, not latency"
        ),
        "{e}"
    );
    let e = error(&scenario(
        "",
        "\n[[check]]\nkind = \"converged\"\nclients = [\"c1\"]\n",
    ));
    assert!(
        e.message
            .contains("`clients` applies to check latency, availability, recovers, not converged"),
        "{e}"
    );
    let e = error(&scenario(
        "",
        "\n[[check]]\nkind = \"converged\"\nmax_false_downs = 2\n",
    ));
    assert_eq!(e.key.as_deref(), Some("max_false_downs"), "{e}");
    assert!(
        e.message
            .contains("`max_false_downs` applies to check membership_converged, not converged"),
        "{e}"
    );
    let e = error(&scenario(
        "",
        "\n[[check]]\nkind = \"latency\"\nmax = \"1s\"\nbudget = 3\n",
    ));
    assert_eq!(e.key.as_deref(), Some("budget"), "{e}");
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn clients_must_name_existing_clients() {
    let e = error(&scenario(
        "",
        "\n[[check]]\nkind = \"availability\"\nmin = 0.9\nclients = [\"c1\", \"c3\"]\n",
    ));
    assert_eq!((e.line, e.col), (17, 18), "{e}");
    assert!(
        e.message
            .contains("unknown client \"c3\": expected one of c1..c2"),
        "{e}"
    );
    for bad in ["n1", "c0", "c01", "registry"] {
        let e = error(&scenario(
            "",
            &format!("\n[[check]]\nkind = \"availability\"\nmin = 0.9\nclients = [\"{bad}\"]\n"),
        ));
        assert!(
            e.message.contains(&format!("unknown client \"{bad}\"")),
            "{e}"
        );
    }
    let e = error(&scenario(
        "",
        "\n[[check]]\nkind = \"availability\"\nmin = 0.9\nclients = []\n",
    ));
    assert!(e.message.contains("expected at least one client"), "{e}");
}

#[test]
fn client_check_values_are_range_checked() {
    let cases = [
        ("kind = \"latency\"\nmax = \"0s\"", "max", "above 0s"),
        (
            "kind = \"latency\"\nmax = \"1s\"\npercentile = 0.0",
            "percentile",
            "above 0 and at most 100",
        ),
        (
            "kind = \"latency\"\nmax = \"1s\"\npercentile = 101.0",
            "percentile",
            "above 0 and at most 100",
        ),
        (
            "kind = \"availability\"\nmin = 1.5",
            "min",
            "between 0 and 1",
        ),
        (
            "kind = \"recovers\"\nmin = 0.9\nwithin = \"1s\"\nwindow = \"0s\"",
            "window",
            "above 0s",
        ),
        (
            "kind = \"availability\"\nmin = 0.9\nfrom = \"20s\"\nuntil = \"10s\"",
            "until",
            "expected `until` after `from`",
        ),
        (
            "kind = \"availability\"\nmin = 0.9\nuntil = \"40s\"",
            "until",
            "within the run's duration",
        ),
    ];
    for (check, key, message) in cases {
        let e = error(&scenario("", &format!("\n[[check]]\n{check}\n")));
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.message.contains(message), "{e}");
    }
}

#[test]
fn client_checks_do_not_apply_to_election() {
    let text = r#"name = "x"
system = "election"
nodes = 3
duration = "30s"

[[check]]
kind = "availability"
min = 0.9
"#;
    let e = error(text);
    assert!(
        e.message.contains("applies to kv, chat, not to election"),
        "{e}"
    );
}
