//! Docker's multiplexed stream framing, used by attach and logs when the container has no
//! TTY: each frame is an 8-byte header `[stream, 0, 0, 0, len (u32 big-endian)]` and `len`
//! bytes of payload.

/// Which standard stream a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

impl Stream {
    /// The stream for a header byte, if it names one.
    pub fn from_byte(b: u8) -> Option<Stream> {
        match b {
            0 => Some(Stream::Stdin),
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            _ => None,
        }
    }

    /// The name json-file logs use for this stream.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Length of a frame header.
pub const HEADER_LEN: usize = 8;

/// The header for a frame of `len` bytes on `stream`.
pub fn header(stream: Stream, len: usize) -> [u8; HEADER_LEN] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream as u8, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Appends one frame carrying `payload` to `out`.
pub fn encode(stream: Stream, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&header(stream, payload.len()));
    out.extend_from_slice(payload);
}

/// Splits a header into its stream and payload length; `None` for an unknown stream.
pub fn parse_header(h: &[u8; HEADER_LEN]) -> Option<(Stream, usize)> {
    let stream = Stream::from_byte(h[0])?;
    Some((stream, u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let mut buf = Vec::new();
        encode(Stream::Stderr, b"oops\n", &mut buf);
        assert_eq!(&buf[..8], &[2, 0, 0, 0, 0, 0, 0, 5]);
        let h: [u8; 8] = buf[..8].try_into().unwrap();
        assert_eq!(parse_header(&h), Some((Stream::Stderr, 5)));
        assert_eq!(&buf[8..], b"oops\n");
        assert_eq!(parse_header(&[7, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
