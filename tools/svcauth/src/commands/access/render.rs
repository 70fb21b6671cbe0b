//! How `svcauth access` prints: tables that fit 100 columns, JSON, CSV, mermaid.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use serde::Serialize;
use serde_json::json;

use super::cli::{Format, Target};
use super::engine::{Access, Answer, ApiName, Via, OPEN_RULE};
use super::{Change, Explained};

/// Widest table line.
const WIDTH: usize = 100;
const SERVICE_W: usize = 22;
const API_W: usize = 16;

fn mark(a: Answer) -> &'static str {
    match a {
        Answer::Allowed => "yes",
        Answer::Refused => "-",
        Answer::Unknown => "?",
    }
}

fn word(a: Answer) -> &'static str {
    match a {
        Answer::Allowed => "allowed",
        Answer::Refused => "refused",
        Answer::Unknown => "unknown",
    }
}

/// `text` cut to `w` characters, the cut marked with `~`.
fn fit(text: &str, w: usize) -> String {
    if text.chars().count() <= w {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(w.saturating_sub(1)).collect();
    s.push('~');
    s
}

/// Writes the cells of the services and APIs asked (all when empty) in `format`.
pub fn matrix(
    access: &Access,
    services: &[String],
    apis: &[String],
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Json => json_matrix(access, services, apis, out),
        Format::Csv => csv_matrix(access, services, apis, out),
        Format::Table => table(access, services, apis, out),
        Format::Mermaid => mermaid(access, services, apis, out),
    }
}

/// One cell as JSON.
#[derive(Serialize)]
struct JsonCell<'a> {
    service: &'a str,
    api: &'a str,
    route: &'a str,
    via: &'static str,
    allowed: Option<bool>,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
}

fn apis_json(access: &Access) -> serde_json::Value {
    let apis: Vec<serde_json::Value> = access
        .apis
        .iter()
        .map(|a| {
            let (registered, how) = match &a.name {
                ApiName::Registered { how, .. } => (true, how.as_str()),
                ApiName::Unregistered { why } => (false, why.as_str()),
            };
            json!({
                "api": a.label,
                "logicalId": a.logical_id,
                "apiId": a.api_id,
                "registered": registered,
                "name": how,
                "routes": a.routes.iter().map(|r| r.route.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::Value::Array(apis)
}

/// `{"apis":[...],"notes":[...],"cells":[...]}`, the cells written as they are decided.
fn json_matrix(
    access: &Access,
    services: &[String],
    apis: &[String],
    out: &mut dyn Write,
) -> io::Result<()> {
    write!(out, "{{\"apis\":")?;
    serde_json::to_writer(&mut *out, &apis_json(access))?;
    write!(out, ",\"notes\":")?;
    serde_json::to_writer(&mut *out, &access.notes)?;
    write!(out, ",\"cells\":[")?;
    let mut first = true;
    let mut result = Ok(());
    access.for_each_cell(services, apis, |c| {
        if result.is_err() {
            return;
        }
        let sep = if first { "\n" } else { ",\n" };
        first = false;
        result = out.write_all(sep.as_bytes()).and_then(|()| {
            serde_json::to_writer(
                &mut *out,
                &JsonCell {
                    service: c.service,
                    api: c.api,
                    route: c.route,
                    via: c.via.name(),
                    allowed: c.answer.allowed(),
                    reason: &c.reason,
                    rule: c.rule.as_deref(),
                },
            )
            .map_err(io::Error::from)
        });
    });
    result?;
    writeln!(out, "\n]}}")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_matrix(
    access: &Access,
    services: &[String],
    apis: &[String],
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "service,api,route,via,allowed,reason,rule")?;
    let mut result = Ok(());
    access.for_each_cell(services, apis, |c| {
        if result.is_err() {
            return;
        }
        let allowed = match c.answer.allowed() {
            Some(true) => "true",
            Some(false) => "false",
            None => "unknown",
        };
        result = writeln!(
            out,
            "{},{},{},{},{allowed},{},{}",
            csv_field(c.service),
            csv_field(c.api),
            csv_field(c.route),
            c.via.name(),
            csv_field(&c.reason),
            csv_field(c.rule.as_deref().unwrap_or(""))
        );
    });
    result
}

/// One line per (service, API, route), a column per proof.
fn table(
    access: &Access,
    services: &[String],
    apis: &[String],
    out: &mut dyn Write,
) -> io::Result<()> {
    // SERVICE API ROUTE API-KEY IAM TOKEN, two spaces apart.
    let marks = 7 + 2 + 3 + 2 + 5;
    let route_w = WIDTH - SERVICE_W - API_W - marks - 3 * 2;
    let line = |s: &str, a: &str, r: &str, k: &str, i: &str, t: &str| {
        let text = format!(
            "{:<sw$}  {:<aw$}  {:<rw$}  {:<7}  {:<3}  {}",
            fit(s, SERVICE_W),
            fit(a, API_W),
            fit(r, route_w),
            k,
            i,
            t,
            sw = SERVICE_W,
            aw = API_W,
            rw = route_w
        );
        text.trim_end().to_owned()
    };
    writeln!(
        out,
        "{}",
        line("SERVICE", "API", "ROUTE", "API-KEY", "IAM", "TOKEN")
    )?;
    // The cells of a row come in proof order, token last.
    let mut marks = [""; 3];
    let mut result = Ok(());
    let mut unknown = false;
    access.for_each_cell(services, apis, |c| {
        unknown |= c.answer == Answer::Unknown;
        marks[c.via as usize] = mark(c.answer);
        if c.via != Via::Token || result.is_err() {
            return;
        }
        result = writeln!(
            out,
            "{}",
            line(c.service, c.api, c.route, marks[0], marks[1], marks[2])
        );
        marks = [""; 3];
    });
    result?;
    writeln!(out)?;
    writeln!(
        out,
        "yes: allowed, -: refused{}",
        if unknown {
            ", ?: cannot be decided"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "why: svcauth access explain --service S --api A --route 'METHOD /path'"
    )?;
    for n in &access.notes {
        writeln!(out, "note: {}", wrap(n, WIDTH - 6).join("\n      "))?;
    }
    Ok(())
}

/// `text` in lines of at most `w` characters, broken at spaces.
fn wrap(text: &str, w: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > w {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// A mermaid node id: letters, digits and `_` only.
fn node_id(prefix: &str, name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{id}")
}

/// Routes of one (service, API) per proof: (allowed, unknown, all).
type Tally = (usize, usize, usize);

/// Services on the left, APIs on the right; an edge for each proof that allows some
/// route (`api-key 3/4` routes), dashed where it cannot be decided.
fn mermaid(
    access: &Access,
    services: &[String],
    apis: &[String],
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut edges: BTreeMap<(String, String), BTreeMap<Via, Tally>> = BTreeMap::new();
    let mut service_names = Vec::new();
    let mut api_names = Vec::new();
    // Routes with no authorization are open to everyone: counted on the API, not on
    // every service's edges.
    let mut open: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    access.for_each_cell(services, apis, |c| {
        if !service_names.iter().any(|s| s == c.service) {
            service_names.push(c.service.to_owned());
        }
        if !api_names.iter().any(|a| a == c.api) {
            api_names.push(c.api.to_owned());
        }
        if c.rule.as_deref() == Some(OPEN_RULE) {
            open.entry(c.api.to_owned())
                .or_default()
                .insert(c.route.to_owned());
            return;
        }
        let e = edges
            .entry((c.service.to_owned(), c.api.to_owned()))
            .or_default()
            .entry(c.via)
            .or_default();
        e.2 += 1;
        match c.answer {
            Answer::Allowed => e.0 += 1,
            Answer::Unknown => e.1 += 1,
            Answer::Refused => {}
        }
    });
    writeln!(out, "flowchart LR")?;
    for s in &service_names {
        writeln!(out, "  {}[\"{s}\"]", node_id("s", s))?;
    }
    for a in &api_names {
        let note = match open.get(a).map(BTreeSet::len) {
            Some(1) => "<br/>1 open route".to_owned(),
            Some(n) => format!("<br/>{n} open routes"),
            None => String::new(),
        };
        writeln!(out, "  {}[(\"{a}{note}\")]", node_id("a", a))?;
    }
    for ((s, a), vias) in &edges {
        let allowed: Vec<String> = vias
            .iter()
            .filter(|(_, (n, _, _))| *n > 0)
            .map(|(v, (n, _, total))| format!("{} {n}/{total}", v.name()))
            .collect();
        let unknown: Vec<String> = vias
            .iter()
            .filter(|(_, (n, u, _))| *n == 0 && *u > 0)
            .map(|(v, (_, u, total))| format!("{} ? {u}/{total}", v.name()))
            .collect();
        if !allowed.is_empty() {
            writeln!(
                out,
                "  {} -->|\"{}\"| {}",
                node_id("s", s),
                allowed.join(", "),
                node_id("a", a)
            )?;
        }
        if !unknown.is_empty() {
            writeln!(
                out,
                "  {} -.->|\"{}\"| {}",
                node_id("s", s),
                unknown.join(", "),
                node_id("a", a)
            )?;
        }
    }
    Ok(())
}

fn api_title(access: &Access, ai: usize) -> String {
    let a = &access.apis[ai];
    match &a.logical_id {
        Some(l) if *l != a.label => format!("{} ({l})", a.label),
        _ => a.label.clone(),
    }
}

pub(super) fn explain_text(access: &Access, si: usize, explained: &[Explained]) -> String {
    let service = &access.services[si].name;
    let mut out = String::new();
    for e in explained {
        let a = &access.apis[e.api];
        let route = e
            .route
            .map(|ri| a.routes[ri].route.as_str())
            .filter(|r| *r != e.call)
            .map(|r| format!(" (route {r})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{service} -> {} {}{route}\n",
            api_title(access, e.api),
            e.call
        ));
        for (via, c) in &e.cells {
            out.push_str(&format!(
                "  {:<8} {:<8} {}\n",
                via.name(),
                word(c.answer),
                c.reason
            ));
            if let Some(rule) = &c.rule {
                out.push_str(&format!("  {:<8} {:<8} decided by {rule}\n", "", ""));
            }
        }
        let name = match &a.name {
            ApiName::Registered { how, .. } => how.clone(),
            ApiName::Unregistered { why } => why.clone(),
        };
        out.push_str(&format!("  API name: {name}\n"));
        out.push_str(&format!("  tokens:   {}\n", access.token_summary(si)));
    }
    let allowed = explained
        .iter()
        .flat_map(|e| e.cells.iter())
        .any(|(_, c)| c.answer == Answer::Allowed);
    out.push_str(if allowed {
        "answer: allowed\n"
    } else {
        "answer: not allowed by any proof\n"
    });
    out
}

pub(super) fn explain_json(access: &Access, si: usize, explained: &[Explained]) -> String {
    let list: Vec<serde_json::Value> = explained
        .iter()
        .map(|e| {
            let a = &access.apis[e.api];
            json!({
                "service": access.services[si].name,
                "api": a.label,
                "logicalId": a.logical_id,
                "call": e.call,
                "route": e.route.map(|ri| a.routes[ri].route.clone()),
                "answers": e.cells.iter().map(|(via, c)| json!({
                    "via": via.name(),
                    "allowed": c.answer.allowed(),
                    "reason": c.reason,
                    "rule": c.rule,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let allowed = explained
        .iter()
        .flat_map(|e| e.cells.iter())
        .any(|(_, c)| c.answer == Answer::Allowed);
    serde_json::to_string_pretty(&json!({"allowed": allowed, "apis": list})).unwrap_or_default()
        + "\n"
}

fn target_name(to: Target) -> &'static str {
    match to {
        Target::Iam => "iam",
        Target::Token => "token",
    }
}

pub(super) fn diff_text(changes: &[Change], to: Target) -> String {
    if changes.is_empty() {
        return format!(
            "no call would change if the APIs moved to {}\n",
            target_name(to)
        );
    }
    let lose = changes.iter().filter(|c| c.now == Answer::Allowed).count();
    let mut out = format!(
        "{} calls would change if the APIs moved to {} ({lose} would lose access):\n",
        changes.len(),
        target_name(to)
    );
    for c in changes {
        let now_by: Vec<&str> = c.now_by.iter().map(|v| v.name()).collect();
        let now_by = if c.now == Answer::Refused {
            String::new()
        } else {
            format!(" ({})", now_by.join(", "))
        };
        let on = if c.after_api == c.api {
            String::new()
        } else {
            format!(" on {}", c.after_api)
        };
        out.push_str(&format!(
            "{} {} {}: now {}{now_by}, with {}{on} {}: {}\n",
            c.service,
            c.api,
            c.route,
            word(c.now),
            target_name(to),
            word(c.after),
            c.after_reason
        ));
    }
    out
}

pub(super) fn diff_json(changes: &[Change], to: Target) -> String {
    let list: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| {
            json!({
                "service": c.service,
                "api": c.api,
                "route": c.route,
                "now": {"allowed": c.now.allowed(), "via": c.now_by.iter().map(|v| v.name()).collect::<Vec<_>>()},
                "after": {"allowed": c.after.allowed(), "via": target_name(to), "api": c.after_api, "reason": c.after_reason},
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({"to": target_name(to), "changes": list}))
        .unwrap_or_default()
        + "\n"
}
