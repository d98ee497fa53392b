//! `--static DIR`: the files of a directory, beside the WebSocket endpoints (which keep
//! priority, as do `/healthz` and `/metrics`). GET and HEAD only; nothing outside DIR (the path
//! is decoded and checked segment by segment, then canonicalized: a symbolic link may point
//! inside DIR, not out of it), no hidden files, regular files only, and every refusal is the
//! same 404. Files are streamed in chunks, with an ETag and Last-Modified for conditional GETs.

use std::fs::Metadata;
use std::future::Future as _;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::UNIX_EPOCH;

use anyhow::Context as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use super::safepath::{inside, percent_decode, plain_segment};

/// The body of a response of `wsx serve`'s HTTP service: bytes in memory, or a file streamed.
pub(super) type Body = Either<Full<Bytes>, FileStream>;

/// What a file is read in (and sent as one body frame).
const CHUNK: usize = 64 * 1024;

/// The directory of --static.
#[derive(Debug)]
pub(super) struct StaticFiles {
    /// The directory, canonical.
    root: PathBuf,
}

/// What a request path names.
enum Found {
    /// A regular file (a directory's `index.html` included), open, and its metadata.
    File(std::fs::File, Box<Metadata>, PathBuf),
    /// A directory with an `index.html`, asked for without the trailing slash.
    Directory,
    /// Nothing that may be served.
    Nothing,
}

impl StaticFiles {
    /// The files of `dir`, which must be a directory.
    pub(super) fn new(dir: &Path) -> anyhow::Result<Self> {
        let root =
            std::fs::canonicalize(dir).with_context(|| format!("--static {}", dir.display()))?;
        anyhow::ensure!(root.is_dir(), "--static {}: not a directory", dir.display());
        Ok(Self { root })
    }

    /// The directory, canonical.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// The answer to a request for `uri`; `None` when no file may be served there (the caller
    /// answers 404, or serves its own page at `/`). Methods other than GET and HEAD are 405,
    /// whatever the path.
    pub(super) async fn serve(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "GET and HEAD only\n");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(response);
        }
        let (root, path) = (self.root.clone(), uri.path().to_string());
        let found = tokio::task::spawn_blocking(move || find(&root, &path)).await.ok()?;
        match found {
            Found::Nothing => None,
            Found::Directory => Some(redirect(uri)),
            Found::File(file, meta, name) => Some(send(file, &meta, &name, method, headers)),
        }
    }
}

/// The 404 of a refused path: the same for what does not exist and what may not be served.
pub(super) fn not_found() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// 301 to the directory's URL with its trailing slash (the query kept).
fn redirect(uri: &Uri) -> Response<Body> {
    let location = match uri.query() {
        Some(query) => format!("{}/?{query}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    let mut response = plain(StatusCode::MOVED_PERMANENTLY, "moved\n");
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// What the (still percent-encoded) URL path `path` names under `root` (canonical). Encoded
/// slashes and backslashes are refused before decoding; after it, every segment must be plain
/// (no `.`, `..`, hidden names, backslashes or NULs), and the path, symbolic links resolved,
/// must stay inside `root`. A path ending in `/` names a directory, whose `index.html` is served.
fn find(root: &Path, path: &str) -> Found {
    find_file(root, path).unwrap_or(Found::Nothing)
}

fn find_file(root: &Path, path: &str) -> Option<Found> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return None;
    }
    let decoded = percent_decode(path)?;
    let rest = decoded.strip_prefix('/')?;
    let (rest, slash) = match rest.strip_suffix('/') {
        Some(rest) => (rest, true),
        None => (rest, rest.is_empty()),
    };
    let mut at = root.to_path_buf();
    if !rest.is_empty() {
        for segment in rest.split('/') {
            if !plain_segment(segment) {
                return None;
            }
            at.push(segment);
        }
    }
    let real = inside(root, &at)?;
    let meta = std::fs::metadata(&real).ok()?;
    let file = if meta.is_dir() {
        let index = inside(root, &real.join("index.html"))?;
        if !std::fs::metadata(&index).ok()?.is_file() {
            return None;
        }
        if !slash {
            return Some(Found::Directory);
        }
        index
    } else if meta.is_file() && !slash {
        real
    } else {
        return None;
    };
    // No hidden file reached through a link either (`link -> .git`).
    let hidden = |c: std::path::Component<'_>| c.as_os_str().to_string_lossy().starts_with('.');
    if file.strip_prefix(root).ok()?.components().any(hidden) {
        return None;
    }
    // Checked again on the open file: it may have been replaced since.
    let opened = std::fs::File::open(&file).ok()?;
    let meta = opened.metadata().ok()?;
    meta.is_file().then(|| Found::File(opened, Box::new(meta), file))
}

/// 200 with the file (no body for HEAD), or 304 when the client's copy is current.
fn send(
    file: std::fs::File,
    meta: &Metadata,
    name: &Path,
    method: &Method,
    request: &HeaderMap,
) -> Response<Body> {
    let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let (seconds, nanos) = modified.map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()));
    let etag = format!("\"{:x}-{seconds:x}.{nanos:x}\"", meta.len());
    let fresh = match request.get(header::IF_NONE_MATCH) {
        Some(tags) => matches_etag(tags, &etag),
        None => request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|since| parse_http_date(since.to_str().ok()?))
            .is_some_and(|since| modified.is_some() && seconds <= since),
    };
    let mut response = if fresh {
        let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let body = if method == Method::HEAD {
            Either::Left(Full::new(Bytes::new()))
        } else {
            Either::Right(FileStream::new(file, meta.len()))
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
        response
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    if modified.is_some() {
        if let Ok(date) = HeaderValue::from_str(&http_date(seconds)) {
            headers.insert(header::LAST_MODIFIED, date);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Whether `If-None-Match: tags` names `etag` (weak comparison, as RFC 9110 §13.1.2 says), or
/// is `*`.
fn matches_etag(tags: &HeaderValue, etag: &str) -> bool {
    let Ok(tags) = tags.to_str() else { return false };
    tags.trim() == "*" || tags.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag)
}

/// The content type of a file, by its extension.
fn content_type(name: &Path) -> &'static str {
    let extension = name.extension().and_then(|e| e.to_str()).unwrap_or_default();
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `seconds` after the Unix epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(seconds: u64) -> String {
    let days = seconds / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let time = seconds % 86_400;
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

/// An IMF-fixdate as seconds after the Unix epoch (the obsolete formats are not read: the
/// header is then ignored, which only costs a full response).
fn parse_http_date(text: &str) -> Option<u64> {
    let mut parts = text.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    let day: i64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|n| n.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || hms.next().is_some() {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01: (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A file as a response body: read in chunks of [`CHUNK`] as hyper asks for them (each read on
/// tokio's blocking pool, as `tokio::fs` would), never whole. Exactly the length announced in
/// Content-Length is sent; a file that shrinks meanwhile ends the body with an error (hyper
/// then closes the connection).
pub(super) struct FileStream {
    /// The file, while no read is under way.
    file: Option<std::fs::File>,
    /// The read under way: it gives the file back with the bytes read.
    reading: Option<JoinHandle<(std::fs::File, io::Result<Vec<u8>>)>>,
    left: u64,
}

impl FileStream {
    fn new(file: std::fs::File, len: u64) -> Self {
        Self { file: Some(file), reading: None, left: len }
    }
}

impl hyper::body::Body for FileStream {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        if this.reading.is_none() {
            let Some(mut file) = this.file.take() else {
                return Poll::Ready(Some(Err(io::ErrorKind::BrokenPipe.into())));
            };
            let want = usize::try_from(this.left).unwrap_or(CHUNK).min(CHUNK);
            this.reading = Some(tokio::task::spawn_blocking(move || {
                let mut chunk = vec![0; want];
                let read = file.read(&mut chunk).map(|n| {
                    chunk.truncate(n);
                    chunk
                });
                (file, read)
            }));
        }
        let Some(reading) = this.reading.as_mut() else { return Poll::Ready(None) };
        let done = ready!(Pin::new(reading).poll(cx));
        this.reading = None;
        let (file, chunk) = done.map_err(io::Error::other)?;
        this.file = Some(file);
        let chunk = chunk?;
        if chunk.is_empty() {
            this.left = 0;
            return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
        }
        this.left = this.left.saturating_sub(chunk.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_both_ways() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        for seconds in [0, 784_111_777, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_http_date(&http_date(seconds)), Some(seconds));
        }
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }

    #[test]
    fn etags_compare_weakly() {
        let etag = "\"5-1.2\"";
        for tags in ["\"5-1.2\"", "W/\"5-1.2\"", "\"x\", \"5-1.2\"", "*"] {
            assert!(matches_etag(&HeaderValue::from_static(tags), etag), "{tags}");
        }
        assert!(!matches_etag(&HeaderValue::from_static("\"5-1.3\""), etag));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a/index.HTML")), "text/html; charset=utf-8");
        assert_eq!(content_type(Path::new("app.mjs")), "text/javascript; charset=utf-8");
        assert_eq!(content_type(Path::new("f.woff2")), "font/woff2");
        assert_eq!(content_type(Path::new("Makefile")), "application/octet-stream");
    }
}
