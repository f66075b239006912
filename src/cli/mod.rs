//! The command line (SPEC §5). Each subcommand maps to one function;
//! errors are printed once, with their chain, and give a non-zero exit:
//! [`EX_CONFIG`] for a bad config (or a database, or a backup to restore,
//! from a newer mesero), 1 for anything else.
//!
//! The top of the layering: nothing outside `cli/` uses it. `output` holds
//! the stdout/stderr helpers (`say!`), `watch` the `mesero watch` client
//! (SSE), `watch_mqtt` its `--mqtt` form (a site from the upstream broker),
//! `db` what `db backup` and `db restore` print, `visits` the visit and
//! report commands (`db import-visits`, `db rebuild-visits`, `db
//! purge-guests`, `report`).

mod db;
mod output;
mod visits;
mod watch;
mod watch_mqtt;

pub(crate) use output::say;
pub use output::{note, out};

mod sensors;
mod tls;

use crate::config::{Config, ConfigError, EXAMPLE};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the packaged config lives; `--config` or MESERO_CONFIG override it.
pub const DEFAULT_CONFIG: &str = "/etc/mesero/mesero.toml";

/// Exit status for a config that cannot be read or is invalid (sysexits.h
/// `EX_CONFIG`), and for a database from a newer mesero. The systemd unit
/// has `RestartPreventExitStatus=78`: restarting cannot fix either, so the
/// unit fails at once and says why.
pub const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "mesero",
    version,
    about = "Live table occupancy for a restaurant, on a Raspberry Pi"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a config file and print a summary.
    ///
    /// The file may be given as `mesero check FILE` or `--config FILE`.
    Check {
        /// The config file; when given, --config and MESERO_CONFIG are
        /// not used.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Config helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Database helpers.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Write the owner's report: one self-contained HTML file with charts
    /// (utilization, turns, turn times, covers, rates), readable offline
    /// and on a phone. Dates are local (YYYY-MM-DD, inclusive); default
    /// the last 28 days.
    Report {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// The HTML file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Check the sensor wiring on the Pi (needs a Raspberry Pi for hardware).
    Sensors {
        #[command(subcommand)]
        command: SensorsCommand,
    },
    /// HTTPS on the LAN: the local CA and the server certificate.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Print live events from a running daemon (reconnects and resumes),
    /// or with --mqtt a site's events from the group's upstream broker.
    Watch {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A viewer token, if the daemon requires one.
        #[arg(long, env = "MESERO_TOKEN")]
        token: Option<String>,
        /// The upstream broker (mqtt://host[:port] or mqtts://...): follow
        /// what a site's [bridge] forwards there instead of --url.
        #[arg(long, requires = "site")]
        mqtt: Option<String>,
        /// The site (its site.id) to follow with --mqtt.
        #[arg(long)]
        site: Option<String>,
        /// The topic prefix, if the site's bridge.topic_prefix is not
        /// mesero/<site>.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Upstream user name and password for --mqtt.
        #[arg(long)]
        username: Option<String>,
        #[arg(long, env = "MESERO_MQTT_PASSWORD")]
        password: Option<String>,
        /// CA certificates (PEM) for mqtts://; default: the system's.
        #[arg(long, default_value = "")]
        ca_file: String,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make the local CA (once; it is never renewed) and the server
    /// certificate for this host's names (`<hostname>.local`, the hostname,
    /// localhost, the LAN addresses, http.tls_names); renews the server
    /// certificate when fewer than 30 days are left or a name is missing.
    /// Run it as the daemon's user (`sudo -u mesero mesero tls init`).
    Init {
        /// Issue a new server certificate even if the current one is good.
        #[arg(long)]
        force: bool,
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Print the local CA's certificate (PEM), to install on tablets.
    Ca {
        /// Print the file's path, SHA-256 fingerprint and expiry instead.
        #[arg(long)]
        path: bool,
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the documented example config.
    Example,
}

#[derive(Subcommand)]
enum SensorsCommand {
    /// Probe the I2C buses, name the chips found, and read the configured
    /// GPIO inputs. The config is optional (default path if it exists).
    Scan {
        #[arg(long, short, env = "MESERO_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the configured sensors and a local occupancy engine, printing
    /// readings, faults and state changes (stop the daemon first: it owns
    /// the pins).
    Watch {
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy the live database to FILE (SQLite online backup; the daemon
    /// may keep running). FILE is replaced atomically if it exists.
    Backup {
        /// Where to write the copy.
        file: PathBuf,
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Replace the database with a backup (stop the daemon first:
    /// `systemctl stop mesero`).
    ///
    /// FILE is checked first (SQLite integrity_check, a mesero database, a
    /// schema version this mesero can open). Refused while the daemon or
    /// anything else has the database open. The previous database is kept
    /// next to it as `<storage.path>.before-restore-<UTC time>`.
    Restore {
        /// The backup to restore (a file `db backup` wrote).
        file: PathBuf,
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Import past visits from another system: a CSV with the header
    /// table,party_size,seated_at,left_at (table `3` or `3+4`; local times
    /// YYYY-MM-DD HH:MM[:SS] or RFC 3339). Every bad row is reported with
    /// its line; nothing is imported unless all are good (or --skip-bad).
    ImportVisits {
        file: PathBuf,
        /// Import the good rows and skip (but still report) the bad ones.
        #[arg(long)]
        skip_bad: bool,
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Derive the visits again from the event log (imported visits stay;
    /// visits older than the kept log stay as they are).
    RebuildVisits {
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Remove the names, phones and notes typed for reservations and
    /// waitlist parties that are over and before DATE (YYYY-MM-DD, local):
    /// in their rows and in the stored events. Party sizes and times stay.
    PurgeGuests {
        #[arg(long, value_name = "DATE")]
        before: String,
        #[arg(long, short, env = "MESERO_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

/// Whether `e` is stdout's reader having gone away (EPIPE): the command
/// was cut short on purpose, which is not a failure.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs the command line and decides the exit status: 0 on success or
/// when stdout's reader went away, [`EX_CONFIG`] for a bad config or a
/// database from a newer mesero, 1 for anything else. Nothing below calls `process::exit`, so every command's
/// cleanup (`sensors watch` stopping its sensors and resetting the pins,
/// the runtime's shutdown) runs on every path.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            note(format_args!("mesero: {e:#}"));
            let permanent = |cause: &(dyn std::error::Error + 'static)| {
                cause.is::<ConfigError>()
                    || cause.is::<crate::tls::TlsError>()
                    || cause
                        .downcast_ref::<crate::store::StoreError>()
                        .is_some_and(crate::store::StoreError::is_permanent)
                    || cause
                        .downcast_ref::<crate::store::BackupError>()
                        .is_some_and(crate::store::BackupError::is_permanent)
            };
            if e.chain().any(permanent) {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            crate::logging::init(&config.log_level);
            runtime()?.block_on(run(config))
        }
        Command::Check { file, config } => {
            let path = file.unwrap_or(config);
            let config = Config::load(&path)?;
            out(format_args!("{}: ok\n{}", path.display(), config.summary()))?;
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            out(format_args!("{EXAMPLE}"))?;
            Ok(())
        }
        Command::Tls {
            command: TlsCommand::Init { force, config },
        } => tls::init(&Config::load(&config)?, force),
        Command::Tls {
            command: TlsCommand::Ca { path, config },
        } => tls::ca(&Config::load(&config)?, path),
        Command::Db {
            command: DbCommand::Backup { file, config },
        } => db::backup(&Config::load(&config)?, &file),
        Command::Db {
            command: DbCommand::Restore { file, config },
        } => db::restore(&Config::load(&config)?, &file),
        Command::Db {
            command:
                DbCommand::ImportVisits {
                    file,
                    skip_bad,
                    config,
                },
        } => visits::import(&Config::load(&config)?, &file, skip_bad),
        Command::Db {
            command: DbCommand::RebuildVisits { config },
        } => visits::rebuild(&Config::load(&config)?),
        Command::Db {
            command: DbCommand::PurgeGuests { before, config },
        } => visits::purge(&Config::load(&config)?, &before),
        Command::Report {
            from,
            to,
            out,
            config,
        } => visits::report(
            &Config::load(&config)?,
            from.as_deref(),
            to.as_deref(),
            &out,
        ),
        Command::Sensors {
            command: SensorsCommand::Scan { config },
        } => {
            sensors::require_pi("sensors scan")?;
            let path = config.or_else(|| {
                let default = PathBuf::from(DEFAULT_CONFIG);
                default.exists().then_some(default)
            });
            let config = path.as_deref().map(Config::load).transpose()?;
            sensors::scan(config.as_ref())
        }
        Command::Sensors {
            command: SensorsCommand::Watch { config },
        } => {
            let config = Config::load(&config)?;
            runtime()?.block_on(sensors::watch(&config))
        }
        Command::Watch {
            url,
            token,
            mqtt: None,
            ..
        } => runtime()?.block_on(watch::run(&url, token.as_deref())),
        Command::Watch {
            mqtt: Some(mqtt),
            site,
            prefix,
            username,
            password,
            ca_file,
            ..
        } => runtime()?.block_on(watch_mqtt::run(watch_mqtt::Options {
            url: &mqtt,
            site: site.as_deref().unwrap_or_default(),
            prefix: &prefix,
            username: username.as_deref(),
            password: password.as_deref(),
            ca_file: &ca_file,
        })),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let supervision = crate::systemd::Supervision::from_env();
    let stop = crate::signals::Stop::install()?.requested();
    tokio::pin!(stop);
    // A stop asked for during start-up (a slow migration) abandons it:
    // `Daemon::start`'s drop guard takes down whatever had started.
    let daemon = tokio::select! {
        daemon = crate::daemon::Daemon::start(config, None, supervision) => daemon?,
        signal = &mut stop => {
            tracing::info!(signal, "stopped during start-up");
            return Ok(());
        }
    };
    let signal = stop.await;
    tracing::info!(signal, "stopping");
    daemon.stop().await;
    Ok(())
}
