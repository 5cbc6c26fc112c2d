#!/usr/bin/env bash
# Generate a short "news" clip with real speech (espeak-ng) and on-screen captions, so the
# demo has something to transcribe and read. Writes $HEIMDEX_SAMPLES/harbor_news.mp4 once.
set -euo pipefail
dest="${HEIMDEX_SAMPLES:-$(pwd)/samples}"
out="$dest/harbor_news.mp4"
[ -s "$out" ] && { echo "samples: harbor_news.mp4 present"; exit 0; }
mkdir -p "$dest"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
espeak-ng -w "$tmp/a.wav" "Good evening. Tonight the harbor festival opens with boats arriving at sunset."
espeak-ng -w "$tmp/b.wav" "Our chef prepares fresh lobster and mussels for hundreds of guests."
ffmpeg -v error -nostdin -y \
  -f lavfi -i "color=c=navy:s=1280x720:r=25:d=7" \
  -f lavfi -i "color=c=darkgreen:s=1280x720:r=25:d=7" \
  -i "$tmp/a.wav" -i "$tmp/b.wav" \
  -filter_complex "[0]drawtext=fontfile=$font:text='HARBOR FESTIVAL':fontsize=72:fontcolor=white:x=(w-tw)/2:y=(h-th)/2[v0];[1]drawtext=fontfile=$font:text='LOBSTER MENU':fontsize=72:fontcolor=yellow:x=(w-tw)/2:y=(h-th)/2[v1];[v0][v1]concat=n=2:v=1:a=0[v];[2]adelay=500:all=1[a0];[3]adelay=7500:all=1[a1];[a0][a1]amix=inputs=2:duration=longest:normalize=0,apad=whole_dur=14[a]" \
  -map "[v]" -map "[a]" -t 14 -c:v libx264 -pix_fmt yuv420p -c:a aac "$out"
echo "samples: harbor_news.mp4 (generated: speech + captions)"
