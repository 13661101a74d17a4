use super::*;
use crate::config::CollectorConfig;

/// The validation error of a config with one scrape job whose extra keys
/// are `keys` (YAML flow mapping entries).
fn job_error(keys: &str) -> String {
    let yaml = format!(
        "scrape_configs: [{{job_name: j, static_configs: [{{targets: ['a:1']}}], {keys}}}]"
    );
    let cfg = CollectorConfig::from_yaml_str(&yaml).expect("parses");
    match cfg.validate() {
        Ok(()) => panic!("{keys} should be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn refuses_more_than_one_auth_method() {
    let e = job_error("basic_auth: {username: u, password: p}, authorization: {credentials: t}");
    assert!(e.contains("scrape_configs[0].authorization"), "{e}");
    assert!(e.contains("basic_auth and authorization"), "{e}");
    let e = job_error("authorization: {credentials: t}, bearer_token: x");
    assert!(e.contains("authorization and bearer_token"), "{e}");
    let e = job_error("bearer_token: x, bearer_token_file: /f");
    assert!(e.contains("scrape_configs[0].bearer_token_file"), "{e}");
}

#[test]
fn refuses_two_sources_for_one_value() {
    for (keys, key) in [
        (
            "basic_auth: {username: u, password: p, password_file: /f}",
            "basic_auth.password_file",
        ),
        (
            "basic_auth: {username: u, username_file: /f}",
            "basic_auth.username_file",
        ),
        (
            "authorization: {credentials: t, credentials_file: /f}",
            "authorization.credentials_file",
        ),
        (
            "authorization: {type: basic, credentials: t}",
            "authorization.type",
        ),
        ("tls_config: {cert_file: /c}", "tls_config.cert_file"),
        ("tls_config: {key_file: /k}", "tls_config.key_file"),
        (
            "tls_config: {min_version: TLS13, max_version: TLS12}",
            "tls_config.min_version",
        ),
        ("no_proxy: localhost", "no_proxy"),
        (
            "proxy_url: 'http://p:3128', proxy_from_environment: true",
            "proxy_from_environment",
        ),
        ("proxy_url: 'ftp://p:21'", "proxy_url"),
    ] {
        let e = job_error(keys);
        assert!(
            e.contains(&format!("scrape_configs[0].{key}")),
            "{keys}: {e}"
        );
    }
}

#[test]
fn refuses_missing_and_bad_tls_files_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing-ca.pem");
    let e = job_error(&format!("tls_config: {{ca_file: '{}'}}", missing.display()));
    assert!(e.contains("scrape_configs[0].tls_config.ca_file"), "{e}");
    assert!(e.contains(&missing.display().to_string()), "{e}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let e = job_error(&format!("tls_config: {{ca_file: '{}'}}", garbage.display()));
    assert!(e.contains(&garbage.display().to_string()), "{e}");
    assert!(e.contains("no PEM certificate"), "{e}");

    let e = job_error(&format!(
        "tls_config: {{cert_file: '{0}', key_file: '{0}'}}",
        garbage.display()
    ));
    assert!(e.contains("tls_config.cert_file"), "{e}");

    // The same check guards remote_write endpoints, and Collector::new.
    let yaml = format!(
        "remote_write: [{{url: 'https://hub:9190/api/v1/write', tls_config: {{ca_file: '{}'}}}}]",
        missing.display()
    );
    let cfg = CollectorConfig::from_yaml_str(&yaml).expect("parses");
    let e = crate::Collector::new(cfg)
        .expect_err("missing ca_file")
        .to_string();
    assert!(e.contains("remote_write[0].tls_config.ca_file"), "{e}");
    assert!(e.contains("missing-ca.pem"), "{e}");
}

#[test]
fn relative_files_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("collector.yml");
    std::fs::write(
        &path,
        "scrape_configs: [{job_name: j, bearer_token_file: token, tls_config: {ca_file: /abs/ca.pem}}]\n",
    )
    .expect("write");
    let cfg = CollectorConfig::load(&path).expect("loads");
    let http = cfg.scrape_configs[0].http_client_config();
    assert_eq!(http.bearer_token_file, Some(dir.path().join("token")));
    assert_eq!(
        http.tls_config.ca_file,
        Some(std::path::PathBuf::from("/abs/ca.pem"))
    );
}

#[test]
fn defaults_follow_prometheus() {
    let cfg = CollectorConfig::from_yaml_str("scrape_configs: [{job_name: j}]").expect("parses");
    let http = cfg.scrape_configs[0].http_client_config();
    assert_eq!(http, HttpClientConfig::default());
    assert!(http.follow_redirects && http.enable_http2);
    let cfg = CollectorConfig::from_yaml_str(
        "scrape_configs: [{job_name: j, authorization: {credentials: s3cret}}]",
    )
    .expect("parses");
    let auth = cfg.scrape_configs[0].authorization.clone().expect("set");
    assert_eq!(auth.auth_type, "Bearer");
    assert!(
        !format!("{cfg:?}").contains("s3cret"),
        "secrets are not shown by Debug"
    );
}

#[tokio::test]
async fn unreadable_credentials_fail_the_request_before_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    let cfg = HttpClientConfig {
        bearer_token_file: Some(token.clone()),
        ..HttpClientConfig::default()
    };
    let client = HttpClient::new(&cfg).expect("client");
    // Port 9 (discard) on loopback: nothing is sent, the builder fails.
    let err = client
        .get("http://127.0.0.1:9/metrics")
        .send()
        .await
        .expect_err("no token file");
    assert!(err.is_builder(), "{err:?}");
    let chain = crate::remote_write::error_chain(&err);
    assert!(chain.contains("cannot read bearer_token_file"), "{chain}");
    assert!(chain.contains(&token.display().to_string()), "{chain}");

    std::fs::write(&token, "  t0k3n\n").expect("write token");
    let req = client
        .get("http://127.0.0.1:9/metrics")
        .build()
        .expect("builds once the file exists");
    assert_eq!(req.headers()["authorization"], "Bearer t0k3n");
    assert!(req.headers()["authorization"].is_sensitive());
}

#[test]
fn basic_auth_and_authorization_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "pass\n").expect("write");
    let yaml = format!(
        "scrape_configs:\n\
         - {{job_name: a, basic_auth: {{username: user, password_file: '{}'}}}}\n\
         - {{job_name: b, authorization: {{type: Token, credentials: abc}}}}\n\
         - {{job_name: c, bearer_token: xyz}}\n\
         - {{job_name: d}}\n",
        pass.display()
    );
    let cfg = CollectorConfig::from_yaml_str(&yaml).expect("parses");
    cfg.validate().expect("valid");
    let clients = scrape_clients(&cfg).expect("clients");
    let header = |job: &str| {
        clients[job]
            .post("http://127.0.0.1:9/")
            .build()
            .expect("request")
            .headers()
            .get("authorization")
            .map(|v| v.to_str().expect("ascii").to_string())
    };
    // base64("user:pass")
    assert_eq!(header("a").as_deref(), Some("Basic dXNlcjpwYXNz"));
    assert_eq!(header("b").as_deref(), Some("Token abc"));
    assert_eq!(header("c").as_deref(), Some("Bearer xyz"));
    assert_eq!(header("d"), None);
}
