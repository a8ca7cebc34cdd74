#!/bin/bash
# demo-gif.sh — makes the README's animation, docs/img/demo.gif, by hand (CI does not: it runs
# e2e/demo.spec.ts without recording). Runs the demo spec against a fresh
# server with KITSULAN_DEMO_FRAMES set, so it records both phones' screens (Chromium's screencast)
# and writes one 10 fps timeline per phone with the minute of waiting cut out; then Debian's
# ffmpeg puts the two phones side by side, 480 px wide, captions the cut ("One minute later")
# and makes a GIF with a 64-colour palette. Look at the result before committing it.
# Needs what `npm run e2e` needs, plus `apt-get install ffmpeg fonts-dejavu-core` (and
# fonts-noto-color-emoji, or the messages' emoji show as boxes). Set KITSULAN_E2E_SKIP_BUILD=1
# to reuse the built PWA and server.
set -euo pipefail
cd "$(dirname "$0")/.."
font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
command -v ffmpeg >/dev/null || { echo "demo-gif.sh: ffmpeg is missing (apt-get install ffmpeg)" >&2; exit 1; }
[ -f "$font" ] || { echo "demo-gif.sh: $font is missing (apt-get install fonts-dejavu-core)" >&2; exit 1; }
frames=$(mktemp -d /tmp/kitsulan-demo-XXXXXX)
trap 'rm -rf "$frames"' EXIT
KITSULAN_DEMO_FRAMES="$frames" node e2e/run.mjs e2e/demo.spec.ts
# Each cut gets a caption for 2 s.
captions=$(node -e '
  const { cuts } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  process.stdout.write(cuts.map((t) => `,drawtext=fontfile=${process.argv[2]}:text=One minute later:fontsize=26:fontcolor=white:box=1:boxcolor=black@0.65:boxborderw=14:x=(w-text_w)/2:y=h*0.42:enable=between(t\\,${t}\\,${t + 2})`).join(""));
' "$frames/timeline.json" "$font")
out=../docs/img/demo.gif
mkdir -p "$(dirname "$out")"
ffmpeg -loglevel error -y \
  -f concat -safe 0 -i "$frames/alice.ffconcat" \
  -f concat -safe 0 -i "$frames/bob.ffconcat" \
  -filter_complex "[0:v]fps=10,scale=236:-2:flags=lanczos,pad=240:ih:0:0:0x3a3a3a[a];\
[1:v]fps=10,scale=236:-2:flags=lanczos,pad=240:ih:4:0:0x3a3a3a[b];\
[a][b]hstack=inputs=2${captions},split[x][y];[x]palettegen=max_colors=64:stats_mode=diff[p];\
[y][p]paletteuse=dither=bayer:bayer_scale=4:diff_mode=rectangle" \
  "$out"
ls -l "$out"
