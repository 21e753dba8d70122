//! Globals in and out of the runtime: another executor (the BPF back end's
//! maps in the kernel) keeps some globals while events run, and the
//! runtime runs `begin`, `end`, `error` and timer probes over them. The
//! agent reads each global the kernel kept into a [`GlobalValue`] and
//! hands it in with [`crate::Runtime::set_global`] before running host
//! probes, and reads what they wrote with [`crate::Runtime::global`].

use tapmatrix_ir::Value;

use crate::array::{Array, Elem};
use crate::machine::Slot;
use crate::stats::Stat;

/// A global's value, outside the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalValue {
    /// A long or a string.
    Scalar(Value),
    /// A statistic.
    Stat(StatValue),
    /// An array's entries, oldest first (unsorted `foreach` visits them in
    /// this order).
    Array(Vec<(Vec<Value>, Element)>),
}

/// An array element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// A long or a string.
    Value(Value),
    /// A statistic.
    Stat(StatValue),
}

/// A statistic's aggregates as another executor keeps them (merged over
/// CPUs): enough for `@count`, `@sum`, `@min`, `@max`, `@avg` and the
/// histogram; `@variance` needs the runtime's own running state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatValue {
    /// `@count`.
    pub count: i64,
    /// `@sum`.
    pub sum: i64,
    /// `@min` (meaningless when `count` is 0).
    pub min: i64,
    /// `@max`.
    pub max: i64,
    /// The histogram's buckets in the runtime's order (`@hist_log`: 128
    /// buckets, bucket 64 holds 0; `@hist_linear`: underflow first,
    /// overflow last); empty when the statistic has no histogram.
    pub buckets: Vec<i64>,
}

impl StatValue {
    /// Adds another CPU's part (min and max only where it has values).
    pub fn merge(&mut self, other: &StatValue) {
        if other.count > 0 {
            if self.count == 0 {
                self.min = other.min;
                self.max = other.max;
            } else {
                self.min = self.min.min(other.min);
                self.max = self.max.max(other.max);
            }
        }
        self.count = self.count.wrapping_add(other.count);
        self.sum = self.sum.wrapping_add(other.sum);
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.wrapping_add(*theirs);
        }
    }
}

impl Stat {
    fn export(&self) -> StatValue {
        StatValue {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            buckets: self.buckets().to_vec(),
        }
    }
}

/// The outside view of a global's storage.
pub(crate) fn export(slot: &Slot) -> GlobalValue {
    match slot {
        Slot::Scalar(value) => GlobalValue::Scalar(value.clone()),
        Slot::Stat(stat) => GlobalValue::Stat(stat.export()),
        Slot::Array(array) => GlobalValue::Array(
            array
                .iter()
                .map(|(key, elem)| {
                    let elem = match elem {
                        Elem::Value(value) => Element::Value(value.clone()),
                        Elem::Stat(stat) => Element::Stat(stat.export()),
                    };
                    (key.clone(), elem)
                })
                .collect(),
        ),
    }
}

/// Replaces a global's storage with `value`; a value of the wrong shape
/// for the slot is ignored (the agent and the compiler agree on shapes).
pub(crate) fn import(slot: &mut Slot, value: GlobalValue, fresh_stat: &dyn Fn() -> Stat) {
    match (slot, value) {
        (Slot::Scalar(current), GlobalValue::Scalar(value)) => *current = value,
        (Slot::Stat(current), GlobalValue::Stat(value)) => {
            *current = fresh_stat();
            current.set_aggregates(&value);
        }
        (Slot::Array(array), GlobalValue::Array(entries)) => {
            let mut fresh: Array = array.emptied();
            for (key, elem) in entries {
                let elem = match elem {
                    Element::Value(value) => Elem::Value(value),
                    Element::Stat(value) => {
                        let mut stat = fresh_stat();
                        stat.set_aggregates(&value);
                        Elem::Stat(stat)
                    }
                };
                // More entries than the array holds: the oldest go when it
                // wraps; otherwise the rest are dropped (the kernel's map
                // has the same limit, so this does not happen).
                if let Ok(slot) = fresh.entry(&key, || elem.clone()) {
                    *slot = elem;
                }
            }
            *array = fresh;
        }
        _ => {}
    }
}
