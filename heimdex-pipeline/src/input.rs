//! Opening a [`MediaRead`] through FFmpeg custom I/O, and reading technical metadata.
//!
//! The reader is handed to FFmpeg as an `AVIOContext` with read and seek callbacks
//! (`avio_alloc_context`, `AVSEEK_SIZE` answered from `Seek::seek(End(0))`), attached to the
//! format context's `pb` with `AVFMT_FLAG_CUSTOM_IO` before `avformat_open_input`. This is done
//! by ffmpeg-next's `StreamIo` + `format::input_from_stream`, which also owns the freeing order
//! (`avformat_close_input` first, which leaves a custom `pb` alone, then the AVIO buffer and
//! context, then the boxed reader). No temporary file and no path is ever involved.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, Once};

use ffmpeg_next::format::context::{Input, StreamIo};
use ffmpeg_next::{self as ff, media};
use heimdex_core::sidecar::{StreamInfo, StreamKind, Technical};

use crate::{MediaRead, PipelineError, ffi};

/// FFmpeg's `AV_NOPTS_VALUE`.
pub(crate) const NOPTS: i64 = i64::MIN;

static INIT: Once = Once::new();

/// Initialise FFmpeg once. FFmpeg's own logging is lowered to `fatal`: every problem the
/// pipeline cares about is returned as a [`PipelineError`], and decoder chatter about damaged
/// packets would otherwise go straight to the process's stderr.
pub(crate) fn init() {
    INIT.call_once(|| {
        if let Err(e) = ff::init() {
            tracing::warn!(error = %e, "ffmpeg init failed");
        }
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// Remembers the last `io::Error` the reader returned, so that an FFmpeg failure caused by the
/// byte source can be reported as [`PipelineError::Io`] with the original error.
#[derive(Clone, Default)]
pub(crate) struct IoErrorSlot(Arc<Mutex<Option<std::io::Error>>>);

impl IoErrorSlot {
    pub(crate) fn take(&self) -> Option<std::io::Error> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
    fn record(&self, e: &std::io::Error) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
    }
}

struct Recording {
    inner: Box<dyn MediaRead>,
    slot: IoErrorSlot,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != std::io::ErrorKind::Interrupted {
                self.slot.record(e);
            }
        })
    }
}

impl Seek for Recording {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos).inspect_err(|e| self.slot.record(e))
    }
}

/// An opened input plus what we learned while opening it.
pub(crate) struct Opened {
    pub input: Input,
    pub technical: Technical,
    pub io_errors: IoErrorSlot,
}

/// A container family recognised from the first bytes, used only to word errors and to
/// decide whether a low-confidence FFmpeg guess is trusted. Video containers come from
/// [`heimdex_core::media::sniff_content`]; a few audio-only signatures are added here because
/// [`crate::probe`] accepts audio files too.
fn sniff(head: &[u8]) -> Option<&'static str> {
    use heimdex_core::media::MediaKind;
    if let Some(kind) = heimdex_core::media::sniff_content(head) {
        return Some(match kind {
            MediaKind::IsoBmff => "MP4/QuickTime",
            MediaKind::Matroska => "Matroska/WebM",
            MediaKind::Avi => "AVI",
            MediaKind::MpegTs => "MPEG transport stream",
            MediaKind::MpegPs => "MPEG program stream",
            MediaKind::Flv => "FLV",
            MediaKind::Asf => "ASF/WMV",
            MediaKind::Ogg => "Ogg",
            MediaKind::Mxf => "MXF",
            _ => "a media container",
        });
    }
    let at = |magic: &[u8]| head.starts_with(magic);
    if at(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        Some("WAV")
    } else if at(b"ID3") || at(b"fLaC") || at(b"OggS") {
        Some("an audio file")
    } else {
        None
    }
}

/// Open `reader` with FFmpeg through custom I/O and read its technical metadata.
pub(crate) fn open(mut reader: Box<dyn MediaRead>) -> Result<Opened, PipelineError> {
    init();
    let size = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    if size == 0 {
        return Err(PipelineError::NotMedia {
            reason: "the file is empty (0 bytes)".into(),
        });
    }
    let mut head = [0u8; heimdex_core::media::SNIFF_LEN];
    let mut got = 0;
    while got < head.len() {
        let n = reader.read(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    reader.seek(SeekFrom::Start(0))?;
    let family = sniff(&head[..got]);

    let slot = IoErrorSlot::default();
    let rec = Recording {
        inner: reader,
        slot: slot.clone(),
    };
    let io = StreamIo::from_read_seek(rec)
        .map_err(|e| PipelineError::ffmpeg("allocating custom I/O", e))?;
    let input = match ff::format::input_from_stream(io, None, None) {
        Ok(i) => i,
        Err(e) => {
            if let Some(ioe) = slot.take() {
                return Err(PipelineError::Io(ioe));
            }
            return Err(match family {
                Some(kind) => PipelineError::Corrupt {
                    reason: format!(
                        "the data starts like {kind} but FFmpeg cannot read it ({e}); the file is probably truncated or damaged"
                    ),
                },
                None => PipelineError::NotMedia {
                    reason: format!("no audio/video format recognised in {size} bytes ({e})"),
                },
            });
        }
    };
    // A very low probe score means FFmpeg merely guessed (random bytes can look like raw MPEG
    // audio); without a container signature we do not trust such a guess.
    let has_av = input.streams().any(|s| {
        matches!(
            s.parameters().medium(),
            media::Type::Video | media::Type::Audio
        )
    });
    if family.is_none() && (input.probe_score() <= 25 || !has_av) {
        return Err(PipelineError::NotMedia {
            reason: format!(
                "no audio/video format recognised in {size} bytes (best guess '{}' at confidence {}/100)",
                input.format().name(),
                input.probe_score()
            ),
        });
    }
    if !has_av {
        return Err(PipelineError::Corrupt {
            reason: "the container holds no readable audio or video stream".into(),
        });
    }
    let technical = technical(&input);
    Ok(Opened {
        input,
        technical,
        io_errors: slot,
    })
}

fn seconds(ts: i64, tb: ff::Rational) -> Option<f64> {
    if ts == NOPTS || ts < 0 || tb.denominator() == 0 {
        return None;
    }
    Some(ts as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator()))
}

fn nonzero_u32(v: u32) -> Option<u32> {
    (v > 0).then_some(v)
}

fn technical(input: &Input) -> Technical {
    let tags: BTreeMap<String, String> = input
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let duration = input.duration();
    let duration_s = (duration != NOPTS && duration > 0)
        .then(|| duration as f64 / f64::from(ff::ffi::AV_TIME_BASE));
    let streams = input
        .streams()
        .map(|s| {
            let params = s.parameters();
            let kind = match params.medium() {
                media::Type::Video => StreamKind::Video,
                media::Type::Audio => StreamKind::Audio,
                media::Type::Subtitle => StreamKind::Subtitle,
                media::Type::Data => StreamKind::Data,
                _ => StreamKind::Other,
            };
            let codec = params.id().name().to_owned();
            let bitrate = u64::try_from(params.bit_rate()).ok().filter(|b| *b > 0);
            let d = ffi::codec_details(params);
            let fps = {
                let r = s.avg_frame_rate();
                (kind == StreamKind::Video && r.numerator() > 0 && r.denominator() > 0)
                    .then(|| f64::from(r.numerator()) / f64::from(r.denominator()))
            };
            let language = s
                .metadata()
                .get("language")
                .filter(|l| *l != "und")
                .map(str::to_owned);
            let is_video = kind == StreamKind::Video;
            let is_audio = kind == StreamKind::Audio;
            let rotation = if is_video { stream_rotation(&s) } else { 0 };
            // Width and height as displayed: a quarter turn swaps them.
            let (width, height) = if rotation % 180 == 90 {
                (d.height, d.width)
            } else {
                (d.width, d.height)
            };
            StreamInfo {
                index: u32::try_from(s.index()).unwrap_or(u32::MAX),
                kind,
                codec,
                profile: d.profile,
                duration_s: seconds(s.duration(), s.time_base()),
                bitrate,
                width: if is_video { nonzero_u32(width) } else { None },
                height: if is_video { nonzero_u32(height) } else { None },
                rotation: (rotation != 0).then_some(rotation),
                fps,
                frames: u64::try_from(s.frames()).ok().filter(|f| *f > 0),
                pix_fmt: if is_video { d.pix_fmt } else { None },
                sample_rate: if is_audio {
                    nonzero_u32(d.sample_rate)
                } else {
                    None
                },
                channels: if is_audio {
                    nonzero_u32(d.channels)
                } else {
                    None
                },
                language,
            }
        })
        .collect();
    Technical {
        container: input.format().name().to_owned(),
        container_long: Some(input.format().description().to_owned()).filter(|s| !s.is_empty()),
        duration_s,
        bitrate: u64::try_from(input.bit_rate()).ok().filter(|b| *b > 0),
        // Muxers write the Unix epoch when they know no date: that is no creation time.
        creation_time: tags
            .get("creation_time")
            .filter(|t| !t.starts_with("1970-01-01T00:00:00"))
            .cloned(),
        tags,
        streams,
    }
}

/// Clockwise rotation (0, 90, 180 or 270 degrees) a player applies to show `stream` upright:
/// from its display matrix (side data, as phones write it), else from a `rotate` tag.
pub(crate) fn stream_rotation(stream: &ff::format::stream::Stream<'_>) -> u32 {
    use ff::codec::packet::side_data::Type;
    let from_matrix = stream
        .side_data()
        .find(|d| d.kind() == Type::DisplayMatrix)
        .and_then(|d| matrix_rotation(d.data()));
    let degrees = from_matrix.or_else(|| {
        stream
            .metadata()
            .get("rotate")
            .and_then(|r| r.trim().parse::<f64>().ok())
    });
    degrees.map(quarter_turns).unwrap_or(0)
}

/// The rotation angle (degrees, clockwise) of a 3x3 display matrix of 16.16 fixed-point
/// values (FFmpeg's `av_display_rotation_get`, negated to turn its counter-clockwise angle
/// into the clockwise one a player applies). `None` for a malformed matrix.
fn matrix_rotation(data: &[u8]) -> Option<f64> {
    if data.len() < 36 {
        return None;
    }
    let m: Vec<f64> = data[..36]
        .chunks_exact(4)
        .map(|c| f64::from(i32::from_ne_bytes([c[0], c[1], c[2], c[3]])) / 65536.0)
        .collect();
    let (sx, sy) = (m[0].hypot(m[3]), m[1].hypot(m[4]));
    if sx == 0.0 || sy == 0.0 {
        return None;
    }
    Some((m[1] / sy).atan2(m[0] / sx).to_degrees())
}

/// `degrees` rounded to the nearest quarter turn in 0..360.
fn quarter_turns(degrees: f64) -> u32 {
    if !degrees.is_finite() {
        return 0;
    }
    let q = (degrees / 90.0).round().rem_euclid(4.0);
    q as u32 * 90
}

/// Seconds of a timestamp relative to `start` in time base `tb`.
pub(crate) fn rel_seconds(ts: i64, start: i64, tb: ff::Rational) -> f64 {
    if tb.denominator() == 0 {
        return 0.0;
    }
    (ts.saturating_sub(start)) as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(a: i32, b: i32, c: i32, d: i32) -> Vec<u8> {
        [a, b, 0, c, d, 0, 0, 0, 1 << 30]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect()
    }

    #[test]
    fn display_matrices_give_clockwise_quarter_turns() {
        let one = 1 << 16;
        // A phone held upright (ffprobe shows `rotation=-90`): [0 1; -1 0], turned 90° clockwise.
        let r90 = matrix_rotation(&matrix(0, one, -one, 0)).unwrap();
        assert_eq!(quarter_turns(r90), 90);
        let r270 = matrix_rotation(&matrix(0, -one, one, 0)).unwrap();
        assert_eq!(quarter_turns(r270), 270);
        let r180 = matrix_rotation(&matrix(-one, 0, 0, -one)).unwrap();
        assert_eq!(quarter_turns(r180), 180);
        assert_eq!(
            quarter_turns(matrix_rotation(&matrix(one, 0, 0, one)).unwrap()),
            0
        );
        assert_eq!(matrix_rotation(&[0; 12]), None);
        assert_eq!(quarter_turns(-90.0), 270);
        assert_eq!(quarter_turns(f64::NAN), 0);
    }
}
