//! The site's build — the WASM, its JS glue and the stylesheet that cargo-leptos writes to
//! `pkg/` — served as a wall screen on a slow link needs it.
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
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::path::Path as FilePath;
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// The build's files and the version in their addresses.
pub struct Assets {
    files: ServeDir,
    /// The build's directory below the site root, as cargo-leptos names it (`pkg`).
    dir: String,
    version: String,
}

const KEEP: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const DO_NOT_KEEP: HeaderValue = HeaderValue::from_static("no-store");

impl Assets {
    /// The build in `dir`. A missing or unreadable build still serves (every file 404s), so
    /// the API works on a server whose site was never built.
    pub fn open(site_root: &str, dir: &str) -> Arc<Assets> {
        let path = FilePath::new(site_root).join(dir);
        Arc::new(Assets {
            files: ServeDir::new(&path).precompressed_br().precompressed_gzip(),
            dir: dir.to_owned(),
            version: version(&path),
        })
    }

    /// Where pages link the build, below the site root: `{dir}/{version}`.
    pub fn address(&self) -> String {
        format!("{}/{}", self.dir, self.version)
    }

    /// The route that serves it.
    pub fn route(&self) -> String {
        format!("/{}/{{version}}/{{*file}}", self.dir)
    }
}

/// `GET /pkg/{version}/{*file}`: the file with the encoding the browser prefers, kept by
/// the browser for good if it belongs to this build.
pub async fn serve(
    State(assets): State<Arc<Assets>>,
    Path((version, file)): Path<(String, String)>,
    mut request: Request,
) -> Response {
    let Ok(within) = format!("/{file}").parse() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    *request.uri_mut() = within;
    let Ok(response) = assets.files.clone().oneshot(request).await;
    let mut response = response.map(Body::new);
    let found = response.status().is_success();
    let keep = found && version == assets.version;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, if keep { KEEP } else { DO_NOT_KEEP });
    // On the plain copy too, so a cache in front keeps each encoding apart.
    if found && !headers.contains_key(header::VARY) {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// A digest of every file of the build (not the compressed copies, which follow from them):
/// 16 hex digits, or `unbuilt` when there is nothing to read.
fn version(dir: &FilePath) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return "unbuilt".into();
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| entry.file_name())
        .filter(|name| {
            let name = name.to_string_lossy();
            !name.ends_with(".br") && !name.ends_with(".gz")
        })
        .collect();
    if names.is_empty() {
        return "unbuilt".into();
    }
    names.sort();
    let mut digest = Sha256::new();
    for name in names {
        let contents = std::fs::read(dir.join(&name)).unwrap_or_default();
        digest.update(name.as_encoded_bytes());
        digest.update((contents.len() as u64).to_le_bytes());
        digest.update(&contents);
    }
    digest.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_the_build_and_not_its_compressed_copies() {
        let dir = tempfile::TempDir::new().unwrap();
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
}
