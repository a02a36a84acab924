use bay_tests::strict;
use rand::RngCore;
use reqwest::Method;

#[tokio::test]
async fn write_read_list_delete() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let files = format!("/v1/sandboxes/{id}/filesystem/files");
    let (status, r) = c.json(Method::PUT, &files, Some(serde_json::json!({"path": "notes/a.txt", "content": "héllo\nworld"}))).await;
    assert_eq!((status, &r["status"]), (200, &serde_json::json!("ok")), "{r}");
    let (status, r) = c.get(&format!("{files}?path=notes/a.txt")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["content"], "héllo\nworld");
    // Python sees the same file.
    let r = c.python(&id, "print(open('notes/a.txt').read().upper())", 30).await;
    assert_eq!(r["output"], "HÉLLO\nWORLD");

    c.json(Method::PUT, &files, Some(serde_json::json!({"path": ".hidden", "content": ""}))).await;
    let (status, r) = c.get(&format!("/v1/sandboxes/{id}/filesystem/directories?path=.")).await;
    assert_eq!(status, 200, "{r}");
    let entries = r["entries"].as_array().unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"notes"), "{r}");
    assert!(!names.contains(&".hidden"), "hidden files are not listed: {r}");
    let notes = entries.iter().find(|e| e["name"] == "notes").unwrap();
    assert_eq!(notes["is_dir"], true);
    assert_eq!(notes["path"], "/workspace/notes");
    let (_, r) = c.get(&format!("/v1/sandboxes/{id}/filesystem/directories?path=notes")).await;
    assert_eq!(r["entries"][0]["name"], "a.txt");
    assert_eq!(r["entries"][0]["size"], 12);
    assert_eq!(r["entries"][0]["is_file"], true);

    let (status, r) = c.json(Method::DELETE, &format!("{files}?path=notes"), None).await;
    assert_eq!(status, 200, "{r}");
    let (status, r) = c.get(&format!("{files}?path=notes/a.txt")).await;
    // Unlike Shipyard Neo (502 ship_error, which SDK clients retry), a missing
    // file is 404 file_not_found, for reads and deletes as for downloads.
    assert_eq!(status, 404, "{r}");
    assert_eq!(r["error"]["code"], "file_not_found");
    let (status, r) = c.json(Method::DELETE, &format!("{files}?path=notes"), None).await;
    assert_eq!((status, r["error"]["code"].as_str()), (404, Some("file_not_found")));
    c.delete_sandbox(&id).await;
}

async fn round_trip(size: usize) {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let mut data = vec![0u8; size];
    rand::rng().fill_bytes(&mut data);
    let form =
        reqwest::multipart::Form::new().text("path", "data/blob.bin").part("file", reqwest::multipart::Part::bytes(data.clone()).file_name("upload"));
    let resp = c.req(Method::POST, &format!("/v1/sandboxes/{id}/filesystem/upload")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let r: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(r, serde_json::json!({"status": "ok", "path": "data/blob.bin", "size": size}));

    let resp = c.req(Method::GET, &format!("/v1/sandboxes/{id}/filesystem/download?path=data/blob.bin")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"blob.bin\"");
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), size);
    assert!(body[..] == data[..], "downloaded bytes differ from the upload");
    let r = c.shell(&id, "stat -c %s data/blob.bin").await;
    assert_eq!(r["output"], size.to_string());
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn binary_upload_and_download_round_trip_5mb() {
    round_trip(5 * 1024 * 1024).await;
}

#[tokio::test]
async fn binary_upload_and_download_round_trip_64mb() {
    round_trip(64 * 1024 * 1024).await;
}

#[tokio::test]
async fn upload_fields_in_either_order() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    // The file part before the path part (spooled, then streamed).
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"first".to_vec()).file_name("x")).text("path", "./order.txt");
    let resp = c.req(Method::POST, &format!("/v1/sandboxes/{id}/filesystem/upload")).multipart(form).send().await.unwrap();
    let r: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(r, serde_json::json!({"status": "ok", "path": "order.txt", "size": 5}));
    let (_, r) = c.get(&format!("/v1/sandboxes/{id}/filesystem/files?path=order.txt")).await;
    assert_eq!(r["content"], "first");
    // Missing parts are schema errors.
    let form = reqwest::multipart::Form::new().text("path", "x.txt");
    let resp = c.req(Method::POST, &format!("/v1/sandboxes/{id}/filesystem/upload")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn paths_outside_the_workspace_are_refused() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let cases = [("../etc/passwd", "path_traversal"), ("/etc/passwd", "absolute_path"), ("a/../../x", "path_traversal"), ("", "empty_path")];
    for (path, reason) in cases {
        let q = format!("path={}", path.replace('/', "%2F"));
        for url in [
            format!("/v1/sandboxes/{id}/filesystem/files?{q}"),
            format!("/v1/sandboxes/{id}/filesystem/download?{q}"),
            format!("/v1/sandboxes/{id}/filesystem/directories?{q}"),
        ] {
            let (status, r) = c.get(&url).await;
            assert_eq!(status, 400, "{url}: {r}");
            assert_eq!(r["error"]["code"], "invalid_path", "{url}: {r}");
            assert_eq!(r["error"]["details"]["reason"], reason, "{url}: {r}");
            assert_eq!(r["error"]["details"]["field"], "path");
        }
        let (status, r) =
            c.json(Method::PUT, &format!("/v1/sandboxes/{id}/filesystem/files"), Some(serde_json::json!({"path": path, "content": "x"}))).await;
        assert_eq!(status, 400, "{r}");
        assert_eq!(r["error"]["code"], "invalid_path");
        let form =
            reqwest::multipart::Form::new().text("path", path.to_owned()).part("file", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"));
        let resp = c.req(Method::POST, &format!("/v1/sandboxes/{id}/filesystem/upload")).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), 400, "upload {path}");
    }
    // A symlink pointing out of the workspace is refused by the runtime.
    c.shell(&id, "ln -s /etc/passwd escape").await;
    let (status, r) = c.get(&format!("/v1/sandboxes/{id}/filesystem/files?path=escape")).await;
    assert_eq!(status, 502, "{r}");
    assert_eq!(r["error"]["details"]["runtime_status"], 403, "{r}");
    let resp = c.req(Method::GET, &format!("/v1/sandboxes/{id}/filesystem/download?path=escape")).send().await.unwrap();
    assert_ne!(resp.status(), 200);
    // A missing file on download is 404 file_not_found.
    let (status, r) = c.get(&format!("/v1/sandboxes/{id}/filesystem/download?path=nothing.bin")).await;
    assert_eq!(status, 404, "{r}");
    assert_eq!(r["error"]["code"], "file_not_found");
    // `path` is required.
    let (status, _) = c.get(&format!("/v1/sandboxes/{id}/filesystem/files")).await;
    assert_eq!(status, 422);
    c.delete_sandbox(&id).await;
}

/// Limits hold end to end (docs/security.md): a 15 MB write and a 40 MB read
/// through the JSON API succeed — the content streams through Bay and never
/// enters plugin memory — and reads over the read limit get a 413 envelope.
#[tokio::test]
async fn large_text_files_through_the_json_api() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let files = format!("/v1/sandboxes/{id}/filesystem/files");
    let line = "0123456789 abcdefghijklmnopqrstuvwxyz \"quoted\" é\n";
    let content = line.repeat(15_000_000 / line.len());
    let (status, r) = c.json(Method::PUT, &files, Some(serde_json::json!({"path": "big/w.txt", "content": content}))).await;
    assert_eq!(status, 200, "{r}");
    let r = c.shell(&id, "wc -c < big/w.txt").await;
    assert_eq!(r["output"].as_str().unwrap().trim(), content.len().to_string());
    let (status, r) = c.get(&format!("{files}?path=big/w.txt")).await;
    assert_eq!(status, 200);
    assert_eq!(r["content"].as_str().unwrap(), content);

    // 40 MB written by code in the sandbox, read through the API.
    c.shell(&id, "python3 -c \"open('big/r.txt','w', newline='').write(('y' * 99 + '\\r\\n') * 400000)\"").await;
    let (status, r) = c.get(&format!("{files}?path=big/r.txt")).await;
    assert_eq!(status, 200);
    let text = r["content"].as_str().unwrap();
    assert_eq!(text.len(), 100 * 400_000, "CRLF read as LF, as Ship's read_file does");
    assert!(text.starts_with(&format!("{}\n", "y".repeat(99))));

    // Over the read limit (64 MiB): a 413 envelope pointing at the download endpoint.
    c.shell(&id, "head -c 70000000 /dev/zero | tr '\\0' 'z' > big/huge.txt").await;
    let (status, r) = c.get(&format!("{files}?path=big/huge.txt")).await;
    assert_eq!(status, 413, "{r}");
    assert_eq!(r["error"]["code"], "payload_too_large");
    c.delete_sandbox(&id).await;
}
