use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup;

#[derive(Parser)]
#[command(
    name = "pforte",
    version,
    about = "OpenID Connect identity broker for the Gesundheits-ID"
)]
pub struct Cli {
    /// TOML configuration file; `PFORTE_*` environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Realm files (Keycloak JSON) or folders of them, applied at start-up.
        #[arg(long)]
        import: Vec<PathBuf>,
    },
    /// Run a preconfigured development setup on http://127.0.0.1:8080.
    Dev,
    /// Apply realm files to the database and exit.
    Import { paths: Vec<PathBuf> },
    /// Print a realm in Keycloak's JSON representation (without secrets).
    Export {
        #[arg(long)]
        realm: String,
    },
    /// Manage realm signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new active signing key; the old one stays published until its tokens expire.
    Rotate {
        #[arg(long)]
        realm: String,
    },
}

pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { import } => startup::serve(config, &import).await,
        Command::Dev => startup::dev(config).await,
        Command::Import { paths } => startup::import_only(config, &paths).await,
        Command::Export { realm } => startup::export(config, &realm).await,
        Command::Keys {
            command: KeysCommand::Rotate { realm },
        } => startup::rotate_keys(config, &realm).await,
    }
}
