//! A small HTTP/1.1 client over one keep-alive TCP connection, written for the load generator:
//! no redirects followed behind our back, cookies handled by the caller, little work per
//! request (the load generator shares the machine's two cores with the server it measures).
//!
//! Plain `http://` only: the benchmark talks to 127.0.0.1.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An `http://` URL, split the way the client needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `host[:port]` as written (the `Host` header).
    pub authority: String,
    /// `host:port` to connect to.
    pub addr: String,
    /// Path and query, always starting with `/`; no fragment.
    pub target: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url> {
        let rest = s.strip_prefix("http://").ok_or_else(|| {
            anyhow!("only http:// URLs are supported (the benchmark runs on loopback): {s}")
        })?;
        let (authority, target) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("URL without a host: {s}");
        }
        let target = target.split('#').next().unwrap_or("");
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !authority.ends_with(']')
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Url {
            authority: authority.to_owned(),
            addr,
            target,
        })
    }

    /// Resolves a `Location` header or a form `action` against this URL.
    pub fn join(&self, reference: &str) -> Result<Url> {
        let reference = reference.trim();
        if reference.starts_with("http://") || reference.starts_with("https://") {
            return Url::parse(reference);
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return Url::parse(&format!("http://{rest}"));
        }
        let reference = reference.split('#').next().unwrap_or("");
        let target = if reference.starts_with('/') {
            reference.to_owned()
        } else if reference.is_empty() {
            self.target.clone()
        } else if reference.starts_with('?') {
            format!("{}{reference}", self.path())
        } else {
            let path = self.path();
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{reference}")
        };
        Ok(Url {
            authority: self.authority.clone(),
            addr: self.addr.clone(),
            target,
        })
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    /// `http://authority/path`, without the query: what a redirect URI is compared by.
    pub fn without_query(&self) -> String {
        format!("http://{}{}", self.authority, self.path())
    }

    /// The first value of a query parameter, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        form_pairs(query).find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.target)
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// Encodes name/value pairs as a form body (or a query string).
pub fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        form_encode_into(&mut out, k);
        out.push('=');
        form_encode_into(&mut out, v);
    }
    out
}

/// Decodes one form/query component (`+` is a space, `%XX` a byte).
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_pairs(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    s.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (form_decode(k), form_decode(v))
    })
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The header lines as received (without the status line), CRLF-separated: parsed only
    /// when asked, because most responses of a run are only checked for status and body.
    head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// (name, value) of each header line, trimmed; names as sent.
    fn header_lines(&self) -> impl Iterator<Item = (&str, &str)> {
        self.head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_lines()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header called `name` (case-insensitive), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_lines()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// `status` and the start of the body, for error messages.
    pub fn describe(&self) -> String {
        let text = self.text();
        let snippet: String = text.chars().take(300).collect();
        let snippet = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("HTTP {}: {snippet}", self.status)
    }
}

/// One keep-alive connection. Reconnects when the server closed it (once per request, and only
/// when nothing of the response had arrived: an idle connection the server timed out).
pub struct Conn {
    stream: Option<TcpStream>,
    addr: String,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    timeout: Duration,
    /// TCP connections opened so far (for the report: keep-alive should keep this at ~1).
    pub connects: u64,
}

enum Failure {
    /// Nothing of a response arrived on a reused connection: safe to retry on a new one.
    Stale(anyhow::Error),
    Fatal(anyhow::Error),
}

impl Conn {
    pub fn new(timeout: Duration) -> Conn {
        Conn {
            stream: None,
            addr: String::new(),
            rbuf: Vec::with_capacity(16 * 1024),
            wbuf: Vec::with_capacity(2 * 1024),
            timeout,
            connects: 0,
        }
    }

    pub async fn get(&mut self, url: &Url, headers: &[(&str, &str)]) -> Result<Response> {
        self.send("GET", url, headers, None).await
    }

    pub async fn post_form(
        &mut self,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response> {
        self.send(
            "POST",
            url,
            headers,
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    pub async fn send(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response> {
        match tokio::time::timeout(self.timeout, self.send_inner(method, url, headers, body)).await
        {
            Ok(result) => result,
            Err(_) => {
                self.stream = None;
                Err(anyhow!(
                    "{method} {url}: no response within {:?}",
                    self.timeout
                ))
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response> {
        if self.addr != url.addr {
            self.stream = None;
            self.addr.clone_from(&url.addr);
        }
        self.encode(method, url, headers, body);
        let head_only = method == "HEAD";
        let reused = self.stream.is_some();
        match self.exchange(head_only).await {
            Ok(r) => Ok(r),
            Err(Failure::Stale(_)) if reused => {
                self.stream = None;
                match self.exchange(head_only).await {
                    Ok(r) => Ok(r),
                    Err(Failure::Stale(e) | Failure::Fatal(e)) => {
                        self.stream = None;
                        Err(e.context(format!("{method} {url}")))
                    }
                }
            }
            Err(Failure::Stale(e) | Failure::Fatal(e)) => {
                self.stream = None;
                Err(e.context(format!("{method} {url}")))
            }
        }
    }

    fn encode(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) {
        let w = &mut self.wbuf;
        w.clear();
        for part in [
            method,
            " ",
            &url.target,
            " HTTP/1.1\r\nHost: ",
            &url.authority,
        ] {
            w.extend_from_slice(part.as_bytes());
        }
        w.extend_from_slice(b"\r\nUser-Agent: pforte-loadgen\r\nAccept: */*\r\n");
        for (k, v) in headers {
            for part in [*k, ": ", *v, "\r\n"] {
                w.extend_from_slice(part.as_bytes());
            }
        }
        if let Some((content_type, bytes)) = body {
            w.extend_from_slice(b"Content-Type: ");
            w.extend_from_slice(content_type.as_bytes());
            w.extend_from_slice(b"\r\nContent-Length: ");
            w.extend_from_slice(bytes.len().to_string().as_bytes());
            w.extend_from_slice(b"\r\n\r\n");
            w.extend_from_slice(bytes);
        } else {
            w.extend_from_slice(b"\r\n");
        }
    }

    async fn exchange(&mut self, head_only: bool) -> std::result::Result<Response, Failure> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .with_context(|| format!("connect to {}", self.addr))
                .map_err(Failure::Fatal)?;
            stream
                .set_nodelay(true)
                .context("TCP_NODELAY")
                .map_err(Failure::Fatal)?;
            self.stream = Some(stream);
            self.rbuf.clear();
            self.connects += 1;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::Fatal(anyhow!("no connection")));
        };
        if let Err(e) = stream.write_all(&self.wbuf).await {
            return Err(Failure::Stale(anyhow!(e).context("write request")));
        }

        // Head.
        let mut scanned = 0;
        let head_end = loop {
            if let Some(i) = find(&self.rbuf[scanned..], b"\r\n\r\n") {
                break scanned + i + 4;
            }
            scanned = self.rbuf.len().saturating_sub(3);
            match read_more(stream, &mut self.rbuf).await {
                Ok(0) if self.rbuf.is_empty() => {
                    return Err(Failure::Stale(anyhow!(
                        "connection closed before a response"
                    )));
                }
                Ok(0) => {
                    return Err(Failure::Fatal(anyhow!(
                        "connection closed in the response head"
                    )));
                }
                Ok(_) => {}
                Err(e) if self.rbuf.is_empty() => {
                    return Err(Failure::Stale(anyhow!(e).context("read response")));
                }
                Err(e) => return Err(Failure::Fatal(anyhow!(e).context("read response"))),
            }
        };
        let Head {
            status,
            lines,
            length,
            chunked,
            mut close,
        } = parse_head(&self.rbuf[..head_end]).map_err(Failure::Fatal)?;

        // Body.
        let no_body = head_only || status / 100 == 1 || status == 204 || status == 304;
        let (body, consumed) = if no_body {
            (Vec::new(), head_end)
        } else if chunked {
            read_chunked(stream, &mut self.rbuf, head_end)
                .await
                .map_err(Failure::Fatal)?
        } else if let Some(length) = length {
            let length = length.map_err(|()| Failure::Fatal(anyhow!("bad Content-Length")))?;
            let end = head_end + length;
            while self.rbuf.len() < end {
                match read_more(stream, &mut self.rbuf).await {
                    Ok(0) => return Err(Failure::Fatal(anyhow!("connection closed in the body"))),
                    Ok(_) => {}
                    Err(e) => return Err(Failure::Fatal(anyhow!(e).context("read body"))),
                }
            }
            (self.rbuf[head_end..end].to_vec(), end)
        } else {
            // Delimited by the end of the connection.
            loop {
                match read_more(stream, &mut self.rbuf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(Failure::Fatal(anyhow!(e).context("read body"))),
                }
            }
            close = true;
            (self.rbuf[head_end..].to_vec(), self.rbuf.len())
        };
        self.rbuf.drain(..consumed);
        if close {
            self.stream = None;
        }
        Ok(Response {
            status,
            head: lines,
            body,
        })
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(16 * 1024);
    stream.read_buf(buf).await
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// What the client needs from a response head to read the rest of the message.
#[derive(Debug)]
struct Head {
    status: u16,
    /// The header lines after the status line (see [`Response`]).
    lines: String,
    /// `Content-Length`, if sent (`Err`: not a number).
    length: Option<std::result::Result<usize, ()>>,
    chunked: bool,
    /// The server will close the connection after this response.
    close: bool,
}

/// Parses a response head (status line, headers, up to and including the empty line) in one
/// pass, without a string per header.
fn parse_head(head: &[u8]) -> Result<Head> {
    // Validating is cheaper than `from_utf8_lossy`'s scan; stray Latin-1 bytes still parse.
    let text = match std::str::from_utf8(head) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(head),
    };
    let (status_line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x response: {status_line:?}");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("bad status line: {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut connection = None;
    for line in rest.split("\r\n") {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse::<usize>().map_err(|_| ()));
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked |= v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            connection = Some(v.to_ascii_lowercase());
        }
    }
    let close = match connection.as_deref() {
        Some(v) if v.contains("close") => true,
        Some(v) if v.contains("keep-alive") => false,
        _ => version == "HTTP/1.0",
    };
    Ok(Head {
        status,
        lines: rest.to_owned(),
        length,
        chunked,
        close,
    })
}

/// Decodes a chunked body starting at `start`; returns the body and the end of the message.
async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    start: usize,
) -> Result<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut pos = start;
    loop {
        // Size line.
        let line_end = loop {
            if let Some(i) = find(&buf[pos..], b"\r\n") {
                break pos + i;
            }
            if read_more(stream, buf).await? == 0 {
                bail!("connection closed in a chunked body");
            }
        };
        let size_text = String::from_utf8_lossy(&buf[pos..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| anyhow!("bad chunk size {size_text:?}"))?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let end = loop {
                    if let Some(i) = find(&buf[pos..], b"\r\n") {
                        break pos + i;
                    }
                    if read_more(stream, buf).await? == 0 {
                        bail!("connection closed in chunked trailers");
                    }
                };
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Ok((body, pos));
                }
            }
        }
        while buf.len() < pos + size + 2 {
            if read_more(stream, buf).await? == 0 {
                bail!("connection closed in a chunk");
            }
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

/// Cookies of one simulated browser session (a flow iteration): name, path and value; no
/// domain handling (one host per target), expiry only as deletion.
#[derive(Default)]
pub struct CookieJar {
    cookies: Vec<(String, String, String)>,
}

impl CookieJar {
    pub fn clear(&mut self) {
        self.cookies.clear();
    }

    /// Takes the `Set-Cookie` headers of a response to a request for `url`.
    pub fn store(&mut self, url: &Url, response: &Response) {
        for header in response.headers_named("set-cookie") {
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            let mut path = None;
            let mut expired = value.is_empty();
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "path" if v.starts_with('/') => path = Some(v.to_owned()),
                    "max-age" => expired |= v.parse::<i64>().is_ok_and(|s| s <= 0),
                    "expires" => expired |= v.contains("1970"),
                    _ => {}
                }
            }
            let path = path.unwrap_or_else(|| {
                let p = url.path();
                match p.rfind('/') {
                    Some(0) | None => "/".to_owned(),
                    Some(i) => p[..i].to_owned(),
                }
            });
            self.cookies.retain(|(n, p, _)| !(n == name && *p == path));
            if !expired {
                self.cookies.push((name.to_owned(), path, value.to_owned()));
            }
        }
    }

    /// The `Cookie` header value for a request to `url`, if any cookie applies.
    pub fn header_for(&self, url: &Url) -> Option<String> {
        let request_path = url.path();
        let mut matching: Vec<&(String, String, String)> = self
            .cookies
            .iter()
            .filter(|(_, p, _)| {
                request_path == p
                    || (request_path.starts_with(p.as_str())
                        && (p.ends_with('/') || request_path[p.len()..].starts_with('/')))
            })
            .collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by_key(|(_, p, _)| std::cmp::Reverse(p.len()));
        let mut out = String::new();
        for (n, _, v) in matching {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(n);
            out.push('=');
            out.push_str(v);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_join() {
        let u = Url::parse("http://127.0.0.1:18080/realms/bench/protocol/openid-connect/auth?x=1")
            .unwrap();
        assert_eq!(u.addr, "127.0.0.1:18080");
        assert_eq!(u.path(), "/realms/bench/protocol/openid-connect/auth");
        assert_eq!(u.join("/a?b=c").unwrap().target, "/a?b=c");
        assert_eq!(
            u.join("login-actions/authenticate?s=1").unwrap().target,
            "/realms/bench/protocol/openid-connect/login-actions/authenticate?s=1"
        );
        assert_eq!(
            u.join("?q=2").unwrap().target,
            "/realms/bench/protocol/openid-connect/auth?q=2"
        );
        let other = u
            .join("http://127.0.0.1:18099/cb?code=a%2Bb&state=s#frag")
            .unwrap();
        assert_eq!(other.without_query(), "http://127.0.0.1:18099/cb");
        assert_eq!(other.query_param("code").as_deref(), Some("a+b"));
        assert_eq!(Url::parse("http://localhost").unwrap().addr, "localhost:80");
        assert!(Url::parse("https://example.org/").is_err());
    }

    #[test]
    fn form_encoding_round_trips() {
        let body = form_encode([("a b", "x&y=z/ü"), ("k", "")]);
        assert_eq!(body, "a+b=x%26y%3Dz%2F%C3%BC&k=");
        let pairs: Vec<_> = form_pairs(&body).collect();
        assert_eq!(pairs[0], ("a b".to_owned(), "x&y=z/ü".to_owned()));
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
    }

    #[test]
    fn cookies_follow_paths_and_deletion() {
        let url = Url::parse("http://h:1/auth").unwrap();
        let response = Response {
            status: 303,
            head: "Set-Cookie: _i=1; path=/interaction/u; httponly\r\n\
                   set-cookie: _r=2; path=/auth/u\r\nSET-COOKIE:s=3\r\n\r\n"
                .into(),
            body: Vec::new(),
        };
        let mut jar = CookieJar::default();
        jar.store(&url, &response);
        let at = |jar: &CookieJar, p: &str| {
            jar.header_for(&Url::parse(&format!("http://h:1{p}")).unwrap())
        };
        assert_eq!(at(&jar, "/interaction/u").as_deref(), Some("_i=1; s=3"));
        assert_eq!(
            at(&jar, "/interaction/u/login").as_deref(),
            Some("_i=1; s=3")
        );
        assert_eq!(at(&jar, "/interaction/uu").as_deref(), Some("s=3"));
        assert_eq!(at(&jar, "/auth/u").as_deref(), Some("_r=2; s=3"));
        let delete = Response {
            status: 200,
            head: "Set-Cookie: _r=; path=/auth/u; expires=Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
                .into(),
            body: Vec::new(),
        };
        jar.store(&url, &delete);
        assert_eq!(at(&jar, "/auth/u").as_deref(), Some("s=3"));
    }

    #[test]
    fn heads_parse() {
        let head = parse_head(
            b"HTTP/1.1 302 Found\r\nLocation: /x\r\nConnection: close\r\nContent-Length: 12\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.status, 302);
        assert_eq!(head.length, Some(Ok(12)));
        assert!(head.close && !head.chunked);
        let response = Response {
            status: head.status,
            head: head.lines,
            body: Vec::new(),
        };
        assert_eq!(response.header("location"), Some("/x"));
        assert_eq!(response.header("LOCATION"), Some("/x"));
        assert_eq!(response.header("set-cookie"), None);

        let head = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: x\r\n\r\n",
        )
        .unwrap();
        assert!(head.chunked && !head.close);
        assert_eq!(head.length, Some(Err(())));
        let head = parse_head(b"HTTP/1.0 200 OK\r\nServer: caf\xe9\r\n\r\n").unwrap();
        assert!(head.close, "HTTP/1.0 closes unless keep-alive is said");
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }
}
