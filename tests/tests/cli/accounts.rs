//! `[[source.accounts]]` and `source.accounts_file`: errors name the file, line and key path;
//! an accounts file with `${VAR}`s drives a real multi-account run.

use std::sync::Arc;

use pipe_sim::giosg::{GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::{Parquet, run_pipe, stderr};

const HEAD: &str = "name = \"fleet\"\n[source]\nplugin = \"giosg\"\nbase_url = \"http://127.0.0.1:9\"\n";
const SINK: &str = "\n[[sinks]]\nplugin = \"json\"\npath = \"out\"\n";

async fn validate(text: &str, extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in extra {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &[]).await;
    (out.status.code(), stderr(&out))
}

#[tokio::test]
async fn account_errors_name_file_line_and_key() {
    let missing_id = format!(
        "{HEAD}\n[[source.accounts]]\nid = \"a\"\norganization_id = \"o1\"\ntoken = \"t\"\n\n[[source.accounts]]\norganization_id = \"o2\"\ntoken = \"t\"\n{SINK}"
    );
    let (code, err) = validate(&missing_id, &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("p.toml:11: source.accounts[1]: missing key `id`"), "{err}");

    let duplicate = format!(
        "{HEAD}\n[[source.accounts]]\nid = \"a\"\norganization_id = \"o1\"\ntoken = \"t\"\n\n[[source.accounts]]\nid = \"a\"\norganization_id = \"o2\"\ntoken = \"t\"\n{SINK}"
    );
    let (code, err) = validate(&duplicate, &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("p.toml:12: source.accounts[1].id: `a` is used by an earlier account"), "{err}");

    let unknown = format!(
        "{HEAD}\n[[source.accounts]]\nid = \"a\"\norganization_id = \"o1\"\ntoken = \"t\"\norganisation = \"typo\"\n{SINK}"
    );
    let (code, err) = validate(&unknown, &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("p.toml:10: source.accounts[0].organisation: unknown key for plugin `giosg`"), "{err}");

    let both = format!(
        "{HEAD}accounts_file = \"a.toml\"\n\n[[source.accounts]]\nid = \"a\"\norganization_id = \"o1\"\ntoken = \"t\"\n{SINK}"
    );
    let (code, err) = validate(&both, &[("a.toml", "")]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("source.accounts_file: give either"), "{err}");

    let file_error = format!("{HEAD}accounts_file = \"accounts.toml\"\n{SINK}");
    let (code, err) = validate(
        &file_error,
        &[(
            "accounts.toml",
            "[[accounts]]\nid = \"a\"\norganization_id = \"o1\"\ntoken = \"t\"\n\n[[accounts]]\nid = \"b c\"\n",
        )],
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("accounts.toml:7: accounts[1].id: must be a string of letters"), "{err}");

    // --shard needs accounts.
    let single = format!("{HEAD}organization_id = \"o\"\ntoken = \"t\"\n{SINK}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), single).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml", "--shard", "0/2"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--shard splits the accounts"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_file_with_variables_runs_every_account() {
    let mut sims = Vec::new();
    for i in 0..2u64 {
        let cfg = SimConfig {
            seed: 77 + i,
            encrypted_every: 0,
            token: format!("secret-{i}"),
            organization_id: format!("00000000-0000-4000-8000-00000000000{i}"),
            ..SimConfig::small(10)
        };
        let d = Arc::new(generate(&cfg));
        let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
        sims.push((d, sim));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut accounts = String::new();
    for (i, (d, sim)) in sims.iter().enumerate() {
        accounts.push_str(&format!("[[accounts]]\nid = \"brand-{i}\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"${{TOKEN_{i}}}\"\n\n", sim.base_url(), d.organization_id));
    }
    std::fs::write(dir.path().join("accounts.toml"), accounts).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "name = \"fleet\"\n[source]\nplugin = \"giosg\"\naccounts_file = \"accounts.toml\"\nmax_concurrent_accounts = 1\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n",
    )
    .unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("TOKEN_0", "secret-0"), ("TOKEN_1", "secret-1")]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("secret-"), "tokens are never printed");
    let read = Parquet::at(dir.path().join("out/messages")).columns(&["account_id"]).read();
    let got: std::collections::BTreeSet<&str> = read.column("account_id").iter().map(|v| v.as_str().unwrap()).collect();
    let want: Vec<String> = sims.iter().map(|(d, _)| d.organization_id.clone()).collect();
    assert_eq!(serde_json::json!(got), serde_json::json!(want));
    // `pipe state show` lists one document per account.
    let out = run_pipe(dir.path(), &["state", "show", "p.toml"], &[("TOKEN_0", "x"), ("TOKEN_1", "y")]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"account\": \"brand-0\"") && text.contains("\"account\": \"brand-1\""), "{text}");
}
