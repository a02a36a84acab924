use base64::Engine;
use bay_tests::strict;

#[tokio::test]
async fn python_state_persists_between_calls() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let r = c.python(&id, "x = 41", 30).await;
    assert_eq!(r["success"], true, "{r}");
    let r = c.python(&id, "print(x + 1)", 30).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["output"], "42");
    assert_eq!(r["data"]["output"]["text"], "42");
    assert!(r["execution_id"].as_str().unwrap().starts_with("exec-"));
    assert!(r["execution_time_ms"].as_i64().unwrap() >= 0);
    assert!(r["code"].is_null(), "code is echoed only with include_code");

    // Errors come back as tracebacks with success=false, and the value of an
    // expression is the output.
    let r = c.python(&id, "1/0", 30).await;
    assert_eq!(r["success"], false);
    assert!(r["error"].as_str().unwrap().contains("ZeroDivisionError"), "{r}");
    let r = c.python(&id, "x * 2", 30).await;
    assert_eq!(r["output"], "82");

    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/python/exec"), serde_json::json!({"code": "x", "include_code": true})).await;
    assert_eq!(status, 200);
    assert_eq!(r["code"], "x");
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn matplotlib_plot_comes_back_as_png() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let r = c.python(&id, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')\nplt.show()", 60).await;
    assert_eq!(r["success"], true, "{r}");
    let images = r["data"]["output"]["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{r}");
    let png = base64::engine::general_purpose::STANDARD.decode(images[0]["image/png"].as_str().unwrap()).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 1000);
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn a_timed_out_cell_is_interrupted_and_the_kernel_stays_usable() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    c.python(&id, "counter = 7", 30).await;
    let started = std::time::Instant::now();
    let r = c.python(&id, "while True: pass", 2).await;
    assert_eq!(r["success"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("timed out"), "{r}");
    assert!(started.elapsed().as_secs() < 15, "the interrupt took {:?}", started.elapsed());
    // The kernel was interrupted, not restarted: state survives.
    let r = c.python(&id, "print(counter)", 30).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["output"], "7");
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn python_request_validation() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let path = format!("/v1/sandboxes/{id}/python/exec");
    let (status, r) = c.post(&path, serde_json::json!({"code": "1", "timeout": 0})).await;
    assert_eq!(status, 422, "{r}");
    assert_eq!(r["error"]["code"], "validation_error");
    assert_eq!(r["error"]["details"]["errors"][0]["loc"], serde_json::json!(["body", "timeout"]));
    let (status, _) = c.post(&path, serde_json::json!({"code": "1", "timeout": 301})).await;
    assert_eq!(status, 422);
    let (status, r) = c.post(&path, serde_json::json!({"timeout": 5})).await;
    assert_eq!(status, 422, "{r}");
    c.delete_sandbox(&id).await;
}
