//! `sim run --html FILE`: one self-contained page per run that a person would rather look
//! at than read.
//!
//! The page is a single file: the CSS, the script and the run's data are inlined, a strict
//! Content-Security-Policy allows only that script and that style (by hash) and nothing
//! from the network, so it opens from disk and works offline. Its bytes depend only on the
//! run (same seed and build ⇒ same file). The header and the check panels are plain HTML,
//! readable without the script; the script draws the time axis: a lane per server, service
//! and client, server roles and terms, a ribbon where two servers acted as leader, fault
//! bands, client operations as bars, node events as ticks, and highlights the entries a
//! violation panel names. `data.rs` computes what is drawn, `explain.rs` the panels.

mod data;
mod explain;

use crate::history::{fmt_time, Entry, WireEntry};
use crate::report::RunReport;
use crate::scenario::Scenario;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The CSP source expression that allows exactly `text` inline.
fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", base64(&Sha256::digest(text.as_bytes())))
}

/// JSON safe inside a `<script type="application/json">` element.
fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "{}".into())
        .replace("</", "<\\/")
}

/// The page of one run: its report, its history, and the peer messages tapped during it
/// (empty: no arrows).
pub fn render(
    scenario: &Scenario,
    report: &RunReport,
    history: &[Entry],
    messages: &[WireEntry],
) -> String {
    let end = (scenario.duration.0.as_nanos() as u64).max(history.last().map_or(1, |e| e.t));
    let cited = report
        .checks
        .iter()
        .flat_map(|c| c.evidence.iter().map(|e| e.entry))
        .collect();
    let page = data::page(history, messages, end, &cited);
    let panels = explain::panels(&report.checks, history, &page);
    let payload = serde_json::json!({ "page": page, "panels": panels });
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; img-src data:; base-uri 'none'; \
         form-action 'none'",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    );
    let mut html = String::new();
    let title = format!(
        "{} seed {} — {}",
        report.scenario, report.seed, report.verdict
    );
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&csp),
        escape(&title)
    );
    header(&mut html, scenario, report, &page);
    checks_section(&mut html, &panels);
    html.push_str(
        "<section id=\"view\">\n<h2>What happened</h2>\n<div id=\"controls\"></div>\n\
         <div id=\"chart\" tabindex=\"0\" aria-label=\"run diagram\"></div>\n\
         <div id=\"details\" aria-live=\"polite\">Hover over anything for details; click an \
         event to select it. Keys: + and - zoom, arrows pan, 0 shows the whole run, n and p \
         step through highlighted events.</div>\n</section>\n",
    );
    faults_section(&mut html, &page);
    let _ = write!(
        html,
        "<script type=\"application/json\" id=\"data\">{}</script>\n<script>{SCRIPT}</script>\n\
         </body>\n</html>\n",
        script_json(&payload)
    );
    html
}

fn header(html: &mut String, scenario: &Scenario, report: &RunReport, page: &data::Page) {
    let h = &report.happened;
    let class = if report.verdict == "pass" {
        "pass"
    } else {
        "fail"
    };
    let _ = write!(
        html,
        "<header>\n<h1>{} <span class=\"verdict {class}\">verdict {}</span></h1>\n",
        escape(&report.scenario),
        escape(&report.verdict.to_uppercase())
    );
    if let Some(description) = &scenario.description {
        let _ = writeln!(html, "<p class=\"description\">{}</p>", escape(description));
    }
    let ops: Vec<String> = h.ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let delivered: Vec<String> = h
        .delivered
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let facts = [
        ("system", format!("{:?}", scenario.system).to_lowercase()),
        ("servers", scenario.server_count().to_string()),
        ("seed", report.seed.to_string()),
        ("simulated", fmt_time(report.sim_ms * 1_000_000)),
        ("expect", report.expect.clone()),
        ("outcome", report.outcome.clone()),
        ("why", report.reason.clone()),
        ("elections started", h.elections_started.to_string()),
        ("leaders by term", h.leaders.join(" ")),
        ("client operations", ops.join(", ")),
        ("delivered", delivered.join(", ")),
        (
            "faults",
            format!(
                "{} applied, {} skipped",
                h.faults_applied.len(),
                h.faults_skipped.len()
            ),
        ),
        ("node errors", h.node_errors.join("; ")),
        ("trace hash", report.trace_hash.clone()),
    ];
    html.push_str("<table class=\"facts\">\n");
    for (name, value) in facts.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(
            html,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    html.push_str("</table>\n");
    let _ = writeln!(
        html,
        "<p>Reproduce: <code id=\"reproduce\">{}</code></p>",
        escape(&report.reproduce)
    );
    for notice in &page.folded {
        let _ = writeln!(html, "<p class=\"notice\">{}</p>", escape(notice));
    }
    html.push_str("</header>\n");
}

fn checks_section(html: &mut String, panels: &[explain::Panel]) {
    html.push_str("<section id=\"checks\">\n<h2>Checks</h2>\n");
    for (i, panel) in panels.iter().enumerate() {
        let _ = write!(
            html,
            "<div class=\"panel {}\" id=\"panel-{i}\">\n<h3>{} <span class=\"status\">{}</span></h3>\n\
             <p class=\"detail\">{}</p>\n",
            escape(&panel.status),
            escape(&panel.kind),
            escape(&panel.status),
            escape(&panel.detail)
        );
        if !panel.story.is_empty() {
            html.push_str("<ol class=\"story\">\n");
            for line in &panel.story {
                let _ = writeln!(html, "<li>{}</li>", escape(line));
            }
            html.push_str("</ol>\n");
        }
        if !panel.entries.is_empty() {
            let _ = writeln!(
                html,
                "<p><a class=\"jump\" href=\"#jump-{i}\">Show the {} events involved</a></p>",
                panel.entries.len()
            );
        }
        html.push_str("</div>\n");
    }
    html.push_str("</section>\n");
}

fn faults_section(html: &mut String, page: &data::Page) {
    html.push_str("<section id=\"faults\">\n<h2>Fault schedule</h2>\n");
    if page.bands.is_empty() {
        html.push_str("<p>No faults.</p>\n");
    } else {
        html.push_str("<ol>\n");
        for band in &page.bands {
            let _ = writeln!(html, "<li>{}</li>", escape(&band.text));
        }
        html.push_str("</ol>\n");
    }
    html.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_escaping_are_exact() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(script_json(&"</script>"), "\"<\\/script>\"");
    }
}
