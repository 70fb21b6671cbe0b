//! `svcauth access matrix | explain | check | diff`: who may call which route of which
//! API, by which proof, and why. The answers are decided in [`engine`] from plain
//! inputs; this module reads them (templates, store, registry) and prints.

pub mod cli;
pub mod engine;
pub(crate) mod render;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use sam_template::template::{load_all, Environment, RoleNames};
use sam_template::yaml::{self, Node};

use self::cli::{DiffArgs, ExpectArgs, ExplainArgs, MatrixArgs, SourceArgs, Target};
use self::engine::{Access, Answer, Cell, Registry, Sources, Via};
use crate::error::Error;
use crate::store::Store;
use crate::{Ctx, Outcome};

/// Runs one `svcauth access` command.
pub async fn run(ctx: &mut Ctx<'_, '_>, cmd: &cli::AccessCommand) -> Result<Outcome, Error> {
    match cmd {
        cli::AccessCommand::Matrix(args) => matrix(ctx, args).await,
        cli::AccessCommand::Explain(args) => explain(ctx, args).await,
        cli::AccessCommand::Check(args) => check(ctx, args).await,
        cli::AccessCommand::Diff(args) => diff(ctx, args).await,
    }
}

/// Longest expectations file read.
const MAX_EXPECTATIONS_BYTES: u64 = 4 << 20;

pub async fn matrix(ctx: &mut Ctx<'_, '_>, args: &MatrixArgs) -> Result<Outcome, Error> {
    let access = load(ctx, &args.source).await?;
    check_names(&access, &args.service, &args.api)?;
    let mut out = std::io::BufWriter::new(&mut *ctx.io.stdout);
    render::matrix(&access, &args.service, &args.api, args.format, &mut out)
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    Ok(Outcome::Done)
}

pub async fn explain(ctx: &mut Ctx<'_, '_>, args: &ExplainArgs) -> Result<Outcome, Error> {
    let access = load(ctx, &args.source).await?;
    let (method, path) = parse_route(&args.route)?;
    let si = access
        .service(&args.service)
        .ok_or_else(|| unknown_service(&access, &args.service))?;
    let apis = access.apis_named(&args.api);
    if apis.is_empty() {
        return Err(unknown_api(&access, &args.api));
    }
    let mut explained = Vec::new();
    for ai in apis {
        explained.push(explain_on(&access, si, ai, &method, &path));
    }
    let allowed = explained
        .iter()
        .any(|e| e.cells.iter().any(|(_, c)| c.answer == Answer::Allowed));
    let text = if args.json {
        render::explain_json(&access, si, &explained)
    } else {
        render::explain_text(&access, si, &explained)
    };
    print(ctx, &text)?;
    Ok(if allowed {
        Outcome::Done
    } else {
        Outcome::NotAccepted
    })
}

/// One API's answers for a call.
pub(crate) struct Explained {
    pub api: usize,
    /// The route the call goes to, when the API has one.
    pub route: Option<usize>,
    pub call: String,
    pub cells: Vec<(Via, Cell<'static>)>,
}

fn explain_on(access: &Access, si: usize, ai: usize, method: &str, path: &str) -> Explained {
    let call = format!("{method} {path}");
    let Some(ri) = access.route_of(ai, method, path) else {
        let reason = format!(
            "{} has no route {call}: API Gateway answers 403 (Missing Authentication Token)",
            access.apis[ai].label
        );
        let cells = Via::ALL
            .into_iter()
            .map(|via| {
                (
                    via,
                    Cell {
                        service: "",
                        api: "",
                        route: "",
                        via,
                        answer: Answer::Refused,
                        reason: reason.clone().into(),
                        rule: None,
                    },
                )
            })
            .collect();
        return Explained {
            api: ai,
            route: None,
            call,
            cells,
        };
    };
    let concrete = access.apis[ai].routes[ri].route != call;
    let cells = Via::ALL
        .into_iter()
        .map(|via| {
            let c = if concrete {
                access.call_cell(si, ai, ri, method, path, via)
            } else {
                let c = access.cell(si, ai, ri, via);
                Cell {
                    service: "",
                    api: "",
                    route: "",
                    via,
                    answer: c.answer,
                    reason: c.reason.into_owned().into(),
                    rule: c.rule.map(|r| r.into_owned().into()),
                }
            };
            (via, c)
        })
        .collect();
    Explained {
        api: ai,
        route: Some(ri),
        call,
        cells,
    }
}

/// One expectation of a `check` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expectation {
    pub service: String,
    pub api: String,
    pub route: String,
    pub allowed: bool,
    pub via: Option<Via>,
}

pub async fn check(ctx: &mut Ctx<'_, '_>, args: &ExpectArgs) -> Result<Outcome, Error> {
    let expectations = read_expectations(&args.expectations)?;
    let access = load(ctx, &args.source).await?;
    let mut violations = Vec::new();
    for (i, e) in expectations.iter().enumerate() {
        if let Some(v) = violation(&access, e) {
            violations.push(format!(
                "{}: {} {} {}{}: expected {}, {v}",
                i + 1,
                e.service,
                e.api,
                e.route,
                e.via
                    .map(|v| format!(" via {}", v.name()))
                    .unwrap_or_default(),
                if e.allowed { "allowed" } else { "refused" },
            ));
        }
    }
    let text = if violations.is_empty() {
        format!("all {} expectations hold\n", expectations.len())
    } else {
        format!(
            "{} of {} expectations do not hold:\n{}\n",
            violations.len(),
            expectations.len(),
            violations.join("\n")
        )
    };
    print(ctx, &text)?;
    Ok(if violations.is_empty() {
        Outcome::Done
    } else {
        Outcome::NotAccepted
    })
}

/// Why an expectation does not hold, or `None` when it does.
fn violation(access: &Access, e: &Expectation) -> Option<String> {
    let Some(si) = access.service(&e.service) else {
        return Some(format!(
            "no service {} in the store or the role maps",
            e.service
        ));
    };
    let apis = access.apis_named(&e.api);
    if apis.is_empty() {
        return Some(format!("no API {} in the templates or the grants", e.api));
    }
    let (method, path) = match parse_route(&e.route) {
        Ok(r) => r,
        Err(err) => return Some(err.to_string()),
    };
    let mut answers = Vec::new();
    for ai in apis {
        let ex = explain_on(access, si, ai, &method, &path);
        for (via, c) in ex.cells {
            if e.via.is_none_or(|v| v == via) {
                answers.push((via, access.apis[ai].label.clone(), c));
            }
        }
    }
    let got = if answers.iter().any(|(_, _, c)| c.answer == Answer::Allowed) {
        Answer::Allowed
    } else if answers.iter().all(|(_, _, c)| c.answer == Answer::Refused) {
        Answer::Refused
    } else {
        Answer::Unknown
    };
    let expected = if e.allowed {
        Answer::Allowed
    } else {
        Answer::Refused
    };
    if got == expected {
        return None;
    }
    let relevant: Vec<String> = answers
        .iter()
        .filter(|(_, _, c)| match got {
            Answer::Allowed => c.answer == Answer::Allowed,
            Answer::Unknown => c.answer == Answer::Unknown,
            Answer::Refused => true,
        })
        .map(|(via, api, c)| format!("{} on {api}: {}", via.name(), c.reason))
        .collect();
    Some(format!(
        "{}: {}",
        match got {
            Answer::Allowed => "but it is allowed",
            Answer::Refused => "but it is refused",
            Answer::Unknown => "but it cannot be decided",
        },
        relevant.join("; ")
    ))
}

/// Reads a YAML or JSON list of expectations.
fn read_expectations(path: &Path) -> Result<Vec<Expectation>, Error> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::NotFound(format!("cannot read the expectations file {shown}: {e}")))?;
    if meta.len() > MAX_EXPECTATIONS_BYTES {
        return Err(Error::Usage(format!(
            "{shown} is larger than {MAX_EXPECTATIONS_BYTES} bytes: that is not an expectations file"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read the expectations file {shown}: {e}")))?;
    parse_expectations(&text).map_err(|e| Error::Usage(format!("{shown}: {e}")))
}

const EXPECTATION_SHAPE: &str =
    "each expectation is {service, api, route, allowed: true|false, via?: api-key|iam|token}";

pub(crate) fn parse_expectations(text: &str) -> Result<Vec<Expectation>, String> {
    let root = yaml::parse(text).map_err(|e| e.to_string())?;
    let Node::Seq { items, .. } = &root else {
        return Err(format!("not a list: {EXPECTATION_SHAPE}"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("expectation {}", i + 1);
        let field = |k: &str| item.get(k).and_then(Node::as_str);
        let known = ["service", "api", "route", "allowed", "via"];
        if let Some((k, _)) = item
            .entries()
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            return Err(format!("{at}: unknown field {k:?}; {EXPECTATION_SHAPE}"));
        }
        let need = |k: &str| {
            field(k)
                .map(str::to_owned)
                .ok_or_else(|| format!("{at}: no {k}; {EXPECTATION_SHAPE}"))
        };
        let allowed = match field("allowed") {
            Some("true") => true,
            Some("false") => false,
            _ => return Err(format!("{at}: allowed must be true or false")),
        };
        let via = match field("via") {
            None => None,
            Some(v) => Some(
                Via::parse(v)
                    .ok_or_else(|| format!("{at}: via {v:?} is not api-key, iam or token"))?,
            ),
        };
        out.push(Expectation {
            service: need("service")?,
            api: need("api")?,
            route: need("route")?,
            allowed,
            via,
        });
    }
    Ok(out)
}

pub async fn diff(ctx: &mut Ctx<'_, '_>, args: &DiffArgs) -> Result<Outcome, Error> {
    let access = load(ctx, &args.source).await?;
    check_names(&access, &args.service, &args.api)?;
    let changes = changes(&access, args.to, &args.service, &args.api);
    let text = if args.json {
        render::diff_json(&changes, args.to)
    } else {
        render::diff_text(&changes, args.to)
    };
    print(ctx, &text)?;
    Ok(Outcome::Done)
}

/// A call whose answer would change.
pub(crate) struct Change {
    pub service: String,
    pub api: String,
    pub route: String,
    /// The best answer now, and the proofs giving it.
    pub now: Answer,
    pub now_by: Vec<Via>,
    pub after: Answer,
    /// Where the target answer was decided (another API serving the same route).
    pub after_api: String,
    pub after_reason: String,
}

/// Every call (of the services and APIs asked) whose best answer now differs from the
/// target proof's answer.
pub(crate) fn changes(
    access: &Access,
    to: Target,
    services: &[String],
    apis: &[String],
) -> Vec<Change> {
    let target = match to {
        Target::Iam => Via::Iam,
        Target::Token => Via::Token,
    };
    let mut out = Vec::new();
    for (si, ai) in access.asked(services, apis) {
        let (s, a) = (&access.services[si], &access.apis[ai]);
        for ri in 0..a.routes.len() {
            if access.is_issuer_route(ai, ri) {
                continue;
            }
            let cells: Vec<Cell<'_>> = Via::ALL
                .into_iter()
                .map(|via| access.cell(si, ai, ri, via))
                .collect();
            let now = best(cells.iter().map(|c| c.answer));
            let now_by = cells
                .iter()
                .filter(|c| c.answer == now)
                .map(|c| c.via)
                .collect();
            let (after_api, after) = match to {
                Target::Iam => {
                    let (bi, bri) = access.counterpart(ai, ri, Via::Iam);
                    (bi, access.cell(si, bi, bri, target))
                }
                Target::Token => (ai, access.token_if_accepted(si, ai, ri)),
            };
            if after.answer == now {
                continue;
            }
            out.push(Change {
                service: s.name.clone(),
                api: a.label.clone(),
                route: a.routes[ri].route.clone(),
                now,
                now_by,
                after: after.answer,
                after_api: access.apis[after_api].label.clone(),
                after_reason: after.reason.into_owned(),
            });
        }
    }
    out
}

/// Allowed over unknown over refused.
fn best(answers: impl Iterator<Item = Answer>) -> Answer {
    let mut best = Answer::Refused;
    for a in answers {
        match a {
            Answer::Allowed => return Answer::Allowed,
            Answer::Unknown => best = Answer::Unknown,
            Answer::Refused => {}
        }
    }
    best
}

/// `METHOD /path`.
fn parse_route(route: &str) -> Result<(String, String), Error> {
    let bad = || {
        Error::Usage(format!(
            "route {route:?} is not `METHOD /path`, e.g. `GET /internal/users/{{id}}` or `GET /internal/users/42`"
        ))
    };
    let (method, path) = route.trim().split_once(' ').ok_or_else(bad)?;
    let path = path.trim();
    if !path.starts_with('/') || method.is_empty() || path.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok((method.to_ascii_uppercase(), path.to_owned()))
}

/// Every `--service` and `--api` asked for names something.
fn check_names(access: &Access, services: &[String], apis: &[String]) -> Result<(), Error> {
    if let Some(s) = services.iter().find(|s| access.service(s).is_none()) {
        return Err(unknown_service(access, s));
    }
    if let Some(a) = apis.iter().find(|a| access.apis_named(a).is_empty()) {
        return Err(unknown_api(access, a));
    }
    Ok(())
}

/// Writes a command's answer on stdout.
fn print(ctx: &mut Ctx<'_, '_>, text: &str) -> Result<(), Error> {
    ctx.io
        .stdout
        .write_all(text.as_bytes())
        .and_then(|()| ctx.io.stdout.flush())
        .map_err(stdout_error)
}

fn unknown_service(access: &Access, name: &str) -> Error {
    let known: Vec<&str> = access.services.iter().map(|s| s.name.as_str()).collect();
    Error::NotFound(format!(
        "no service {name} in the key store or the templates' role maps (services: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

fn unknown_api(access: &Access, name: &str) -> Error {
    let known: Vec<String> = access
        .apis
        .iter()
        .map(|a| match &a.logical_id {
            Some(l) if *l != a.label => format!("{} ({l})", a.label),
            _ => a.label.clone(),
        })
        .collect();
    Error::NotFound(format!(
        "no API {name} in the templates or the grants (APIs: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::Usage(format!("writing to stdout failed: {e}"))
}

/// Reads every source and prepares the answers.
async fn load(ctx: &mut Ctx<'_, '_>, src: &SourceArgs) -> Result<Access, Error> {
    let model = read_templates(ctx, src)?;
    let store = ctx.store().await?;
    store.require_existing()?;
    let documents = store.load_documents().await?;
    let ids: Vec<_> = documents
        .iter()
        .flat_map(|d| d.keys.iter().map(|k| k.key_id.clone()))
        .collect();
    let revoked = store.revoked_among(&ids).await?;
    let registry = registry(ctx, src, &store).await?;
    let sources = Sources {
        model,
        documents,
        revoked,
        registry,
        region: region(ctx),
        account: src.account.clone(),
        now: ctx.now,
    };
    Access::new(sources).map_err(|e| Error::Store(e.to_string()))
}

fn region(ctx: &Ctx<'_, '_>) -> String {
    ctx.global
        .region
        .clone()
        .unwrap_or_else(|| "us-east-1".into())
}

fn read_templates(
    ctx: &Ctx<'_, '_>,
    src: &SourceArgs,
) -> Result<sam_template::template::Model, Error> {
    let files: Vec<PathBuf> = if src.templates.is_empty() {
        vec![PathBuf::from("template.yaml")]
    } else {
        src.templates.clone()
    };
    let mut params: Vec<(String, String)> = Vec::new();
    for p in &src.parameters {
        let (k, v) = p.split_once('=').ok_or_else(|| {
            Error::Usage(format!(
                "--parameter {p:?} is not KEY=VALUE, e.g. --parameter AuthMode=both"
            ))
        })?;
        params.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut texts = Vec::new();
    let mut used: HashSet<&str> = HashSet::new();
    let mut envs = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::NotFound(format!(
                "cannot read the template {}: {e} (give it with --template FILE)",
                file.display()
            ))
        })?;
        let root = yaml::parse(&text)
            .map_err(|e| Error::Usage(format!("template {}: {e}", file.display())))?;
        let declared = root.get("Parameters");
        let mut parameters = BTreeMap::new();
        for (k, v) in &params {
            if declared.and_then(|d| d.get(k)).is_some() {
                parameters.insert(k.clone(), v.clone());
                used.insert(k);
            }
        }
        let stack_name = src.stack_names.get(i).cloned().unwrap_or_else(|| {
            if i == 0 {
                format!("svcauth-{}", ctx.global.env)
            } else {
                format!("svcauth-{}-{}", ctx.global.env, i + 1)
            }
        });
        envs.push(Environment {
            // The role maps name deployed roles by their names.
            role_names: RoleNames::Deployed,
            region: region(ctx),
            account: src.account.clone(),
            stack_name,
            parameters,
            template_dir: Some(
                file.parent()
                    .map(Path::to_path_buf)
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or_else(|| PathBuf::from(".")),
            ),
        });
        texts.push(text);
    }
    if let Some((k, _)) = params.iter().find(|(k, _)| !used.contains(k.as_str())) {
        return Err(Error::Usage(format!(
            "--parameter {k}: no template given declares a parameter {k}"
        )));
    }
    let pairs: Vec<(&str, &Environment)> =
        texts.iter().map(String::as_str).zip(envs.iter()).collect();
    load_all(&pairs).map_err(|e| Error::Usage(format!("reading the templates: {e}")))
}

/// Where API names come from: `--api-names`, else the store's registry (SSM), else
/// the templates' own declarations.
async fn registry(
    ctx: &mut Ctx<'_, '_>,
    src: &SourceArgs,
    store: &Store,
) -> Result<Registry, Error> {
    if let Some(spec) = &src.api_names {
        let names = authorizer::apis::parse_api_names(spec)
            .map_err(|e| Error::Usage(format!("--api-names: {e}")))?;
        return Ok(Registry::ById {
            names,
            label: "--api-names".into(),
        });
    }
    match store {
        Store::Ssm { .. } => {
            // The one reader of the registry (keystore-ssm), judged as the authorizer
            // judges it: only a SecureString entry holding a name is trusted.
            let registry = super::apis::registry(ctx).await?;
            let mut ids = BTreeMap::new();
            let mut ignored = Vec::new();
            for (id, entry) in registry.list().await? {
                match entry.name() {
                    Some(name) => {
                        ids.insert(name.to_owned(), id);
                    }
                    None => ignored.push(registry.entry_name(&id)),
                }
            }
            Ok(Registry::ByName {
                ids,
                label: format!("the registry {}", registry.path()),
                ignored,
            })
        }
        Store::File(_) => Ok(Registry::Declared),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse_from_yaml_and_json() {
        let yaml = "- {service: a, api: identity, route: GET /x, allowed: true}\n- service: b\n  api: tutor\n  route: POST /y\n  allowed: false\n  via: iam\n";
        let json = r#"[{"service": "a", "api": "identity", "route": "GET /x", "allowed": true},
            {"service": "b", "api": "tutor", "route": "POST /y", "allowed": false, "via": "iam"}]"#;
        for text in [yaml, json] {
            let e = parse_expectations(text).unwrap();
            assert_eq!(e.len(), 2);
            assert_eq!(e[1].via, Some(Via::Iam));
            assert!(e[0].allowed && !e[1].allowed);
        }
        for bad in [
            "a: b",
            "- {service: a, api: b, route: GET /x}",
            "- {service: a, api: b, route: GET /x, allowed: yes}",
            "- {service: a, api: b, route: GET /x, allowed: true, via: key}",
            "- {service: a, api: b, route: GET /x, allowed: true, extra: 1}",
            "- {api: b, route: GET /x, allowed: true}",
        ] {
            assert!(parse_expectations(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_are_method_and_path() {
        assert_eq!(
            parse_route("get /a/{id}").unwrap(),
            ("GET".into(), "/a/{id}".into())
        );
        for bad in ["GET", "GET a", "/a", "GET /a b"] {
            assert!(parse_route(bad).is_err(), "{bad}");
        }
    }
}
