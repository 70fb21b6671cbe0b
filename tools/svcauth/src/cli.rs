//! The command line: one clap struct per command, every option documented.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::EXIT_CODES_HELP;

/// How long the authorizer and API Gateway may keep answering for a revoked key, as
/// shown in `keys revoke --help` and printed after a revocation.
pub const REVOCATION_BOUND: &str = "\
A revoked key stops working within the authorizer's cache TTL plus API Gateway's
authorizer result TTL plus one store load: SVCAUTH_CACHE_TTL_SECS (default 300 s) +
the template's AuthorizerResultTtl (ReauthorizeEvery, default 300 s, at most 3600 s)
+ at most SVCAUTH_LOAD_TIMEOUT_MS (4 s), so within about 10 minutes with the defaults.
While the authorizer cannot read SSM it keeps its last loaded store for at most
SVCAUTH_STALE_GRACE_SECS (default 900 s) more: 25 minutes with the defaults. No later
write of the service's document, by anyone, can bring the key back: its revocation
marker is read by every load (docs/keys.md).";

/// The same for a store file (`--store file`): no SSM, no markers.
pub const FILE_REVOCATION_BOUND: &str = "\
A revoked key stops working once the authorizer reloads the store file
(SVCAUTH_CACHE_TTL_SECS, default 300 s; the local gateway's --store-ttl) plus the API's
authorizer result TTL (the local gateway's --authorizer-ttl, else the template's
ReauthorizeEvery, 300 s): within about 10 minutes with the defaults. The store file's
lock serialises writers, so no later write brings the key back.";

/// Manage the service API keys the svcauth authorizer accepts, and the key set and
/// brakes of signed service tokens.
///
/// Writes exactly the layout the authorizer reads: one SecureString service document
/// per calling service under the key store path (hashed key records only), each
/// caller's clear key, once, in its own SecureString parameter, the token key set
/// (JWKS) in one SecureString (`tokens keys`) and the API registry (`apis`). AWS region, profile and
/// endpoint come from the usual AWS configuration chain (AWS_REGION, AWS_PROFILE,
/// AWS_ENDPOINT_URL, ~/.aws/config); status goes to stderr, tables and JSON to stdout.
#[derive(Debug, Parser)]
#[command(name = "svcauth", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes (before or after the command name).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Store and AWS options")]
pub struct GlobalArgs {
    /// Where the key records live: `ssm` (SSM Parameter Store, what a deployed
    /// authorizer reads) or `file` (a JSON array of service documents, what an
    /// authorizer with SVCAUTH_KEY_SOURCE=file reads).
    #[arg(long, value_enum, default_value_t = StoreKind::Ssm, global = true)]
    pub store: StoreKind,
    /// The store file for `--store file` (created by the first write if missing).
    #[arg(long, value_name = "PATH", env = "SVCAUTH_KEYS_FILE", global = true)]
    pub file: Option<PathBuf>,
    /// SSM path of the key store, as the authorizer's SVCAUTH_SSM_PATH
    /// [default: /svcauth/{env}/keys].
    #[arg(long, value_name = "SSM_PATH", env = "SVCAUTH_SSM_PATH", global = true)]
    pub path: Option<String>,
    /// Environment name (1-12 of a-z, 0-9): tags new keys (`svcauth_{env}_...`) and
    /// names the default store path and delivery parameters.
    #[arg(
        long,
        value_name = "ENV",
        env = "SVCAUTH_ENV",
        default_value = "dev",
        global = true
    )]
    pub env: String,
    /// KMS key (id, ARN or alias) that encrypts every SecureString svcauth writes
    /// (service documents, delivered keys, the token key set, the API registry): the
    /// platform's store key (its StoreKeyArn output), so the authorizer and the issuer,
    /// allowed to decrypt with that key only, can read them [default: the account's
    /// alias/aws/ssm].
    #[arg(long, value_name = "KEY", env = "SVCAUTH_KMS_KEY_ID", global = true)]
    pub kms_key_id: Option<String>,
    /// SSM path of the API registry, as the authorizer's SVCAUTH_API_PATH
    /// [default: next to the key store path, /svcauth/{env}/apis].
    #[arg(long, value_name = "SSM_PATH", env = "SVCAUTH_API_PATH", global = true)]
    pub api_path: Option<String>,
    /// AWS region [default: from the AWS configuration chain].
    #[arg(long, value_name = "REGION", global = true)]
    pub region: Option<String>,
    /// AWS profile from ~/.aws/config [default: AWS_PROFILE or `default`].
    #[arg(long, value_name = "PROFILE", global = true)]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// SSM Parameter Store.
    Ssm,
    /// A local JSON file of service documents.
    File,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, rotate, revoke, list, import, check and prune service API keys; grant
    /// routes on APIs; migrate old documents.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Keys(KeysCommand),
    /// Signed service tokens: publish and retire signing keys, pull a service's
    /// emergency brake.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Tokens(TokensCommand),
    /// Who may call which route of which API, by which proof (API key, IAM, token),
    /// and why: matrix, explain, check expectations, diff for a migration.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Access(AccessCommand),
    /// The API registry: which name each API (by id) has, the names grants are
    /// written for. Registering an API is an operator's act.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Apis(ApisCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApisCommand {
    Register(ApiRegisterArgs),
    List(ApiListArgs),
    Show(ApiShowArgs),
    Remove(ApiRemoveArgs),
}

/// Register an API under a name: its callers' grants on that name apply on it.
///
/// Writes `{SVCAUTH_API_PATH}/{api id}` = NAME as a SecureString under the store's KMS
/// key (--kms-key-id), the only form the authorizer trusts: a String one (as stacks
/// wrote them before) could be written by any role allowed to put parameters there, and
/// relabel an API. First claims the name (`{path's parent}/api-names/{name}`, created
/// only once): a name bound to another API id is refused, so one name names one API.
/// Replaces an untrusted (String) entry for the same id. Running it again changes
/// nothing. The authorizer reads the entry on its next look at the API (within its
/// store TTL, SVCAUTH_CACHE_TTL_SECS).
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ApiRegisterArgs {
    /// The API's id (as in its execute-api URL, e.g. a1b2c3d4e5; the stack output).
    #[arg(long, value_name = "ID")]
    pub api_id: String,
    /// The name grants use for it (1-64 of a-z, 0-9, -), e.g. `identity`, `billing`.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Say what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// List the registered APIs: id, name, and whether the authorizer trusts the entry.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ApiListArgs {
    /// Print a JSON array instead of a table, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Show one API's registration, by id or by name.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["api_id", "name"])))]
pub struct ApiShowArgs {
    /// The API's id.
    #[arg(long, value_name = "ID")]
    pub api_id: Option<String>,
    /// The API's registered name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// Unregister an API: the authorizer allows nothing on it any more (from its next
/// look at the API), and its name can be bound to another API id.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ApiRemoveArgs {
    /// The API's id.
    #[arg(long, value_name = "ID")]
    pub api_id: String,
    /// Say what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub use crate::commands::access::cli::{
    AccessCommand, DiffArgs, ExpectArgs, ExplainArgs, Format, MatrixArgs, SourceArgs, Target,
};

/// How long a token can outlive the moment its service's key was revoked or its
/// brake was pulled, shown in `tokens brake --help`.
pub const TOKEN_REVOCATION_BOUND: &str = "\
A token is checked offline: revoking the key it was obtained with stops the issuer at
once (no new token) and the authorizer within its store TTL, but tokens already issued
stay valid until they expire (at most 3600 s, 600 s by default). The brake closes that
gap: tokens of the service issued before --at are refused by the authorizer within its
store TTL (SVCAUTH_CACHE_TTL_SECS, default 300 s) plus the API's authorizer result TTL,
and the issuer issues none dated before it (it sees the brake within 15 s). Callers then
get a new token with their current credentials (docs/tokens.md, revocation runbook).";

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// The published key set (JWKS): the public keys verifiers trust.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Keys(TokenKeysCommand),
    Brake(BrakeArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenKeysCommand {
    Add(TokenKeyAddArgs),
    Remove(TokenKeyRemoveArgs),
    List(TokenKeyListArgs),
}

/// Where the published key set is and which alias signs: shared by `tokens keys`.
#[derive(Debug, Clone, Args)]
pub struct JwksArgs {
    /// The SSM SecureString parameter holding the key set (JWKS), as the issuer's and
    /// the authorizer's SVCAUTH_TOKEN_JWKS_PARAMETER [default: next to the key store
    /// path, /svcauth/{env}/token/jwks]. Written under --kms-key-id (the store's key).
    #[arg(long, value_name = "NAME", env = "SVCAUTH_TOKEN_JWKS_PARAMETER")]
    pub jwks_parameter: Option<String>,
    /// The KMS alias the issuer signs with, as its SVCAUTH_TOKEN_KEY: the platform's
    /// TokenSigningKeyAlias output, alias/PLATFORM_STACK/token-signing. No default (a
    /// nested platform stack's name is generated); `keys remove` requires it, `keys
    /// list` marks the signing key only with it.
    #[arg(long, value_name = "ALIAS", env = "SVCAUTH_TOKEN_KEY")]
    pub signing_alias: Option<String>,
}

/// Publish a KMS key's public key in the key set, so verifiers accept its tokens.
///
/// Reads the public key with KMS GetPublicKey (the key must be ECC_NIST_P256 with
/// SIGN_VERIFY) and merges it into the key set under its KMS key id (the tokens' `kid`).
/// Publish a key BEFORE pointing the signing alias at it: the issuer refuses to sign
/// with a key that is not published (503 signing_key_not_published). Adding a key that
/// is already published changes nothing. Safe against concurrent writers. The key set
/// is a SecureString under --kms-key-id; a String one (written by an older svcauth) is
/// not trusted by verifiers and is replaced by one holding only this key (its other
/// keys are listed, to be added again).
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct TokenKeyAddArgs {
    /// The KMS key: key id, key ARN, alias name (alias/...) or alias ARN.
    #[arg(long, value_name = "KEY")]
    pub key: String,
    #[command(flatten)]
    pub jwks: JwksArgs,
    /// Say what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Retire a public key from the key set: tokens it signed stop verifying.
///
/// Refuses the key the signing alias points to now (the issuer signs with it). Remove
/// the previous key only after the alias was repointed and every token it signed has
/// expired: the issuer follows the alias within 5 minutes, and a token lives at most
/// 3600 s, so wait at least 65 minutes plus the verifiers' key-set cache (300 s).
/// After the removal, its tokens stop verifying within 300 s (the authorizer refetches
/// the key set that often) plus the API's authorizer result TTL. Safe against
/// concurrent writers.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct TokenKeyRemoveArgs {
    /// The key id (`kid`) to remove, as `svcauth tokens keys list` shows it.
    #[arg(long, value_name = "KID")]
    pub kid: String,
    #[command(flatten)]
    pub jwks: JwksArgs,
    /// Say what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// List the published keys: kid, key type, and which one the signing alias names.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct TokenKeyListArgs {
    #[command(flatten)]
    pub jwks: JwksArgs,
    /// Print a JSON array instead of a table, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Emergency brake: refuse a service's tokens issued before a time.
#[derive(Debug, Args)]
#[command(long_about = format!("Emergency brake: refuse a service's tokens issued before a time.\n\nFirst creates a brake marker ({{path's parent}}/brakes/{{service}}/{{time}}, create-only:\nno later write of the document, by anyone, can undo it), then sets tokensNotBefore in\nthe service's document. It only ever moves later: a brake set before stays if it is\nlater than --at. Safe against concurrent and crashed writers.\n\n{TOKEN_REVOCATION_BOUND}"), after_help = EXIT_CODES_HELP)]
pub struct BrakeArgs {
    /// The calling service whose tokens are refused.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// Tokens issued before this are refused: `now` or an RFC 3339 time
    /// (2026-12-01T10:00:00Z), at most 7 days ahead. A time ahead also stops the
    /// issuer from issuing the service any token until then.
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub at: String,
    /// Say what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    Create(CreateArgs),
    Rotate(RotateArgs),
    Revoke(RevokeArgs),
    List(ListArgs),
    ImportLegacy(ImportLegacyArgs),
    Check(CheckArgs),
    Prune(PruneArgs),
    Reindex(ReindexArgs),
    Grant(GrantArgs),
    Migrate(MigrateArgs),
}

/// Where a new clear key goes: exactly one place, exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliverTo {
    /// The calling service's own SecureString parameter.
    Ssm,
    /// Printed once on stdout, alone, for piping into another secret store.
    Stdout,
}

/// Create a key for a calling service.
///
/// Generates a key in the product format, stores only its hash record in the key
/// store, then hands the clear key over exactly once (see --deliver). If the hand-over
/// fails, the new record is revoked again so no unusable key stays active.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct CreateArgs {
    /// The calling service (1-64 of a-z, 0-9, `-`), e.g. `tutor-service`.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// Routes the service may call on the --api APIs, `METHOD /path`, e.g.
    /// `GET /internal/users/*`. Repeat the option or separate with commas. `*` and a
    /// `{param}` segment match any characters, `/` included. A service's keys share its
    /// permissions: for a service that already has some, leave this out (or give the
    /// same set, or add --replace-permissions; `keys grant` adds routes on an API).
    #[arg(long, value_name = "PATTERN", value_delimiter = ',', requires = "api")]
    pub permissions: Vec<String>,
    /// The APIs --permissions apply to, by the name their stack registered
    /// (`identity`, `tutor` for template.yaml's own APIs). Repeat or separate with
    /// commas. Required with --permissions: a permission applies on no other API.
    #[arg(
        long,
        value_name = "NAME",
        value_delimiter = ',',
        requires = "permissions"
    )]
    pub api: Vec<String>,
    /// Replace the service's existing permissions with --permissions on --api (for
    /// every key of the service).
    #[arg(long, requires = "permissions")]
    pub replace_permissions: bool,
    /// Value of the API Gateway API key tied to this service's usage plan (stack
    /// output of template.yaml). The authorizer returns it as `usageIdentifierKey`;
    /// the key APIs of template.yaml refuse (403) a service that has none. Not a
    /// credential: callers never send it.
    #[arg(long, value_name = "VALUE")]
    pub usage_plan_key: Option<String>,
    /// Let the key expire after this long, at least `1m`, e.g. `90d`, `12h` (days,
    /// hours, minutes, seconds; not years or months) [default: no expiry; `keys list`
    /// shows when the 90-day rotation is due].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub expires_in: Option<Duration>,
    /// Where the clear key goes [default: `ssm` with --store ssm, `stdout` with --store file].
    #[arg(long, value_enum, value_name = "WHERE")]
    pub deliver: Option<DeliverTo>,
    /// The SecureString parameter for --deliver ssm
    /// [default: /{env}/{service}/identity-service-api-key].
    #[arg(long, value_name = "NAME")]
    pub delivery_parameter: Option<String>,
    /// Replace an existing key in the delivery parameter (the key it held keeps
    /// working until revoked; prefer `keys rotate`).
    #[arg(long)]
    pub overwrite_delivery: bool,
    /// Check everything and say what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Give a service a new key; its old keys keep working for a grace period.
///
/// Adds a new key (with the service's current permissions), delivers it (overwriting
/// the delivery parameter), then sets every old active key to expire at now + --grace.
/// The authorizer enforces the expiry: nothing has to run when the grace period ends.
/// Callers that cache their key pick up the new one on their next cold start or cache
/// refresh, so the grace period must be longer than that (see docs/keys.md).
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct RotateArgs {
    /// The calling service whose key is rotated.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// How long the old keys keep working, e.g. `24h`, `30m`, `7d` (`0s` stops them
    /// at once).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "24h", allow_hyphen_values = true)]
    pub grace: Duration,
    /// Where the new clear key goes [default: `ssm` with --store ssm, `stdout` with --store file].
    #[arg(long, value_enum, value_name = "WHERE")]
    pub deliver: Option<DeliverTo>,
    /// The SecureString parameter for --deliver ssm
    /// [default: /{env}/{service}/identity-service-api-key].
    #[arg(long, value_name = "NAME")]
    pub delivery_parameter: Option<String>,
    /// Check everything and say what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Revoke a key: it stops being accepted.
#[derive(Debug, Args)]
#[command(long_about = format!("Revoke a key: it stops being accepted.\n\n{REVOCATION_BOUND}\n\nWith --store file: {FILE_REVOCATION_BOUND}"), after_help = EXIT_CODES_HELP)]
pub struct RevokeArgs {
    /// The service the key belongs to.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// The key's id (`kid_` and 16 hex digits), as `keys list` shows it.
    #[arg(long, value_name = "ID")]
    pub key_id: String,
    /// Instead of revoking now, let the key expire after this long, at least `1m`,
    /// e.g. `24h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub after: Option<Duration>,
    /// Check everything and say what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// List keys: service, key id, created, expires, status, days until rotation is due.
///
/// Shows no key and no hash. Rotation is due 90 days after a key was created.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ListArgs {
    /// Only this service's keys.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Print a JSON array instead of a table, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Import the original design's `{"<key>": "<service>"}` map as hashed records.
///
/// Each key is hashed as it is read; the clear values are never written anywhere. The
/// services' existing permissions are left as they are. The legacy parameter itself is
/// left in place: delete it once callers are moved over.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from_parameter", "from_file"])))]
pub struct ImportLegacyArgs {
    /// Read the map from this SSM parameter, e.g. `/prod/identity-service/service-api-keys`.
    #[arg(long, value_name = "NAME")]
    pub from_parameter: Option<String>,
    /// Read the map from this JSON file.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Import only this service's keys.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Permissions for imported services that have none yet (no document, or one
    /// without permissions); existing permissions are never changed. Use with
    /// --service when services need different permissions.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',', requires = "api")]
    pub permissions: Vec<String>,
    /// The APIs --permissions apply to (by registered name, e.g. `identity`).
    #[arg(
        long,
        value_name = "NAME",
        value_delimiter = ',',
        requires = "permissions"
    )]
    pub api: Vec<String>,
    /// Check everything and say what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Tell whether the store accepts a key (read from stdin) and with which permissions.
///
/// Reads one line from stdin, never from the command line (which shows in `ps` and
/// shell history), and decides exactly as the authorizer does. Exit code 0 accepted,
/// 1 refused.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct CheckArgs {
    /// The service the key should belong to.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// Also tell whether this route is permitted on --api, e.g. `GET /internal/users/42`.
    #[arg(long, value_name = "ROUTE", requires = "api")]
    pub route: Option<String>,
    /// The API (registered name, e.g. `identity`) the --route is called on: the key is
    /// allowed only the routes granted on that API.
    #[arg(long, value_name = "NAME")]
    pub api: Option<String>,
    /// Also accept keys of the original design's map in this parameter, as the
    /// authorizer does when SVCAUTH_LEGACY_PARAMETER is set.
    #[arg(long, value_name = "NAME", env = "SVCAUTH_LEGACY_PARAMETER")]
    pub legacy_parameter: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Write the key id index entries a store lacks (a store written before the index).
///
/// The authorizer finds a key's service through `{path's parent}/index/{key id}` (a
/// String naming the service, not secret): two SSM calls before a cold instance
/// answers. Every write by svcauth creates the entries of the document it wrote; a
/// key without one still works, through the authorizer's full load of every document
/// (one call per 10 services). Entries are only created, never overwritten or
/// deleted; an entry naming another service is reported and left alone.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ReindexArgs {
    /// Only this service [default: every service in the store].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Say which entries are missing; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Remove the records of keys that stopped working (revoked or expired) long ago.
///
/// A service's document holds at most 32 key records, and a record stays after its key
/// is revoked or expires, for `keys list` and the audit trail. A service rotated often
/// fills its document, and then `create` and `rotate` refuse to add a key. Prune
/// removes the records of keys that stopped working more than --older-than ago; a key
/// that still works is never removed. Each removed key first gets its revocation
/// marker (`{path's parent}/revoked/{key id}`), so neither the legacy map nor a
/// concurrent writer's stale copy can make it usable again.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct PruneArgs {
    /// Only this service [default: every service in the store].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Remove a record only if its key stopped working at least this long ago,
    /// e.g. `30d`, `12h`, `0s`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30d", allow_hyphen_values = true)]
    pub older_than: Duration,
    /// Say which records would go; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Grant a service routes on an API, or take an API away from it.
///
/// Each permission applies only on the APIs its grant names; an API is named by its
/// registry entry `{SVCAUTH_API_PATH}/{apiId}` (`svcauth apis register`, e.g.
/// /svcauth/prod/apis/a1b2c3d4e5 = billing); a name that is not registered gets a
/// warning. A caller attached to a new API is allowed nothing there until granted.
/// Adds only what is missing, so running it twice changes nothing. The authorizer
/// picks the change up within its store TTL, for keys and for tokens already issued
/// alike (a token's routes are cut to the service's current grants); API Gateway's
/// cached policies for the caller on that API within AuthorizerResultTtl more.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct GrantArgs {
    /// The calling service.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// The API, by the name its stack registered, e.g. `billing`.
    #[arg(long, value_name = "NAME")]
    pub api: String,
    /// Routes to grant on --api, `METHOD /path`, e.g. `GET /internal/billing/*`. `*` and
    /// a `{param}` segment match any characters, `/` included. Repeat or separate with
    /// commas.
    #[arg(
        long,
        value_name = "PATTERN",
        value_delimiter = ',',
        required_unless_present = "remove",
        conflicts_with = "remove"
    )]
    pub permissions: Vec<String>,
    /// Take --api away instead: the service is allowed nothing there any more.
    #[arg(long)]
    pub remove: bool,
    /// Say what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Move schema-1 documents (permissions that name no API) to schema 2.
///
/// Before API scoping, a permission applied on every API the authorizer protected. An
/// authorizer of this version loads schema-1 documents but applies their permissions
/// on no API (their keys are allowed nothing) and logs `unscoped_documents` naming
/// them. This writes each one's permissions as a grant on the --api APIs: give the
/// APIs they were meant for, e.g. `--api identity --api tutor` for template.yaml's
/// own APIs. Documents already on schema 2 are left alone.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct MigrateArgs {
    /// Only this service [default: every schema-1 document in the store].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The APIs (registered names) the old permissions apply to. Repeat or separate
    /// with commas.
    #[arg(long, value_name = "NAME", value_delimiter = ',', required = true)]
    pub api: Vec<String>,
    /// Say which documents would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Shortest `--expires-in` and `revoke --after`: a key that ends sooner would be over
/// before callers could use it (or before an authorizer's store reload saw it).
pub const MIN_KEY_LIFETIME: Duration = Duration::from_secs(60);

/// Parses `90d`, `24h`, `30m`... with humantime, in whole seconds (key times are kept
/// to the second). A leading `-` is read here (not by clap as another option) so that a
/// negative duration gets a message about durations. Years and months are refused:
/// humantime reads `1y` as 365.25 days and `1M` as 30.44 days, which nobody means.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!(
            "{s:?} is negative: a duration is zero or more, written like 90d, 24h or 30m"
        ));
    }
    if let Some(unit) =
        units(s).find(|u| matches!(*u, "y" | "year" | "years" | "M" | "month" | "months" | "mo"))
    {
        return Err(format!(
            "{s:?}: give days, not {} (humantime reads 1y as 365.25 days and 1M as 30.44 days): e.g. 365d or 30d",
            if unit.starts_with('y') { "years" } else { "months" }
        ));
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write a duration like 90d, 24h or 30m)"))?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "{s:?} is not a whole number of seconds: key times are kept to the second; write a duration like 90d, 24h, 30m or 45s"
        ));
    }
    Ok(d)
}

/// The unit words of a humantime duration (`1d 2h` → `d`, `h`).
fn units(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
        .filter(|u| !u.is_empty())
}

/// A key's lifetime (`--expires-in`, `--after`): at least [`MIN_KEY_LIFETIME`], so no
/// key is stored already expired or ending before anyone could use it.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| {
        e.replace(
            "zero or more",
            format!("at least {}", human_duration(MIN_KEY_LIFETIME)).as_str(),
        )
    })?;
    if d < MIN_KEY_LIFETIME {
        return Err(format!(
            "{:?} is shorter than {}, which would end the key before callers could use it: give {} or more, like 90d, 24h or 30m (to stop a key now, revoke it without --after)",
            s.trim(),
            human_duration(MIN_KEY_LIFETIME),
            "1m"
        ));
    }
    Ok(d)
}

/// A duration for people: `1 day`, `2 days 3 hours`, `30 minutes`, `0 seconds`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "day"),
        (secs % 86_400 / 3600, "hour"),
        (secs % 3600 / 60, "minute"),
        (secs % 60, "second"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() {
        "0 seconds".into()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19 B1 and B5: a key lifetime under a minute, a fraction of a second, and
    /// years or months are refused, each saying what is accepted.
    #[test]
    fn durations_too_short_fractional_or_ambiguous_are_refused() {
        for short in ["500ms", "1ns", "1s", "59s"] {
            let e = parse_positive_duration(short).unwrap_err();
            assert!(
                e.contains("1m or more") || e.contains("whole number of seconds"),
                "{short}: {e}"
            );
        }
        assert!(parse_duration("500ms")
            .unwrap_err()
            .contains("whole number of seconds"));
        assert!(parse_duration("1s 500ms").is_err());
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_positive_duration("60s"), Ok(MIN_KEY_LIFETIME));
        for ambiguous in ["1y", "2years", "1M", "3months", "1y 2d"] {
            let e = parse_duration(ambiguous).unwrap_err();
            assert!(
                e.contains("give days") && e.contains("365d"),
                "{ambiguous}: {e}"
            );
        }
        assert_eq!(
            parse_duration("2m"),
            Ok(Duration::from_secs(120)),
            "m is minutes"
        );
        assert_eq!(
            parse_duration("365d"),
            Ok(Duration::from_secs(365 * 86_400))
        );
    }

    #[test]
    fn durations_are_read_and_shown_for_people() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        let neg = parse_duration("-5d").unwrap_err();
        assert!(neg.contains("negative"), "{neg}");
        assert!(parse_duration("soon").unwrap_err().contains("like 90d"));
        let zero = parse_positive_duration("0s").unwrap_err();
        assert!(zero.contains("shorter than 1 minute"), "{zero}");
        assert!(parse_positive_duration("-1h")
            .unwrap_err()
            .contains("at least 1 minute"));
        assert_eq!(parse_positive_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(human_duration(Duration::from_secs(86_400)), "1 day");
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86_400 + 3 * 3600)),
            "2 days 3 hours"
        );
        assert_eq!(
            human_duration(Duration::from_secs(90)),
            "1 minute 30 seconds"
        );
        assert_eq!(human_duration(Duration::ZERO), "0 seconds");
    }
}
