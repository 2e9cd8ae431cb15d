//! The page's files as the router serves them on both hosts (the browser tests in
//! `tests/browser/` use them for real): public, compiled in, under a strict policy.

use herald_tests::TestApp;
use http::{Method, StatusCode};

#[tokio::test]
async fn the_page_and_its_files_are_public_and_never_run_inline_code_or_load_in_a_frame() {
    let app = TestApp::new();
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let r = app.send(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let header = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), content_type, "{path}");
        let policy = header("content-security-policy");
        assert!(policy.starts_with("default-src 'none'"), "{path}: {policy}");
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
    let page = app.send(Method::GET, "/", None, None).await;
    assert!(
        page.raw
            .contains(r#"<script type="module" src="/ui/app.js"></script>"#)
    );
    assert!(
        !page.raw.contains("<script>") && !page.raw.contains(" onclick="),
        "no inline script or handler"
    );
    let missing = app.send(Method::GET, "/ui/other.js", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
}
