//! A SAM template (`template.yaml`) read into a [`Model`]: the single source of truth for
//! routes and their authorization, for the local gateway and `svcauth access`.
//!
//! Read as the template's header comment describes: every `Type: Api` event of an
//! `AWS::Serverless::Function` is a route (`Path`, `Method`, `RestApiId: !Ref <Api>`);
//! the API's `Auth.DefaultAuthorizer` (or the route's own `Auth.Authorizer`) decides
//! its authorization: a REQUEST authorizer, `AWS_IAM`, or none. Resources whose
//! `Condition` is false for the chosen parameters (`AuthMode`) do not exist.
//!
//! **Several stacks, one model.** An `AWS::Serverless::Application` with a local
//! `Location` is read like the template itself (relative to its directory, with the
//! parameters the parent passes it) and its APIs, routes, functions and roles join the
//! model; `!GetAtt App.Outputs.Name` is that application's output. [`load_all`] reads
//! several templates deployed side by side (a platform stack, then an application
//! stack that imports from it): `Fn::ImportValue` finds an export of a template read
//! before (or nested earlier). A nested stack is named `{parent}-{App}` (CloudFormation
//! adds a random suffix; exports named `${AWS::StackName}-...` match all the same).
//!
//! CloudFormation intrinsics are evaluated as far as a local reading needs: `Ref` of
//! parameters, pseudo parameters and resources, `Fn::Sub`, `Fn::If`, `Fn::GetAtt`,
//! `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`, `Fn::ImportValue` and the
//! condition functions. Resources resolve to local names: an API to its local API id,
//! an IAM role to its local id (so role ARNs are `arn:aws:iam::{account}:role/{Id}`;
//! [`RoleNames::Deployed`] uses its `RoleName` instead), a
//! function's ARN to `arn:aws:lambda:{region}:{account}:function:{Id}`, anything else
//! to its local id. A resource's local id is its logical id, or, when a stack read
//! before already has that logical id, `{App}{LogicalId}` after the application
//! nesting it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::iam::PolicyStatement;
use crate::policy::Statement;
use crate::yaml::{self, Node};

/// The template's default for an authorizer's result cache when none is given (SAM:
/// `ReauthorizeEvery` defaults to 300).
pub const DEFAULT_RESULT_TTL: u64 = 300;
/// Lambda's default function timeout.
const DEFAULT_FUNCTION_TIMEOUT: u64 = 3;
/// Deepest nesting of applications read (CloudFormation allows more; no template here
/// comes close, and a cycle of files is caught sooner).
const MAX_NESTING: usize = 8;

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

/// Where a template is deployed, for pseudo parameters and ARNs.
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
    /// What an IAM role's `Ref` (and its ARN's name) is.
    pub role_names: RoleNames,
}

/// How IAM roles are named in a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoleNames {
    /// By local id, whatever their `RoleName`: what a local run signs as (the local
    /// gateway's credentials name roles so).
    #[default]
    Local,
    /// As deployed: `RoleName` (and `Path`) when set, else the local id (CloudFormation
    /// would generate one; the local id stands for it).
    Deployed,
}

impl Default for Environment {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "123456789012".into(),
            stack_name: "svcauth-local".into(),
            parameters: BTreeMap::new(),
            template_dir: None,
            role_names: RoleNames::default(),
        }
    }
}

/// A REQUEST authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerDef {
    /// Its name in the API's `Auth.Authorizers`.
    pub name: String,
    /// Local id of the authorizer function.
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
    /// Local id of the API.
    pub api: String,
    /// `/internal/users/{id}`.
    pub path: String,
    /// `GET`, or `ANY`.
    pub method: String,
    /// Local id of the function serving it.
    pub function: String,
    pub auth: RouteAuth,
}

/// A REST API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiDef {
    /// Its local id in the model (the logical id unless another stack had it first).
    pub logical_id: String,
    /// The local API id (also the first segment of its local URL).
    pub api_id: String,
    pub stage: String,
    pub description: String,
    /// Stage variables.
    pub variables: BTreeMap<String, String>,
    /// `AccessLogSetting.Format`, when set.
    pub access_log_format: Option<String>,
    /// `Auth.ApiKeyRequired`: API Gateway refuses (403) a call that comes without a
    /// usage-plan API key (from the authorizer, with `ApiKeySourceType: AUTHORIZER`).
    pub api_key_required: bool,
    /// `Auth.ResourcePolicy.CustomStatements` about `execute-api:Invoke`, with
    /// `execute-api:/...` resources written out as this API's ARNs.
    pub resource_policy: Vec<PolicyStatement>,
    /// Other `Auth.ResourcePolicy` settings (IP, VPC or account lists), not read.
    pub resource_policy_unread: Vec<String>,
}

/// A value of a function's environment, as far as a local run can give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Text(String),
    /// The invoke URL of one of the model's APIs (stage included): locally, that
    /// API's URL on the gateway.
    ApiUrl {
        api: String,
    },
}

/// A Lambda function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDef {
    /// Its local id.
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the Rust binary behind it.
    pub binary: Option<String>,
    pub timeout_secs: u64,
    pub env: BTreeMap<String, EnvValue>,
    /// Local id of its execution role, when it is one of the model's roles.
    pub role: Option<String>,
}

/// An IAM role's statements about `execute-api`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleDef {
    /// Its local id.
    pub logical_id: String,
    /// Its name as read here ([`RoleNames`]): its local id, or its `RoleName`.
    pub name: String,
    pub arn: String,
    /// The statements a local run evaluates per request (no `Condition`, `NotAction`,
    /// `NotResource`).
    pub statements: Vec<Statement>,
    /// Statements skipped because a local run cannot evaluate them (conditions).
    pub skipped: Vec<String>,
    /// Every statement that may be about `execute-api:Invoke`, as written, from the
    /// role's inline policies and the template's policies naming it.
    pub policy: Vec<PolicyStatement>,
    /// Policies the role has that the templates do not show (`ManagedPolicyArns`
    /// outside them, statements not read): they could allow or deny more.
    pub unread_policies: Vec<String>,
    /// `PermissionsBoundary`, when set: it can only take permissions away.
    pub permissions_boundary: Option<String>,
}

/// One stack read into the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackDef {
    pub name: String,
    /// The nesting application's local id (`None` for a template read at the top).
    pub parent_app: Option<String>,
    /// The file, for a nested application (its `Location` resolved).
    pub path: Option<PathBuf>,
    /// Parameter values in force.
    pub parameters: BTreeMap<String, String>,
    /// Its outputs that evaluate to text, by name.
    pub outputs: BTreeMap<String, String>,
}

/// Everything read from the templates.
#[derive(Debug, Clone)]
pub struct Model {
    pub apis: Vec<ApiDef>,
    pub routes: Vec<RouteDef>,
    pub functions: BTreeMap<String, FunctionDef>,
    pub roles: BTreeMap<String, RoleDef>,
    /// Parameter values in force in the (last) template read at the top.
    pub parameters: BTreeMap<String, String>,
    /// Every stack read, in the order they were read (nested ones after their parent's
    /// parameters were known, before the parent's own resources).
    pub stacks: Vec<StackDef>,
    /// API names the templates declare, by local API id: an `AWS::SSM::Parameter`
    /// `.../apis/{apiId}` with the name as its value, or an output holding the
    /// `svcauth apis register --api-id ID --name NAME` command an operator runs.
    pub api_names: BTreeMap<String, String>,
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
        self.roles.values().find(|r| r.name == name)
    }
}

/// The local API id of an API: its local id in lower case without a trailing `Api`
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

/// What every stack read adds to.
#[derive(Default)]
struct Parts {
    apis: Vec<ApiDef>,
    /// API local id → its default authorizer and its REQUEST authorizers.
    api_auth: BTreeMap<String, (Option<String>, BTreeMap<String, AuthorizerDef>)>,
    routes: Vec<RouteDef>,
    functions: BTreeMap<String, FunctionDef>,
    roles: BTreeMap<String, RoleDef>,
    stacks: Vec<StackDef>,
    api_names: BTreeMap<String, String>,
}

/// The reading of one or more templates: what they add and what they export.
struct Reader<'e> {
    env: &'e Environment,
    parts: RefCell<Parts>,
    /// Export name → the exported value (an error when it cannot be evaluated here).
    exports: RefCell<BTreeMap<String, Result<Val, TemplateError>>>,
    /// Local ids given out so far.
    taken: RefCell<HashSet<String>>,
    /// Files of the applications being read (the nesting chain), to refuse a cycle.
    reading: RefCell<Vec<PathBuf>>,
}

/// A nested application, as its parent sees it.
enum App {
    Reading,
    /// Its outputs, each evaluated in its own stack.
    Read(BTreeMap<String, Result<Val, TemplateError>>),
    /// `Location` in the Serverless Application Repository or S3: not read.
    Remote,
}

/// One template being read, with its parameter values and its resources' local ids.
struct Stack<'a, 'e> {
    reader: &'a Reader<'e>,
    name: String,
    /// `""` for a template read at the top, `{file}#` for a nested one: where errors are.
    at_prefix: String,
    dir: Option<PathBuf>,
    /// The template's directory relative to the top template's (empty at the top):
    /// nested files are named relative to it in messages.
    rel_dir: PathBuf,
    resources: &'a Node,
    conditions: &'a Node,
    mappings: &'a Node,
    params: BTreeMap<String, String>,
    /// Parameters of a list type (`List<...>`, `CommaDelimitedList`): a `Ref` is a list.
    list_params: BTreeSet<String>,
    /// Logical id → local id.
    ids: BTreeMap<String, String>,
    condition_cache: RefCell<BTreeMap<String, bool>>,
    apps: RefCell<BTreeMap<String, App>>,
}

impl Stack<'_, '_> {
    fn at(&self, logical: &str) -> String {
        format!("{}Resources.{logical}", self.at_prefix)
    }

    fn resource_type(&self, logical: &str) -> Option<&str> {
        self.resources
            .get(logical)
            .and_then(|r| r.get("Type"))
            .and_then(Node::as_str)
    }

    fn local_id<'s>(&'s self, logical: &'s str) -> &'s str {
        self.ids.get(logical).map(String::as_str).unwrap_or(logical)
    }

    /// `Ref` of a name.
    fn reference(&self, name: &str, at: &str) -> Result<Val, TemplateError> {
        let env = self.reader.env;
        Ok(Val::Str(match name {
            "AWS::Region" => env.region.clone(),
            "AWS::AccountId" => env.account.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::StackName" => self.name.clone(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/local",
                env.region, env.account, self.name
            ),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NoValue" => return Ok(Val::NoValue),
            _ => {
                if let Some(v) = self.params.get(name) {
                    if self.list_params.contains(name) {
                        return Ok(Val::List(
                            v.split(',').map(|s| Val::Str(s.to_owned())).collect(),
                        ));
                    }
                    v.clone()
                } else {
                    match self.resource_type(name) {
                        Some("AWS::Serverless::Api") => local_api_id(self.local_id(name)),
                        Some("AWS::IAM::Role") => self.role_name(name, at)?,
                        Some(_) => self.local_id(name).to_owned(),
                        None => return Err(invalid(at, format!("Ref to unknown name {name}"))),
                    }
                }
            }
        }))
    }

    /// `Fn::GetAtt` of `logical.attr`.
    fn get_att(&self, logical: &str, attr: &str, at: &str) -> Result<Val, TemplateError> {
        let (region, acct) = (&self.reader.env.region, &self.reader.env.account);
        let Some(ty) = self.resource_type(logical) else {
            return Err(invalid(at, format!("GetAtt of unknown resource {logical}")));
        };
        let id = self.local_id(logical);
        if (ty, attr) == ("AWS::EC2::VPCEndpoint", "DnsEntries") {
            // `hosted-zone:name` entries, as EC2 gives them; a local run resolves none.
            return Ok(Val::List(vec![Val::Str(format!(
                "Z0LOCAL:{id}.{region}.vpce.local"
            ))]));
        }
        Ok(Val::Str(match (ty, attr) {
            ("AWS::Serverless::Application", _) if attr.starts_with("Outputs.") => {
                return self.app_output(logical, &attr["Outputs.".len()..], at);
            }
            ("AWS::IAM::Role", "Arn") => self.role_arn(logical, at)?,
            ("AWS::Serverless::Function", "Arn") => {
                format!("arn:aws:lambda:{region}:{acct}:function:{id}")
            }
            ("AWS::Serverless::Api", "Stage") => self
                .property(logical, "StageName")
                .map(|n| self.eval(n, at).and_then(|v| v.into_string(at)))
                .transpose()?
                .unwrap_or_else(|| "Prod".into()),
            ("AWS::Serverless::Api", "RootResourceId") => "root".into(),
            (_, "Arn") => format!("arn:aws:local:{region}:{acct}:{id}"),
            _ => format!("{id}.{attr}"),
        }))
    }

    /// A property of a resource, as written.
    fn property(&self, logical: &str, key: &str) -> Option<&Node> {
        self.resources
            .get(logical)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get(key))
    }

    /// A role's name as read here (see [`RoleNames`]).
    fn role_name(&self, logical: &str, at: &str) -> Result<String, TemplateError> {
        if self.reader.env.role_names == RoleNames::Deployed {
            match self
                .property(logical, "RoleName")
                .map(|n| self.eval(n, at))
                .transpose()?
            {
                Some(Val::Str(name)) => return Ok(name),
                Some(Val::NoValue) | None => {}
                Some(other) => {
                    return Err(invalid(at, format!("RoleName is not a string: {other:?}")))
                }
            }
        }
        Ok(self.local_id(logical).to_owned())
    }

    /// A role's ARN as read here: `arn:aws:iam::{account}:role{Path}{name}` (the path
    /// only when roles are named as deployed).
    fn role_arn(&self, logical: &str, at: &str) -> Result<String, TemplateError> {
        let path = match self.reader.env.role_names {
            RoleNames::Local => None,
            RoleNames::Deployed => self
                .property(logical, "Path")
                .map(|n| self.eval(n, at).and_then(|v| v.into_string(at)))
                .transpose()?,
        };
        Ok(format!(
            "arn:aws:iam::{}:role{}{}",
            self.reader.env.account,
            path.as_deref().unwrap_or("/"),
            self.role_name(logical, at)?
        ))
    }

    /// An output of the nested application `app`, read on first use.
    fn app_output(&self, app: &str, output: &str, at: &str) -> Result<Val, TemplateError> {
        self.read_app(app)?;
        match self.apps.borrow().get(app) {
            Some(App::Read(outputs)) => match outputs.get(output) {
                Some(v) => v.clone(),
                None => Err(invalid(
                    at,
                    format!("the application {app} has no output {output} (for these parameters)"),
                )),
            },
            Some(App::Remote) => Err(invalid(
                at,
                format!("{app}'s Location is not a local file: its outputs are not known here"),
            )),
            Some(App::Reading) | None => Err(invalid(
                at,
                format!("the application {app} does not exist for these parameters"),
            )),
        }
    }

    /// Reads the nested application `app` (once) when it exists.
    fn read_app(&self, app: &str) -> Result<(), TemplateError> {
        match self.apps.borrow().get(app) {
            Some(App::Reading) => {
                return Err(invalid(
                    self.at(app),
                    "the application's parameters need its own outputs (a cycle)",
                ))
            }
            Some(_) => return Ok(()),
            None => {}
        }
        let at = self.at(app);
        let empty = empty_map();
        let res = self
            .resources
            .get(app)
            .ok_or_else(|| invalid(&at, "no such application"))?;
        if !self.exists(res, &at)? {
            return Ok(());
        }
        let props = res.get("Properties").unwrap_or(&empty);
        let location = match props.get("Location") {
            Some(n) => match n.as_str() {
                Some(s) => s.to_owned(),
                // `{ApplicationId, SemanticVersion}`: the Serverless Application Repository.
                None => String::new(),
            },
            // No Location: nothing this reader can read.
            None => String::new(),
        };
        if location.is_empty() || location.starts_with("s3://") || location.starts_with("https://")
        {
            self.apps.borrow_mut().insert(app.to_owned(), App::Remote);
            return Ok(());
        }
        self.apps.borrow_mut().insert(app.to_owned(), App::Reading);
        let result = self.read_local_app(app, &location, props, &at);
        let state = match result {
            Ok(outputs) => App::Read(outputs),
            Err(e) => {
                self.apps.borrow_mut().remove(app);
                return Err(e);
            }
        };
        self.apps.borrow_mut().insert(app.to_owned(), state);
        Ok(())
    }

    fn read_local_app(
        &self,
        app: &str,
        location: &str,
        props: &Node,
        at: &str,
    ) -> Result<Outputs, TemplateError> {
        let dir = self.dir.as_ref().ok_or_else(|| {
            invalid(
                at,
                "a nested application's Location needs the template's directory",
            )
        })?;
        let path = dir.join(location);
        if self.reader.reading.borrow().contains(&path) {
            return Err(invalid(
                at,
                format!("{} nests itself (a cycle of applications)", path.display()),
            ));
        }
        if self.reader.reading.borrow().len() >= MAX_NESTING {
            return Err(invalid(
                at,
                format!("applications nested more than {MAX_NESTING} deep"),
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid(at, format!("cannot read {}: {e}", path.display())))?;
        let mut params = BTreeMap::new();
        let empty = empty_map();
        for (name, v) in props.get("Parameters").unwrap_or(&empty).entries() {
            match self.eval(v, &format!("{at}.Parameters.{name}"))? {
                Val::NoValue => {}
                v => {
                    params.insert(name.clone(), v.into_string(at)?);
                }
            }
        }
        let child = yaml::parse(&text)?;
        self.reader.reading.borrow_mut().push(path.clone());
        let rel = lexical(&self.rel_dir.join(location));
        let result = read_stack(
            self.reader,
            &child,
            StackSource {
                name: format!("{}-{app}", self.name),
                at_prefix: format!("{}#", rel.display()),
                rel_dir: rel.parent().map(Path::to_path_buf).unwrap_or_default(),
                dir: path.parent().map(Path::to_path_buf),
                given: &params,
                parent_app: Some(self.local_id(app).to_owned()),
                path: Some(path.clone()),
            },
        );
        self.reader.reading.borrow_mut().pop();
        result
    }

    fn condition(&self, name: &str, at: &str) -> Result<bool, TemplateError> {
        if let Some(v) = self.condition_cache.borrow().get(name) {
            return Ok(*v);
        }
        let node = self
            .conditions
            .get(name)
            .ok_or_else(|| invalid(at, format!("unknown condition {name}")))?;
        let v = self.eval_condition(node, &format!("{}Conditions.{name}", self.at_prefix))?;
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
            return self.eval_intrinsic(node, func, arg, at);
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

    fn eval_intrinsic(
        &self,
        node: &Node,
        func: &str,
        arg: &Node,
        at: &str,
    ) -> Result<Val, TemplateError> {
        match func {
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
                let parts = self.list(items.get(1).copied(), "Join", at)?;
                let parts: Result<Vec<String>, _> =
                    parts.into_iter().map(|v| v.into_string(at)).collect();
                Ok(Val::Str(parts?.join(sep)))
            }
            "Select" => {
                let items = seq_items(arg);
                let index = match items.first() {
                    Some(n) => self.eval(n, at)?.into_string(at)?,
                    None => return Err(invalid(at, "Select needs [index, list]")),
                };
                let index: usize = index
                    .parse()
                    .map_err(|_| invalid(at, format!("Select index {index:?}")))?;
                let list = self.list(items.get(1).copied(), "Select", at)?;
                list.into_iter()
                    .nth(index)
                    .ok_or_else(|| invalid(at, format!("Select index {index} is out of range")))
            }
            "Split" => {
                let items = seq_items(arg);
                let (Some(sep), Some(text)) =
                    (items.first().and_then(|n| n.as_str()), items.get(1))
                else {
                    return Err(invalid(at, "Split needs [separator, text]"));
                };
                let text = self.eval(text, at)?.into_string(at)?;
                Ok(Val::List(
                    text.split(sep).map(|s| Val::Str(s.to_owned())).collect(),
                ))
            }
            "FindInMap" => {
                let items = seq_items(arg);
                if items.len() != 3 {
                    return Err(invalid(at, "FindInMap needs [map, key, key]"));
                }
                let mut keys = Vec::new();
                for n in items {
                    keys.push(self.eval(n, at)?.into_string(at)?);
                }
                let value = self
                    .mappings
                    .get(&keys[0])
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]))
                    .ok_or_else(|| {
                        invalid(
                            at,
                            format!("Mappings has no {}.{}.{}", keys[0], keys[1], keys[2]),
                        )
                    })?;
                self.eval(value, at)
            }
            "ImportValue" => {
                // `!ImportValue x` tags its own argument: evaluate it without the tag
                // (`Fn::ImportValue: !Sub ...` keeps the argument's own tag).
                let name = if std::ptr::eq(arg, node) {
                    self.eval(&untagged(arg), at)?
                } else {
                    self.eval(arg, at)?
                };
                let name = name.into_string(at)?;
                match self.reader.exports.borrow().get(&name) {
                    Some(v) => v.clone(),
                    None => Err(invalid(
                        at,
                        format!("Fn::ImportValue {name}: no template read before this one exports it (read the exporting stack's template first, e.g. the platform's)"),
                    )),
                }
            }
            "Equals" | "Not" | "And" | "Or" | "Condition" => {
                Ok(Val::Str(self.eval_condition(node, at)?.to_string()))
            }
            other => Err(invalid(at, format!("Fn::{other} is not supported here"))),
        }
    }

    /// A list argument (absent: empty), without `AWS::NoValue` items.
    fn list(&self, node: Option<&Node>, func: &str, at: &str) -> Result<Vec<Val>, TemplateError> {
        let list = node
            .map(|n| self.eval(n, at))
            .transpose()?
            .unwrap_or(Val::List(Vec::new()));
        let Val::List(parts) = list else {
            return Err(invalid(at, format!("{func} needs a list")));
        };
        Ok(parts.into_iter().filter(|v| *v != Val::NoValue).collect())
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

    /// Whether a resource exists for these parameters.
    fn exists(&self, resource: &Node, at: &str) -> Result<bool, TemplateError> {
        match resource.get("Condition").and_then(Node::as_str) {
            None => Ok(true),
            Some(c) => self.condition(c, at),
        }
    }

    /// The existing resources of one type: (logical id, resource, place for errors).
    fn of_type<'n>(
        &'n self,
        ty: &'n str,
    ) -> impl Iterator<Item = Result<(&'n str, &'n Node, String), TemplateError>> + 'n {
        self.resources
            .entries()
            .iter()
            .filter_map(move |(logical, res)| {
                if res.get("Type").and_then(Node::as_str) != Some(ty) {
                    return None;
                }
                let at = self.at(logical);
                match self.exists(res, &at) {
                    Ok(true) => Some(Ok((logical.as_str(), res, at))),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                }
            })
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

/// `path` with `.` and `dir/..` taken out, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.iter().collect()
}

/// `node` without its own tag (the argument of a short-form intrinsic).
fn untagged(node: &Node) -> Node {
    match node.clone() {
        Node::Scalar { value, plain, .. } => Node::Scalar {
            value,
            tag: None,
            plain,
        },
        Node::Seq { items, .. } => Node::Seq { items, tag: None },
        Node::Map { entries, .. } => Node::Map { entries, tag: None },
    }
}

fn empty_map() -> Node {
    Node::Map {
        entries: Vec::new(),
        tag: None,
    }
}

/// Reads a template (and the applications it nests with a local `Location`).
pub fn load(text: &str, env: &Environment) -> Result<Model, TemplateError> {
    load_all(&[(text, env)])
}

/// Reads templates deployed side by side, in order: each one's `Fn::ImportValue` finds
/// the exports of those before it (and of the applications nested earlier). Region and
/// account are the first environment's; each template has its own stack name,
/// parameters and directory. The model holds all of them.
pub fn load_all(templates: &[(&str, &Environment)]) -> Result<Model, TemplateError> {
    let Some((_, first)) = templates.first() else {
        return Err(invalid("templates", "no template to read"));
    };
    let reader = Reader {
        env: first,
        parts: Default::default(),
        exports: Default::default(),
        taken: Default::default(),
        reading: Default::default(),
    };
    let mut parameters = BTreeMap::new();
    for (text, env) in templates {
        let root = yaml::parse(text)?;
        let top = read_stack(
            &reader,
            &root,
            StackSource {
                name: env.stack_name.clone(),
                at_prefix: String::new(),
                rel_dir: PathBuf::new(),
                dir: env.template_dir.clone(),
                given: &env.parameters,
                parent_app: None,
                path: None,
            },
        );
        top?;
        if let Some(s) = reader
            .parts
            .borrow()
            .stacks
            .iter()
            .rev()
            .find(|s| s.parent_app.is_none())
        {
            parameters = s.parameters.clone();
        }
    }
    let Parts {
        apis,
        routes,
        mut functions,
        roles,
        stacks,
        api_names,
        ..
    } = reader.parts.into_inner();

    let mut seen_ids = HashSet::new();
    for a in &apis {
        if !seen_ids.insert(a.api_id.clone()) {
            return Err(invalid(
                format!("Resources.{}", a.logical_id),
                format!("two APIs have the local id {}", a.api_id),
            ));
        }
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
    // An environment value that is one of the model's API URLs (the API id is the
    // host's first label, a VPC endpoint's id may follow after `-`) is that API.
    for f in functions.values_mut() {
        for v in f.env.values_mut() {
            if let EnvValue::Text(text) = v {
                if let Some(api) = api_of_url(text, &apis) {
                    *v = EnvValue::ApiUrl { api };
                }
            }
        }
    }
    Ok(Model {
        apis,
        routes,
        functions,
        roles,
        parameters,
        stacks,
        api_names,
    })
}

/// The API whose invoke URL `text` is (`https://{apiId}[-{vpce}].execute-api.…`).
fn api_of_url(text: &str, apis: &[ApiDef]) -> Option<String> {
    let host = text.strip_prefix("https://")?.split('/').next()?;
    let (label, _) = host.split_once(".execute-api.")?;
    let id = label.split('-').next()?;
    apis.iter()
        .find(|a| a.api_id == id)
        .map(|a| a.logical_id.clone())
}

/// Outputs of a stack by name, each evaluated or the reason it cannot be.
type Outputs = BTreeMap<String, Result<Val, TemplateError>>;

/// A template to read as one stack.
struct StackSource<'g> {
    name: String,
    at_prefix: String,
    rel_dir: PathBuf,
    dir: Option<PathBuf>,
    given: &'g BTreeMap<String, String>,
    parent_app: Option<String>,
    path: Option<PathBuf>,
}

/// Reads one stack into the reader's parts: its nested applications first (in
/// document order, or earlier when a value needs one's outputs), then its APIs,
/// functions and routes, roles, and finally its outputs and exports.
fn read_stack(
    reader: &Reader<'_>,
    root: &Node,
    source: StackSource<'_>,
) -> Result<Outputs, TemplateError> {
    let empty = empty_map();
    let at_prefix = source.at_prefix;
    let resources = root
        .get("Resources")
        .ok_or_else(|| invalid(format!("{at_prefix}template"), "no Resources"))?;

    // Parameters: defaults, then values given (checked against AllowedValues). A
    // parameter of an AWS-specific type with no value (VpcId, SubnetIds: a local run has
    // no VPC) gets a placeholder `local-{Name}`; nothing the gateway decides reads it.
    let declared = root.get("Parameters").unwrap_or(&empty);
    let mut params = BTreeMap::new();
    let mut list_params = BTreeSet::new();
    for (name, p) in declared.entries() {
        let kind = p.get("Type").and_then(Node::as_str).unwrap_or("");
        if kind.starts_with("List<") || kind == "CommaDelimitedList" {
            list_params.insert(name.clone());
        }
        if let Some(d) = p.get("Default").and_then(Node::as_str) {
            params.insert(name.clone(), d.to_owned());
        } else if kind.starts_with("AWS::") || kind.starts_with("List<AWS::") {
            params.insert(name.clone(), format!("local-{name}"));
        }
    }
    for (name, value) in source.given {
        let p = declared.get(name).ok_or_else(|| {
            invalid(
                format!("{at_prefix}parameters"),
                format!("the template has no parameter {name}"),
            )
        })?;
        let allowed: Vec<&str> = p
            .get("AllowedValues")
            .map(|a| a.items().iter().filter_map(Node::as_str).collect())
            .unwrap_or_default();
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(invalid(
                format!("{at_prefix}parameter {name}"),
                format!("{value:?} is not one of {}", allowed.join(", ")),
            ));
        }
        params.insert(name.clone(), value.clone());
    }

    // Local ids: the logical id unless a stack read before took it.
    let mut ids = BTreeMap::new();
    {
        let mut taken = reader.taken.borrow_mut();
        for (logical, _) in resources.entries() {
            let mut id = logical.clone();
            if taken.contains(&id) {
                let prefix = source.parent_app.as_deref().unwrap_or("");
                id = format!("{prefix}{logical}");
                let mut n = 2;
                while taken.contains(&id) {
                    id = format!("{prefix}{logical}{n}");
                    n += 1;
                }
            }
            taken.insert(id.clone());
            ids.insert(logical.clone(), id);
        }
    }

    let stack = Stack {
        reader,
        name: source.name,
        at_prefix,
        rel_dir: source.rel_dir,
        dir: source.dir,
        resources,
        conditions: root.get("Conditions").unwrap_or(&empty),
        mappings: root.get("Mappings").unwrap_or(&empty),
        params,
        list_params,
        ids,
        condition_cache: Default::default(),
        apps: Default::default(),
    };
    reader.parts.borrow_mut().stacks.push(StackDef {
        name: stack.name.clone(),
        parent_app: source.parent_app,
        path: source.path,
        parameters: stack.params.clone(),
        outputs: BTreeMap::new(),
    });
    let index = reader.parts.borrow().stacks.len() - 1;
    let globals_fn = root.get("Globals").and_then(|g| g.get("Function"));
    let globals_api = root.get("Globals").and_then(|g| g.get("Api"));

    for app in stack.of_type("AWS::Serverless::Application") {
        let (logical, _, _) = app?;
        stack.read_app(logical)?;
    }
    read_apis(&stack, globals_api)?;
    read_functions(&stack, globals_fn)?;
    read_roles(&stack)?;

    // Outputs, and the exports later templates import.
    let mut outputs = Outputs::new();
    for (name, out) in root.get("Outputs").unwrap_or(&empty).entries() {
        let at = format!("{}Outputs.{name}", stack.at_prefix);
        if !stack.exists(out, &at)? {
            continue;
        }
        let value = match out.get("Value") {
            Some(v) => stack.eval(v, &at),
            None => Err(invalid(&at, "no Value")),
        };
        if let Some(export) = out.get("Export").and_then(|e| e.get("Name")) {
            let export = stack.eval(export, &at)?.into_string(&at)?;
            let mut exports = reader.exports.borrow_mut();
            if exports.contains_key(&export) {
                return Err(invalid(
                    &at,
                    format!("the export {export} is already exported by a stack read before"),
                ));
            }
            exports.insert(export, value.clone());
        }
        if let Ok(Val::Str(text)) = &value {
            let names = registered_names(text);
            let mut parts = reader.parts.borrow_mut();
            parts.api_names.extend(names);
            parts.stacks[index]
                .outputs
                .insert(name.clone(), text.clone());
        }
        outputs.insert(name.clone(), value);
    }
    // The names this stack writes for its APIs, as the authorizer once read them.
    for param in stack.of_type("AWS::SSM::Parameter") {
        let (_, res, at) = param?;
        let props = res.get("Properties").unwrap_or(&empty);
        let value = |k: &str| {
            props
                .get(k)
                .and_then(|n| stack.eval(n, &at).ok())
                .and_then(|v| v.into_string(&at).ok())
        };
        if let (Some(name), Some(value)) = (value("Name"), value("Value")) {
            if let Some((_, id)) = name.rsplit_once("/apis/") {
                reader
                    .parts
                    .borrow_mut()
                    .api_names
                    .insert(id.to_owned(), value);
            }
        }
    }
    Ok(outputs)
}

/// `(api id, name)` of each `svcauth apis register ... --api-id ID --name NAME` in a
/// text (an output telling the operator what to run after a deploy).
fn registered_names(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for command in text.split("svcauth apis register").skip(1) {
        let command = command.split(['&', ';', '\n', '|']).next().unwrap_or("");
        let words: Vec<&str> = command.split_whitespace().collect();
        let arg = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .and_then(|i| words.get(i + 1))
                .map(|w| w.trim_matches(['\'', '"']).to_owned())
        };
        if let (Some(id), Some(name)) = (arg("--api-id"), arg("--name")) {
            out.push((id, name));
        }
    }
    out
}

fn read_apis(stack: &Stack<'_, '_>, globals_api: Option<&Node>) -> Result<(), TemplateError> {
    let empty = empty_map();
    for api in stack.of_type("AWS::Serverless::Api") {
        let (logical, res, at) = api?;
        let props = res.get("Properties").unwrap_or(&empty);
        let prop = |k: &str| props.get(k).or_else(|| globals_api.and_then(|g| g.get(k)));
        let stage = match prop("StageName") {
            Some(n) => stack.eval(n, &at)?.into_string(&at)?,
            None => return Err(invalid(&at, "no StageName")),
        };
        let description = match prop("Description") {
            Some(n) => stack.eval(n, &at)?.into_string(&at)?,
            None => String::new(),
        };
        let mut default = None;
        let mut authorizers = BTreeMap::new();
        if let Some(auth) = prop("Auth") {
            if let Some(d) = auth.get("DefaultAuthorizer") {
                default = Some(stack.eval(d, &at)?.into_string(&at)?);
            }
            for (name, a) in auth.get("Authorizers").unwrap_or(&empty).entries() {
                let at = format!("{at}.Auth.Authorizers.{name}");
                if let Some(def) = authorizer(stack, name, a, &at)? {
                    authorizers.insert(name.clone(), def);
                }
            }
        }
        let mut variables = BTreeMap::new();
        if let Some(v) = prop("Variables") {
            if let Val::Map(entries) = stack.eval(v, &format!("{at}.Variables"))? {
                for (k, v) in entries {
                    variables.insert(k, v.into_string(&at)?);
                }
            }
        }
        let access_log_format = match prop("AccessLogSetting").and_then(|a| a.get("Format")) {
            Some(f) => Some(stack.eval(f, &at)?.into_string(&at)?),
            None => None,
        };
        let id = stack.local_id(logical).to_owned();
        let auth = prop("Auth");
        let api_key_required = match auth.and_then(|a| a.get("ApiKeyRequired")) {
            Some(n) => stack.eval(n, &at)?.into_string(&at)? == "true",
            None => false,
        };
        let mut resource_policy = Vec::new();
        let mut resource_policy_unread = Vec::new();
        for (k, v) in auth
            .and_then(|a| a.get("ResourcePolicy"))
            .map(Node::entries)
            .unwrap_or_default()
        {
            let rat = format!("{at}.Auth.ResourcePolicy.{k}");
            if k != "CustomStatements" {
                resource_policy_unread.push(format!("{rat} is not read"));
                continue;
            }
            let statements = match stack.eval(v, &rat)? {
                Val::List(l) => l,
                other => vec![other],
            };
            let doc = Val::Map(vec![("Statement".into(), Val::List(statements))]);
            let (mut read, unread) = policy_statements(&doc, &rat);
            // SAM writes `execute-api:/stage/METHOD/path` out as this API's ARN.
            let arn = format!(
                "arn:aws:execute-api:{}:{}:{}/",
                stack.reader.env.region,
                stack.reader.env.account,
                local_api_id(&id)
            );
            for st in &mut read {
                for r in st.resources.iter_mut().chain(st.not_resources.iter_mut()) {
                    if let Some(rest) = r.strip_prefix("execute-api:/") {
                        *r = format!("{arn}{rest}");
                    }
                }
            }
            resource_policy.extend(read);
            resource_policy_unread.extend(unread);
        }
        let mut parts = stack.reader.parts.borrow_mut();
        parts.api_auth.insert(id.clone(), (default, authorizers));
        parts.apis.push(ApiDef {
            api_id: local_api_id(&id),
            logical_id: id,
            stage,
            description,
            variables,
            access_log_format,
            api_key_required,
            resource_policy,
            resource_policy_unread,
        });
    }
    Ok(())
}

fn read_functions(stack: &Stack<'_, '_>, globals_fn: Option<&Node>) -> Result<(), TemplateError> {
    let empty = empty_map();
    for function in stack.of_type("AWS::Serverless::Function") {
        let (logical, res, at) = function?;
        let props = res.get("Properties").unwrap_or(&empty);
        let def = function_def(stack, res, globals_fn, &at)?;
        let id = stack.local_id(logical).to_owned();
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
            let api_id = stack.local_id(&api).to_owned();
            let Some((default, authorizers)) =
                stack.reader.parts.borrow().api_auth.get(&api_id).cloned()
            else {
                if stack.resources.get(&api).is_some() {
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
                Some(n) => Some(stack.eval(n, &eat)?.into_string(&eat)?),
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
            stack.reader.parts.borrow_mut().routes.push(RouteDef {
                api: api_id,
                path,
                method,
                function: id.clone(),
                auth,
            });
        }
        stack.reader.parts.borrow_mut().functions.insert(
            id.clone(),
            FunctionDef {
                logical_id: id,
                ..def
            },
        );
    }
    Ok(())
}

/// A function's build, timeout, environment and role (`logical_id` left empty).
fn function_def(
    stack: &Stack<'_, '_>,
    res: &Node,
    globals_fn: Option<&Node>,
    at: &str,
) -> Result<FunctionDef, TemplateError> {
    let at = at.to_owned();
    let empty = empty_map();
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
        .map(|n| stack.eval(n, &at).and_then(|v| v.into_string(&at)))
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
            let value = match stack.eval(v, &vat)? {
                Val::NoValue => {
                    env_vars.remove(k);
                    continue;
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
            let arn = stack.eval(r, &at)?.into_string(&at)?;
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
    stack: &Stack<'_, '_>,
    name: &str,
    a: &Node,
    at: &str,
) -> Result<Option<AuthorizerDef>, TemplateError> {
    let payload = a
        .get("FunctionPayloadType")
        .map(|n| stack.eval(n, at).and_then(|v| v.into_string(at)))
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
    // A function of the model, by its ARN: `!GetAtt Fn.Arn`, a nested application's
    // output, or an export of a stack read before.
    let arn = stack.eval(arn, at)?.into_string(at)?;
    let function = arn
        .split_once(":function:")
        .filter(|(prefix, _)| prefix.starts_with("arn:aws:lambda:"))
        .map(|(_, name)| name.to_owned())
        .ok_or_else(|| {
            invalid(
                at,
                format!("FunctionArn {arn:?} is not a function of the templates read (give !GetAtt <Function>.Arn, !GetAtt <App>.Outputs.<Name> of a nested application with a local Location, or the import of an export of a template read before)"),
            )
        })?;
    let empty = empty_map();
    let identity = a.get("Identity").unwrap_or(&empty);
    let list = |k: &str| -> Result<Vec<String>, TemplateError> {
        match identity.get(k) {
            None => Ok(Vec::new()),
            Some(n) => match stack.eval(n, at)? {
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
            let s = stack.eval(n, at)?.into_string(at)?;
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

/// `execute-api` statements of every role, from its inline `Policies`, from
/// `AWS::IAM::RolePolicy` / `AWS::IAM::Policy` / `AWS::IAM::ManagedPolicy` resources
/// naming it, and from the template's managed policies in its `ManagedPolicyArns`.
fn read_roles(stack: &Stack<'_, '_>) -> Result<(), TemplateError> {
    let empty = empty_map();
    let managed: BTreeMap<&str, &str> = stack
        .resources
        .entries()
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Node::as_str) == Some("AWS::IAM::ManagedPolicy"))
        .map(|(l, _)| (stack.local_id(l), l.as_str()))
        .collect();
    for role in stack.of_type("AWS::IAM::Role") {
        let (logical, res, at) = role?;
        let id = stack.local_id(logical).to_owned();
        let mut role = RoleDef {
            name: stack.role_name(logical, &at)?,
            arn: stack.role_arn(logical, &at)?,
            logical_id: id.clone(),
            ..Default::default()
        };
        let props = res.get("Properties").unwrap_or(&empty);
        if let Some(p) = props.get("Policies") {
            if let Val::List(policies) = stack.eval(p, &at)? {
                for pol in policies {
                    let Val::Map(entries) = pol else { continue };
                    let name = entries
                        .iter()
                        .find(|(k, _)| k == "PolicyName")
                        .and_then(|(_, v)| match v {
                            Val::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    if let Some((_, doc)) = entries.into_iter().find(|(k, _)| k == "PolicyDocument")
                    {
                        add_statements(&mut role, doc, &format!("{at}.Policies.{name}"));
                    }
                }
            }
        }
        if let Some(arns) = props.get("ManagedPolicyArns") {
            let arns = match stack.eval(arns, &at)? {
                Val::List(l) => l,
                other => vec![other],
            };
            for arn in arns {
                let arn = arn.into_string(&at)?;
                let doc = managed.get(arn.as_str()).and_then(|l| {
                    stack
                        .resources
                        .get(l)
                        .and_then(|r| r.get("Properties"))
                        .and_then(|p| p.get("PolicyDocument"))
                });
                match doc {
                    Some(doc) => {
                        let doc = stack.eval(doc, &at)?;
                        add_statements(&mut role, doc, &stack.at(&arn));
                    }
                    None => role.unread_policies.push(format!(
                        "{at}: managed policy {arn} is not in the templates read"
                    )),
                }
            }
        }
        if let Some(b) = props.get("PermissionsBoundary") {
            if let Val::Str(b) = stack.eval(b, &at)? {
                role.permissions_boundary = Some(b);
            }
        }
        stack.reader.parts.borrow_mut().roles.insert(id, role);
    }
    for (logical, res) in stack.resources.entries() {
        let ty = res.get("Type").and_then(Node::as_str);
        if !matches!(
            ty,
            Some("AWS::IAM::RolePolicy" | "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy")
        ) {
            continue;
        }
        let at = stack.at(logical);
        if !stack.exists(res, &at)? {
            continue;
        }
        let props = res.get("Properties").unwrap_or(&empty);
        let mut names = Vec::new();
        if let Some(n) = props.get("RoleName") {
            names.push(stack.eval(n, &at)?.into_string(&at)?);
        }
        if let Some(n) = props.get("Roles") {
            if let Val::List(items) = stack.eval(n, &at)? {
                for i in items {
                    names.push(i.into_string(&at)?);
                }
            }
        }
        let Some(doc) = props.get("PolicyDocument") else {
            continue;
        };
        let doc = stack.eval(doc, &at)?;
        let mut parts = stack.reader.parts.borrow_mut();
        for name in names {
            // Roles are named by `!Ref Role`: their name.
            if let Some(role) = parts.roles.values_mut().find(|r| r.name == name) {
                add_statements(role, doc.clone(), &at);
            }
        }
    }
    Ok(())
}

/// Adds a policy document's `execute-api` statements to a role: all of them to
/// [`RoleDef::policy`], those a local run evaluates to [`RoleDef::statements`].
fn add_statements(role: &mut RoleDef, doc: Val, at: &str) {
    let (read, unread) = policy_statements(&doc, at);
    role.unread_policies.extend(unread);
    for st in read {
        if !st.condition_keys.is_empty()
            || !st.not_resources.is_empty()
            || !st.not_actions.is_empty()
        {
            role.skipped.push(format!(
                "{}: an execute-api statement with Condition/NotResource/NotAction is not evaluated locally",
                st.source
            ));
        } else {
            role.statements.push(Statement {
                allow: st.allow,
                actions: st.actions.clone(),
                resources: st.resources.clone(),
            });
        }
        role.policy.push(st);
    }
}

/// The statements of a policy document that may be about `execute-api:Invoke`, and
/// what could not be read (a statement that is not a map, an `Effect` that is neither
/// `Allow` nor `Deny`, a value that is not a string).
fn policy_statements(doc: &Val, at: &str) -> (Vec<PolicyStatement>, Vec<String>) {
    let mut read = Vec::new();
    let mut unread = Vec::new();
    let Val::Map(doc) = doc else {
        unread.push(format!("{at}: the policy document is not a map"));
        return (read, unread);
    };
    let list = match doc.iter().find(|(k, _)| k == "Statement").map(|(_, v)| v) {
        Some(Val::List(l)) => l.iter().collect::<Vec<_>>(),
        Some(m @ Val::Map(_)) => vec![m],
        _ => {
            unread.push(format!("{at}: no Statement list"));
            return (read, unread);
        }
    };
    for (i, s) in list.into_iter().enumerate() {
        let Val::Map(fields) = s else {
            unread.push(format!("{at}, statement {}: not a map", i + 1));
            continue;
        };
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let sid = match get("Sid") {
            Some(Val::Str(s)) => format!(" ({s})"),
            _ => String::new(),
        };
        let source = format!("{at}, statement {}{sid}", i + 1);
        let mut bad = false;
        let mut strings = |v: Option<&Val>| -> Vec<String> {
            match v {
                None => Vec::new(),
                Some(Val::Str(s)) => vec![s.clone()],
                Some(Val::List(l)) => l
                    .iter()
                    .filter_map(|v| match v {
                        Val::Str(s) => Some(s.clone()),
                        _ => {
                            bad = true;
                            None
                        }
                    })
                    .collect(),
                Some(_) => {
                    bad = true;
                    Vec::new()
                }
            }
        };
        let actions = strings(get("Action"));
        let not_actions = strings(get("NotAction"));
        let resources = strings(get("Resource"));
        let not_resources = strings(get("NotResource"));
        let principals = match get("Principal") {
            Some(Val::Map(p)) => p
                .iter()
                .flat_map(|(_, v)| match v {
                    Val::Str(s) => vec![s.clone()],
                    Val::List(l) => l
                        .iter()
                        .filter_map(|v| match v {
                            Val::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                })
                .collect(),
            other => strings(other),
        };
        let condition_keys: Vec<String> = match get("Condition") {
            None => Vec::new(),
            Some(Val::Map(ops)) => ops
                .iter()
                .flat_map(|(op, keys)| match keys {
                    Val::Map(keys) => keys.iter().map(|(k, _)| k.clone()).collect(),
                    _ => vec![op.clone()],
                })
                .collect(),
            Some(_) => vec!["Condition".into()],
        };
        let allow = match get("Effect") {
            Some(Val::Str(e)) if e.eq_ignore_ascii_case("Allow") => true,
            Some(Val::Str(e)) if e.eq_ignore_ascii_case("Deny") => false,
            _ => {
                unread.push(format!("{source}: Effect is not Allow or Deny"));
                continue;
            }
        };
        let st = PolicyStatement {
            source,
            allow,
            actions,
            not_actions,
            resources,
            not_resources,
            condition_keys,
            principals,
        };
        if !st.covers_invoke() {
            continue;
        }
        if bad || get("NotPrincipal").is_some() {
            unread.push(format!(
                "{}: a value that is not a string (or NotPrincipal) is not read",
                st.source
            ));
            continue;
        }
        read.push(st);
    }
    (read, unread)
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

    /// The project's root template: the platform (platform/template.yaml, nesting the
    /// authorizer application three times) and the example (example/template.yaml,
    /// importing the platform's exports), as the gateway reads them.
    fn project(mode: &str) -> Model {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("template.yaml")).unwrap();
        load(
            &text,
            &Environment {
                template_dir: Some(root),
                ..env(mode)
            },
        )
        .unwrap()
    }

    /// The token modes: the example's key APIs behind the platform's token-taking
    /// instances, the token API behind the key-only one, tutor-service in token mode.
    #[test]
    fn the_project_template_in_the_token_modes() {
        for (mode, function, headers, ttl, accept) in [
            (
                "token",
                "TokenAuthorizerAuthorizerFunction",
                vec!["Authorization".to_owned()],
                60,
                "token",
            ),
            (
                "key-or-token",
                "KeyOrTokenAuthorizerAuthorizerFunction",
                vec![],
                0,
                "api-key,token",
            ),
        ] {
            let m = project(mode);
            let ids: Vec<&str> = m.apis.iter().map(|a| a.api_id.as_str()).collect();
            assert_eq!(ids, ["token", "identitykey", "tutorkey"], "{mode}");
            for r in m.routes.iter().filter(|r| r.api != "TokenApi") {
                let RouteAuth::Request(a) = &r.auth else {
                    panic!("{mode}: {r:?}")
                };
                assert_eq!((&a.headers, a.ttl_secs), (&headers, ttl), "{mode}: {r:?}");
                assert_eq!(a.function, function);
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
                        "AuthorizerFunction [\"x-service-api-key\"]".into()
                    ),
                    ("POST".into(), "/token/iam".into(), "AWS_IAM".into()),
                    ("GET".into(), "/.well-known/jwks.json".into(), "NONE".into()),
                ],
                "{mode}"
            );
            let accepts = |f: &str| m.functions[f].env.get("SVCAUTH_ACCEPT").cloned();
            assert_eq!(accepts(function), Some(EnvValue::Text(accept.into())));
            assert_eq!(
                accepts("AuthorizerFunction"),
                Some(EnvValue::Text("api-key".into()))
            );
            let tutor = &m.functions["TutorServiceFunction"];
            assert_eq!(
                tutor.env["SERVICE_AUTH_MODE"],
                EnvValue::Text("token".into())
            );
            // the platform's export, recognised as the token API's URL
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

    /// The project's root template, as the gateway reads it.
    #[test]
    fn the_project_template() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("template.yaml")).unwrap();
        // The platform and the example are nested applications.
        let err = load(&text, &super::tests::env("api-key"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Resources.Platform"), "{err}");
        let m = project("both");
        let names: Vec<&str> = m.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "svcauth-local",
                "svcauth-local-Platform",
                "svcauth-local-Platform-KeyAuthorizer",
                "svcauth-local-Platform-TokenAuthorizer",
                "svcauth-local-Platform-KeyOrTokenAuthorizer",
                "svcauth-local-Example",
            ]
        );
        let ids: Vec<&str> = m.apis.iter().map(|a| a.api_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "token",
                "identitykey",
                "tutorkey",
                "identityiam",
                "tutoriam"
            ]
        );
        assert!(m
            .apis
            .iter()
            .all(|a| a.stage == "v1" && a.access_log_format.is_some()));
        // one access log format, the platform's and the example's
        let formats: std::collections::BTreeSet<_> =
            m.apis.iter().map(|a| a.access_log_format.clone()).collect();
        assert_eq!(formats.len(), 1);
        let key_routes: Vec<String> = m
            .routes
            .iter()
            .filter(|r| matches!(&r.auth, RouteAuth::Request(a) if a.headers == ["x-service-api-key"] && a.ttl_secs == 300 && a.function == "AuthorizerFunction"))
            .map(|r| format!("{} {} {}", r.api, r.method, r.path))
            .collect();
        assert_eq!(
            key_routes,
            [
                "TokenApi POST /token",
                "IdentityKeyApi GET /internal/users/{id}",
                "IdentityKeyApi GET /internal/users/by-email/{email}",
                "IdentityKeyApi POST /internal/users",
                "TutorKeyApi GET /internal/tutor/students/{id}/profile",
            ]
        );
        assert_eq!(
            m.routes.iter().filter(|r| r.auth == RouteAuth::Iam).count(),
            5
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
        // The three instances of the one authorizer application.
        for (function, accept) in [
            ("AuthorizerFunction", "api-key"),
            ("TokenAuthorizerAuthorizerFunction", "token"),
            ("KeyOrTokenAuthorizerAuthorizerFunction", "api-key,token"),
        ] {
            let authorizer = &m.functions[function];
            assert_eq!(authorizer.timeout_secs, 5, "{function}");
            assert_eq!(authorizer.binary.as_deref(), Some("authorizer"));
            assert_eq!(
                authorizer.env["SVCAUTH_SSM_PATH"],
                EnvValue::Text("/svcauth/dev/keys".into())
            );
            assert_eq!(
                authorizer.env["SVCAUTH_ACCEPT"],
                EnvValue::Text(accept.into())
            );
        }
        assert_eq!(
            m.functions["AuthorizerFunction"].role.as_deref(),
            Some("AuthorizerRole")
        );
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
        // The root names the example's roles to the platform's issuer by the names a
        // deployed stack gives them; the example prints its own line.
        let example = m.stacks.last().unwrap();
        assert_eq!(
            example.outputs["TokenIamRoles"],
            "TutorServiceRole=tutor-service,TutorFunctionRole=tutor-service,AdminServiceRole=admin-service"
        );
        assert_eq!(
            m.functions["TokenIssuerFunction"].env["SVCAUTH_IAM_ROLES"],
            EnvValue::Text(
                "svcauth-local-tutor-service=tutor-service,svcauth-local-tutor-function=tutor-service,svcauth-local-admin-service=admin-service"
                    .into()
            )
        );
        // api-key mode has no IAM APIs and no invoke policies.
        let m = project("api-key");
        assert_eq!(m.apis.len(), 3);
        assert!(m.roles["TutorServiceRole"].statements.is_empty());
    }

    /// What `svcauth access` reads besides routes: role names and full statements
    /// (NotResource, conditions), policies it cannot see, resource policies, the API
    /// key requirement, and the API names the template declares.
    #[test]
    fn roles_policies_and_declared_names() {
        let t = r#"
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Auth:
        DefaultAuthorizer: AWS_IAM
        ApiKeyRequired: true
        ResourcePolicy:
          CustomStatements:
            - {Sid: Net, Effect: Deny, Principal: "*", Action: execute-api:Invoke, Resource: execute-api:/*, Condition: {StringNotEquals: {aws:SourceVpce: vpce-1}}}
          IpRangeWhitelist: [10.0.0.0/8]
  Named:
    Type: AWS::IAM::Role
    Properties:
      RoleName: team-caller
      Path: /svc/
      ManagedPolicyArns: [arn:aws:iam::aws:policy/AmazonAPIGatewayInvokeFullAccess, !Ref Local]
      PermissionsBoundary: arn:aws:iam::123456789012:policy/boundary
      Policies:
        - PolicyName: inline
          PolicyDocument:
            Statement:
              - {Effect: Allow, NotAction: s3:*, NotResource: !Sub "arn:aws:execute-api:*:*:${Api}/v1/POST/*"}
              - {Effect: Allow, Action: s3:GetObject, Resource: "*"}
  Local:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Statement: {Effect: Deny, Action: "execute-api:*", Resource: "*", Condition: {Bool: {aws:SecureTransport: "false"}}}
  Name:
    Type: AWS::SSM::Parameter
    Properties: {Name: !Sub "/svcauth/dev/apis/${Api}", Type: String, Value: billing}
Outputs:
  Register:
    Value: !Sub "svcauth apis register --env dev --api-id ${Api} --name billing2 && svcauth apis register --api-id x1 --name other"
"#;
        let m = load(t, &Environment::default()).unwrap();
        let role = &m.roles["Named"];
        // Named by its local id, as the local gateway's credentials name roles...
        assert_eq!(role.name, "Named");
        assert_eq!(role.arn, "arn:aws:iam::123456789012:role/Named");
        assert!(m.role_by_name("Named").is_some());
        // ... or as deployed.
        let deployed = Environment {
            role_names: RoleNames::Deployed,
            ..Environment::default()
        };
        let d = load(t, &deployed).unwrap();
        assert_eq!(d.roles["Named"].name, "team-caller");
        assert_eq!(
            d.roles["Named"].arn,
            "arn:aws:iam::123456789012:role/svc/team-caller"
        );
        let sources: Vec<&str> = role.policy.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "Resources.Named.Policies.inline, statement 1",
                "Resources.Local, statement 1"
            ]
        );
        assert_eq!(
            role.policy[0].not_resources,
            ["arn:aws:execute-api:*:*:api/v1/POST/*"]
        );
        assert_eq!(role.policy[1].condition_keys, ["aws:SecureTransport"]);
        // The gateway evaluates neither per request.
        assert!(role.statements.is_empty());
        assert_eq!(role.skipped.len(), 2);
        assert_eq!(role.unread_policies.len(), 1, "{:?}", role.unread_policies);
        assert!(role.unread_policies[0].contains("AmazonAPIGatewayInvokeFullAccess"));
        assert_eq!(
            role.permissions_boundary.as_deref(),
            Some("arn:aws:iam::123456789012:policy/boundary")
        );
        let api = m.api("Api").unwrap();
        assert!(api.api_key_required);
        assert_eq!(api.resource_policy.len(), 1);
        assert_eq!(
            api.resource_policy[0].resources,
            ["arn:aws:execute-api:us-east-1:123456789012:api/*"]
        );
        assert_eq!(api.resource_policy[0].principals, ["*"]);
        assert_eq!(api.resource_policy[0].condition_keys, ["aws:SourceVpce"]);
        assert_eq!(api.resource_policy_unread.len(), 1);
        // A parameter the stack writes is the registry entry itself: it wins over a
        // command an operator is told to run.
        assert_eq!(m.api_names["api"], "billing");
        assert_eq!(m.api_names["x1"], "other");
    }

    /// A VPC's parameters have no value in a local run: a placeholder, and a list
    /// parameter is a list (a parent joins it to pass it on, a child splits it).
    #[test]
    fn aws_typed_parameters_get_a_placeholder_and_lists_stay_lists() {
        let t = r#"
Parameters:
  VpcId: {Type: "AWS::EC2::VPC::Id"}
  SubnetIds: {Type: "List<AWS::EC2::Subnet::Id>"}
  Extra: {Type: CommaDelimitedList, Default: "a,b"}
  Name: {Type: String}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          VPC: !Ref VpcId
          SUBNETS: !Join [",", !Ref SubnetIds]
          SECOND: !Select [1, !Ref Extra]
"#;
        let m = load(t, &Environment::default()).unwrap();
        let env = &m.functions["Fn"].env;
        assert_eq!(env["VPC"], EnvValue::Text("local-VpcId".into()));
        assert_eq!(env["SUBNETS"], EnvValue::Text("local-SubnetIds".into()));
        assert_eq!(env["SECOND"], EnvValue::Text("b".into()));
        // a plain parameter with no value is still an error where it is used
        let used = t.replace("!Ref VpcId", "!Ref Name");
        let err = load(&used, &Environment::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Name"), "{err}");
    }

    #[test]
    fn local_api_ids() {
        assert_eq!(local_api_id("IdentityKeyApi"), "identitykey");
        assert_eq!(local_api_id("Api"), "api");
        assert_eq!(local_api_id("Billing"), "billing");
    }
}
