//! Keeping the shim small: one runs per container, so its resident memory is paid 50 or
//! 500 times over.

use std::io::BufRead;

/// Drops the page-table entries of every read-only file mapping whose pages are all still
/// clean (our own code and constants, libc).
///
/// Creating and starting a container touch most of libcontainer's code, and those pages
/// would stay resident for the container's whole life although the supervise loop never
/// runs them again. Clean file pages lose nothing when dropped: the few the loop needs
/// fault straight back in from the page cache. Writable mappings, and read-only ones with
/// private copies (relocated data), are left alone, since dropping those would lose their
/// contents.
pub fn release_unused_code() {
    let Ok(smaps) = std::fs::File::open("/proc/self/smaps") else {
        return;
    };
    let mut candidate: Option<(usize, usize)> = None;
    let mut release = Vec::new();
    for line in std::io::BufReader::new(smaps).lines().map_while(Result::ok) {
        if let Some(range) = mapping_header(&line) {
            candidate = range;
        } else if let Some(kb) = line.strip_prefix("Anonymous:") {
            let clean = kb.trim().trim_end_matches("kB").trim() == "0";
            if let (Some(range), true) = (candidate.take(), clean) {
                release.push(range);
            }
        }
    }
    for (start, end) in release {
        // SAFETY: the range is a whole read-only file mapping of this process with no private
        // pages; MADV_DONTNEED only discards page-table entries, which refault from the file.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// For a mapping header line of smaps: `Some(Some(range))` if it is a read-only private
/// file mapping, `Some(None)` for any other mapping, `None` for a field line.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next().unwrap_or("");
    let path = fields.nth(3).unwrap_or("");
    let read_only_file = perms.starts_with('r')
        && perms.as_bytes().get(1) == Some(&b'-')
        && perms.ends_with('p')
        && path.starts_with('/');
    Some(read_only_file.then_some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_only_read_only_file_mappings() {
        assert_eq!(
            mapping_header("7f00-7f10 r-xp 00000000 fd:00 12 /usr/lib/libc.so.6"),
            Some(Some((0x7f00, 0x7f10)))
        );
        assert_eq!(
            mapping_header("7f00-7f10 r--p 00000000 fd:00 12 /bin/x"),
            Some(Some((0x7f00, 0x7f10)))
        );
        assert_eq!(
            mapping_header("7f00-7f10 rw-p 00000000 fd:00 12 /bin/x"),
            Some(None)
        );
        assert_eq!(
            mapping_header("7f00-7f10 r-xp 00000000 00:00 0 [vdso]"),
            Some(None)
        );
        assert_eq!(mapping_header("Anonymous:             0 kB"), None);
        release_unused_code();
        // Still alive and able to run code after dropping it.
        assert_eq!(format!("{}", 1 + 1), "2");
    }
}
