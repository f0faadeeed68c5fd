#!/usr/bin/env bash
# Opens the trace-event timeline (report --format trace) in speedscope, the npm
# release scripts/setup-tests.sh installs, in headless Chromium, offline, the way
# `speedscope FILE` does: index.html#localProfilePath=JS where JS hands the file
# to speedscope.loadFileFromBase64. speedscope draws its flame charts on a
# canvas, but its sandwich view is a table: a probe appended to JS walks every
# profile (a track: one task of one launch) with the `n` key and copies the
# table's frames and total times into the page, which --dump-dom then shows.
# Checked: a profile per track, frames named by the phase alone (speedscope
# names a frame by its event's name and args), as many distinct frames as
# phases, each frame's total time on each track the time its spans cover in the
# results, and a console without errors or nesting warnings.
# Usage: check_speedscope.sh FORKSCOPE RESULTS.json OUTDIR  (the screenshot stays in OUTDIR)
set -euo pipefail
FORKSCOPE=$1 RESULTS=$2 OUT=$3
SPEEDSCOPE_VERSION=1.25.0  # as scripts/setup-tests.sh installs
SPEEDSCOPE=${FORKSCOPE_CACHE:-/var/cache/forkscope}/speedscope-$SPEEDSCOPE_VERSION/node_modules/speedscope/dist/release/index.html
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $CHROMIUM ]]; then
  echo "chromium is not installed; scripts/setup-tests.sh installs Debian's chromium package" >&2
  exit 1
fi
if [[ ! -f $SPEEDSCOPE ]]; then
  echo "speedscope $SPEEDSCOPE_VERSION is not installed at $SPEEDSCOPE; run scripts/setup-tests.sh" >&2
  exit 1
fi
command -v node >/dev/null || { echo "node is not installed; scripts/setup-tests.sh installs it" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
"$FORKSCOPE" report "$RESULTS" --format trace -o "$OUT/trace.json"

fail() { echo "FAIL: $*" >&2; exit 1; }

# What bin/cli.mjs of the speedscope package writes for `speedscope trace.json`.
printf 'speedscope.loadFileFromBase64("trace.json", "%s")\n' "$(base64 -w0 "$OUT/trace.json")" >"$OUT/load.js"
cp "$OUT/load.js" "$OUT/probe.js"
cat >>"$OUT/probe.js" <<'JS'
// Every profile's sandwich table: [profile name, [[frame, total], ...]], one after another.
;(() => {
  const profiles = [];
  // The toolbar names the profile shown: "NAME <span>(i/n)</span>".
  const label = () => {
    for (const span of document.querySelectorAll('span > span'))
      if (/^\(\d+\/\d+\)$/.test(span.textContent)) return span.parentElement.textContent;
    return '';
  };
  // Its rows: total, self, frame (the profile list's rows have titles).
  const table = () => [...document.querySelectorAll('tr:not([title])')].map(tr => [...tr.cells])
    .filter(cells => cells.length === 3 && cells.every(c => c.tagName === 'TD'))
    .map(cells => [cells[2].textContent, cells[0].textContent]);
  const done = error => {
    const pre = document.createElement('pre');
    pre.id = 'forkscope-probe';
    pre.textContent = JSON.stringify({error, profiles});
    document.body.appendChild(pre);
  };
  let tries = 0;
  const step = () => {
    const name = label(), rows = table();
    const [at, of] = (name.match(/\((\d+)\/(\d+)\)$/) || []).slice(1).map(Number);
    if (at === profiles.length + 1 && rows.length > 0) {
      profiles.push([name, rows]);
      if (at === of) return done(null);
      window.dispatchEvent(new KeyboardEvent('keypress', {key: 'n'}));
      tries = 0;
    } else if (++tries > 200) {
      return done(`stuck at profile ${at} of ${of} with ${rows.length} rows, ${profiles.length} read`);
    }
    setTimeout(step, 50);
  };
  setTimeout(step, 50);
})();
JS

chrome() {
  # A fresh profile per call; no network services, no first-run work. The
  # virtual time budget lets speedscope import the file before the DOM is read.
  local profile
  profile=$(mktemp -d "$OUT/profile.XXXXXX")
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
    --enable-logging=stderr --v=0 --virtual-time-budget=30000 --window-size=1400,2400 "$@"
  rm -rf "$profile"
}

chrome --dump-dom "file://$SPEEDSCOPE#localProfilePath=$OUT/probe.js&view=sandwich" >"$OUT/dom.html" 2>"$OUT/console.log"
grep -q 'Importing as Trace Event Format profile' "$OUT/console.log" ||
  fail "speedscope did not import the file as trace events (see $OUT/console.log)"
# speedscope warns when an end event does not end the frame on top of its stack.
if grep -E 'Uncaught|CONSOLE.*(Error|error)|ERR_|net::|Tried to end|still open' "$OUT/console.log"; then
  fail "console errors or nesting warnings while speedscope imported the timeline (see $OUT/console.log)"
fi

node - "$OUT/dom.html" "$RESULTS" <<'NODE' || fail "speedscope shows the timeline wrong (see $OUT/dom.html)"
const fs = require('fs');
const [dom, resultsFile] = process.argv.slice(2);
const pre = fs.readFileSync(dom, 'utf8').match(/<pre id="forkscope-probe">([^<]*)<\/pre>/);
if (!pre) { console.error('the probe left nothing in the page'); process.exit(1); }
const unescape = s => s.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const {error, profiles} = JSON.parse(unescape(pre[1]));
if (error) { console.error('probe: ' + error); process.exit(1); }
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
// A time as the table shows it, in microseconds, and half its last digit.
const micros = text => {
  const m = text.match(/^([\d.]+)(ns|µs|ms|s)(?![a-z])/);  // "6.28µs (2.6%)"
  if (!m) throw new Error(`not a time: ${text}`);
  const unit = {ns: 1e-3, 'µs': 1, ms: 1e3, s: 1e6}[m[2]];
  return [Number(m[1]) * unit, 0.0051 * unit];
};
// The time a set of [start, end) intervals covers, in microseconds.
const covered = spans => {
  let total = 0, reach = -Infinity;
  for (const [a, b] of spans.sort((x, y) => x[0] - y[0])) {
    if (b > reach) { total += b - Math.max(a, reach); reach = b; }
  }
  return total / 1000;
};
let bad = 0;
const check = (ok, what) => { if (!ok && ++bad <= 10) console.error(what); };  // the first 10
let tracks = 0;
const phases = new Set();
for (const cell of results.cells)
  for (const s of cell.samples || [])
    for (const task of ['parent', 'child']) {
      tracks += s.spans.some(span => span.task === task);
      for (const span of s.spans) phases.add(span.name);
    }
check(profiles.length === tracks, `${profiles.length} profiles, expected ${tracks} (a task of a launch each)`);
const frames = new Set();
for (const [label, rows] of profiles) {
  // "CELL (pid P), launch N TASK (...) (tid T) (i/n)": the cell and track forkscope wrote.
  const m = label.match(/\(pid (\d+)\), launch (\d+) (parent|child) .*\(tid (\d+)\) \(\d+\/\d+\)$/);
  if (!m) { check(false, `profile name ${label}`); continue; }
  const cell = results.cells[Number(m[1]) - 1];
  const sample = cell.samples[(Number(m[4]) - 1) >> 1];
  check(sample.seq === Number(m[2]), `${label}: launch ${sample.seq} expected`);
  const spans = sample.spans.filter(span => span.task === m[3]);
  for (const [frame, total] of rows) {
    frames.add(frame);
    check(phases.has(frame), `${label}: frame ${JSON.stringify(frame)} is not a phase name`);
    const expected = covered(spans.filter(s => s.name === frame).map(s => [s.start_ns, s.start_ns + s.dur_ns]));
    const [shown, rounding] = micros(total);
    check(Math.abs(shown - expected) <= rounding,
          `${label}: ${frame} totals ${total} in speedscope, its spans cover ${expected.toFixed(3)}µs`);
  }
  const names = new Set(spans.map(s => s.name));
  check(rows.length === names.size, `${label}: ${rows.length} frames, ${names.size} phases on the track`);
}
check(frames.size === phases.size, `${frames.size} distinct frames over ${profiles.length} profiles, ${phases.size} phases`);
if (bad) { console.error(`${bad} checks failed`); process.exit(1); }
console.log(`speedscope: ${profiles.length} profiles, ${frames.size} distinct frames: ${[...frames].join(' ')}`);
NODE

chrome --screenshot="$OUT/speedscope.png" --window-size=1400,900 "file://$SPEEDSCOPE#localProfilePath=$OUT/load.js" >/dev/null 2>>"$OUT/console.log"
[[ -s $OUT/speedscope.png ]] || fail "no screenshot"
echo "timeline: $OUT/trace.json"
echo "screenshot: $OUT/speedscope.png"
