//! A SAM template (`template.yaml`) read into a [`Model`]: the single source of truth for
//! routes and their authorization, for the local gateway and `svcauth access`.
//!
//! Read as the template's header comment describes: every `Type: Api` event of an
//! `AWS::Serverless::Function` is a route (`Path`, `Method`, `RestApiId: !Ref <Api>`);
//! the API's `Auth.DefaultAuthorizer` (or the route's own `Auth.Authorizer`) decides
//! its authorization: a REQUEST authorizer, `AWS_IAM`, or none. Resources whose
//! `Condition` is false for the chosen parameters (`AuthMode`) do not exist.
//!
//! CloudFormation intrinsics are evaluated as far as a local run needs: `Ref` of
//! parameters, pseudo parameters and resources, `Fn::Sub`, `Fn::If`, `Fn::GetAtt`,
//! `Fn::Join`, and the condition functions. Resources resolve to local names: an API to
//! its local API id, an IAM role to its logical id (so role ARNs are
//! `arn:aws:iam::{account}:role/{LogicalId}`), anything else to its logical id.

use std::collections::{BTreeMap, HashSet};

use crate::policy::Statement;
use crate::yaml::{self, Node};

/// The template's default for an authorizer's result cache when none is given (SAM:
/// `ReauthorizeEvery` defaults to 300).
pub const DEFAULT_RESULT_TTL: u64 = 300;
/// Lambda's default function timeout.
const DEFAULT_FUNCTION_TIMEOUT: u64 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Yaml(#[from] yaml::YamlError),
    #[error("{at}: {msg}")]
    Invalid { at: String, msg: String },
}

fn invalid(at: impl Into<String>, msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        at: at.into(),
        msg: msg.into(),
    }
}

/// Where the gateway runs, for pseudo parameters and ARNs.
#[derive(Debug, Clone)]
pub struct Environment {
    pub region: String,
    pub account: String,
    pub stack_name: String,
    /// Parameter overrides (`AuthMode=both`); others take their template default.
    pub parameters: BTreeMap<String, String>,
    /// Directory of the template file: a nested application's local `Location` is
    /// relative to it. `None`: a template with one cannot be read.
    pub template_dir: Option<std::path::PathBuf>,
}

impl Default for Environment {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "123456789012".into(),
            stack_name: "svcauth-local".into(),
            parameters: BTreeMap::new(),
            template_dir: None,
        }
    }
}

/// A REQUEST authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerDef {
    /// Its name in the API's `Auth.Authorizers`.
    pub name: String,
    /// Logical id of the authorizer function.
    pub function: String,
    /// Identity sources: header names and query string names.
    pub headers: Vec<String>,
    pub query_strings: Vec<String>,
    /// `ReauthorizeEvery`, seconds; 0 disables the result cache.
    pub ttl_secs: u64,
}

/// How a route is authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAuth {
    None,
    Iam,
    Request(AuthorizerDef),
}

impl RouteAuth {
    pub fn describe(&self) -> String {
        match self {
            RouteAuth::None => "NONE".into(),
            RouteAuth::Iam => "AWS_IAM".into(),
            RouteAuth::Request(a) => format!("{} (REQUEST)", a.name),
        }
    }
}

/// One route of one API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDef {
    /// Logical id of the API.
    pub api: String,
    /// `/internal/users/{id}`.
    pub path: String,
    /// `GET`, or `ANY`.
    pub method: String,
    /// Logical id of the function serving it.
    pub function: String,
    pub auth: RouteAuth,
}

/// A REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiDef {
    pub logical_id: String,
    /// The local API id (also the first segment of its local URL).
    pub api_id: String,
    pub stage: String,
    pub description: String,
    /// Stage variables.
    pub variables: BTreeMap<String, String>,
    /// `AccessLogSetting.Format`, when set.
    pub access_log_format: Option<String>,
}

/// A value of a function's environment, as far as a local run can give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Text(String),
    /// The invoke URL of one of the template's APIs (stage included): locally, that
    /// API's URL on the gateway.
    ApiUrl {
        api: String,
    },
}

/// A Lambda function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDef {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the Rust binary behind it.
    pub binary: Option<String>,
    pub timeout_secs: u64,
    pub env: BTreeMap<String, EnvValue>,
    /// Logical id of its execution role, when it is one of the template's roles.
    pub role: Option<String>,
}

/// An IAM role's statements about `execute-api`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleDef {
    pub logical_id: String,
    pub arn: String,
    pub statements: Vec<Statement>,
    /// Statements skipped because a local run cannot evaluate them (conditions).
    pub skipped: Vec<String>,
}

/// Everything the gateway needs from the template.
#[derive(Debug, Clone)]
pub struct Model {
    pub apis: Vec<ApiDef>,
    pub routes: Vec<RouteDef>,
    pub functions: BTreeMap<String, FunctionDef>,
    pub roles: BTreeMap<String, RoleDef>,
    /// Parameter values in force (defaults and overrides).
    pub parameters: BTreeMap<String, String>,
}

impl Model {
    pub fn api(&self, logical_id: &str) -> Option<&ApiDef> {
        self.apis.iter().find(|a| a.logical_id == logical_id)
    }

    pub fn api_by_id(&self, api_id: &str) -> Option<&ApiDef> {
        self.apis.iter().find(|a| a.api_id == api_id)
    }

    /// The role with this ARN (`arn:aws:iam::{account}:role/{name}`), by name.
    pub fn role_by_name(&self, name: &str) -> Option<&RoleDef> {
        self.roles.values().find(|r| r.logical_id == name)
    }
}

/// The local API id of an API: its logical id in lower case without a trailing `Api`
/// (`IdentityKeyApi` → `identitykey`).
pub fn local_api_id(logical_id: &str) -> String {
    let lower: String = logical_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let id = lower.strip_suffix("api").unwrap_or(&lower);
    let id = if id.is_empty() { lower.as_str() } else { id };
    id.chars().take(32).collect()
}

/// A resolved intrinsic value.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    List(Vec<Val>),
    Map(Vec<(String, Val)>),
    /// `AWS::NoValue`: the property is absent.
    NoValue,
}

impl Val {
    fn into_string(self, at: &str) -> Result<String, TemplateError> {
        match self {
            Val::Str(s) => Ok(s),
            other => Err(invalid(at, format!("expected a string, found {other:?}"))),
        }
    }
}

/// The template being read, with parameter values and resources' types.
struct Ctx<'a> {
    env: &'a Environment,
    resources: &'a Node,
    conditions: &'a Node,
    params: BTreeMap<String, String>,
    condition_cache: std::cell::RefCell<BTreeMap<String, bool>>,
}

impl Ctx<'_> {
    fn resource_type(&self, logical: &str) -> Option<&str> {
        self.resources
            .get(logical)
            .and_then(|r| r.get("Type"))
            .and_then(Node::as_str)
    }

    /// `Ref` of a name.
    fn reference(&self, name: &str, at: &str) -> Result<Val, TemplateError> {
        Ok(Val::Str(match name {
            "AWS::Region" => self.env.region.clone(),
            "AWS::AccountId" => self.env.account.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::StackName" => self.env.stack_name.clone(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NoValue" => return Ok(Val::NoValue),
            _ => {
                if let Some(v) = self.params.get(name) {
                    v.clone()
                } else {
                    match self.resource_type(name) {
                        Some("AWS::Serverless::Api") => local_api_id(name),
                        Some(_) => name.to_owned(),
                        None => return Err(invalid(at, format!("Ref to unknown name {name}"))),
                    }
                }
            }
        }))
    }

    /// `Fn::GetAtt` of `logical.attr`.
    fn get_att(&self, logical: &str, attr: &str, at: &str) -> Result<Val, TemplateError> {
        let (env, acct) = (&self.env.region, &self.env.account);
        let Some(ty) = self.resource_type(logical) else {
            return Err(invalid(at, format!("GetAtt of unknown resource {logical}")));
        };
        Ok(Val::Str(match (ty, attr) {
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{acct}:role/{logical}"),
            ("AWS::Serverless::Function", "Arn") => {
                format!("arn:aws:lambda:{env}:{acct}:function:{logical}")
            }
            ("AWS::Serverless::Api", "Stage") => self
                .resources
                .get(logical)
                .and_then(|r| r.get("Properties"))
                .and_then(|p| p.get("StageName"))
                .map(|n| self.eval(n, at).and_then(|v| v.into_string(at)))
                .transpose()?
                .unwrap_or_else(|| "Prod".into()),
            ("AWS::Serverless::Api", "RootResourceId") => "root".into(),
            (_, "Arn") => format!("arn:aws:local:{env}:{acct}:{logical}"),
            _ => format!("{logical}.{attr}"),
        }))
    }

    fn condition(&self, name: &str, at: &str) -> Result<bool, TemplateError> {
        if let Some(v) = self.condition_cache.borrow().get(name) {
            return Ok(*v);
        }
        let node = self
            .conditions
            .get(name)
            .ok_or_else(|| invalid(at, format!("unknown condition {name}")))?;
        let v = self.eval_condition(node, &format!("Conditions.{name}"))?;
        self.condition_cache.borrow_mut().insert(name.to_owned(), v);
        Ok(v)
    }

    fn eval_condition(&self, node: &Node, at: &str) -> Result<bool, TemplateError> {
        let (func, arg) = intrinsic(node).ok_or_else(|| invalid(at, "not a condition function"))?;
        let args = |n: usize| -> Result<Vec<&Node>, TemplateError> {
            let items = seq_items(arg);
            if items.len() < n {
                return Err(invalid(at, format!("Fn::{func} needs {n} arguments")));
            }
            Ok(items)
        };
        match func {
            "Equals" => {
                let a = args(2)?;
                Ok(self.eval(a[0], at)? == self.eval(a[1], at)?)
            }
            "Not" => Ok(!self.eval_condition(args(1)?[0], at)?),
            "And" => {
                for c in args(1)? {
                    if !self.eval_condition(c, at)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Or" => {
                for c in args(1)? {
                    if self.eval_condition(c, at)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            "Condition" => {
                let name = raw_str(arg).ok_or_else(|| invalid(at, "Condition name"))?;
                self.condition(name, at)
            }
            other => Err(invalid(
                at,
                format!("Fn::{other} is not a condition function"),
            )),
        }
    }

    /// Evaluates a value with its intrinsics.
    fn eval(&self, node: &Node, at: &str) -> Result<Val, TemplateError> {
        if let Some((func, arg)) = intrinsic(node) {
            return match func {
                "Ref" => {
                    let name = raw_str(arg).ok_or_else(|| invalid(at, "Ref of a non-name"))?;
                    self.reference(name, at)
                }
                "GetAtt" => {
                    let (l, a) = match arg {
                        Node::Scalar { value, .. } => value
                            .split_once('.')
                            .map(|(l, a)| (l.to_owned(), a.to_owned()))
                            .ok_or_else(|| invalid(at, "GetAtt needs Resource.Attribute"))?,
                        _ => {
                            let items = seq_items(arg);
                            match (
                                items.first().and_then(|n| n.as_str()),
                                items.get(1).and_then(|n| n.as_str()),
                            ) {
                                (Some(l), Some(a)) => (l.to_owned(), a.to_owned()),
                                _ => return Err(invalid(at, "GetAtt needs [Resource, Attribute]")),
                            }
                        }
                    };
                    self.get_att(&l, &a, at)
                }
                "Sub" => {
                    let (text, vars) = match arg {
                        Node::Scalar { value, .. } => (value.clone(), Vec::new()),
                        _ => {
                            let items = seq_items(arg);
                            let text = items
                                .first()
                                .and_then(|n| n.as_str())
                                .ok_or_else(|| invalid(at, "Sub needs a string"))?
                                .to_owned();
                            let mut vars = Vec::new();
                            if let Some(m) = items.get(1) {
                                for (k, v) in m.entries() {
                                    vars.push((k.clone(), self.eval(v, at)?.into_string(at)?));
                                }
                            }
                            (text, vars)
                        }
                    };
                    self.sub(&text, &vars, at).map(Val::Str)
                }
                "If" => {
                    let items = seq_items(arg);
                    if items.len() != 3 {
                        return Err(invalid(at, "Fn::If needs [condition, then, else]"));
                    }
                    let name = items[0]
                        .as_str()
                        .ok_or_else(|| invalid(at, "Fn::If condition name"))?;
                    if self.condition(name, at)? {
                        self.eval(items[1], at)
                    } else {
                        self.eval(items[2], at)
                    }
                }
                "Join" => {
                    let items = seq_items(arg);
                    let sep = items
                        .first()
                        .and_then(|n| n.as_str())
                        .ok_or_else(|| invalid(at, "Join needs a separator"))?;
                    let list = items
                        .get(1)
                        .map(|n| self.eval(n, at))
                        .transpose()?
                        .unwrap_or(Val::List(Vec::new()));
                    let Val::List(parts) = list else {
                        return Err(invalid(at, "Join needs a list"));
                    };
                    let parts: Result<Vec<String>, _> = parts
                        .into_iter()
                        .filter(|v| *v != Val::NoValue)
                        .map(|v| v.into_string(at))
                        .collect();
                    Ok(Val::Str(parts?.join(sep)))
                }
                "Equals" | "Not" | "And" | "Or" | "Condition" => {
                    Ok(Val::Str(self.eval_condition(node, at)?.to_string()))
                }
                other => Err(invalid(at, format!("Fn::{other} is not supported locally"))),
            };
        }
        Ok(match node {
            Node::Scalar { value, .. } => Val::Str(value.clone()),
            Node::Seq { items, .. } => {
                let mut out = Vec::new();
                for it in items {
                    match self.eval(it, at)? {
                        Val::NoValue => {}
                        v => out.push(v),
                    }
                }
                Val::List(out)
            }
            Node::Map { entries, .. } => {
                let mut out = Vec::new();
                for (k, v) in entries {
                    match self.eval(v, &format!("{at}.{k}"))? {
                        Val::NoValue => {}
                        v => out.push((k.clone(), v)),
                    }
                }
                Val::Map(out)
            }
        })
    }

    /// `Fn::Sub` text with `${Name}`, `${Resource.Attr}` and `${!Literal}`.
    fn sub(
        &self,
        text: &str,
        vars: &[(String, String)],
        at: &str,
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| invalid(at, "unclosed ${ in Fn::Sub"))?;
            let name = &after[..end];
            if let Some(lit) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(lit);
                out.push('}');
            } else if let Some((_, v)) = vars.iter().find(|(k, _)| k == name) {
                out.push_str(v);
            } else if let Some((l, a)) = name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                out.push_str(&self.get_att(l, a, at)?.into_string(at)?);
            } else {
                out.push_str(&self.reference(name, at)?.into_string(at)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// APIs named in a `Fn::Sub` text (`${IdentityKeyApi}`), for URL detection.
    fn apis_in(&self, node: &Node) -> Vec<String> {
        // `!If [Cond, !Sub ..., ...]`: the branch in force.
        if let Some(("If", arg)) = intrinsic(node) {
            let items = seq_items(arg);
            let chosen = match items.first().and_then(|n| n.as_str()) {
                Some(cond) => match self.condition(cond, "Fn::If") {
                    Ok(true) => items.get(1),
                    Ok(false) => items.get(2),
                    Err(_) => None,
                },
                None => None,
            };
            return chosen.map(|n| self.apis_in(n)).unwrap_or_default();
        }
        let Some(("Sub", arg)) = intrinsic(node) else {
            return Vec::new();
        };
        let text = match arg {
            Node::Scalar { value, .. } => value.as_str(),
            _ => seq_items(arg)
                .first()
                .and_then(|n| n.as_str())
                .unwrap_or(""),
        };
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else { break };
            let name = after[..end].split('.').next().unwrap_or("");
            if self.resource_type(name) == Some("AWS::Serverless::Api")
                && !out.iter().any(|n| n == name)
            {
                out.push(name.to_owned());
            }
            rest = &after[end + 1..];
        }
        out
    }

    /// Whether a resource exists for these parameters.
    fn exists(&self, resource: &Node, at: &str) -> Result<bool, TemplateError> {
        match resource.get("Condition").and_then(Node::as_str) {
            None => Ok(true),
            Some(c) => self.condition(c, at),
        }
    }
}

/// `(name, argument)` of an intrinsic in short form (`!Ref x`) or long form
/// (`{Ref: x}`, `{"Fn::Sub": ...}`, `{Condition: c}`).
fn intrinsic(node: &Node) -> Option<(&str, &Node)> {
    if let Some(tag) = node.tag() {
        return Some((tag, node));
    }
    if let Node::Map { entries, tag: None } = node {
        if entries.len() == 1 {
            let (k, v) = &entries[0];
            if k == "Ref" || k == "Condition" {
                return Some((k.as_str(), v));
            }
            if let Some(f) = k.strip_prefix("Fn::") {
                return Some((f, v));
            }
        }
    }
    None
}

/// The text of a scalar, tagged or not (`!Ref x` is a tagged scalar).
fn raw_str(node: &Node) -> Option<&str> {
    match node {
        Node::Scalar { value, .. } => Some(value),
        _ => None,
    }
}

/// Items of a sequence, tagged or not (`!If [a, b, c]` is a tagged sequence).
fn seq_items(node: &Node) -> Vec<&Node> {
    match node {
        Node::Seq { items, .. } => items.iter().collect(),
        _ => Vec::new(),
    }
}

/// Reads a template.
pub fn load(text: &str, env: &Environment) -> Result<Model, TemplateError> {
    let root = yaml::parse(text)?;
    let empty = Node::Map {
        entries: Vec::new(),
        tag: None,
    };
    let resources = root
        .get("Resources")
        .ok_or_else(|| invalid("template", "no Resources"))?;
    let conditions = root.get("Conditions").unwrap_or(&empty);

    // Parameters: defaults, then overrides (checked against AllowedValues).
    let mut params = BTreeMap::new();
    for (name, p) in root.get("Parameters").unwrap_or(&empty).entries() {
        if let Some(d) = p.get("Default").and_then(Node::as_str) {
            params.insert(name.clone(), d.to_owned());
        }
    }
    for (name, value) in &env.parameters {
        let p = root
            .get("Parameters")
            .and_then(|ps| ps.get(name))
            .ok_or_else(|| {
                invalid(
                    "parameters",
                    format!("the template has no parameter {name}"),
                )
            })?;
        let allowed: Vec<&str> = p
            .get("AllowedValues")
            .map(|a| a.items().iter().filter_map(Node::as_str).collect())
            .unwrap_or_default();
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(invalid(
                format!("parameter {name}"),
                format!("{value:?} is not one of {}", allowed.join(", ")),
            ));
        }
        params.insert(name.clone(), value.clone());
    }

    let ctx = Ctx {
        env,
        resources,
        conditions,
        params,
        condition_cache: Default::default(),
    };
    let globals_fn = root.get("Globals").and_then(|g| g.get("Function"));
    let globals_api = root.get("Globals").and_then(|g| g.get("Api"));

    // Nested applications with a local Location: their functions run here like the
    // template's own, and their Outputs can name one as an authorizer.
    let nested = nested_applications(&ctx, resources, &empty)?;

    // APIs.
    let mut apis = Vec::new();
    let mut api_auth: BTreeMap<String, (Option<String>, BTreeMap<String, AuthorizerDef>)> =
        BTreeMap::new();
    for (logical, res) in resources.entries() {
        if res.get("Type").and_then(Node::as_str) != Some("AWS::Serverless::Api") {
            continue;
        }
        let at = format!("Resources.{logical}");
        if !ctx.exists(res, &at)? {
            continue;
        }
        let props = res.get("Properties").unwrap_or(&empty);
        let prop = |k: &str| props.get(k).or_else(|| globals_api.and_then(|g| g.get(k)));
        let stage = match prop("StageName") {
            Some(n) => ctx.eval(n, &at)?.into_string(&at)?,
            None => return Err(invalid(&at, "no StageName")),
        };
        let description = match prop("Description") {
            Some(n) => ctx.eval(n, &at)?.into_string(&at)?,
            None => String::new(),
        };
        let mut default = None;
        let mut authorizers = BTreeMap::new();
        if let Some(auth) = prop("Auth") {
            if let Some(d) = auth.get("DefaultAuthorizer") {
                default = Some(ctx.eval(d, &at)?.into_string(&at)?);
            }
            for (name, a) in auth.get("Authorizers").unwrap_or(&empty).entries() {
                let at = format!("{at}.Auth.Authorizers.{name}");
                if let Some(def) = authorizer(&ctx, name, a, &at, &nested.outputs)? {
                    authorizers.insert(name.clone(), def);
                }
            }
        }
        let mut variables = BTreeMap::new();
        if let Some(v) = prop("Variables") {
            if let Val::Map(entries) = ctx.eval(v, &format!("{at}.Variables"))? {
                for (k, v) in entries {
                    variables.insert(k, v.into_string(&at)?);
                }
            }
        }
        let access_log_format = match prop("AccessLogSetting").and_then(|a| a.get("Format")) {
            Some(f) => Some(ctx.eval(f, &at)?.into_string(&at)?),
            None => None,
        };
        api_auth.insert(logical.clone(), (default, authorizers));
        apis.push(ApiDef {
            logical_id: logical.clone(),
            api_id: local_api_id(logical),
            stage,
            description,
            variables,
            access_log_format,
        });
    }
    let mut seen_ids = HashSet::new();
    for a in &apis {
        if !seen_ids.insert(a.api_id.clone()) {
            return Err(invalid(
                format!("Resources.{}", a.logical_id),
                format!("two APIs have the local id {}", a.api_id),
            ));
        }
    }

    // Functions and their routes.
    let mut functions = BTreeMap::new();
    let mut routes = Vec::new();
    for (logical, res) in resources.entries() {
        if res.get("Type").and_then(Node::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let at = format!("Resources.{logical}");
        if !ctx.exists(res, &at)? {
            continue;
        }
        let props = res.get("Properties").unwrap_or(&empty);
        let def = function_def(&ctx, res, globals_fn, &at)?;
        for (event_name, ev) in props.get("Events").unwrap_or(&empty).entries() {
            if ev.get("Type").and_then(Node::as_str) != Some("Api") {
                continue;
            }
            let eat = format!("{at}.Events.{event_name}");
            let p = ev.get("Properties").unwrap_or(&empty);
            let api = match p.get("RestApiId") {
                Some(n) => match intrinsic(n) {
                    Some(("Ref", a)) => raw_str(a).map(str::to_owned),
                    _ => None,
                }
                .ok_or_else(|| invalid(&eat, "RestApiId must be !Ref <Api>"))?,
                None => {
                    return Err(invalid(
                        &eat,
                        "no RestApiId: SAM's implicit API is not emulated; name an AWS::Serverless::Api",
                    ))
                }
            };
            let Some((default, authorizers)) = api_auth.get(&api) else {
                if resources.get(&api).is_some() {
                    // The API does not exist for these parameters.
                    continue;
                }
                return Err(invalid(&eat, format!("RestApiId names unknown API {api}")));
            };
            let path = p
                .get("Path")
                .and_then(Node::as_str)
                .ok_or_else(|| invalid(&eat, "no literal Path"))?
                .to_owned();
            if !path.starts_with('/') {
                return Err(invalid(&eat, format!("Path {path:?} must start with /")));
            }
            let method = p
                .get("Method")
                .and_then(Node::as_str)
                .ok_or_else(|| invalid(&eat, "no literal Method"))?
                .to_ascii_uppercase();
            let method = if method == "ANY" || method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
                "ANY".to_owned()
            } else {
                method
            };
            let chosen = match p.get("Auth").and_then(|a| a.get("Authorizer")) {
                Some(n) => Some(ctx.eval(n, &eat)?.into_string(&eat)?),
                None => default.clone(),
            };
            let auth = match chosen.as_deref() {
                None | Some("NONE") => RouteAuth::None,
                Some("AWS_IAM") => RouteAuth::Iam,
                Some(name) => RouteAuth::Request(
                    authorizers
                        .get(name)
                        .cloned()
                        .ok_or_else(|| invalid(&eat, format!("unknown authorizer {name}")))?,
                ),
            };
            routes.push(RouteDef {
                api,
                path,
                method,
                function: logical.clone(),
                auth,
            });
        }
        functions.insert(
            logical.clone(),
            FunctionDef {
                logical_id: logical.clone(),
                ..def
            },
        );
    }
    for (logical, def) in nested.functions {
        if functions.contains_key(&logical) {
            return Err(invalid(
                format!("Resources.{logical}"),
                "a nested application has a function of the same logical id",
            ));
        }
        functions.insert(logical, def);
    }
    for r in &routes {
        if let RouteAuth::Request(a) = &r.auth {
            if !functions.contains_key(&a.function) {
                return Err(invalid(
                    format!("authorizer {}", a.name),
                    format!(
                        "its function {} does not exist for these parameters",
                        a.function
                    ),
                ));
            }
        }
    }

    let roles = roles(&ctx, resources, &empty)?;
    Ok(Model {
        apis,
        routes,
        functions,
        roles,
        parameters: ctx.params.clone(),
    })
}

/// What the template's nested applications contribute.
#[derive(Default)]
struct Nested {
    functions: BTreeMap<String, FunctionDef>,
    /// (application, output) → logical id of the function whose Arn the output is.
    outputs: BTreeMap<(String, String), String>,
}

/// `AWS::Serverless::Application`s with a local `Location`, read relative to the
/// template's directory with the parameters the template passes them. Applications
/// from the Serverless Application Repository (or S3) are not read.
fn nested_applications(
    ctx: &Ctx<'_>,
    resources: &Node,
    empty: &Node,
) -> Result<Nested, TemplateError> {
    let mut nested = Nested::default();
    for (app, res) in resources.entries() {
        if res.get("Type").and_then(Node::as_str) != Some("AWS::Serverless::Application") {
            continue;
        }
        let at = format!("Resources.{app}");
        if !ctx.exists(res, &at)? {
            continue;
        }
        let props = res.get("Properties").unwrap_or(empty);
        let Some(location) = props.get("Location").and_then(Node::as_str) else {
            continue;
        };
        if location.starts_with("s3://") || location.starts_with("https://") {
            continue;
        }
        let dir = ctx.env.template_dir.as_ref().ok_or_else(|| {
            invalid(
                &at,
                "a nested application's Location needs the template's directory",
            )
        })?;
        let path = dir.join(location);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid(&at, format!("cannot read {}: {e}", path.display())))?;
        let child = yaml::parse(&text)?;
        let mut params = BTreeMap::new();
        for (name, p) in child.get("Parameters").unwrap_or(empty).entries() {
            if let Some(d) = p.get("Default").and_then(Node::as_str) {
                params.insert(name.clone(), d.to_owned());
            }
        }
        for (name, v) in props.get("Parameters").unwrap_or(empty).entries() {
            match ctx.eval(v, &format!("{at}.Parameters.{name}"))? {
                Val::NoValue => {}
                v => {
                    params.insert(name.clone(), v.into_string(&at)?);
                }
            }
        }
        let child_resources = child.get("Resources").unwrap_or(empty);
        let child_ctx = Ctx {
            env: ctx.env,
            resources: child_resources,
            conditions: child.get("Conditions").unwrap_or(empty),
            params,
            condition_cache: Default::default(),
        };
        let globals_fn = child.get("Globals").and_then(|g| g.get("Function"));
        let mut local_ids: BTreeMap<String, String> = BTreeMap::new();
        for (logical, res) in child_resources.entries() {
            if res.get("Type").and_then(Node::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let fat = format!("{}#{logical}", path.display());
            if !child_ctx.exists(res, &fat)? {
                continue;
            }
            let def = function_def(&child_ctx, res, globals_fn, &fat)?;
            // The same application nested twice (with other parameters) has functions
            // of the same logical id: the later one is named after its application.
            let id = if nested.functions.contains_key(logical) {
                format!("{app}{logical}")
            } else {
                logical.clone()
            };
            local_ids.insert(logical.clone(), id.clone());
            nested.functions.insert(
                id.clone(),
                FunctionDef {
                    logical_id: id,
                    ..def
                },
            );
        }
        for (name, out) in child.get("Outputs").unwrap_or(empty).entries() {
            let target = out.get("Value").and_then(|v| match intrinsic(v) {
                Some(("GetAtt", n)) => match n {
                    Node::Scalar { value, .. } => value.strip_suffix(".Arn").map(str::to_owned),
                    _ => match (
                        seq_items(n).first().and_then(|n| n.as_str()),
                        seq_items(n).get(1).and_then(|n| n.as_str()),
                    ) {
                        (Some(r), Some("Arn")) => Some(r.to_owned()),
                        _ => None,
                    },
                },
                _ => None,
            });
            if let Some(function) = target.and_then(|f| local_ids.get(&f).cloned()) {
                nested.outputs.insert((app.clone(), name.clone()), function);
            }
        }
    }
    Ok(nested)
}

/// A function's build, timeout, environment and role (`logical_id` left empty).
fn function_def(
    ctx: &Ctx<'_>,
    res: &Node,
    globals_fn: Option<&Node>,
    at: &str,
) -> Result<FunctionDef, TemplateError> {
    let at = at.to_owned();
    let empty = Node::Map {
        entries: Vec::new(),
        tag: None,
    };
    let props = res.get("Properties").unwrap_or(&empty);
    let binary = res
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(Node::as_str)
        .map(str::to_owned);
    let timeout = props
        .get("Timeout")
        .or_else(|| globals_fn.and_then(|g| g.get("Timeout")))
        .map(|n| ctx.eval(n, &at).and_then(|v| v.into_string(&at)))
        .transpose()?
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| invalid(&at, format!("Timeout {s:?} is not a number")))
        })
        .transpose()?
        .unwrap_or(DEFAULT_FUNCTION_TIMEOUT);
    let mut env_vars = BTreeMap::new();
    let globals_env = globals_fn
        .and_then(|g| g.get("Environment"))
        .and_then(|e| e.get("Variables"));
    let fn_env = props.get("Environment").and_then(|e| e.get("Variables"));
    for vars in [globals_env, fn_env].into_iter().flatten() {
        for (k, v) in vars.entries() {
            let vat = format!("{at}.Environment.Variables.{k}");
            let api_refs = ctx.apis_in(v);
            let value = match ctx.eval(v, &vat)? {
                Val::NoValue => {
                    env_vars.remove(k);
                    continue;
                }
                Val::Str(s) if s.contains(".execute-api.") && api_refs.len() == 1 => {
                    EnvValue::ApiUrl {
                        api: api_refs[0].clone(),
                    }
                }
                Val::Str(s) => EnvValue::Text(s),
                other => {
                    return Err(invalid(vat, format!("not a string: {other:?}")));
                }
            };
            env_vars.insert(k.clone(), value);
        }
    }
    let role = match props.get("Role") {
        Some(r) => {
            let arn = ctx.eval(r, &at)?.into_string(&at)?;
            arn.rsplit_once(":role/").map(|(_, n)| n.to_owned())
        }
        None => None,
    };
    Ok(FunctionDef {
        logical_id: String::new(),
        binary,
        timeout_secs: timeout,
        env: env_vars,
        role,
    })
}

fn authorizer(
    ctx: &Ctx<'_>,
    name: &str,
    a: &Node,
    at: &str,
    nested_outputs: &BTreeMap<(String, String), String>,
) -> Result<Option<AuthorizerDef>, TemplateError> {
    let payload = a
        .get("FunctionPayloadType")
        .map(|n| ctx.eval(n, at).and_then(|v| v.into_string(at)))
        .transpose()?
        .unwrap_or_else(|| "TOKEN".into());
    let Some(arn) = a.get("FunctionArn") else {
        // Cognito user pools and others: not emulated; routes naming them fail below.
        return Ok(None);
    };
    if payload != "REQUEST" {
        return Err(invalid(
            at,
            "only REQUEST Lambda authorizers are emulated (FunctionPayloadType: REQUEST)",
        ));
    }
    let target = match intrinsic(arn) {
        Some(("GetAtt", n)) => match n {
            Node::Scalar { value, .. } => value
                .split_once('.')
                .map(|(r, a)| (r.to_owned(), a.to_owned())),
            _ => match (
                seq_items(n).first().and_then(|n| n.as_str()),
                seq_items(n).get(1).and_then(|n| n.as_str()),
            ) {
                (Some(r), Some(a)) => Some((r.to_owned(), a.to_owned())),
                _ => None,
            },
        },
        _ => None,
    };
    let function = match target {
        // `!GetAtt App.Outputs.Name` of a nested application whose output is a function's Arn
        Some((app, attr)) if attr.starts_with("Outputs.") => nested_outputs
            .get(&(app, attr["Outputs.".len()..].to_owned()))
            .cloned(),
        Some((function, _)) => Some(function),
        None => None,
    }
    .ok_or_else(|| {
        invalid(
            at,
            "FunctionArn must be !GetAtt <Function>.Arn, or !GetAtt <App>.Outputs.<Name> of a nested application with a local Location",
        )
    })?;
    let empty = Node::Map {
        entries: Vec::new(),
        tag: None,
    };
    let identity = a.get("Identity").unwrap_or(&empty);
    let list = |k: &str| -> Result<Vec<String>, TemplateError> {
        match identity.get(k) {
            None => Ok(Vec::new()),
            Some(n) => match ctx.eval(n, at)? {
                Val::List(items) => items.into_iter().map(|v| v.into_string(at)).collect(),
                Val::Str(s) => Ok(vec![s]),
                _ => Err(invalid(at, format!("Identity.{k} must be a list"))),
            },
        }
    };
    let headers = list("Headers")?;
    let query_strings = list("QueryStrings")?;
    for k in ["StageVariables", "Context"] {
        if identity.get(k).is_some() {
            return Err(invalid(at, format!("Identity.{k} is not emulated")));
        }
    }
    let ttl_secs = match identity.get("ReauthorizeEvery") {
        None => DEFAULT_RESULT_TTL,
        Some(n) => {
            let s = ctx.eval(n, at)?.into_string(at)?;
            s.parse()
                .map_err(|_| invalid(at, format!("ReauthorizeEvery {s:?} is not a number")))?
        }
    };
    if headers.is_empty() && query_strings.is_empty() && ttl_secs > 0 {
        return Err(invalid(
            at,
            "a REQUEST authorizer with caching needs identity sources",
        ));
    }
    Ok(Some(AuthorizerDef {
        name: name.to_owned(),
        function,
        headers,
        query_strings,
        ttl_secs,
    }))
}

/// `execute-api` statements of every role, from its inline `Policies` and from
/// `AWS::IAM::RolePolicy` / `AWS::IAM::Policy` resources naming it.
fn roles(
    ctx: &Ctx<'_>,
    resources: &Node,
    empty: &Node,
) -> Result<BTreeMap<String, RoleDef>, TemplateError> {
    let mut roles = BTreeMap::new();
    for (logical, res) in resources.entries() {
        if res.get("Type").and_then(Node::as_str) != Some("AWS::IAM::Role") {
            continue;
        }
        let at = format!("Resources.{logical}");
        if !ctx.exists(res, &at)? {
            continue;
        }
        let mut role = RoleDef {
            logical_id: logical.clone(),
            arn: format!("arn:aws:iam::{}:role/{logical}", ctx.env.account),
            ..Default::default()
        };
        let props = res.get("Properties").unwrap_or(empty);
        if let Some(p) = props.get("Policies") {
            if let Val::List(policies) = ctx.eval(p, &at)? {
                for pol in policies {
                    if let Val::Map(entries) = pol {
                        if let Some((_, doc)) =
                            entries.into_iter().find(|(k, _)| k == "PolicyDocument")
                        {
                            add_statements(&mut role, doc, &at);
                        }
                    }
                }
            }
        }
        roles.insert(logical.clone(), role);
    }
    for (logical, res) in resources.entries() {
        let ty = res.get("Type").and_then(Node::as_str);
        if !matches!(ty, Some("AWS::IAM::RolePolicy" | "AWS::IAM::Policy")) {
            continue;
        }
        let at = format!("Resources.{logical}");
        if !ctx.exists(res, &at)? {
            continue;
        }
        let props = res.get("Properties").unwrap_or(empty);
        let mut names = Vec::new();
        if let Some(n) = props.get("RoleName") {
            names.push(ctx.eval(n, &at)?.into_string(&at)?);
        }
        if let Some(n) = props.get("Roles") {
            if let Val::List(items) = ctx.eval(n, &at)? {
                for i in items {
                    names.push(i.into_string(&at)?);
                }
            }
        }
        let Some(doc) = props.get("PolicyDocument") else {
            continue;
        };
        let doc = ctx.eval(doc, &at)?;
        for name in names {
            if let Some(role) = roles.get_mut(&name) {
                add_statements(role, doc.clone(), &at);
            }
        }
    }
    Ok(roles)
}

fn add_statements(role: &mut RoleDef, doc: Val, at: &str) {
    let Val::Map(doc) = doc else { return };
    let Some((_, st)) = doc.into_iter().find(|(k, _)| k == "Statement") else {
        return;
    };
    let list = match st {
        Val::List(l) => l,
        m @ Val::Map(_) => vec![m],
        _ => return,
    };
    let strings = |v: Option<&Val>| -> Vec<String> {
        match v {
            Some(Val::Str(s)) => vec![s.clone()],
            Some(Val::List(l)) => l
                .iter()
                .filter_map(|v| match v {
                    Val::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    for s in list {
        let Val::Map(fields) = s else { continue };
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let actions = strings(get("Action"));
        if !actions
            .iter()
            .any(|a| crate::policy::action_matches(a, crate::policy::INVOKE_ACTION))
        {
            continue;
        }
        let effect = match get("Effect") {
            Some(Val::Str(e)) => e.clone(),
            _ => continue,
        };
        if get("Condition").is_some() || get("NotResource").is_some() || get("NotAction").is_some()
        {
            role.skipped.push(format!(
                "{at}: an execute-api statement with Condition/NotResource/NotAction is not evaluated locally"
            ));
            continue;
        }
        role.statements.push(Statement {
            allow: effect.eq_ignore_ascii_case("Allow"),
            actions,
            resources: strings(get("Resource")),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = r#"
Parameters:
  AuthMode: {Type: String, Default: api-key, AllowedValues: [api-key, iam, both]}
  Ttl: {Type: Number, Default: 120}
Conditions:
  UseKey: !Not [!Equals [!Ref AuthMode, iam]]
  UseIam: !Not [!Equals [!Ref AuthMode, api-key]]
Globals:
  Function:
    Timeout: 10
Resources:
  KeyApi:
    Type: AWS::Serverless::Api
    Condition: UseKey
    Properties:
      StageName: v1
      Auth:
        DefaultAuthorizer: Keys
        Authorizers:
          Keys:
            FunctionArn: !GetAtt AuthFn.Arn
            FunctionPayloadType: REQUEST
            Identity: {Headers: [x-key], ReauthorizeEvery: !Ref Ttl}
  IamApi:
    Type: AWS::Serverless::Api
    Condition: UseIam
    Properties: {StageName: v1, Auth: {DefaultAuthorizer: AWS_IAM}}
  AuthFn:
    Type: AWS::Serverless::Function
    Condition: UseKey
    Properties: {Timeout: 5}
  CallerRole:
    Type: AWS::IAM::Role
    Properties: {}
  CallerInvoke:
    Type: AWS::IAM::RolePolicy
    Condition: UseIam
    Properties:
      RoleName: !Ref CallerRole
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: execute-api:Invoke
            Resource: !Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${IamApi}/${IamApi.Stage}/GET/x/*
          - Effect: Allow
            Action: s3:GetObject
            Resource: "*"
  Backend:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: backend}}
    Properties:
      Role: !GetAtt CallerRole.Arn
      Environment:
        Variables:
          URL: !Sub
            - https://${KeyApi}-${V}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${KeyApi.Stage}
            - V: vpce-1
          PLAIN: !If [UseIam, yes-iam, no-iam]
          GONE: !Ref AWS::NoValue
      Events:
        A: {Type: Api, Properties: {RestApiId: !Ref KeyApi, Path: "/x/{id}", Method: get}}
        B: {Type: Api, Properties: {RestApiId: !Ref IamApi, Path: "/x/{id}", Method: GET}}
        C: {Type: Api, Properties: {RestApiId: !Ref KeyApi, Path: /open, Method: GET, Auth: {Authorizer: NONE}}}
"#;

    fn env(mode: &str) -> Environment {
        let mut e = Environment::default();
        e.parameters.insert("AuthMode".into(), mode.into());
        e
    }

    #[test]
    fn routes_follow_the_auth_mode() {
        let m = load(T, &env("api-key")).unwrap();
        assert_eq!(m.apis.len(), 1);
        assert_eq!(m.apis[0].api_id, "key");
        assert_eq!(m.routes.len(), 2);
        let RouteAuth::Request(a) = &m.routes[0].auth else {
            panic!("{:?}", m.routes[0])
        };
        assert_eq!(
            (a.function.as_str(), a.headers.clone(), a.ttl_secs),
            ("AuthFn", vec!["x-key".to_owned()], 120)
        );
        assert_eq!(m.routes[0].method, "GET");
        assert_eq!(m.routes[1].auth, RouteAuth::None);
        assert_eq!(m.functions["AuthFn"].timeout_secs, 5);
        let b = &m.functions["Backend"];
        assert_eq!(b.timeout_secs, 10);
        assert_eq!(b.binary.as_deref(), Some("backend"));
        assert_eq!(b.role.as_deref(), Some("CallerRole"));
        assert_eq!(
            b.env["URL"],
            EnvValue::ApiUrl {
                api: "KeyApi".into()
            }
        );
        assert_eq!(b.env["PLAIN"], EnvValue::Text("no-iam".into()));
        assert!(!b.env.contains_key("GONE"));
        assert!(m.roles["CallerRole"].statements.is_empty());

        let m = load(T, &env("both")).unwrap();
        assert_eq!(m.apis.len(), 2);
        assert_eq!(
            m.routes.iter().filter(|r| r.auth == RouteAuth::Iam).count(),
            1
        );
        let role = &m.roles["CallerRole"];
        assert_eq!(role.arn, "arn:aws:iam::123456789012:role/CallerRole");
        assert_eq!(role.statements.len(), 1);
        assert_eq!(
            role.statements[0].resources,
            vec!["arn:aws:execute-api:us-east-1:123456789012:iam/v1/GET/x/*".to_owned()]
        );
        let m = load(T, &env("iam")).unwrap();
        assert!(!m.functions.contains_key("AuthFn"));
        assert_eq!(m.routes.len(), 1);
    }

    #[test]
    fn bad_parameters_and_templates_are_refused() {
        assert!(load(T, &env("nope")).is_err());
        let mut e = Environment::default();
        e.parameters.insert("Unknown".into(), "x".into());
        assert!(load(T, &e).is_err());
        let token = T.replace("FunctionPayloadType: REQUEST", "FunctionPayloadType: TOKEN");
        let err = load(&token, &env("api-key")).unwrap_err().to_string();
        assert!(err.contains("only REQUEST"), "{err}");
        let literal = T.replace("RestApiId: !Ref IamApi", "RestApiId: IamApi");
        assert!(load(&literal, &env("both")).is_err());
    }

    /// The token modes of the project's template: the token API and its issuer, the
    /// authorizer application nested twice (the internal APIs' one with the mode's
    /// identity source, the token API's with keys only), tutor-service in token mode.
    #[test]
    fn the_project_template_in_the_token_modes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("template.yaml")).unwrap();
        for (mode, headers, ttl) in [
            ("token", vec!["Authorization".to_owned()], 60),
            ("key-or-token", vec![], 0),
        ] {
            let m = load(
                &text,
                &Environment {
                    template_dir: Some(root.clone()),
                    ..env(mode)
                },
            )
            .unwrap();
            let ids: Vec<&str> = m.apis.iter().map(|a| a.api_id.as_str()).collect();
            assert_eq!(ids, ["identitykey", "tutorkey", "token"], "{mode}");
            for r in m.routes.iter().filter(|r| r.api != "TokenApi") {
                let RouteAuth::Request(a) = &r.auth else {
                    panic!("{mode}: {r:?}")
                };
                assert_eq!((&a.headers, a.ttl_secs), (&headers, ttl), "{mode}: {r:?}");
                assert_eq!(a.function, "AuthorizerFunction");
            }
            let token_routes: Vec<(String, String, String)> = m
                .routes
                .iter()
                .filter(|r| r.api == "TokenApi")
                .map(|r| {
                    let auth = match &r.auth {
                        RouteAuth::Request(a) => format!("{} {:?}", a.function, a.headers),
                        other => other.describe(),
                    };
                    (r.method.clone(), r.path.clone(), auth)
                })
                .collect();
            assert_eq!(
                token_routes,
                [
                    (
                        "POST".into(),
                        "/token".into(),
                        "IssuerAuthorizerAuthorizerFunction [\"x-service-api-key\"]".into()
                    ),
                    ("POST".into(), "/token/iam".into(), "AWS_IAM".into()),
                    ("GET".into(), "/.well-known/jwks.json".into(), "NONE".into()),
                ],
                "{mode}"
            );
            let accept = |f: &str| m.functions[f].env.get("SVCAUTH_ACCEPT").cloned();
            assert_eq!(
                accept("AuthorizerFunction"),
                Some(EnvValue::Text(
                    if mode == "token" {
                        "token"
                    } else {
                        "api-key,token"
                    }
                    .into()
                ))
            );
            assert_eq!(
                accept("IssuerAuthorizerAuthorizerFunction"),
                Some(EnvValue::Text("api-key".into()))
            );
            let tutor = &m.functions["TutorServiceFunction"];
            assert_eq!(
                tutor.env["SERVICE_AUTH_MODE"],
                EnvValue::Text("token".into())
            );
            assert_eq!(
                tutor.env["SERVICE_TOKEN_URL"],
                EnvValue::ApiUrl {
                    api: "TokenApi".into()
                }
            );
            assert_eq!(
                m.functions["TokenIssuerFunction"].binary.as_deref(),
                Some("token-issuer")
            );
        }
    }

    /// The project's own template, as the gateway reads it.
    #[test]
    fn the_project_template() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("template.yaml")).unwrap();
        let env = |mode: &str| Environment {
            template_dir: Some(root.clone()),
            ..env(mode)
        };
        // The authorizer is a nested application (authorizer/template.yaml).
        let err = load(&text, &super::tests::env("api-key"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Resources.Authorizer"), "{err}");
        let m = load(&text, &env("both")).unwrap();
        let ids: Vec<&str> = m.apis.iter().map(|a| a.api_id.as_str()).collect();
        assert_eq!(ids, ["identitykey", "tutorkey", "identityiam", "tutoriam"]);
        assert!(m
            .apis
            .iter()
            .all(|a| a.stage == "v1" && a.access_log_format.is_some()));
        let key_routes: Vec<String> = m
            .routes
            .iter()
            .filter(|r| matches!(&r.auth, RouteAuth::Request(a) if a.headers == ["x-service-api-key"] && a.ttl_secs == 300 && a.function == "AuthorizerFunction"))
            .map(|r| format!("{} {} {}", r.api, r.method, r.path))
            .collect();
        assert_eq!(
            key_routes,
            [
                "IdentityKeyApi GET /internal/users/{id}",
                "IdentityKeyApi GET /internal/users/by-email/{email}",
                "IdentityKeyApi POST /internal/users",
                "TutorKeyApi GET /internal/tutor/students/{id}/profile",
            ]
        );
        assert_eq!(
            m.routes.iter().filter(|r| r.auth == RouteAuth::Iam).count(),
            4
        );
        let tutor = &m.functions["TutorServiceFunction"];
        assert_eq!(tutor.binary.as_deref(), Some("tutor-service"));
        assert_eq!(
            tutor.env["IDENTITY_SERVICE_URL"],
            EnvValue::ApiUrl {
                api: "IdentityKeyApi".into()
            }
        );
        assert_eq!(
            tutor.env["SERVICE_AUTH_MODE"],
            EnvValue::Text("api-key".into())
        );
        assert_eq!(
            tutor.env["SVCAUTH_IAM_ROLES"],
            EnvValue::Text(
                "TutorServiceRole=tutor-service,TutorFunctionRole=tutor-service,AdminServiceRole=admin-service"
                    .into()
            )
        );
        // The function has its own role (VPC rights), mapped to the same service.
        assert_eq!(tutor.role.as_deref(), Some("TutorFunctionRole"));
        assert_eq!(
            m.functions["TutorServiceIamFunction"].env["IDENTITY_SERVICE_URL"],
            EnvValue::ApiUrl {
                api: "IdentityIamApi".into()
            }
        );
        let authorizer = &m.functions["AuthorizerFunction"];
        assert_eq!(authorizer.timeout_secs, 5);
        assert_eq!(authorizer.binary.as_deref(), Some("authorizer"));
        assert_eq!(
            authorizer.env["SVCAUTH_SSM_PATH"],
            EnvValue::Text("/svcauth/dev/keys".into())
        );
        assert_eq!(authorizer.role.as_deref(), Some("AuthorizerRole"));
        assert_eq!(m.functions["IdentityServiceFunction"].timeout_secs, 10);
        for role in ["TutorServiceRole", "TutorFunctionRole"] {
            let tutor_role = &m.roles[role];
            assert_eq!(tutor_role.statements.len(), 1, "{tutor_role:?}");
            assert_eq!(
                tutor_role.statements[0].resources,
                [
                    "arn:aws:execute-api:us-east-1:123456789012:identityiam/v1/GET/internal/users/*",
                    "arn:aws:execute-api:us-east-1:123456789012:identityiam/v1/GET/internal/users/by-email/*",
                ]
            );
        }
        assert_eq!(m.roles["AdminServiceRole"].statements[0].resources.len(), 2);
        // api-key mode has no IAM APIs and no invoke policies.
        let m = load(&text, &env("api-key")).unwrap();
        assert_eq!(m.apis.len(), 2);
        assert!(m.roles["TutorServiceRole"].statements.is_empty());
    }

    #[test]
    fn local_api_ids() {
        assert_eq!(local_api_id("IdentityKeyApi"), "identitykey");
        assert_eq!(local_api_id("Api"), "api");
        assert_eq!(local_api_id("Billing"), "billing");
    }
}
