//! Which DSM users may open which Microsoft 365 accounts in the portal (admin). Without an
//! explicit mapping a user opens the account whose user principal name is their e-mail address;
//! an administrator can set the list explicitly, or clear it to go back to automatic.

use std::collections::BTreeMap;
use std::path::Path;

use actix_web::{HttpResponse, web};
use backhome_store::{ObjectKind, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use super::access::MappedAccount;
use super::browse::{blocking, object_segment, store_error};
use super::{Admin, ApiError, AppState};
use crate::config::AuthBackend;

/// DSM's local users: uid 1024 and above in this file.
const PASSWD: &str = "/etc/passwd";
/// The first uid of a DSM user account (lower ones are system accounts).
const FIRST_USER_UID: u32 = 1024;

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/mapping", web::get().to(list)).service(
        web::resource("/mapping/{user}")
            .route(web::put().to(set))
            .route(web::delete().to(clear)),
    );
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(list, set, clear),
    components(schemas(UserMapping, SetMapping, MappedAccount))
)]
pub struct Doc;

/// A DSM user and the accounts they may open.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserMapping {
    /// The DSM user name.
    pub user: String,
    /// Their e-mail address when known (what the automatic mapping matches).
    pub email: Option<String>,
    /// The accounts they may open.
    pub accounts: Vec<MappedAccount>,
    /// Whether the mapping is automatic (by e-mail address) rather than set by an administrator.
    pub automatic: bool,
}

/// An explicit mapping.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMapping {
    /// The accounts the user may open.
    pub accounts: Vec<MappedAccount>,
}

/// DSM's local user names from a passwd file: uid 1024 and above (system accounts are below).
///
/// # Errors
/// The file cannot be read.
pub fn dsm_users(passwd: &Path) -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string(passwd)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let uid: u32 = f.nth(1)?.trim().parse().ok()?;
            (uid >= FIRST_USER_UID && !name.is_empty() && !name.starts_with('#'))
                .then(|| name.to_owned())
        })
        .collect())
}

/// Known users with their e-mail addresses when known.
fn known_users(state: &AppState) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    match state.config.auth.backend {
        AuthBackend::Static => {
            for u in &state.config.auth.users {
                out.insert(u.name.to_lowercase(), u.email.clone());
            }
        }
        AuthBackend::Dsm => match dsm_users(Path::new(PASSWD)) {
            Ok(users) => {
                for u in users {
                    out.insert(u.to_lowercase(), None);
                }
            }
            Err(e) => tracing::warn!(error = %e, file = PASSWD, "cannot list DSM users"),
        },
    }
    for u in state.mapping.all().into_keys() {
        out.entry(u).or_insert(None);
    }
    out
}

/// User accounts per portal task: `(task, upn)`.
fn portal_accounts(state: &AppState) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for spec in state.tasks()?.list()? {
        if !spec.portal {
            continue;
        }
        let repo = match state.repos.get(&spec) {
            Ok(r) => r,
            Err(StoreError::NotARepository { .. }) => continue,
            Err(e) => return Err(store_error(e)),
        };
        for o in repo.objects().map_err(store_error)? {
            if o.info.kind == ObjectKind::User {
                out.push((spec.name.clone(), object_segment(&o)));
            }
        }
    }
    Ok(out)
}

fn mapping_of(
    state: &AppState,
    user: &str,
    email: Option<String>,
    accounts: &[(String, String)],
) -> UserMapping {
    match state.mapping.explicit(user) {
        Some(a) => UserMapping {
            user: user.to_owned(),
            email,
            accounts: a,
            automatic: false,
        },
        None => UserMapping {
            user: user.to_owned(),
            accounts: accounts
                .iter()
                .filter(|(_, upn)| {
                    email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(upn))
                })
                .map(|(task, upn)| MappedAccount {
                    task: task.clone(),
                    account: upn.clone(),
                })
                .collect(),
            email,
            automatic: true,
        },
    }
}

/// Known DSM users and explicit mappings, with the accounts each may open.
#[utoipa::path(get, path = "/api/v1/mapping", tag = "mapping",
    responses((status = 200, body = Vec<UserMapping>), (status = 403, description = "administrators only")))]
async fn list(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let out = blocking(move || {
        let accounts = portal_accounts(&state)?;
        Ok(known_users(&state)
            .into_iter()
            .map(|(user, email)| mapping_of(&state, &user, email, &accounts))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Sets the accounts `user` may open (replacing the automatic mapping).
#[utoipa::path(put, path = "/api/v1/mapping/{user}", tag = "mapping",
    params(("user" = String, Path, description = "the DSM user")), request_body = SetMapping,
    responses((status = 200, body = UserMapping), (status = 400, description = "unknown task"),
        (status = 403, description = "administrators only")))]
async fn set(
    state: web::Data<AppState>,
    _admin: Admin,
    user: web::Path<String>,
    body: web::Json<SetMapping>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let out = blocking(move || {
        let user = user.trim().to_lowercase();
        if user.is_empty() {
            return Err(ApiError::BadRequest("the user name is empty".into()));
        }
        let tasks: Vec<String> = state.tasks()?.list()?.into_iter().map(|t| t.name).collect();
        let mut accounts = Vec::new();
        for a in body.accounts {
            if !tasks.contains(&a.task) {
                return Err(ApiError::BadRequest(format!("no task named '{}'", a.task)));
            }
            if a.account.trim().is_empty() {
                return Err(ApiError::BadRequest("an account is empty".into()));
            }
            let a = MappedAccount {
                task: a.task,
                account: a.account.trim().to_owned(),
            };
            if !accounts.contains(&a) {
                accounts.push(a);
            }
        }
        state.mapping.set(&user, Some(accounts))?;
        tracing::info!(%user, "portal mapping set");
        let email = known_users(&state).remove(&user).flatten();
        Ok(mapping_of(&state, &user, email, &[]))
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Clears the explicit mapping of `user`: back to automatic (e-mail address = UPN).
#[utoipa::path(delete, path = "/api/v1/mapping/{user}", tag = "mapping",
    params(("user" = String, Path, description = "the DSM user")),
    responses((status = 204, description = "back to automatic"), (status = 403, description = "administrators only")))]
async fn clear(
    state: web::Data<AppState>,
    _admin: Admin,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    blocking(move || {
        state.mapping.set(user.trim(), None)?;
        tracing::info!(user = %user.trim(), "portal mapping cleared");
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsm_users_are_uid_1024_and_above() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("passwd");
        std::fs::write(
            &p,
            "root:x:0:0::/root:/bin/ash\nadmin:x:1024:100:System default user:/var/services/homes/admin:/bin/sh\n\
             guest:x:1025:100:Guest:/nonexist:/sbin/nologin\nbackhome:x:1023:1023::/var/packages:/sbin/nologin\n\
             Alice:x:1026:100:Alice:/var/services/homes/alice:/sbin/nologin\nbroken line\n",
        )
        .unwrap();
        assert_eq!(dsm_users(&p).unwrap(), ["admin", "guest", "Alice"]);
        assert!(dsm_users(&d.path().join("missing")).is_err());
    }
}
