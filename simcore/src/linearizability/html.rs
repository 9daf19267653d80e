//! A self-contained HTML picture of a check, in the manner of Porcupine's visualizer: per
//! key, every operation as a bar from its call to its return on one lane per client; the
//! linearization found drawn through the bars in order; for a violation, the return no
//! order gets past as a red line (the page's "jump to the first error" link goes there),
//! the blocked operation in red, the others that cannot come next outlined in red, and the
//! smallest window shaded.
//!
//! Rules, as for the run report: one file, nothing loaded from anywhere (no scripts at
//! all; the style sheet is inline and allowed by its hash in a strict Content-Security-
//! Policy), and the same bytes for the same input (no clock, no map iteration order).
//! The time axis is the order of events (file order), not `:time`, which is only shown in
//! each bar's tooltip.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use sha2::{Digest, Sha256};

use super::check::{Outcome, PartFound, Verdict};
use super::history::Operation;

/// What the page shows besides the history: names and lines for the tooltips.
pub struct Page<'a> {
    /// The title (the file checked).
    pub title: &'a str,
    /// The model's name.
    pub model: &'a str,
    /// For each operation, its invoke line and completion line, if known.
    pub lines: &'a [(usize, Option<usize>)],
    /// For each operation, its `:time` values, if known.
    pub times: &'a [(Option<i64>, Option<i64>)],
}

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}\
.verdict-ok{color:#1a7f37}.verdict-bad{color:#cf222e}.verdict-unknown{color:#9a6700}\
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:12px}\
.scroll{overflow-x:auto;border:1px solid #ddd}\
.op{fill:#c8d8f0;stroke:#6a8fc8}.op.done{fill:#b7e1c1;stroke:#3c9a57}\
.op.stuck{fill:#ffe2e0;stroke:#cf222e;stroke-width:2}.op.blocked{fill:#ff8f87;stroke:#a40e26;stroke-width:2}\
.op.open{fill-opacity:.45;stroke-dasharray:4 3}\
.window{fill:#fff3b0;opacity:.6}.lin{fill:none;stroke:#333;stroke-width:1.5}\
.point{fill:#333}.wall{stroke:#cf222e;stroke-width:2}\
.lane{font-size:11px;fill:#555}.label{font-size:10px;fill:#222;pointer-events:none}\
.legend span{display:inline-block;padding:0 .5em;margin-right:.5em;border:1px solid #999}\
.l-done{background:#b7e1c1}.l-op{background:#c8d8f0}.l-blocked{background:#ff8f87}\
.l-stuck{background:#ffe2e0}.l-window{background:#fff3b0}\
";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for position in 0..4 {
            if position <= chunk.len() {
                out.push(ALPHABET[(word >> (18 - 6 * position) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const LANE_HEIGHT: usize = 26;
const MARGIN_LEFT: usize = 90;

/// Renders the page. `parts` and `outcome` come from [`check_parts`](super::check_parts);
/// a violation's evidence should carry its window ([`smallest_window`](super::smallest_window)).
pub fn render<I: fmt::Display, O: fmt::Display>(
    page: &Page<'_>,
    history: &[Operation<I, O>],
    outcome: &Outcome,
    parts: &[PartFound],
) -> String {
    let mut html = String::new();
    let hash = base64(&Sha256::digest(STYLE.as_bytes()));
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'sha256-{hash}'; img-src 'none'; base-uri 'none'; form-action 'none'\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(page.title)
    );
    let (class, headline) = match &outcome.verdict {
        Verdict::Linearizable => ("verdict-ok", "linearizable".to_string()),
        Verdict::NotLinearizable(evidence) => (
            "verdict-bad",
            match &evidence.key {
                Some(key) => format!("NOT linearizable (key {key:?})"),
                None => "NOT linearizable".to_string(),
            },
        ),
        Verdict::Unknown { reason } => ("verdict-unknown", format!("unknown: {reason}")),
    };
    let _ = writeln!(
        html,
        "<h1>{}</h1>\n<p>model <b>{}</b>, {} operations, {} part(s): \
         <b class=\"{class}\">{}</b></p>",
        escape(page.title),
        escape(page.model),
        history.len(),
        parts.len(),
        escape(&headline)
    );
    let evidence = match &outcome.verdict {
        Verdict::NotLinearizable(evidence) => Some(evidence.as_ref()),
        _ => None,
    };
    if let Some(evidence) = evidence {
        let _ = writeln!(
            html,
            "<p><a href=\"#first-error\">Jump to the first error</a></p>\n<pre>{}</pre>",
            escape(&format!("{evidence:#}"))
        );
    }
    html.push_str(
        "<p class=\"legend\"><span class=\"l-done\">in the order found</span>\
         <span class=\"l-op\">not placed</span><span class=\"l-blocked\">returns where no \
         order gets past</span><span class=\"l-stuck\">cannot come next</span>\
         <span class=\"l-window\">smallest window</span> dashed: never returned; the line \
         joins the operations in the order found.</p>\n",
    );
    // The failing part first, then the others in key order.
    let mut order: Vec<&PartFound> = parts.iter().collect();
    order.sort_by_key(|part| {
        (
            evidence.is_none_or(|evidence| part.key != evidence.key),
            part.key.clone(),
        )
    });
    for part in order {
        let failing = evidence.filter(|evidence| part.key == evidence.key);
        part_svg(&mut html, page, history, part, failing);
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn part_svg<I: fmt::Display, O: fmt::Display>(
    html: &mut String,
    page: &Page<'_>,
    history: &[Operation<I, O>],
    part: &PartFound,
    failing: Option<&super::evidence::Evidence>,
) {
    let status = match part.linearizable {
        Some(true) => "linearizable",
        Some(false) => "NOT linearizable",
        None => "not decided",
    };
    let title = match &part.key {
        Some(key) => format!("key {key:?}: {status}"),
        None => status.to_string(),
    };
    let _ = writeln!(
        html,
        "<h2>{} <small>({} operations)</small></h2>",
        escape(&title),
        part.operations.len()
    );
    // The part's event times, ranked: the x axis.
    let mut times: BTreeSet<u64> = BTreeSet::new();
    for &index in &part.operations {
        times.insert(history[index].call);
        if let Some(ret) = history[index].ret {
            times.insert(ret);
        }
    }
    let rank: BTreeMap<u64, usize> = times.iter().enumerate().map(|(r, &t)| (t, r)).collect();
    let step = match times.len() {
        0..=100 => 24,
        101..=1000 => 10,
        _ => 4,
    };
    let ranks = times.len() + 2;
    let x = |time: u64| MARGIN_LEFT + step * (1 + rank.get(&time).copied().unwrap_or(ranks - 2));
    let x_end = MARGIN_LEFT + step * ranks;
    let clients: BTreeSet<u64> = part.operations.iter().map(|&i| history[i].client).collect();
    let lane: BTreeMap<u64, usize> = clients.iter().enumerate().map(|(l, &c)| (c, l)).collect();
    let height = LANE_HEIGHT * (clients.len() + 1);
    let width = x_end + 20;
    let _ = writeln!(
        html,
        "<div class=\"scroll\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for (&client, &row) in &lane {
        let _ = writeln!(
            html,
            "<text class=\"lane\" x=\"4\" y=\"{}\">client {client}</text>",
            row * LANE_HEIGHT + 17
        );
    }
    let blocked = failing.map(|evidence| evidence.blocked.index);
    let stuck: BTreeSet<usize> = failing
        .map(|evidence| {
            evidence
                .stuck
                .iter()
                .map(|stuck| stuck.operation.index)
                .collect()
        })
        .unwrap_or_default();
    if let Some(window) = failing.and_then(|evidence| evidence.window.as_ref()) {
        if let (Some(first), Some(wall)) = (window.operations.first(), blocked) {
            let start = x(window.start.max(first.call.min(window.start)));
            let end = history[wall].ret.map_or(x_end, &x);
            let _ = writeln!(
                html,
                "<rect class=\"window\" x=\"{start}\" y=\"0\" width=\"{}\" height=\"{height}\"><title>smallest window: {} operations</title></rect>",
                end.saturating_sub(start).max(2),
                window.operations.len()
            );
        }
    }
    let position: BTreeMap<usize, usize> = part
        .order
        .iter()
        .enumerate()
        .map(|(p, &i)| (i, p))
        .collect();
    for &index in &part.operations {
        let operation = &history[index];
        let row = lane.get(&operation.client).copied().unwrap_or(0);
        let left = x(operation.call);
        let right = operation.ret.map_or(x_end, &x);
        let mut class = String::from("op");
        if position.contains_key(&index) {
            class.push_str(" done");
        }
        if Some(index) == blocked {
            class.push_str(" blocked");
        } else if stuck.contains(&index) {
            class.push_str(" stuck");
        }
        if operation.ret.is_none() {
            class.push_str(" open");
        }
        let output = operation
            .output
            .as_ref()
            .map_or_else(|| "?".to_string(), ToString::to_string);
        let mut tip = format!(
            "#{index} client {}: {} → {output}",
            operation.client, operation.input
        );
        if let Some((call_line, ret_line)) = page.lines.get(index) {
            let _ = write!(tip, "; line {call_line}");
            if let Some(ret_line) = ret_line {
                let _ = write!(tip, "..{ret_line}");
            }
        }
        if let Some((Some(call_time), ret_time)) = page.times.get(index) {
            let _ = write!(tip, "; :time {call_time}");
            if let Some(ret_time) = ret_time {
                let _ = write!(tip, "..{ret_time}");
            }
        }
        if let Some(p) = position.get(&index) {
            let _ = write!(tip, "; #{} in the order found", p + 1);
        }
        let _ = writeln!(
            html,
            "<rect class=\"{class}\" x=\"{left}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"><title>{}</title></rect>",
            row * LANE_HEIGHT + 4,
            right.saturating_sub(left).max(3),
            LANE_HEIGHT - 8,
            escape(&tip)
        );
        if step >= 10 {
            let label = format!("{}", operation.input);
            let _ = writeln!(
                html,
                "<text class=\"label\" x=\"{}\" y=\"{}\">{}</text>",
                left + 2,
                row * LANE_HEIGHT + 18,
                escape(
                    &label
                        .chars()
                        .take((right.saturating_sub(left)) / 6)
                        .collect::<String>()
                )
            );
        }
    }
    // The order found: a point inside each operation's bar, never left of the previous
    // point, joined by a line.
    if !part.order.is_empty() {
        let mut points = String::new();
        let mut last = 0;
        for &index in &part.order {
            let operation = &history[index];
            let left = x(operation.call);
            let right = operation.ret.map_or(x_end, &x);
            let point = last.max(left + 2).min(right.saturating_sub(1).max(left));
            last = point;
            let row = lane.get(&operation.client).copied().unwrap_or(0);
            let _ = write!(points, "{point},{} ", row * LANE_HEIGHT + LANE_HEIGHT / 2);
        }
        let _ = writeln!(
            html,
            "<polyline class=\"lin\" points=\"{}\"/>",
            points.trim_end()
        );
    }
    if let Some(wall) = blocked {
        let at = history[wall].ret.map_or(x_end, &x);
        let _ = writeln!(
            html,
            "<line id=\"first-error\" class=\"wall\" x1=\"{at}\" y1=\"0\" x2=\"{at}\" y2=\"{height}\"><title>no valid order gets past this return (#{wall})</title></line>"
        );
    }
    html.push_str("</svg></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
