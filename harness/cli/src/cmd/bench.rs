//! `tapmatrix bench ...`: timings the project has targets for.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tapmatrix_vm::{Accel, VmOptions, floor_many, harvest_many};

use crate::exit::{Status, infra_error, input_error};

/// `tapmatrix bench` subcommands.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Harvest wall time against its floor: booting the same kernels to a
    /// bare busybox shell that powers off, with the same parallelism.
    Harvest(HarvestBenchArgs),
}

/// `tapmatrix bench harvest` options.
#[derive(Args)]
pub struct HarvestBenchArgs {
    /// Kernel images to boot.
    #[arg(long, required = true, num_args = 1..)]
    vmlinuz: Vec<PathBuf>,
    /// Boots at a time (default: the number of cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Accelerator: auto, kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: Accel,
    /// Rounds to run; each side's best round counts.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Keep each boot's directory (console logs, harvests) under DIR.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// Runs a `bench` subcommand.
pub fn run(command: BenchCommand) -> anyhow::Result<Status> {
    match command {
        BenchCommand::Harvest(args) => harvest(&args),
    }
}

fn harvest(args: &HarvestBenchArgs) -> anyhow::Result<Status> {
    for path in &args.vmlinuz {
        if !path.is_file() {
            return Err(input_error(anyhow::anyhow!(
                "no kernel image at {}",
                path.display()
            )));
        }
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let scratch = tempfile::tempdir()?;
    let root = args
        .keep
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let options = VmOptions {
        accel: args.accel,
        ..VmOptions::default()
    };
    let accel = options.accel.resolve();
    let pairs = |what: &str| -> Vec<(PathBuf, PathBuf)> {
        args.vmlinuz
            .iter()
            .enumerate()
            .map(|(index, path)| (path.clone(), root.join(format!("{what}-{index}"))))
            .collect()
    };
    // Warm the caches (unpacked kernels, images) so neither side pays for them.
    for path in &args.vmlinuz {
        tapmatrix_vm::bootable_kernel(path, &options.cache_dir);
    }
    let warm = pairs("warm");
    floor_many(&warm[..1], &options, 1);
    // Alternate the two sides round by round and keep each side's best wall
    // time, so that load from other processes does not land on one side only.
    let mut best_floor = Duration::MAX;
    let mut best_harvest = Duration::MAX;
    for round in 1..=args.rounds.max(1) {
        let (floor_wall, floors) =
            timed(|| floor_many(&pairs(&format!("floor{round}")), &options, jobs));
        let (harvest_wall, harvests) = timed(|| {
            // A fresh directory per round: clearing an earlier harvest is no part of one.
            harvest_many(&pairs(&format!("harvest{round}")), &options, jobs)
        });
        for ((path, floor), harvest) in args.vmlinuz.iter().zip(&floors).zip(&harvests) {
            let failed = |error: &dyn std::fmt::Display| {
                infra_error(anyhow::anyhow!("{}: {error}", path.display()))
            };
            let floor = floor.as_ref().map_err(|error| failed(error))?;
            let report = harvest.as_ref().map_err(|error| failed(error))?;
            println!(
                "round {round}: {}: bare boot {:.2}s, harvest {:.2}s ({} files, {:.1} MB)",
                report.release,
                floor.as_secs_f64(),
                report.wall.as_secs_f64(),
                report.files,
                report.bytes as f64 / 1e6
            );
        }
        println!(
            "round {round}: all kernels: bare boot {:.2}s, harvest {:.2}s",
            floor_wall.as_secs_f64(),
            harvest_wall.as_secs_f64()
        );
        best_floor = best_floor.min(floor_wall);
        best_harvest = best_harvest.min(harvest_wall);
    }
    println!(
        "{} kernels, -j {jobs}, accel {}, best of {}: harvest {:.2}s, floor {:.2}s, ratio {:.2} (aim: 1.3)",
        args.vmlinuz.len(),
        accel.name(),
        args.rounds.max(1),
        best_harvest.as_secs_f64(),
        best_floor.as_secs_f64(),
        best_harvest.as_secs_f64() / best_floor.as_secs_f64()
    );
    Ok(Status::Success)
}

/// Runs `work` and measures its wall time.
fn timed<R>(work: impl FnOnce() -> R) -> (Duration, R) {
    let started = Instant::now();
    let result = work();
    (started.elapsed(), result)
}
