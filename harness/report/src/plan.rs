//! Sharding a run over CI jobs by measured cost: whole kernels when there
//! are at least as many kernels as shards, else kernels split by script.
//! `tapmatrix plan` prints the plan as a GitHub Actions matrix and
//! `tapmatrix run --shard I/N` runs shard I of the same plan (the same
//! inputs give the same plan).

use std::collections::HashMap;

use serde_json::json;

use crate::model::{Results, ShardId, Status};

/// Boot and power-off of a kernel with no script, when nothing was measured (ms).
pub const DEFAULT_BOOT_MS: u64 = 20_000;
/// One script in a guest, with its events set up and removed, when nothing was measured (ms).
pub const DEFAULT_SCRIPT_MS: u64 = 4_000;
/// Setting up and removing a script's events, on top of its measured time (ms).
const SCRIPT_SETUP_MS: u64 = 1_000;

/// What a kernel's boot and each script cost, measured or by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Costs {
    boot_ms: HashMap<String, u64>,
    script_ms: HashMap<(String, String), u64>,
}

impl Costs {
    /// Costs measured by a previous run: a kernel's boot is its boot time
    /// less the time its scripts took in the guest; a script's is its time
    /// in the guest plus its setup.
    pub fn from_results(results: &Results) -> Costs {
        let mut costs = Costs::default();
        for kernel in &results.kernels {
            if kernel.boot_ms == 0 {
                continue;
            }
            let scripts: u64 = results
                .cells
                .iter()
                .filter(|c| c.kernel == kernel.id)
                .map(|c| c.elapsed_ms)
                .sum();
            costs.boot_ms.insert(
                kernel.id.clone(),
                kernel.boot_ms.saturating_sub(scripts).max(1),
            );
        }
        for cell in &results.cells {
            if cell.elapsed_ms > 0 || cell.status == Status::Pass {
                costs.script_ms.insert(
                    (cell.kernel.clone(), cell.script.clone()),
                    cell.elapsed_ms + SCRIPT_SETUP_MS,
                );
            }
        }
        costs
    }

    fn boot(&self, kernel: &str) -> u64 {
        self.boot_ms.get(kernel).copied().unwrap_or(DEFAULT_BOOT_MS)
    }

    fn script(&self, kernel: &str, script: &str) -> u64 {
        self.script_ms
            .get(&(kernel.to_owned(), script.to_owned()))
            .copied()
            .unwrap_or(DEFAULT_SCRIPT_MS)
    }

    fn kernel(&self, kernel: &str, scripts: &[String]) -> u64 {
        self.boot(kernel) + scripts.iter().map(|s| self.script(kernel, s)).sum::<u64>()
    }
}

/// One shard of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// Which.
    pub id: ShardId,
    /// Its kernels, in matrix order.
    pub kernels: Vec<String>,
    /// Its scripts, when a kernel is split (`None`: every script).
    pub scripts: Option<Vec<String>>,
    /// Its estimated cost (ms).
    pub cost_ms: u64,
}

/// Longest first onto the least loaded bin: `(item, cost)` into `bins`
/// bins; each bin's items keep their input order.
fn balance(items: &[(usize, u64)], bins: usize) -> Vec<(Vec<usize>, u64)> {
    let mut order: Vec<&(usize, u64)> = items.iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out: Vec<(Vec<usize>, u64)> = vec![(Vec::new(), 0); bins.max(1)];
    for (item, cost) in order {
        if let Some(bin) = out
            .iter_mut()
            .enumerate()
            .min_by_key(|(i, (_, load))| (*load, *i))
            .map(|(_, bin)| bin)
        {
            bin.0.push(*item);
            bin.1 += cost;
        }
    }
    for bin in &mut out {
        bin.0.sort_unstable();
    }
    out
}

/// Splits `kernels` (in matrix order) and `scripts` into `shards` shards
/// by `costs`. Always `shards` shards; some are empty when there is less
/// work than shards.
pub fn plan(kernels: &[String], scripts: &[String], costs: &Costs, shards: usize) -> Vec<Shard> {
    let n = shards.max(1);
    let id = |index: usize| ShardId { index, of: n };
    let mut out: Vec<Shard> = Vec::new();
    if kernels.len() >= n || scripts.len() <= 1 {
        let items: Vec<(usize, u64)> = kernels
            .iter()
            .enumerate()
            .map(|(i, k)| (i, costs.kernel(k, scripts)))
            .collect();
        for (index, (members, cost)) in balance(&items, n).into_iter().enumerate() {
            out.push(Shard {
                id: id(index + 1),
                kernels: members.iter().map(|&i| kernels[i].clone()).collect(),
                scripts: None,
                cost_ms: cost,
            });
        }
        return out;
    }
    // Fewer kernels than shards: each kernel gets parts, the costliest
    // kernel per part first, no more parts than scripts.
    let mut parts = vec![1_usize; kernels.len()];
    let total: Vec<u64> = kernels.iter().map(|k| costs.kernel(k, scripts)).collect();
    for _ in kernels.len()..n {
        let best = (0..kernels.len())
            .filter(|&i| parts[i] < scripts.len())
            .max_by(|&a, &b| {
                (total[a] / parts[a] as u64)
                    .cmp(&(total[b] / parts[b] as u64))
                    .then(b.cmp(&a))
            });
        match best {
            Some(i) => parts[i] += 1,
            None => break,
        }
    }
    for (k, kernel) in kernels.iter().enumerate() {
        let items: Vec<(usize, u64)> = scripts
            .iter()
            .enumerate()
            .map(|(i, s)| (i, costs.script(kernel, s)))
            .collect();
        for (members, cost) in balance(&items, parts[k]) {
            out.push(Shard {
                id: id(out.len() + 1),
                kernels: vec![kernel.clone()],
                scripts: Some(members.iter().map(|&i| scripts[i].clone()).collect()),
                cost_ms: cost + costs.boot(kernel),
            });
        }
    }
    while out.len() < n {
        out.push(Shard {
            id: id(out.len() + 1),
            kernels: Vec::new(),
            scripts: Some(Vec::new()),
            cost_ms: 0,
        });
    }
    out
}

/// The plan as a GitHub Actions matrix for `fromJSON`: `{"include":
/// [{"shard": "1/3", "kernels": "5.10,7.3", "scripts": "", "cost_s": 42}]}`
/// (`scripts` empty: every script). Empty shards are left out.
pub fn github_matrix(shards: &[Shard]) -> String {
    let include: Vec<serde_json::Value> = shards
        .iter()
        .filter(|s| !s.kernels.is_empty())
        .map(|s| {
            json!({
                "shard": s.id.to_string(),
                "kernels": s.kernels.join(","),
                "scripts": s.scripts.as_ref().map_or(String::new(), |v| v.join(",")),
                "cost_s": s.cost_ms.div_ceil(1000),
            })
        })
        .collect();
    json!({ "include": include }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn kernels_balance_by_cost_and_every_cell_is_in_one_shard() {
        let kernels = names(&["5.10", "6.1", "6.12", "7.0", "7.3"]);
        let scripts = names(&["a", "b"]);
        let mut costs = Costs::default();
        costs.boot_ms.insert("7.3".to_owned(), 100_000);
        let shards = plan(&kernels, &scripts, &costs, 3);
        assert_eq!(shards.len(), 3);
        // The costly kernel is alone.
        assert_eq!(shards[0].kernels, ["7.3"]);
        let mut all: Vec<String> = shards.iter().flat_map(|s| s.kernels.clone()).collect();
        all.sort();
        let mut expected = kernels.clone();
        expected.sort();
        assert_eq!(all, expected);
        assert_eq!(plan(&kernels, &scripts, &costs, 3), shards, "deterministic");
    }

    #[test]
    fn fewer_kernels_than_shards_split_scripts() {
        let kernels = names(&["6.1"]);
        let scripts = names(&["a", "b", "c", "d"]);
        let shards = plan(&kernels, &scripts, &Costs::default(), 3);
        assert_eq!(shards.len(), 3);
        let mut seen: Vec<String> = shards
            .iter()
            .flat_map(|s| s.scripts.clone().unwrap_or_default())
            .collect();
        seen.sort();
        assert_eq!(seen, scripts);
        assert!(shards.iter().all(|s| s.kernels == ["6.1"]));
        let matrix = github_matrix(&shards);
        assert!(matrix.starts_with("{\"include\":[{\"cost_s\":"), "{matrix}");
        let empty = plan(&kernels, &names(&["a"]), &Costs::default(), 2);
        assert_eq!(empty.len(), 2);
        assert!(empty[1].kernels.is_empty());
    }
}
