#!/usr/bin/env bash
# Renders report.html in headless Chromium, offline: the page must show its tables
# and SVG charts, its script must run (the flame graph marks itself ready), the
# console must stay free of errors, and nothing may be fetched from the network.
# Usage: check_report.sh FORKSCOPE RESULTS.json OUTDIR [MIN_SVGS [NEEDLE]]  (the screenshot stays in OUTDIR)
# MIN_SVGS: charts plus flame graph expected (3: run results; trace results have one
# chart, per group); NEEDLE: a further string the page must show.
set -euo pipefail
FORKSCOPE=$1 RESULTS=$2 OUT=$3 MIN_SVGS=${4:-3} NEEDLE=${5:-copy_page_range}
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $CHROMIUM ]]; then
  echo "chromium is not installed; scripts/setup-tests.sh installs Debian's chromium package" >&2
  exit 1
fi
rm -rf "$OUT"
mkdir -p "$OUT"
REPORT=$OUT/report.html
"$FORKSCOPE" report "$RESULTS" --format html -o "$REPORT"

fail() { echo "FAIL: $*" >&2; exit 1; }

# No URL but the SVG namespace: nothing to fetch.
if grep -o 'https\?://[^"<> ]*' "$REPORT" | grep -v '^http://www.w3.org/2000/svg$' | sort -u | grep .; then
  fail "the report names external URLs"
fi

chrome() {
  # A fresh profile per call; no network services, no first-run work.
  local profile
  profile=$(mktemp -d "$OUT/profile.XXXXXX")
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
    --enable-logging=stderr --v=0 "$@" "file://$REPORT"
  rm -rf "$profile"
}

chrome --dump-dom >"$OUT/dom.html" 2>"$OUT/console.log"
for needle in 'id="summary"' 'id="breakdown"' 'id="phases-available"' 'class="chart"' 'class="flame"' \
              "$NEEDLE" 'data-ready="1"'; do
  grep -q -- "$needle" "$OUT/dom.html" || fail "the rendered page lacks $needle (see $OUT/dom.html)"
done
[[ $(grep -c '<svg' "$OUT/dom.html") -ge $MIN_SVGS ]] || fail "expected the charts and the flame graph as inline SVG"
# Console messages and script errors are logged as CONSOLE lines; any failed load
# as a net:: error.
if grep -E 'Uncaught|CONSOLE.*(Error|error)|ERR_|net::' "$OUT/console.log"; then
  fail "console errors while rendering (see $OUT/console.log)"
fi

# The flame graph's controls: a click on dup_mm zooms to it (its ancestors stretch,
# other tasks' phases hide), Search highlights by name, Reset zoom restores.
cat >"$OUT/probe.js" <<'JS'
<script>
const frame = name => document.querySelector('.flame g.f[data-n="' + name + '"]');
const width = name => frame(name).querySelector('rect').getAttribute('width');
frame('dup_mm').dispatchEvent(new MouseEvent('click'));
document.body.dataset.zoom = [width('dup_mm') === width('syscall'), frame('child_first_run').style.display,
                              document.querySelector('.flame .reset').style.display].join('|');
window.prompt = () => 'copy_page';
document.querySelector('.flame .search').dispatchEvent(new MouseEvent('click'));
document.body.dataset.search = document.querySelectorAll('.flame g.f.hit').length;
document.querySelector('.flame .reset').dispatchEvent(new MouseEvent('click'));
document.body.dataset.reset = frame('child_first_run').style.display + '|' + (width('syscall') !== width('dup_mm'));
</script>
JS
awk -v probe="$(cat "$OUT/probe.js")" '/^<\/body>/ { print probe } { print }' "$REPORT" >"$OUT/interact.html"
REPORT=$OUT/interact.html chrome --dump-dom >"$OUT/interact-dom.html" 2>>"$OUT/console.log"
grep -q 'data-zoom="true|none|"' "$OUT/interact-dom.html" || fail "click-to-zoom did not zoom (see $OUT/interact-dom.html)"
grep -q 'data-search="1"' "$OUT/interact-dom.html" || fail "search did not highlight copy_page_range"
grep -q 'data-reset="|true"' "$OUT/interact-dom.html" || fail "Reset zoom did not restore the graph"
if grep -E 'Uncaught|CONSOLE.*(Error|error)' "$OUT/console.log"; then
  fail "console errors while using the flame graph (see $OUT/console.log)"
fi

chrome --screenshot="$OUT/report.png" --window-size=1400,2400 >/dev/null 2>>"$OUT/console.log"
[[ -s $OUT/report.png ]] || fail "no screenshot"
echo "report: $REPORT"
echo "screenshot: $OUT/report.png"
