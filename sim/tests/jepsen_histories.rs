//! Histories in the shapes Jepsen and Knossos write, made by hand, each with the verdict
//! argued in a comment: one vector or list of op maps, one map per line, maps over several
//! lines, nemesis events with nested values, `:time` going backwards, tagged literals,
//! independent `[key value]` tuples, `history.txt` lines; every model; initial values; the
//! evidence window; the HTML page.

use std::path::PathBuf;
use std::process::Command;

use sim::linearizability::{
    check, parse_history, parse_value, smallest_window, Budget, Kv, Model, MultiRegister, Mutex,
    Register, Value, Verdict,
};

fn verdict<M>(model: &M, text: &str) -> Verdict
where
    M: Model<Input = sim::linearizability::Input, Output = sim::linearizability::Output>,
{
    let history = parse_history(text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    history
        .validate(model)
        .unwrap_or_else(|error| panic!("{error}"));
    check(model, &history.operations, Budget::unlimited()).verdict
}

/// Knossos's data/ layout: one vector, pretty-printed, comments, a record literal, a
/// nemesis op whose value is a map with a set, an #inst and a ratio, times going backwards.
/// p0 reads 0 before any write, p1 writes 1, p2's cas 1→2 succeeds after it, p0 reads 2N.
/// Linearizable iff the register starts at 0: with nil, the first read of 0 cannot be
/// explained by any write (none wrote 0).
const KNOSSOS_VECTOR: &str = r#";; a Knossos-style history
[{:process 0,
  :type :invoke,
  :f :read,
  :value nil}
 {:process 0, :type :ok, :f :read, :value 0}   ; the initial value
 {:process :nemesis, :type :info, :f :start-partition,
  :value {:isolated #{"n1" "n2"}, :since #inst "2020-01-01T00:00:00Z", :ratio 1/3}}
 #jepsen.history.Op{:index 3, :time 900, :process 1, :type :invoke, :f :write, :value 1}
 #jepsen.history.Op{:index 4, :time 800, :process 1, :type :ok, :f :write, :value 1}
 {:process 2, :type :invoke, :f :cas, :value [1 2], :time 1000}
 {:process 2, :type :ok, :f :cas, :value [1 2], :time 100}
 #_ {:process 9, :type :invoke, :f :read}
 {:process 0, :type :invoke, :f :read, :value nil, :error nil}
 {:process 0, :type :ok, :f :read, :value 2N}]
"#;

#[test]
fn knossos_vector_with_initial_value_zero_is_linearizable_and_with_nil_is_not() {
    let history = parse_history(KNOSSOS_VECTOR).unwrap();
    assert_eq!(history.operations.len(), 4);
    assert_eq!(history.skipped, 1, "the nemesis op");
    assert_eq!(
        history.times[1],
        (Some(900), Some(800)),
        "times kept as information"
    );
    for model in [
        Register::new(Value::Int(0)),
        Register::knossos(Value::Int(0)),
    ] {
        assert_eq!(verdict(&model, KNOSSOS_VECTOR), Verdict::Linearizable);
    }
    assert!(verdict(&Register::default(), KNOSSOS_VECTOR).is_violation());
}

/// A list of maps, one per line, string values. p0 writes "a" while p1 reads nil
/// (overlapping: fine), then p1 reads nil again after the write returned: stale, not
/// linearizable.
const LIST_ONE_PER_LINE: &str = r#"(
{:process 0, :type :invoke, :f :write, :value "a"}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :write, :value "a"}
{:process 1, :type :ok, :f :read, :value nil}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value nil}
)"#;

#[test]
fn list_layout_with_a_stale_read_is_not_linearizable_and_knossos_reads_nil_as_unknown() {
    assert!(verdict(&Register::default(), LIST_ONE_PER_LINE).is_violation());
    // In Knossos's reading a nil read says nothing, so nothing is wrong.
    assert_eq!(
        verdict(&Register::knossos(Value::Nil), LIST_ONE_PER_LINE),
        Verdict::Linearizable
    );
}

/// Mutex: 0 acquires and keeps the lock; 1 acquires after 0's acquire returned: two
/// holders, not linearizable. 2's acquire crashed (:info) and may never have happened, so
/// it changes nothing. Without 1's acquire the history is fine.
const MUTEX: &str = r#"{:process 0, :type :invoke, :f :acquire, :value nil}
{:process 0, :type :ok, :f :acquire, :value nil}
{:process :nemesis, :type :info, :f :kill, :value [:n1 {:signal 9}]}
{:process 2, :type :invoke, :f :acquire, :value nil}
{:process 2, :type :info, :f :acquire, :value nil, :error :timeout}
{:process 1, :type :invoke, :f :acquire, :value nil}
{:process 1, :type :ok, :f :acquire, :value nil}
"#;

#[test]
fn mutex_with_two_holders_is_not_linearizable() {
    assert!(verdict(&Mutex, MUTEX).is_violation());
    let without_one: String = MUTEX
        .lines()
        .filter(|line| !line.starts_with("{:process 1"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(verdict(&Mutex, &without_one), Verdict::Linearizable);
}

/// Multi-register: t0 writes x=1,y=1 atomically; t1, after it, reads x=1 and y=nil-known
/// as... here y=0 with every register starting at 0: a torn read, not linearizable. With
/// t1 reading y=1 it is fine.
const TXN: &str = r#"[{:process 0, :type :invoke, :f :txn, :value [[:w :x 1] [:w :y 1]]}
 {:process 0, :type :ok, :f :txn, :value [[:w :x 1] [:w :y 1]]}
 {:process 1, :type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]]}
 {:process 1, :type :ok, :f :txn, :value [[:r :x 1] [:r :y 0]]}]"#;

#[test]
fn multi_register_torn_read_is_not_linearizable() {
    let model = MultiRegister {
        initial: Value::Int(0),
        ..MultiRegister::default()
    };
    assert!(verdict(&model, TXN).is_violation());
    assert_eq!(
        verdict(&model, &TXN.replace("[:r :y 0]", "[:r :y 1]")),
        Verdict::Linearizable
    );
}

/// jepsen.independent tuples: key 0 is fine (write 5, read 5); key 1: write 3 returns,
/// a cas 3→4 fails (Porcupine reading: the value was not 3 — impossible, it was 3), so
/// key 1 is not linearizable; in Knossos's reading the failed cas did not happen, and then
/// the read of 3 is fine.
const INDEPENDENT: &str = r#"{:process 0, :type :invoke, :f :write, :value [0 5]}
{:process 0, :type :ok, :f :write, :value [0 5]}
{:process 1, :type :invoke, :f :read, :value [0 nil]}
{:process 1, :type :ok, :f :read, :value [0 5]}
{:process 2, :type :invoke, :f :write, :value [1 3]}
{:process 2, :type :ok, :f :write, :value [1 3]}
{:process 3, :type :invoke, :f :cas, :value [1 [3 4]]}
{:process 3, :type :fail, :f :cas, :value [1 [3 4]]}
{:process 1, :type :invoke, :f :read, :value [1 nil]}
{:process 1, :type :ok, :f :read, :value [1 3]}
"#;

#[test]
fn independent_tuples_are_split_by_key() {
    let history = parse_history(INDEPENDENT).unwrap();
    assert!(history.independent);
    match verdict(&Register::default(), INDEPENDENT) {
        Verdict::NotLinearizable(evidence) => assert_eq!(evidence.key.as_deref(), Some("1")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        verdict(&Register::knossos(Value::Nil), INDEPENDENT),
        Verdict::Linearizable
    );
}

/// Jepsen's history.txt: tab-separated fields without the log prefix. Write 1, then read
/// 1: linearizable; a read of 2 would not be.
#[test]
fn history_txt_lines_are_read() {
    let text = "0\t:invoke\t:write\t1\n0\t:ok\t:write\t1\n:nemesis\t:info\t:start\tnil\n1\t:invoke\t:read\tnil\n1\t:ok\t:read\t1\n";
    assert_eq!(verdict(&Register::default(), text), Verdict::Linearizable);
    assert!(verdict(&Register::default(), &text.replace(":read\t1", ":read\t2")).is_violation());
}

/// Any EDN value under :value compares as Clojure's = does: a register holding a set
/// read back in another order, keywords, vectors.
#[test]
fn values_of_any_edn_type_compare_by_value() {
    let text = r#"{:process 0, :type :invoke, :f :write, :value #{:a :b}}
{:process 0, :type :ok, :f :write, :value #{:a :b}}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value #{:b :a}}
"#;
    assert_eq!(verdict(&Register::default(), text), Verdict::Linearizable);
    assert!(verdict(&Register::default(), &text.replace("#{:b :a}", "[:b :a]")).is_violation());
    assert_eq!(parse_value("[:w 1]").unwrap().to_string(), "[:w 1]");
}

#[test]
fn kv_still_reads_the_corpus_shape() {
    let text = "{:process 0, :type :invoke, :f :put, :key \"k\", :value \"x\"}\n\
                {:process 0, :type :ok, :f :put, :key \"k\", :value \"x\"}\n\
                {:process 1, :type :invoke, :f :get, :key \"k\", :value nil}\n\
                {:process 1, :type :ok, :f :get, :key \"k\", :value \"x\"}\n";
    assert_eq!(verdict(&Kv, text), Verdict::Linearizable);
}

/// The window of a stale read among many operations: only the write that returned and the
/// read that missed it are needed, whatever came before.
#[test]
fn the_smallest_window_is_the_few_operations_that_fail_on_their_own() {
    let mut text = String::new();
    // 20 sequential write/read pairs by two processes, all fine...
    for value in 0..20 {
        text.push_str(&format!(
            "{{:process 0, :type :invoke, :f :write, :value {value}}}\n\
             {{:process 0, :type :ok, :f :write, :value {value}}}\n\
             {{:process 1, :type :invoke, :f :read, :value nil}}\n\
             {{:process 1, :type :ok, :f :read, :value {value}}}\n"
        ));
    }
    // ...then a write of 99 returns and a later read still sees 19.
    text.push_str(
        "{:process 0, :type :invoke, :f :write, :value 99}\n\
         {:process 0, :type :ok, :f :write, :value 99}\n\
         {:process 1, :type :invoke, :f :read, :value nil}\n\
         {:process 1, :type :ok, :f :read, :value 19}\n",
    );
    let history = parse_history(&text).unwrap();
    let model = Register::default();
    let Verdict::NotLinearizable(evidence) =
        check(&model, &history.operations, Budget::unlimited()).verdict
    else {
        panic!("expected a violation");
    };
    let window = smallest_window(&model, &history.operations, &evidence).unwrap();
    let indices: Vec<usize> = window.operations.iter().map(|op| op.index).collect();
    // The write of 99 (#40) and the stale read (#41): nothing else is needed.
    assert_eq!(indices, vec![40, 41], "{window:?}");
    assert!(!window.from_start);
    assert_eq!(
        evidence.linearized.len(),
        41,
        "the prefix: everything before"
    );
}

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run sim")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sim-jepsen-histories-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn cli_initial_value_models_and_set() {
    let file = temp_file("knossos.edn", KNOSSOS_VECTOR);
    let file = file.to_str().unwrap();
    let run = |args: &[&str]| {
        sim(&[&["check-history", file], args].concat())
            .status
            .code()
    };
    assert_eq!(
        run(&["--model", "cas-register", "--initial-value", "0"]),
        Some(0)
    );
    assert_eq!(run(&["--model", "cas-register"]), Some(1));
    assert_eq!(run(&["--initial-value", "[unclosed"]), Some(2));
    let mutex = temp_file("mutex.edn", MUTEX);
    let out = sim(&["check-history", mutex.to_str().unwrap(), "--model", "mutex"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("smallest window"), "{text}");
    assert!(text.contains("longest linearizable prefix found"), "{text}");
    let txn = temp_file("txn.edn", TXN);
    let out = sim(&[
        "check-history",
        txn.to_str().unwrap(),
        "--model",
        "multi-register",
        "--initial-value",
        "{:x 0, :y 0}",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Set: 2 acknowledged but missing from the final read; 9 never added.
    let set = temp_file(
        "set.edn",
        "{:process 0, :type :invoke, :f :add, :value 1}\n{:process 0, :type :ok, :f :add, :value 1}\n\
         {:process 0, :type :invoke, :f :add, :value 2}\n{:process 0, :type :ok, :f :add, :value 2}\n\
         {:process 1, :type :invoke, :f :read}\n{:process 1, :type :ok, :f :read, :value #{1 9}}\n",
    );
    let out = sim(&["check-history", set.to_str().unwrap(), "--model", "set"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lost (1, acknowledged but not read): 2"),
        "{text}"
    );
    assert!(
        text.contains("unexpected (1, read but never added): 9"),
        "{text}"
    );
}

#[test]
fn html_page_is_self_contained_and_byte_identical_per_input() {
    let file = temp_file("stale.edn", LIST_ONE_PER_LINE);
    let (first, second) = (temp_file("a.html", ""), temp_file("b.html", ""));
    for page in [&first, &second] {
        let out = sim(&[
            "check-history",
            file.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
    }
    let html = std::fs::read_to_string(&first).unwrap();
    assert_eq!(html, std::fs::read_to_string(&second).unwrap());
    assert!(
        html.contains("Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-")
    );
    assert!(!html.contains("<script"), "no scripts");
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "nothing fetched"
    );
    assert!(html.contains("href=\"#first-error\"") && html.contains("id=\"first-error\""));
    assert!(html.contains("class=\"op done blocked\"") || html.contains("class=\"op blocked\""));
    assert!(
        html.contains("<polyline class=\"lin\""),
        "the order found is drawn"
    );
}
