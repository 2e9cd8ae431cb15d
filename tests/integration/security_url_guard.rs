//! The outbound URL guard (`herald_shared::url_guard`), which stands between users' webhook and Teams
//! URLs and the network: every spelling of a loopback, private, link-local, unique-local,
//! CGNAT or metadata address is refused, by the function itself, by `POST` and `PUT
//! /v1/webhooks` and by `PUT /v1/system/settings` (`msteams_url`); names resolving to such
//! addresses are refused; and redirects are never followed, not even towards the fake receiver
//! itself.

use herald_shared::domain::{WebhookId, WebhookRequest};
use herald_shared::ports::WebhookStore;
use herald_shared::url_guard::{OutboundError, check_url, check_url_with};
use herald_tests::{Reply, TestApp, WebhookReceiver};
use http::{Method, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Spellings of non-public addresses that a URL parser or resolver might turn into one.
/// `{port}` is replaced by a port (the fake receiver's, where it matters).
const NON_PUBLIC: &[&str] = &[
    // Loopback, in every IPv4 spelling the WHATWG parser accepts.
    "http://127.0.0.1:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://127.255.255.254:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0177.0000.0000.0001:{port}/",
    "http://0x7f.0.0.1:{port}/",
    "http://0x7f000001:{port}/",
    "http://0X7F.1:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://%31%32%37.0.0.1:{port}/",
    "http://127.0.0.1%2e:{port}/",
    // IPv6 loopback and the IPv6 forms that carry an IPv4 loopback address.
    "http://[::1]:{port}/",
    "http://[0:0:0:0:0:0:0:1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[::7f00:1]:{port}/",
    "http://[64:ff9b::127.0.0.1]:{port}/",
    "http://[2002:7f00:1::1]:{port}/",
    "http://[64:ff9b:1::7f00:1]:{port}/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/",
    // Names that are loopback by definition.
    "http://localhost:{port}/",
    "http://LOCALHOST.:{port}/",
    "http://hooks.localhost:{port}/",
    "http://a.b.localhost.:{port}/",
    // Userinfo tricks: the host is what follows the last `@`.
    "http://example.com@127.0.0.1:{port}/",
    "http://user:pass@169.254.169.254:{port}/latest/meta-data/",
    "http://hooks.example.com:443@localhost:{port}/",
    "http://127.0.0.1:{port}#@example.com/",
    // Unspecified.
    "http://0.0.0.0:{port}/",
    "http://0:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:0.0.0.0]:{port}/",
    // Private ranges.
    "http://10.0.0.1:{port}/",
    "http://012.1:{port}/",
    "http://167772161:{port}/",
    "http://172.16.0.1:{port}/",
    "http://172.31.255.254:{port}/",
    "http://0xac.0x10.0.1:{port}/",
    "http://192.168.0.1:{port}/",
    "http://192.168.1:{port}/",
    "http://[::ffff:192.168.0.1]:{port}/",
    "http://[::ffff:c0a8:1]:{port}/",
    // Shared address space (CGNAT).
    "http://100.64.0.1:{port}/",
    "http://100.127.255.254:{port}/",
    // Link-local and the cloud metadata services.
    "http://169.254.0.1:{port}/",
    "http://169.254.169.254:{port}/latest/meta-data/",
    "http://169.254.169.254.:{port}/",
    "http://2852039166:{port}/",
    "http://0xa9fea9fe:{port}/",
    "http://0251.0376.0251.0376:{port}/",
    "http://169.254.43518:{port}/",
    "http://[::ffff:169.254.169.254]:{port}/",
    "http://[::ffff:a9fe:a9fe]:{port}/",
    "http://[::169.254.169.254]:{port}/",
    "http://[64:ff9b::a9fe:a9fe]:{port}/",
    "http://[fe80::1]:{port}/",
    "http://[febf:ffff::1]:{port}/",
    "http://[fe80::a9fe:a9fe]:{port}/",
    // Unique-local, AWS's IPv6 metadata service among them.
    "http://[fd00:ec2::254]:{port}/",
    "http://[fc00::1]:{port}/",
    "http://[fdff:ffff::1]:{port}/",
];

fn spelled(template: &str, port: u16) -> String {
    template.replace("{port}", &port.to_string())
}

async fn refused(url: &str) -> OutboundError {
    match check_url(url, false).await {
        Err(e) => e,
        Ok(guarded) => panic!("{url} was accepted: {guarded:?}"),
    }
}

#[tokio::test]
async fn security_guard_refuses_every_spelling_of_a_non_public_address() {
    for template in NON_PUBLIC {
        for port in [80, 8080] {
            let url = spelled(template, port);
            let e = refused(&url).await;
            assert!(
                matches!(e, OutboundError::Forbidden(_)),
                "{url}: refused for the wrong reason: {e}"
            );
            assert!(
                !e.to_string().contains("127.0.0.1") && !e.to_string().contains("meta-data"),
                "{url}: the error repeats the URL: {e}"
            );
        }
    }
}

#[tokio::test]
async fn security_guard_lets_the_same_spellings_through_only_when_private_targets_are_allowed() {
    // The switch the tests' fake receivers rely on: it must really be the only difference.
    for url in [
        "http://2130706433:9/",
        "http://[::ffff:127.0.0.1]:9/",
        "http://0x7f.1:9/",
        "http://example.com@127.0.0.1:9/",
        "http://169.254.169.254/",
        "http://[fd00:ec2::254]/",
    ] {
        let guarded = check_url(url, true)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(guarded.domain, None, "{url}: an IP literal needs no lookup");
        assert_eq!(guarded.addrs.len(), 1, "{url}");
    }
    // The URL that is requested is the normalised one, never the original spelling.
    let guarded = check_url("http://0x7f.1:9/hook", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(guarded.url.as_str(), "http://127.0.0.1:9/hook");
    assert_eq!(guarded.addrs, vec![SocketAddr::from(([127, 0, 0, 1], 9))]);
}

#[tokio::test]
async fn security_guard_refuses_other_schemes_and_malformed_urls_without_a_request() {
    for url in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "ftp://8.8.8.8/",
        "dict://127.0.0.1:11211/",
        "ldap://169.254.169.254/",
        "javascript:alert(1)",
        "data:text/plain,hi",
        "//127.0.0.1/",
        "http://",
        "http://[::1/",
        "http://256.0.0.1/",
        "http://[fe80::1%25eth0]/",
        "",
    ] {
        let e = refused(url).await;
        assert!(
            matches!(
                e,
                OutboundError::Invalid | OutboundError::Scheme(_) | OutboundError::NoHost
            ),
            "{url}: {e}"
        );
    }
}

/// A resolver that answers `addrs` for every name and counts its lookups.
fn resolver(
    addrs: Vec<SocketAddr>,
    lookups: &AtomicUsize,
) -> impl FnOnce(String, u16) -> std::future::Ready<std::io::Result<Vec<SocketAddr>>> + '_ {
    move |_name, port| {
        lookups.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(addrs
            .into_iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect()))
    }
}

fn addr(ip: &str) -> SocketAddr {
    let ip: std::net::IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
    SocketAddr::new(ip, 0)
}

#[tokio::test]
async fn security_guard_refuses_names_that_resolve_to_non_public_addresses() {
    let lookups = AtomicUsize::new(0);
    for answer in [
        vec!["127.0.0.1"],
        vec!["127.3.4.5"],
        vec!["::1"],
        vec!["0.0.0.0"],
        vec!["10.1.2.3"],
        vec!["172.20.0.5"],
        vec!["192.168.10.10"],
        vec!["100.100.100.200"],
        vec!["169.254.169.254"],
        vec!["fd00:ec2::254"],
        vec!["fe80::1"],
        vec!["::ffff:127.0.0.1"],
        vec!["::ffff:169.254.169.254"],
        // One bad address among good ones refuses the name: the connection could use any.
        vec!["93.184.215.14", "127.0.0.1"],
        vec!["2606:4700::1111", "fd12::1"],
    ] {
        let addrs: Vec<SocketAddr> = answer.iter().map(|ip| addr(ip)).collect();
        let result = check_url_with(
            "https://hooks.example.com/notify",
            false,
            resolver(addrs, &lookups),
        )
        .await;
        assert!(
            matches!(result, Err(OutboundError::Forbidden(_))),
            "a name resolving to {answer:?} was not refused: {result:?}"
        );
    }
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        15,
        "every name was looked up"
    );

    // A public answer passes, pinned to exactly the addresses that were checked.
    let guarded = check_url_with(
        "https://hooks.example.com/notify",
        false,
        resolver(
            vec![addr("93.184.215.14"), addr("2606:4700::1111")],
            &lookups,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(guarded.domain.as_deref(), Some("hooks.example.com"));
    assert_eq!(
        guarded.addrs,
        vec![
            "93.184.215.14:443"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            "[2606:4700::1111]:443"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        ]
    );

    // No answer, or a failed lookup, is "unresolved" (temporary), never a pass.
    let empty = check_url_with(
        "https://hooks.example.com/",
        false,
        resolver(vec![], &lookups),
    )
    .await;
    assert_eq!(empty, Err(OutboundError::Unresolved));
    let failed = check_url_with("https://hooks.example.com/", false, |_, _| async {
        Err(std::io::Error::other("SERVFAIL"))
    })
    .await;
    assert_eq!(failed, Err(OutboundError::Unresolved));
}

#[tokio::test]
async fn security_guard_refuses_localhost_names_whatever_the_resolver_answers() {
    let lookups = AtomicUsize::new(0);
    for url in [
        "http://localhost/",
        "http://localhost./",
        "http://LocalHost:8080/",
        "http://hooks.localhost/",
        "http://metadata.localhost./",
    ] {
        let result =
            check_url_with(url, false, resolver(vec![addr("93.184.215.14")], &lookups)).await;
        assert!(
            matches!(result, Err(OutboundError::Forbidden(_))),
            "{url}: {result:?}"
        );
    }
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        0,
        "localhost is never looked up"
    );
    // With the system resolver too.
    for url in ["http://localhost:1/", "http://ip6-localhost.localhost/"] {
        assert!(
            matches!(refused(url).await, OutboundError::Forbidden(_)),
            "{url}"
        );
    }
    // A name that merely contains "localhost" is not one of them.
    let lookalike = check_url_with(
        "https://localhost.example.com/",
        false,
        resolver(vec![addr("93.184.215.14")], &lookups),
    )
    .await;
    assert!(lookalike.is_ok(), "{lookalike:?}");
}

#[tokio::test]
async fn security_webhooks_api_refuses_every_non_public_spelling_before_any_request() {
    let receiver = WebhookReceiver::start().await;
    let port = receiver
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {}", receiver.base));
    let app = TestApp::new();
    for template in NON_PUBLIC {
        let url = spelled(template, port);
        for who in ["root", "alice"] {
            let body = json!({"name": "hook", "url": url});
            let r = if who == "root" {
                app.admin(Method::POST, "/v1/webhooks", Some(&body)).await
            } else {
                app.user(who, Method::POST, "/v1/webhooks", Some(&body))
                    .await
            };
            assert_eq!(
                (r.status, r.error_field()),
                (StatusCode::UNPROCESSABLE_ENTITY, "url"),
                "{url} as {who}: {}",
                r.body
            );
            assert!(r.raw.contains("non-public address"), "{url}: {}", r.raw);
        }
    }
    assert!(
        receiver.requests().is_empty(),
        "a refused URL reached the receiver: {:?}",
        receiver.requests()
    );
    let list = app.admin(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list.body["items"], json!([]), "nothing was saved");

    // An edit towards such an address is refused too, and leaves the endpoint as it was.
    let id = WebhookId::from_random([7; 8]);
    let endpoint = WebhookRequest::from_request(
        &json!({"name": "SIEM", "url": "https://siem.example.com/hook"}),
    )
    .and_then(|r| r.create(id.clone(), None, 1_800_000_000_000))
    .unwrap_or_else(|e| panic!("{e}"));
    app.herald
        .store
        .put_webhook(&endpoint)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let path = format!("/v1/webhooks/{id}");
    for template in NON_PUBLIC {
        let url = spelled(template, port);
        let r = app
            .admin(Method::PUT, &path, Some(&json!({"url": url})))
            .await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "url"),
            "{url}: {}",
            r.body
        );
    }
    let now = app.admin(Method::GET, &path, None).await;
    assert_eq!(now.body["url"], "https://siem.example.com/hook");
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn security_teams_url_pointing_at_a_non_public_address_is_refused_by_the_settings_api() {
    let app = TestApp::new();
    let before = app.admin(Method::GET, "/v1/system/settings", None).await;
    assert_eq!(before.status, StatusCode::OK);
    for template in NON_PUBLIC {
        let url = spelled(template, 443);
        let r = app
            .admin(
                Method::PUT,
                "/v1/system/settings",
                Some(&json!({"msteams_url": url, "enable_msteams_notifications": true})),
            )
            .await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "msteams_url"),
            "{url}: {}",
            r.body
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("msteams_url:")),
            "{}",
            r.body
        );
    }
    let after = app.admin(Method::GET, "/v1/system/settings", None).await;
    assert_eq!(
        after.body, before.body,
        "a refused PUT changed the settings"
    );

    // A public address is accepted, and clearing the URL always is.
    let ok = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"msteams_url": "https://52.96.0.1/webhookb2/abc"})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let cleared = app
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"msteams_url": ""})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);

    // Where private targets are allowed (a lab, the tests' fakes) loopback is accepted.
    let lab = TestApp::with_private_targets();
    let r = lab
        .admin(
            Method::PUT,
            "/v1/system/settings",
            Some(&json!({"msteams_url": "http://127.0.0.1:9/teams"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn security_a_redirecting_webhook_is_not_followed_and_not_saved() {
    let receiver = WebhookReceiver::start().await;
    // Private targets allowed, so that the fake receiver itself can be reached: the redirect
    // target (the receiver again, or the metadata service) would be reachable too, and is
    // still never requested.
    let app = TestApp::with_private_targets();
    for (status, target) in [
        (301, receiver.url("/followed")),
        (302, "http://169.254.169.254/latest/meta-data/".to_owned()),
        (303, receiver.url("/followed")),
        (307, receiver.url("/followed")),
        (308, "http://[fd00:ec2::254]/latest/meta-data/".to_owned()),
    ] {
        receiver.will([Reply::status(status).header("location", &target)]);
        let r = app
            .admin(
                Method::POST,
                "/v1/webhooks",
                Some(&json!({"name": "hook", "url": receiver.url("/hook")})),
            )
            .await;
        assert_eq!(
            (r.status, r.error_field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "url"),
            "{status}: {}",
            r.body
        );
        assert!(r.raw.contains(&format!("HTTP {status}")), "{}", r.raw);
        assert!(!r.raw.contains(&target), "the redirect target was echoed");
    }
    let paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/hook"; 5], "a redirect was followed");
    let list = app.admin(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list.body["items"], json!([]));
}
