//! Shared helpers of the integration tests: start a simulator, authenticate like a real
//! client (certificate from the `.pfx`, client assertion, token endpoint), call Graph.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use graph_sim::{Profile, RunningSim, SimOptions, Simulator};
use openssl::pkcs12::Pkcs12;
use serde_json::Value;

pub struct Harness {
    pub sim: RunningSim,
    pub http: reqwest::Client,
    pub token: String,
    pub graph: String,
    pub control: String,
    pub _dir: tempfile::TempDir,
}

pub async fn start(profile: Profile) -> Harness {
    start_with(SimOptions::new(profile)).await
}

pub async fn start_with(mut options: SimOptions) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    options.state_dir = Some(dir.path().to_path_buf());
    let sim = Simulator::start(options).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = fetch_token(&http, sim.ready(), true).await;
    let graph = format!("{}/v1.0", sim.ready().graph_endpoint);
    let control = sim.ready().control_endpoint.clone();
    Harness {
        sim,
        http,
        token,
        graph,
        control,
        _dir: dir,
    }
}

pub fn load_pfx(
    path: &str,
    password: &str,
) -> (
    openssl::pkey::PKey<openssl::pkey::Private>,
    openssl::x509::X509,
) {
    let der = std::fs::read(path).unwrap();
    let parsed = Pkcs12::from_der(&der).unwrap().parse2(password).unwrap();
    (parsed.pkey.unwrap(), parsed.cert.unwrap())
}

pub fn token_url(ready: &graph_sim::Ready) -> String {
    format!(
        "{}/{}/oauth2/v2.0/token",
        ready.login_endpoint, ready.tenant_id
    )
}

pub async fn token_request(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    assertion: &str,
) -> (u16, Value) {
    let form = [
        ("client_id", client_id),
        ("scope", "https://graph.microsoft.com/.default"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("grant_type", "client_credentials"),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let r = http
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

pub async fn fetch_token(http: &reqwest::Client, ready: &graph_sim::Ready, sha256: bool) -> String {
    let (key, cert) = load_pfx(&ready.cert_pfx, &ready.cert_password);
    let url = token_url(ready);
    let assertion =
        graph_sim::client_assertion(&key, &cert, &ready.app_id, &url, sha256, 600).unwrap();
    let (status, body) = token_request(http, &url, &ready.app_id, &assertion).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.graph)
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_with(path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut r = self.http.get(self.url(path)).bearer_auth(&self.token);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}/{path}", self.control));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn mutate(&self, op: Value) -> Value {
        let (s, v) = self
            .control(reqwest::Method::POST, "mutate", Some(op))
            .await;
        assert_eq!(s, 200, "{v}");
        v["results"][0].clone()
    }

    /// Follows nextLinks until a deltaLink; returns (items, deltaLink, pages).
    pub async fn delta_round(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> (Vec<Value>, String, usize) {
        let mut items = Vec::new();
        let mut next = url.to_string();
        let mut pages = 0;
        loop {
            let (s, v) = self.get_with(&next, headers).await;
            assert_eq!(s, 200, "{v}");
            pages += 1;
            items.extend(v["value"].as_array().unwrap().iter().cloned());
            if let Some(n) = v["@odata.nextLink"].as_str() {
                next = n.to_string();
            } else {
                return (
                    items,
                    v["@odata.deltaLink"]
                        .as_str()
                        .expect("deltaLink")
                        .to_string(),
                    pages,
                );
            }
        }
    }

    pub async fn first_user(&self) -> String {
        let (_, v) = self.get("/users").await;
        v["value"][0]["userPrincipalName"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Checks that every key path of `example` exists in `actual` with the same JSON type
/// (arrays: the first element of each is compared). Returns the mismatches.
pub fn shape_mismatches(example: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    None => out.push(format!("{path}/{k}: missing")),
                    Some(av) => shape_mismatches(ev, av, &format!("{path}/{k}"), out),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let (Some(ef), Some(af)) = (e.first(), a.first()) {
                shape_mismatches(ef, af, &format!("{path}[0]"), out);
            }
        }
        (Value::Null, _) | (_, Value::Null) => {}
        (e, a) => {
            let same = matches!(
                (e, a),
                (Value::String(_), Value::String(_))
                    | (Value::Number(_), Value::Number(_))
                    | (Value::Bool(_), Value::Bool(_))
            );
            if !same {
                out.push(format!("{path}: example {e} vs {a}"));
            }
        }
    }
}

pub fn example(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/reference/graph-examples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}
