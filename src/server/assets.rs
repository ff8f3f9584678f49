//! The site's build — the WASM, its JS glue and the stylesheet that cargo-leptos writes to
//! `pkg/`, and the files of `public/` — served as a wall screen on a slow link needs it.
//!
//! From the binary or from a folder: a release build carries the site it was built with (the
//! server is compiled after the site), so the one file is the whole deployment; a site
//! folder, when there is one at `site_root`, wins, so a development build serves what was
//! just rebuilt.
//!
//! Compressed: a release build made with `--precompress` leaves a brotli (`.br`) and a gzip
//! (`.gz`) copy beside each file, and the one the browser accepts goes out as is, so nothing
//! is compressed per request. Cached: the files are addressed by a digest of the whole
//! build (`/pkg/{version}/pulseboard.wasm`), taken once at start, so a screen that reloads
//! keeps what it has for as long as the build is the same (`immutable`), and a new build has
//! new addresses. A page from another build (a screen that loaded before an upgrade) still
//! gets this build's files, but not for keeps.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::path::Path as FilePath;
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// The site as the release build that compiled this binary left it (nothing in a build made
/// without cargo-leptos, which names the folder).
#[derive(rust_embed::Embed)]
#[folder = "$LEPTOS_SITE_ROOT"]
#[allow_missing = true]
struct Built;

/// The build's files and the version in their addresses.
pub(crate) struct Assets {
    files: Files,
    /// The build's directory below the site root, as cargo-leptos names it (`pkg`).
    dir: String,
    version: String,
}

enum Files {
    Folder(ServeDir),
    Binary,
}

const KEEP: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const DO_NOT_KEEP: HeaderValue = HeaderValue::from_static("no-store");

impl Assets {
    /// The build in `site_root`/`dir` if there is one, else the one in the binary. With
    /// neither, the server still runs (every file 404s), so the API works on a server whose
    /// site was never built.
    pub(crate) fn open(site_root: &str, dir: &str) -> Arc<Assets> {
        let path = FilePath::new(site_root).join(dir);
        let in_folder = folder_files(&path);
        let in_binary = binary_files(dir);
        let (files, version) = if in_folder.is_empty() && !in_binary.is_empty() {
            tracing::info!("serving the site built into this binary");
            (Files::Binary, digest(in_binary))
        } else {
            if !in_folder.is_empty() {
                tracing::info!("serving the site in {}", path.display());
            }
            let files = ServeDir::new(&path).precompressed_br().precompressed_gzip();
            (Files::Folder(files), digest(in_folder))
        };
        Arc::new(Assets {
            files,
            dir: dir.to_owned(),
            version,
        })
    }

    /// The files of `public/` the binary serves at the root (`/favicon.svg`) when the site
    /// is its own; from a folder, the pages' fallback serves them.
    pub(crate) fn public_files(&self) -> Vec<String> {
        match self.files {
            Files::Folder(_) => Vec::new(),
            Files::Binary => Built::iter()
                .filter(|name| !name.contains('/'))
                .filter(|name| !name.ends_with(".br") && !name.ends_with(".gz"))
                .map(|name| format!("/{name}"))
                .collect(),
        }
    }

    /// Where pages link the build, below the site root: `{dir}/{version}`.
    pub(crate) fn address(&self) -> String {
        format!("{}/{}", self.dir, self.version)
    }

    /// The route that serves it.
    pub(crate) fn route(&self) -> String {
        format!("/{}/{{version}}/{{*file}}", self.dir)
    }
}

/// `GET /pkg/{version}/{*file}`: the file with the encoding the browser prefers, kept by
/// the browser for good if it belongs to this build.
pub(crate) async fn serve(
    State(assets): State<Arc<Assets>>,
    Path((version, file)): Path<(String, String)>,
    mut request: Request,
) -> Response {
    let mut response = match &assets.files {
        Files::Folder(files) => {
            let Ok(within) = format!("/{file}").parse() else {
                return StatusCode::NOT_FOUND.into_response();
            };
            *request.uri_mut() = within;
            let Ok(response) = files.clone().oneshot(request).await;
            response.map(Body::new)
        }
        Files::Binary => from_binary(&format!("{}/{file}", assets.dir), request.headers()),
    };
    let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let keep = found && version == assets.version;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, if keep { KEEP } else { DO_NOT_KEEP });
    // On the plain copy too, so a cache in front keeps each encoding apart.
    if found && !headers.contains_key(header::VARY) {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// `GET /favicon.svg` and the rest of `public/`, from the binary.
pub(crate) async fn serve_public(request: Request) -> Response {
    let name = request.uri().path().trim_start_matches('/').to_owned();
    from_binary(&name, request.headers())
}

/// The file at `name` in the binary's site, in the best encoding the request accepts, with
/// its digest as the ETag so a revalidating cache gets a 304.
fn from_binary(name: &str, request: &HeaderMap) -> Response {
    let Some(plain) = Built::get(name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let tag = format!("\"{}\"", hex(&plain.metadata.sha256_hash()[..16]));
    let mut response = if request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|sent| sent.as_bytes() == tag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let accepted = request
            .get(header::ACCEPT_ENCODING)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let compressed = [("br", ".br"), ("gzip", ".gz")]
            .into_iter()
            .filter(|(coding, _)| accepts(accepted, coding))
            .find_map(|(coding, suffix)| Some((coding, Built::get(&format!("{name}{suffix}"))?)));
        let mut response = match compressed {
            Some((coding, file)) => {
                let mut response = Body::from(file.data).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
                response
            }
            None => Body::from(plain.data).into_response(),
        };
        if let Ok(kind) = HeaderValue::from_str(plain.metadata.mimetype()) {
            response.headers_mut().insert(header::CONTENT_TYPE, kind);
        }
        response
    };
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// Whether an `Accept-Encoding` value takes `coding` (named, or `*`, and not at `q=0`).
fn accepts(accepted: &str, coding: &str) -> bool {
    accepted.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|param| {
            param
                .strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (name.eq_ignore_ascii_case(coding) || name == "*") && !refused
    })
}

/// The build's files (not their compressed copies, which follow from them) in a folder.
fn folder_files(dir: &FilePath) -> Vec<(String, Cow<'static, [u8]>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".br") && !name.ends_with(".gz"))
        .map(|name| {
            let contents = std::fs::read(dir.join(&name)).unwrap_or_default();
            (name, Cow::Owned(contents))
        })
        .collect()
}

/// The same, for the build in the binary.
fn binary_files(dir: &str) -> Vec<(String, Cow<'static, [u8]>)> {
    let prefix = format!("{dir}/");
    Built::iter()
        .filter_map(|name| Some(name.strip_prefix(&prefix)?.to_owned()))
        .filter(|name| !name.ends_with(".br") && !name.ends_with(".gz"))
        .filter_map(|name| {
            let file = Built::get(&format!("{prefix}{name}"))?;
            Some((name, file.data))
        })
        .collect()
}

/// A digest of every file of the build: 16 hex digits, or `unbuilt` when there is none.
fn digest(mut files: Vec<(String, Cow<'static, [u8]>)>) -> String {
    if files.is_empty() {
        return "unbuilt".into();
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut digest = Sha256::new();
    for (name, contents) in files {
        digest.update(name.as_bytes());
        digest.update((contents.len() as u64).to_le_bytes());
        digest.update(&contents);
    }
    hex(&digest.finalize()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_the_build_and_not_its_compressed_copies() {
        let dir = tempfile::TempDir::new().unwrap();
        let version = |dir: &FilePath| digest(folder_files(dir));
        assert_eq!(version(&dir.path().join("missing")), "unbuilt");
        assert_eq!(version(dir.path()), "unbuilt");
        std::fs::write(dir.path().join("pulseboard.wasm"), b"\0asm one").unwrap();
        std::fs::write(dir.path().join("pulseboard.js"), b"glue").unwrap();
        let first = version(dir.path());
        assert_eq!(first.len(), 16);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        std::fs::write(dir.path().join("pulseboard.wasm.br"), b"compressed").unwrap();
        assert_eq!(
            version(dir.path()),
            first,
            "the copies follow from the files"
        );
        std::fs::write(dir.path().join("pulseboard.wasm"), b"\0asm two").unwrap();
        assert_ne!(version(dir.path()), first, "a new build, a new address");
    }

    #[test]
    fn an_encoding_is_taken_when_named_or_starred_and_not_at_q_zero() {
        assert!(accepts("gzip, deflate, br, zstd", "br"));
        assert!(accepts("gzip;q=0.5, br;q=1.0", "br"));
        assert!(accepts("*", "gzip"));
        assert!(!accepts("gzip, br;q=0", "br"));
        assert!(!accepts("", "gzip"));
        assert!(!accepts("identity", "gzip"));
    }
}
