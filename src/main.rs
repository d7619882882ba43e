//! The `signupd` command line: one small function per subcommand.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use signupd::config::{self, LoadOptions, Loaded};
use signupd::sink::Sink;
use signupd::sink::session::SessionConfig;
use signupd::{Daemon, Listeners, accounts, admin, auth};

#[derive(Parser)]
#[command(name = "signupd", version, about = "Account sign-up as one daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Configuration file [default: ./daemon.toml, then /etc/signupd/daemon.toml]
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Development mode: built-in SMTP sink, made-up secret if none is set.
        #[arg(long)]
        dev: bool,
    },
    /// Validate the configuration and print the effective settings, secrets masked.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print a token.
    Token {
        #[command(subcommand)]
        kind: TokenKind,
    },
    /// Read a password from standard input and print its bcrypt hash.
    HashPassword {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run the SMTP sink alone, printing every message like Python's DebuggingServer.
    Sink {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:2525", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Advertise and accept SMTPUTF8 (like DebuggingServer's -u).
        #[arg(long)]
        smtputf8: bool,
    },
    /// Send a mail now over the configured relay, without the queue.
    Mail {
        #[command(subcommand)]
        kind: MailKind,
    },
    /// Accounts of the running daemon.
    Users {
        #[command(subcommand)]
        action: UsersAction,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// The running daemon's mail queue: pending and dead messages.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Write a consistent snapshot of the running daemon's store to FILE.
    Backup {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Replace the store with a snapshot; refused while the daemon runs.
    Restore {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    List,
    Show { email: String },
    Delete { email: String },
}

#[derive(Subcommand)]
enum QueueAction {
    List,
    /// Send a pending or dead message again, now.
    Retry {
        id: String,
    },
    /// Remove a pending or dead message.
    Drop {
        id: String,
    },
}

#[derive(Subcommand)]
enum MailKind {
    /// The confirmation mail for TOKEN to EMAIL (the tutorial's send_confirmation_message).
    Confirmation {
        token: String,
        email: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum TokenKind {
    /// A `registration` token for a user id (the tutorial's create_confirmation_token).
    Confirmation {
        user_id: uuid::Uuid,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, dev } => serve_command(config, dev),
        Command::CheckConfig { config } => check_config_command(config),
        Command::Token {
            kind: TokenKind::Confirmation { user_id, config },
        } => token_command(config, user_id),
        Command::HashPassword { config } => hash_password_command(config),
        Command::Sink { listen, smtputf8 } => sink_command(listen, smtputf8),
        Command::Mail {
            kind:
                MailKind::Confirmation {
                    token,
                    email,
                    config,
                },
        } => mail_confirmation_command(config, &token, &email),
        Command::Users { action, config } => users_command(config, action),
        Command::Queue { action, config } => queue_command(config, action),
        Command::Backup { file, config } => backup_command(config, &file),
        Command::Restore { file, config } => restore_command(config, &file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signupd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load(arg: ConfigArg, dev: bool, secret_optional: bool) -> anyhow::Result<Loaded> {
    Ok(config::load(&LoadOptions {
        config: arg.config,
        dev,
        secret_optional,
    })?)
}

fn init_logging(cfg: &config::LoggingConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::new(f),
        _ => EnvFilter::new(&cfg.filter),
    };
    // A failed log write must not matter: by default tracing-subscriber
    // reports it with eprintln!, which panics when stderr is gone.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // journald stamps every line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match (cfg.format.as_str(), journald) {
        ("json", _) => builder.json().init(),
        (_, true) => builder.without_time().init(),
        _ => builder.init(),
    }
}

fn serve_command(arg: ConfigArg, dev: bool) -> anyhow::Result<()> {
    let loaded = load(arg, dev, false)?;
    init_logging(&loaded.config.logging);
    if loaded.generated_secret {
        tracing::warn!(
            "--dev without a secret key: using a random one for this run; tokens will not survive a restart"
        );
    }
    runtime()?.block_on(async move {
        let listeners = Listeners::bind(&loaded.config).await?;
        let daemon = Daemon::open(loaded.config, listeners)?;
        if let Some(sink) = daemon.sink_addr() {
            tracing::info!(addr = %sink, "dev SMTP sink listening; all mail goes to it");
        }
        tracing::info!(addr = %daemon.local_addr()?, source = %loaded.source, "listening");
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        daemon.run(shutdown).await
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

fn sink_command(listen: std::net::SocketAddr, smtputf8: bool) -> anyhow::Result<()> {
    init_logging(&config::Config::default().logging);
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(addr = %listener.local_addr()?, "SMTP sink listening");
        let sink = Sink::new(SessionConfig {
            smtputf8,
            ..SessionConfig::default()
        });
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        sink.serve(listener, shutdown).await;
        Ok(())
    })
}

fn mail_confirmation_command(arg: ConfigArg, token: &str, email: &str) -> anyhow::Result<()> {
    let loaded = load(arg, false, true)?;
    let email = accounts::validate_email(email)?.typed;
    runtime()?.block_on(signupd::mailer::send_confirmation_message(
        &loaded.config,
        token,
        &email,
    ))?;
    eprintln!(
        "sent the confirmation mail to {email} via {}:{}",
        loaded.config.mail.smtp_host, loaded.config.mail.smtp_port
    );
    Ok(())
}

/// The first SIGTERM or SIGINT starts a graceful stop; a second one ends the
/// process at once (the store is still consistent, only unanswered requests are lost).
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot watch signals");
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        if round == 0 {
            shutdown.cancel();
            tracing::info!("stopping: finishing requests in flight");
        } else {
            tracing::warn!("second signal: exiting now");
            std::process::exit(1);
        }
    }
}

fn check_config_command(arg: ConfigArg) -> anyhow::Result<()> {
    let loaded = load(arg, false, false)?;
    print!("{}", config::describe_loaded(&loaded));
    Ok(())
}

fn token_command(arg: ConfigArg, user_id: uuid::Uuid) -> anyhow::Result<()> {
    let loaded = load(arg, false, false)?;
    let pool = signupd::pool::HashPool::new(1, 0)?;
    let auth = auth::Auth::new(&loaded.config.auth, pool)?;
    let (token, _) = auth.create_confirmation_token(user_id)?;
    println!("{token}");
    Ok(())
}

fn hash_password_command(arg: ConfigArg) -> anyhow::Result<()> {
    let loaded = load(arg, false, true)?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    // One trailing newline is how `echo` and terminals end input, not part of the password.
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    accounts::validate_password(password)?;
    let hash = auth::hash_now(password, loaded.config.auth.bcrypt_cost as u32)?;
    println!("{hash}");
    Ok(())
}

fn admin_socket(arg: ConfigArg) -> anyhow::Result<PathBuf> {
    Ok(load(arg, false, true)?.config.admin_socket_path())
}

fn users_command(arg: ConfigArg, action: UsersAction) -> anyhow::Result<()> {
    let socket = admin_socket(arg)?;
    let (req, list) = match action {
        UsersAction::List => (serde_json::json!({"cmd": "users_list"}), true),
        UsersAction::Show { email } => (
            serde_json::json!({"cmd": "users_show", "email": email}),
            false,
        ),
        UsersAction::Delete { email } => (
            serde_json::json!({"cmd": "users_delete", "email": email}),
            false,
        ),
    };
    let data = admin::request(&socket, req)?;
    if list {
        for u in data.as_array().into_iter().flatten() {
            println!(
                "{}  {:<7}  {}  {}",
                u["id"].as_str().unwrap_or(""),
                u["status"].as_str().unwrap_or(""),
                u["created_at"].as_str().unwrap_or(""),
                u["email"].as_str().unwrap_or("")
            );
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&data)?);
    }
    Ok(())
}

fn queue_command(arg: ConfigArg, action: QueueAction) -> anyhow::Result<()> {
    let socket = admin_socket(arg)?;
    let req = match &action {
        QueueAction::List => serde_json::json!({"cmd": "queue_list"}),
        QueueAction::Retry { id } => serde_json::json!({"cmd": "queue_retry", "id": id}),
        QueueAction::Drop { id } => serde_json::json!({"cmd": "queue_drop", "id": id}),
    };
    let data = admin::request(&socket, req)?;
    if let QueueAction::List = action {
        for m in data.as_array().into_iter().flatten() {
            println!(
                "{}  {:<7}  attempts={}  {}  {}  {}",
                m["id"].as_str().unwrap_or(""),
                m["state"].as_str().unwrap_or(""),
                m["attempts"],
                m["kind"].as_str().unwrap_or(""),
                m["to"].as_str().unwrap_or(""),
                m["last_error"].as_str().unwrap_or("-")
            );
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&data)?);
    }
    Ok(())
}

fn backup_command(arg: ConfigArg, file: &std::path::Path) -> anyhow::Result<()> {
    let records = admin::backup(&admin_socket(arg)?, file)?;
    eprintln!("wrote {records} records to {}", file.display());
    Ok(())
}

fn restore_command(arg: ConfigArg, file: &std::path::Path) -> anyhow::Result<()> {
    let loaded = load(arg, false, true)?;
    let path = std::path::Path::new(&loaded.config.storage.path);
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = signupd::store::Store::open(path, loaded.config.storage.cache_mb)
        .map_err(|e| anyhow::anyhow!("{e}; stop the daemon before restoring"))?;
    let records = store.restore(std::io::BufReader::new(input))?;
    store.commit_blocking()?;
    store.close();
    eprintln!("restored {records} records into {}", path.display());
    Ok(())
}
