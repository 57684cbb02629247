//! Hostile webhook input over real HTTP, on SQLite by default and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.
//!
//! The corpus in `tests/hostile/*.jsonl` describes each bad request as data: how to build
//! its body, how to sign it, how to send it, and what must come back. Every case gets a
//! fresh account, so the rows it may write are counted by account id while cases run
//! concurrently. The isolation tests below the corpus runner check that one account's
//! secret, records and URL never reach another account's rows.
//!
//! Requests go through a small HTTP/1.1 client over a raw TCP connection to the loopback
//! test server. An HTTP client library would normalise a path such as `/1/../2`, and could
//! not send a lying `Content-Length`, trickled bodies or header bytes that are not UTF-8.

mod support;

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt;
use greenhouse_sync::greenhouse::Resource;
use greenhouse_sync::webhooks::signature;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use support::{TEST_BODY_TIMEOUT, TEST_MAX_BODY_BYTES, TestServer, greenhouse_bytes, webhook_fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Cases sent at once. Enough to overlap the slow-sender cases, few enough that the
/// PostgreSQL pool of 4 connections is not the bottleneck.
const CONCURRENT_CASES: usize = 8;

/// The corpus must stay at least this large.
const MIN_CASES: usize = 200;

/// Maximum time for one request before the case counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Secret of the bystander account that every case must leave untouched.
const BYSTANDER_SECRET: &str = "bystander-webhook-secret";

// ----------------------------------------------------------------------------------------
// Corpus format
// ----------------------------------------------------------------------------------------

/// One bad request and its expected handling. See `tests/hostile/README.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    category: String,
    body: BodySpec,
    #[serde(default)]
    sign: Sign,
    /// Header value for `sign: "literal"`.
    header: Option<String>,
    /// Header bytes in base64 for `sign: "literal_base64"`, for values that are not UTF-8.
    header_base64: Option<String>,
    #[serde(default)]
    send: SendSpec,
    expect: Expect,
}

/// How to build the body bytes. Exactly one of `fixture`, `text`, `base64`, `repeat` or
/// `filler` is set; `prepend` and `append` are added around the result.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodySpec {
    /// Name of a file in tests/fixtures/greenhouse/webhooks/, without `.json`.
    fixture: Option<String>,
    /// `[JSON pointer, value]` pairs set on the fixture; the parent must exist.
    #[serde(default)]
    set: Vec<(String, Value)>,
    /// JSON pointers removed from the fixture.
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    encoding: Encoding,
    /// Text replacements applied to the encoded fixture, for byte-level damage.
    #[serde(default)]
    replace: Vec<(String, String)>,
    text: Option<String>,
    base64: Option<String>,
    repeat: Option<Repeat>,
    filler: Option<Filler>,
    #[serde(default)]
    prepend: String,
    #[serde(default)]
    append: String,
}

/// How a fixture is serialised.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Encoding {
    /// Compact, with `<`, `>` and `&` escaped, as Greenhouse sends it.
    #[default]
    Greenhouse,
    /// Compact, characters as they are.
    Plain,
    Pretty,
}

/// `prefix`, then `unit` repeated `times`, then `suffix`: deep nesting and long runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repeat {
    #[serde(default)]
    prefix: String,
    unit: String,
    times: usize,
    #[serde(default)]
    suffix: String,
}

/// A `ping` padded with trailing spaces to the test body limit plus `over_limit` bytes
/// (negative for a body below the limit). Trailing whitespace keeps it valid JSON, so only
/// the size can reject it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filler {
    over_limit: i64,
}

/// How the `Signature` header is made.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Sign {
    /// What Greenhouse sends: `sha256 <lowercase hex>` over the bytes sent.
    #[default]
    Correct,
    None,
    Empty,
    WrongKey,
    /// Signed with the bystander account's secret.
    OtherAccount,
    EmptyKey,
    KeyWithNewline,
    Truncated,
    TruncatedHalf,
    Extended,
    UpperHex,
    UpperPrefix,
    EqualsForm,
    ColonForm,
    BareHex,
    Base64Digest,
    TabSeparator,
    DoubleSpace,
    ZeroDigest,
    NonHex,
    HexPrefix,
    Sha1Name,
    /// Over the body parsed and serialised again by serde_json (keys sorted, no escapes).
    Reserialised,
    /// Over the body parsed and pretty-printed.
    Pretty,
    /// Over the body without what `append` and `prepend` added.
    WithoutAffixes,
    /// Over a different, valid body.
    OtherBody,
    /// Two `Signature` headers: a wrong one first, then the correct one.
    WrongThenCorrect,
    Literal,
    LiteralBase64,
}

/// How the request travels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendSpec {
    /// Request target; `{account}` is the case's account, `{other}` the bystander's.
    path: Option<String>,
    /// Extra header lines `[name, value]`; a `Host` here replaces the real one.
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    chunked: bool,
    /// A `Content-Length` that differs from the body sent.
    declared_length: Option<u64>,
    /// Send the body in pieces of `bytes`, `interval_ms` apart.
    trickle: Option<Trickle>,
    /// Send the request head one byte at a time, this many milliseconds apart.
    head_trickle_ms: Option<u64>,
    /// Send only this many body bytes, then keep the connection open without sending more.
    stall_after: Option<usize>,
    /// Keep sending this many bytes of chunked body beyond the built one (an endless body).
    endless_bytes: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trickle {
    bytes: usize,
    interval_ms: u64,
}

/// What must happen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Acceptable statuses; usually one.
    status: Statuses,
    /// Delivery outcome for status 200: applied, failed, ignored or unsupported.
    outcome: Option<String>,
    /// Outcome on PostgreSQL where it differs, for example text with `\u0000`, which
    /// PostgreSQL's `jsonb` and `text` reject but SQLite stores.
    outcome_postgres: Option<String>,
    /// Synced rows the accepted delivery writes, where known; 0 unless `outcome` is applied.
    rows: Option<i64>,
    /// The server must stop the upload: the client could not send everything.
    #[serde(default)]
    cut_off: bool,
    /// Upper bound on the time to the response, in seconds.
    max_seconds: Option<f64>,
    /// Text the response body must contain.
    error_contains: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Statuses {
    One(u16),
    Any(Vec<u16>),
}

impl Statuses {
    fn contains(&self, status: u16) -> bool {
        match self {
            Statuses::One(expected) => *expected == status,
            Statuses::Any(expected) => expected.contains(&status),
        }
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// Reads every case from the `.jsonl` files of the corpus, one JSON object per line;
/// blank lines and lines starting with `//` are skipped.
fn load_corpus() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read tests/hostile")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();

    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            let case: Case = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: invalid case: {e}", file.display(), index + 1));
            cases.push(case);
        }
    }
    cases
}

// ----------------------------------------------------------------------------------------
// Building requests
// ----------------------------------------------------------------------------------------

/// Builds the body bytes, and returns the bytes before `prepend`/`append` beside them for
/// `Sign::WithoutAffixes`.
fn build_body(spec: &BodySpec) -> (Vec<u8>, Vec<u8>) {
    let core = if let Some(name) = &spec.fixture {
        encode_fixture(name, spec)
    } else if let Some(text) = &spec.text {
        text.as_bytes().to_vec()
    } else if let Some(encoded) = &spec.base64 {
        BASE64.decode(encoded).expect("case body base64 must decode")
    } else if let Some(repeat) = &spec.repeat {
        let mut bytes = repeat.prefix.as_bytes().to_vec();
        bytes.extend(repeat.unit.repeat(repeat.times).into_bytes());
        bytes.extend_from_slice(repeat.suffix.as_bytes());
        bytes
    } else if let Some(filler) = &spec.filler {
        filler_body(filler.over_limit)
    } else {
        panic!("case body needs one of fixture, text, base64, repeat or filler")
    };

    let mut body = spec.prepend.as_bytes().to_vec();
    body.extend_from_slice(&core);
    body.extend_from_slice(spec.append.as_bytes());
    (body, core)
}

fn encode_fixture(name: &str, spec: &BodySpec) -> Vec<u8> {
    let mut value = webhook_fixture(name);
    for pointer in &spec.remove {
        remove_pointer(&mut value, pointer);
    }
    for (pointer, replacement) in &spec.set {
        set_pointer(&mut value, pointer, replacement.clone());
    }

    let mut text = match spec.encoding {
        Encoding::Greenhouse => String::from_utf8(greenhouse_bytes(&value)).expect("UTF-8"),
        Encoding::Plain => serde_json::to_string(&value).expect("serialise"),
        Encoding::Pretty => serde_json::to_string_pretty(&value).expect("serialise"),
    };
    for (from, to) in &spec.replace {
        assert!(text.contains(from.as_str()), "fixture {name} has no text {from:?} to replace");
        text = text.replacen(from.as_str(), to, 1);
    }
    text.into_bytes()
}

/// Splits a JSON pointer into its parent pointer and last key, unescaping `~1` and `~0`.
fn split_pointer(pointer: &str) -> (&str, String) {
    let cut = pointer.rfind('/').unwrap_or_else(|| panic!("JSON pointer {pointer:?} must start with '/'"));
    let key = pointer[cut + 1..].replace("~1", "/").replace("~0", "~");
    (&pointer[..cut], key)
}

fn set_pointer(root: &mut Value, pointer: &str, replacement: Value) {
    if pointer.is_empty() {
        *root = replacement;
        return;
    }
    let (parent, key) = split_pointer(pointer);
    match root.pointer_mut(parent) {
        Some(Value::Object(object)) => {
            object.insert(key, replacement);
        }
        Some(Value::Array(items)) => {
            let index: usize = key.parse().unwrap_or_else(|_| panic!("{pointer}: array index expected"));
            items[index] = replacement;
        }
        _ => panic!("{pointer}: parent {parent:?} is not an object or array in the fixture"),
    }
}

fn remove_pointer(root: &mut Value, pointer: &str) {
    let (parent, key) = split_pointer(pointer);
    let removed = match root.pointer_mut(parent) {
        Some(Value::Object(object)) => object.remove(&key).is_some(),
        Some(Value::Array(items)) => {
            let index: usize = key.parse().unwrap_or_else(|_| panic!("{pointer}: array index expected"));
            items.remove(index);
            true
        }
        _ => false,
    };
    assert!(removed, "{pointer}: nothing to remove in the fixture");
}

/// Builds a valid `ping` followed by spaces up to `TEST_MAX_BODY_BYTES + over_limit` bytes.
fn filler_body(over_limit: i64) -> Vec<u8> {
    let ping = br#"{"action":"ping","payload":{"web_hook_id":1}}"#;
    let size = (TEST_MAX_BODY_BYTES as i64 + over_limit) as usize;
    assert!(size >= ping.len(), "filler size {size} is smaller than the ping it pads");
    let mut body = ping.to_vec();
    body.resize(size, b' ');
    body
}

/// Computes the hex digest Greenhouse would send, without the `sha256 ` prefix.
fn digest_hex(secret: &str, body: &[u8]) -> String {
    let header = signature::sign(secret.as_bytes(), body);
    header.trim_start_matches("sha256 ").to_string()
}

fn digest_bytes(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Builds the `Signature` header values to send, in order (usually one, none for `Sign::None`).
fn signature_headers(case: &Case, secret: &str, body: &[u8], core: &[u8]) -> Vec<Vec<u8>> {
    let hex = digest_hex(secret, body);
    let value = match case.sign {
        Sign::Correct => format!("sha256 {hex}"),
        Sign::None => return Vec::new(),
        Sign::Empty => String::new(),
        Sign::WrongKey => signature::sign(b"not-the-webhook-secret", body),
        Sign::OtherAccount => signature::sign(BYSTANDER_SECRET.as_bytes(), body),
        Sign::EmptyKey => signature::sign(b"", body),
        Sign::KeyWithNewline => signature::sign(format!("{secret}\n").as_bytes(), body),
        Sign::Truncated => format!("sha256 {}", &hex[..63]),
        Sign::TruncatedHalf => format!("sha256 {}", &hex[..32]),
        Sign::Extended => format!("sha256 {hex}0"),
        Sign::UpperHex => format!("sha256 {}", hex.to_uppercase()),
        Sign::UpperPrefix => format!("SHA256 {hex}"),
        Sign::EqualsForm => format!("sha256={hex}"),
        Sign::ColonForm => format!("sha256:{hex}"),
        Sign::BareHex => hex,
        Sign::Base64Digest => format!("sha256 {}", BASE64.encode(digest_bytes(secret, body))),
        Sign::TabSeparator => format!("sha256\t{hex}"),
        Sign::DoubleSpace => format!("sha256  {hex}"),
        Sign::ZeroDigest => format!("sha256 {}", "0".repeat(64)),
        Sign::NonHex => format!("sha256 g{}", &hex[1..]),
        Sign::HexPrefix => format!("sha256 0x{}", &hex[..62]),
        Sign::Sha1Name => format!("sha1 {hex}"),
        Sign::Reserialised => signature::sign(secret.as_bytes(), &reserialise(body, false)),
        Sign::Pretty => signature::sign(secret.as_bytes(), &reserialise(body, true)),
        Sign::WithoutAffixes => signature::sign(secret.as_bytes(), core),
        Sign::OtherBody => signature::sign(secret.as_bytes(), br#"{"action":"ping"}"#),
        Sign::WrongThenCorrect => {
            let wrong = signature::sign(b"not-the-webhook-secret", body).into_bytes();
            return vec![wrong, format!("sha256 {hex}").into_bytes()];
        }
        Sign::Literal => case.header.clone().expect("sign: literal needs 'header'"),
        Sign::LiteralBase64 => {
            let encoded = case.header_base64.as_deref().expect("sign: literal_base64 needs 'header_base64'");
            return vec![BASE64.decode(encoded).expect("header_base64 must decode")];
        }
    };
    vec![value.into_bytes()]
}

/// Parses `body` as JSON and serialises it again; the bytes differ from Greenhouse's.
fn reserialise(body: &[u8], pretty: bool) -> Vec<u8> {
    let value: Value = serde_json::from_slice(body).expect("reserialised cases need a JSON body");
    let bytes = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) };
    let bytes = bytes.expect("serialise");
    assert!(bytes != body, "re-serialising left the body unchanged, so the case tests nothing; pick a body with <, > or &");
    bytes
}

// ----------------------------------------------------------------------------------------
// A raw HTTP/1.1 client
// ----------------------------------------------------------------------------------------

/// A request as bytes, and how to put it on the wire.
struct RawRequest {
    head: Vec<u8>,
    body: Vec<u8>,
    send: SendSpec,
}

/// What came back.
#[derive(Debug)]
struct RawResponse {
    /// `None` when the connection closed without a status line.
    status: Option<u16>,
    body: String,
    elapsed: Duration,
    /// Whether the client sent every byte it meant to.
    sent_everything: bool,
}

fn build_request(path: &str, host: &str, signatures: &[Vec<u8>], body: Vec<u8>, send: &SendSpec) -> RawRequest {
    let mut head = format!("POST {path} HTTP/1.1\r\n").into_bytes();
    let forged_host = send.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host"));
    if !forged_host {
        head.extend(format!("Host: {host}\r\n").into_bytes());
    }
    head.extend_from_slice(b"Content-Type: application/json\r\nConnection: close\r\n");
    for (name, value) in &send.headers {
        head.extend(format!("{name}: {value}\r\n").into_bytes());
    }
    for value in signatures {
        head.extend_from_slice(b"Signature: ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    if send.chunked || send.endless_bytes.is_some() {
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else {
        let length = send.declared_length.unwrap_or(body.len() as u64);
        head.extend(format!("Content-Length: {length}\r\n").into_bytes());
    }
    head.extend_from_slice(b"\r\n");
    RawRequest { head, body, send: send.clone() }
}

/// Sends the request while reading the response, so that an early response (413, 408) is
/// read even while the client is still sending.
async fn send_raw(addr: SocketAddr, request: &RawRequest) -> RawResponse {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect to the test server");
    let (mut reader, mut writer) = stream.into_split();
    let answered = Cell::new(false);

    let write = async {
        let sent = write_request(&mut writer, request, &answered).await;
        if sent.is_err() {
            return false;
        }
        // Keep the connection open after a stall, until the server responds or closes it.
        if request.send.stall_after.is_some() {
            while !answered.get() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        true
    };
    let read = async {
        let mut received = Vec::new();
        let _ = reader.read_to_end(&mut received).await;
        answered.set(true);
        received
    };

    let (sent_everything, received) = tokio::join!(write, read);
    let (status, body) = parse_response(&received);
    RawResponse { status, body, elapsed: started.elapsed(), sent_everything }
}

/// Writes head and body as `send` specifies. `Err` means the connection closed first, or the
/// server responded before the client finished, which is what the cut-off cases expect.
async fn write_request(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    request: &RawRequest,
    answered: &Cell<bool>,
) -> std::io::Result<()> {
    let send = &request.send;
    match send.head_trickle_ms {
        Some(interval) => {
            for byte in &request.head {
                write_piece(writer, std::slice::from_ref(byte), answered).await?;
                tokio::time::sleep(Duration::from_millis(interval)).await;
            }
        }
        None => write_piece(writer, &request.head, answered).await?,
    }

    let body = match send.stall_after {
        Some(limit) => &request.body[..limit.min(request.body.len())],
        None => &request.body[..],
    };
    let chunked = send.chunked || send.endless_bytes.is_some();
    let (piece_size, interval) = match &send.trickle {
        Some(trickle) => (trickle.bytes.max(1), Some(Duration::from_millis(trickle.interval_ms))),
        None => (64 * 1024, None),
    };

    for piece in body.chunks(piece_size) {
        write_body_piece(writer, piece, chunked, answered).await?;
        if let Some(interval) = interval {
            tokio::time::sleep(interval).await;
        }
    }

    if let Some(extra) = send.endless_bytes {
        let filler = vec![b' '; 64 * 1024];
        let mut remaining = extra;
        while remaining > 0 {
            let size = remaining.min(filler.len());
            write_body_piece(writer, &filler[..size], true, answered).await?;
            remaining -= size;
        }
    }

    if chunked && send.stall_after.is_none() {
        write_piece(writer, b"0\r\n\r\n", answered).await?;
    }
    Ok(())
}

async fn write_body_piece(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    piece: &[u8],
    chunked: bool,
    answered: &Cell<bool>,
) -> std::io::Result<()> {
    if !chunked {
        return write_piece(writer, piece, answered).await;
    }
    let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
    framed.extend_from_slice(piece);
    framed.extend_from_slice(b"\r\n");
    write_piece(writer, &framed, answered).await
}

async fn write_piece(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: &[u8],
    answered: &Cell<bool>,
) -> std::io::Result<()> {
    if answered.get() {
        return Err(std::io::Error::other("the server responded before the request was sent"));
    }
    writer.write_all(bytes).await
}

/// Reads the status code and body of an HTTP/1.1 response read to end of stream.
fn parse_response(received: &[u8]) -> (Option<u16>, String) {
    let text = String::from_utf8_lossy(received);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

/// Requests `/healthz` on a new connection. A pooled connection could be one the server is
/// just closing after its keep-alive timeout, which would fail for reasons unrelated to the
/// case.
async fn healthz_status(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;

    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.ok()?;
    parse_response(&received).0
}

fn socket_addr(server: &TestServer) -> SocketAddr {
    let authority = server.base_url.trim_start_matches("http://");
    authority.parse().expect("test server listens on an IP address")
}

// ----------------------------------------------------------------------------------------
// Running cases and checking what was written
// ----------------------------------------------------------------------------------------

fn deliveries_of(server: &TestServer, account_id: i64) -> i64 {
    server.database.count(&format!("SELECT COUNT(*) AS count FROM webhook_deliveries WHERE account_id = {account_id}"))
}

fn deliveries_with_outcome(server: &TestServer, account_id: i64, outcome: &str) -> i64 {
    server.database.count(&format!(
        "SELECT COUNT(*) AS count FROM webhook_deliveries WHERE account_id = {account_id} AND outcome = '{outcome}'"
    ))
}

fn synced_rows_of(server: &TestServer, account_id: i64) -> i64 {
    Resource::ALL
        .iter()
        .map(|resource| {
            let table = resource.name();
            server.database.count(&format!("SELECT COUNT(*) AS count FROM {table} WHERE account_id = {account_id}"))
        })
        .sum()
}

fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty())
}

/// Sends one case to a fresh account and returns every way it went wrong.
async fn run_case(server: &TestServer, bystander: i64, case: &Case, index: usize) -> Vec<String> {
    let secret = format!("case-secret-{index}");
    let account = server.database.add_account(&format!("hostile {index}"), &secret).id;

    let (body, core) = build_body(&case.body);
    let signatures = signature_headers(case, &secret, &body, &core);
    let path = case
        .send
        .path
        .as_deref()
        .unwrap_or("/webhooks/greenhouse/{account}")
        .replace("{account}", &account.to_string())
        .replace("{other}", &bystander.to_string());
    let request = build_request(&path, &server.base_url.replace("http://", ""), &signatures, body, &case.send);

    let response = match tokio::time::timeout(CASE_TIMEOUT, send_raw(socket_addr(server), &request)).await {
        Ok(response) => response,
        Err(_) => return vec![format!("no response within {CASE_TIMEOUT:?}")],
    };
    check_case(server, account, case, &response).await
}

async fn check_case(server: &TestServer, account: i64, case: &Case, response: &RawResponse) -> Vec<String> {
    let mut problems = Vec::new();
    let expect = &case.expect;
    let status = response.status.unwrap_or(0);

    if !expect.status.contains(status) {
        problems.push(format!("status {status}, expected {:?}; body: {}", expect.status, clip(&response.body)));
    }
    if let Some(text) = &expect.error_contains
        && !response.body.contains(text.as_str())
    {
        problems.push(format!("response body lacks {text:?}: {}", clip(&response.body)));
    }
    if expect.cut_off && response.sent_everything {
        problems.push("the server read the whole upload instead of cutting it off".to_string());
    }
    if let Some(seconds) = expect.max_seconds
        && response.elapsed.as_secs_f64() > seconds
    {
        problems.push(format!("took {:.1} s, expected at most {seconds} s", response.elapsed.as_secs_f64()));
    }

    let healthz = healthz_status(socket_addr(server)).await;
    if healthz != Some(200) {
        problems.push(format!("server unhealthy afterwards: /healthz status {healthz:?}"));
    }

    problems.extend(check_writes(server, account, expect, status));
    problems
}

/// Rejected requests write nothing; accepted ones write exactly one delivery with the
/// expected outcome, and synced rows only when applied.
fn check_writes(server: &TestServer, account: i64, expect: &Expect, status: u16) -> Vec<String> {
    let mut problems = Vec::new();
    let deliveries = deliveries_of(server, account);
    let rows = synced_rows_of(server, account);

    if status != 200 {
        if deliveries != 0 {
            problems.push(format!("rejected with {status} but stored {deliveries} deliveries"));
        }
        if rows != 0 {
            problems.push(format!("rejected with {status} but wrote {rows} synced rows"));
        }
        return problems;
    }

    let outcome = match (&expect.outcome_postgres, on_postgres()) {
        (Some(outcome), true) => outcome.as_str(),
        _ => expect.outcome.as_deref().unwrap_or("applied"),
    };
    if deliveries != 1 {
        problems.push(format!("accepted but stored {deliveries} deliveries, expected 1"));
    }
    if deliveries_with_outcome(server, account, outcome) != 1 {
        problems.push(format!("delivery outcome is not '{outcome}'"));
    }
    let expected_rows = match (outcome, expect.rows) {
        ("applied", Some(rows)) => Some(rows),
        ("applied", None) => None,
        _ => Some(0),
    };
    match expected_rows {
        Some(expected) if rows != expected => problems.push(format!("wrote {rows} synced rows, expected {expected}")),
        None if rows == 0 => problems.push("applied but wrote no synced rows".to_string()),
        _ => {}
    }
    problems
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Counts of everything stored for an account: deliveries, then synced rows.
fn footprint(server: &TestServer, account: i64) -> (i64, i64) {
    (deliveries_of(server, account), synced_rows_of(server, account))
}

#[actix_web::test]
async fn corpus_gets_documented_statuses() {
    let cases = load_corpus();
    assert!(cases.len() >= MIN_CASES, "corpus has {} cases, expected at least {MIN_CASES}", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|case| case.name.as_str()).collect();
    names.sort_unstable();
    let duplicate = names.windows(2).find(|pair| pair[0] == pair[1]);
    assert!(duplicate.is_none(), "case name used twice: {duplicate:?}");

    let server = TestServer::start().await;
    let bystander = server.database.add_account("bystander", BYSTANDER_SECRET).id;
    let seed = server.post_signed(bystander, BYSTANDER_SECRET, &greenhouse_bytes(&webhook_fixture("new_candidate_application"))).await;
    assert_eq!(seed.status(), 200, "seeding the bystander account");
    let bystander_before = footprint(&server, bystander);

    let server_ref = &server;
    let failures: Vec<String> = futures_util::stream::iter(cases.iter().enumerate())
        .map(|(index, case)| async move {
            let problems = run_case(server_ref, bystander, case, index).await;
            problems.into_iter().map(|problem| format!("{} [{}]: {problem}", case.name, case.category)).collect::<Vec<_>>()
        })
        .buffer_unordered(CONCURRENT_CASES)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;

    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!(footprint(&server, bystander), bystander_before, "a case changed the bystander account");
}

// ----------------------------------------------------------------------------------------
// Isolation between accounts
// ----------------------------------------------------------------------------------------

const SECRET_A: &str = "secret-of-account-a";
const SECRET_B: &str = "secret-of-account-b";

fn job_named(id: i64, name: &str, updated_at: &str) -> Vec<u8> {
    let mut job = webhook_fixture("job_created");
    job["payload"]["job"]["id"] = json!(id);
    job["payload"]["job"]["name"] = json!(name);
    job["payload"]["job"]["updated_at"] = json!(updated_at);
    greenhouse_bytes(&job)
}

async fn two_accounts() -> (TestServer, i64, i64) {
    let server = TestServer::start().await;
    let a = server.database.add_account("Account A", SECRET_A).id;
    let b = server.database.add_account("Account B", SECRET_B).id;
    (server, a, b)
}

#[actix_web::test]
async fn secret_of_a_never_authenticates_b() {
    let (server, a, b) = two_accounts().await;
    let body = greenhouse_bytes(&webhook_fixture("new_candidate_application"));

    let response = server.post_signed(b, SECRET_A, &body).await;
    assert_eq!(response.status(), 401, "A's secret posted to B's URL");
    let response = server.post_signed(a, SECRET_B, &body).await;
    assert_eq!(response.status(), 401, "B's secret posted to A's URL");

    assert_eq!(footprint(&server, a), (0, 0), "account A after both rejections");
    assert_eq!(footprint(&server, b), (0, 0), "account B after both rejections");
}

#[actix_web::test]
async fn same_record_id_stays_per_account() {
    let (server, a, b) = two_accounts().await;
    let created = server.post_signed(a, SECRET_A, &job_named(42, "A's job", "2026-01-01T00:00:00Z")).await;
    assert_eq!(created.status(), 200);
    let created = server.post_signed(b, SECRET_B, &job_named(42, "B's job", "2026-01-01T00:00:00Z")).await;
    assert_eq!(created.status(), 200);

    let updated = server.post_signed(a, SECRET_A, &job_named(42, "A's job renamed", "2026-02-01T00:00:00Z")).await;
    assert_eq!(updated.status(), 200);
    let deleted = greenhouse_bytes(&json!({"action": "job_deleted", "payload": {"job": {"id": 42}}}));
    assert_eq!(server.post_signed(a, SECRET_A, &deleted).await.status(), 200);

    let job_a = server.database.record(a, Resource::Jobs, 42).expect("A's job 42");
    let job_b = server.database.record(b, Resource::Jobs, 42).expect("B's job 42");
    assert_eq!(job_a["name"], "A's job renamed");
    assert!(job_a["deleted_at"].is_string(), "A's job 42 is deleted: {job_a}");
    assert_eq!(job_b["name"], "B's job", "B's job 42 keeps its own name");
    assert!(job_b["deleted_at"].is_null(), "B's job 42 is not deleted: {job_b}");
    assert_eq!(deliveries_of(&server, b), 1, "only B's own delivery is logged for B");
}

#[actix_web::test]
async fn candidate_changes_stay_per_account() {
    let (server, a, b) = two_accounts().await;
    let application = greenhouse_bytes(&webhook_fixture("new_candidate_application"));
    assert_eq!(server.post_signed(a, SECRET_A, &application).await.status(), 200);
    assert_eq!(server.post_signed(b, SECRET_B, &application).await.status(), 200);
    let b_before = footprint(&server, b);

    // The fixture's candidate 60304594 exists in both accounts; A merges, deletes and
    // anonymizes it.
    let steps = [
        json!({"action": "candidate_anonymized", "payload": {"candidate_id": 60304594, "anonymized_fields": ["full_name"]}}),
        json!({"action": "merge_candidate", "payload": {"person": {"id": 60304594, "new_candidate_id": 7}}}),
        json!({"action": "delete_candidate", "payload": {"person": {"id": 60304594, "deleted_application_ids": [71980812]}}}),
    ];
    for step in &steps {
        let response = server.post_signed(a, SECRET_A, &greenhouse_bytes(step)).await;
        assert_eq!(response.status(), 200, "{}", step["action"]);
    }

    let candidate_a = server.database.record(a, Resource::Candidates, 60304594).expect("A's candidate");
    let candidate_b = server.database.record(b, Resource::Candidates, 60304594).expect("B's candidate");
    assert!(candidate_a["first_name"].is_null(), "A's candidate is anonymized: {candidate_a}");
    assert_eq!(candidate_b["first_name"], "Jane", "B's candidate keeps its name");
    assert!(candidate_b["deleted_at"].is_null(), "B's candidate is not deleted");
    assert!(candidate_b["merged_into_id"].is_null(), "B's candidate is not merged");
    let application_b = server.database.record(b, Resource::Applications, 71980812).expect("B's application");
    assert_eq!(application_b["candidate_id"], 60304594, "B's application keeps its candidate");
    assert!(application_b["deleted_at"].is_null(), "B's application is not deleted");
    assert_eq!(footprint(&server, b), b_before, "nothing added to B");
}

#[actix_web::test]
async fn host_header_never_selects_account() {
    let (server, a, b) = two_accounts().await;
    let addr = socket_addr(&server);
    let body = greenhouse_bytes(&webhook_fixture("job_created"));
    let path = format!("/webhooks/greenhouse/{a}");

    // The Host header names another tenant or another site. The account still comes from
    // the path, so B's secret fails on A's URL.
    for host in ["evil.example", &format!("{b}.greenhouse-sync.example"), "127.0.0.1:1", "localhost"] {
        let send = SendSpec { headers: vec![("Host".to_string(), host.to_string())], ..SendSpec::default() };

        let forged = vec![signature::sign(SECRET_B.as_bytes(), &body).into_bytes()];
        let response = send_raw(addr, &build_request(&path, host, &forged, body.clone(), &send)).await;
        assert_eq!(response.status, Some(401), "B's secret with Host {host}: {}", response.body);
    }
    assert_eq!(footprint(&server, a), (0, 0), "A after requests signed with B's secret");
    assert_eq!(footprint(&server, b), (0, 0), "B after requests signed with B's secret to A's URL");

    let send = SendSpec { headers: vec![("Host".to_string(), "evil.example".to_string())], ..SendSpec::default() };
    let genuine = vec![signature::sign(SECRET_A.as_bytes(), &body).into_bytes()];
    let response = send_raw(addr, &build_request(&path, "evil.example", &genuine, body.clone(), &send)).await;
    assert_eq!(response.status, Some(200), "A's secret with a foreign Host: {}", response.body);
    assert_eq!(deliveries_of(&server, a), 1, "the delivery is stored for A");
    assert_eq!(footprint(&server, b), (0, 0), "B is untouched");
}

#[actix_web::test]
async fn traversal_paths_get_4xx() {
    let (server, a, b) = two_accounts().await;
    let addr = socket_addr(&server);
    let body = greenhouse_bytes(&webhook_fixture("job_created"));
    let long_id = "9".repeat(4096);
    let paths = [
        format!("/webhooks/greenhouse/..%2F{b}"),
        format!("/webhooks/greenhouse/%2e%2e%2F{b}"),
        format!("/webhooks/greenhouse/%2e%2e/{b}"),
        format!("/webhooks/greenhouse/{a}/../{b}"),
        format!("/webhooks/greenhouse/{a}%2F..%2F{b}"),
        format!("/webhooks/greenhouse/../greenhouse/{b}"),
        format!("/webhooks/greenhouse/{a}/"),
        format!("/webhooks/greenhouse/{a}?account_id={b}"),
        format!("/webhooks/greenhouse/{a};{b}"),
        format!("/webhooks/greenhouse/{a}%00"),
        format!("/webhooks/greenhouse/{a}.0"),
        format!("/webhooks/greenhouse/-{a}"),
        format!("/webhooks/greenhouse/0x{a}"),
        format!("/webhooks/greenhouse/{long_id}"),
        "/webhooks/greenhouse/".to_string(),
        "/webhooks/greenhouse/0".to_string(),
        "/webhooks/greenhouse/9223372036854775808".to_string(),
    ];

    // Each request is signed with B's secret, as an attacker with that secret would sign it.
    let signed = vec![signature::sign(SECRET_B.as_bytes(), &body).into_bytes()];
    for path in &paths {
        let response = send_raw(addr, &build_request(path, "127.0.0.1", &signed, body.clone(), &SendSpec::default())).await;
        let status = response.status.unwrap_or(0);
        let query_only = path.contains('?');
        if query_only {
            // The query string is ignored: the path names A, and B's secret fails there.
            assert_eq!(status, 401, "{path}: {}", response.body);
        } else {
            assert!((400..500).contains(&status), "{path}: status {status}: {}", clip(&response.body));
        }
    }
    assert_eq!(footprint(&server, a), (0, 0), "A after traversal attempts");
    assert_eq!(footprint(&server, b), (0, 0), "B after traversal attempts");
}

#[actix_web::test]
async fn body_timeout_answers_408_json() {
    let server = TestServer::start().await;
    let secret = "slow-sender-secret";
    let account = server.database.add_account("slow", secret).id;
    let body = greenhouse_bytes(&webhook_fixture("ping"));
    let signatures = vec![signature::sign(secret.as_bytes(), &body).into_bytes()];
    let send = SendSpec { stall_after: Some(5), ..SendSpec::default() };
    let path = format!("/webhooks/greenhouse/{account}");

    let response = send_raw(socket_addr(&server), &build_request(&path, "127.0.0.1", &signatures, body, &send)).await;

    assert_eq!(response.status, Some(408), "{}", response.body);
    let error: Value = serde_json::from_str(&response.body).expect("408 body is JSON");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("timed out")), "{error}");
    assert!(response.elapsed >= TEST_BODY_TIMEOUT, "answered after {:?}, before the deadline", response.elapsed);
    assert!(response.elapsed < TEST_BODY_TIMEOUT * 3, "answered after {:?}", response.elapsed);
    assert_eq!(footprint(&server, account), (0, 0));
}

/// Reads the peak resident set size of this process (test client and server together) in
/// KiB, or `None` where `/proc/self/status` does not exist.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[actix_web::test]
async fn endless_body_memory_stays_bounded() {
    // If the server buffered the upload, the 1 GiB body would raise the peak by far more
    // than the bound. The bound leaves room for the other tests in this process, which
    // build bodies of up to a few MiB each.
    const ENDLESS_BYTES: usize = 1024 * 1024 * 1024;
    const MAX_GROWTH_KIB: u64 = 256 * 1024;

    let server = TestServer::start().await;
    let secret = "endless-body-secret";
    let account = server.database.add_account("endless", secret).id;
    let body = greenhouse_bytes(&webhook_fixture("ping"));
    let signatures = vec![signature::sign(secret.as_bytes(), &body).into_bytes()];
    let send = SendSpec { endless_bytes: Some(ENDLESS_BYTES), ..SendSpec::default() };
    let path = format!("/webhooks/greenhouse/{account}");
    let before = peak_rss_kib();

    let response = send_raw(socket_addr(&server), &build_request(&path, "127.0.0.1", &signatures, body, &send)).await;

    assert_eq!(response.status, Some(413), "{}", response.body);
    assert!(!response.sent_everything, "the server read the whole 1 GiB upload");
    match (before, peak_rss_kib()) {
        (Some(before), Some(after)) => {
            let growth = after.saturating_sub(before);
            assert!(growth < MAX_GROWTH_KIB, "peak memory grew by {growth} KiB during an endless upload");
        }
        _ => eprintln!("NOTE: /proc/self/status is unavailable, so peak memory was not checked"),
    }
    assert_eq!(footprint(&server, account), (0, 0));
}
