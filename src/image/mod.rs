//! Pictures (PNG or JPEG) from a file path or an http(s) URL, loaded under limits before anything decodes them:
//! at most `max_bytes` are read or downloaded, within `timeout`, and the size the header claims must stay within
//! `max_pixels` (a 400 KB PNG can claim 20000×20000 pixels, gigabytes once decoded). The still renderer
//! (`engine::still`) then decodes the bytes in memory.
//!
//! A local path must name a regular file: a FIFO, socket or device is refused without being opened (opening a
//! FIFO blocks until a writer comes). Whatever makes a local file unusable — it does not exist, cannot be read,
//! is not a regular file, or is not a PNG or JPEG — the answer is the same (`image "…" cannot be read`), so the API
//! is no oracle for which files exist on the node; the detail is logged.
//!
//! With a pictures folder (`engine.pictures_dir`), a relative path is read inside it, and a path inside it must not
//! lead out of it ([`confine`]): the path is checked and resolved again at each load, and the file opened is the
//! one checked (without following a link swapped in since). Without one, a relative path is not read. Other
//! absolute paths (the operator's `[pictures]` and `zego.image_presets`) are read as they are.

mod confine;
mod header;
#[cfg(test)]
pub(crate) use header::tests as header_tests;

use std::{
    io::Read,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

pub use confine::{confine, governs, Escape};
pub use header::{dimensions, sniff};

use crate::{
    config::EngineConfig,
    error::{Error, ErrorKind},
};

/// How long loading one picture may take, download included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a picture may cost the node, and where a local one may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLimits {
    /// Most bytes read or downloaded (`engine.max_image_bytes`, or a dialect's own smaller cap).
    pub max_bytes: u64,
    /// Most pixels (width × height) the header may claim (`engine.max_image_pixels`).
    pub max_pixels: u64,
    /// Deadline of the whole load.
    pub timeout: Duration,
    /// The pictures folder (`engine.pictures_dir`, absolute): relative paths, and absolute ones inside it, are read
    /// only within it ([`confine`]). `None`: a relative path is not read.
    pub pictures_dir: Option<PathBuf>,
}

impl ImageLimits {
    /// The node's limits, with the default deadline.
    pub fn of(engine: &EngineConfig) -> Self {
        Self {
            max_bytes: engine.max_image_bytes,
            max_pixels: engine.max_image_pixels,
            timeout: DEFAULT_TIMEOUT,
            pictures_dir: pictures_dir(engine),
        }
    }

    /// These limits with at most `max_bytes` bytes (a dialect's own cap, such as ZEGO's 1 MB); never more than
    /// the node's.
    pub fn with_max_bytes(self, max_bytes: u64) -> Self {
        Self {
            max_bytes: self.max_bytes.min(max_bytes),
            ..self
        }
    }
}

/// The pictures folder `engine.pictures_dir` names, made absolute (a configuration file's relative folder already
/// is: see [`crate::config::Config::load`]); `None` when it is empty.
pub fn pictures_dir(engine: &EngineConfig) -> Option<PathBuf> {
    if engine.pictures_dir.is_empty() {
        return None;
    }
    let folder = Path::new(&engine.pictures_dir);
    Some(std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf()))
}

/// Why bytes are not a picture this node takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a PNG or JPEG, or its header cannot be read.
    NotAPicture,
    /// The header claims more pixels than allowed.
    TooManyPixels { width: u32, height: u32 },
}

/// The size of a PNG or JPEG whose header claims at most `max_pixels` pixels; judged from the header alone.
pub fn size_within(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32), Refused> {
    let (width, height) = dimensions(bytes).ok_or(Refused::NotAPicture)?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(Refused::TooManyPixels { width, height });
    }
    Ok((width, height))
}

/// The words of a too-many-pixels refusal, after what the picture is ("the picture", `image "…"`).
pub fn too_many_pixels(width: u32, height: u32, max_pixels: u64) -> String {
    format!("is {width}×{height} pixels, more than this node's limit of {max_pixels} pixels")
}

/// Whether `location` is fetched over HTTP (otherwise it is a file path).
pub fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

/// An operator-configured image location (`[pictures]`, `zego.image_presets`) as the engine takes it: a relative
/// file path made absolute against the working directory, which it has always been read from (a relative path in a
/// mix is the pictures folder's). URLs and absolute paths are kept.
pub fn operator_location(location: &str) -> String {
    let path = Path::new(location);
    if is_url(location) || location.is_empty() || path.is_absolute() {
        return location.to_string();
    }
    std::path::absolute(path).map_or_else(|_| location.to_string(), |p| p.display().to_string())
}

/// The bytes of the PNG or JPEG at `location` (a file path or an http(s) URL), checked against `limits` before
/// anything decodes them. Errors: [`ErrorKind::Unavailable`] when it cannot be read or fetched (or is no PNG or
/// JPEG), [`ErrorKind::TooLarge`] when it has too many bytes or pixels.
pub async fn load(location: &str, limits: &ImageLimits) -> Result<Vec<u8>, Error> {
    if is_url(location) {
        load_url(location, limits).await
    } else {
        load_file(location, limits).await
    }
}

async fn load_file(location: &str, limits: &ImageLimits) -> Result<Vec<u8>, Error> {
    let unreadable = |detail: &str| {
        tracing::warn!(%location, %detail, "image file not usable");
        Error::new(
            ErrorKind::Unavailable,
            format!("image {location:?} cannot be read"),
        )
    };
    let path = location.to_string();
    let max_bytes = limits.max_bytes;
    let folder = limits.pictures_dir.clone();
    let read = tokio::task::spawn_blocking(move || read_local(&path, folder.as_deref(), max_bytes));
    let bytes = match tokio::time::timeout(limits.timeout, read).await {
        Ok(Ok(Ok(bytes))) => bytes,
        Ok(Ok(Err(e))) => return Err(unreadable(&e)),
        Ok(Err(e)) => return Err(unreadable(&e.to_string())),
        Err(_) => return Err(unreadable("not read within the deadline")),
    };
    // Only a picture gets a more precise answer; anything else reads like a file that is not there.
    if sniff(&bytes).is_none() {
        return Err(unreadable("not a PNG or JPEG"));
    }
    if bytes.len() as u64 > max_bytes {
        return Err(too_many_bytes(location, max_bytes));
    }
    match size_within(&bytes, limits.max_pixels) {
        Ok(_) => Ok(bytes),
        Err(Refused::NotAPicture) => Err(unreadable("header unreadable")),
        Err(Refused::TooManyPixels { width, height }) => Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "image {location:?} {}",
                too_many_pixels(width, height, limits.max_pixels)
            ),
        )),
    }
}

/// The bytes of the local file `location` ([`read_regular_file`]): within the pictures `folder` when it governs
/// the path (checked and resolved now, and the resolved file opened), as it is otherwise. Blocking.
fn read_local(location: &str, folder: Option<&Path>, max_bytes: u64) -> Result<Vec<u8>, String> {
    let governed = match folder {
        Some(folder) => governs(folder, location),
        None => Path::new(location).is_relative(),
    };
    if !governed {
        return read_regular_file(Path::new(location), None, max_bytes);
    }
    let Some(folder) = folder else {
        return Err("a relative path, and engine.pictures_dir is not set".into());
    };
    let (file, real_folder) = confine::resolve(folder, location).map_err(|e| match e {
        Escape::ParentDir => "a .. component in a path the pictures folder governs".to_string(),
        Escape::Outside => format!("leads out of the pictures folder {}", folder.display()),
        Escape::Unresolved(detail) => detail,
    })?;
    read_regular_file(&file, Some(&real_folder), max_bytes)
}

/// At most `max_bytes + 1` bytes of the regular file at `path` (one more than allowed shows it is too large).
/// Blocking. A FIFO, socket or device is refused without being opened; the file is opened non-blocking and
/// checked again, in case it was swapped for one in between. With `within` (a resolved pictures folder), `path`
/// is a resolved path in it: a symbolic link put in its place since is not followed, and the file opened must
/// lie in the folder.
fn read_regular_file(
    path: &Path,
    within: Option<&Path>,
    max_bytes: u64,
) -> Result<Vec<u8>, String> {
    let meta = match within {
        Some(_) => std::fs::symlink_metadata(path),
        None => std::fs::metadata(path),
    }
    .map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let flags = match within {
        Some(_) => libc::O_NONBLOCK | libc::O_NOFOLLOW,
        None => libc::O_NONBLOCK,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file once opened".into());
    }
    if let Some(folder) = within {
        opened_within(&file, folder)?;
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Whether the open `file` lies in `folder`, as the kernel says (a folder on its path may have been swapped for a
/// link since it was resolved). Fails closed when it cannot tell.
#[cfg(target_os = "linux")]
fn opened_within(file: &std::fs::File, folder: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| format!("where the opened file lies cannot be told: {e}"))?;
    if opened.starts_with(folder) {
        Ok(())
    } else {
        Err(format!(
            "the file opened, {}, lies out of the pictures folder {}",
            opened.display(),
            folder.display()
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn opened_within(_file: &std::fs::File, _folder: &Path) -> Result<(), String> {
    Ok(())
}

async fn load_url(url: &str, limits: &ImageLimits) -> Result<Vec<u8>, Error> {
    let unavailable = |why: &str| {
        tracing::warn!(%url, %why, "image not fetched");
        Error::new(
            ErrorKind::Unavailable,
            format!("image {url:?} cannot be fetched ({why})"),
        )
    };
    let bytes = match tokio::time::timeout(limits.timeout, download(url, limits.max_bytes)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(Download::TooLarge)) => return Err(too_many_bytes(url, limits.max_bytes)),
        Ok(Err(Download::Failed(why))) => return Err(unavailable(&why)),
        Err(_) => {
            return Err(unavailable(&format!(
                "no complete answer within {} s",
                limits.timeout.as_secs_f64()
            )))
        }
    };
    match size_within(&bytes, limits.max_pixels) {
        Ok(_) => Ok(bytes),
        Err(Refused::NotAPicture) => Err(Error::new(
            ErrorKind::Unavailable,
            format!("image {url:?} is not a PNG or JPEG picture"),
        )),
        Err(Refused::TooManyPixels { width, height }) => Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "image {url:?} {}",
                too_many_pixels(width, height, limits.max_pixels)
            ),
        )),
    }
}

fn too_many_bytes(location: &str, max_bytes: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("image {location:?} is larger than {max_bytes} bytes"),
    )
}

enum Download {
    TooLarge,
    /// Why, in words safe to show (a status code, "connection failed").
    Failed(String),
}

/// The body at `url`, read chunk by chunk and abandoned past `max_bytes`.
async fn download(url: &str, max_bytes: u64) -> Result<Vec<u8>, Download> {
    let client = client().map_err(|e| {
        tracing::error!(error = %e, "HTTP client for images not built");
        Download::Failed("internal error".into())
    })?;
    let failed = |e: reqwest::Error| {
        tracing::debug!(%url, error = %e, "image request failed");
        Download::Failed(if e.is_timeout() {
            "timed out".into()
        } else if e.is_connect() {
            "connection failed".into()
        } else {
            "request failed".into()
        })
    };
    let mut response = client.get(url).send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(Download::Failed(format!(
            "HTTP {}",
            response.status().as_u16()
        )));
    }
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(Download::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(Download::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One client for every picture download (its TLS roots and connection pool are built once).
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::header::tests::{png_claiming, TINY_JPEG, TINY_PNG};
    use super::*;

    fn limits() -> ImageLimits {
        ImageLimits {
            max_bytes: 4096,
            max_pixels: 4096 * 4096,
            timeout: Duration::from_secs(5),
            pictures_dir: None,
        }
    }

    fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn local_pictures_are_read() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("a.png", TINY_PNG), ("a.jpg", TINY_JPEG)] {
            let path = write(dir.path(), name, bytes);
            assert_eq!(load(&path, &limits()).await.unwrap(), bytes);
        }
    }

    /// A missing file, a file in a missing folder, a folder, a FIFO and a file that is no picture all read the
    /// same; the FIFO is not opened (that would block).
    #[tokio::test]
    async fn every_unusable_path_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.png");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let text = write(dir.path(), "passwd", b"root:x:0:0::/root:/bin/sh\n");
        let began = std::time::Instant::now();
        for path in [
            dir.path().join("nope.png").to_str().unwrap().to_string(),
            dir.path()
                .join("missing/a.png")
                .to_str()
                .unwrap()
                .to_string(),
            dir.path().to_str().unwrap().to_string(),
            fifo.to_str().unwrap().to_string(),
            text,
        ] {
            let e = load(&path, &limits()).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unavailable, "{path}");
            assert_eq!(e.message, format!("image {path:?} cannot be read"));
        }
        assert!(began.elapsed() < Duration::from_secs(2));
    }

    /// With a pictures folder, a relative path is read inside it and a path it governs is checked again at load:
    /// one that leads out (a link made after the request was checked) reads like a missing file. Without a
    /// folder, a relative path is not read at all. Absolute paths outside the folder are the operator's.
    #[tokio::test]
    async fn paths_the_pictures_folder_governs_are_read_only_inside_it() {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("pictures");
        std::fs::create_dir(&folder).unwrap();
        let inside = write(&folder, "a.png", TINY_PNG);
        let outside = write(root.path(), "secret.png", TINY_JPEG);
        std::os::unix::fs::symlink(&outside, folder.join("out.png")).unwrap();
        let confined = ImageLimits {
            pictures_dir: Some(folder.clone()),
            ..limits()
        };
        assert_eq!(load("a.png", &confined).await.unwrap(), TINY_PNG);
        assert_eq!(load(&inside, &confined).await.unwrap(), TINY_PNG);
        // The operator's own absolute path outside the folder is read as it is.
        assert_eq!(load(&outside, &confined).await.unwrap(), TINY_JPEG);
        let out_abs = folder.join("out.png").to_str().unwrap().to_string();
        for path in ["out.png", out_abs.as_str(), "../secret.png", "nope.png"] {
            let e = load(path, &confined).await.unwrap_err();
            assert_eq!(
                (e.kind, e.message),
                (
                    ErrorKind::Unavailable,
                    format!("image {path:?} cannot be read")
                ),
                "{path}"
            );
        }
        // No folder: a relative path is not taken against the working directory (the crate's, under cargo test).
        let relative = "src/image/testdata/tiny.png";
        assert!(std::path::Path::new(relative).is_file());
        let e = load(relative, &limits()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
    }

    /// An operator's relative path keeps the meaning it always had (the working directory's), so that the
    /// pictures folder, which governs relative paths in mixes, does not take it over.
    #[test]
    fn operator_locations_keep_their_meaning() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            operator_location("pictures/logo.png"),
            cwd.join("pictures/logo.png").display().to_string()
        );
        for kept in [
            "/srv/logo.png",
            "https://cdn/logo.png",
            "http://h/l.png",
            "",
        ] {
            assert_eq!(operator_location(kept), kept);
        }
    }

    /// The file the loader opens is the one it checked: a link swapped in for it is not followed, and a file
    /// that turns out to lie outside the folder once opened is refused.
    #[test]
    fn the_checked_file_is_the_one_opened() {
        let root = tempfile::tempdir().unwrap();
        let folder = std::fs::canonicalize(root.path()).unwrap().join("pictures");
        std::fs::create_dir(&folder).unwrap();
        let outside = write(root.path(), "secret.png", TINY_PNG);
        let link = folder.join("a.png");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        // As the operator's path, the link is followed; as a resolved path in the folder, it is not.
        assert_eq!(read_regular_file(&link, None, 4096).unwrap(), TINY_PNG);
        assert!(read_regular_file(&link, Some(&folder), 4096).is_err());
        let file = std::fs::File::open(&outside).unwrap();
        assert!(opened_within(&file, &folder).is_err());
        assert!(opened_within(&file, &std::fs::canonicalize(root.path()).unwrap()).is_ok());
    }

    #[tokio::test]
    async fn too_many_bytes_or_pixels_are_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let bomb = write(dir.path(), "bomb.png", &png_claiming(20_000, 20_000));
        let e = load(&bomb, &limits()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
        assert_eq!(
            e.message,
            format!(
                "image {bomb:?} is 20000×20000 pixels, more than this node's limit of 16777216 pixels"
            )
        );
        let mut big = TINY_PNG.to_vec();
        big.resize(5000, 0);
        let big = write(dir.path(), "big.png", &big);
        let e = load(&big, &limits()).await.unwrap_err();
        assert_eq!(
            (e.kind, e.message),
            (
                ErrorKind::TooLarge,
                format!("image {big:?} is larger than 4096 bytes")
            )
        );
        // A dialect's own smaller cap (ZEGO: 1 MB) wins over the node's.
        let small = limits().with_max_bytes(50);
        let tiny = write(dir.path(), "tiny.jpg", TINY_JPEG);
        assert_eq!(
            load(&tiny, &small).await.unwrap_err().kind,
            ErrorKind::TooLarge
        );
        assert_eq!(limits().with_max_bytes(1 << 30).max_bytes, 4096);
    }

    /// Serves `answer` (when given) to every connection, after reading the request; without one, accepts and
    /// stays silent.
    fn server(answer: Option<Vec<u8>>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                match &answer {
                    Some(a) => {
                        let mut buf = [0u8; 4096];
                        let _ = std::io::Read::read(&mut stream, &mut buf);
                        let _ = std::io::Write::write_all(&mut stream, a);
                    }
                    None => held.push(stream),
                }
            }
        });
        format!("http://{addr}/picture.png")
    }

    fn http_answer(status: &str, body: &[u8]) -> Vec<u8> {
        let mut a = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        a.extend(body);
        a
    }

    #[tokio::test]
    async fn a_silent_server_is_given_up_after_the_deadline() {
        let url = server(None);
        let short = ImageLimits {
            timeout: Duration::from_millis(300),
            ..limits()
        };
        let began = std::time::Instant::now();
        let e = load(&url, &short).await.unwrap_err();
        let took = began.elapsed();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("within 0.3 s"), "{}", e.message);
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn downloads_are_checked_like_files() {
        let ok = server(Some(http_answer("200 OK", TINY_PNG)));
        assert_eq!(load(&ok, &limits()).await.unwrap(), TINY_PNG);
        let missing = server(Some(http_answer("404 Not Found", b"")));
        let e = load(&missing, &limits()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("HTTP 404"), "{}", e.message);
        let bomb = server(Some(http_answer("200 OK", &png_claiming(20_000, 20_000))));
        assert_eq!(
            load(&bomb, &limits()).await.unwrap_err().kind,
            ErrorKind::TooLarge
        );
        let big = server(Some(http_answer("200 OK", &[0u8; 5000])));
        assert_eq!(
            load(&big, &limits()).await.unwrap_err().kind,
            ErrorKind::TooLarge
        );
        let text = server(Some(http_answer("200 OK", b"<html></html>")));
        let e = load(&text, &limits()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("not a PNG or JPEG"), "{}", e.message);
    }
}
