//! The greenhouse-sim binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::TestResult;

const BINARY: &str = env!("CARGO_BIN_EXE_greenhouse-sim");

#[test]
fn help_documents_options() -> TestResult {
    let output = Command::new(BINARY).arg("--help").output()?;
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout)?;
    for option in ["--listen", "--seed", "--candidates", "--applications", "--jobs", "--rate-limit", "--latency-ms", "--client-secret", "--token-ttl-secs", "--mutations-per-sec", "--webhook-url", "--retry-scale", "--error-rate"] {
        assert!(help.contains(option), "--help lacks {option}");
    }
    Ok(())
}

#[test]
fn binary_prints_listening_line() -> TestResult {
    let mut child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--candidates", "50", "--applications", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;

    let url = line.trim().strip_prefix("listening on ").map(str::to_owned);
    let answer = url.as_ref().map(|url| raw_http::get(&format!("{url}/_sim/truth")));
    child.kill()?;
    child.wait()?;

    let url = url.ok_or_else(|| format!("unexpected first line: {line:?}"))?;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let truth = answer.ok_or("no answer")??;
    assert!(truth.contains("\"candidates\":{\"checksum\""), "{truth}");
    Ok(())
}

/// A minimal HTTP/1.1 GET over a TCP socket, so this synchronous test needs no runtime.
mod raw_http {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub fn get(url: &str) -> Result<String, Box<dyn std::error::Error>> {
        let rest = url.strip_prefix("http://").ok_or("only http URLs")?;
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).ok_or("URL has no path")?;
        let mut stream = TcpStream::connect(host)?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }
}
