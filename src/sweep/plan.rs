//! Planning of the cursor chains a run reads.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::db::sweeps::ChainPlan;
use crate::greenhouse::Resource;

/// Kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Records updated since each resource's watermark, minus the overlap.
    Incremental,
    /// Every record, then records not seen are marked deleted.
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Incremental => "incremental",
            Mode::Full => "full",
        }
    }
}

/// Order in which resources are read: what makes an account usable first (jobs, users,
/// departments, offices), then applications and candidates, then the rest.
pub const ORDER: [Resource; 11] = [
    Resource::Departments,
    Resource::Offices,
    Resource::Users,
    Resource::Jobs,
    Resource::JobPosts,
    Resource::JobInterviewStages,
    Resource::Applications,
    Resource::Candidates,
    Resource::Offers,
    Resource::Interviews,
    Resource::Scorecards,
];

/// Resources large enough to be split into `created_at` slices in a full run.
pub fn is_large(resource: Resource) -> bool {
    matches!(
        resource,
        Resource::Applications | Resource::Candidates | Resource::Offers | Resource::Interviews | Resource::Scorecards
    )
}

/// Plans the first part of a full run: one chain per small resource.
pub fn full_small_chains() -> Vec<ChainPlan> {
    ORDER.iter().filter(|r| !is_large(**r)).map(|&resource| whole(resource)).collect()
}

/// Plans the second part of a full run: `slices` chains per large resource.
///
/// Slices split by `created_at`, which never changes, with the newest slice open-ended.
/// Splitting by `updated_at` would be wrong: a record updated during the run would leave
/// every slice and be taken for deleted. `edges` returns the slice edges of a resource,
/// oldest first. The caller takes them from the stored rows when there are enough of them,
/// and spreads them evenly over the account's history otherwise.
pub fn full_large_chains(slices: usize, edges: impl Fn(Resource) -> Vec<DateTime<Utc>>) -> Vec<ChainPlan> {
    let mut chains = Vec::new();
    for resource in ORDER.into_iter().filter(|r| is_large(*r)) {
        if slices < 2 {
            chains.push(whole(resource));
        } else {
            chains.extend(slice_chains(resource, &edges(resource)));
        }
    }
    chains
}

/// Returns `slices - 1` edges spread evenly between `start` and `end`, oldest first.
pub fn even_edges(slices: usize, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    if slices < 2 || end <= start {
        return Vec::new();
    }
    let step = (end - start) / slices as i32;
    (1..slices).map(|k| start + step * k as i32).collect()
}

fn whole(resource: Resource) -> ChainPlan {
    ChainPlan { resource, created_from: None, created_before: None, updated_from: None, updated_to: None }
}

/// Builds one chain per interval between consecutive edges, plus an open start and an open end.
fn slice_chains(resource: Resource, edges: &[DateTime<Utc>]) -> Vec<ChainPlan> {
    let mut chains = Vec::new();
    let mut from = None;
    for edge in edges {
        chains.push(ChainPlan { resource, created_from: from, created_before: Some(*edge), updated_from: None, updated_to: None });
        from = Some(*edge);
    }
    chains.push(ChainPlan { resource, created_from: from, created_before: None, updated_from: None, updated_to: None });
    // Newest first: recent records matter most to a consumer waiting for onboarding.
    chains.reverse();
    chains
}

/// Plans an incremental run: per resource, records updated in the window from its watermark
/// minus `overlap` to `run_start`. The window is fixed for the whole run because v3 lists
/// come newest id first, not oldest update first. A resource without a watermark is read
/// whole.
pub fn incremental_chains(
    watermarks: &HashMap<Resource, DateTime<Utc>>,
    overlap: Duration,
    run_start: DateTime<Utc>,
) -> Vec<ChainPlan> {
    ORDER
        .iter()
        .map(|&resource| match watermarks.get(&resource) {
            Some(watermark) => ChainPlan {
                resource,
                created_from: None,
                created_before: None,
                updated_from: Some(*watermark - overlap),
                updated_to: Some(run_start),
            },
            None => whole(resource),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_plan_covers_every_resource() {
        let now = Utc::now();
        let mut chains = full_small_chains();
        chains.extend(full_large_chains(4, |_| even_edges(4, now - Duration::days(400), now)));
        for resource in ORDER {
            assert!(chains.iter().any(|c| c.resource == resource), "{resource}");
        }
        assert_eq!(chains.iter().filter(|c| c.resource == Resource::Candidates).count(), 4);
    }

    #[test]
    fn slices_tile_time_without_gaps() {
        let now = Utc::now();
        let chains: Vec<_> = full_large_chains(4, |_| even_edges(4, now - Duration::days(400), now))
            .into_iter()
            .filter(|c| c.resource == Resource::Applications)
            .collect();
        assert_eq!(chains.first().map(|c| c.created_before), Some(None), "newest slice is open-ended");
        assert_eq!(chains.last().map(|c| c.created_from), Some(None), "oldest slice has no start");
        for pair in chains.windows(2) {
            assert_eq!(pair[0].created_from, pair[1].created_before, "adjacent slices share an edge");
        }
    }

    #[test]
    fn no_history_means_one_chain_per_resource() {
        let chains = full_large_chains(4, |_| Vec::new());
        assert_eq!(chains.iter().filter(|c| c.resource == Resource::Candidates).count(), 1);
    }

    #[test]
    fn incremental_window_subtracts_overlap() {
        let now = Utc::now();
        let watermark = now - Duration::hours(2);
        let watermarks = HashMap::from([(Resource::Jobs, watermark)]);
        let chains = incremental_chains(&watermarks, Duration::hours(1), now);
        let jobs = chains.iter().find(|c| c.resource == Resource::Jobs).expect("jobs chain");
        assert_eq!(jobs.updated_from, Some(watermark - Duration::hours(1)));
        assert_eq!(jobs.updated_to, Some(now));
        let users = chains.iter().find(|c| c.resource == Resource::Users).expect("users chain");
        assert_eq!(users.updated_from, None, "no watermark: read whole");
    }
}
