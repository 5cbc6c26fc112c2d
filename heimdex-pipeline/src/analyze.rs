//! The single demux/decode loop that fans frames out to shots, keyframes and audio.

use std::time::Instant;

use ffmpeg_next::format::Pixel;
use ffmpeg_next::format::Sample;
use ffmpeg_next::format::sample::Type as SampleType;
use ffmpeg_next::software::{resampling, scaling};
use ffmpeg_next::{self as ff, ChannelLayout, codec, frame, media};
use heimdex_core::sidecar::{Shot, Shots};

use crate::input::{self, NOPTS, rel_seconds};
use crate::shots::CutDetector;
use crate::{
    Analysis, AnalyzeOptions, DecodedAudio, FrameImage, KeyframeImage, MediaRead, PipelineError,
    Progress, keyframe,
};

/// How far into a shot the keyframe is taken (when the shot is that long).
pub(crate) const KEYFRAME_OFFSET_S: f64 = 0.5;
/// Output rate of the decoded audio.
pub(crate) const AUDIO_RATE: u32 = 16_000;
/// Name recorded in [`Shots::method`].
pub(crate) const METHOD: &str = "content-hsv";

fn is_eagain(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ff::util::error::EAGAIN)
}

/// A cached swscale context converting to RGB24 at a fixed output size.
struct Scaler {
    ctx: scaling::Context,
    src: (Pixel, u32, u32),
    out: frame::Video,
}

impl Scaler {
    fn get<'a>(
        slot: &'a mut Option<Scaler>,
        f: &frame::Video,
        dst_w: u32,
        dst_h: u32,
        flags: scaling::Flags,
    ) -> Result<&'a mut Scaler, PipelineError> {
        let src = (f.format(), f.width(), f.height());
        let fresh = match slot {
            Some(s) => {
                s.src != src || s.ctx.output().width != dst_w || s.ctx.output().height != dst_h
            }
            None => true,
        };
        if fresh {
            let ctx = scaling::Context::get(src.0, src.1, src.2, Pixel::RGB24, dst_w, dst_h, flags)
                .map_err(|e| PipelineError::Unsupported {
                    reason: format!(
                        "cannot convert pixel format {:?} {}x{} to RGB ({e})",
                        src.0, src.1, src.2
                    ),
                })?;
            *slot = Some(Scaler {
                ctx,
                src,
                out: frame::Video::empty(),
            });
        }
        slot.as_mut().ok_or_else(|| PipelineError::Ffmpeg {
            context: "creating a scaler".into(),
            message: "scaler missing".into(),
        })
    }

    /// Scale `f` and copy the RGB24 result, without row padding, into `dst`.
    fn convert_into(
        &mut self,
        f: &frame::Video,
        dst: &mut Vec<u8>,
    ) -> Result<(u32, u32), PipelineError> {
        self.ctx
            .run(f, &mut self.out)
            .map_err(|e| PipelineError::ffmpeg("scaling a video frame", e))?;
        let (w, h) = (self.out.width(), self.out.height());
        let row = w as usize * 3;
        let stride = self.out.stride(0);
        let data = self.out.data(0);
        dst.clear();
        dst.reserve(row * h as usize);
        for y in 0..h as usize {
            let start = y * stride;
            dst.extend_from_slice(data.get(start..start + row).unwrap_or(&[]));
        }
        Ok((w, h))
    }
}

/// Output size for scaling `w`x`h` so that the width is at most `max_w` and the longest side at
/// most `max_side` (never upscaling).
fn fit(w: u32, h: u32, max_w: u32, max_side: u32) -> (u32, u32) {
    let (w, h) = (w.max(1), h.max(1));
    let scale = (f64::from(max_w.max(1)) / f64::from(w))
        .min(f64::from(max_side.max(1)) / f64::from(w.max(h)))
        .min(1.0);
    let nw = ((f64::from(w) * scale).round() as u32).max(2);
    let nh = ((f64::from(h) * scale).round() as u32).max(2);
    (nw, nh)
}

/// Longest side of mid-shot samples: what OCR's glance (480 px) and the recognition of
/// captions need, at about half the pixels (and conversion time) of a 1280 px keyframe.
pub(crate) const SAMPLE_MAX_SIDE: u32 = 960;

/// A pixel counts as changed when one of its channels moved by at least this much (0..=255)
/// between two downscaled frames: above compression noise, below any real edit.
const PIXEL_CHANGE: u8 = 24;

/// Fraction of the pixels of two equally sized RGB24 frames that changed
/// ([`PIXEL_CHANGE`]); 1.0 when the sizes differ.
pub(crate) fn changed_fraction(a: &[u8], b: &[u8]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 1.0;
    }
    let changed = a
        .chunks_exact(3)
        .zip(b.chunks_exact(3))
        .filter(|(p, q)| {
            p.iter()
                .zip(q.iter())
                .any(|(x, y)| x.abs_diff(*y) >= PIXEL_CHANGE)
        })
        .count();
    changed as f64 / (a.len() / 3) as f64
}

struct KeyCandidate {
    frame: u64,
    time_s: f64,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

struct CurrentShot {
    start_frame: u64,
    start_s: f64,
    key: Option<KeyCandidate>,
    key_is_offset: bool,
}

/// What the sampler remembers of the last frame captured in the current shot (keyframe or
/// sample): its downscaled pixels and time.
struct LastCapture {
    small: Vec<u8>,
    time_s: f64,
}

struct VideoSink<'o> {
    opts: &'o AnalyzeOptions,
    /// Clockwise rotation (0, 90, 180, 270) applied to captured frames so they are upright.
    rotation: u32,
    /// Frames sampled through each shot where the picture changed (when
    /// [`AnalyzeOptions::sample_frames`]).
    samples: Vec<FrameImage>,
    last_capture: Option<LastCapture>,
    time_base: ff::Rational,
    stream_start: i64,
    start: Option<i64>,
    frame_dur: f64,
    analysis: Option<Scaler>,
    keyscaler: Option<Scaler>,
    samplescaler: Option<Scaler>,
    small: Vec<u8>,
    detector: CutDetector,
    index: u64,
    last_time: f64,
    cur: Option<CurrentShot>,
    shots: Vec<Shot>,
    keyframes: Vec<KeyframeImage>,
    /// Bytes of RGB held in `keyframes`.
    keyframe_bytes: usize,
    /// Current longest side of keyframes (shrinks when the budget is exceeded).
    keyframe_side: u32,
}

impl<'o> VideoSink<'o> {
    /// Keep the keyframes within the memory budget: halve every keyframe (and the size of
    /// those to come) until they fit. Each halving quarters the bytes.
    /// Sampled frames share the budget.
    fn enforce_keyframe_budget(&mut self) {
        while self.keyframe_bytes > self.opts.keyframe_budget_bytes && self.keyframe_side > 64 {
            self.keyframe_side /= 2;
            self.keyframe_bytes = 0;
            for k in &mut self.keyframes {
                keyframe::shrink_to(&mut k.rgb, &mut k.width, &mut k.height, self.keyframe_side);
                self.keyframe_bytes += k.rgb.len();
            }
            for k in &mut self.samples {
                keyframe::shrink_to(&mut k.rgb, &mut k.width, &mut k.height, self.keyframe_side);
                self.keyframe_bytes += k.rgb.len();
            }
        }
    }

    /// Remember the current analysis frame as the last one captured at `t`.
    fn mark_captured(&mut self, t: f64) {
        if !self.opts.sample_frames {
            return;
        }
        match &mut self.last_capture {
            Some(last) => {
                last.small.clear();
                last.small.extend_from_slice(&self.small);
                last.time_s = t;
            }
            None => {
                self.last_capture = Some(LastCapture {
                    small: self.small.clone(),
                    time_s: t,
                })
            }
        }
    }

    /// Sample this frame if the interval since the last capture has passed and the picture
    /// changed enough since then.
    fn maybe_sample(&mut self, f: &frame::Video, t: f64) -> Result<(), PipelineError> {
        let Some(last) = &self.last_capture else {
            return Ok(());
        };
        if t - last.time_s < self.opts.sample_interval_s
            || changed_fraction(&last.small, &self.small) < self.opts.sample_change
        {
            return Ok(());
        }
        let side = self.keyframe_side.min(SAMPLE_MAX_SIDE);
        let c = self.capture_at(f, t, side, true)?;
        let mut image = FrameImage {
            shot_index: u32::try_from(self.shots.len()).unwrap_or(u32::MAX),
            time_s: c.time_s,
            frame: c.frame,
            width: c.width,
            height: c.height,
            rgb: c.rgb,
        };
        keyframe::shrink_to(
            &mut image.rgb,
            &mut image.width,
            &mut image.height,
            self.keyframe_side,
        );
        self.keyframe_bytes += image.rgb.len();
        self.samples.push(image);
        self.mark_captured(t);
        self.enforce_keyframe_budget();
        Ok(())
    }

    fn capture(&mut self, f: &frame::Video, t: f64) -> Result<KeyCandidate, PipelineError> {
        // Never capture below the thumbnail size: thumbnails keep their quality when the
        // keyframe budget shrinks the keyframes.
        let side = self.keyframe_side.max(self.opts.thumbnail_max_width);
        self.capture_at(f, t, side, false)
    }

    /// Capture `f` as upright RGB with its longest side at most `side`, through the
    /// keyframe scaler or (for samples, whose size differs) a scaler of their own, so
    /// neither is rebuilt when the two alternate.
    fn capture_at(
        &mut self,
        f: &frame::Video,
        t: f64,
        side: u32,
        sample: bool,
    ) -> Result<KeyCandidate, PipelineError> {
        let (w, h) = fit(f.width(), f.height(), u32::MAX, side);
        let slot = if sample {
            &mut self.samplescaler
        } else {
            &mut self.keyscaler
        };
        let sc = Scaler::get(slot, f, w, h, scaling::Flags::BILINEAR)?;
        let mut rgb = Vec::new();
        let (width, height) = sc.convert_into(f, &mut rgb)?;
        let (rgb, width, height) = keyframe::rotate(rgb, width, height, self.rotation);
        Ok(KeyCandidate {
            frame: self.index,
            time_s: t,
            width,
            height,
            rgb,
        })
    }

    fn on_frame(&mut self, f: &frame::Video) -> Result<(), PipelineError> {
        let t = match f.timestamp().or_else(|| f.pts()) {
            Some(ts) => {
                let stream_start = self.stream_start;
                let start = *self.start.get_or_insert(if stream_start != NOPTS {
                    stream_start
                } else {
                    ts
                });
                rel_seconds(ts, start, self.time_base)
            }
            None if self.index == 0 => 0.0,
            None => self.last_time + self.frame_dur,
        };
        // Keep times monotonic even if the stream's timestamps are not.
        let t = if self.index == 0 {
            t.max(0.0)
        } else {
            t.max(self.last_time)
        };

        let (aw, ah) = fit(f.width(), f.height(), self.opts.analysis_width, u32::MAX);
        let sc = Scaler::get(&mut self.analysis, f, aw, ah, scaling::Flags::AREA)?;
        sc.convert_into(f, &mut self.small)?;
        let cut = self.detector.push(self.index, &self.small);

        if self.index == 0 {
            let key = self.capture(f, t)?;
            self.cur = Some(CurrentShot {
                start_frame: 0,
                start_s: 0.0,
                key: Some(key),
                key_is_offset: false,
            });
            self.mark_captured(t);
        } else if cut {
            tracing::debug!(
                frame = self.index,
                time_s = t,
                score = self.detector.last_score,
                "cut"
            );
            self.finish_shot(t)?;
            let key = self.capture(f, t)?;
            self.cur = Some(CurrentShot {
                start_frame: self.index,
                start_s: t,
                key: Some(key),
                key_is_offset: false,
            });
            self.mark_captured(t);
        } else if let Some(cur) = &self.cur
            && !cur.key_is_offset
            && t - cur.start_s >= KEYFRAME_OFFSET_S
        {
            let key = self.capture(f, t)?;
            if let Some(cur) = &mut self.cur {
                cur.key = Some(key);
                cur.key_is_offset = true;
            }
            self.mark_captured(t);
        } else if self.opts.sample_frames {
            self.maybe_sample(f, t)?;
        }
        self.index += 1;
        self.last_time = t;
        Ok(())
    }

    /// Close the current shot at time `end_s` / frame `self.index` (exclusive).
    fn finish_shot(&mut self, end_s: f64) -> Result<(), PipelineError> {
        let Some(cur) = self.cur.take() else {
            return Ok(());
        };
        let shot_index = u32::try_from(self.shots.len()).unwrap_or(u32::MAX);
        let mut descriptors = Vec::new();
        if let Some(k) = cur.key {
            let (jpeg, tw, th, thumb) = keyframe::thumbnail(
                &k.rgb,
                k.width,
                k.height,
                self.opts.thumbnail_max_width,
                self.opts.jpeg_quality,
            )?;
            descriptors = keyframe::descriptors(&thumb);
            self.keyframes.push(KeyframeImage {
                shot_index,
                time_s: k.time_s,
                frame: k.frame,
                width: k.width,
                height: k.height,
                rgb: k.rgb,
                thumbnail_jpeg: jpeg,
                thumb_width: tw,
                thumb_height: th,
                descriptors: descriptors.clone(),
            });
            if let Some(k) = self.keyframes.last_mut() {
                keyframe::shrink_to(&mut k.rgb, &mut k.width, &mut k.height, self.keyframe_side);
                self.keyframe_bytes += k.rgb.len();
            }
            self.enforce_keyframe_budget();
        }
        self.shots.push(Shot {
            index: shot_index,
            start_s: cur.start_s,
            end_s: end_s.max(cur.start_s),
            start_frame: cur.start_frame,
            end_frame: self.index,
            keyframe: None,
            descriptors,
        });
        Ok(())
    }
}

struct AudioSink {
    resampler: Option<(resampling::Context, (Sample, u64, u32))>,
    samples: Vec<f32>,
}

impl AudioSink {
    fn out_frame(capacity: usize) -> frame::Audio {
        let mut out = frame::Audio::new(
            Sample::F32(SampleType::Packed),
            capacity.max(64),
            ChannelLayout::MONO,
        );
        out.set_rate(AUDIO_RATE);
        out
    }

    fn append(&mut self, out: &frame::Audio) {
        let n = out.samples();
        if n > 0 {
            let plane = out.plane::<f32>(0);
            self.samples.extend_from_slice(&plane[..n.min(plane.len())]);
        }
    }

    fn on_frame(&mut self, f: &mut frame::Audio) -> Result<(), PipelineError> {
        if f.samples() == 0 {
            return Ok(());
        }
        let mut layout = f.channel_layout();
        if layout.is_empty() || layout.channels() != i32::from(f.channels()) {
            layout = ChannelLayout::default(i32::from(f.channels()));
            f.set_channel_layout(layout);
        }
        let key = (f.format(), layout.bits(), f.rate());
        if self.resampler.as_ref().map(|(_, k)| *k) != Some(key) {
            self.flush()?;
            let ctx = resampling::Context::get(
                f.format(),
                layout,
                f.rate(),
                Sample::F32(SampleType::Packed),
                ChannelLayout::MONO,
                AUDIO_RATE,
            )
            .map_err(|e| PipelineError::ffmpeg("creating the audio resampler", e))?;
            self.resampler = Some((ctx, key));
        }
        let Some((ctx, _)) = self.resampler.as_mut() else {
            return Ok(());
        };
        let cap = f.samples() * AUDIO_RATE as usize / f.rate().max(1) as usize + 256;
        let mut out = Self::out_frame(cap);
        ctx.run(f, &mut out)
            .map_err(|e| PipelineError::ffmpeg("resampling audio", e))?;
        self.append(&out);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PipelineError> {
        if let Some((mut ctx, _)) = self.resampler.take() {
            for _ in 0..64 {
                let mut out = Self::out_frame(4096);
                ctx.flush(&mut out)
                    .map_err(|e| PipelineError::ffmpeg("flushing the audio resampler", e))?;
                if out.samples() == 0 {
                    break;
                }
                self.append(&out);
            }
        }
        Ok(())
    }
}

/// RMS level in dBFS; `None` without samples, floored at -120 dB for digital silence.
pub(crate) fn rms_dbfs(samples: &[f32]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    Some(if rms > 1e-6 {
        20.0 * rms.log10()
    } else {
        -120.0
    })
}

fn open_decoder(
    stream: &ff::format::stream::Stream<'_>,
    what: &str,
) -> Result<ff::codec::decoder::Decoder, PipelineError> {
    let mut ctx = codec::Context::from_parameters(stream.parameters())
        .map_err(|e| PipelineError::ffmpeg(&format!("reading {what} codec parameters"), e))?;
    ctx.set_threading(codec::threading::Config::kind(
        codec::threading::Type::Frame,
    ));
    crate::ffi::set_max_pixels(&mut ctx, crate::MAX_FRAME_PIXELS);
    let mut dec = ctx.decoder();
    dec.set_packet_time_base(stream.time_base());
    Ok(dec)
}

/// Refuse frames larger than [`MAX_FRAME_SIDE`](crate::MAX_FRAME_SIDE) a side or
/// [`MAX_FRAME_PIXELS`](crate::MAX_FRAME_PIXELS) in all, before any frame is decoded.
fn check_frame_size(width: u32, height: u32) -> Result<(), PipelineError> {
    use crate::{MAX_FRAME_PIXELS, MAX_FRAME_SIDE};
    if width > MAX_FRAME_SIDE
        || height > MAX_FRAME_SIDE
        || u64::from(width) * u64::from(height) > MAX_FRAME_PIXELS
    {
        return Err(PipelineError::Unsupported {
            reason: format!(
                "frame size {width}x{height} exceeds the limit ({MAX_FRAME_SIDE} pixels a side, {} megapixels)",
                MAX_FRAME_PIXELS / 1_000_000
            ),
        });
    }
    Ok(())
}

pub(crate) fn run(
    reader: Box<dyn MediaRead>,
    opts: &AnalyzeOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Analysis, PipelineError> {
    progress(Progress {
        stage: "probe",
        percent: 0.0,
    });
    let opened = input::open(reader)?;
    let mut inp = opened.input;
    let technical = opened.technical;
    progress(Progress {
        stage: "probe",
        percent: 100.0,
    });

    // The video stream (cover art is not video). Without one, an audio-only file is
    // decoded for its audio alone: no shots, no keyframes.
    let video = match inp.streams().find(|s| {
        s.parameters().medium() == media::Type::Video
            && !s
                .disposition()
                .contains(ff::format::stream::Disposition::ATTACHED_PIC)
    }) {
        None => None,
        Some(vstream) => {
            // Refuse huge frames from the stream's parameters, before a decoder exists (its
            // pixel guard would refuse to open, without saying why).
            let geometry = crate::ffi::codec_details(vstream.parameters());
            check_frame_size(geometry.width, geometry.height)?;
            let dec = open_decoder(&vstream, "video")?
                .video()
                .map_err(|e| match e {
                    ff::Error::DecoderNotFound => PipelineError::Unsupported {
                        reason: format!(
                            "no decoder for video codec '{}'",
                            vstream.parameters().id().name()
                        ),
                    },
                    e => PipelineError::ffmpeg("opening the video decoder", e),
                })?;
            let fps = vstream.avg_frame_rate();
            Some(VideoStream {
                index: vstream.index(),
                time_base: vstream.time_base(),
                start: vstream.start_time(),
                frame_dur: if fps.numerator() > 0 && fps.denominator() > 0 {
                    f64::from(fps.denominator()) / f64::from(fps.numerator())
                } else {
                    0.04
                },
                rotation: input::stream_rotation(&vstream),
                dec,
            })
        }
    };

    let mut adec = None;
    let mut audio_idx = None;
    let mut audio_tb = ff::Rational::new(0, 1);
    let mut audio_start = NOPTS;
    let mut audio_duration = None;
    if opts.decode_audio
        && let Some(astream) = inp
            .streams()
            .find(|s| s.parameters().medium() == media::Type::Audio)
    {
        match open_decoder(&astream, "audio").and_then(|d| {
            d.audio()
                .map_err(|e| PipelineError::ffmpeg("opening the audio decoder", e))
        }) {
            Ok(d) => {
                adec = Some(d);
                audio_idx = Some(astream.index());
                audio_tb = astream.time_base();
                audio_start = astream.start_time();
                audio_duration = technical
                    .streams
                    .iter()
                    .find(|s| s.index as usize == astream.index())
                    .and_then(|s| s.duration_s);
            }
            Err(e) if video.is_none() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "audio stream present but cannot be decoded; skipping audio")
            }
        }
    }
    if video.is_none() && adec.is_none() {
        return Err(PipelineError::NoVideoStream);
    }

    let duration = technical.duration_s.unwrap_or(0.0);
    let video_duration = technical.video().and_then(|v| v.duration_s);
    let (video_idx, vtb, vstart, frame_dur, rotation) = match &video {
        Some(v) => (Some(v.index), v.time_base, v.start, v.frame_dur, v.rotation),
        None => (None, ff::Rational::new(0, 1), NOPTS, 0.04, 0),
    };
    let mut vdec = video.map(|v| v.dec);
    let mut sink = VideoSink {
        opts,
        rotation,
        samples: Vec::new(),
        last_capture: None,
        time_base: vtb,
        stream_start: vstart,
        start: None,
        frame_dur,
        analysis: None,
        keyscaler: None,
        samplescaler: None,
        small: Vec::new(),
        detector: CutDetector::new(opts.shot_threshold, opts.min_shot_frames),
        index: 0,
        last_time: 0.0,
        cur: None,
        shots: Vec::new(),
        keyframes: Vec::new(),
        keyframe_bytes: 0,
        keyframe_side: opts.keyframe_max_side,
    };
    let mut audio = AudioSink {
        resampler: None,
        samples: Vec::new(),
    };
    let mut audio_failed = false;

    let started = Instant::now();
    let mut packet = ff::Packet::empty();
    let mut vframe = frame::Video::empty();
    let mut aframe = frame::Audio::empty();
    let mut invalid_packets = 0u32;
    let mut decode_errors = 0u32;
    let mut demux_error: Option<String> = None;
    let mut last_pct = 0u32;
    progress(Progress {
        stage: "decode",
        percent: 0.0,
    });

    // Drain every frame the video decoder has ready into the sink.
    macro_rules! drain_video {
        () => {
            if let Some(vdec) = vdec.as_mut() {
                loop {
                    match vdec.receive_frame(&mut vframe) {
                        Ok(()) => sink.on_frame(&vframe)?,
                        Err(ref e) if is_eagain(e) => break,
                        Err(ff::Error::Eof) => break,
                        Err(e) => {
                            decode_errors += 1;
                            tracing::debug!(error = %e, "video decode error");
                            break;
                        }
                    }
                }
            }
        };
    }
    macro_rules! drain_audio {
        () => {
            if let Some(d) = adec.as_mut() {
                loop {
                    match d.receive_frame(&mut aframe) {
                        Ok(()) => {
                            if !audio_failed && let Err(e) = audio.on_frame(&mut aframe) {
                                tracing::warn!(error = %e, "audio resampling failed; dropping audio");
                                audio_failed = true;
                            }
                        }
                        Err(ref e) if is_eagain(e) => break,
                        Err(ff::Error::Eof) => break,
                        Err(e) => {
                            decode_errors += 1;
                            tracing::debug!(error = %e, "audio decode error");
                            break;
                        }
                    }
                }
            }
        };
    }
    // Progress follows the stream that drives the analysis: video, else the audio.
    let (progress_idx, progress_tb, progress_start) = match video_idx {
        Some(i) => (Some(i), vtb, vstart),
        None => (audio_idx, audio_tb, audio_start),
    };

    loop {
        match packet.read(&mut inp) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(ff::Error::InvalidData) => {
                invalid_packets += 1;
                if invalid_packets > 10_000 {
                    demux_error = Some("too many unreadable packets".into());
                    break;
                }
                continue;
            }
            Err(ref e) if is_eagain(e) && invalid_packets < 10_000 => {
                invalid_packets += 1;
                continue;
            }
            Err(e) => {
                if let Some(ioe) = opened.io_errors.take() {
                    return Err(PipelineError::Io(ioe));
                }
                demux_error = Some(e.to_string());
                break;
            }
        }
        let si = packet.stream();
        if Some(si) == progress_idx
            && duration > 0.0
            && let Some(pts) = packet.pts()
        {
            let start = if progress_start != NOPTS {
                progress_start
            } else {
                0
            };
            let pct =
                (rel_seconds(pts, start, progress_tb) / duration * 100.0).clamp(0.0, 100.0) as u32;
            if pct > last_pct && pct < 100 {
                last_pct = pct;
                progress(Progress {
                    stage: "decode",
                    percent: pct as f32,
                });
            }
        }
        if Some(si) == video_idx {
            if let Some(d) = vdec.as_mut()
                && let Err(e) = d.send_packet(&packet)
            {
                decode_errors += 1;
                tracing::debug!(error = %e, "video packet rejected");
            }
            drain_video!();
        } else if Some(si) == audio_idx {
            if let Some(d) = adec.as_mut()
                && let Err(e) = d.send_packet(&packet)
            {
                tracing::debug!(error = %e, "audio packet rejected");
            }
            drain_audio!();
        }
    }
    if let Some(d) = vdec.as_mut()
        && d.send_eof().is_ok()
    {
        drain_video!();
    }
    if let Some(d) = adec.as_mut()
        && d.send_eof().is_ok()
    {
        drain_audio!();
    }
    if !audio_failed && let Err(e) = audio.flush() {
        tracing::warn!(error = %e, "audio flush failed; dropping audio");
        audio_failed = true;
    }

    if vdec.is_some() {
        let frames = sink.index;
        if frames == 0 {
            if let Some(ioe) = opened.io_errors.take() {
                return Err(PipelineError::Io(ioe));
            }
            return Err(PipelineError::Corrupt {
                reason: match demux_error {
                    Some(e) => format!("no video frame could be decoded ({e})"),
                    None => "no video frame could be decoded".into(),
                },
            });
        }
        let decoded_end = sink.last_time + frame_dur;
        // Only trust the container duration when the video stream has none if demuxing also
        // failed (audio may legitimately outlast the video).
        let expected = video_duration.or(if demux_error.is_some() || invalid_packets > 0 {
            technical.duration_s
        } else {
            None
        });
        check_complete("video", decoded_end, expected, &demux_error)?;
        sink.finish_shot(decoded_end)?;
    } else {
        // Audio only: the audio is all there is, so it must be there.
        let decoded = audio.samples.len() as f64 / f64::from(AUDIO_RATE);
        if let Some(ioe) = opened.io_errors.take() {
            return Err(PipelineError::Io(ioe));
        }
        if audio_failed || audio.samples.is_empty() {
            return Err(PipelineError::Corrupt {
                reason: match demux_error {
                    Some(e) => format!("no audio could be decoded ({e})"),
                    None => "no audio could be decoded".into(),
                },
            });
        }
        let expected = audio_duration.or(technical.duration_s);
        check_complete("audio", decoded, expected, &demux_error)?;
    }
    let frames = sink.index;
    let decode_elapsed = started.elapsed();
    if decode_errors > 0 || invalid_packets > 0 {
        tracing::warn!(decode_errors, invalid_packets, "media decoded with errors");
    }
    progress(Progress {
        stage: "decode",
        percent: 100.0,
    });

    let audio = if adec.is_some() && !audio_failed {
        let rms = rms_dbfs(&audio.samples);
        Some(DecodedAudio {
            sample_rate: AUDIO_RATE,
            samples: audio.samples,
            rms_dbfs: rms,
        })
    } else {
        None
    };
    Ok(Analysis {
        technical,
        shots: Shots {
            method: METHOD.into(),
            threshold: opts.shot_threshold,
            frames_analyzed: frames,
            shots: sink.shots,
        },
        keyframes: sink.keyframes,
        samples: sink.samples,
        audio,
        decode_elapsed,
    })
}

/// The chosen video stream and its decoder.
struct VideoStream {
    index: usize,
    time_base: ff::Rational,
    start: i64,
    frame_dur: f64,
    rotation: u32,
    dec: ff::decoder::Video,
}

/// A stream that decoded to `decoded_end` seconds while `expected` were announced is cut
/// short (beyond 2 %, at least half a second, of slack).
fn check_complete(
    what: &str,
    decoded_end: f64,
    expected: Option<f64>,
    demux_error: &Option<String>,
) -> Result<(), PipelineError> {
    if let Some(expected) = expected {
        let slack = (0.02 * expected).max(0.5);
        if decoded_end + slack < expected {
            return Err(PipelineError::Corrupt {
                reason: format!(
                    "decoded {decoded_end:.1} s of {expected:.1} s of {what}; the file is probably cut short{}",
                    demux_error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    Ok(())
}
