//! Control routes for app registration tests (under `/_sim/`, loopback only):
//!
//! | Route | Body | Effect |
//! |---|---|---|
//! | `GET`/`PUT registration` | [`crate::RegistrationSettings`] JSON (missing fields keep defaults) | replication delay, consent blocked by policy, whether members may register apps, device code lifetime and polling interval |
//! | `POST registration/replicate` | | replication catches up: apps and keys made so far are known to the token endpoint now |
//! | `GET device` | | device codes handed out: `user_code`, `client_id`, `scope`, `expires_in`, `state` |
//! | `POST device/approve` | `{"user_code": "…", "user": "upn or id"?, "roles": ["Global Administrator", …]?}` | the user signs in on the other device (defaults: the first user, no directory role) |
//! | `POST device/decline` | `{"user_code": "…"}` | the user declines |
//! | `GET applications` | | apps registered through Graph with their keys, service principal and granted roles |

use actix_web::HttpResponse;
use serde_json::{Value, json};

use crate::state::SimState;

/// Handles the routes above; `None` when `tail` is not one of them.
pub fn handle(state: &SimState, method: &str, tail: &str, body: &Value) -> Option<HttpResponse> {
    let bad = |msg: &str| HttpResponse::BadRequest().json(json!({"error": msg}));
    Some(match (method, tail) {
        ("GET", "registration") => HttpResponse::Ok().json(state.registry.settings.read().clone()),
        ("PUT" | "POST", "registration") => {
            match serde_json::from_value::<crate::apps::Settings>(body.clone()) {
                Ok(s) => {
                    *state.registry.settings.write() = s;
                    HttpResponse::NoContent().finish()
                }
                Err(e) => bad(&e.to_string()),
            }
        }
        ("POST", "registration/replicate") => {
            state.registry.replicate_now();
            HttpResponse::NoContent().finish()
        }
        ("GET", "device") => HttpResponse::Ok().json(crate::device::list(state)),
        ("POST", "device/approve") => {
            let Some(code) = body["user_code"].as_str() else {
                return Some(bad("user_code is required"));
            };
            let roles: Vec<String> = body["roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            match crate::device::approve(state, code, body["user"].as_str(), &roles) {
                Ok(v) => HttpResponse::Ok().json(v),
                Err(e) => bad(&e),
            }
        }
        ("POST", "device/decline") => {
            let Some(code) = body["user_code"].as_str() else {
                return Some(bad("user_code is required"));
            };
            match crate::device::decline(state, code) {
                Ok(()) => HttpResponse::NoContent().finish(),
                Err(e) => bad(&e),
            }
        }
        ("GET", "applications") => HttpResponse::Ok().json(state.registry.dump()),
        _ => return None,
    })
}
