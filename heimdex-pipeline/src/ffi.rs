//! The only place with `unsafe`: reading a few `AVCodecContext` fields that ffmpeg-next does
//! not expose safely, and FFmpeg's profile-name lookup.
#![allow(unsafe_code)]

use std::ffi::CStr;

use ffmpeg_next::codec;
use ffmpeg_next::ffi;

/// Codec-level details of one stream, read from a codec context filled from its parameters.
#[derive(Debug, Default)]
pub(crate) struct CodecDetails {
    pub profile: Option<String>,
    pub width: u32,
    pub height: u32,
    pub pix_fmt: Option<String>,
    pub sample_rate: u32,
    pub channels: u32,
}

/// Read profile, geometry, pixel format and audio layout of `params`.
///
/// A codec context is allocated and filled with `avcodec_parameters_to_context` (through
/// ffmpeg-next), so every field read below was written by FFmpeg itself with a valid value for
/// its C type (notably `pix_fmt`, which is an enum in Rust).
pub(crate) fn codec_details(params: codec::Parameters) -> CodecDetails {
    let Ok(ctx) = codec::Context::from_parameters(params) else {
        return CodecDetails::default();
    };
    // SAFETY: `ctx` owns a valid, initialised `AVCodecContext` for the duration of this block;
    // we only read plain-old-data fields from it.
    let (codec_id, profile, width, height, pix_fmt, sample_rate, channels) = unsafe {
        let p = ctx.as_ptr();
        (
            (*p).codec_id,
            (*p).profile,
            (*p).width,
            (*p).height,
            (*p).pix_fmt,
            (*p).sample_rate,
            (*p).channels,
        )
    };
    let profile = if profile == ffi::FF_PROFILE_UNKNOWN {
        None
    } else {
        // SAFETY: `avcodec_profile_name` accepts any id/profile pair and returns either NULL or
        // a pointer to a static, NUL-terminated string owned by libavcodec.
        let name = unsafe { ffi::avcodec_profile_name(codec_id, profile) };
        if name.is_null() {
            None
        } else {
            // SAFETY: non-null, static, NUL-terminated (see above).
            Some(
                unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    let pix_fmt = if pix_fmt == ffi::AVPixelFormat::AV_PIX_FMT_NONE {
        None
    } else {
        // SAFETY: `pix_fmt` is a valid `AVPixelFormat` written by FFmpeg; the returned name is
        // NULL or a static NUL-terminated string.
        let name = unsafe { ffi::av_get_pix_fmt_name(pix_fmt) };
        if name.is_null() {
            None
        } else {
            // SAFETY: non-null, static, NUL-terminated.
            Some(
                unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    CodecDetails {
        profile,
        width: u32::try_from(width).unwrap_or(0),
        height: u32::try_from(height).unwrap_or(0),
        pix_fmt,
        sample_rate: u32::try_from(sample_rate).unwrap_or(0),
        channels: u32::try_from(channels).unwrap_or(0),
    }
}

/// Make `ctx`'s decoder refuse any frame of more than `max` pixels (FFmpeg's own
/// `max_pixels` guard, checked before a frame buffer is allocated), so a stream whose frames
/// claim sizes its header did not is refused too.
pub(crate) fn set_max_pixels(ctx: &mut codec::Context, max: u64) {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    // SAFETY: `ctx` owns a valid, initialised `AVCodecContext`; `max_pixels` is a plain
    // int64 field that FFmpeg reads when it opens the decoder and allocates frames.
    unsafe {
        (*ctx.as_mut_ptr()).max_pixels = max;
    }
}
