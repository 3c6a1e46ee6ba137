//! The pod sandbox image, made by the agent itself so that no registry is
//! needed: a root holding one `/pause` program, a hand-assembled static
//! ELF of about 130 bytes that waits forever (x86-64: `pause()` in a loop;
//! aarch64: `ppoll()` with no timeout in a loop). Imported into the runtime
//! as [`SANDBOX_IMAGE`] when missing.

/// The sandbox image's name.
pub const SANDBOX_IMAGE: &str = concat!("bosun/pause:", env!("CARGO_PKG_VERSION"));

const LOAD_ADDRESS: u64 = 0x40_0000;
const HEADERS: usize = 64 + 56;

/// x86-64: `mov eax, 34 (pause); syscall; jmp back`.
const X86_64_CODE: &[u8] = &[0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7];

/// aarch64: x0..x3 = 0, x8 = 73 (ppoll); svc #0; branch back to the start.
const AARCH64_CODE: &[u32] = &[
    0xd280_0000, // mov x0, #0
    0xd280_0001, // mov x1, #0
    0xd280_0002, // mov x2, #0
    0xd280_0003, // mov x3, #0
    0xd280_0928, // mov x8, #73
    0xd400_0001, // svc #0
    0x17ff_fffa, // b -24
];

/// A static ELF executable for `machine` running `code` from the start.
fn elf(machine: u16, code: &[u8]) -> Vec<u8> {
    let size = (HEADERS + code.len()) as u64;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    out.extend_from_slice(&(LOAD_ADDRESS + HEADERS as u64).to_le_bytes()); // entry
    out.extend_from_slice(&64u64.to_le_bytes()); // program headers right after
    out.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&64u16.to_le_bytes()); // ELF header size
    out.extend_from_slice(&56u16.to_le_bytes()); // program header size
    out.extend_from_slice(&1u16.to_le_bytes()); // one program header
    out.extend_from_slice(&[0; 6]); // no sections
    out.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    out.extend_from_slice(&5u32.to_le_bytes()); // R + X
    out.extend_from_slice(&0u64.to_le_bytes()); // from file offset 0
    out.extend_from_slice(&LOAD_ADDRESS.to_le_bytes()); // virtual address
    out.extend_from_slice(&LOAD_ADDRESS.to_le_bytes()); // physical address
    out.extend_from_slice(&size.to_le_bytes()); // file size
    out.extend_from_slice(&size.to_le_bytes()); // memory size
    out.extend_from_slice(&0x1000u64.to_le_bytes()); // alignment
    out.extend_from_slice(code);
    out
}

/// The pause program for this machine's architecture.
fn pause_program() -> Option<Vec<u8>> {
    match std::env::consts::ARCH {
        "x86_64" => Some(elf(0x3e, X86_64_CODE)),
        "aarch64" => Some(elf(
            0xb7,
            &AARCH64_CODE.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<_>>(),
        )),
        _ => None,
    }
}

/// The root filesystem of the sandbox image as a tar archive, or `None` on
/// an architecture without a pause program (load [`SANDBOX_IMAGE`] by
/// other means there).
pub fn pause_image_tar() -> Option<Vec<u8>> {
    let program = pause_program()?;
    let mut header = tar::Header::new_gnu();
    header.set_size(program.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_cksum();
    let mut archive = tar::Builder::new(Vec::new());
    archive.append_data(&mut header, "pause", program.as_slice()).ok()?;
    archive.into_inner().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_a_small_static_elf() {
        let program = elf(0x3e, X86_64_CODE);
        assert_eq!(&program[..4], b"\x7fELF");
        assert_eq!(program.len(), HEADERS + X86_64_CODE.len());
        let entry = u64::from_le_bytes(program[24..32].try_into().unwrap());
        assert_eq!(entry, LOAD_ADDRESS + HEADERS as u64);
    }

    #[test]
    fn the_image_holds_only_pause() {
        if let Some(tar) = pause_image_tar() {
            let mut archive = tar::Archive::new(tar.as_slice());
            let names: Vec<String> = archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            assert_eq!(names, vec!["pause"]);
        }
    }

    /// The x86-64 program really runs and goes to sleep in the kernel.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_pause_program_runs_and_sleeps() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pause");
        std::fs::write(&path, pause_program().unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = std::process::Command::new(&path).spawn().unwrap();
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let sleeping = loop {
            let state = std::fs::read_to_string(&stat).unwrap_or_default();
            // The state follows the parenthesised command name.
            let state = state.rsplit(") ").next().and_then(|rest| rest.chars().next());
            if state == Some('S') || std::time::Instant::now() > deadline {
                break state;
            }
            std::thread::yield_now();
        };
        assert!(child.try_wait().unwrap().is_none(), "pause must keep running");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(sleeping, Some('S'), "pause sleeps in the kernel");
    }
}
