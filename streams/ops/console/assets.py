"""The console's stylesheet and its one script, served from memory (no build step, no files
to ship). The script only enhances: every page works without it."""

CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: #1f2328; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem;
         background: #24292f; color: #fff; }
header a { color: #d0d7de; text-decoration: none; margin-right: 1rem; }
header a.here { color: #fff; font-weight: 600; border-bottom: 2px solid #fff; }
header .brand { font-weight: 700; letter-spacing: .02em; }
header .who { margin-left: auto; color: #d0d7de; }
header .who a { color: #fff; }
main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.4rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1.1rem; margin-top: 1.6rem; }
table.grid { border-collapse: collapse; width: 100%; }
table.grid th, table.grid td { border-bottom: 1px solid var(--line); padding: .35rem .5rem;
                               text-align: left; vertical-align: top; }
table.grid th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty { color: var(--muted); font-style: italic; }
tr.detail td { border-bottom: 1px solid var(--line); padding-top: 0; }
tr.entry.replayed td, tr.entry.purged td { color: var(--muted); }
.url { font-family: ui-monospace, monospace; }
.name { color: var(--muted); font-size: .9em; }
.badge { padding: .05rem .45rem; border-radius: 1rem; font-size: .85em; background: #eaeef2; }
.badge.open { background: #ffebe9; color: var(--bad); font-weight: 600; }
.badge.probing { background: #fff8c5; color: var(--warn); }
.badge.paused { background: #ddf4ff; color: #0969da; font-weight: 600; }
.badge.closed { background: #dafbe1; color: var(--ok); }
tr.failing .url { color: var(--bad); font-weight: 600; }
.badge.failing { background: #ffebe9; color: var(--bad); margin-left: .3rem; }
svg.spark polyline { fill: none; stroke-width: 1.5; }
svg.spark polyline.ok { stroke: var(--ok); }
svg.spark polyline.bad { stroke: var(--bad); }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; margin: .8rem 0;
        background: #fff; }
.filters { display: flex; flex-wrap: wrap; gap: .6rem 1rem; align-items: end; }
label { display: inline-flex; flex-direction: column; gap: .15rem; font-size: .9em; }
label.check { flex-direction: row; align-items: center; gap: .3rem; }
input, select { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line);
                border-radius: 4px; }
input[type=url] { width: 28rem; }
button { font: inherit; padding: .3rem .8rem; border-radius: 4px; border: 1px solid #1f883d;
         background: #1f883d; color: #fff; cursor: pointer; }
button.danger { background: #fff; color: var(--bad); border-color: var(--bad); }
button.pause { background: #fff; color: #0969da; border-color: #0969da; }
.buttons { display: flex; gap: .6rem; margin-top: .6rem; }
form.inline { display: inline-flex; gap: .3rem; align-items: center; }
input.reason { width: 9rem; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; max-height: 24rem; }
.error { color: var(--bad); font-weight: 600; }
.notice, .question { font-size: 1.1em; }
.lead { color: var(--muted); max-width: 60rem; }
progress { width: 30rem; height: 1.2rem; }
ul.workers li.down { color: var(--bad); }
details summary { cursor: pointer; color: #0969da; }
"""

JS = """
document.addEventListener('DOMContentLoaded', () => {
  const all = document.getElementById('select-all');
  if (all) {
    all.addEventListener('change', () => {
      document.querySelectorAll('#dead-letters input[name=id]').forEach(b => {
        b.checked = all.checked;
      });
    });
  }
});
"""
