//! The built UI: static files from the configured folder, `index.html` at the root.

use std::path::{Component, Path, PathBuf};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;

/// The Content-Security-Policy of every page: nothing but our own scripts and styles; frames
/// only from our own origin (the sandboxed message reader).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

/// Serves `GET /{path}` from the UI folder.
pub async fn serve(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(dir) = state.config.ui_dir.clone() else {
        return HttpResponse::NotFound().body("the UI is not installed");
    };
    let rel = req.match_info().query("path").to_owned();
    let Some(file) = safe_join(&dir, &rel) else {
        return HttpResponse::NotFound().finish();
    };
    let file = if rel.is_empty() || file.is_dir() {
        file.join("index.html")
    } else {
        file
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let cache = if rel.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, content_type(&file)))
                .insert_header((header::CACHE_CONTROL, cache))
                .insert_header(("Content-Security-Policy", CSP))
                .body(bytes)
        }
        Err(_) => HttpResponse::NotFound().finish(),
    }
}

/// `dir/rel` when `rel` stays inside `dir`.
fn safe_join(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let d = Path::new("/srv/ui");
        assert_eq!(safe_join(d, "assets/a.js"), Some(d.join("assets/a.js")));
        assert_eq!(safe_join(d, "../etc/passwd"), None);
        assert_eq!(safe_join(d, "/etc/passwd"), None);
        assert_eq!(safe_join(d, "a/../../b"), None);
    }
}
