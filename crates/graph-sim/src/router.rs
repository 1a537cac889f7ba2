//! Routes Graph requests (outer and `$batch` inner ones) to the domain modules, with
//! counters, fault injection, throttling and permission checks around them.

use std::sync::atomic::Ordering;

use crate::auth::Area;
use crate::faults::FaultKind;
use crate::http::{Body, GraphRequest, GraphResponse, Method, NetFault, decode_segment};
use crate::state::SimState;
use crate::throttle::Scope;

/// Decoded path segments of a request (the `:/path:` syntax of drives is kept in one segment).
#[must_use]
pub fn segments(path: &str) -> Vec<String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Vec::new();
    }
    // `items/{id}:/a/b.txt:/content` → [..., "items", "{id}", ":a/b.txt", "content"].
    let mut out = Vec::new();
    let mut rest = trimmed;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(":/") {
            let (inner, next) = match after.find(":/") {
                Some(p) => (&after[..p], &after[p + 2..]),
                None => (after.strip_suffix(':').unwrap_or(after), ""),
            };
            out.push(format!(":{}", decode_segment(inner)));
            rest = next;
            continue;
        }
        let slash = rest.find('/').unwrap_or(rest.len());
        let colon = rest.find(":/").unwrap_or(rest.len());
        let end = slash.min(colon);
        let seg = &rest[..end];
        out.push(decode_segment(seg.strip_suffix(':').unwrap_or(seg)));
        rest = &rest[end..];
        if rest.starts_with('/') {
            rest = &rest[1..];
        }
    }
    out
}

/// What a request is, for counters, throttling and permissions.
pub struct Class {
    /// Counter name.
    pub kind: &'static str,
    /// Throttling scope.
    pub scope: Scope,
    /// Mailbox targeted.
    pub mailbox: Option<u32>,
    /// Permission area.
    pub area: Option<Area>,
}

fn classify(state: &SimState, req: &GraphRequest, segs: &[String]) -> Class {
    let write = req.method != Method::Get;
    let upload = if write { req.body.len() as u64 } else { 0 };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let user_sub = |u: &str| state.tenant.find_user(u);
    match s.as_slice() {
        ["users", u, area, ..]
            if ["mailfolders", "messages", "mailboxsettings"]
                .contains(&area.to_lowercase().as_str()) =>
        {
            let mb = user_sub(u);
            Class {
                kind: "mail",
                scope: mb.map_or(Scope::None, |m| Scope::Mailbox(m, upload)),
                mailbox: mb,
                area: Some(Area::Mail),
            }
        }
        ["users", u, area, ..]
            if ["calendars", "calendar", "calendarview", "events"]
                .contains(&area.to_lowercase().as_str()) =>
        {
            let mb = user_sub(u);
            Class {
                kind: "calendar",
                scope: mb.map_or(Scope::None, |m| Scope::Mailbox(m, upload)),
                mailbox: mb,
                area: Some(Area::Calendars),
            }
        }
        ["users", u, area, ..]
            if ["contactfolders", "contacts"].contains(&area.to_lowercase().as_str()) =>
        {
            let mb = user_sub(u);
            Class {
                kind: "contacts",
                scope: mb.map_or(Scope::None, |m| Scope::Mailbox(m, upload)),
                mailbox: mb,
                area: Some(Area::Contacts),
            }
        }
        ["users", _, "drive", ..]
        | ["drives", ..]
        | ["groups", _, "drive", ..]
        | ["sites", _, "drive", ..] => {
            let listing = s.last().is_some_and(|l| *l == "children" || *l == "delta")
                && req.param("token").is_none();
            let cost = if write || listing { 2 } else { 1 };
            Class {
                kind: "files",
                scope: Scope::Files(cost),
                mailbox: None,
                area: Some(Area::Files),
            }
        }
        ["sites", ..] => Class {
            kind: "sites",
            scope: Scope::Files(2),
            mailbox: None,
            area: Some(Area::Sites),
        },
        ["users", ..] => Class {
            kind: "directory",
            scope: Scope::None,
            mailbox: None,
            area: Some(Area::Users),
        },
        ["groups", g, area, ..]
            if ["conversations", "threads"].contains(&area.to_lowercase().as_str()) =>
        {
            let mb = crate::conversations::mailbox(state, g);
            let posts = s.iter().any(|x| x.eq_ignore_ascii_case("posts"));
            Class {
                kind: if posts {
                    "conversation_posts"
                } else {
                    "conversations"
                },
                scope: mb.map_or(Scope::None, |m| Scope::Mailbox(m, upload)),
                mailbox: mb,
                area: Some(Area::Groups),
            }
        }
        ["groups", g, area, ..]
            if ["calendar", "events", "calendarview"].contains(&area.to_lowercase().as_str()) =>
        {
            let mb = state
                .tenant
                .find_group(g)
                .map(|i| crate::tenant::GROUP_MAILBOX_BASE + i);
            Class {
                kind: "calendar",
                scope: mb.map_or(Scope::None, |m| Scope::Mailbox(m, upload)),
                mailbox: mb,
                area: Some(Area::Calendars),
            }
        }
        ["groups", _, "team", ..] | ["teams", ..] => {
            let area = if s.contains(&"messages") || s.contains(&"replies") {
                if write {
                    Area::Migrate
                } else {
                    Area::ChannelMessages
                }
            } else if write {
                Area::Migrate
            } else {
                Area::Teams
            };
            Class {
                kind: "teams",
                scope: Scope::None,
                mailbox: None,
                area: Some(area),
            }
        }
        ["groups", ..] => Class {
            kind: "directory",
            scope: Scope::None,
            mailbox: None,
            area: Some(Area::Groups),
        },
        _ => Class {
            kind: "other",
            scope: Scope::None,
            mailbox: None,
            area: None,
        },
    }
}

fn denied(area: Area) -> GraphResponse {
    match area {
        Area::Users | Area::Groups => GraphResponse::error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ),
        Area::Mail | Area::Calendars | Area::Contacts => GraphResponse::error(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ),
        Area::Sites | Area::Files => GraphResponse::error(
            403,
            "accessDenied",
            "Either scp or roles claim need to be present in the token.",
        ),
        Area::Teams | Area::ChannelMessages | Area::Migrate => GraphResponse::error(
            403,
            "Forbidden",
            "Missing role permissions on the request. API requires one of the required application permissions.",
        ),
    }
}

/// The `Retry-After` value as Graph prints it (integer when whole, else fractional).
#[must_use]
pub fn retry_after_text(secs: f64) -> String {
    if (secs - secs.round()).abs() < 1e-9 {
        format!("{}", secs.round() as i64)
    } else {
        format!("{secs:.3}")
    }
}

/// A 429 in Graph's shape.
#[must_use]
pub fn too_many(retry: f64) -> GraphResponse {
    let mut resp = GraphResponse::json(
        429,
        serde_json::json!({"error": {
        "code": "TooManyRequests",
        "innerError": {"code": "429", "date": crate::time_fmt::iso(crate::time_fmt::now()).trim_end_matches('Z'), "message": "Please retry after",
            "request-id": uuid::Uuid::new_v4().to_string(), "status": "429"},
        "message": "Please retry again later."}}),
    );
    resp.headers
        .push(("Retry-After".into(), retry_after_text(retry)));
    resp
}

/// Handles one Graph request.
pub async fn handle(state: &SimState, req: GraphRequest) -> GraphResponse {
    let segs = segments(&req.path);
    let class = classify(state, &req, &segs);
    state.counters.request(class.kind, class.mailbox);
    let method = format!("{:?}", req.method).to_uppercase();
    let fault = state.faults.pick(&method, &req.path);
    if let Some(f) = &fault {
        state.counters.fault();
        let early = match f.kind {
            FaultKind::ServiceUnavailable => Some(GraphResponse::error(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
            )),
            FaultKind::GatewayTimeout => Some(GraphResponse::error(
                504,
                "gatewayTimeout",
                "The gateway did not receive a timely response.",
            )),
            FaultKind::TooManyRequests => Some(too_many(f.retry_after.unwrap_or(1.0))),
            FaultKind::ItemNotFound => Some(GraphResponse::item_not_found()),
            FaultKind::ResyncRequired => {
                let fresh = format!("{}{}", state.graph(), req.path);
                Some(
                    GraphResponse::error(
                        410,
                        "resyncRequired",
                        "The delta token is no longer valid; resync with a new delta query.",
                    )
                    .with_header("Location", fresh),
                )
            }
            _ => None,
        };
        if let Some(mut r) = early {
            if let (Some(ra), true) = (
                f.retry_after,
                matches!(
                    f.kind,
                    FaultKind::ServiceUnavailable | FaultKind::GatewayTimeout
                ),
            ) {
                r.headers.push(("Retry-After".into(), retry_after_text(ra)));
            }
            if r.status == 429 {
                state.counters.throttled();
            }
            return r;
        }
    }
    if let Some(area) = class.area {
        if !req.claims.allows(area, req.method != Method::Get) {
            return denied(area);
        }
    }
    let slot = match state
        .throttle
        .admit(req.claims.app_id, class.scope, &state.counters)
    {
        Ok(s) => s,
        Err(retry) => {
            state.counters.throttled();
            let mut resp = too_many(retry);
            if let Scope::Files(_) = class.scope {
                resp.headers
                    .push(("RateLimit-Remaining".into(), "0".into()));
                resp.headers
                    .push(("RateLimit-Reset".into(), format!("{}", retry.ceil() as u64)));
            }
            return resp;
        }
    };
    let latency = state.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let mut resp = dispatch(state, &req, &segs);
    if let Some((limit, remaining, reset)) = slot.rate_limit {
        resp.headers
            .push(("RateLimit-Limit".into(), limit.to_string()));
        resp.headers
            .push(("RateLimit-Remaining".into(), remaining.to_string()));
        resp.headers
            .push(("RateLimit-Reset".into(), reset.to_string()));
    }
    drop(slot);
    if let Some(f) = fault {
        match f.kind {
            FaultKind::ConnectionReset => resp.fault = Some(NetFault::Reset),
            FaultKind::TruncatedBody => resp.fault = Some(NetFault::Truncate),
            FaultKind::Stall => resp.fault = Some(NetFault::Stall(f.stall_ms.unwrap_or(30_000))),
            // A successful JSON answer arrives broken; MIME, file bytes and error answers are
            // left alone (Graph never answers `$value` with broken JSON).
            FaultKind::MalformedJson => {
                if let (200..=299, Body::Json(v)) = (resp.status, &resp.body) {
                    let text = v.to_string();
                    let cut = text.len() / 2;
                    let broken = format!("{}\u{0}<html>", text.get(..cut).unwrap_or("{"));
                    resp.body = Body::Raw(bytes::Bytes::from(broken), "application/json".into());
                }
            }
            _ => {}
        }
    }
    resp
}

fn dispatch(state: &SimState, req: &GraphRequest, segs: &[String]) -> GraphResponse {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if let Some(head) = s.first().map(|h| h.to_ascii_lowercase()) {
        if head == "me" || head.starts_with("applications") || head.starts_with("serviceprincipals")
        {
            return crate::apps::route(state, req, &s);
        }
    }
    match s.as_slice() {
        ["users" | "groups" | "sites", ..] | ["organization"] => {
            if let Some(r) = crate::directory::route(state, req, &s) {
                return r;
            }
        }
        _ => {}
    }
    match s.as_slice() {
        ["users", u, rest @ ..] if !rest.is_empty() => {
            let Some(idx) = state.tenant.find_user(u) else {
                return GraphResponse::resource_not_found(u);
            };
            let head = rest[0].to_lowercase();
            match head.as_str() {
                "mailfolders" | "messages" | "mailboxsettings" => {
                    crate::mail::route(state, req, idx, rest)
                }
                "calendars" | "calendar" | "calendarview" | "events" | "contactfolders"
                | "contacts" => crate::calendar::route(state, req, idx, rest),
                "drive" => crate::files::user_drive(state, req, idx, &rest[1..]),
                _ => GraphResponse::bad_url(rest[0]),
            }
        }
        ["drives", d, rest @ ..] => match state
            .tenant
            .codec
            .decode_drive(d)
            .filter(|i| state.tenant.drive(*i).is_some())
        {
            Some(idx) => crate::files::route(state, req, idx, rest),
            None => GraphResponse::item_not_found(),
        },
        ["groups", g, "team", rest @ ..] => crate::teams::group_team(state, req, g, rest),
        ["groups", g, rest @ ..]
            if !rest.is_empty()
                && ["conversations", "threads"].contains(&rest[0].to_lowercase().as_str()) =>
        {
            crate::conversations::route(state, req, g, rest)
        }
        ["groups", g, rest @ ..]
            if !rest.is_empty()
                && ["calendar", "events", "calendarview"]
                    .contains(&rest[0].to_lowercase().as_str()) =>
        {
            crate::calendar::group_route(state, req, g, rest)
        }
        ["groups" | "sites", owner, "drive", rest @ ..] => {
            let drive = {
                let dir = state.tenant.dir.read();
                let site = if s[0] == "groups" {
                    dir.groups
                        .iter()
                        .find(|x| !x.deleted && x.id.to_string() == owner.to_lowercase())
                        .and_then(|x| x.site)
                } else {
                    dir.sites
                        .iter()
                        .find(|x| !x.deleted && x.id.eq_ignore_ascii_case(owner))
                        .map(|x| x.idx)
                };
                site.and_then(|i| dir.sites.get(i as usize))
                    .and_then(|x| x.drives.first().copied())
            };
            match drive {
                Some(d) => crate::files::route(state, req, d, rest),
                None => GraphResponse::item_not_found(),
            }
        }
        ["teams", rest @ ..] => crate::teams::route(state, req, rest),
        _ => GraphResponse::bad_url(segs.last().map_or("", String::as_str)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_paths() {
        assert_eq!(
            segments("/drives/b!x/items/01AB:/a%20b/c.txt:/content"),
            vec!["drives", "b!x", "items", "01AB", ":a b/c.txt", "content"]
        );
        assert_eq!(
            segments("/drives/b!x/root:/new.txt:/createUploadSession"),
            vec!["drives", "b!x", "root", ":new.txt", "createUploadSession"]
        );
        assert_eq!(
            segments("/users/a@b.com/mailFolders"),
            vec!["users", "a@b.com", "mailFolders"]
        );
    }
}
