//! The demo's webhook receiver: takes the hub's Alertmanager-style webhook
//! notifications and prints one line per alert, so a person running the
//! demo sees alerts arrive without running an Alertmanager.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// A router answering `POST /` with 200 and printing each alert.
pub fn router() -> Router {
    Router::new().route("/", post(receive))
}

async fn receive(Json(body): Json<Value>) -> &'static str {
    for line in describe(&body) {
        println!("{line}");
    }
    "ok"
}

/// One line per alert of a webhook notification.
pub fn describe(body: &Value) -> Vec<String> {
    let empty = Vec::new();
    body["alerts"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|a| {
            let label = |n: &str| a["labels"][n].as_str().unwrap_or("-").to_string();
            format!(
                "[webhook] {:<8} {:<18} cluster={} name={} {}",
                a["status"].as_str().unwrap_or("?"),
                label("alertname"),
                label("cluster"),
                label("name"),
                a["annotations"]["summary"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::describe;

    #[test]
    fn one_line_per_alert() {
        let body = json!({"alerts": [
            {"status": "firing", "labels": {"alertname": "VMHighMemory", "cluster": "prod-west", "name": "vm-0007"},
             "annotations": {"summary": "VM memory usage above 90%"}},
            {"status": "resolved", "labels": {"alertname": "ClusterDown"}, "annotations": {}}
        ]});
        let lines = describe(&body);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("firing") && lines[0].contains("cluster=prod-west"));
        assert!(lines[1].contains("resolved") && lines[1].contains("name=-"));
        assert!(describe(&json!({})).is_empty());
    }
}
