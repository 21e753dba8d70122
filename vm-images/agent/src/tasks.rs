//! Each task's state as it was at each hit, for the events that do not
//! record it: the thread group, the parent and the comm, followed through
//! the scheduler's task events in timestamp order with the hits, from a
//! snapshot of the workload's tasks taken when the item's events are
//! enabled (other tasks read from `/proc` when first seen).

use std::collections::HashMap;
use std::fs;

use tapmatrix_ir::{TaskEvent, Value};

use crate::ringbuf::{Field, Format};
use crate::tracefs;

/// `clone(2)`'s flag: the new task is a thread of the current one's group.
const CLONE_THREAD: i64 = 0x0001_0000;

/// `clone(2)`'s flag: the new task's parent is the current one's parent.
const CLONE_PARENT: i64 = 0x0000_8000;

/// The kernel's `TASK_COMM_LEN`, terminator included.
const TASK_COMM_LEN: usize = 16;

/// What a hit needs to know of its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Thread group id (`pid()`).
    pub tgid: i64,
    /// The parent's thread group id (`ppid()`).
    pub ppid: i64,
    /// Its comm (`execname()`).
    pub comm: String,
}

/// Every task seen, by thread id.
#[derive(Debug, Default)]
pub struct Tasks {
    tasks: HashMap<i64, Task>,
    /// The task events are followed: the table is the truth. Otherwise
    /// (no handler reads the task's state) a task is read from `/proc`
    /// when asked, and the table only remembers tasks gone since.
    followed: bool,
}

/// How one task event's records are read.
#[derive(Debug, Clone)]
pub struct TaskDecoder {
    /// Which event.
    pub event: TaskEvent,
    common_pid: Option<Field>,
    pid: Option<Field>,
    old_pid: Option<Field>,
    comm: Option<Field>,
    clone_flags: Option<Field>,
    filename: Option<Field>,
}

impl TaskDecoder {
    /// The decoder of `event`'s records, from its format.
    pub fn new(event: TaskEvent, format: &Format) -> TaskDecoder {
        let field = |name: &str| format.field(name).cloned();
        TaskDecoder {
            event,
            common_pid: field("common_pid"),
            pid: field("pid"),
            old_pid: field("old_pid"),
            comm: match event {
                TaskEvent::Rename => field("newcomm"),
                _ => field("comm"),
            },
            clone_flags: field("clone_flags"),
            filename: field("filename"),
        }
    }
}

fn long(field: Option<&Field>, record: &[u8]) -> Option<i64> {
    match field?.decode(record) {
        Value::Long(n) => Some(n),
        Value::Str(_) => None,
    }
}

fn text(field: Option<&Field>, record: &[u8]) -> Option<String> {
    match field?.decode(record) {
        Value::Str(s) => Some(s),
        Value::Long(_) => None,
    }
}

/// The comm a program gets when it is executed from `filename`: the last
/// path component, cut to the kernel's comm size.
fn exec_comm(filename: &str) -> String {
    let base = filename.rsplit('/').next().unwrap_or(filename);
    let mut end = base.len().min(TASK_COMM_LEN - 1);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    base[..end].to_owned()
}

impl Tasks {
    /// Tasks read from `/proc` when asked (no task events followed).
    pub fn unfollowed() -> Tasks {
        Tasks::default()
    }

    /// The threads of the processes `pids` (the workload, `stap -x`'s
    /// target) as `/proc` shows them now, followed from here by the task
    /// events. Every other task is read from `/proc` when first asked: at
    /// the events' enabling the guest runs only the agent, the workload
    /// held at its gate and kernel threads, which do not exec, so reading
    /// them later reads what they were then (reading all of `/proc` took
    /// about 10 ms an item under TCG).
    pub fn snapshot(pids: &[u32]) -> Tasks {
        let mut tasks = Tasks {
            followed: true,
            ..Tasks::default()
        };
        for &pid in pids.iter().filter(|&&pid| pid != 0) {
            let tgid = i64::from(pid);
            for thread in fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Some(tid) = thread
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i64>().ok())
                    && let Some(task) = from_proc(tid)
                {
                    tasks.tasks.insert(tid, Task { tgid, ..task });
                }
            }
        }
        tasks
    }

    /// The task `tid` as the events so far tell it (read from `/proc` the
    /// first time, for a task older than the snapshot; a task gone before
    /// it was ever seen keeps the comm tracefs saved for it).
    pub fn get(&mut self, tid: i64) -> Task {
        if !self.followed
            && let Some(task) = from_proc(tid)
        {
            self.tasks.insert(tid, task.clone());
            return task;
        }
        if let Some(task) = self.tasks.get(&tid) {
            return task.clone();
        }
        let task = from_proc(tid).unwrap_or_else(|| Task {
            tgid: tid,
            ppid: 0,
            comm: saved_comm(tid).unwrap_or_default(),
        });
        self.tasks.insert(tid, task.clone());
        task
    }

    /// Applies one task event's record.
    pub fn apply(&mut self, decoder: &TaskDecoder, record: &[u8]) {
        let current = long(decoder.common_pid.as_ref(), record).unwrap_or(0);
        match decoder.event {
            TaskEvent::NewTask => {
                let Some(child) = long(decoder.pid.as_ref(), record) else {
                    return;
                };
                let flags = long(decoder.clone_flags.as_ref(), record).unwrap_or(0);
                let parent = self.get(current);
                let comm = text(decoder.comm.as_ref(), record).unwrap_or(parent.comm.clone());
                let tgid = if flags & CLONE_THREAD != 0 {
                    parent.tgid
                } else {
                    child
                };
                let ppid = if flags & (CLONE_THREAD | CLONE_PARENT) != 0 {
                    parent.ppid
                } else {
                    parent.tgid
                };
                self.tasks.insert(child, Task { tgid, ppid, comm });
            }
            TaskEvent::Exec => {
                let pid = long(decoder.pid.as_ref(), record).unwrap_or(current);
                let old_pid = long(decoder.old_pid.as_ref(), record).unwrap_or(pid);
                let before = self.get(old_pid);
                if old_pid != pid {
                    // A thread that execs takes over its group leader's id.
                    self.tasks.remove(&old_pid);
                }
                let comm = text(decoder.filename.as_ref(), record)
                    .map_or(before.comm.clone(), |filename| exec_comm(&filename));
                self.tasks.insert(
                    pid,
                    Task {
                        tgid: pid,
                        ppid: before.ppid,
                        comm,
                    },
                );
            }
            TaskEvent::Rename => {
                let tid = long(decoder.pid.as_ref(), record).unwrap_or(current);
                if let Some(comm) = text(decoder.comm.as_ref(), record) {
                    let mut task = self.get(tid);
                    task.comm = comm;
                    self.tasks.insert(tid, task);
                }
            }
            TaskEvent::Exit => {
                let tid = long(decoder.pid.as_ref(), record).unwrap_or(current);
                let Some(task) = self.tasks.remove(&tid) else {
                    return;
                };
                // A group leader's children go to init (PID 1, the agent).
                if task.tgid == tid {
                    for other in self.tasks.values_mut() {
                        if other.ppid == tid {
                            other.ppid = 1;
                        }
                    }
                }
            }
        }
    }
}

/// A task as `/proc` shows it now.
fn from_proc(tid: i64) -> Option<Task> {
    let status = tracefs::read_text(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    Some(Task {
        tgid: field("Tgid")?.parse().ok()?,
        ppid: field("PPid")?.parse().ok()?,
        comm: field("Name")?.to_owned(),
    })
}

/// The comm tracefs saved for a task that has exited (`saved_cmdlines`:
/// the comm it had when it last ran after recording an event).
fn saved_comm(tid: i64) -> Option<String> {
    let text = tracefs::read_text(tracefs::path("saved_cmdlines")).ok()?;
    text.lines().find_map(|line| {
        let (pid, comm) = line.split_once(' ')?;
        (pid.parse::<i64>().ok()? == tid).then(|| comm.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_names_the_task_by_the_program_file() {
        assert_eq!(exec_comm("/proc/self/exe"), "exe");
        assert_eq!(exec_comm("/bin/sh"), "sh");
        assert_eq!(exec_comm("a_very_long_program_name"), "a_very_long_pro");
    }

    const NEWTASK: &str = "name: task_newtask\nID: 137\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;\n\tfield:u64 clone_flags;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:short oom_score_adj;\toffset:40;\tsize:2;\tsigned:1;\n";
    const EXEC: &str = "name: sched_process_exec\nID: 303\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n";

    fn new_task(parent: i32, child: i32, comm: &str, flags: u64) -> Vec<u8> {
        let mut record = vec![0u8; 48];
        record[4..8].copy_from_slice(&parent.to_le_bytes());
        record[8..12].copy_from_slice(&child.to_le_bytes());
        record[12..12 + comm.len()].copy_from_slice(comm.as_bytes());
        record[32..40].copy_from_slice(&flags.to_le_bytes());
        record
    }

    fn exec(pid: i32, filename: &str) -> Vec<u8> {
        let mut record = vec![0u8; 20];
        record[4..8].copy_from_slice(&pid.to_le_bytes());
        let location = (u32::try_from(filename.len() + 1).unwrap() << 16) | 20;
        record[8..12].copy_from_slice(&location.to_le_bytes());
        record[12..16].copy_from_slice(&pid.to_le_bytes());
        record[16..20].copy_from_slice(&pid.to_le_bytes());
        record.extend_from_slice(filename.as_bytes());
        record.push(0);
        record
    }

    #[test]
    fn forks_threads_and_execs_are_followed_in_order() {
        let newtask = TaskDecoder::new(TaskEvent::NewTask, &Format::parse(NEWTASK).unwrap());
        let exec_decoder = TaskDecoder::new(TaskEvent::Exec, &Format::parse(EXEC).unwrap());
        let mut tasks = Tasks {
            followed: true,
            ..Tasks::default()
        };
        tasks.tasks.insert(
            10,
            Task {
                tgid: 10,
                ppid: 1,
                comm: "sh".into(),
            },
        );
        tasks.apply(&newtask, &new_task(10, 11, "sh", 0x11));
        tasks.apply(
            &newtask,
            &new_task(11, 12, "sh", 0x0001_0f00 | CLONE_THREAD as u64),
        );
        let sh = |tgid, ppid| Task {
            tgid,
            ppid,
            comm: "sh".into(),
        };
        assert_eq!(tasks.get(11), sh(11, 10));
        assert_eq!(tasks.get(12), sh(11, 10));
        // The exec is seen before the handlers of the same record: the
        // kernel has renamed the task by then.
        tasks.apply(&exec_decoder, &exec(11, "/proc/self/exe"));
        assert_eq!(
            tasks.get(11),
            Task {
                tgid: 11,
                ppid: 10,
                comm: "exe".into()
            }
        );
    }
}
