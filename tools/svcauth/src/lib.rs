/*!
`svcauth`: the key management tool of the service authorizer.

Operators use it instead of hand-editing parameters. It writes exactly the layout the
authorizer reads (see `docs/contracts.md`): one `SecureString` [`ServiceDocument`] per
calling service under the key store path, holding hashed key records only, and each
caller's clear key, once, in that caller's own `SecureString` parameter
(`/{env}/{service}/identity-service-api-key`) or on stdout. It also works on the local
store file (`SVCAUTH_KEY_SOURCE=file`). The token key set and the API registry, which
verifiers trust as much as the documents, are SecureStrings under the same KMS key,
written only here (`tokens keys`, `apis register`).

The commands (`keys create | rotate | revoke | list | import-legacy | check | prune |
reindex | grant | migrate`, `tokens keys add | remove | list`, `tokens brake`, `apis
register | list | show | remove`) live here
as a library that takes the time ([`UnixTime`]), the SSM client ([`Aws`]) and the
standard streams ([`Io`]) from its caller, so tests drive them against `moto_server`
with a clock they move by hand. `main.rs` is glue: parse, run, map to an exit code.

What it does not do: decide whether a key is valid (that is `service-auth`, the same
code the authorizer runs), or keep any clear key: a new key goes to exactly one place
and is dropped (wiped) right after; a key read for `keys check` or from a legacy map is
hashed and wiped.

Every write is conflict-safe: SSM writes go through
[`keystore_ssm::SsmKeyStore::update_document`] (version check, history merge, retry),
file writes hold a lock file and replace the file atomically.

[`ServiceDocument`]: service_auth::ServiceDocument
*/
#![forbid(unsafe_code)]

mod aws;
pub mod cli;
mod commands;
mod error;
mod store;

use std::io::{Read, Write};
use std::time::Duration;

use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::SsmKeyStore;
use service_auth::UnixTime;

pub use aws::Aws;
pub use cli::{
    ApisCommand, Cli, Command, GlobalArgs, KeysCommand, StoreKind, TokenKeysCommand, TokensCommand,
};
pub use error::{exit, Error, EXIT_CODES_HELP};

/// The answers of `svcauth access`, from plain inputs (for benchmarks and tools).
pub mod access {
    pub use crate::commands::access::cli::Format;
    pub use crate::commands::access::engine::*;
    pub use crate::commands::access::render::matrix as write_matrix;
}
pub use store::{FileStore, Store, Written};

/// Keys are due for rotation this long after they were created.
pub const ROTATION_POLICY: Duration = Duration::from_secs(90 * 24 * 3600);

/// The standard streams a command reads and writes: status to `stderr`, results
/// (tables, JSON, a key delivered with `--deliver stdout`) to `stdout`.
pub struct Io<'a> {
    pub stdin: &'a mut (dyn Read + Send),
    pub stdout: &'a mut (dyn Write + Send),
    pub stderr: &'a mut (dyn Write + Send),
}

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Nothing had to change (already revoked, already imported...).
    NothingToDo,
    /// `keys check`: the key would be refused.
    NotAccepted,
}

/// The process exit code for a command's result: the only place it is decided.
pub fn exit_code(result: &Result<Outcome, Error>) -> u8 {
    match result {
        Ok(Outcome::Done) => exit::OK,
        Ok(Outcome::NothingToDo | Outcome::NotAccepted) => exit::NOT_ACCEPTED,
        Err(e) => e.exit_code(),
    }
}

/// Runs one command at time `now`.
pub async fn run(cli: &Cli, aws: &Aws, now: UnixTime, io: &mut Io<'_>) -> Result<Outcome, Error> {
    let mut ctx = Ctx::new(&cli.global, aws, now, io)?;
    match &cli.command {
        Command::Keys(KeysCommand::Create(args)) => commands::create::create(&mut ctx, args).await,
        Command::Keys(KeysCommand::Rotate(args)) => commands::create::rotate(&mut ctx, args).await,
        Command::Keys(KeysCommand::Revoke(args)) => commands::revoke::revoke(&mut ctx, args).await,
        Command::Keys(KeysCommand::List(args)) => commands::list::list(&mut ctx, args).await,
        Command::Keys(KeysCommand::ImportLegacy(args)) => {
            commands::import::import_legacy(&mut ctx, args).await
        }
        Command::Keys(KeysCommand::Check(args)) => commands::check::check(&mut ctx, args).await,
        Command::Keys(KeysCommand::Prune(args)) => commands::prune::prune(&mut ctx, args).await,
        Command::Keys(KeysCommand::Reindex(args)) => {
            commands::reindex::reindex(&mut ctx, args).await
        }
        Command::Keys(KeysCommand::Grant(args)) => commands::grant::grant(&mut ctx, args).await,
        Command::Keys(KeysCommand::Migrate(args)) => commands::grant::migrate(&mut ctx, args).await,
        Command::Tokens(TokensCommand::Keys(TokenKeysCommand::Add(args))) => {
            commands::tokens::add(&mut ctx, args).await
        }
        Command::Tokens(TokensCommand::Keys(TokenKeysCommand::Remove(args))) => {
            commands::tokens::remove(&mut ctx, args).await
        }
        Command::Tokens(TokensCommand::Keys(TokenKeysCommand::List(args))) => {
            commands::tokens::list(&mut ctx, args).await
        }
        Command::Tokens(TokensCommand::Brake(args)) => {
            commands::tokens::brake(&mut ctx, args).await
        }
        Command::Access(cmd) => commands::access::run(&mut ctx, cmd).await,
        Command::Apis(ApisCommand::Register(args)) => {
            commands::apis::register(&mut ctx, args).await
        }
        Command::Apis(ApisCommand::List(args)) => commands::apis::list(&mut ctx, args).await,
        Command::Apis(ApisCommand::Show(args)) => commands::apis::show(&mut ctx, args).await,
        Command::Apis(ApisCommand::Remove(args)) => commands::apis::remove(&mut ctx, args).await,
    }
}

/// What every command works with.
pub(crate) struct Ctx<'a, 'io> {
    pub global: &'a GlobalArgs,
    pub now: UnixTime,
    pub io: &'a mut Io<'io>,
    aws: &'a Aws,
    client: Option<Client>,
    store: Option<Store>,
}

impl<'a, 'io> Ctx<'a, 'io> {
    fn new(
        global: &'a GlobalArgs,
        aws: &'a Aws,
        now: UnixTime,
        io: &'a mut Io<'io>,
    ) -> Result<Self, Error> {
        let env_ok = !global.env.is_empty()
            && global.env.len() <= service_auth::key::MAX_ENV_LEN
            && global
                .env
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !env_ok {
            return Err(Error::Usage(format!(
                "--env {:?} is invalid: use 1-{} characters of a-z and 0-9, e.g. dev or prod",
                global.env,
                service_auth::key::MAX_ENV_LEN
            )));
        }
        Ok(Self {
            global,
            now,
            io,
            aws,
            client: None,
            store: None,
        })
    }

    /// The SSM client, made on first use (commands on the file store may need none).
    pub async fn client(&mut self) -> Result<Client, Error> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = self.aws.client(self.global).await?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// The store the global options name.
    pub async fn store(&mut self) -> Result<Store, Error> {
        if let Some(s) = &self.store {
            return Ok(s.clone());
        }
        let store = match self.global.store {
            StoreKind::File => {
                let Some(path) = &self.global.file else {
                    return Err(Error::Usage(
                        "--store file needs --file PATH (or SVCAUTH_KEYS_FILE), e.g. --file dev/my-store.json".into(),
                    ));
                };
                Store::File(FileStore::new(path))
            }
            StoreKind::Ssm => {
                let client = self.client().await?;
                let region = aws::region_of(&client);
                Store::Ssm {
                    store: self.ssm().await?,
                    region,
                }
            }
        };
        self.store = Some(store.clone());
        Ok(store)
    }

    /// The SSM store the global options name (`--path`, else `--env`'s default), for
    /// what lives only in SSM (the token key set, the API registry) whatever `--store`
    /// says. Its layout (keystore-ssm) names every parameter.
    pub async fn ssm(&mut self) -> Result<SsmKeyStore, Error> {
        let path = self
            .global
            .path
            .clone()
            .unwrap_or_else(|| keystore_ssm::default_key_path(&self.global.env));
        let client = self.client().await?;
        Ok(SsmKeyStore::new(client, &path)?.with_kms_key_id(self.kms_key_id()?.map(str::to_owned)))
    }

    /// The KMS key for SecureString writes, checked: `None` for SSM's default key.
    pub fn kms_key_id(&self) -> Result<Option<&str>, Error> {
        match self.global.kms_key_id.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(k) if k.len() <= 2048 && k.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(k)),
            Some(k) => Err(Error::Usage(format!(
                "--kms-key-id {k:?} is not a KMS key id, ARN or alias (e.g. alias/svcauth or arn:aws:kms:us-east-1:123456789012:key/...)"
            ))),
        }
    }

    /// A status line on stderr. A closed stderr is not worth failing a write for.
    pub fn status(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.io.stderr, "{}", line.as_ref());
    }

    /// The default parameter a service's clear key is delivered to.
    pub fn delivery_parameter(&self, service: &str) -> String {
        format!("/{}/{service}/identity-service-api-key", self.global.env)
    }
}
