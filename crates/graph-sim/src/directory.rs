//! Directory: users, groups, sites and their deltas.

use serde_json::{Value, json};

use crate::http::{GraphRequest, GraphResponse, Method};
use crate::odata::{LiveEntry, apply_select, filter_items, page, run_delta};
use crate::state::SimState;
use crate::tenant::{Directory, Group, Site, User, UserKind};
use crate::time_fmt::iso;

const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Full JSON of a user (callers trim it to the default properties unless `$select` is given).
#[must_use]
pub fn user_json(u: &User) -> Value {
    let licensed = u.kind == UserKind::Member;
    json!({
        "businessPhones": if licensed { json!([format!("+1 425 555 {:04}", 100 + u.idx)]) } else { json!([]) },
        "displayName": u.display_name,
        "givenName": u.given_name,
        "jobTitle": u.job_title,
        "mail": if u.kind == UserKind::NoMailbox { Value::Null } else { Value::String(u.upn.clone()) },
        "mobilePhone": Value::Null,
        "officeLocation": u.office,
        "preferredLanguage": if licensed { json!("en-US") } else { Value::Null },
        "surname": u.surname,
        "userPrincipalName": u.upn,
        "id": u.id.to_string(),
        "accountEnabled": u.kind != UserKind::Shared,
        "userType": "Member",
        "createdDateTime": iso(crate::tenant::BASE_TIME - 800 * 86_400),
        "assignedLicenses": if licensed { json!([{"disabledPlans": [], "skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965"}]) } else { json!([]) },
        "mailNickname": u.upn.split('@').next().unwrap_or(""),
    })
}

fn trim_default(mut v: Value, req: &GraphRequest) -> Value {
    if req.param("select").is_none() {
        if let Value::Object(m) = &mut v {
            m.retain(|k, _| USER_DEFAULT.contains(&k.as_str()));
        }
    }
    v
}

/// JSON of a group.
#[must_use]
pub fn group_json(g: &Group, domain: &str) -> Value {
    let mail = format!("{}@{domain}", g.nickname);
    json!({
        "id": g.id.to_string(), "deletedDateTime": null, "classification": null,
        "createdDateTime": iso(g.created), "creationOptions": if g.team.is_some() { json!(["Team"]) } else { json!([]) },
        "description": g.description, "displayName": g.display_name, "expirationDateTime": null,
        "groupTypes": ["Unified"], "isAssignableToRole": null, "mail": mail, "mailEnabled": true,
        "mailNickname": g.nickname, "membershipRule": null, "membershipRuleProcessingState": null,
        "onPremisesLastSyncDateTime": null, "onPremisesSecurityIdentifier": null, "onPremisesSyncEnabled": null,
        "preferredDataLocation": null, "preferredLanguage": null,
        "proxyAddresses": [format!("SMTP:{mail}")], "renewedDateTime": iso(g.created),
        "resourceBehaviorOptions": [], "resourceProvisioningOptions": if g.team.is_some() { json!(["Team"]) } else { json!([]) },
        "securityEnabled": false, "securityIdentifier": format!("S-1-12-1-{}", g.id.as_u128() % 4_000_000_000),
        "theme": null, "visibility": "Public", "onPremisesProvisioningErrors": [],
    })
}

/// JSON of a site.
#[must_use]
pub fn site_json(s: &Site) -> Value {
    let host = s.id.split(',').next().unwrap_or("");
    json!({
        "id": s.id, "name": s.name, "displayName": s.display_name,
        "createdDateTime": iso(s.created), "lastModifiedDateTime": iso(s.created + 86_400),
        "description": format!("{} site", s.display_name),
        "webUrl": format!("https://{host}/sites/{}", s.name),
        "siteCollection": {"hostName": host, "dataLocationCode": "EUR"},
    })
}

fn users_list(dir: &Directory) -> Vec<Value> {
    dir.users
        .iter()
        .filter(|u| !u.deleted)
        .map(user_json)
        .collect()
}

/// Routes directory requests; `None` lets the caller try deeper routes.
pub fn route(state: &SimState, req: &GraphRequest, s: &[&str]) -> Option<GraphResponse> {
    let graph = state.graph();
    let t = &state.tenant;
    if req.method != Method::Get {
        return None;
    }
    Some(match s {
        ["users"] => {
            let items = {
                let dir = t.dir.read();
                users_list(&dir)
            };
            match filter_items(req, items) {
                Ok(items) => {
                    let items = items.into_iter().map(|v| trim_default(v, req)).collect();
                    page(
                        req,
                        &format!("{graph}/users"),
                        &format!("{graph}/$metadata#users"),
                        items,
                        100,
                        999,
                    )
                }
                Err(e) => e,
            }
        }
        ["users", "delta"] => users_delta(state, req),
        ["users", u] => {
            let dir = t.dir.read();
            let key = u.to_lowercase();
            match dir
                .users
                .iter()
                .find(|x| !x.deleted && (x.id.to_string() == key || x.upn.to_lowercase() == key))
            {
                Some(x) => {
                    let mut v = trim_default(user_json(x), req);
                    apply_select(&mut v, req.param("select"));
                    if let Value::Object(m) = &mut v {
                        m.insert(
                            "@odata.context".into(),
                            json!(format!("{graph}/$metadata#users/$entity")),
                        );
                    }
                    GraphResponse::ok(v)
                }
                None => GraphResponse::resource_not_found(u),
            }
        }
        ["groups"] => {
            let items: Vec<Value> = {
                let dir = t.dir.read();
                dir.groups
                    .iter()
                    .filter(|g| !g.deleted)
                    .map(|g| group_json(g, &t.domain))
                    .collect()
            };
            match filter_items(req, items) {
                Ok(items) => page(
                    req,
                    &format!("{graph}/groups"),
                    &format!("{graph}/$metadata#groups"),
                    items,
                    100,
                    999,
                ),
                Err(e) => e,
            }
        }
        ["groups", "delta"] => groups_delta(state, req),
        ["groups", g] => {
            let dir = t.dir.read();
            match dir
                .groups
                .iter()
                .find(|x| !x.deleted && x.id.to_string() == g.to_lowercase())
            {
                Some(x) => {
                    let mut v = group_json(x, &t.domain);
                    apply_select(&mut v, req.param("select"));
                    GraphResponse::ok(v)
                }
                None => GraphResponse::resource_not_found(g),
            }
        }
        ["groups", g, "drive"] => {
            let drive = {
                let dir = t.dir.read();
                dir.groups
                    .iter()
                    .find(|x| !x.deleted && x.id.to_string() == g.to_lowercase())
                    .and_then(|x| x.site)
                    .and_then(|s| dir.sites.get(s as usize))
                    .and_then(|s| s.drives.first().copied())
            };
            match drive {
                Some(d) => crate::files::drive_response(state, d),
                None => GraphResponse::resource_not_found(g),
            }
        }
        ["groups", g, "sites", "root"] => {
            let dir = t.dir.read();
            match dir
                .groups
                .iter()
                .find(|x| !x.deleted && x.id.to_string() == g.to_lowercase())
                .and_then(|x| x.site)
                .and_then(|s| dir.sites.get(s as usize))
            {
                Some(site) => GraphResponse::ok(site_json(site)),
                None => GraphResponse::resource_not_found(g),
            }
        }
        ["sites"] | ["sites", "getAllSites"] => {
            let search = req.param("search").map(str::to_lowercase);
            let items: Vec<Value> = {
                let dir = t.dir.read();
                dir.sites
                    .iter()
                    .filter(|x| !x.deleted)
                    .filter(|x| {
                        search.as_ref().is_none_or(|q| {
                            q == "*"
                                || q.is_empty()
                                || x.display_name.to_lowercase().contains(q)
                                || x.name.to_lowercase().contains(q)
                        })
                    })
                    .map(site_json)
                    .collect()
            };
            let url = if s.len() == 2 {
                format!("{graph}/sites/getAllSites")
            } else {
                format!("{graph}/sites")
            };
            page(
                req,
                &url,
                &format!("{graph}/$metadata#sites"),
                items,
                200,
                999,
            )
        }
        ["sites", id] => match find_site(&t.dir.read(), id) {
            Some(v) => GraphResponse::ok(v),
            None => GraphResponse::item_not_found(),
        },
        ["sites", id, "drives"] => {
            let drives = {
                let dir = t.dir.read();
                dir.sites
                    .iter()
                    .find(|x| !x.deleted && x.id.eq_ignore_ascii_case(id))
                    .map(|x| x.drives.clone())
            };
            match drives {
                Some(ds) => {
                    let items: Vec<Value> = ds
                        .iter()
                        .filter_map(|d| crate::files::drive_json(state, *d))
                        .collect();
                    page(
                        req,
                        &format!("{graph}/sites/{id}/drives"),
                        &format!("{graph}/$metadata#drives"),
                        items,
                        200,
                        999,
                    )
                }
                None => GraphResponse::item_not_found(),
            }
        }
        ["sites", id, "drive"] => {
            let drive = {
                let dir = t.dir.read();
                dir.sites
                    .iter()
                    .find(|x| !x.deleted && x.id.eq_ignore_ascii_case(id))
                    .and_then(|x| x.drives.first().copied())
            };
            match drive {
                Some(d) => crate::files::drive_response(state, d),
                None => GraphResponse::item_not_found(),
            }
        }
        ["organization"] => GraphResponse::ok(
            json!({"value": [{"id": t.id.to_string(), "displayName": "Contoso (simulated)",
            "verifiedDomains": [{"name": t.domain, "isDefault": true, "isInitial": true, "type": "Managed"}]}]}),
        ),
        _ => return None,
    })
}

fn find_site(dir: &Directory, id: &str) -> Option<Value> {
    dir.sites
        .iter()
        .find(|x| {
            !x.deleted
                && (x.id.eq_ignore_ascii_case(id)
                    || id.split(',').nth(1).is_some_and(|g| x.id.contains(g)))
        })
        .map(site_json)
}

fn users_delta(state: &SimState, req: &GraphRequest) -> GraphResponse {
    let graph = state.graph();
    let cursor = match crate::odata::delta_cursor(req, state.tenant.current_seq(), 100, 999) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let dir = state.tenant.dir.read();
    let live: Vec<LiveEntry<'_>> = dir
        .users
        .iter()
        .filter(|u| !u.deleted)
        .map(|u| {
            let v = trim_default(user_json(u), req);
            let f: Box<dyn Fn() -> Value> = Box::new(move || v.clone());
            (i64::from(u.idx), u.changed_seq, f)
        })
        .collect();
    let removed = dir.user_log.since(cursor.since).map(|it| {
        it.map(|r| {
            (
                i64::from(r.serial),
                json!({"id": r.id, "@removed": {"reason": "changed"}}),
            )
        })
        .collect()
    });
    run_delta(
        &format!("{graph}/users/delta"),
        &format!("{graph}/$metadata#users"),
        cursor,
        live,
        removed,
        "syncStateNotFound",
    )
}

fn groups_delta(state: &SimState, req: &GraphRequest) -> GraphResponse {
    let graph = state.graph();
    let cursor = match crate::odata::delta_cursor(req, state.tenant.current_seq(), 100, 999) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let dir = state.tenant.dir.read();
    let live = dir
        .groups
        .iter()
        .filter(|g| !g.deleted)
        .map(|g| {
            let mut v = group_json(g, &state.tenant.domain);
            let members: Vec<Value> = g
                .members
                .iter()
                .filter_map(|m| dir.users.get(*m as usize))
                .map(|u| json!({"@odata.type": "#microsoft.graph.user", "id": u.id.to_string()}))
                .collect();
            if let Value::Object(m) = &mut v {
                m.insert("members@delta".into(), Value::Array(members));
            }
            let f: Box<dyn Fn() -> Value> = Box::new(move || v.clone());
            (i64::from(g.idx), g.changed_seq, f)
        })
        .collect::<Vec<LiveEntry<'_>>>();
    let removed = dir.group_log.since(cursor.since).map(|it| {
        it.map(|r| {
            (
                i64::from(r.serial),
                json!({"id": r.id, "@removed": {"reason": "changed"}}),
            )
        })
        .collect()
    });
    run_delta(
        &format!("{graph}/groups/delta"),
        &format!("{graph}/$metadata#groups"),
        cursor,
        live,
        removed,
        "syncStateNotFound",
    )
}
