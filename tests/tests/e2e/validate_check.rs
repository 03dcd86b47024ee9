//! `pipe validate --check` as a contract report, end to end: the real binary against the
//! simulators as written (every required check confirmed, exit 0) and in strict modes that play
//! a vendor unlike our notes (the check that differs is named, exit 1 when it is required).

use std::path::Path;
use std::sync::Arc;

use pipe_tests::*;
use serde_json::Value;

/// `pipe validate p.toml --check --report report.json` in `dir`: (exit code, stdout, stderr,
/// the JSON report if written).
async fn check(dir: &Path, toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String, Option<Value>) {
    std::fs::write(dir.join("p.toml"), toml).unwrap();
    let _ = std::fs::remove_file(dir.join("report.json"));
    let out = run_pipe(dir, &["validate", "p.toml", "--check", "--report", "report.json"], env).await;
    let report = std::fs::read_to_string(dir.join("report.json")).ok().map(|t| serde_json::from_str(&t).unwrap());
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out), report)
}

/// The report line of check `name`: its status label (`✓ confirmed`, `✗ absent`, …).
fn status<'a>(stdout: &'a str, name: &str) -> &'a str {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(name))
        .unwrap_or_else(|| panic!("no line for `{name}` in:\n{stdout}"));
    line[..line.find(name).unwrap()].trim()
}

/// Every check of the JSON report as (name, status, required).
fn checks(report: &Value) -> Vec<(String, String, bool)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (c["name"].as_str().unwrap().into(), c["status"].as_str().unwrap().into(), c["required"].as_bool().unwrap())
        })
        .collect()
}

mod giosg {
    use pipe_sim::giosg::{GiosgSim, PagingFaults, SimConfig, SimOptions, generate};

    use super::*;

    fn pipeline(sim: &GiosgSim, org: &str) -> String {
        format!(
            "[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{org}\"\ntoken = \"${{T}}\"\n\n[[sinks]]\nplugin = \"json\"\npath = \"out\"\n",
            sim.base_url()
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_assumption_confirmed_then_a_missing_single_chat_get_fails_the_check() {
        let d = Arc::new(generate(&SimConfig::small(6)));
        let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let toml = pipeline(&sim, &d.organization_id);
        let env = [("T", d.token.as_str())];

        let (code, stdout, err, report) = check(dir.path(), &toml, &env).await;
        assert_eq!(code, Some(0), "{stdout}\n{err}");
        let report = report.expect("the report is written");
        let names: Vec<String> = checks(&report).into_iter().map(|c| c.0).collect();
        assert_eq!(
            names,
            [
                "giosg.chats.listing",
                "giosg.chats.fields",
                "giosg.chats.order",
                "giosg.chat.get",
                "giosg.messages",
                "giosg.messages.fields",
                "giosg.messages.sender_type",
                "giosg.memberships",
                "giosg.memberships.fields",
                "giosg.tags",
                "giosg.tags.fields",
                "giosg.variables",
                "giosg.variables.fields",
            ]
        );
        for (name, status, _) in checks(&report) {
            assert_eq!(status, "confirmed", "{name}:\n{stdout}");
        }
        assert_eq!(report["passed"], true);
        assert_eq!(status(&stdout, "giosg.chat.get"), "✓ confirmed");
        assert!(stdout.contains("source `giosg`: 13 checks: 13 confirmed, 0 absent, 0 different, 0 unchecked; every required check passed"), "{stdout}");
        assert!(!dir.path().join("out").exists(), "validate --check wrote output");
        assert!(!stdout.contains(&d.token) && !err.contains(&d.token), "the token leaked");

        // A server without the assumed single-chat route.
        sim.set_paging_faults(PagingFaults { no_single_chat: true, ..Default::default() });
        let (code, stdout, err, report) = check(dir.path(), &toml, &env).await;
        sim.shutdown().await;
        assert_eq!(code, Some(1), "{stdout}\n{err}");
        assert_eq!(status(&stdout, "giosg.chat.get"), "✗ absent");
        assert!(err.contains("required check `giosg.chat.get` ✗ absent"), "{err}");
        let report = report.unwrap();
        assert_eq!(report["passed"], false);
        let failed: Vec<_> = checks(&report).into_iter().filter(|c| c.1 != "confirmed").collect();
        assert_eq!(failed, vec![("giosg.chat.get".to_string(), "absent".to_string(), true)]);
        assert!(!stdout.contains(&d.token) && !err.contains(&d.token), "the token leaked");
    }
}

mod aimylogic {
    use pipe_sim::aimylogic::{AimylogicSim, SimConfig, generate};

    use super::*;

    const TOKEN: &str = "E2eCntr7:5f0c1b2a3d4e5f60718293a4b5c6d7e8f9012345";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_paging_is_checked_and_a_server_ignoring_offset_or_capping_pages_fails() {
        let d = Arc::new(generate(&SimConfig { seed: 5, clients: 6, max_turns: 20, token: TOKEN.into() }));
        let long = d.clients.iter().find(|c| c.items.len() > 6).expect("a long history").id.clone();
        let sim = AimylogicSim::start(d.clone()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[source]\nplugin = \"aimylogic\"\nbase_url = \"{}\"\ntoken = \"${{T}}\"\nclient_ids = [{}]\npage_size = 50\n\n[[sinks]]\nplugin = \"json\"\npath = \"out\"\n",
            sim.base_url(),
            serde_json::to_string(&long).unwrap()
        );
        let env = [("T", TOKEN)];

        let (code, stdout, err, report) = check(dir.path(), &toml, &env).await;
        assert_eq!(code, Some(0), "{stdout}\n{err}");
        let got = checks(&report.unwrap());
        assert_eq!(
            got.iter().map(|c| (c.0.as_str(), c.1.as_str())).collect::<Vec<_>>(),
            vec![
                ("aimylogic.history", "confirmed"),
                ("aimylogic.history.fields", "confirmed"),
                // The simulator, like the seed's examples, sends ISO times without a zone: reported,
                // not fatal (the source reads them in its configured zone).
                ("aimylogic.history.time_zone", "different"),
                ("aimylogic.history.limit", "confirmed"),
                ("aimylogic.history.offset", "confirmed"),
            ],
            "{stdout}"
        );

        sim.ignore_offset(Some(&long));
        let (code, stdout, err, _) = check(dir.path(), &toml, &env).await;
        assert_eq!(code, Some(1), "{stdout}\n{err}");
        assert_eq!(status(&stdout, "aimylogic.history.offset"), "≠ different");
        assert!(stdout.contains("(the same page: offset ignored)"), "{stdout}");
        assert!(err.contains("required check `aimylogic.history.offset`"), "{err}");

        sim.ignore_offset(None);
        sim.max_page_size(Some(2));
        let (code, stdout, err, _) = check(dir.path(), &toml, &env).await;
        sim.shutdown().await;
        assert_eq!(code, Some(1), "{stdout}\n{err}");
        assert_eq!(status(&stdout, "aimylogic.history.limit"), "≠ different");
        assert!(
            stdout.contains(
                "limit=3 answered 2 item(s) (the server caps the page below what was asked: offset=2 answered 2 more)"
            ),
            "{stdout}"
        );
        assert!(!stdout.contains(TOKEN) && !err.contains(TOKEN), "the token leaked");
    }
}
