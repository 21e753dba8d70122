//! The artefact's maps read and written as bytes: aya reads maps through
//! types of fixed size, so every map the agent touches has a key and a
//! value size from the classes of `tapmatrix_ir::bpf` (the compiler pads to
//! them), and each class is one instance of a generic table here.

use anyhow::{Context, Result, bail};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};

/// One entry: its key, and its value on each CPU (one for shared maps).
pub(crate) type Entry = (Vec<u8>, Vec<Vec<u8>>);

/// A map as bytes: keys, and the value of each CPU (one for shared maps).
pub(crate) trait Table {
    /// Every entry.
    fn entries(&self) -> Result<Vec<Entry>>;
    /// Sets `key` (all CPUs but the first get zeros).
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Deletes every entry (arrays: nothing to delete).
    fn clear(&mut self) -> Result<()>;
}

fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn per_cpu<const V: usize>(value: &[u8]) -> Result<PerCpuValues<[u8; V]>> {
    let cpus = aya::util::nr_cpus().map_err(|(what, error)| anyhow::anyhow!("{what}: {error}"))?;
    let mut values = vec![[0u8; V]; cpus];
    if let Some(first) = values.first_mut() {
        *first = fixed::<V>(value);
    }
    Ok(PerCpuValues::try_from(values)?)
}

struct Hash<const K: usize, const V: usize>(HashMap<MapData, [u8; K], [u8; V]>);
struct PcpuHash<const K: usize, const V: usize>(PerCpuHashMap<MapData, [u8; K], [u8; V]>);
struct Arr<const V: usize>(Array<MapData, [u8; V]>);
struct PcpuArr<const V: usize>(PerCpuArray<MapData, [u8; V]>);

impl<const K: usize, const V: usize> Table for Hash<K, V> {
    fn entries(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for entry in self.0.iter() {
            let (key, value) = entry?;
            out.push((key.to_vec(), vec![value.to_vec()]));
        }
        Ok(out)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.0.insert(fixed::<K>(key), fixed::<V>(value), 0)?)
    }

    fn clear(&mut self) -> Result<()> {
        let keys: Vec<[u8; K]> = self.0.keys().collect::<Result<_, _>>()?;
        for key in keys {
            let _ = self.0.remove(&key);
        }
        Ok(())
    }
}

impl<const K: usize, const V: usize> Table for PcpuHash<K, V> {
    fn entries(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for entry in self.0.iter() {
            let (key, values) = entry?;
            out.push((key.to_vec(), values.iter().map(|v| v.to_vec()).collect()));
        }
        Ok(out)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.0.insert(fixed::<K>(key), per_cpu::<V>(value)?, 0)?)
    }

    fn clear(&mut self) -> Result<()> {
        let keys: Vec<[u8; K]> = self.0.keys().collect::<Result<_, _>>()?;
        for key in keys {
            let _ = self.0.remove(&key);
        }
        Ok(())
    }
}

impl<const V: usize> Table for Arr<V> {
    fn entries(&self) -> Result<Vec<Entry>> {
        let value = self.0.get(&0, 0)?;
        Ok(vec![(0u32.to_le_bytes().to_vec(), vec![value.to_vec()])])
    }

    fn put(&mut self, _key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.0.set(0, fixed::<V>(value), 0)?)
    }

    fn clear(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<const V: usize> Table for PcpuArr<V> {
    fn entries(&self) -> Result<Vec<Entry>> {
        let values = self.0.get(&0, 0)?;
        Ok(vec![(
            0u32.to_le_bytes().to_vec(),
            values.iter().map(|v| v.to_vec()).collect(),
        )])
    }

    fn put(&mut self, _key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.0.set(0, per_cpu::<V>(value)?, 0)?)
    }

    fn clear(&mut self) -> Result<()> {
        Ok(())
    }
}

fn hash_with_key<const K: usize>(map: Map, value: u32, per_cpu: bool) -> Result<Box<dyn Table>> {
    macro_rules! sized {
        ($($v:literal),*) => {
            match value {
                $($v => Ok(if per_cpu {
                    Box::new(PcpuHash::<K, $v>(PerCpuHashMap::try_from(map)?)) as Box<dyn Table>
                } else {
                    Box::new(Hash::<K, $v>(HashMap::try_from(map)?))
                }),)*
                other => bail!("no hash map table for values of {other} bytes"),
            }
        };
    }
    sized!(16, 64, 1024, 2048)
}

/// The table of a hash map (`per_cpu`: a per-CPU hash).
pub(crate) fn hash(map: Map, key: u32, value: u32, per_cpu: bool) -> Result<Box<dyn Table>> {
    match key {
        8 => hash_with_key::<8>(map, value, per_cpu),
        32 => hash_with_key::<32>(map, value, per_cpu),
        128 => hash_with_key::<128>(map, value, per_cpu),
        512 => hash_with_key::<512>(map, value, per_cpu),
        other => bail!("no hash map table for keys of {other} bytes"),
    }
}

/// The table of a one-entry array (`per_cpu`: a per-CPU array).
pub(crate) fn array(map: Map, value: u32, per_cpu: bool) -> Result<Box<dyn Table>> {
    macro_rules! sized {
        ($($v:literal),*) => {
            match value {
                $($v => Ok(if per_cpu {
                    Box::new(PcpuArr::<$v>(PerCpuArray::try_from(map)?)) as Box<dyn Table>
                } else {
                    Box::new(Arr::<$v>(Array::try_from(map)?))
                }),)*
                other => bail!("no array table for values of {other} bytes"),
            }
        };
    }
    let table: Result<Box<dyn Table>> =
        sized!(64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
    table.context("opening an array map")
}
