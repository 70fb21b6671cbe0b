//! `svcauth`: parses the command line, runs the command at the current time with the
//! AWS configuration chain and the process's streams, and exits with its code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use svcauth::{exit, Aws, Cli, Command, Io, KeysCommand};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let (mut stdin, mut stdout, mut stderr) =
        (std::io::stdin(), std::io::stdout(), std::io::stderr());
    if matches!(cli.command, Command::Keys(KeysCommand::Check(_))) && stdin.is_terminal() {
        eprintln!(
            "paste the key and press Enter (it is read from stdin, never from the command line)"
        );
    }
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let result = svcauth::run(
        &cli,
        &Aws::FromEnvironment,
        service_auth::UnixTime::now(),
        &mut io,
    )
    .await;
    if let Err(e) = &result {
        eprintln!("error: {e}");
    }
    ExitCode::from(svcauth::exit_code(&result))
}
