//! Content sniffing: is this object a video container, judging by its first bytes?

use serde::{Deserialize, Serialize};

/// How many leading bytes [`sniff`] wants to see.
pub const SNIFF_LEN: usize = 4096;

/// What an object's first bytes (and, failing that, its name) say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// ISO base media (MP4, MOV, 3GP, M4V): an `ftyp`/`moov`/`mdat`/... box at offset 0.
    IsoBmff,
    /// Matroska / WebM (EBML header).
    Matroska,
    /// AVI (RIFF ... AVI).
    Avi,
    /// MPEG transport stream (0x47 sync bytes every 188 bytes).
    MpegTs,
    /// MPEG program stream (pack header 0x000001BA).
    MpegPs,
    /// Flash video.
    Flv,
    /// ASF / WMV.
    Asf,
    /// Ogg (may carry Theora video).
    Ogg,
    /// MXF (SMPTE 377M header partition key).
    Mxf,
    /// Content unknown, but the name has a video extension: listed so that its job can fail
    /// with a reason instead of the file silently disappearing.
    UnknownWithVideoExtension,
}

impl MediaKind {
    /// True when the content itself was recognised.
    pub fn recognised(self) -> bool {
        self != Self::UnknownWithVideoExtension
    }
}

/// Extensions treated as video names.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "qt", "mkv", "webm", "avi", "mts", "m2ts", "ts", "mpg", "mpeg", "vob",
    "flv", "wmv", "asf", "ogv", "mxf", "3gp", "3g2", "dv",
];

/// True if `name` ends with one of [`VIDEO_EXTENSIONS`] (case-insensitive).
pub fn has_video_extension(name: &str) -> bool {
    name.rsplit_once('.')
        .map(|(_, ext)| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(ext)))
        .unwrap_or(false)
}

/// Classify an object by its first bytes (`head`, ideally [`SNIFF_LEN`] of them) and its name.
/// Returns `None` when it is neither recognisable video content nor named like a video.
pub fn sniff(head: &[u8], name: &str) -> Option<MediaKind> {
    sniff_content(head)
        .or_else(|| has_video_extension(name).then_some(MediaKind::UnknownWithVideoExtension))
}

/// Classify by content alone.
pub fn sniff_content(h: &[u8]) -> Option<MediaKind> {
    if h.len() >= 12 {
        let box_type = &h[4..8];
        const ISO_BOXES: [&[u8; 4]; 7] = [
            b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot",
        ];
        if ISO_BOXES.iter().any(|b| box_type == *b) {
            // Audio-only ISO files (M4A) still count: FFmpeg will tell later.
            return Some(MediaKind::IsoBmff);
        }
        if &h[0..4] == b"RIFF" && &h[8..12] == b"AVI " {
            return Some(MediaKind::Avi);
        }
    }
    if h.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(MediaKind::Matroska);
    }
    if h.starts_with(b"FLV\x01") {
        return Some(MediaKind::Flv);
    }
    if h.starts_with(&[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]) {
        return Some(MediaKind::Asf);
    }
    if h.starts_with(b"OggS") {
        return Some(MediaKind::Ogg);
    }
    if h.starts_with(&[0x06, 0x0E, 0x2B, 0x34, 0x02, 0x05, 0x01, 0x01]) {
        return Some(MediaKind::Mxf);
    }
    if h.starts_with(&[0x00, 0x00, 0x01, 0xBA]) {
        return Some(MediaKind::MpegPs);
    }
    // Transport streams: 188-byte packets (or 192 with a 4-byte timecode prefix, M2TS).
    for (packet, offset) in [(188usize, 0usize), (192, 4)] {
        if h.len() > offset + packet * 3
            && (0..4).all(|i| h.get(offset + i * packet) == Some(&0x47))
        {
            return Some(MediaKind::MpegTs);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_containers_by_content_not_name() {
        let mut mp4 = vec![0, 0, 0, 0x20];
        mp4.extend_from_slice(b"ftypisom");
        mp4.resize(64, 0);
        assert_eq!(sniff(&mp4, "clip.bin"), Some(MediaKind::IsoBmff));
        assert_eq!(
            sniff(&[0x1A, 0x45, 0xDF, 0xA3, 1, 2], "x"),
            Some(MediaKind::Matroska)
        );
        let mut ts = vec![0u8; 188 * 4];
        for i in 0..4 {
            ts[i * 188] = 0x47;
        }
        assert_eq!(sniff(&ts, "noext"), Some(MediaKind::MpegTs));
        let mut avi = b"RIFF\0\0\0\0AVI LIST".to_vec();
        avi.resize(32, 0);
        assert_eq!(sniff(&avi, "a"), Some(MediaKind::Avi));
    }

    #[test]
    fn unknown_content_with_video_name_is_still_a_candidate() {
        assert_eq!(
            sniff(b"hello world, not a video", "broken.MP4"),
            Some(MediaKind::UnknownWithVideoExtension)
        );
        assert_eq!(
            sniff(b"", "empty.mov"),
            Some(MediaKind::UnknownWithVideoExtension)
        );
        assert_eq!(sniff(b"hello world, not a video", "notes.txt"), None);
        assert_eq!(sniff(b"", "noext"), None);
    }
}
