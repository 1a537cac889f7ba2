//! Teams: teams, channels, channel messages and replies, their delta, and migration-mode
//! channel creation with message import and `completeMigration`.

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Value, json};

use crate::http::{GraphRequest, GraphResponse, Method};
use crate::odata::{LiveEntry, page};
use crate::rng::Rng;
use crate::state::SimState;
use crate::tenant::{ChangeLog, Channel, ChannelMessage, Team};
use crate::time_fmt::{iso, iso_ms, now_ms, parse_iso};

fn team_of(state: &SimState, key: &str) -> Option<(u32, uuid::Uuid, String, Arc<RwLock<Team>>)> {
    let dir = state.tenant.dir.read();
    let g = dir
        .groups
        .iter()
        .find(|g| !g.deleted && g.id.to_string() == key.to_lowercase())?;
    Some((g.idx, g.id, g.display_name.clone(), g.team.clone()?))
}

fn team_json(state: &SimState, id: uuid::Uuid, name: &str) -> Value {
    json!({"id": id.to_string(), "createdDateTime": null, "displayName": name, "description": format!("Team for {name}"),
        "internalId": format!("19:{}@thread.tacv2", id.simple()), "classification": null, "specialization": "none",
        "visibility": "public", "webUrl": format!("https://teams.microsoft.com/l/team/19%3a{}%40thread.tacv2/conversations?groupId={id}&tenantId={}", id.simple(), state.tenant.id),
        "isArchived": false, "isMembershipLimitedToOwners": false, "memberSettings": {"allowCreateUpdateChannels": true}, "guestSettings": {"allowCreateUpdateChannels": false},
        "messagingSettings": {"allowUserEditMessages": true, "allowUserDeleteMessages": true}, "funSettings": {"allowGiphy": true, "giphyContentRating": "moderate"}})
}

fn channel_json(state: &SimState, team: uuid::Uuid, c: &Channel) -> Value {
    json!({"id": c.id, "createdDateTime": iso(c.created), "displayName": c.name, "description": c.description, "isFavoriteByDefault": null,
        "email": "", "tenantId": state.tenant.id.to_string(),
        "webUrl": format!("https://teams.microsoft.com/l/channel/{}/{}?groupId={team}&tenantId={}", crate::http::encode_segment(&c.id), crate::http::encode_segment(&c.name), state.tenant.id),
        "membershipType": "standard"})
}

fn author(state: &SimState, seed: u64) -> (String, String) {
    let dir = state.tenant.dir.read();
    let members: Vec<_> = dir
        .users
        .iter()
        .filter(|u| !u.deleted && u.kind == crate::tenant::UserKind::Member)
        .collect();
    if members.is_empty() {
        return (String::new(), "Unknown".into());
    }
    let u = members[Rng::new(seed).index(members.len())];
    (u.id.to_string(), u.display_name.clone())
}

fn message_json(state: &SimState, team: uuid::Uuid, c: &Channel, m: &ChannelMessage) -> Value {
    let parent = m
        .reply_to
        .and_then(|p| c.messages.get(p as usize))
        .and_then(Option::as_ref);
    let (from, body) = match &m.json {
        Some(j) => (j["from"].clone(), j["body"].clone()),
        None => {
            let (uid, name) = author(state, m.seed);
            (
                json!({"application": null, "device": null, "user": {"@odata.type": "#microsoft.graph.teamworkUserIdentity", "id": uid, "displayName": name, "userIdentityType": "aadUser", "tenantId": state.tenant.id.to_string()}}),
                json!({"contentType": "html", "content": crate::content::channel_message_body(m.seed)}),
            )
        }
    };
    let deleted = m.deleted_ms.is_some();
    json!({
        "id": m.id, "replyToId": parent.map(|p| p.id.clone()), "etag": m.modified_ms.to_string(), "messageType": "message",
        "createdDateTime": iso_ms(m.created_ms), "lastModifiedDateTime": iso_ms(m.modified_ms),
        "lastEditedDateTime": if m.modified_ms != m.created_ms && !deleted { Value::String(iso_ms(m.modified_ms)) } else { Value::Null },
        "deletedDateTime": m.deleted_ms.map(iso_ms), "subject": null, "summary": null, "chatId": null, "importance": "normal", "locale": "en-us",
        "webUrl": format!("https://teams.microsoft.com/l/message/{}/{}?groupId={team}&tenantId={}&createdTime={}&parentMessageId={}",
            crate::http::encode_segment(&c.id), m.id, state.tenant.id, m.created_ms, parent.map_or(m.id.clone(), |p| p.id.clone())),
        "policyViolation": null, "eventDetail": null, "from": if deleted { Value::Null } else { from },
        "body": if deleted { json!({"contentType": "text", "content": ""}) } else { body },
        "channelIdentity": {"teamId": team.to_string(), "channelId": c.id},
        "attachments": [], "mentions": [], "reactions": [],
    })
}

/// `/groups/{id}/team…`.
pub fn group_team(
    state: &SimState,
    req: &GraphRequest,
    group: &str,
    rest: &[&str],
) -> GraphResponse {
    let mut segs = vec![group];
    segs.extend_from_slice(rest);
    route(state, req, &segs)
}

fn find_channel(t: &Team, id: &str) -> Option<u32> {
    t.channels
        .iter()
        .flatten()
        .find(|c| c.id == id)
        .map(|c| c.serial)
}

fn find_message(c: &Channel, id: &str) -> Option<u32> {
    c.messages
        .iter()
        .flatten()
        .find(|m| m.id == id)
        .map(|m| m.serial)
}

/// Routes `/teams/{id}/…`.
pub fn route(state: &SimState, req: &GraphRequest, s: &[&str]) -> GraphResponse {
    let Some(tkey) = s.first() else {
        return GraphResponse::bad_url("teams");
    };
    let Some((_, tid, tname, team)) = team_of(state, tkey) else {
        return GraphResponse::error(404, "NotFound", "No team found with Group Id");
    };
    let graph = state.graph();
    let base = format!("{graph}/teams/{tid}");
    match (req.method, &s[1..]) {
        (Method::Get, []) => GraphResponse::ok(team_json(state, tid, &tname)),
        (Method::Get, ["channels"]) => {
            let t = team.read();
            let items = t
                .channels
                .iter()
                .flatten()
                .map(|c| channel_json(state, tid, c))
                .collect();
            page(
                req,
                &format!("{base}/channels"),
                &format!("{graph}/$metadata#teams('{tid}')/channels"),
                items,
                100,
                999,
            )
        }
        (Method::Post, ["channels"]) => create_channel(state, req, tid, &team),
        (Method::Post, ["completeMigration"]) => {
            let mut t = team.write();
            if t.channels.iter().flatten().any(|c| c.migrating) {
                return GraphResponse::error(
                    400,
                    "BadRequest",
                    "All channels must complete migration before the team.",
                );
            }
            t.migrating = false;
            GraphResponse::empty(204)
        }
        (Method::Get, ["channels", "getAllMessages"]) => {
            let t = team.read();
            let items = t
                .channels
                .iter()
                .flatten()
                .flat_map(|c| c.messages.iter().flatten().map(move |m| (c, m)))
                .map(|(c, m)| message_json(state, tid, c, m))
                .collect();
            page(
                req,
                &format!("{base}/channels/getAllMessages"),
                &format!("{graph}/$metadata#Collection(chatMessage)"),
                items,
                20,
                50,
            )
        }
        (_, ["channels", cid, rest @ ..]) => {
            let cid = (*cid).to_string();
            channel_route(state, req, tid, &team, &cid, rest, &base)
        }
        _ => GraphResponse::bad_url(s.last().copied().unwrap_or("")),
    }
}

fn create_channel(
    state: &SimState,
    req: &GraphRequest,
    tid: uuid::Uuid,
    team: &RwLock<Team>,
) -> GraphResponse {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let Some(name) = body["displayName"]
        .as_str()
        .filter(|n| !n.trim().is_empty())
    else {
        return GraphResponse::error(400, "BadRequest", "displayName is required.");
    };
    let migration = body["@microsoft.graph.channelCreationMode"].as_str() == Some("migration");
    let mut t = team.write();
    if t.channels
        .iter()
        .flatten()
        .any(|c| c.name.eq_ignore_ascii_case(name))
    {
        return GraphResponse::error(
            400,
            "NameAlreadyExists",
            "Channel name already existed, please use other name.",
        );
    }
    let serial = u32::try_from(t.channels.len()).unwrap_or(u32::MAX);
    let mut rng = Rng::new(crate::rng::mix(state.tenant.seed, state.tenant.next_seq()));
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    let id = format!(
        "19:{}@thread.tacv2",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
    let created = body["createdDateTime"]
        .as_str()
        .and_then(parse_iso)
        .unwrap_or_else(crate::time_fmt::now);
    let channel = Channel {
        serial,
        id: id.clone(),
        name: name.to_string(),
        description: body["description"].as_str().unwrap_or("").to_string(),
        created,
        migrating: migration,
        messages: Vec::new(),
        log: ChangeLog::default(),
    };
    let json = channel_json(state, tid, &channel);
    t.channels.push(Some(channel));
    if migration {
        t.migrating = true;
        GraphResponse::empty(202)
            .with_header(
                "Location",
                format!(
                    "/teams('{tid}')/channels('{id}')/operations('{}')",
                    uuid::Uuid::new_v4()
                ),
            )
            .with_header(
                "Content-Location",
                format!("/teams('{tid}')/channels('{id}')"),
            )
    } else {
        GraphResponse::json(201, json)
    }
}

fn channel_route(
    state: &SimState,
    req: &GraphRequest,
    tid: uuid::Uuid,
    team: &RwLock<Team>,
    cid: &str,
    rest: &[&str],
    base: &str,
) -> GraphResponse {
    let graph = state.graph();
    let url = format!("{base}/channels/{}", crate::http::encode_segment(cid));
    match (req.method, rest) {
        (Method::Get, []) => {
            let t = team.read();
            match find_channel(&t, cid).and_then(|c| t.channels[c as usize].as_ref()) {
                Some(c) => GraphResponse::ok(channel_json(state, tid, c)),
                None => GraphResponse::error(404, "NotFound", "Channel not found."),
            }
        }
        (Method::Post, ["completeMigration"]) => {
            let mut t = team.write();
            match find_channel(&t, cid).and_then(|c| t.channels[c as usize].as_mut()) {
                Some(c) if c.migrating => {
                    c.migrating = false;
                    GraphResponse::empty(204)
                }
                Some(_) => {
                    GraphResponse::error(400, "BadRequest", "The channel is not in migration mode.")
                }
                None => GraphResponse::error(404, "NotFound", "Channel not found."),
            }
        }
        (Method::Get, ["messages"]) => {
            let t = team.read();
            let Some(c) = find_channel(&t, cid).and_then(|c| t.channels[c as usize].as_ref())
            else {
                return GraphResponse::error(404, "NotFound", "Channel not found.");
            };
            let mut tops: Vec<&ChannelMessage> = c
                .messages
                .iter()
                .flatten()
                .filter(|m| m.reply_to.is_none())
                .collect();
            tops.sort_by_key(|m| std::cmp::Reverse(m.modified_ms));
            let items = tops
                .into_iter()
                .map(|m| message_json(state, tid, c, m))
                .collect();
            page(
                req,
                &format!("{url}/messages"),
                &format!(
                    "{graph}/$metadata#teams('{tid}')/channels('{}')/messages",
                    crate::http::encode_segment(cid)
                ),
                items,
                20,
                50,
            )
        }
        (Method::Get, ["messages", "delta"]) => {
            let cursor = match crate::odata::delta_cursor(req, state.tenant.current_seq(), 20, 50) {
                Ok(c) => c,
                Err(e) => return e,
            };
            let t = team.read();
            let Some(c) = find_channel(&t, cid).and_then(|c| t.channels[c as usize].as_ref())
            else {
                return GraphResponse::error(404, "NotFound", "Channel not found.");
            };
            let removed = c.log.since(cursor.since).map(|it| {
                it.map(|r| {
                    (
                        i64::from(r.serial),
                        json!({"id": r.id, "@removed": {"reason": "deleted"}}),
                    )
                })
                .collect::<Vec<_>>()
            });
            let live: Vec<LiveEntry<'_>> = c
                .messages
                .iter()
                .flatten()
                .filter(|m| m.reply_to.is_none())
                .map(|m| {
                    let f: Box<dyn Fn() -> Value + '_> =
                        Box::new(move || message_json(state, tid, c, m));
                    (i64::from(m.serial), m.changed_seq, f)
                })
                .collect();
            crate::odata::run_delta(
                &format!("{url}/messages/delta"),
                &format!("{graph}/$metadata#Collection(chatMessage)"),
                cursor,
                live,
                removed,
                "syncStateNotFound",
            )
        }
        (Method::Post, ["messages"]) => post_message(state, req, tid, team, cid, None),
        (Method::Get, ["messages", mid]) => {
            let t = team.read();
            let Some(c) = find_channel(&t, cid).and_then(|c| t.channels[c as usize].as_ref())
            else {
                return GraphResponse::error(404, "NotFound", "Channel not found.");
            };
            match find_message(c, mid).and_then(|m| c.messages[m as usize].as_ref()) {
                Some(m) => GraphResponse::ok(message_json(state, tid, c, m)),
                None => GraphResponse::error(404, "NotFound", "Message not found."),
            }
        }
        (Method::Get, ["messages", mid, "replies"]) => {
            let t = team.read();
            let Some(c) = find_channel(&t, cid).and_then(|c| t.channels[c as usize].as_ref())
            else {
                return GraphResponse::error(404, "NotFound", "Channel not found.");
            };
            let Some(p) = find_message(c, mid) else {
                return GraphResponse::error(404, "NotFound", "Message not found.");
            };
            let items = c
                .messages
                .iter()
                .flatten()
                .filter(|m| m.reply_to == Some(p))
                .map(|m| message_json(state, tid, c, m))
                .collect();
            page(
                req,
                &format!("{url}/messages/{mid}/replies"),
                &format!("{graph}/$metadata#Collection(chatMessage)"),
                items,
                20,
                50,
            )
        }
        (Method::Post, ["messages", mid, "replies"]) => {
            post_message(state, req, tid, team, cid, Some(mid))
        }
        _ => GraphResponse::bad_url(rest.last().copied().unwrap_or(cid)),
    }
}

fn post_message(
    state: &SimState,
    req: &GraphRequest,
    tid: uuid::Uuid,
    team: &RwLock<Team>,
    cid: &str,
    reply_to: Option<&str>,
) -> GraphResponse {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let seq = state.tenant.next_seq();
    let mut t = team.write();
    let Some(cs) = find_channel(&t, cid) else {
        return GraphResponse::error(404, "NotFound", "Channel not found.");
    };
    let Some(c) = t.channels[cs as usize].as_mut() else {
        return GraphResponse::error(404, "NotFound", "Channel not found.");
    };
    if !c.migrating {
        return GraphResponse::error(
            403,
            "Forbidden",
            "Application-only context is only supported for importing messages into channels in migration mode.",
        );
    }
    let parent = match reply_to {
        Some(r) => match find_message(c, r) {
            Some(p) => Some(p),
            None => return GraphResponse::error(404, "NotFound", "Message not found."),
        },
        None => None,
    };
    let created_ms = body["createdDateTime"]
        .as_str()
        .and_then(parse_iso)
        .map_or_else(now_ms, |s| s * 1000);
    let mut ms = created_ms;
    while c.messages.iter().flatten().any(|m| m.id == ms.to_string()) {
        ms += 1;
    }
    let serial = u32::try_from(c.messages.len()).unwrap_or(u32::MAX);
    let mut stored = body.clone();
    if !stored["from"].is_object() {
        stored["from"] = json!({"user": null});
    }
    if let Some(from) = stored["from"].as_object_mut() {
        for k in ["application", "device", "conversation", "user"] {
            from.entry(k).or_insert(Value::Null);
        }
    }
    if !stored["body"].is_object() {
        stored["body"] = json!({"contentType": "text", "content": ""});
    }
    c.messages.push(Some(ChannelMessage {
        serial,
        id: ms.to_string(),
        reply_to: parent,
        created_ms: ms,
        modified_ms: ms,
        changed_seq: seq,
        seed: seq,
        json: Some(Arc::new(stored)),
        deleted_ms: None,
    }));
    if let Some(p) = parent
        .and_then(|p| c.messages.get_mut(p as usize))
        .and_then(Option::as_mut)
    {
        p.changed_seq = seq;
    }
    match c.messages[serial as usize].as_ref() {
        Some(m) => GraphResponse::ok(message_json(state, tid, c, m)),
        None => GraphResponse::error(404, "NotFound", "Message not found."),
    }
}

/// Adds (or soft-deletes / edits) channel messages for the control API. Returns the new id.
pub fn control_message(
    state: &SimState,
    team_id: &str,
    channel: &str,
    op: &str,
    message: Option<&str>,
    text: Option<&str>,
) -> Result<String, String> {
    let Some((_, _, _, team)) = team_of(state, team_id) else {
        return Err("unknown team".into());
    };
    let seq = state.tenant.next_seq();
    let mut t = team.write();
    let cs = find_channel(&t, channel).ok_or("unknown channel")?;
    let c = t.channels[cs as usize].as_mut().ok_or("unknown channel")?;
    let now = now_ms();
    let target = message.and_then(|m| find_message(c, m));
    match op {
        "add" | "reply" => {
            let mut ms = now;
            while c.messages.iter().flatten().any(|m| m.id == ms.to_string()) {
                ms += 1;
            }
            let serial = u32::try_from(c.messages.len()).unwrap_or(u32::MAX);
            let json = text.map(|t| Arc::new(json!({"from": {"user": {"displayName": "Control API", "id": null, "userIdentityType": "aadUser"}, "application": null, "device": null}, "body": {"contentType": "text", "content": t}})));
            let reply_to = if op == "reply" {
                Some(target.ok_or("unknown message")?)
            } else {
                None
            };
            c.messages.push(Some(ChannelMessage {
                serial,
                id: ms.to_string(),
                reply_to,
                created_ms: ms,
                modified_ms: ms,
                changed_seq: seq,
                seed: crate::rng::mix(seq, 0x7E),
                json,
                deleted_ms: None,
            }));
            if let Some(p) = reply_to
                .and_then(|p| c.messages.get_mut(p as usize))
                .and_then(Option::as_mut)
            {
                p.changed_seq = seq;
            }
            Ok(ms.to_string())
        }
        "modify" | "delete" => {
            let s = target.ok_or("unknown message")?;
            let parent = c.messages[s as usize].as_ref().and_then(|m| m.reply_to);
            let m = c.messages[s as usize].as_mut().ok_or("unknown message")?;
            m.modified_ms = now;
            m.changed_seq = seq;
            if op == "delete" {
                m.deleted_ms = Some(now);
            } else {
                let content = text.unwrap_or("edited").to_string();
                let mut j = m
                    .json
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| json!({"from": null}));
                j["body"] = json!({"contentType": "text", "content": content});
                m.json = Some(Arc::new(j));
            }
            let id = m.id.clone();
            if let Some(p) = parent
                .and_then(|p| c.messages.get_mut(p as usize))
                .and_then(Option::as_mut)
            {
                p.changed_seq = seq;
            }
            Ok(id)
        }
        _ => Err(format!("unknown channel message operation {op}")),
    }
}
