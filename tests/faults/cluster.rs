//! A private PostgreSQL cluster that a test may stop and start: `initdb` into a temporary
//! directory, one loopback port, trust authentication. The machine's shared server, which
//! other tests use at the same time, is never touched.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::TestDatabase;

/// Where Debian and Ubuntu install the PostgreSQL server binaries, one folder per version.
const BINARY_ROOT: &str = "/usr/lib/postgresql";

/// OS user that owns the cluster when the tests run as root, because `initdb` refuses root.
const CLUSTER_USER: &str = "postgres";

pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_cluster_user: bool,
}

impl PrivateCluster {
    /// Creates and starts a cluster. Returns `None`, after printing why, only when no
    /// PostgreSQL server binaries are installed. Any other failure fails the test.
    pub fn start() -> Option<PrivateCluster> {
        let Some(bin) = find_binaries() else {
            println!("skipped: no PostgreSQL server binaries under {BINARY_ROOT}/*/bin (install postgresql to run this test)");
            return None;
        };
        let dir = tempfile::tempdir().expect("create the cluster directory");
        let as_cluster_user = running_as_root();
        if as_cluster_user {
            give_to_cluster_user(dir.path());
        }

        let cluster = PrivateCluster { dir, bin, port: crate::child::free_port(), as_cluster_user };
        cluster.initdb();
        cluster.start_again();
        Some(cluster)
    }

    /// URL of the cluster's default database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn initdb(&self) {
        let data = self.data_dir();
        let args = ["-D", path_str(&data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"];
        self.run("initdb", &args);
    }

    /// Starts the stopped cluster on its port and waits until it accepts connections.
    pub fn start_again(&self) {
        // fsync is off because these tests kill processes, never the machine: the page
        // cache survives and a committed transaction is still there after a restart.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=60",
            self.port,
            path_str(self.dir.path())
        );
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log");
        self.run("pg_ctl", &["start", "-w", "-t", "30", "-D", path_str(&data), "-l", path_str(&log), "-o", &options]);
    }

    /// Stops the cluster the way a crash would: no checkpoint, every connection cut.
    pub fn stop_immediate(&self) {
        let data = self.data_dir();
        self.run("pg_ctl", &["stop", "-w", "-m", "immediate", "-D", path_str(&data)]);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.output(program, args);
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn output(&self, program: &str, args: &[&str]) -> std::process::Output {
        let binary = self.bin.join(program);
        let mut command = if self.as_cluster_user {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", CLUSTER_USER, "--"]).arg(&binary);
            runuser
        } else {
            Command::new(&binary)
        };
        command.args(args).output().unwrap_or_else(|e| panic!("run {}: {e}", binary.display()))
    }
}

impl Drop for PrivateCluster {
    /// Stops the cluster whatever state the test left it in; a stopped cluster makes
    /// `pg_ctl` fail, which is fine here.
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.output("pg_ctl", &["stop", "-w", "-m", "immediate", "-D", path_str(&data)]);
    }
}

/// Returns a PostgreSQL database for tests that need that backend, whatever
/// `TEST_DATABASE_URL` is set to: a schema in its database when it is set, else a private
/// cluster, else `None`. The caller keeps the returned guards alive while it runs.
pub fn postgres_database() -> Option<(String, Option<TestDatabase>, Option<PrivateCluster>)> {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
        let database = TestDatabase::create();
        return Some((database.url.clone(), Some(database), None));
    }
    let cluster = PrivateCluster::start()?;
    Some((cluster.url(), None, Some(cluster)))
}

/// Returns the `bin` folder of the newest installed version that has `initdb`.
fn find_binaries() -> Option<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir(BINARY_ROOT)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn give_to_cluster_user(dir: &Path) {
    let output = Command::new("id").args(["-u", CLUSTER_USER]).output().expect("run id");
    assert!(output.status.success(), "the tests run as root but there is no `{CLUSTER_USER}` OS user to own the cluster");
    let uid: u32 = String::from_utf8_lossy(&output.stdout).trim().parse().expect("numeric uid");
    std::os::unix::fs::chown(dir, Some(uid), None).expect("give the cluster directory to the postgres user");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
