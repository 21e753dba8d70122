//! Statistics (`<<<`) and their histograms, as SystemTap's runtime keeps
//! and prints them (`runtime/stat.c`, `runtime/stat-common.c`).

use std::fmt::Write as _;

use tapmatrix_ir::HistSpec;

/// Buckets of a `@hist_log`: 64 for negatives, one for 0, 63 positives.
const LOG_BUCKETS: usize = 128;
/// The bucket of 0 in a `@hist_log`.
const LOG_BUCKET0: usize = 64;
/// Width of a histogram's bar (`HIST_WIDTH`).
const HIST_WIDTH: i64 = 50;
/// Empty buckets shown around data before eliding (`HIST_ELISION`).
const HIST_ELISION: i64 = 2;

/// The shape of a histogram with its bucket count resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `@hist_log`.
    Log,
    /// `@hist_linear`: bucket 0 is the underflow, the last the overflow.
    Linear {
        /// Low bound.
        start: i64,
        /// Bucket width.
        interval: i64,
        /// Buckets, under- and overflow included.
        buckets: usize,
    },
}

impl Shape {
    /// The shape of `spec`, or SystemTap's complaint about it.
    pub(crate) fn of(spec: HistSpec) -> Result<Shape, String> {
        let buckets = spec.bucket_count()?;
        Ok(match spec {
            HistSpec::Log => Shape::Log,
            HistSpec::Linear {
                start, interval, ..
            } => Shape::Linear {
                start,
                interval,
                buckets,
            },
        })
    }

    /// How many buckets.
    pub(crate) fn buckets(self) -> usize {
        match self {
            Shape::Log => LOG_BUCKETS,
            Shape::Linear { buckets, .. } => buckets,
        }
    }

    /// The bucket of `value`.
    fn bucket(self, value: i64) -> usize {
        match self {
            Shape::Log => log_bucket(value),
            Shape::Linear {
                start,
                interval,
                buckets,
            } => {
                let offset = value.wrapping_sub(start);
                let index = if offset < 0 {
                    0
                } else {
                    (offset as u64 / interval as u64).saturating_add(1)
                };
                usize::try_from(index)
                    .unwrap_or(usize::MAX)
                    .min(buckets - 1)
            }
        }
    }
}

/// `_stp_val_to_bucket`: log2 buckets around `LOG_BUCKET0`.
fn log_bucket(value: i64) -> usize {
    if value == 0 {
        return LOG_BUCKET0;
    }
    let magnitude = value.unsigned_abs();
    // Bits needed: 1 for 1, 2 for 2..3, ...; SystemTap's `res`.
    let bits = 64 - magnitude.leading_zeros() as usize;
    let res = LOG_BUCKET0 + bits;
    let res = if value < 0 { LOG_BUCKETS - res } else { res };
    res.min(LOG_BUCKETS - 1)
}

/// `_stp_bucket_to_val`: the low value of a log bucket.
fn log_bucket_value(bucket: usize) -> i64 {
    if bucket == LOG_BUCKET0 {
        0
    } else if bucket < LOG_BUCKET0 {
        i64::MIN >> bucket
    } else {
        1i64.wrapping_shl((bucket - LOG_BUCKET0 - 1) as u32)
    }
}

/// One statistic: SystemTap's `stat_data`, with the running variance of
/// Welford's algorithm exactly as its integer arithmetic computes it.
#[derive(Debug, Clone)]
pub(crate) struct Stat {
    /// `@count`.
    pub(crate) count: i64,
    /// `@sum`.
    pub(crate) sum: i64,
    /// `@min`.
    pub(crate) min: i64,
    /// `@max`.
    pub(crate) max: i64,
    avg_s: i64,
    m2: i64,
    variance_s: i64,
    shift: u32,
    hist: Option<(Shape, Vec<i64>)>,
}

impl Stat {
    /// An empty statistic; `shift` is `@variance`'s bit shift.
    pub(crate) fn new(shape: Option<Shape>, shift: u32) -> Stat {
        Stat {
            count: 0,
            sum: 0,
            min: 0,
            max: 0,
            avg_s: 0,
            m2: 0,
            variance_s: 0,
            shift,
            hist: shape.map(|shape| (shape, vec![0; shape.buckets()])),
        }
    }

    /// `s <<< value` (`__stp_stat_add`).
    pub(crate) fn add(&mut self, value: i64) {
        let scaled = value.wrapping_shl(self.shift);
        if self.count == 0 {
            self.count = 1;
            self.sum = value;
            self.min = value;
            self.max = value;
            self.avg_s = scaled;
            self.m2 = 0;
        } else {
            self.count += 1;
            self.sum = self.sum.wrapping_add(value);
            self.max = self.max.max(value);
            self.min = self.min.min(value);
            let delta = scaled.wrapping_sub(self.avg_s);
            self.avg_s = self.avg_s.wrapping_add(div64(delta, self.count));
            self.m2 = self
                .m2
                .wrapping_add(delta.wrapping_mul(scaled.wrapping_sub(self.avg_s)));
            self.variance_s = if self.count < 2 {
                -1
            } else {
                div64(self.m2, self.count - 1)
            };
        }
        if let Some((shape, buckets)) = &mut self.hist {
            let bucket = shape.bucket(value);
            if let Some(slot) = buckets.get_mut(bucket) {
                *slot += 1;
            }
        }
    }

    /// The histogram's buckets (empty without one).
    pub(crate) fn buckets(&self) -> &[i64] {
        self.hist
            .as_ref()
            .map_or(&[], |(_, buckets)| buckets.as_slice())
    }

    /// Takes the aggregates another executor kept (`@variance` then reads
    /// as the variance of a constant series of the mean).
    pub(crate) fn set_aggregates(&mut self, value: &crate::globals::StatValue) {
        self.count = value.count;
        self.sum = value.sum;
        self.min = value.min;
        self.max = value.max;
        self.avg_s = div64(value.sum.wrapping_shl(self.shift), value.count);
        self.m2 = 0;
        self.variance_s = if value.count < 2 { -1 } else { 0 };
        if let Some((_, buckets)) = &mut self.hist {
            for (mine, theirs) in buckets.iter_mut().zip(&value.buckets) {
                *mine = *theirs;
            }
        }
    }

    /// `@avg`: the truncated mean.
    pub(crate) fn avg(&self) -> i64 {
        div64(self.sum, self.count)
    }

    /// `@variance` (`_stp_stat_get` on one CPU).
    pub(crate) fn variance(&self) -> i64 {
        let agg_avg_s = div64(self.sum.wrapping_shl(self.shift), self.count);
        let spread = self.avg_s.wrapping_sub(agg_avg_s);
        let s1 = self.count.wrapping_mul(spread).wrapping_mul(spread);
        let s2 = (self.count - 1).wrapping_mul(self.variance_s);
        let variance_s = div64(s1.wrapping_add(s2), self.count - 1);
        variance_s >> (2 * self.shift).min(63)
    }

    /// The count in `bucket`, if the statistic has such a bucket.
    pub(crate) fn bucket(&self, bucket: i64) -> Option<i64> {
        let (_, buckets) = self.hist.as_ref()?;
        let index = usize::try_from(bucket).ok()?;
        buckets.get(index).copied()
    }

    /// How many buckets its histogram has (0 without one).
    pub(crate) fn bucket_count(&self) -> usize {
        self.hist.as_ref().map_or(0, |(shape, _)| shape.buckets())
    }

    /// The histogram as SystemTap prints it
    /// (`_stp_stat_print_histogram_buf`); "" without one.
    pub(crate) fn render_histogram(&self) -> String {
        let Some((shape, hist)) = &self.hist else {
            return String::new();
        };
        render(*shape, hist)
    }
}

/// `_stp_div64` without its error: a zero divisor gives 0.
fn div64(x: i64, y: i64) -> i64 {
    match y {
        0 => 0,
        -1 => x.wrapping_neg(),
        _ => x / y,
    }
}

/// `needed_space`: the printed width of `value`.
fn needed_space(value: i64) -> i64 {
    if value == 0 {
        return 1;
    }
    let sign = i64::from(value < 0);
    let mut magnitude = value.unsigned_abs();
    let mut digits = 0;
    while magnitude != 0 {
        magnitude /= 10;
        digits += 1;
    }
    sign + digits
}

fn render(shape: Shape, hist: &[i64]) -> String {
    let buckets = hist.len() as i64;
    let at = |i: i64| usize::try_from(i).ok().and_then(|i| hist.get(i)).copied();
    let mut low: i64 = -1;
    let mut high: i64 = 0;
    let mut valmax: i64 = 0;
    for (i, &count) in hist.iter().enumerate() {
        let i = i as i64;
        if count > 0 && low == -1 {
            low = i;
        }
        if count > 0 {
            high = i;
        }
        valmax = valmax.max(count);
    }
    let linear = matches!(shape, Shape::Linear { .. });
    for _ in 0..2 {
        if linear {
            if low > 0 {
                low -= 1;
            }
        } else if low != LOG_BUCKET0 as i64 && low > 0 {
            low -= 1;
        }
        if high < buckets - 1 {
            high += 1;
        }
    }
    let (mut under, mut over) = (0, 0);
    if linear {
        if low == 0 && at(0) == Some(0) {
            low += 1;
        }
        if high == buckets - 1 && at(high) == Some(0) {
            high -= 1;
        }
        if low == 0 {
            under = 1;
        }
        if high == buckets - 1 {
            over = 1;
        }
    }
    let scale = if valmax <= HIST_WIDTH {
        1
    } else {
        (valmax + HIST_WIDTH - 1) / HIST_WIDTH
    };
    let cnt_space = needed_space(valmax);
    let val_space = match shape {
        Shape::Linear {
            start, interval, ..
        } => (needed_space(start) + under)
            .max(needed_space(start.wrapping_add(interval.wrapping_mul(high))) + over),
        Shape::Log => needed_space(log_bucket_value(high.max(0) as usize))
            .max(needed_space(log_bucket_value(low.max(0) as usize))),
    }
    .max(5);
    let width = |n: i64| usize::try_from(n).unwrap_or(0);

    let mut out = String::new();
    let _ = write!(out, "{:>w$} |", "value", w = width(val_space));
    out.push_str(&"-".repeat(width(HIST_WIDTH)));
    out.push_str(" count\n");
    let mut eliding = false;
    let mut i = low;
    while i <= high {
        let count = at(i).unwrap_or(0);
        // Elide a zero row whose neighbours within HIST_ELISION are zero.
        let max_elide = HIST_ELISION.min(buckets);
        let from = (i - max_elide).max(low);
        let to = (i + max_elide).min(high);
        if (from..=to).all(|k| at(k).unwrap_or(0) == 0) {
            eliding = true;
            i += 1;
            continue;
        }
        if eliding {
            let _ = writeln!(out, "{:>w$} ~", "", w = width(val_space));
            eliding = false;
        }
        let (value, prefix) = match shape {
            Shape::Linear {
                start, interval, ..
            } => {
                if i == 0 {
                    (start, "<")
                } else if i == buckets - 1 {
                    (start.wrapping_add((i - 2).wrapping_mul(interval)), ">")
                } else {
                    (start.wrapping_add((i - 1).wrapping_mul(interval)), "")
                }
            }
            Shape::Log => (log_bucket_value(i.max(0) as usize), ""),
        };
        let _ = write!(
            out,
            "{:>w$}{} |",
            prefix,
            value,
            w = width(val_space - needed_space(value))
        );
        let bar = count / scale;
        out.push_str(&"@".repeat(width(bar)));
        let _ = writeln!(
            out,
            "{:>w$}",
            count,
            w = width(HIST_WIDTH - bar + 1 + cnt_space)
        );
        i += 1;
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_of(shape: Shape, values: &[i64]) -> Stat {
        let mut stat = Stat::new(Some(shape), 0);
        for &v in values {
            stat.add(v);
        }
        stat
    }

    #[test]
    fn log_buckets_follow_systemtap() {
        assert_eq!(log_bucket(0), 64);
        assert_eq!(log_bucket(1), 65);
        assert_eq!(log_bucket(2), 66);
        assert_eq!(log_bucket(3), 66);
        assert_eq!(log_bucket(4), 67);
        assert_eq!(log_bucket(-1), 63);
        assert_eq!(log_bucket_value(65), 1);
        assert_eq!(log_bucket_value(67), 4);
        assert_eq!(log_bucket_value(63), -1);
        assert_eq!(log_bucket_value(62), -2);
    }

    #[test]
    fn a_log_histogram_prints_as_systemtap() {
        // Counts 1,2,4 in buckets 1, 2..3, 4..7; two zero rows each side.
        let stat = stat_of(Shape::Log, &[1, 2, 3, 4, 5, 6, 7]);
        let expected = "\
value |-------------------------------------------------- count
    0 |                                                   0
    1 |@                                                  1
    2 |@@                                                 2
    4 |@@@@                                               4
    8 |                                                   0
   16 |                                                   0

";
        assert_eq!(stat.render_histogram(), expected);
    }

    #[test]
    fn empty_rows_between_data_are_elided() {
        let stat = stat_of(Shape::Log, &[1, 1024]);
        let expected = "\
value |-------------------------------------------------- count
    0 |                                                   0
    1 |@                                                  1
    2 |                                                   0
    4 |                                                   0
      ~
  256 |                                                   0
  512 |                                                   0
 1024 |@                                                  1
 2048 |                                                   0
 4096 |                                                   0

";
        assert_eq!(stat.render_histogram(), expected);
    }

    #[test]
    fn bars_scale_to_fifty_columns() {
        let values = vec![8; 120];
        let stat = stat_of(Shape::Log, &values);
        let rendered = stat.render_histogram();
        let row = rendered
            .lines()
            .find(|l| l.starts_with("    8 |"))
            .unwrap_or_default();
        // scale = ceil(120 / 50) = 3 → 40 '@', count right-aligned.
        assert_eq!(row, format!("    8 |{}{:>14}", "@".repeat(40), 120));
    }

    #[test]
    fn a_linear_histogram_shows_under_and_overflow() {
        let shape = Shape::of(HistSpec::Linear {
            start: 0,
            stop: 100,
            interval: 10,
        })
        .unwrap();
        let stat = stat_of(shape, &[-5, 15, 15, 150]);
        let expected = "\
value |-------------------------------------------------- count
   <0 |@                                                  1
    0 |                                                   0
   10 |@@                                                 2
   20 |                                                   0
   30 |                                                   0
      ~
   90 |                                                   0
  100 |                                                   0
 >100 |@                                                  1

";
        assert_eq!(stat.render_histogram(), expected);
    }

    #[test]
    fn the_langref_hist_linear_example() {
        // SystemTap Language Reference 8.4.1: print(@hist_linear(reads, 0,
        // 10240, 200)) with 1650 reads under 200 bytes, 8 of 200..399 and
        // one of 1400..1599 (the HTML page drops the leading blanks).
        let shape = Shape::of(HistSpec::Linear {
            start: 0,
            stop: 10240,
            interval: 200,
        })
        .unwrap();
        let mut values = vec![100; 1650];
        values.extend([300; 8]);
        values.push(1500);
        let row = |value: &str, bar: usize, count: &str| {
            format!(
                "{:>5} |{}{:>w$}",
                value,
                "@".repeat(bar),
                count,
                w = 55 - bar
            )
        };
        let expected = [
            "value |-------------------------------------------------- count".to_owned(),
            row("0", 50, "1650"),
            row("200", 0, "8"),
            row("400", 0, "0"),
            row("600", 0, "0"),
            "      ~".to_owned(),
            row("1000", 0, "0"),
            row("1200", 0, "0"),
            row("1400", 0, "1"),
            row("1600", 0, "0"),
            row("1800", 0, "0"),
            String::new(),
            String::new(),
        ]
        .join("\n");
        assert_eq!(stat_of(shape, &values).render_histogram(), expected);
    }

    #[test]
    fn variance_matches_the_integer_welford() {
        let stat = stat_of(Shape::Log, &[1, 2, 3, 4]);
        assert_eq!(stat.avg(), 2);
        // The sample variance of 1..4 is 1.67; without a bit shift,
        // SystemTap's integer Welford (the running mean stuck at 1) and the
        // total-variance correction give 16 / 3.
        assert_eq!(stat.variance(), 5);
        let one = stat_of(Shape::Log, &[5]);
        assert_eq!(one.variance(), 0);
    }
}
