#!/usr/bin/env bash
# Renders the package and app icons from the SVGs next to this script with headless Chromium.
# The PNGs are committed; run this only after changing an SVG:  bash spk/icons/render.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# render SVG SIZE OUT.png
render() {
  local svg="$1" size="$2" out="$3"
  # Chromium's window must be a little taller than the page in headless mode; the page is exactly SIZE.
  cat >"$work/page.html" <<HTML
<!doctype html><html><head><style>html,body{margin:0;padding:0;background:transparent}
img{display:block;width:${size}px;height:${size}px}</style></head>
<body><img src="file://$svg"></body></html>
HTML
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --default-background-color=00000000 --window-size="${size},${size}" \
    --screenshot="$out" "file://$work/page.html" >/dev/null 2>&1
  python3 "$here/check_png.py" "$out" "$size"
}

mkdir -p "$root/ui/images"
# DSM 7 wants a 64x64 PACKAGE_ICON.PNG and a 256x256 PACKAGE_ICON_256.PNG in the .spk.
render "$here/backhome.svg" 64 "$here/PACKAGE_ICON.PNG"
render "$here/backhome.svg" 256 "$here/PACKAGE_ICON_256.PNG"
# Desktop app icons: images/<name>_{16,24,32,48,64,72,256}.png.
for size in 16 24 32 48 64 72 256; do
  render "$here/backhome.svg" "$size" "$root/ui/images/backhome_${size}.png"
  render "$here/portal.svg" "$size" "$root/ui/images/portal_${size}.png"
done
echo "icons written to spk/icons and ui/images"
