//! Discovery: which users, groups, sites and teams the tenant has, and which of them a task protects.

use backhome_graph::models::{Group, Site, User};
use std::collections::HashSet;

use backhome_graph::{Call, Client};
use futures_util::TryStreamExt;

use crate::task::TaskSpec;

/// What discovery found, already filtered by the task's include/exclude lists.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Users to back up.
    pub users: Vec<User>,
    /// Microsoft 365 (Unified) groups to back up.
    pub groups: Vec<Group>,
    /// SharePoint sites to back up.
    pub sites: Vec<Site>,
    /// Ids of every account the tenant listed, selected or not, by kind; kinds not listed in
    /// this run are absent (their accounts cannot be told deleted).
    pub listed:
        std::collections::HashMap<backhome_store::ObjectKind, std::collections::HashSet<String>>,
}

fn matches_any(list: &[String], candidates: &[Option<&str>]) -> bool {
    list.iter().any(|want| {
        candidates
            .iter()
            .flatten()
            .any(|c| c.eq_ignore_ascii_case(want.trim()))
    })
}

/// Whether an account passes an include list (empty = everything) and an exclude list.
#[must_use]
pub fn selected(include: &[String], exclude: &[String], candidates: &[Option<&str>]) -> bool {
    (include.is_empty() || matches_any(include, candidates)) && !matches_any(exclude, candidates)
}

/// Applies auto-discovery: with it off, an account the task has never backed up joins only when
/// an include list names it. `known` holds the Graph ids the repository already has; on the
/// first run everything selected joins.
pub fn apply_auto_discovery(found: &mut Discovered, spec: &TaskSpec, known: &HashSet<String>) {
    if known.is_empty() {
        return;
    }
    let auto = &spec.auto_discovery;
    if !auto.users {
        found.users.retain(|u| {
            known.contains(&u.id)
                || matches_any(
                    &spec.include_users,
                    &[u.user_principal_name.as_deref(), u.mail.as_deref()],
                )
        });
    }
    if !auto.groups {
        found.groups.retain(|g| {
            known.contains(&g.id)
                || matches_any(
                    &spec.include_groups,
                    &[g.mail_nickname.as_deref(), g.mail.as_deref()],
                )
        });
    }
    if !auto.sites {
        found.sites.retain(|s| {
            known.contains(&s.id)
                || matches_any(
                    &spec.include_sites,
                    &[s.web_url.as_deref(), s.name.as_deref()],
                )
        });
    }
}

/// Lists the tenant's accounts and applies the task's selection.
///
/// # Errors
/// A Graph error listing users (groups and sites failing is also an error: a partial list would
/// make the run believe accounts were deleted).
pub async fn discover(
    client: &Client,
    spec: &TaskSpec,
) -> Result<Discovered, backhome_graph::Error> {
    use crate::task::Service as S;
    let wants = |s: S| spec.services.contains(&s);
    let mut out = Discovered::default();
    if wants(S::Mail) || wants(S::Calendar) || wants(S::Contacts) || wants(S::Onedrive) {
        let users: Vec<User> = client
            .items(Call::get("/users?$select=id,userPrincipalName,displayName,mail,accountEnabled,userType&$top=999"))
            .try_collect()
            .await?;
        out.listed.insert(
            backhome_store::ObjectKind::User,
            users.iter().map(|u| u.id.clone()).collect(),
        );
        out.users = users
            .into_iter()
            .filter(|u| {
                selected(
                    &spec.include_users,
                    &spec.exclude_users,
                    &[
                        u.user_principal_name.as_deref(),
                        u.mail.as_deref(),
                        Some(u.id.as_str()),
                    ],
                )
            })
            .collect();
    }
    if wants(S::Groups) || wants(S::Teams) {
        let groups: Vec<Group> = client
            .items(Call::get(
                "/groups?$filter=groupTypes/any(c:c+eq+'Unified')&$select=id,displayName,mail,mailNickname,groupTypes,resourceProvisioningOptions,description",
            ))
            .try_collect()
            .await?;
        out.listed.insert(
            backhome_store::ObjectKind::Group,
            groups.iter().map(|g| g.id.clone()).collect(),
        );
        out.groups = groups
            .into_iter()
            .filter(|g| g.group_types.iter().any(|t| t == "Unified"))
            .filter(|g| {
                selected(
                    &spec.include_groups,
                    &spec.exclude_groups,
                    &[
                        g.mail_nickname.as_deref(),
                        g.mail.as_deref(),
                        g.display_name.as_deref(),
                        Some(g.id.as_str()),
                    ],
                )
            })
            .collect();
    }
    if wants(S::Sharepoint) {
        let sites: Vec<Site> = client
            .items(Call::get("/sites/getAllSites?$top=999"))
            .try_collect()
            .await?;
        out.listed.insert(
            backhome_store::ObjectKind::Site,
            sites.iter().map(|s| s.id.clone()).collect(),
        );
        out.sites = sites
            .into_iter()
            .filter(|s| s.is_personal_site != Some(true))
            .filter(|s| {
                selected(
                    &spec.include_sites,
                    &spec.exclude_sites,
                    &[s.web_url.as_deref(), s.name.as_deref(), Some(s.id.as_str())],
                )
            })
            .collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::selected;

    #[test]
    fn include_and_exclude_lists() {
        let none: Vec<String> = vec![];
        let ann = [Some("Ann@Contoso.com"), None];
        assert!(selected(&none, &none, &ann));
        assert!(selected(&["ann@contoso.com".into()], &none, &ann));
        assert!(!selected(&["bob@contoso.com".into()], &none, &ann));
        assert!(!selected(&none, &[" ANN@contoso.com ".into()], &ann));
    }
}
