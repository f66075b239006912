//! The tablet app's files over real HTTP: gzipped for a browser that takes
//! it, the same bytes for one that does not, and never a compressed API
//! answer or event stream (SPEC §2, issue 14).

mod common;

use common::*;
use std::io::Read as _;

async fn get(url: &str, accept_encoding: Option<&str>) -> reqwest::Response {
    let mut request = http().get(url);
    if let Some(coding) = accept_encoding {
        request = request.header("accept-encoding", coding);
    }
    request.send().await.expect("request")
}

fn encoding(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_files_are_gzipped_for_browsers_that_accept_it_and_nothing_else_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    for path in ["/", "/kitchen", "/app/core.js", "/app/app.css", "/sw.js"] {
        let url = format!("{}{path}", d.base);
        let plain = get(&url, None).await;
        assert_eq!(plain.status(), 200, "{path}");
        assert_eq!(encoding(&plain), None, "{path}");
        let plain = plain.bytes().await.expect("body");
        let gzipped = get(&url, Some("gzip, deflate, br")).await;
        assert_eq!(encoding(&gzipped).as_deref(), Some("gzip"), "{path}");
        assert_eq!(
            gzipped.headers().get("vary").and_then(|v| v.to_str().ok()),
            Some("accept-encoding")
        );
        let gzipped = gzipped.bytes().await.expect("body");
        assert!(gzipped.len() < plain.len(), "{path}: smaller when gzipped");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzipped[..])
            .read_to_end(&mut unzipped)
            .expect("valid gzip");
        assert_eq!(unzipped, plain, "{path}: the same file");
        let refused = get(&url, Some("gzip;q=0, br")).await;
        assert_eq!(encoding(&refused), None, "{path}");
    }
    // The API and the event stream go out as they are.
    let api = get(&format!("{}/api/v1/tables", d.base), Some("gzip")).await;
    assert_eq!((api.status().as_u16(), encoding(&api)), (200, None));
    let stream = get(&format!("{}/api/v1/stream", d.base), Some("gzip")).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert_eq!(encoding(&stream), None);
    drop(stream);
    d.stop().await;
}
