//! Detach keys: the key sequence that ends an attach (or exec) session with a TTY while the
//! container keeps running. Both sides watch for it, as in Docker: the daemon on the stdin
//! it receives, the CLI on the keys it reads, so any client can detach.

/// ctrl-p, ctrl-q: Docker's default.
pub const DEFAULT_KEYS: [u8; 2] = [16, 17];

/// Parses a detach key spec such as `ctrl-p,ctrl-q` or `ctrl-a,x`, as Docker does: a list of
/// single characters, `ctrl-@` … `ctrl-_` and `DEL`. The error is Docker's wording.
pub fn parse(spec: &str) -> Result<Vec<u8>, String> {
    spec.split(',')
        .map(|key| {
            if key.len() == 1 {
                return Ok(key.as_bytes()[0]);
            }
            if key == "DEL" {
                return Ok(127);
            }
            match key.strip_prefix("ctrl-").map(str::as_bytes) {
                // ctrl-@ is 0, ctrl-a … ctrl-z are 1 … 26; ctrl-[ \ ] ^ _ are 27 … 31.
                Some([c @ b'a'..=b'z']) => Ok(c - b'a' + 1),
                Some([c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')]) => Ok(c - b'@'),
                _ => Err(format!("Unknown character: '{key}'")),
            }
        })
        .collect()
}

/// Watches a byte stream for the detach sequence. Bytes that may begin the sequence are
/// held back until the next byte decides; if it does not continue the sequence they are
/// passed on unchanged, followed by that byte (which, as in Docker, does not start a new
/// match itself).
#[derive(Debug, Clone)]
pub struct Scanner {
    keys: Vec<u8>,
    matched: usize,
}

/// What one chunk of input amounts to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// The bytes to pass on.
    pub forward: Vec<u8>,
    /// The whole sequence was read: detach (input after it is not looked at).
    pub detach: bool,
}

impl Scanner {
    /// A scanner for `keys`; Docker's default when empty.
    pub fn new(keys: &[u8]) -> Scanner {
        let keys = if keys.is_empty() {
            DEFAULT_KEYS.to_vec()
        } else {
            keys.to_vec()
        };
        Scanner { keys, matched: 0 }
    }

    /// Feeds one chunk of input.
    pub fn feed(&mut self, data: &[u8]) -> Scanned {
        let mut forward = Vec::with_capacity(data.len() + self.matched);
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return Scanned {
                        forward,
                        detach: true,
                    };
                }
                continue;
            }
            forward.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            forward.push(b);
        }
        Scanned {
            forward,
            detach: false,
        }
    }

    /// The input ended: what was held back is passed on after all.
    pub fn finish(&mut self) -> Vec<u8> {
        let held = self.keys[..self.matched].to_vec();
        self.matched = 0;
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_key_specs() {
        assert_eq!(parse("ctrl-p,ctrl-q"), Ok(vec![16, 17]));
        assert_eq!(parse("ctrl-a,x"), Ok(vec![1, b'x']));
        assert_eq!(
            parse("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,DEL"),
            Ok(vec![0, 27, 28, 29, 30, 31, 127])
        );
        assert_eq!(parse("foo"), Err("Unknown character: 'foo'".to_string()));
        assert_eq!(parse("ctrl-p,"), Err("Unknown character: ''".to_string()));
        assert_eq!(
            parse("ctrl-A"),
            Err("Unknown character: 'ctrl-A'".to_string())
        );
    }

    #[test]
    fn detects_the_sequence_across_chunks() {
        let mut s = Scanner::new(&[]);
        assert_eq!(
            s.feed(b"ls\x10"),
            Scanned {
                forward: b"ls".to_vec(),
                detach: false
            }
        );
        assert_eq!(
            s.feed(b"\x11rest"),
            Scanned {
                forward: vec![],
                detach: true
            }
        );
        let mut s = Scanner::new(&[]);
        assert_eq!(
            s.feed(b"ab\x10\x11cd"),
            Scanned {
                forward: b"ab".to_vec(),
                detach: true
            }
        );
    }

    #[test]
    fn passes_partial_matches_through() {
        let mut s = Scanner::new(&[1, b'x']);
        assert_eq!(s.feed(b"\x01"), Scanned::default());
        assert_eq!(
            s.feed(b"y\x01"),
            Scanned {
                forward: b"\x01y".to_vec(),
                detach: false
            }
        );
        assert_eq!(s.finish(), vec![1]);
        // The byte that breaks a match is passed on, not taken as a new start (as Docker).
        let mut s = Scanner::new(&[]);
        assert_eq!(
            s.feed(b"\x10\x10\x11"),
            Scanned {
                forward: b"\x10\x10\x11".to_vec(),
                detach: false
            }
        );
    }
}
