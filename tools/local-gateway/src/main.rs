//! `local-gateway`: the whole system on 127.0.0.1 with one command
//! (`cargo run -p local-gateway`). See the library docs and docs/local.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use local_gateway::banner::{self, BannerInput};
use local_gateway::services::{dev_keys, RealFunctions, TokenSigning, UsersSource};
use local_gateway::{default_template, sign, start, startup, LocalCredentials, Options};

/// The svcauth internal APIs on 127.0.0.1, served like API Gateway REST: routes and
/// their authorization from template.yaml, the real REQUEST authorizer (with result
/// caching and policy evaluation), SigV4 for AWS_IAM routes, and the real
/// identity-service and tutor-service in process. Needs no AWS and no configuration.
#[derive(Parser, Debug)]
#[command(name = "local-gateway", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,

    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(short, long, default_value_t = 3000)]
    port: u16,

    /// Which APIs exist (the template's AuthMode): api-key, iam, both, token (the
    /// internal APIs take only tokens, traded at the token API) or key-or-token
    /// [default: both]. Same as --parameter AuthMode=...; giving both with different
    /// values is refused.
    #[arg(long, value_parser = ["api-key", "iam", "both", "token", "key-or-token"])]
    auth_mode: Option<String>,

    /// Token modes: sign with this KMS key (id, ARN or alias) through the AWS SDK's
    /// default configuration (AWS_ENDPOINT_URL works with moto), reading the key set
    /// from the SSM parameter the template names, as deployed. Default: an ephemeral
    /// development key made at start (tokens die with the process).
    #[arg(long, env = "SVCAUTH_TOKEN_KEY", value_name = "KEY")]
    token_signing_key: Option<String>,

    /// The SAM template [default: ./template.yaml, else the repository's].
    #[arg(long)]
    template: Option<PathBuf>,

    /// Another template parameter, NAME=VALUE (repeatable).
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,

    /// Region of the method ARNs and of SigV4 credential scopes.
    #[arg(long, default_value = "us-east-1")]
    region: String,

    /// Override every authorizer's result cache TTL (the template's
    /// ReauthorizeEvery, 300 s); 0 turns the cache off.
    #[arg(long, value_name = "SECS")]
    authorizer_ttl: Option<u64>,

    /// The authorizer's key store: dev (embedded development keys), file or ssm.
    #[arg(long, env = "SVCAUTH_KEY_SOURCE", default_value = "dev", value_parser = ["dev", "file", "ssm"])]
    key_source: String,

    /// The JSON array of service documents for --key-source file (as written by
    /// `svcauth --store file --file PATH`).
    #[arg(long, env = "SVCAUTH_KEYS_FILE", value_name = "PATH")]
    keys_file: Option<PathBuf>,

    /// The clear key a calling service sends through the gateway (tutor-service to
    /// identity-service), from a file holding it alone, as `svcauth keys create
    /// --deliver stdout` prints it (repeatable). Needed with --key-source file, whose
    /// store holds only hashes; with --key-source ssm the key is read from the
    /// service's delivery parameter unless given here.
    #[arg(long, value_name = "SERVICE=PATH")]
    service_key_file: Vec<String>,

    /// How long the authorizer keeps its loaded key store (SVCAUTH_CACHE_TTL_SECS).
    #[arg(
        long,
        env = "SVCAUTH_CACHE_TTL_SECS",
        value_name = "SECS",
        default_value_t = 300
    )]
    store_ttl: u64,

    /// SigV4 credentials file: {"AKID": {"secretAccessKey", "roleArn"}}
    /// [default: the embedded dev/local-credentials.json].
    #[arg(long, value_name = "PATH")]
    credentials: Option<PathBuf>,

    /// Users for the in-memory store, a JSON list [default: the embedded
    /// dev/dev-users.json].
    #[arg(long, value_name = "PATH", conflicts_with = "users_table")]
    users: Option<PathBuf>,

    /// Keep users in this DynamoDB table instead (the AWS SDK's default
    /// configuration; AWS_ENDPOINT_URL works with moto).
    #[arg(long, env = "USERS_TABLE", value_name = "TABLE")]
    users_table: Option<String>,

    /// Function log format on stderr: text, or json (as AWS_LAMBDA_LOG_FORMAT=json).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Print a `curl` line signed with SigV4 as the AWS SDKs sign it (valid for 15
    /// minutes), for paths `curl --aws-sigv4` signs differently from AWS, such as an
    /// email's `@`: `eval "$(local-gateway sign URL)"` runs it.
    Sign(SignArgs),
}

#[derive(Args, Debug)]
struct SignArgs {
    /// The gateway URL, e.g.
    /// http://127.0.0.1:3000/identityiam/v1/internal/users/by-email/ada@example.com
    url: String,
    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    method: String,
    /// Request body (sent with --data-binary).
    #[arg(short, long)]
    data: Option<String>,
    /// Content type of the body [default with --data: application/json].
    #[arg(long)]
    content_type: Option<String>,
    /// Sign as this role's development credentials.
    #[arg(long, default_value = "TutorServiceRole")]
    role: String,
    /// Sign with this access key id instead of --role's.
    #[arg(long, value_name = "AKID")]
    access_key_id: Option<String>,
    /// SigV4 credentials file [default: the embedded dev/local-credentials.json].
    #[arg(long, value_name = "PATH")]
    credentials: Option<PathBuf>,
    /// Region of the credential scope (the gateway's --region).
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("local-gateway: {msg}");
    std::process::exit(2)
}

fn credentials(path: Option<&PathBuf>) -> LocalCredentials {
    let Some(path) = path else {
        return LocalCredentials::dev();
    };
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| fail(format!("--credentials: reading {}: {e}", path.display())));
    LocalCredentials::from_json(&text)
        .unwrap_or_else(|e| fail(format!("--credentials {}: {e}", path.display())))
}

fn print_signed(args: &SignArgs) {
    let all = credentials(args.credentials.as_ref());
    let (_, creds) = sign::pick_credentials(&all, args.access_key_id.as_deref(), &args.role)
        .unwrap_or_else(|e| fail(e));
    let content_type = args
        .content_type
        .as_deref()
        .or(args.data.as_ref().map(|_| "application/json"));
    let line = sign::curl_line(
        &sign::SignRequest {
            method: &args.method,
            url: &args.url,
            body: args.data.as_deref(),
            content_type,
            region: &args.region,
            at: service_auth::UnixTime::now(),
        },
        &creds,
    )
    .unwrap_or_else(|e| fail(e));
    println!("{line}");
}

/// The expired and tampered tokens of the start-up examples, signed by this run's
/// development key for tutor-service (token modes with the development key store).
fn sample_tokens(
    functions: &RealFunctions,
    model: &local_gateway::Model,
    keys: &std::collections::BTreeMap<String, String>,
) -> Option<local_gateway::dev_signer::SampleTokens> {
    let signer = functions.dev_signer.get()?;
    let issuer = model
        .functions
        .values()
        .find(|f| f.binary.as_deref() == Some("token-issuer"))
        .and_then(|f| match f.env.get("SVCAUTH_TOKEN_ISSUER") {
            Some(local_gateway::template::EnvValue::Text(t)) => Some(t.clone()),
            _ => None,
        })?;
    let key = service_auth::ApiKey::parse(keys.get("tutor-service")?).ok()?;
    let made = signer.samples(
        &issuer,
        "tutor-service",
        vec![service_token::Permission::new(
            ["identity"],
            ["GET /internal/users/*"],
        )],
        service_token::Proof::ApiKey {
            key_id: key.key_id().as_str().to_owned(),
        },
        service_auth::UnixTime::now().0,
    );
    match made {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no sample tokens for the examples");
            None
        }
    }
}

#[tokio::main]
async fn main() {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(Sub::Sign(args)) = &cli.command {
        print_signed(args);
        return;
    }
    let (parameters, auth_mode) =
        startup::parameters_and_auth_mode(cli.auth_mode.as_deref(), &cli.parameters)
            .unwrap_or_else(|e| fail(e));
    if cli.key_source == "file" && cli.keys_file.is_none() {
        fail("--key-source file needs --keys-file PATH (or SVCAUTH_KEYS_FILE): the store file `svcauth --store file --file PATH keys create ...` writes");
    }
    let keys_file_note = startup::keys_file_use(
        &cli.key_source,
        cli.keys_file.as_deref(),
        matches.value_source("keys_file") == Some(clap::parser::ValueSource::CommandLine),
    )
    .unwrap_or_else(|e| fail(e));
    let service_keys =
        startup::service_key_files(&cli.service_key_file).unwrap_or_else(|e| fail(e));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }

    let clock = authorizer::system_clock();
    let mut options = Options::new(cli.template.clone().unwrap_or_else(default_template));
    options.bind = SocketAddr::from(([127, 0, 0, 1], cli.port));
    options.env.region = cli.region.clone();
    options.env.parameters.insert("AuthMode".into(), auth_mode);
    options.env.parameters.extend(parameters);
    options.result_ttl = cli.authorizer_ttl;
    options.clock = clock.clone();
    options.credentials = credentials(cli.credentials.as_ref());

    let mut functions = RealFunctions::dev(clock);
    functions.region = cli.region.clone();
    functions.credentials = options.credentials.clone();
    let keys_file = cli.keys_file.as_ref().map(|p| p.display().to_string());
    let store_ttl = cli.store_ttl.to_string();
    let key_source = cli.key_source.clone();
    let keys_file_env = keys_file.clone();
    // The development keys are a file for the authorizer (no build holds them).
    let dev = key_source == "dev";
    functions.authorizer_env = std::sync::Arc::new(move |k| match k {
        "SVCAUTH_KEY_SOURCE" if dev => Some("file".to_owned()),
        "SVCAUTH_KEYS_FILE" if dev => local_gateway::services::dev_store_file(),
        "SVCAUTH_KEY_SOURCE" => Some(key_source.clone()),
        "SVCAUTH_KEYS_FILE" => keys_file_env.clone(),
        "SVCAUTH_CACHE_TTL_SECS" => Some(store_ttl.clone()),
        // Local API ids are not real ones, so no SSM parameter names them: default to
        // the names the template registers, whatever the key source.
        "SVCAUTH_API_NAMES" => std::env::var(k)
            .ok()
            .or_else(|| Some(local_gateway::services::LOCAL_API_NAMES.to_owned())),
        other => std::env::var(other).ok(),
    });
    if let Some(key) = &cli.token_signing_key {
        functions.token_signing = TokenSigning::Kms { key: key.clone() };
    }
    // Checked now, so that a bad setting stops the start with its name.
    let authorizer_config =
        authorizer::Config::from_lookup(|k| functions.authorizer_env.as_ref()(k))
            .unwrap_or_else(|e| fail(e));
    if cli.key_source != "dev" {
        // Only the development store holds clear keys; the others hold hashes.
        functions.service_keys = service_keys.clone();
        functions.caller_keys_from_ssm = cli.key_source == "ssm";
    } else {
        functions.service_keys.extend(service_keys.clone());
    }
    if let (Some(path), "file") = (&keys_file, cli.key_source.as_str()) {
        // Loaded once now, so that a missing or broken file stops the start with its
        // name instead of refusing every request later.
        if let Err(e) = authorizer::key_source(&authorizer_config)
            .await
            .load(service_auth::UnixTime::now())
            .await
        {
            fail(format!(
                "--keys-file {path}: {e}; it must be a JSON array of service documents, as `svcauth --store file --file {path}` writes"
            ));
        }
    }
    let key_source_text = match cli.key_source.as_str() {
        "dev" => {
            "the development keys (dev/dev-store.json, read as SVCAUTH_KEY_SOURCE=file)".to_owned()
        }
        "file" => format!(
            "file {} (SVCAUTH_KEY_SOURCE=file)",
            keys_file.clone().unwrap_or_default()
        ),
        _ => "SSM Parameter Store (SVCAUTH_KEY_SOURCE=ssm, the AWS SDK's default configuration)"
            .to_owned(),
    };
    let users_text;
    functions.users = match (&cli.users_table, &cli.users) {
        (Some(table), _) => {
            users_text = format!("DynamoDB table {table} (USERS_TABLE)");
            UsersSource::DynamoDb {
                table: table.clone(),
            }
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| fail(format!("reading {}: {e}", path.display())));
            users_text = format!("in memory, from {}", path.display());
            UsersSource::Memory(
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| fail(format!("{}: {e}", path.display()))),
            )
        }
        (None, None) => {
            users_text =
                "in memory, from the embedded dev/dev-users.json (lost at exit)".to_owned();
            UsersSource::Memory(local_gateway::services::dev_users())
        }
    };
    let first_user = match &functions.users {
        UsersSource::Memory(u) => u.first().map(|u| u.id.clone()),
        UsersSource::DynamoDb { .. } => None,
    };

    let running = start(options, &functions).await.unwrap_or_else(|e| fail(e));
    let callers: Vec<String> = running
        .model()
        .functions
        .values()
        .filter_map(|f| match f.env.get(service_client::SERVICE_NAME_ENV) {
            Some(local_gateway::template::EnvValue::Text(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    startup::check_key_file_services(service_keys.keys(), &callers).unwrap_or_else(|e| fail(e));
    if let Some(note) = &keys_file_note {
        tracing::warn!("{note}");
    }
    let keys = if cli.key_source == "dev" {
        dev_keys()
    } else {
        Default::default()
    };
    let samples = sample_tokens(&functions, running.model(), &keys);
    let text = banner::render(&BannerInput {
        model: running.model(),
        site: &running.site,
        keys: &keys,
        credentials: &functions.credentials,
        region: &cli.region,
        user_id: first_user.as_deref(),
        key_source: &key_source_text,
        users: &users_text,
        result_ttl: cli.authorizer_ttl,
        key_source_kind: &cli.key_source,
        keys_file: keys_file.as_deref(),
        given_service_keys: &service_keys,
        sample_tokens: samples.as_ref(),
    });
    print!("{text}");
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("local-gateway: stopping");
    running.stop().await;
}
