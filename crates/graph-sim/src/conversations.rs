//! Microsoft 365 group conversations: conversations, threads and posts of a group's mailbox,
//! with post attachments, as Graph v1.0 shows them (`/groups/{id}/conversations`,
//! `/groups/{id}/threads`, `…/threads/{id}/posts`, `…/posts/{id}/attachments`), thread creation
//! and replies (delegated only, as Graph documents), and control API changes.
//!
//! Graph offers no delta for threads; a client notices change through a thread's
//! `lastDeliveredDateTime`, which moves with every new post.

use std::sync::OnceLock;

use base64::Engine;
use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{Value, json};

use crate::content::Person;
use crate::http::{GraphRequest, GraphResponse, Method};
use crate::odata::page;
use crate::rng::{Rng, mix};
use crate::state::SimState;
use crate::time_fmt::{iso, now, parse_iso};

/// Bytes of a post attachment.
#[derive(Clone, Debug)]
pub enum AttachmentBytes {
    /// Generated from a seed (readable text or random bytes).
    Generated {
        /// Seed.
        seed: u64,
        /// Text or binary.
        text: bool,
    },
    /// Posted bytes.
    Stored(Bytes),
}

/// A file attachment of a post.
#[derive(Clone, Debug)]
pub struct PostAttachment {
    /// Serial within the post.
    pub serial: u32,
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Content.
    pub bytes: AttachmentBytes,
}

impl PostAttachment {
    /// The attachment's bytes.
    #[must_use]
    pub fn content(&self) -> Vec<u8> {
        match &self.bytes {
            AttachmentBytes::Stored(b) => b.to_vec(),
            AttachmentBytes::Generated { seed, text } => {
                crate::content::file_bytes(*seed, *text, 0, self.size)
            }
        }
    }
}

/// A post of a thread.
#[derive(Clone, Debug)]
pub struct Post {
    /// Serial within the thread (posts are in delivery order).
    pub serial: u32,
    /// Delivery time (Unix seconds).
    pub received: i64,
    /// Author.
    pub from: Person,
    /// Who sent it (the author, or the group for generated welcome posts).
    pub sender: Person,
    /// Serial of the post it answers.
    pub in_reply_to: Option<u32>,
    /// `(contentType, content)`.
    pub body: (String, String),
    /// File attachments.
    pub attachments: Vec<PostAttachment>,
}

/// A conversation thread.
#[derive(Clone, Debug)]
pub struct Thread {
    /// Serial within the group.
    pub serial: u32,
    /// The conversation it belongs to (threads of one conversation share the topic).
    pub conversation: u32,
    /// Topic.
    pub topic: String,
    /// Locked.
    pub locked: bool,
    /// Posts, oldest first.
    pub posts: Vec<Post>,
}

impl Thread {
    /// Delivery time of the newest post.
    #[must_use]
    pub fn last_delivered(&self) -> i64 {
        self.posts.iter().map(|p| p.received).max().unwrap_or(0)
    }

    fn has_attachments(&self) -> bool {
        self.posts.iter().any(|p| !p.attachments.is_empty())
    }
}

/// The conversations of one group.
#[derive(Default)]
pub struct GroupThreads {
    /// Threads by serial (`None` once deleted).
    pub threads: Vec<Option<Thread>>,
    /// Next conversation serial.
    pub next_conversation: u32,
}

/// A group's conversations, generated on first use.
pub struct ConversationsCell {
    seed: u64,
    count: usize,
    cell: OnceLock<RwLock<GroupThreads>>,
}

impl ConversationsCell {
    /// A cell of `count` generated threads.
    #[must_use]
    pub fn new(seed: u64, count: usize) -> Self {
        Self {
            seed,
            count,
            cell: OnceLock::new(),
        }
    }

    fn get(&self, members: &[Person], domain: &str, nickname: &str) -> &RwLock<GroupThreads> {
        self.cell
            .get_or_init(|| RwLock::new(generate(self.seed, self.count, members, domain, nickname)))
    }
}

const DAY: i64 = 86_400;

fn generate(
    seed: u64,
    count: usize,
    members: &[Person],
    domain: &str,
    nickname: &str,
) -> GroupThreads {
    let group = Person {
        name: nickname.to_string(),
        address: format!("{nickname}@{domain}"),
    };
    let mut out = GroupThreads::default();
    let mut conv = 0u32;
    for t in 0..count {
        let mut rng = Rng::new(mix(seed, t as u64));
        // Every fourth thread continues the previous conversation (same topic).
        let continues = t % 4 == 3;
        if !continues {
            conv = out.next_conversation;
            out.next_conversation += 1;
        }
        let topic = match (continues, out.threads.last()) {
            (true, Some(Some(prev))) => prev.topic.clone(),
            _ => (*rng.pick(crate::words::SUBJECTS)).to_string(),
        };
        let start = crate::tenant::BASE_TIME - (count as i64 - t as i64) * 3 * DAY
            + i64::try_from(rng.below(DAY as u64)).unwrap_or(0);
        let n_posts = 1 + rng.index(4);
        let mut posts = Vec::new();
        for p in 0..n_posts {
            let from = if members.is_empty() {
                group.clone()
            } else {
                members[rng.index(members.len())].clone()
            };
            let received = start + i64::try_from(p).unwrap_or(0) * 3_600 + rng.index(600) as i64;
            let sentence = crate::words::SENTENCES[rng.index(crate::words::SENTENCES.len())];
            let body = format!(
                "<html><body><div>{}</div><div>{}</div></body></html>",
                escape_html(sentence),
                escape_html(&from.name)
            );
            let mut attachments = Vec::new();
            if rng.chance(0.3) {
                let name = (*rng.pick(crate::words::FILE_NAMES)).to_string();
                let text = name.ends_with(".txt") || name.ends_with(".csv");
                attachments.push(PostAttachment {
                    serial: 0,
                    content_type: crate::content::mime_type(&name).to_string(),
                    name,
                    size: 100 + rng.below(40_000),
                    bytes: AttachmentBytes::Generated {
                        seed: rng.next_u64(),
                        text,
                    },
                });
            }
            posts.push(Post {
                serial: u32::try_from(p).unwrap_or(0),
                received,
                sender: from.clone(),
                from,
                in_reply_to: (p > 0).then(|| u32::try_from(rng.index(p)).unwrap_or(0)),
                body: ("html".into(), body),
                attachments,
            });
        }
        out.threads.push(Some(Thread {
            serial: u32::try_from(t).unwrap_or(u32::MAX),
            conversation: conv,
            topic,
            locked: false,
            posts,
        }));
    }
    out
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An Exchange-style id: a fixed prefix and URL-safe base64 of the group, kind and serials,
/// mixed with the tenant seed so ids differ between tenants.
fn make_id(seed: u64, prefix: &str, kind: u8, group: u32, a: u32, b: u32) -> String {
    let mut raw = Vec::with_capacity(29);
    raw.extend_from_slice(&mix(seed, 0xC0_u64 + u64::from(kind)).to_be_bytes());
    raw.push(kind);
    raw.extend_from_slice(&group.to_be_bytes());
    raw.extend_from_slice(&a.to_be_bytes());
    raw.extend_from_slice(&b.to_be_bytes());
    raw.extend_from_slice(&mix(seed, u64::from(group) << 32 | u64::from(a)).to_be_bytes());
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE.encode(raw)
    )
}

struct Ids {
    seed: u64,
    group: u32,
}

impl Ids {
    fn conversation(&self, c: u32) -> String {
        make_id(self.seed, "AAQkAD", 1, self.group, c, 0)
    }
    fn thread(&self, t: u32) -> String {
        make_id(self.seed, "AAQkAD", 2, self.group, t, 0)
    }
    fn post(&self, t: u32, p: u32) -> String {
        make_id(self.seed, "AAMkAD", 3, self.group, t, p)
    }
    fn attachment(&self, t: u32, p: u32, a: u32) -> String {
        make_id(self.seed, "AAMkAD", 4, self.group, t, p << 8 | a)
    }
    fn change_key(&self, t: u32, p: &Post) -> String {
        let mut raw = Vec::new();
        raw.extend_from_slice(
            &mix(self.seed, u64::from(t) << 20 | u64::from(p.serial)).to_be_bytes(),
        );
        raw.extend_from_slice(&p.received.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

fn email(p: &Person) -> Value {
    json!({"emailAddress": {"name": p.name, "address": p.address}})
}

fn preview(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.chars().take(255).collect()
}

fn unique_senders(t: &Thread) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in &t.posts {
        if !out.contains(&p.from.name) {
            out.push(p.from.name.clone());
        }
    }
    out
}

fn thread_json(ids: &Ids, t: &Thread) -> Value {
    json!({
        "id": ids.thread(t.serial),
        "topic": t.topic,
        "hasAttachments": t.has_attachments(),
        "lastDeliveredDateTime": iso(t.last_delivered()),
        "uniqueSenders": unique_senders(t),
        "preview": t.posts.last().map(|p| preview(&p.body.1)).unwrap_or_default(),
        "isLocked": t.locked,
    })
}

fn conversation_json(ids: &Ids, c: u32, threads: &[&Thread]) -> Value {
    let last = threads
        .iter()
        .map(|t| t.last_delivered())
        .max()
        .unwrap_or(0);
    let newest = threads.iter().max_by_key(|t| t.last_delivered());
    let mut senders: Vec<String> = Vec::new();
    for t in threads {
        for s in unique_senders(t) {
            if !senders.contains(&s) {
                senders.push(s);
            }
        }
    }
    json!({
        "id": ids.conversation(c),
        "topic": newest.map(|t| t.topic.clone()).unwrap_or_default(),
        "hasAttachments": threads.iter().any(|t| t.has_attachments()),
        "lastDeliveredDateTime": iso(last),
        "uniqueSenders": senders,
        "preview": newest.and_then(|t| t.posts.last()).map(|p| preview(&p.body.1)).unwrap_or_default(),
    })
}

fn post_json(ids: &Ids, t: &Thread, p: &Post) -> Value {
    let ck = ids.change_key(t.serial, p);
    json!({
        "@odata.etag": format!("W/\"{ck}\""),
        "id": ids.post(t.serial, p.serial),
        "createdDateTime": iso(p.received),
        "lastModifiedDateTime": iso(p.received),
        "changeKey": ck,
        "categories": [],
        "receivedDateTime": iso(p.received),
        "hasAttachments": !p.attachments.is_empty(),
        "body": {"contentType": p.body.0, "content": p.body.1},
        "from": email(&p.from),
        "sender": email(&p.sender),
        "conversationThreadId": ids.thread(t.serial),
        "conversationId": ids.conversation(t.conversation),
        "newParticipants": [],
    })
}

fn attachment_json(ids: &Ids, t: &Thread, p: &Post, a: &PostAttachment, bytes: bool) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": a.content_type,
        "id": ids.attachment(t.serial, p.serial, a.serial),
        "lastModifiedDateTime": iso(p.received),
        "name": a.name,
        "contentType": a.content_type,
        "size": a.size,
        "isInline": false,
        "contentId": null,
        "contentLocation": null,
    });
    if bytes {
        v["contentBytes"] =
            Value::String(base64::engine::general_purpose::STANDARD.encode(a.content()));
    }
    v
}

struct GroupRef {
    idx: u32,
    id: uuid::Uuid,
    nickname: String,
    members: Vec<Person>,
    cell: std::sync::Arc<ConversationsCell>,
}

fn group_ref(state: &SimState, key: &str) -> Option<GroupRef> {
    let dir = state.tenant.dir.read();
    let key = key.to_lowercase();
    let g = dir
        .groups
        .iter()
        .find(|g| !g.deleted && g.id.to_string() == key)?;
    let members = g
        .members
        .iter()
        .filter_map(|m| dir.users.get(*m as usize))
        .filter(|u| !u.deleted)
        .map(|u| Person {
            name: u.display_name.clone(),
            address: u.upn.clone(),
        })
        .collect();
    Some(GroupRef {
        idx: g.idx,
        id: g.id,
        nickname: g.nickname.clone(),
        members,
        cell: g.conversations.clone(),
    })
}

impl GroupRef {
    fn threads(&self, state: &SimState) -> &RwLock<GroupThreads> {
        self.cell
            .get(&self.members, &state.tenant.domain, &self.nickname)
    }

    fn ids(&self, state: &SimState) -> Ids {
        Ids {
            seed: state.tenant.seed,
            group: self.idx,
        }
    }
}

fn find_thread(ids: &Ids, g: &GroupThreads, id: &str) -> Option<u32> {
    g.threads
        .iter()
        .flatten()
        .find(|t| ids.thread(t.serial) == id)
        .map(|t| t.serial)
}

fn find_post(ids: &Ids, t: &Thread, id: &str) -> Option<usize> {
    t.posts
        .iter()
        .position(|p| ids.post(t.serial, p.serial) == id)
}

fn not_found() -> GraphResponse {
    GraphResponse::error(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

/// `$filter` on threads: `eq`/`ne` through the common filter, plus comparisons of
/// `lastDeliveredDateTime` (`gt`, `ge`, `lt`, `le`) that Exchange supports on this property.
fn filter_threads(req: &GraphRequest, items: Vec<Value>) -> Result<Vec<Value>, GraphResponse> {
    let Some(f) = req.param("filter") else {
        return Ok(items);
    };
    let lower = f.to_lowercase();
    for op in ["gt", "ge", "lt", "le"] {
        let needle = format!(" {op} ");
        if let Some(pos) = lower.find(&needle) {
            let prop = f[..pos].trim();
            if !prop.eq_ignore_ascii_case("lastDeliveredDateTime") || lower.contains(" and ") {
                break;
            }
            let lit = f[pos + needle.len()..].trim().trim_matches('\'');
            let Some(at) = parse_iso(lit) else {
                return Err(GraphResponse::error(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    "The query filter contains one or more invalid nodes.",
                ));
            };
            return Ok(items
                .into_iter()
                .filter(|v| {
                    let t = v["lastDeliveredDateTime"]
                        .as_str()
                        .and_then(parse_iso)
                        .unwrap_or(0);
                    match op {
                        "gt" => t > at,
                        "ge" => t >= at,
                        "lt" => t < at,
                        _ => t <= at,
                    }
                })
                .collect());
        }
    }
    crate::odata::filter_items(req, items)
}

/// Whether the caller may post: Graph allows creating threads and replying only with a
/// delegated token carrying `Group.ReadWrite.All` (or `Group-Conversation.ReadWrite.All`).
fn may_post(req: &GraphRequest) -> Result<&crate::auth::DelegatedUser, GraphResponse> {
    match &req.claims.user {
        Some(u)
            if u.has_scope("Group.ReadWrite.All")
                || u.has_scope("Group-Conversation.ReadWrite.All") =>
        {
            Ok(u)
        }
        Some(_) => Err(GraphResponse::error(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )),
        None => Err(GraphResponse::error(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )),
    }
}

/// Routes `/groups/{id}/conversations…` and `/groups/{id}/threads…`.
pub fn route(state: &SimState, req: &GraphRequest, group: &str, rest: &[&str]) -> GraphResponse {
    let Some(g) = group_ref(state, group) else {
        return GraphResponse::resource_not_found(group);
    };
    let graph = state.graph();
    let ids = g.ids(state);
    let head = rest.first().map(|h| h.to_lowercase()).unwrap_or_default();
    let base = format!("{graph}/groups/{}", g.id);
    let ctx = format!("{graph}/$metadata#groups('{}')", g.id);
    if head == "conversations" {
        let gt = g.threads(state).read();
        let by_conv = |c: u32| -> Vec<&Thread> {
            gt.threads
                .iter()
                .flatten()
                .filter(|t| t.conversation == c)
                .collect()
        };
        let convs: Vec<u32> = {
            let mut v: Vec<u32> = gt
                .threads
                .iter()
                .flatten()
                .map(|t| t.conversation)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        return match (req.method, &rest[1..]) {
            (Method::Get, []) => {
                let mut items: Vec<Value> = convs
                    .iter()
                    .map(|c| conversation_json(&ids, *c, &by_conv(*c)))
                    .collect();
                items.sort_by(|a, b| {
                    b["lastDeliveredDateTime"]
                        .as_str()
                        .cmp(&a["lastDeliveredDateTime"].as_str())
                });
                match filter_threads(req, items) {
                    Ok(items) => page(
                        req,
                        &format!("{base}/conversations"),
                        &format!("{ctx}/conversations"),
                        items,
                        10,
                        100,
                    ),
                    Err(e) => e,
                }
            }
            (_, [cid, tail @ ..]) => {
                let Some(c) = convs.iter().copied().find(|c| ids.conversation(*c) == *cid) else {
                    return not_found();
                };
                match (req.method, tail) {
                    (Method::Get, []) => GraphResponse::ok(conversation_json(&ids, c, &by_conv(c))),
                    (Method::Get, [t]) if t.eq_ignore_ascii_case("threads") => {
                        let items = by_conv(c)
                            .into_iter()
                            .map(|t| thread_json(&ids, t))
                            .collect();
                        page(
                            req,
                            &format!("{base}/conversations/{cid}/threads"),
                            &format!("{ctx}/conversations('{cid}')/threads"),
                            items,
                            10,
                            100,
                        )
                    }
                    (_, [t, tid, more @ ..]) if t.eq_ignore_ascii_case("threads") => {
                        let belongs = by_conv(c).iter().any(|t| ids.thread(t.serial) == *tid);
                        drop(gt);
                        if !belongs {
                            return not_found();
                        }
                        thread_route(state, req, &g, &ids, tid, more, &base, &ctx)
                    }
                    _ => GraphResponse::bad_url(rest.last().copied().unwrap_or("")),
                }
            }
            _ => GraphResponse::bad_url("conversations"),
        };
    }
    match (req.method, &rest[1..]) {
        (Method::Get, []) => {
            let items: Vec<Value> = {
                let gt = g.threads(state).read();
                let mut v: Vec<&Thread> = gt.threads.iter().flatten().collect();
                v.sort_by_key(|t| std::cmp::Reverse((t.last_delivered(), t.serial)));
                v.into_iter().map(|t| thread_json(&ids, t)).collect()
            };
            match filter_threads(req, items) {
                Ok(items) => page(
                    req,
                    &format!("{base}/threads"),
                    &format!("{ctx}/threads"),
                    items,
                    10,
                    100,
                ),
                Err(e) => e,
            }
        }
        (Method::Post, []) => create_thread(state, req, &g, &ids),
        (_, [tid, more @ ..]) => thread_route(state, req, &g, &ids, tid, more, &base, &ctx),
        _ => GraphResponse::bad_url("threads"),
    }
}

fn parse_post(v: &Value) -> Result<(String, String, Vec<PostAttachment>), GraphResponse> {
    let content_type = v
        .pointer("/body/contentType")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("text")
        .to_string();
    let content = v
        .pointer("/body/content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut atts = Vec::new();
    if let Some(list) = v.get("attachments").and_then(Value::as_array) {
        for (i, a) in list.iter().enumerate() {
            let Some(name) = a.get("name").and_then(Value::as_str) else {
                return Err(GraphResponse::error(
                    400,
                    "ErrorInvalidRequest",
                    "An attachment needs a name.",
                ));
            };
            let bytes = a
                .get("contentBytes")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .ok_or_else(|| {
                    GraphResponse::error(400, "ErrorInvalidRequest", "contentBytes must be base64.")
                })?;
            atts.push(PostAttachment {
                serial: u32::try_from(i).unwrap_or(0),
                name: name.to_string(),
                content_type: a.get("contentType").and_then(Value::as_str).map_or_else(
                    || crate::content::mime_type(name).to_string(),
                    str::to_string,
                ),
                size: bytes.len() as u64,
                bytes: AttachmentBytes::Stored(Bytes::from(bytes)),
            });
        }
    }
    let ct = if content_type.eq_ignore_ascii_case("html") {
        "html"
    } else {
        "text"
    };
    Ok((ct.to_string(), content, atts))
}

fn create_thread(state: &SimState, req: &GraphRequest, g: &GroupRef, ids: &Ids) -> GraphResponse {
    let user = match may_post(req) {
        Ok(u) => u,
        Err(e) => return e,
    };
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let Some(topic) = body["topic"].as_str().filter(|t| !t.trim().is_empty()) else {
        return GraphResponse::error(400, "ErrorInvalidRequest", "A thread needs a topic.");
    };
    let Some(first) = body["posts"].as_array().and_then(|p| p.first()) else {
        return GraphResponse::error(400, "ErrorInvalidRequest", "A thread needs a post.");
    };
    let author = author_of(state, user);
    let at = now();
    let (ct, content, atts) = match parse_post(first) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let t = add_thread(g.threads(state), topic, author, (ct, content), atts, at);
    let gt = g.threads(state).read();
    match gt.threads.get(t as usize).and_then(Option::as_ref) {
        Some(thread) => GraphResponse::json(201, thread_json(ids, thread)),
        None => not_found(),
    }
}

fn author_of(state: &SimState, user: &crate::auth::DelegatedUser) -> Person {
    let dir = state.tenant.dir.read();
    let name = dir
        .users
        .iter()
        .find(|u| u.id == user.oid)
        .map_or_else(|| user.upn.clone(), |u| u.display_name.clone());
    Person {
        name,
        address: user.upn.clone(),
    }
}

fn add_thread(
    cell: &RwLock<GroupThreads>,
    topic: &str,
    author: Person,
    body: (String, String),
    attachments: Vec<PostAttachment>,
    at: i64,
) -> u32 {
    let mut gt = cell.write();
    let serial = u32::try_from(gt.threads.len()).unwrap_or(u32::MAX);
    let conversation = gt.next_conversation;
    gt.next_conversation += 1;
    gt.threads.push(Some(Thread {
        serial,
        conversation,
        topic: topic.to_string(),
        locked: false,
        posts: vec![Post {
            serial: 0,
            received: at,
            sender: author.clone(),
            from: author,
            in_reply_to: None,
            body,
            attachments,
        }],
    }));
    serial
}

fn add_post(
    cell: &RwLock<GroupThreads>,
    thread: u32,
    reply_to: Option<u32>,
    author: Person,
    body: (String, String),
    attachments: Vec<PostAttachment>,
) -> Option<u32> {
    let mut gt = cell.write();
    let t = gt.threads.get_mut(thread as usize)?.as_mut()?;
    let serial = u32::try_from(t.posts.len()).unwrap_or(u32::MAX);
    // Delivery times strictly increase within a thread, so `lastDeliveredDateTime` moves.
    let at = now().max(t.last_delivered() + 1);
    let reply_to = reply_to.or_else(|| t.posts.last().map(|p| p.serial));
    t.posts.push(Post {
        serial,
        received: at,
        sender: author.clone(),
        from: author,
        in_reply_to: reply_to,
        body,
        attachments,
    });
    Some(serial)
}

#[allow(clippy::too_many_arguments)]
fn thread_route(
    state: &SimState,
    req: &GraphRequest,
    g: &GroupRef,
    ids: &Ids,
    tid: &str,
    more: &[&str],
    base: &str,
    ctx: &str,
) -> GraphResponse {
    let cell = g.threads(state);
    let Some(serial) = find_thread(ids, &cell.read(), tid) else {
        return not_found();
    };
    if let (Method::Post, [action]) = (req.method, more)
        && action.eq_ignore_ascii_case("reply")
    {
        return reply(state, req, cell, serial, None);
    }
    if let (Method::Post, [p, pid, action]) = (req.method, more)
        && p.eq_ignore_ascii_case("posts")
        && action.eq_ignore_ascii_case("reply")
    {
        let idx = {
            let gt = cell.read();
            gt.threads
                .get(serial as usize)
                .and_then(Option::as_ref)
                .and_then(|t| find_post(ids, t, pid))
        };
        let Some(idx) = idx else {
            return not_found();
        };
        return reply(
            state,
            req,
            cell,
            serial,
            Some(u32::try_from(idx).unwrap_or(0)),
        );
    }
    let gt = cell.read();
    let Some(t) = gt.threads.get(serial as usize).and_then(Option::as_ref) else {
        return not_found();
    };
    let tbase = format!("{base}/threads/{tid}");
    let tctx = format!("{ctx}/threads('{}')", crate::odata::encode_query(tid));
    let expand = req.param("expand").map(str::to_lowercase);
    match (req.method, more) {
        (Method::Get, []) => GraphResponse::ok(thread_json(ids, t)),
        (Method::Get, [p]) if p.eq_ignore_ascii_case("posts") => {
            let items = t
                .posts
                .iter()
                .map(|p| post_view(ids, t, p, expand.as_deref()))
                .collect();
            page(
                req,
                &format!("{tbase}/posts"),
                &format!("{tctx}/posts"),
                items,
                10,
                50,
            )
        }
        (Method::Get, [p, pid, rest @ ..]) if p.eq_ignore_ascii_case("posts") => {
            let Some(i) = find_post(ids, t, pid) else {
                return not_found();
            };
            let post = &t.posts[i];
            match rest {
                [] => GraphResponse::ok(post_view(ids, t, post, expand.as_deref())),
                [a] if a.eq_ignore_ascii_case("attachments") => {
                    state
                        .counters
                        .content(post.attachments.iter().map(|a| a.size).sum::<u64>());
                    let items = post
                        .attachments
                        .iter()
                        .map(|a| attachment_json(ids, t, post, a, true))
                        .collect();
                    page(
                        req,
                        &format!("{tbase}/posts/{pid}/attachments"),
                        &format!("{tctx}/posts('{pid}')/attachments"),
                        items,
                        100,
                        100,
                    )
                }
                [a, aid, tail @ ..] if a.eq_ignore_ascii_case("attachments") => {
                    let Some(att) = post
                        .attachments
                        .iter()
                        .find(|a| ids.attachment(t.serial, post.serial, a.serial) == *aid)
                    else {
                        return not_found();
                    };
                    state.counters.content(att.size);
                    match tail {
                        [] => GraphResponse::ok(attachment_json(ids, t, post, att, true)),
                        [v] if *v == "$value" => {
                            GraphResponse::raw(200, Bytes::from(att.content()), &att.content_type)
                        }
                        _ => GraphResponse::bad_url(aid),
                    }
                }
                _ => GraphResponse::bad_url(pid),
            }
        }
        _ => GraphResponse::bad_url(tid),
    }
}

fn post_view(ids: &Ids, t: &Thread, p: &Post, expand: Option<&str>) -> Value {
    let mut v = post_json(ids, t, p);
    match expand {
        Some(e) if e.starts_with("inreplyto") => {
            v["inReplyTo"] = p
                .in_reply_to
                .and_then(|r| t.posts.get(r as usize))
                .map_or(Value::Null, |parent| post_json(ids, t, parent));
        }
        Some(e) if e.starts_with("attachments") => {
            v["attachments"] = Value::Array(
                p.attachments
                    .iter()
                    .map(|a| attachment_json(ids, t, p, a, true))
                    .collect(),
            );
        }
        _ => {}
    }
    v
}

fn reply(
    state: &SimState,
    req: &GraphRequest,
    cell: &RwLock<GroupThreads>,
    thread: u32,
    reply_to: Option<u32>,
) -> GraphResponse {
    let user = match may_post(req) {
        Ok(u) => u,
        Err(e) => return e,
    };
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let Some(post) = body.get("post").filter(|p| p.is_object()) else {
        return GraphResponse::error(400, "ErrorInvalidRequest", "The request needs a post.");
    };
    let author = author_of(state, user);
    let (ct, content, atts) = match parse_post(post) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if cell
        .read()
        .threads
        .get(thread as usize)
        .and_then(Option::as_ref)
        .is_some_and(|t| t.locked)
    {
        return GraphResponse::error(403, "ErrorAccessDenied", "The thread is locked.");
    }
    match add_post(cell, thread, reply_to, author, (ct, content), atts) {
        Some(_) => GraphResponse::empty(202),
        None => not_found(),
    }
}

/// Control API: `add_thread` (`group`, `topic`, optional `text`, `attachment_size`),
/// `add_post` (`group`, `thread`, optional `text`, `reply_to`, `attachment_size`),
/// `delete_thread` (`group`, `thread`). Returns the new thread's or post's id.
///
/// # Errors
/// Unknown group, thread or post.
pub fn control(state: &SimState, kind: &str, op: &Value) -> Result<Value, String> {
    let group = op["group"].as_str().ok_or("missing string field 'group'")?;
    let g = group_ref(state, group).ok_or_else(|| format!("unknown group {group}"))?;
    let ids = g.ids(state);
    let cell = g.threads(state);
    let author = g.members.first().cloned().unwrap_or_else(|| Person {
        name: g.nickname.clone(),
        address: format!("{}@{}", g.nickname, state.tenant.domain),
    });
    let text = op["text"].as_str().unwrap_or("A new post.");
    let body = (
        "html".to_string(),
        format!("<html><body><div>{}</div></body></html>", escape_html(text)),
    );
    let atts = match op["attachment_size"].as_u64() {
        Some(size) => vec![PostAttachment {
            serial: 0,
            name: op["attachment_name"]
                .as_str()
                .unwrap_or("Notes – Überblick.txt")
                .to_string(),
            content_type: "text/plain".into(),
            size,
            bytes: AttachmentBytes::Generated {
                seed: mix(state.tenant.seed, state.tenant.next_seq()),
                text: true,
            },
        }],
        None => Vec::new(),
    };
    let thread_serial = |gt: &GroupThreads| -> Result<u32, String> {
        let tid = op["thread"]
            .as_str()
            .ok_or("missing string field 'thread'")?;
        find_thread(&ids, gt, tid).ok_or_else(|| format!("unknown thread {tid}"))
    };
    match kind {
        "add_thread" => {
            let topic = op["topic"].as_str().ok_or("missing string field 'topic'")?;
            let at = now();
            let t = add_thread(cell, topic, author, body, atts, at);
            Ok(json!({"id": ids.thread(t), "post": ids.post(t, 0)}))
        }
        "add_post" => {
            let (t, reply_to) = {
                let gt = cell.read();
                let t = thread_serial(&gt)?;
                let reply_to = match op["reply_to"].as_str() {
                    Some(pid) => {
                        let th = gt
                            .threads
                            .get(t as usize)
                            .and_then(Option::as_ref)
                            .ok_or("unknown thread")?;
                        Some(
                            find_post(&ids, th, pid)
                                .and_then(|i| u32::try_from(i).ok())
                                .ok_or_else(|| format!("unknown post {pid}"))?,
                        )
                    }
                    None => None,
                };
                (t, reply_to)
            };
            let p = add_post(cell, t, reply_to, author, body, atts).ok_or("unknown thread")?;
            Ok(json!({"id": ids.post(t, p), "thread": ids.thread(t)}))
        }
        "delete_thread" => {
            let mut gt = cell.write();
            let t = thread_serial(&gt)?;
            if let Some(slot) = gt.threads.get_mut(t as usize) {
                *slot = None;
            }
            Ok(json!({"ok": true}))
        }
        _ => Err(format!("unknown conversation operation {kind}")),
    }
}

/// Snapshot of every group's conversations: group nickname → thread id → post id → BLAKE3 of
/// the post's JSON followed by its attachments' bytes.
#[must_use]
pub fn snapshot(state: &SimState) -> Value {
    let keys: Vec<String> = {
        let dir = state.tenant.dir.read();
        dir.groups
            .iter()
            .filter(|g| !g.deleted)
            .map(|g| g.id.to_string())
            .collect()
    };
    let mut out = serde_json::Map::new();
    for key in keys {
        let Some(g) = group_ref(state, &key) else {
            continue;
        };
        let ids = g.ids(state);
        let gt = g.threads(state).read();
        let mut threads = serde_json::Map::new();
        for t in gt.threads.iter().flatten() {
            let mut posts = serde_json::Map::new();
            for p in &t.posts {
                let mut h = blake3::Hasher::new();
                h.update(post_json(&ids, t, p).to_string().as_bytes());
                for a in &p.attachments {
                    h.update(&a.content());
                }
                posts.insert(
                    ids.post(t.serial, p.serial),
                    Value::String(h.finalize().to_hex().to_string()),
                );
            }
            threads.insert(ids.thread(t.serial), Value::Object(posts));
        }
        out.insert(g.nickname.clone(), Value::Object(threads));
    }
    Value::Object(out)
}

/// Mailbox number of a group's conversations (its group mailbox), for throttling.
#[must_use]
pub fn mailbox(state: &SimState, group: &str) -> Option<u32> {
    state
        .tenant
        .find_group(group)
        .map(|i| crate::tenant::GROUP_MAILBOX_BASE + i)
}

/// The seed of a group's conversations.
#[must_use]
pub fn seed(tenant_seed: u64, group: u32) -> u64 {
    mix(tenant_seed, 0xC0_4E00 + u64::from(group))
}
