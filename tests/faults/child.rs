//! The `greenhouse-sync` binary run as a child process, so that a test can kill it with
//! SIGKILL at any moment. Only processes started here are ever signalled.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::TEST_MASTER_KEY;

/// The binary built from this package.
pub const BINARY: &str = env!("CARGO_BIN_EXE_greenhouse-sync");

/// Client id and secret that greenhouse-sim accepts by default.
pub const SIM_CLIENT_ID: &str = "sync-client";
pub const SIM_CLIENT_SECRET: &str = "sim-secret";

/// Maximum wait for a child server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The database, Harvest hosts and log file shared by every child of one test.
#[derive(Debug, Clone)]
pub struct ChildEnv {
    pub database_url: String,
    /// Harvest v3 base URL, such as `http://127.0.0.1:41234/v3`.
    pub harvest_base_url: Option<String>,
    pub harvest_token_url: Option<String>,
    /// File that collects the standard error of every child, for failure messages.
    pub log_path: PathBuf,
}

impl ChildEnv {
    pub fn new(database_url: &str, log_dir: &Path) -> ChildEnv {
        ChildEnv {
            database_url: database_url.to_string(),
            harvest_base_url: None,
            harvest_token_url: None,
            log_path: log_dir.join("children.log"),
        }
    }

    /// Points the children at a greenhouse-sim instance.
    pub fn with_sim(mut self, sim: &greenhouse_sync::sim::RunningSim) -> ChildEnv {
        self.harvest_base_url = Some(format!("{}/v3", sim.base_url()));
        self.harvest_token_url = Some(sim.token_url());
        self
    }

    /// Builds a command with this environment. Settings inherited from the caller's
    /// environment are removed, so a developer's own configuration cannot leak in.
    fn command(&self, args: &[&str], capture_stdout: bool) -> Command {
        let mut command = Command::new(BINARY);
        command.args(args);
        for (name, _) in std::env::vars() {
            if name.starts_with("GREENHOUSE_SYNC_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        command.env("DATABASE_URL", &self.database_url);
        command.env("GREENHOUSE_SYNC_MASTER_KEY", TEST_MASTER_KEY);
        command.env("RUST_LOG", "info");
        if let Some(url) = &self.harvest_base_url {
            command.env("GREENHOUSE_SYNC_HARVEST_BASE_URL", url);
        }
        if let Some(url) = &self.harvest_token_url {
            command.env("GREENHOUSE_SYNC_HARVEST_TOKEN_URL", url);
        }
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("open the child log file");
        command.stderr(Stdio::from(log));
        command.stdout(if capture_stdout { Stdio::piped() } else { Stdio::null() });
        command.stdin(Stdio::null());
        command
    }

    /// Starts the binary with `args`, keeping its standard output for `finish`.
    pub fn spawn(&self, args: &[&str]) -> RunningChild {
        self.spawn_with(args, true)
    }

    fn spawn_with(&self, args: &[&str], capture_stdout: bool) -> RunningChild {
        let child = self.command(args, capture_stdout).spawn().unwrap_or_else(|e| panic!("start {BINARY} {args:?}: {e}"));
        RunningChild { child, label: args.join(" "), log_path: self.log_path.clone() }
    }

    /// Adds an account through the command line and returns its id. With `harvest`, the
    /// account gets the credentials greenhouse-sim accepts.
    pub fn add_account(&self, webhook_secret: &str, harvest: bool) -> i64 {
        let mut args = vec!["accounts", "add", "--name", "Fault test", "--webhook-secret", webhook_secret];
        if harvest {
            args.extend(["--client-id", SIM_CLIENT_ID, "--client-secret", SIM_CLIENT_SECRET]);
        }
        let output = self.command(&args, true).output().expect("run accounts add");
        assert!(output.status.success(), "accounts add failed: {}", self.log_tail());

        let account: Value = serde_json::from_slice(&output.stdout).expect("accounts add prints JSON");
        account["id"].as_i64().expect("account id")
    }

    /// Starts `serve` on `port` and waits until it accepts connections.
    pub async fn serve(&self, port: u16, extra: &[&str]) -> ServerChild {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen, "--workers", "2"];
        args.extend_from_slice(extra);
        let mut process = self.spawn_with(&args, false);

        let deadline = Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = process.exited() {
                panic!("serve exited with {status} before listening: {}", self.log_tail());
            }
            assert!(Instant::now() < deadline, "serve did not listen within {START_TIMEOUT:?}: {}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ServerChild { process, base_url: format!("http://{listen}") }
    }

    /// Returns the last lines the children wrote to standard error.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Counts log lines of every child that contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_lines(needle).len()
    }

    /// Returns the log lines of every child that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        text.lines().filter(|line| line.contains(needle)).map(str::to_string).collect()
    }
}

/// A child process that is killed when dropped, so a failing test leaves nothing behind.
pub struct RunningChild {
    child: Child,
    label: String,
    log_path: PathBuf,
}

impl RunningChild {
    /// Returns the exit status once the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll child process")
    }

    /// Sends SIGKILL (what `Child::kill` sends on Unix) and reaps the process.
    pub fn sigkill(&mut self) {
        if self.exited().is_none() {
            self.child.kill().expect("SIGKILL the child process");
        }
        self.child.wait().expect("reap the child process");
    }

    /// Waits for the process to end and returns its status and standard output. Kills it
    /// and fails the test after `timeout`.
    pub async fn finish(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            if Instant::now() > deadline {
                self.sigkill();
                let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!("`{}` did not finish within {timeout:?}; log tail (newest first):\n{}", self.label, tail.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };

        let mut stdout = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            use std::io::Read;
            pipe.read_to_string(&mut stdout).expect("read child output");
        }
        (status, stdout)
    }
}

impl Drop for RunningChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `serve` child with the URL it listens on.
pub struct ServerChild {
    pub process: RunningChild,
    pub base_url: String,
}

impl ServerChild {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Returns the status of `GET path`, or `None` when the request failed.
    pub async fn get_status(&self, http: &reqwest::Client, path: &str) -> Option<u16> {
        let response = http.get(self.url(path)).timeout(Duration::from_secs(10)).send().await.ok()?;
        Some(response.status().as_u16())
    }
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}
