//! Kernel symbols for `symname()` and `symdata()`: the kernel's and its
//! modules' functions by address, parsed from the text of
//! `/proc/kallsyms`, which the agent reads in the guest (the runtime reads
//! no file of the kernel). The guest's own table is exact for the booted
//! kernel: it has the modules loaded in that boot at their addresses, and
//! the addresses KASLR chose.
//!
//! kallsyms has no sizes: a symbol extends to the next symbol of any kind
//! (the end of the kernel's text is marked by `_etext` and the like), as
//! SystemTap estimates a function's size from a symbol table.

/// One symbol: its address and where its name is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u64,
    /// Offset and length of the name in [`Symbols::names`].
    name: (u32, u16),
    /// Index of the module in [`Symbols::modules`]; 0 is the kernel.
    module: u16,
    /// A function (`T`, `t`, `W`, `w`): only functions are named.
    text: bool,
}

/// The symbols of a kernel, sorted by address.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    entries: Vec<Entry>,
    names: String,
    modules: Vec<String>,
}

/// The function an address is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located<'a> {
    /// Its name.
    pub name: &'a str,
    /// The address's offset from its start.
    pub offset: u64,
    /// Its size (up to the next symbol); 0 when it is the last one.
    pub size: u64,
    /// `kernel`, or the module's name.
    pub module: &'a str,
}

impl Symbols {
    /// The symbols of a `/proc/kallsyms` text (`ADDRESS TYPE NAME
    /// [\t[MODULE]]` per line; lines that do not read so are skipped).
    pub fn from_kallsyms(text: &str) -> Symbols {
        let mut symbols = Symbols {
            entries: Vec::new(),
            names: String::new(),
            modules: vec!["kernel".to_owned()],
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(address), Some(kind), Some(name)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Ok(address) = u64::from_str_radix(address, 16) else {
                continue;
            };
            let (Ok(start), Ok(len)) = (
                u32::try_from(symbols.names.len()),
                u16::try_from(name.len()),
            ) else {
                continue;
            };
            let module = match words.next() {
                Some(module) => {
                    let module = module.trim_start_matches('[').trim_end_matches(']');
                    match symbols.modules.iter().position(|m| m == module) {
                        Some(index) => index,
                        None => {
                            symbols.modules.push(module.to_owned());
                            symbols.modules.len() - 1
                        }
                    }
                }
                None => 0,
            };
            let Ok(module) = u16::try_from(module) else {
                continue;
            };
            symbols.names.push_str(name);
            symbols.entries.push(Entry {
                address,
                name: (start, len),
                module,
                text: matches!(kind, "T" | "t" | "W" | "w"),
            });
        }
        // Stable: of symbols at one address, the first listed names it.
        symbols.entries.sort_by_key(|e| e.address);
        symbols
    }

    /// Symbols known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn name(&self, entry: &Entry) -> &str {
        let (start, len) = entry.name;
        let start = start as usize;
        self.names
            .get(start..start + usize::from(len))
            .unwrap_or("")
    }

    /// The function `address` is in, if any.
    pub fn locate(&self, address: u64) -> Option<Located<'_>> {
        let after = self.entries.partition_point(|e| e.address <= address);
        let index = after.checked_sub(1)?;
        // The first symbol at that address.
        let first = self.entries[..=index]
            .iter()
            .rposition(|e| e.address != self.entries[index].address)
            .map_or(0, |i| i + 1);
        let entry = self.entries.get(first)?;
        if !entry.text {
            return None;
        }
        let next = self.entries[after..]
            .iter()
            .find(|e| e.address > entry.address)
            .map(|e| e.address);
        Some(Located {
            name: self.name(entry),
            offset: address - entry.address,
            size: next.map_or(0, |next| next - entry.address),
            module: self
                .modules
                .get(usize::from(entry.module))
                .map_or("kernel", String::as_str),
        })
    }

    /// `symname(address)`: the function's name, or the address in hex.
    pub fn symname(&self, address: u64) -> String {
        match self.locate(address) {
            Some(found) => found.name.to_owned(),
            None => hex(address),
        }
    }

    /// `symdata(address)`: `name+0xoffset/0xsize [module]`, or the address
    /// in hex.
    pub fn symdata(&self, address: u64) -> String {
        match self.locate(address) {
            Some(found) => format!(
                "{}+{:#x}/{:#x} [{}]",
                found.name, found.offset, found.size, found.module
            ),
            None => hex(address),
        }
    }
}

/// An address as SystemTap prints a pointer: `0x` and 16 hex digits.
pub fn hex(address: u64) -> String {
    format!("0x{address:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81000000 T _text
ffffffff81000000 T startup_64
ffffffff812c4f30 T vfs_read
ffffffff812c5100 T vfs_write
ffffffff812c5100 T alias_of_write
ffffffff812c5300 t ksys_read
ffffffff81e00000 T _etext
ffffffff82000000 D some_data
ffffffffc0001000 t ext4_read\t[ext4]
ffffffffc0001080 t ext4_write\t[ext4]
";

    #[test]
    fn addresses_read_as_symname_and_symdata_do() {
        let symbols = Symbols::from_kallsyms(KALLSYMS);
        assert_eq!(symbols.len(), 10);
        assert_eq!(symbols.symname(0xffffffff812c4f30), "vfs_read");
        assert_eq!(
            symbols.symdata(0xffffffff812c4f30),
            "vfs_read+0x0/0x1d0 [kernel]"
        );
        assert_eq!(
            symbols.symdata(0xffffffff812c5165),
            "vfs_write+0x65/0x200 [kernel]"
        );
        assert_eq!(
            symbols.symdata(0xffffffffc0001010),
            "ext4_read+0x10/0x80 [ext4]"
        );
        // The first name at an address; data and unknown addresses in hex.
        assert_eq!(symbols.symname(0xffffffff81000010), "_text");
        assert_eq!(symbols.symname(0xffffffff82000008), "0xffffffff82000008");
        assert_eq!(symbols.symname(0x10), "0x0000000000000010");
        assert_eq!(
            symbols.symdata(0xffffffffc0001090),
            "ext4_write+0x10/0x0 [ext4]"
        );
    }

    #[test]
    fn lines_that_do_not_read_are_skipped() {
        let symbols = Symbols::from_kallsyms("nonsense\nzz T x\nffffffff81000000 T ok\n");
        assert_eq!(symbols.len(), 1);
        assert_eq!(symbols.symname(0xffffffff81000001), "ok");
    }
}
