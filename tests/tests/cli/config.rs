//! Configuration errors: each is a clear message naming file, line and key, with exit code 2.

use pipe_tests::*;

async fn validate(toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), toml).unwrap();
    let out = run_pipe(dir.path(), &["run", "bad.toml"], env).await;
    (out.status.code(), stderr(&out))
}

const GOOD_SOURCE: &str = "name = \"t\"\n[source]\nplugin = \"giosg\"\nbase_url = \"http://127.0.0.1:9\"\norganization_id = \"org\"\ntoken = \"${T_TOKEN}\"\n";
const SINK: &str = "\n[[sinks]]\nplugin = \"json\"\npath = \"out\"\n";

#[tokio::test]
async fn unknown_key_names_line_and_key() {
    let toml = format!("{GOOD_SOURCE}tokn = \"x\"\n{SINK}");
    let (code, err) = validate(&toml, &[("T_TOKEN", "secret-value")]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:7:") && err.contains("source.tokn") && err.contains("unknown key"), "{err}");
}

#[tokio::test]
async fn missing_required_key() {
    let toml = format!("name = \"t\"\n[source]\nplugin = \"giosg\"\ntoken = \"x\"\n{SINK}");
    let (code, err) = validate(&toml, &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:2:") && err.contains("organization_id"), "{err}");
}

#[tokio::test]
async fn wrong_type() {
    let toml = format!("{GOOD_SOURCE}page_size = \"many\"\n{SINK}");
    let (code, err) = validate(&toml, &[("T_TOKEN", "secret-value")]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:7:") && err.contains("source.page_size"), "{err}");
}

#[tokio::test]
async fn unset_variable_is_named_and_secrets_are_not_echoed() {
    let (code, err) = validate(&format!("{GOOD_SOURCE}{SINK}"), &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:6:") && err.contains("source.token") && err.contains("T_TOKEN"), "{err}");
}

#[tokio::test]
async fn unknown_plugin_lists_the_known_ones() {
    let toml = "[source]\nplugin = \"zendesk\"\n[[sinks]]\nplugin = \"json\"\npath = \"o\"\n";
    let (code, err) = validate(toml, &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:2:") && err.contains("zendesk") && err.contains("giosg"), "{err}");
}

#[tokio::test]
async fn toml_syntax_error_has_a_line() {
    let (code, err) = validate("name = \"t\"\n[source\nplugin = 1\n", &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:2:"), "{err}");
}

#[tokio::test]
async fn bad_flags_exit_2_and_schema_prints_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_pipe(dir.path(), &["run"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = run_pipe(dir.path(), &["schema", "messages"], &[]).await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sent_at") && text.contains("Timestamp(µs, \"UTC\")") || text.contains("Timestamp(Microsecond"),
        "{text}"
    );
    let out = run_pipe(dir.path(), &["schema", "nope"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn validate_accepts_the_shipped_pipelines() {
    let root = workspace();
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), pipe_sim::giosg::generate(&pipe_sim::giosg::SimConfig::small(3)).private_key_pkcs8_pem)
        .unwrap();
    let key_path = key.path().to_str().unwrap();
    let env = [("GIOSG_ORG_ID", "o"), ("GIOSG_API_TOKEN", "t"), ("GIOSG_PRIVATE_KEY_FILE", key_path)];
    let out = run_pipe(&root, &["validate", "pipelines/giosg.toml"], &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // A missing key file is caught by validate, with the line of the key.
    let env = [("GIOSG_ORG_ID", "o"), ("GIOSG_API_TOKEN", "t"), ("GIOSG_PRIVATE_KEY_FILE", "/nonexistent/key.pem")];
    let out = run_pipe(&root, &["validate", "pipelines/giosg.toml"], &env).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("transforms[0].private_key_file"), "{}", stderr(&out));
    // The Aimylogic vendor spec's pipeline (the `rest` source, its spec and clients file named
    // relative to it).
    let out = run_pipe(&root, &["validate", "pipelines/aimylogic-rest.toml"], &[("AIMYLOGIC_TOKEN", "T:0")]).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The shipped Intercom pipeline (the `rest` source with pipelines/specs/intercom.toml)
/// validates, its spec found relative to the pipeline file.
#[tokio::test]
async fn validate_accepts_the_shipped_intercom_pipeline() {
    let root = workspace();
    let out = run_pipe(&root, &["validate", "pipelines/intercom.toml"], &[("INTERCOM_TOKEN", "t")]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("source `rest`"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn every_problem_is_reported_not_just_the_first() {
    let (code, err) = validate(
        "name = \"x\"\nbogus = 1\n\n[source]\nplugin = \"giosg\"\norganization_id = \"o\"\ntoken = \"t\"\npage_size = \"big\"\n\n[[transforms]]\nplugin = \"nope\"\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\nmax_file_rows = \"many\"\n",
        &[],
    )
    .await;
    assert_eq!(code, Some(2));
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 4, "{err}");
    for want in [
        ":2: bogus: unknown key",
        ":8: source.page_size:",
        ":11: transforms[0].plugin: unknown transform plugin `nope`",
        ":16: sinks[0].max_file_rows:",
    ] {
        assert!(lines.iter().any(|l| l.contains(want)), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("4 problems in the pipeline file"), "{err}");
}
