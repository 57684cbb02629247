//! Starting greenhouse-sim and greenhouse-sync as child processes, and measuring them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::Common;

/// Client secret the simulator is started with and every benchmark account presents.
pub const SIM_CLIENT_SECRET: &str = "bench-sim-secret";

/// Webhook secret of every benchmark account.
pub const WEBHOOK_SECRET: &str = "bench-webhook-secret";

/// Master key that seals account secrets in benchmark databases. greenhouse-sync requires one
/// on PostgreSQL; benchmark databases are thrown away, so a fixed key is enough.
const BENCH_MASTER_KEY: &str = "Z3JlZW5ob3VzZS1iZW5jaC1vbmx5LW1hc3Rlci1rZXk=";

/// How long a child process may take to print its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings every benchmark shares: the binaries, the work directory and the results file.
pub struct BenchContext {
    pub sim_bin: PathBuf,
    pub sync_bin: PathBuf,
    pub work_dir: PathBuf,
    pub postgres_url: String,
    pub results: Option<PathBuf>,
    pub tiny: bool,
    counter: AtomicU32,
}

impl BenchContext {
    /// Finds the binaries and makes this invocation's work directory.
    pub fn new(common: &Common) -> anyhow::Result<BenchContext> {
        let bin_dir = match &common.bin_dir {
            Some(dir) => dir.clone(),
            None => own_directory()?,
        };
        let sim_bin = existing_binary(&bin_dir, "greenhouse-sim")?;
        let sync_bin = existing_binary(&bin_dir, "greenhouse-sync")?;

        let parent = common.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        let work_dir = parent.join(format!("greenhouse-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work_dir).with_context(|| format!("could not create {}", work_dir.display()))?;
        eprintln!("greenhouse-bench: logs and SQLite files in {}", work_dir.display());

        Ok(BenchContext {
            sim_bin,
            sync_bin,
            work_dir,
            postgres_url: common.postgres_url.trim_end_matches('/').to_string(),
            results: common.results.clone(),
            tiny: common.tiny,
            counter: AtomicU32::new(0),
        })
    }

    /// Returns a name no other run of this invocation uses, such as `sweep_1234_3`.
    pub fn unique_name(&self, label: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{label}_{}_{n}", std::process::id())
    }

    /// Appends one result to the results file as a JSON line, when one was given.
    pub fn record(&self, result: &impl Serialize) -> anyhow::Result<()> {
        let Some(path) = &self.results else {
            return Ok(());
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("could not open results file {}", path.display()))?;
        writeln!(file, "{}", serde_json::to_string(result)?).with_context(|| format!("could not write {}", path.display()))?;
        Ok(())
    }

    /// Opens a log file in the work directory for a child's output.
    /// Returns a `greenhouse-sync` command with the benchmark's master key set.
    pub fn sync_command(&self) -> Command {
        let mut command = Command::new(&self.sync_bin);
        command.env("GREENHOUSE_SYNC_MASTER_KEY", BENCH_MASTER_KEY);
        command
    }

    pub fn log_file(&self, name: &str) -> anyhow::Result<(PathBuf, File)> {
        let path = self.work_dir.join(name);
        let file = File::create(&path).with_context(|| format!("could not create {}", path.display()))?;
        Ok((path, file))
    }
}

fn own_directory() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("could not find this binary's path; pass --bin-dir")?;
    exe.parent().map(Path::to_path_buf).context("this binary's path has no directory; pass --bin-dir")
}

fn existing_binary(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!("{name} not found in {}: build it with `cargo build --release --bins` or pass --bin-dir", dir.display());
    }
    Ok(path)
}

/// A child process that is killed when dropped, so a failed benchmark leaves nothing running.
pub struct Spawned {
    child: Child,
    name: String,
}

impl Spawned {
    pub fn spawn(mut command: Command, name: &str) -> anyhow::Result<Spawned> {
        let child = command.spawn().with_context(|| format!("could not start {name}"))?;
        Ok(Spawned { child, name: name.to_string() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has already exited, naming its exit status.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `path` until a line contains `needle`, and returns that line.
pub fn wait_for_line(path: &Path, needle: &str, process: &mut Spawned) -> anyhow::Result<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|line| line.contains(needle)) {
            return Ok(line.to_string());
        }
        process.check_running().with_context(|| format!("see {}", path.display()))?;
        if Instant::now() > deadline {
            bail!("no line containing {needle:?} in {} after {START_TIMEOUT:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Memory and CPU of a running process, read from `/proc/PID/status` and `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    pub rss_kb: u64,
    /// RssAnon: the part of the resident set that is heap and stacks.
    pub anon_kb: u64,
    /// RssFile plus RssShmem: mapped files, such as the binary's code and SQLite's WAL index.
    pub file_kb: u64,
    /// VmHWM: the highest resident set size the process has had.
    pub peak_rss_kb: u64,
    /// User plus system CPU time.
    pub cpu_secs: f64,
}

pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let status_path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&status_path).with_context(|| format!("could not read {status_path}"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        rss_kb: field("VmRSS:"),
        anon_kb: field("RssAnon:"),
        file_kb: field("RssFile:") + field("RssShmem:"),
        peak_rss_kb: field("VmHWM:"),
        cpu_secs: cpu_seconds(pid)?,
    })
}

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat_path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&stat_path).with_context(|| format!("could not read {stat_path}"))?;

    // The command name in field 2 may contain spaces, so count fields after its closing ')'.
    // utime and stime are fields 14 and 15, the 12th and 13th after it.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("unexpected /proc stat format")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let text = fields.get(index).with_context(|| format!("{stat_path} has no field {}", index + 3))?;
        Ok(text.parse::<u64>().with_context(|| format!("invalid CPU ticks {text:?} in {stat_path}"))? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Exit status, time and resource use of a measured command.
#[derive(Debug, Clone)]
pub struct Finished {
    pub exit: String,
    pub wall: Duration,
    /// The kernel's high-water mark of resident memory (VmHWM), sampled while it runs.
    pub peak_rss_kb: u64,
    pub cpu_secs: f64,
    pub stdout: String,
}

/// How often `run_measured` reads the child's VmHWM.
const PEAK_POLL: Duration = Duration::from_millis(20);

/// Runs a command to its end, taking its CPU time from `wait4` and its peak memory from
/// VmHWM, read every 20 ms until it exits.
///
/// `wait4`'s `ru_maxrss` cannot serve as the peak. Linux counts in it the memory the child
/// shared with this process between fork and exec, so once greenhouse-bench itself had grown
/// to 26.5 MiB, every child reported at least that. VmHWM belongs to the program after exec.
/// It only rises, so polling misses at most the growth of the last 20 ms before exit.
pub fn run_measured(mut command: Command, stdout_path: &Path, stderr: File) -> anyhow::Result<Finished> {
    let stdout = File::create(stdout_path).with_context(|| format!("could not create {}", stdout_path.display()))?;
    command.stdout(stdout).stderr(stderr).stdin(Stdio::null());

    let started = Instant::now();
    let child = command.spawn().context("could not start the measured command")?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, so all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut peak_rss_kb = 0;
    let reaped = loop {
        // SAFETY: pid is our own unreaped child and both pointers outlive the call. `child`
        // is not waited on afterwards, so std never reaps the pid a second time.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped != 0 {
            break reaped;
        }
        // The child may exit between the two calls; the next wait4 then reaps it.
        if let Ok(now) = sample(pid as u32) {
            peak_rss_kb = peak_rss_kb.max(now.peak_rss_kb);
        }
        std::thread::sleep(PEAK_POLL);
    };
    let wall = started.elapsed();
    drop(child);
    if reaped != pid {
        bail!("wait4 failed for pid {pid}: {}", std::io::Error::last_os_error());
    }

    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    let exit = if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else {
        format!("signal {}", libc::WTERMSIG(status))
    };
    Ok(Finished {
        exit,
        wall,
        // A child that exited before the first sample falls back to ru_maxrss.
        peak_rss_kb: if peak_rss_kb > 0 { peak_rss_kb } else { usage.ru_maxrss as u64 },
        cpu_secs: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        stdout: std::fs::read_to_string(stdout_path).unwrap_or_default(),
    })
}

/// Sizes and pacing of a simulator.
#[derive(Debug, Clone, Serialize)]
pub struct SimOptions {
    /// `(flag, count)` pairs such as `("candidates", 10000)`.
    pub sizes: Vec<(&'static str, u64)>,
    pub rate_limit: u32,
    pub latency_ms: u64,
    pub latency_per_record_us: u64,
}

/// A running greenhouse-sim.
pub struct Sim {
    _process: Spawned,
    pub base_url: String,
}

impl Sim {
    pub fn start(context: &BenchContext, options: &SimOptions, name: &str) -> anyhow::Result<Sim> {
        let (stdout_path, stdout) = context.log_file(&format!("{name}.sim.out"))?;
        let (_, stderr) = context.log_file(&format!("{name}.sim.log"))?;

        let mut command = Command::new(&context.sim_bin);
        command.args(["--listen", "127.0.0.1:0", "--client-secret", SIM_CLIENT_SECRET]);
        command.args(["--rate-limit", &options.rate_limit.to_string()]);
        command.args(["--latency-ms", &options.latency_ms.to_string()]);
        command.args(["--latency-per-record-us", &options.latency_per_record_us.to_string()]);
        for (flag, count) in &options.sizes {
            command.arg(format!("--{flag}")).arg(count.to_string());
        }
        command.stdout(stdout).stderr(stderr).stdin(Stdio::null());

        let mut process = Spawned::spawn(command, "greenhouse-sim")?;
        let line = wait_for_line(&stdout_path, "listening on ", &mut process)?;
        let base_url = line.trim().trim_start_matches("listening on ").to_string();
        Ok(Sim { _process: process, base_url })
    }

    /// Harvest flags that point greenhouse-sync at this simulator.
    pub fn harvest_args(&self) -> Vec<String> {
        vec![
            "--harvest-base-url".into(),
            format!("{}/v3", self.base_url),
            "--harvest-token-url".into(),
            format!("{}/token", self.base_url),
        ]
    }
}

/// A running `greenhouse-sync serve`.
pub struct Server {
    pub process: Spawned,
    pub base_url: String,
    pub log_path: PathBuf,
}

impl Server {
    /// Starts the server on a loopback port chosen by the system and waits until it listens.
    /// Its log is JSON, so the address can be read from the `greenhouse-sync listening` line.
    pub fn start(context: &BenchContext, database_url: &str, serve_args: &[String], name: &str) -> anyhow::Result<Server> {
        let (log_path, stderr) = context.log_file(&format!("{name}.server.log"))?;
        let (_, stdout) = context.log_file(&format!("{name}.server.out"))?;

        let mut command = context.sync_command();
        command.args(["--database-url", database_url, "--log-format", "json", "serve", "--listen", "127.0.0.1:0"]);
        command.args(serve_args);
        command.env("RUST_LOG", "info").stdout(stdout).stderr(stderr).stdin(Stdio::null());

        let mut process = Spawned::spawn(command, "greenhouse-sync serve")?;
        let line = wait_for_line(&log_path, "greenhouse-sync listening", &mut process)?;
        let event: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("the server's listening line is not JSON: {line}"))?;
        let address = event["address"].as_str().with_context(|| format!("no address in the server's listening line: {line}"))?;
        Ok(Server { process, base_url: format!("http://{address}"), log_path })
    }

    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        sample(self.process.pid())
    }
}

/// Creates an account through `greenhouse-sync accounts add` and returns its id. With
/// `harvest`, the account gets client credentials the simulator accepts.
pub fn add_account(context: &BenchContext, database_url: &str, harvest: bool) -> anyhow::Result<i64> {
    let mut command = context.sync_command();
    command.args(["--database-url", database_url, "accounts", "add", "--name", "bench", "--webhook-secret", WEBHOOK_SECRET]);
    if harvest {
        command.args(["--client-id", "bench-client", "--client-secret", SIM_CLIENT_SECRET]);
    }
    let output = command.stdin(Stdio::null()).output().context("could not run greenhouse-sync accounts add")?;
    if !output.status.success() {
        bail!("greenhouse-sync accounts add failed with {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    }

    let account: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("greenhouse-sync accounts add printed no JSON")?;
    account["id"].as_i64().context("greenhouse-sync accounts add printed no account id")
}
