//! The binary as an operator meets it: configuration errors, imports, key rotation,
//! signals, several nodes on one database.

use std::path::Path;
use std::process::{Command, Output};

use pforte_testkit::{EXAMPLE_REALM, PforteProcess, http_client, postgres_url, temp_path};
use serde_json::Value;

use crate::pforte_bin;

/// Runs the binary to completion with a fresh data folder unless `envs` sets one.
fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let data = temp_path("cli");
    let mut cmd = Command::new(pforte_bin());
    cmd.args(args)
        .env("PFORTE_DATA_DIR", &data)
        .env("PFORTE_LISTEN", "127.0.0.1:0")
        .env("PFORTE_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn unknown_config_key_names_file_key_and_fix() {
    let file = temp_path("cfg").with_extension("toml");
    write(&file, "listen = \"127.0.0.1:0\"\nlistn = \"x\"\n");
    let out = run(&["--config", file.to_str().unwrap(), "serve"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(err.contains("listn"), "{err}");
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn wrong_config_type_names_the_key() {
    let file = temp_path("cfg").with_extension("toml");
    write(&file, "dev_mode = \"maybe\"\n");
    let out = run(&["--config", file.to_str().unwrap(), "serve"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("dev_mode"), "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn wrong_env_type_names_the_variable() {
    let out = run(&["serve"], &[("PFORTE_DEV_MODE", "maybe")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("PFORTE_DEV_MODE"), "{err}");
}

#[test]
fn missing_config_file_is_an_error() {
    let out = run(&["--config", "/nonexistent/pforte.toml", "serve"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent/pforte.toml"));
}

#[test]
fn unreachable_database_names_the_url_without_password() {
    let out = run(
        &["serve"],
        &[(
            "PFORTE_DATABASE_URL",
            "postgres://pforte:hunter2@127.0.0.1:1/pforte",
        )],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "password leaked: {err}");
    assert!(err.contains("PFORTE_DATABASE_URL"), "{err}");
}

/// With PostgreSQL, nodes may share the database: a master key generated per node would
/// seal keys the other nodes cannot open. pforte refuses to generate one there.
#[test]
fn postgres_without_a_master_key_is_refused() {
    let Some(pg) = postgres_url() else { return };
    let data = temp_path("pg-no-key");
    let out = run(
        &["serve"],
        &[
            ("PFORTE_DATABASE_URL", &pg),
            ("PFORTE_DATA_DIR", data.to_str().unwrap()),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("fix: set PFORTE_MASTER_KEY"), "{err}");
    assert!(!data.join("master.key").exists());
}

#[test]
fn an_unknown_realm_is_an_error_with_the_fix() {
    for args in [
        &["export", "--realm", "nope"][..],
        &["keys", "rotate", "--realm", "nope"][..],
    ] {
        let out = run(args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("realm nope does not exist"), "{args:?}: {err}");
        assert!(err.contains("fix: check the name"), "{args:?}: {err}");
    }
}

#[test]
fn unsupported_database_scheme_is_explained() {
    let out = run(
        &["serve"],
        &[("PFORTE_DATABASE_URL", "mysql://x@localhost/db")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("sqlite") && err.contains("postgres"), "{err}");
}

#[test]
fn bad_realm_json_names_file_and_path_and_writes_nothing() {
    let dir = temp_path("bad");
    let db = dir.join("p.db");
    let db_url = format!("sqlite://{}", db.display());
    let file = dir.join("realm.json");
    write(
        &file,
        r#"{"realm":"broken","clients":[{"clientId":"a","publicClient":"yes"}]}"#,
    );
    let out = run(
        &["import", file.to_str().unwrap()],
        &[("PFORTE_DATABASE_URL", &db_url)],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(err.contains("clients[0].publicClient"), "{err}");
    let export = run(
        &["export", "--realm", "broken"],
        &[("PFORTE_DATABASE_URL", &db_url)],
    );
    assert!(
        !export.status.success(),
        "nothing of the bad file may be written"
    );

    // A semantically invalid file (valid JSON) is refused the same way, at start-up too.
    write(
        &file,
        r#"{"realm":"broken","clients":[{"clientId":"a","redirectUris":["https://x/*"]}]}"#,
    );
    let out = run(
        &["serve", "--import", file.to_str().unwrap()],
        &[("PFORTE_DATABASE_URL", &db_url)],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("clients[0]"), "{err}");
}

/// Several files in one import are all or nothing: a bad file and none of them is written,
/// not even those before it in name order. Files of one realm — Keycloak's directory
/// export, the realm file and then its users files — build on each other.
#[test]
fn folder_import_is_all_or_nothing() {
    let dir = temp_path("folder");
    let db_url = format!("sqlite://{}", dir.join("p.db").display());
    let env = [("PFORTE_DATABASE_URL", db_url.as_str())];
    let exists = |realm: &str| run(&["export", "--realm", realm], &env).status.success();

    let realms = dir.join("realms");
    write(
        &realms.join("good-realm.json"),
        r#"{"realm":"good","roles":{"realm":[{"name":"reader"}]}}"#,
    );
    // A users file whose user holds a role only the realm file defines.
    write(
        &realms.join("good-users-0.json"),
        r#"{"realm":"good","users":[{"username":"uma","realmRoles":["reader"]}]}"#,
    );
    write(
        &realms.join("other-bad.json"),
        r#"{"realm":"other","clients":[{"clientId":"a","publicClient":"yes"}]}"#,
    );
    let out = run(&["import", realms.to_str().unwrap()], &env);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("other-bad.json"), "{err}");
    assert!(err.contains("nothing of the files was written"), "{err}");
    assert!(
        !exists("good"),
        "the valid files before the bad one were written"
    );

    // The same through `serve --import`, which must not start.
    let out = run(&["serve", "--import", realms.to_str().unwrap()], &env);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("other-bad.json"), "{}", stderr(&out));
    assert!(!exists("good"));

    // A users file that is bad on its own (a role nobody defines) stops the realm file too.
    std::fs::remove_file(realms.join("other-bad.json")).unwrap();
    write(
        &realms.join("good-users-1.json"),
        r#"{"realm":"good","users":[{"username":"ulf","realmRoles":["writer"]}]}"#,
    );
    let out = run(&["import", realms.to_str().unwrap()], &env);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("good-users-1.json"),
        "{}",
        stderr(&out)
    );
    assert!(!exists("good"));

    // Valid files are imported whole, each realm's in order.
    std::fs::remove_file(realms.join("good-users-1.json")).unwrap();
    let out = run(&["import", realms.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let export = run(&["export", "--realm", "good"], &env);
    assert!(export.status.success(), "{}", stderr(&export));
    let realm: Value = serde_json::from_slice(&export.stdout).unwrap();
    let uma = realm["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "uma")
        .expect("the users file's user");
    assert_eq!(uma["realmRoles"], serde_json::json!(["reader"]));
}

/// Keycloak's directory export puts a client's service-account user in one of several
/// users files: imported together with the realm file, it still becomes the `sub` of the
/// client's tokens, whichever users file holds it.
#[test]
fn a_service_account_user_from_a_later_users_file_names_the_clients_tokens() {
    let dir = temp_path("sa-split");
    let db_url = format!("sqlite://{}", dir.join("p.db").display());
    let data = dir.join("data");
    let env = [
        ("PFORTE_DATABASE_URL", db_url.as_str()),
        ("PFORTE_DATA_DIR", data.to_str().unwrap()),
    ];
    let realms = dir.join("realms");
    write(
        &realms.join("svc-realm.json"),
        r#"{"realm":"svc","clients":[{"clientId":"machine","secret":"s3cret","publicClient":false,
            "standardFlowEnabled":false,"serviceAccountsEnabled":true}]}"#,
    );
    write(
        &realms.join("svc-users-0.json"),
        r#"{"realm":"svc","users":[{"username":"ann"}]}"#,
    );
    write(
        &realms.join("svc-users-1.json"),
        r#"{"realm":"svc","users":[{"id":"7d3f0c1e-1111-4222-8333-944455556666",
            "username":"service-account-machine","serviceAccountClientId":"machine"}]}"#,
    );
    let out = run(&["import", realms.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", stderr(&out));

    let node = PforteProcess::spawn(&pforte_bin(), &[], &env);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body: Value = rt.block_on(async {
        http_client()
            .post(node.url("/realms/svc/protocol/openid-connect/token"))
            .basic_auth("machine", Some("s3cret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let claims = crate::code_flow::jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["sub"], "7d3f0c1e-1111-4222-8333-944455556666",
        "{claims}"
    );
}

#[test]
fn import_is_idempotent_and_updates_what_changed() {
    let dir = temp_path("idem");
    let db_url = format!("sqlite://{}", dir.join("p.db").display());
    let file = dir.join("realm.json");
    write(&file, EXAMPLE_REALM);
    let env = [("PFORTE_DATABASE_URL", db_url.as_str())];
    let export = || {
        let o = run(&["export", "--realm", "demo"], &env);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    assert!(
        run(&["import", file.to_str().unwrap()], &env)
            .status
            .success()
    );
    let first = export();
    assert!(
        run(&["import", file.to_str().unwrap()], &env)
            .status
            .success()
    );
    assert_eq!(first, export(), "the same file twice changes nothing");

    let changed = EXAMPLE_REALM.replace(
        "http://127.0.0.1:8082/callback",
        "http://127.0.0.1:8082/cb2",
    );
    write(&file, &changed);
    assert!(
        run(&["import", file.to_str().unwrap()], &env)
            .status
            .success()
    );
    let second = export();
    let demo_app = second["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clientId"] == "demo-app")
        .unwrap();
    assert_eq!(demo_app["redirectUris"][0], "http://127.0.0.1:8082/cb2");
    assert_eq!(first["users"], second["users"], "users untouched");
}

#[test]
fn keys_rotate_adds_a_new_active_key_and_keeps_the_old_published() {
    let dir = temp_path("rot");
    let db_url = format!("sqlite://{}", dir.join("p.db").display());
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let file = dir.join("realm.json");
    write(&file, EXAMPLE_REALM);
    let env = [
        ("PFORTE_DATABASE_URL", db_url.as_str()),
        ("PFORTE_DATA_DIR", data),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();

    let node = PforteProcess::spawn(&pforte_bin(), &["--import", file.to_str().unwrap()], &env);
    let before = rt.block_on(jwks(
        &node.url("/realms/demo/protocol/openid-connect/certs"),
    ));
    drop(node);
    let out = run(&["keys", "rotate", "--realm", "demo"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let node = PforteProcess::spawn(&pforte_bin(), &[], &env);
    let after = rt.block_on(jwks(
        &node.url("/realms/demo/protocol/openid-connect/certs"),
    ));
    let kids = |v: &Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let (before, after) = (kids(&before), kids(&after));
    assert_eq!(before.len(), 1);
    assert_eq!(after.len(), 2);
    assert_ne!(after[0], before[0], "the new key is active (listed first)");
    assert_eq!(after[1], before[0], "the retired key stays published");
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let dir = temp_path("term");
    let db_url = format!("sqlite://{}", dir.join("p.db").display());
    let node = PforteProcess::spawn(
        &pforte_bin(),
        &[],
        &[
            ("PFORTE_DATABASE_URL", &db_url),
            ("PFORTE_DATA_DIR", dir.to_str().unwrap()),
        ],
    );
    let status = node.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn two_nodes_on_one_postgres_publish_the_same_jwks() {
    let Some(pg) = postgres_url() else { return };
    let dir = temp_path("pg2");
    let file = dir.join("realm.json");
    // A realm of its own so reruns and other tests on the shared database don't interfere.
    let realm = format!("two-nodes-{}", std::process::id());
    write(&file, &format!(r#"{{"realm":"{realm}"}}"#));
    let key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    let env = [
        ("PFORTE_DATABASE_URL", pg.as_str()),
        ("PFORTE_MASTER_KEY", key),
    ];
    // Both start at once: the first-key race must still end with one key.
    let bin = pforte_bin();
    let f = file.to_str().unwrap().to_owned();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| PforteProcess::spawn(&bin, &["--import", &f], &env));
        let b = s.spawn(|| PforteProcess::spawn(&bin, &["--import", &f], &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let path = format!("/realms/{realm}/protocol/openid-connect/certs");
    let ja = rt.block_on(jwks(&a.url(&path)));
    let jb = rt.block_on(jwks(&b.url(&path)));
    assert_eq!(ja["keys"].as_array().unwrap().len(), 1);
    assert_eq!(ja, jb);
}

async fn jwks(url: &str) -> Value {
    let res = http_client().get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// `pforte dev`, the README's first command: the demo realm on this machine, its URLs
/// printed, and it refuses to put its published credentials anywhere else.
#[test]
fn dev_serves_the_demo_realm_on_this_machine_only() {
    let data = temp_path("dev");
    let data = data.to_str().unwrap();
    let node =
        PforteProcess::spawn_command(&pforte_bin(), "dev", &[], &[("PFORTE_DATA_DIR", data)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let discovery: Value = rt.block_on(async {
        let res = http_client()
            .get(node.url("/realms/demo/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    });
    assert_eq!(discovery["issuer"], node.url("/realms/demo"));
    assert!(node.terminate().success());

    for (env, complaint) in [
        (("PFORTE_LISTEN", "0.0.0.0:0"), "loopback"),
        (
            ("PFORTE_BASE_URL", "https://id.example.org"),
            "PFORTE_BASE_URL",
        ),
        (
            ("PFORTE_BASE_URL", "http://localhost.example.org"),
            "PFORTE_BASE_URL",
        ),
        // Refused before connecting (connecting would already migrate the schema).
        (
            ("PFORTE_DATABASE_URL", "postgres://127.0.0.1:1/x"),
            "SQLite",
        ),
    ] {
        let out = run(&["dev"], &[env, ("PFORTE_DATA_DIR", data)]);
        assert!(!out.status.success(), "{env:?}");
        let err = stderr(&out);
        assert!(
            err.contains(complaint) && err.contains("fix:"),
            "{env:?}: {err}"
        );
    }
}

#[test]
fn dev_refuses_a_shared_database() {
    let Some(pg) = postgres_url() else { return };
    let out = run(
        &["dev"],
        &[
            ("PFORTE_DATABASE_URL", pg.as_str()),
            (
                "PFORTE_MASTER_KEY",
                "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
            ),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("SQLite") && err.contains("fix:"), "{err}");
}
