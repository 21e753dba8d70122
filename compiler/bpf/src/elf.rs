//! The ELF writer: an EM_BPF relocatable object as aya (and libbpf) read
//! one: a code section per program type holding one sized function
//! symbol per program, a `license` section, the maps as `struct
//! bpf_map_def` entries in a legacy `maps` section (one object symbol
//! each), and an `R_BPF_64_64` relocation on every 64-bit immediate load
//! that names a map.

use object::write::{Object, Relocation, SectionId, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope, elf,
};
use tapmatrix_ir::bpf::BpfMap;

use crate::asm::Code;
use crate::error::BpfError;
use crate::insn::encode_all;

/// One program for the object.
#[derive(Debug, Clone)]
pub struct ElfProgram<'a> {
    /// Its symbol.
    pub name: &'a str,
    /// Its section (`kprobe`, `kretprobe`, `tracepoint`, `raw_tp`,
    /// `perf_event`): the program type.
    pub section: &'static str,
    /// The code.
    pub code: &'a Code,
}

/// The size of a legacy `struct bpf_map_def` as aya reads it: type, key
/// size, value size, max entries, flags, id, pinning.
const MAP_DEF_SIZE: usize = 28;

/// Writes the object.
pub fn write_object(programs: &[ElfProgram<'_>], maps: &[BpfMap]) -> Result<Vec<u8>, BpfError> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.set_section_data(license, b"GPL\0".to_vec(), 1);

    let mut map_symbols = Vec::new();
    if !maps.is_empty() {
        let section = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
        for map in maps {
            let mut def = Vec::with_capacity(MAP_DEF_SIZE);
            for word in [
                map.kind.number(),
                map.key_size,
                map.value_size,
                map.max_entries,
                0,
                0,
                0,
            ] {
                def.extend_from_slice(&word.to_le_bytes());
            }
            let offset = obj.append_section_data(section, &def, 4);
            map_symbols.push(obj.add_symbol(Symbol {
                name: map.name.as_bytes().to_vec(),
                value: offset,
                size: MAP_DEF_SIZE as u64,
                kind: SymbolKind::Data,
                scope: SymbolScope::Linkage,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            }));
        }
    }

    let mut sections: Vec<(&'static str, SectionId)> = Vec::new();
    for program in programs {
        let section = match sections.iter().find(|(name, _)| *name == program.section) {
            Some((_, id)) => *id,
            None => {
                let id = obj.add_section(
                    Vec::new(),
                    program.section.as_bytes().to_vec(),
                    SectionKind::Text,
                );
                sections.push((program.section, id));
                id
            }
        };
        let bytes = encode_all(&program.code.insns);
        let offset = obj.append_section_data(section, &bytes, 8);
        obj.add_symbol(Symbol {
            name: program.name.as_bytes().to_vec(),
            value: offset,
            size: bytes.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
        for &(slot, map) in &program.code.maps {
            let symbol = *map_symbols
                .get(map)
                .ok_or(BpfError::Internal("a load of a map the object lacks"))?;
            obj.add_relocation(
                section,
                Relocation {
                    offset: offset + 8 * slot as u64,
                    symbol,
                    addend: 0,
                    flags: RelocationFlags::Elf {
                        r_type: elf::R_BPF_64_64,
                    },
                },
            )
            .map_err(|e| BpfError::Object(e.to_string()))?;
        }
    }
    obj.write().map_err(|e| BpfError::Object(e.to_string()))
}

/// A program read back: its name, instructions, and (wide load, map name)
/// relocations.
pub type ProgramListing = (String, Vec<crate::insn::Insn>, Vec<(usize, String)>);

/// Each program of an object written by [`write_object`]: its name, its
/// instructions, and the map each relocated wide load names (instruction
/// index, map symbol). Used by the dump and the tests.
pub fn read_programs(bytes: &[u8]) -> Vec<ProgramListing> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};
    let Ok(file) = object::File::parse(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for symbol in file.symbols() {
        if symbol.kind() != SymbolKind::Text {
            continue;
        }
        let (Ok(name), Some(index)) = (symbol.name(), symbol.section_index()) else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let Ok(data) = section.data() else {
            continue;
        };
        let start = symbol.address() as usize;
        let end = start + symbol.size() as usize;
        let Some(code) = data.get(start..end) else {
            continue;
        };
        let insns = crate::insn::decode_all(code);
        let mut maps = Vec::new();
        for (offset, relocation) in section.relocations() {
            let offset = offset as usize;
            if offset < start || offset >= end {
                continue;
            }
            if let RelocationTarget::Symbol(target) = relocation.target()
                && let Ok(map) = file.symbol_by_index(target)
                && let Ok(map_name) = map.name()
            {
                maps.push(((offset - start) / 8, map_name.to_owned()));
            }
        }
        out.push((name.to_owned(), insns, maps));
    }
    out
}
