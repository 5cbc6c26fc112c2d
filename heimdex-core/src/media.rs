//! Content sniffing: is this object a video container or an audio file, judging by its first
//! bytes (and failing that, its name)?

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
    /// WAV (RIFF ... WAVE).
    Wav,
    /// FLAC (`fLaC`).
    Flac,
    /// MPEG audio (MP3, with or without an ID3 tag) or AAC in ADTS frames.
    MpegAudio,
    /// Content unknown (or not looked at: connectors that list by name), but the name has a
    /// video or audio extension ([`has_media_extension`]): listed so that its job can fail
    /// with a reason instead of the file silently disappearing. The name predates audio
    /// support and is kept for compatibility of stored listings.
    UnknownWithVideoExtension,
}

impl MediaKind {
    /// True when the content itself was recognised.
    pub fn recognised(self) -> bool {
        self != Self::UnknownWithVideoExtension
    }

    /// True for kinds that only ever hold audio (an MP4 or Ogg may hold either).
    pub fn audio_only(self) -> bool {
        matches!(self, Self::Wav | Self::Flac | Self::MpegAudio)
    }
}

/// Extensions treated as video names.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "qt", "mkv", "webm", "avi", "mts", "m2ts", "ts", "mpg", "mpeg", "vob",
    "flv", "wmv", "asf", "ogv", "mxf", "3gp", "3g2", "dv",
];

/// Extensions treated as audio names: audio-only media (interviews, voice memos, music) is
/// indexed too, by its transcript.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "mp3", "m4a", "m4b", "aac", "wav", "flac", "opus", "ogg", "oga", "wma", "aif", "aiff",
];

fn has_extension(name: &str, list: &[&str]) -> bool {
    name.rsplit_once('.')
        .map(|(_, ext)| list.iter().any(|v| v.eq_ignore_ascii_case(ext)))
        .unwrap_or(false)
}

/// True if `name` ends with one of [`VIDEO_EXTENSIONS`] (case-insensitive).
pub fn has_video_extension(name: &str) -> bool {
    has_extension(name, VIDEO_EXTENSIONS)
}

/// True if `name` ends with one of [`VIDEO_EXTENSIONS`] or [`AUDIO_EXTENSIONS`]
/// (case-insensitive): the names a connector that lists by name offers for indexing.
pub fn has_media_extension(name: &str) -> bool {
    has_extension(name, VIDEO_EXTENSIONS) || has_extension(name, AUDIO_EXTENSIONS)
}

/// Classify an object by its first bytes (`head`, ideally [`SNIFF_LEN`] of them) and its name.
/// Returns `None` when it is neither recognisable media content nor named like media.
pub fn sniff(head: &[u8], name: &str) -> Option<MediaKind> {
    sniff_content(head)
        .or_else(|| has_media_extension(name).then_some(MediaKind::UnknownWithVideoExtension))
}

/// An MPEG audio (MP3) or ADTS (AAC) frame header at the start of `h`: 11 sync bits, then
/// fields whose reserved values a real header never has.
fn mpeg_audio_frame(h: &[u8]) -> bool {
    let [a, b, c, ..] = *h else {
        return false;
    };
    if a != 0xFF || b & 0xE0 != 0xE0 {
        return false;
    }
    let version = (b >> 3) & 0b11;
    let layer = (b >> 1) & 0b11;
    if layer == 0 {
        // ADTS (AAC): MPEG version bit pattern 0b11/0b10 with layer 00; the sampling
        // frequency index 13..=15 is reserved.
        return b & 0xF6 == 0xF0 && (c >> 2) & 0x0F < 13;
    }
    let bitrate = c >> 4;
    let rate = (c >> 2) & 0b11;
    version != 0b01 && bitrate != 0b1111 && rate != 0b11
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
        if &h[0..4] == b"RIFF" && &h[8..12] == b"WAVE" {
            return Some(MediaKind::Wav);
        }
    }
    if h.starts_with(b"fLaC") {
        return Some(MediaKind::Flac);
    }
    if h.starts_with(b"ID3") && h.len() >= 10 && h[3] < 0xFF && h[4] < 0xFF {
        return Some(MediaKind::MpegAudio);
    }
    if mpeg_audio_frame(h) {
        return Some(MediaKind::MpegAudio);
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
    fn recognises_audio_files_by_content() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.resize(44, 0);
        assert_eq!(sniff(&wav, "x"), Some(MediaKind::Wav));
        assert_eq!(sniff(b"fLaC\0\0\0\x22", "x"), Some(MediaKind::Flac));
        assert_eq!(
            sniff(b"ID3\x04\0\0\0\0\0\x10rest", "x"),
            Some(MediaKind::MpegAudio)
        );
        // MPEG-1 layer III, 128 kbit/s, 44.1 kHz.
        assert_eq!(
            sniff(&[0xFF, 0xFB, 0x90, 0x64], "x"),
            Some(MediaKind::MpegAudio)
        );
        // ADTS AAC, 44.1 kHz (index 4).
        assert_eq!(
            sniff(&[0xFF, 0xF1, 0x50, 0x80], "x"),
            Some(MediaKind::MpegAudio)
        );
        // Sync bits with reserved fields are not audio.
        assert_eq!(sniff(&[0xFF, 0xFF, 0xFF, 0xFF], "x"), None);
        assert_eq!(sniff(&[0xFF, 0xF9, 0xFC, 0x00], "x"), None);
        assert!(MediaKind::Wav.audio_only() && !MediaKind::IsoBmff.audio_only());
        assert!(has_media_extension("a/b/interview.Flac"));
        assert!(!has_video_extension("a/b/interview.flac"));
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
        assert_eq!(
            sniff(b"not audio", "memo.M4A"),
            Some(MediaKind::UnknownWithVideoExtension)
        );
        assert_eq!(sniff(b"", "noext"), None);
    }
}
