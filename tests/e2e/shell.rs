use bay_tests::strict;

#[tokio::test]
async fn shell_runs_as_shipyard_in_the_workspace() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let r = c.shell(&id, "whoami").await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["output"], "shipyard");
    assert_eq!(r["exit_code"], 0);
    let r = c.shell(&id, "id -u; pwd; echo $HOME").await;
    assert_eq!(r["output"], "1000\n/workspace\n/workspace");

    // A non-zero exit is still HTTP 200, with success=false.
    let r = c.shell(&id, "echo oops >&2; exit 3").await;
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["error"], "oops\n");

    // cwd is validated (relative, inside the workspace) and used.
    c.shell(&id, "mkdir -p sub/dir").await;
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/shell/exec"), serde_json::json!({"command": "pwd", "cwd": "sub/./dir"})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["output"], "/workspace/sub/dir");
    for (cwd, reason) in [("/etc", "absolute_path"), ("../..", "path_traversal"), ("", "empty_path")] {
        let (status, r) = c.post(&format!("/v1/sandboxes/{id}/shell/exec"), serde_json::json!({"command": "pwd", "cwd": cwd})).await;
        assert_eq!(status, 400, "{cwd}: {r}");
        assert_eq!(r["error"]["code"], "invalid_path");
        assert_eq!(r["error"]["details"]["field"], "cwd");
        assert_eq!(r["error"]["details"]["reason"], reason);
    }
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn shell_timeout_kills_the_command() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let started = std::time::Instant::now();
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/shell/exec"), serde_json::json!({"command": "sleep 30; echo done", "timeout": 1})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["success"], false);
    assert_eq!(r["exit_code"], -1);
    assert_eq!(r["error"], "Command timed out");
    assert!(started.elapsed().as_secs() < 15);
    // Nothing of it is left running.
    let r = c.shell(&id, "pgrep -x sleep || echo none").await;
    assert_eq!(r["output"], "none");
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn profile_env_and_built_in_skills_reach_the_runtime() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let r = c.shell(&id, "echo \"$BAY_E2E_GREETING\"").await;
    assert_eq!(r["output"], "hello from the profile");
    let r = c.python(&id, "import os; print(os.environ['BAY_E2E_GREETING'])", 30).await;
    assert_eq!(r["output"], "hello from the profile");
    // Ship writes the profile env for login shells and copies its skills, owned by shipyard.
    let r = c.shell(&id, "cat .bay_env.sh; stat -c %U skills/python-sandbox/SKILL.md").await;
    let out = r["output"].as_str().unwrap();
    assert!(out.contains("BAY_E2E_GREETING"), "{out}");
    assert!(out.ends_with("shipyard"), "{out}");
    c.delete_sandbox(&id).await;
}

/// What users' code of Shipyard Neo's image calls exists in ours too.
#[tokio::test]
async fn the_image_has_python_venv_pip_node_and_npm() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let r = c.shell(&id, "python --version && python3 -m pip --version >/dev/null && echo pip-ok").await;
    assert_eq!(r["success"], true, "{r}");
    assert!(r["output"].as_str().unwrap().starts_with("Python 3."), "{r}");
    assert!(r["output"].as_str().unwrap().ends_with("pip-ok"), "{r}");
    let r = c.shell(&id, "python3 -m venv /tmp/venv && /tmp/venv/bin/python -c 'import sys; print(sys.prefix)'").await;
    assert_eq!(r["output"], "/tmp/venv", "{r}");
    let r = c.shell(&id, "node -e 'console.log(6 * 7)' && npm --version >/dev/null && echo npm-ok").await;
    assert_eq!(r["output"], "42\nnpm-ok", "{r}");
    c.delete_sandbox(&id).await;
}
