//! `greenhouse-sync healthcheck`: requests the local server's `/healthz` and exits 0 when
//! it returns 200. Container images use it as their health check, since slim images have no
//! curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// Time allowed to connect and to read the response.
const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The server's listen address, as given to `serve`. The check always connects over
    /// loopback on that port, because it runs beside the server.
    #[arg(long, env = "GREENHOUSE_SYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
}

pub fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let target = loopback_target(&args.listen)?;
    let status = get_status(target).with_context(|| format!("health check of {target} failed"))?;
    if status != 200 {
        anyhow::bail!("health check of {target} got HTTP {status}, expected 200");
    }
    Ok(())
}

/// Returns the loopback address of the listen address's family, on its port.
fn loopback_target(listen: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("invalid listen address '{listen}'; expected IP:PORT such as 0.0.0.0:8080"))?;
    let loopback = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    Ok(SocketAddr::new(loopback, addr.port()))
}

/// Sends `GET /healthz` over plain HTTP/1.1 and returns the status code.
fn get_status(target: SocketAddr) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")?;

    // The status line fits in the first read; the body does not matter.
    let mut head = [0u8; 64];
    let read = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..read]);
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response: {:?}", line.lines().next().unwrap_or_default()))?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_address_becomes_loopback() {
        assert_eq!(loopback_target("0.0.0.0:8080").expect("valid"), "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(loopback_target("[::]:9000").expect("valid"), "[::1]:9000".parse().expect("addr"));
    }

    #[test]
    fn host_name_rejected() {
        assert!(loopback_target("localhost:8080").is_err());
    }
}
