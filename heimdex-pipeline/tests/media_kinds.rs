//! Media that is not a plain landscape video: phone footage with a rotation in its display
//! matrix, and audio-only files (interviews, voice memos) in every common container.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use heimdex_pipeline::{AnalyzeOptions, PipelineError};

/// A 2 s clip whose picture, as FFmpeg's player shows it, is portrait 360x640 (red above
/// blue), stored as landscape frames plus a display matrix, as phones do: the frames are
/// encoded turned, then the rotation tag is set by a stream copy (FFmpeg 5.1 writes the
/// matrix only then).
fn rotated_clip(dir: &Path, tag: u32) -> PathBuf {
    let coded = dir.join(format!("coded-{tag}.mp4"));
    let turn = match tag {
        90 => "transpose=cclock,",
        270 => "transpose=clock,",
        180 => "hflip,vflip,",
        _ => "",
    };
    ffmpeg(&[
        "-filter_complex",
        &format!(
            "color=c=red:s=360x320:d=2:r=25[a];color=c=blue:s=360x320:d=2:r=25[b];\
             [a][b]vstack,{turn}format=yuv420p"
        ),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        coded.to_str().unwrap(),
    ]);
    let out = dir.join(format!("phone-{tag}.mp4"));
    ffmpeg(&[
        "-i",
        coded.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        &format!("rotate={tag}"),
        out.to_str().unwrap(),
    ]);
    out
}

/// The first frame as FFmpeg's CLI shows it (it applies the display matrix): size and the
/// RGB of the top-centre and bottom-centre pixels.
fn ffmpeg_upright(path: &Path) -> ((u32, u32), [u8; 3], [u8; 3]) {
    let ppm = path.with_extension("ppm");
    ffmpeg(&[
        "-i",
        path.to_str().unwrap(),
        "-frames:v",
        "1",
        ppm.to_str().unwrap(),
    ]);
    // Binary PPM: "P6\n<w> <h>\n255\n" then RGB24.
    let bytes = std::fs::read(&ppm).unwrap();
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        let end = at
            + bytes[at..]
                .iter()
                .position(|b| b.is_ascii_whitespace())
                .unwrap();
        if end > at {
            fields.push(String::from_utf8_lossy(&bytes[at..end]).into_owned());
        }
        at = end + 1;
    }
    assert_eq!(fields[0], "P6");
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let rgb = &bytes[at..];
    (
        (w, h),
        rgb_at(rgb, w, w / 2, 4),
        rgb_at(rgb, w, w / 2, h - 5),
    )
}

fn rgb_at(rgb: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * w + x) * 3) as usize;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 40)
}

#[test]
fn rotated_phone_footage_is_analysed_upright() {
    let dir = tempfile::tempdir().unwrap();
    for tag in [90, 270, 180] {
        let clip = rotated_clip(dir.path(), tag);
        let ((fw, fh), ff_top, ff_bottom) = ffmpeg_upright(&clip);
        let a = analyze_path(&clip).unwrap();
        assert_well_formed(&a);
        let video = a.technical.video().unwrap();
        let rotation = video.rotation.expect("rotation recorded");
        assert!(matches!(rotation, 90 | 180 | 270), "{rotation}");
        assert_eq!(
            (video.width, video.height),
            (Some(fw), Some(fh)),
            "tag {tag}: width/height as displayed"
        );
        let k = &a.keyframes[0];
        assert_eq!((k.width, k.height), (fw, fh), "tag {tag}: keyframe upright");
        if tag != 180 {
            assert!(k.height > k.width, "tag {tag}: portrait keyframe");
            assert!(
                k.thumb_height > k.thumb_width,
                "tag {tag}: portrait thumbnail"
            );
        }
        let top = rgb_at(&k.rgb, k.width, k.width / 2, 4);
        let bottom = rgb_at(&k.rgb, k.width, k.width / 2, k.height - 5);
        assert!(
            close(top, ff_top) && close(bottom, ff_bottom),
            "tag {tag} (rotation {rotation}): keyframe top {top:?} bottom {bottom:?}, FFmpeg shows {ff_top:?} / {ff_bottom:?}"
        );
        let thumb =
            image::load_from_memory_with_format(&k.thumbnail_jpeg, image::ImageFormat::Jpeg)
                .unwrap()
                .to_rgb8();
        let t_top = thumb.get_pixel(thumb.width() / 2, 2).0;
        assert!(close(t_top, ff_top), "tag {tag}: thumbnail top {t_top:?}");
    }
    // An unrotated clip records no rotation.
    let plain = dir.path().join("plain.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=1",
        "-pix_fmt",
        "yuv420p",
        plain.to_str().unwrap(),
    ]);
    let a = analyze_path(&plain).unwrap();
    assert_eq!(a.technical.video().unwrap().rotation, None);
    assert_eq!((a.keyframes[0].width, a.keyframes[0].height), (320, 240));
}

/// `seconds` of a 440 Hz tone then noise, encoded by FFmpeg into `name` (the extension picks
/// the container); extra arguments before the output.
fn audio_file(dir: &Path, name: &str, seconds: u32, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "-f".to_owned(),
        "lavfi".to_owned(),
        "-i".to_owned(),
        format!("sine=frequency=440:duration={seconds}"),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(out.to_string_lossy().into_owned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
    out
}

#[test]
fn audio_only_files_are_analysed_for_their_audio() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        audio_file(dir.path(), "memo.wav", 3, &[]),
        audio_file(dir.path(), "interview.m4a", 3, &["-c:a", "aac"]),
        audio_file(dir.path(), "song.mp3", 3, &["-c:a", "libmp3lame"]),
        audio_file(dir.path(), "take.flac", 3, &[]),
        audio_file(dir.path(), "voice.opus", 3, &["-c:a", "libopus"]),
        // An .mp4 holding only sound, as screen recorders and phones write them.
        audio_file(dir.path(), "sound-only.mp4", 3, &["-c:a", "aac"]),
    ];
    for f in &files {
        let mut stages = Vec::new();
        let a = heimdex_pipeline::analyze(open(f), &AnalyzeOptions::default(), &mut |p| {
            stages.push((p.stage, p.percent))
        })
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(a.shots.shots.is_empty(), "{}: no shots", f.display());
        assert!(a.keyframes.is_empty() && a.samples.is_empty());
        assert_eq!(a.shots.frames_analyzed, 0);
        assert!(a.technical.video().is_none());
        let audio = a.audio.as_ref().expect("audio decoded");
        assert!(
            (audio.duration_s() - 3.0).abs() < 0.15,
            "{}: {} s of audio",
            f.display(),
            audio.duration_s()
        );
        // lavfi's sine has an amplitude of 1/8: -18 dB peak, -21 dBFS RMS.
        let rms = audio.rms_dbfs.unwrap();
        assert!((-24.0..-18.0).contains(&rms), "{}: {rms} dBFS", f.display());
        assert_eq!(stages.last(), Some(&("decode", 100.0)));
        // With audio off there is nothing to analyse: a typed error.
        let opts = AnalyzeOptions {
            decode_audio: false,
            ..AnalyzeOptions::default()
        };
        let e = heimdex_pipeline::analyze(open(f), &opts, &mut |_| {}).unwrap_err();
        assert!(matches!(e, PipelineError::NoVideoStream), "{e:?}");
    }
    // Cover art is not video: an MP3 with an attached picture is audio-only too.
    let cover = dir.path().join("cover.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=green:s=64x64:d=1",
        "-frames:v",
        "1",
        cover.to_str().unwrap(),
    ]);
    let tagged = dir.path().join("tagged.mp3");
    ffmpeg(&[
        "-i",
        files[2].to_str().unwrap(),
        "-i",
        cover.to_str().unwrap(),
        "-map",
        "0",
        "-map",
        "1",
        "-c:a",
        "copy",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        tagged.to_str().unwrap(),
    ]);
    let a = analyze_path(&tagged).unwrap();
    assert!(a.shots.shots.is_empty() && a.audio.is_some());
}

#[test]
fn truncated_audio_only_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    // The index (moov) first, as streaming-ready M4A files have it: it announces 10 s.
    let m4a = audio_file(
        dir.path(),
        "long.m4a",
        10,
        &["-c:a", "aac", "-movflags", "+faststart"],
    );
    let mut bytes = std::fs::read(&m4a).unwrap();
    bytes.truncate(bytes.len() / 3);
    let e = heimdex_pipeline::analyze(
        Box::new(std::io::Cursor::new(bytes)),
        &AnalyzeOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    let PipelineError::Corrupt { reason } = &e else {
        panic!("expected Corrupt, got {e:?}");
    };
    assert!(reason.contains("of audio"), "{reason}");
}
