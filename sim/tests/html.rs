//! The HTML run report (`sim run --html`): self-contained, byte-identical per seed, with a
//! violation panel whose link highlights the events it names — checked on the file, and in
//! headless Chromium when it is installed (CI installs it and sets `CI`, and then a missing
//! browser is a failure, not a skip).

use sim::scenario;
use std::path::{Path, PathBuf};
use std::process::Command;

fn report(file: &str, seed: u64) -> (String, sim::run::Finished) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let scenario = scenario::load(&path).expect("scenario loads");
    let finished = sim::run::run_scenario_with_messages(&scenario, file, seed).expect("runs");
    let html = sim::html::render(
        &scenario,
        &finished.report,
        &finished.history,
        &finished.messages,
    );
    (html, finished)
}

/// The JSON the page carries.
fn payload(html: &str) -> serde_json::Value {
    let start = html
        .find("<script type=\"application/json\" id=\"data\">")
        .expect("data block")
        + "<script type=\"application/json\" id=\"data\">".len();
    let end = start + html[start..].find("</script>").expect("end of data");
    serde_json::from_str(&html[start..end].replace("<\\/", "</")).expect("JSON data")
}

#[test]
fn the_page_is_byte_identical_for_a_seed_and_fetches_nothing() {
    let (a, _) = report("scenarios/teaching/split-brain.toml", 1);
    let (b, _) = report("scenarios/teaching/split-brain.toml", 1);
    assert!(a == b, "two renders of one seed differ");
    let (other, _) = report("scenarios/teaching/split-brain.toml", 2);
    assert!(a != other, "another seed draws the same page");
    assert_fetches_nothing(&a);
}

/// No external URL: the only `http` is the SVG namespace name the script creates elements
/// in, which is never fetched; no element that loads anything; a strict CSP.
fn assert_fetches_nothing(a: &str) {
    let mut rest = a;
    while let Some(i) = rest.find("http") {
        assert!(
            rest[i..].starts_with("http://www.w3.org/2000/svg")
                || rest[i..].starts_with("http-equiv"),
            "an external URL: {}",
            &rest[i..(i + 60).min(rest.len())]
        );
        rest = &rest[i + 4..];
    }
    for forbidden in [" src=", "@import", "<link", "<iframe"] {
        assert!(!a.contains(forbidden), "the page contains {forbidden}");
    }
    // `url(` only for in-page references (the arrowhead marker).
    assert!(a.split("url(").skip(1).all(|rest| rest.starts_with('#')));
    assert!(a.contains("Content-Security-Policy"));
    assert!(a.contains("default-src &#39;none&#39;"));
}

#[test]
fn the_split_brain_panel_tells_the_story_and_names_the_deliveries() {
    let (html, finished) = report("scenarios/teaching/split-brain.toml", 1);
    let data = payload(&html);
    let panel = data["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| p["kind"] == "total_order")
        .expect("a total_order panel");
    assert_eq!(panel["status"], "violation");
    let story: Vec<&str> = panel["story"]
        .as_array()
        .expect("story")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(story[0].starts_with("Let ") && story[1].starts_with("Then "));
    assert!(story[2].starts_with("However "), "{story:?}");
    let entries: Vec<usize> = panel["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e.as_u64().map(|e| e as usize))
        .collect();
    assert!(entries.len() >= 2);
    // Every highlighted entry is a delivery at the one position the story names.
    let mut positions = std::collections::BTreeSet::new();
    for &i in &entries {
        match &finished.history[i].what {
            sim::history::What::Event {
                data: nodes::runtime::NodeEvent::Delivered { seq, .. },
            } => {
                positions.insert(*seq);
            }
            other => panic!("entry {i} is not a delivery: {other:?}"),
        }
    }
    assert_eq!(positions.len(), 1, "{positions:?}");
    let seq = positions.into_iter().next().unwrap_or(0);
    assert!(story[0].contains(&format!("position {seq}")), "{story:?}");
    assert!(
        html.contains("href=\"#jump-"),
        "the panel links to its events"
    );
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(|name| {
            let found = Command::new("which").arg(name).output().ok()?;
            let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
            (found.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
        })
}

/// Headless Chromium on `html` opened at `#jump-N` of the `kind` panel: the dumped DOM
/// and the browser's log, or `None` when there is no browser (outside CI).
struct Opened {
    dom: String,
    expected: std::collections::BTreeSet<u64>,
    page: PathBuf,
    url: String,
    browser: PathBuf,
}

fn open_in_browser(html: &str, kind: &str, name: &str) -> Option<Opened> {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (apt-get install -y chromium)"
        );
        eprintln!("SKIPPED: no chromium on this machine (CI installs it)");
        return None;
    };
    let data = payload(html);
    let index = data["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .position(|p| p["kind"] == kind)
        .expect("panel");
    assert_eq!(data["panels"][index]["status"], "violation", "{kind}");
    let expected: std::collections::BTreeSet<u64> = data["panels"][index]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e.as_u64())
        .collect();
    assert!(!expected.is_empty(), "the {kind} panel names no events");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report");
    std::fs::create_dir_all(&dir).expect("dir");
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html).expect("write");
    let url = format!("file://{}#jump-{index}", page.display());
    let (dom, log) = browse(&browser, &url, &["--dump-dom".to_string()]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "the page logged: {console:?}");
    assert!(!log.contains("Content Security Policy"), "{log}");
    assert!(dom.contains("<svg"), "the script drew nothing");
    assert!(
        dom.contains("data-rendered=\""),
        "the first render did not finish"
    );
    Some(Opened {
        dom,
        expected,
        page,
        url,
        browser,
    })
}

fn browse(browser: &Path, url: &str, extra: &[String]) -> (String, String) {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
        ])
        .args([
            "--v=0",
            "--window-size=1400,1000",
            "--virtual-time-budget=3000",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The history entries of the highlighted elements: each element's entry, and an
/// operation bar's completion.
fn highlighted(dom: &str) -> std::collections::BTreeSet<u64> {
    let mut highlighted = std::collections::BTreeSet::new();
    for element in dom
        .split('<')
        .filter(|e| e.contains(" hl\"") || e.contains("\"hl"))
    {
        for attribute in ["data-entry=\"", "data-done=\""] {
            if let Some(at) = element.find(attribute) {
                let rest = &element[at + attribute.len()..];
                if let Some(entry) = rest.split('"').next().and_then(|n| n.parse::<u64>().ok()) {
                    highlighted.insert(entry);
                }
            }
        }
    }
    highlighted
}

/// A body attribute the page's script set (`data-render-ms`, ...).
fn body_attribute<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let at = dom.find(&format!("{name}=\""))? + name.len() + 2;
    dom[at..].split('"').next()
}

#[test]
fn in_a_real_browser_the_jump_link_highlights_exactly_the_panel_events() {
    let (html, _) = report("scenarios/teaching/split-brain.toml", 1);
    let Some(opened) = open_in_browser(&html, "total_order", "split-brain") else {
        return;
    };
    assert_eq!(
        highlighted(&opened.dom),
        opened.expected,
        "highlighted entries"
    );
    assert!(
        opened.dom.contains("total_order: Let "),
        "the details show the story"
    );
    let shot = opened.page.with_extension("png");
    browse(
        &opened.browser,
        &opened.url,
        &[format!("--screenshot={}", shot.display())],
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot of {size} bytes");
}

/// The KV checks cite typed evidence: following a panel's link highlights exactly the
/// operations it cites — a lost write's invoke and acknowledgement, the final read that
/// lost it; the slowest operations; the unacknowledged ones of the failing window; the
/// diverging copies; the operation no linearization gets past; the unacknowledged ones.
#[test]
fn in_a_real_browser_the_kv_panels_highlight_their_cited_operations() {
    for (file, kind, name) in [
        (
            "scenarios/teaching/write-quorum-one-crash.toml",
            "no_lost_writes",
            "lost-write",
        ),
        ("scenarios/teaching/breaker-off.toml", "latency", "latency"),
        (
            "scenarios/teaching/retry-storm.toml",
            "recovers",
            "recovers",
        ),
        (
            "scenarios/teaching/node-counter-concurrent-writes.toml",
            "converged",
            "converged",
        ),
        (
            "scenarios/teaching/cap-not-linearizable.toml",
            "linearizable",
            "linearizable",
        ),
        (
            "scenarios/kv/partition-never-heals-quorum.toml",
            "availability",
            "availability",
        ),
    ] {
        // The scenario's own seed, when it names one (else 1).
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        let seed = scenario::load(&path).expect("loads").seed.unwrap_or(1);
        let (html, finished) = report(file, seed);
        let check = finished
            .report
            .checks
            .iter()
            .find(|c| c.kind == kind)
            .expect("check");
        // Every cited entry is a client or harness operation of the history.
        for cited in &check.evidence {
            assert!(
                matches!(
                    finished.history[cited.entry].what,
                    sim::history::What::Op { .. }
                ),
                "{kind} cites entry {} ({}), not an operation",
                cited.entry,
                cited.role
            );
        }
        let Some(opened) = open_in_browser(&html, kind, name) else {
            return;
        };
        assert_eq!(
            highlighted(&opened.dom),
            opened.expected,
            "{kind}: highlighted entries"
        );
        assert!(
            opened.dom.contains(&format!("{kind}: Let ")),
            "{kind}: the details show the story"
        );
        eprintln!(
            "{name}: {} bytes, {} elements drawn, first render {} ms",
            html.len(),
            body_attribute(&opened.dom, "data-rendered").unwrap_or("?"),
            body_attribute(&opened.dom, "data-render-ms").unwrap_or("?")
        );
    }
}

/// The page of `file` at seed 1 and its tapped run, after checking that the same run
/// without the tap records no messages and has the same trace hash.
fn tapped_without_changing_the_trace(file: &str) -> (String, sim::run::Finished) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let scenario = scenario::load(&path).expect("scenario loads");
    let plain = sim::run::run_scenario(&scenario, file, 1).expect("runs");
    let (html, tapped) = report(file, 1);
    assert!(plain.messages.is_empty());
    assert_eq!(plain.report.trace_hash, tapped.report.trace_hash, "{file}");
    (html, tapped)
}

/// Recording the peer messages for the page leaves the history, and so the trace hash,
/// exactly as a run without them; and every message received was one that was sent.
#[test]
fn tapping_messages_for_the_page_does_not_change_the_trace() {
    use nodes::runtime::wire::Tapped;
    let (_, tapped) = tapped_without_changing_the_trace("scenarios/teaching/split-brain.toml");
    let sent: std::collections::BTreeSet<(String, u64)> = tapped
        .messages
        .iter()
        .filter_map(|m| match m.tapped {
            Tapped::Sent { id, .. } => Some((m.node.clone(), id)),
            _ => None,
        })
        .collect();
    let received: Vec<(String, u64)> = tapped
        .messages
        .iter()
        .filter_map(|m| match m.tapped {
            Tapped::Received { from, id, .. } => Some((format!("n{from}"), id)),
            _ => None,
        })
        .collect();
    assert!(sent.len() > 100 && received.len() > 100);
    assert!(
        received.iter().all(|r| sent.contains(r)),
        "a receipt without its send"
    );
}

/// The same for the KV system's HTTP calls (clients → balancer → backends, node → node
/// replication and gossip, node → registry): tapping leaves the trace hash alone, every
/// served call was one that was made, and the page draws each kind between the right lanes.
#[test]
fn tapping_http_calls_does_not_change_the_trace_and_draws_them() {
    use nodes::runtime::wire::Tapped;
    let (html, tapped) = tapped_without_changing_the_trace("scenarios/teaching/breaker-off.toml");
    assert_fetches_nothing(&html);
    let (again, _) = report("scenarios/teaching/breaker-off.toml", 1);
    assert!(html == again, "two renders of one KV seed differ");
    let called: std::collections::BTreeSet<(String, u64)> = tapped
        .messages
        .iter()
        .filter_map(|m| match m.tapped {
            Tapped::Called { id, .. } => Some((m.node.clone(), id)),
            _ => None,
        })
        .collect();
    let served: Vec<(String, u64)> = tapped
        .messages
        .iter()
        .filter_map(|m| match m.tapped {
            Tapped::Served { from, id } => Some((sim::systems::node_at(from.ip())?, id)),
            _ => None,
        })
        .collect();
    assert!(called.len() > 1000 && served.len() > 1000);
    assert!(
        served.iter().all(|s| called.contains(s)),
        "a served call nobody made"
    );
    let data = payload(&html);
    let lanes: Vec<&str> = data["page"]["lanes"]
        .as_array()
        .expect("lanes")
        .iter()
        .map(|l| l["name"].as_str().unwrap_or(""))
        .collect();
    let lane_kind = |i: &serde_json::Value| {
        let name = lanes[i.as_u64().unwrap_or(0) as usize];
        match name.chars().next() {
            Some('n') => "server",
            Some('c') => "client",
            _ => name,
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut lost = 0;
    // [from, to, sent, received, kind, routine, replied, ended, end] (see html/data.rs).
    for arrow in data["page"]["arrows"].as_array().expect("arrows") {
        let kind = arrow[4].as_str().unwrap_or("");
        seen.insert((lane_kind(&arrow[0]), lane_kind(&arrow[1]), kind.to_string()));
        if arrow[3].is_null() || arrow[8] == "timeout" {
            lost += 1;
        }
    }
    for expected in [
        ("client", "lb", "PUT"),
        ("lb", "server", "PUT"),
        ("lb", "server", "HEALTH"),
        ("server", "server", "REPLICATE"),
        ("server", "server", "GOSSIP"),
        ("server", "registry", "REGISTER"),
        ("server", "registry", "HEARTBEAT"),
    ] {
        let expected = (expected.0, expected.1, expected.2.to_string());
        assert!(
            seen.contains(&expected),
            "no {expected:?} arrow in {seen:?}"
        );
    }
    // n3 is paused for 15 s: calls to it go unanswered, and are marked so; the balancer
    // takes it for down, which its lane shows.
    assert!(lost > 10, "{lost} unanswered calls marked");
    let unhealthy = data["page"]["unhealthy"].as_array().expect("unhealthy");
    assert!(
        unhealthy
            .iter()
            .any(|u| lanes[u["lane"].as_u64().unwrap_or(0) as usize] == "n3"),
        "n3 never drawn as down for the balancer: {unhealthy:?}"
    );
}

/// Largest page the biggest scenarios may produce: "a few MB" (issue 13, item 5).
const MAX_PAGE_BYTES: usize = 3_000_000;

/// The largest scenarios (a 60-second 5-node chat at high rate; 64 KV servers) fold into
/// pages under [`MAX_PAGE_BYTES`] — a property of the file, the same for a seed and build —
/// and say what they folded; in a real browser their first render finishes (its time is
/// printed for the README, not asserted).
#[test]
fn the_largest_runs_fold_into_pages_of_a_few_megabytes() {
    for (file, name) in [
        ("scenarios/chat/high-rate-60s.toml", "chat-high-rate-60s"),
        ("scenarios/kv/64-servers.toml", "kv-64-servers"),
    ] {
        let (html, finished) = report(file, 1);
        assert_eq!(finished.report.verdict, "pass", "{file}");
        assert_fetches_nothing(&html);
        assert!(
            html.len() < MAX_PAGE_BYTES,
            "{file}: the page is {} bytes",
            html.len()
        );
        let data = payload(&html);
        let folded = data["page"]["folded"].as_array().expect("folded");
        assert!(!folded.is_empty(), "{file}: nothing folded, nothing said");
        for notice in folded {
            let notice = notice.as_str().unwrap_or("");
            assert!(
                html.contains(&format!("<p class=\"notice\">{notice}")),
                "{file}: the notice is not in the header: {notice}"
            );
        }
        let Some(browser) = chromium() else {
            assert!(std::env::var_os("CI").is_none(), "CI must have chromium");
            continue;
        };
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report");
        std::fs::create_dir_all(&dir).expect("dir");
        let page = dir.join(format!("{name}.html"));
        std::fs::write(&page, &html).expect("write");
        let (dom, log) = browse(
            &browser,
            &format!("file://{}", page.display()),
            &["--dump-dom".to_string()],
        );
        let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
        assert!(console.is_empty(), "{file}: the page logged: {console:?}");
        let drawn = body_attribute(&dom, "data-rendered");
        assert!(
            drawn
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 100),
            "{file}: the first render did not finish ({drawn:?})"
        );
        eprintln!(
            "{name}: {} bytes, {} elements drawn, first render {} ms",
            html.len(),
            drawn.unwrap_or("?"),
            body_attribute(&dom, "data-render-ms").unwrap_or("?")
        );
    }
}
