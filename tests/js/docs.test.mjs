// The README and docs/ as a reader follows them: every relative link and
// #anchor leads to a file of the repository and a heading in it, the
// README links every page of docs/, and each page links back.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const pages = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];

/** The text outside fenced code blocks and code spans, where links are links. */
function prose(markdown) {
  const out = [];
  let fence = null;
  for (const line of markdown.split("\n")) {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length && line.trim() === m[1]) fence = null;
      out.push("");
    } else if (m) {
      fence = m[1];
      out.push("");
    } else {
      out.push(line.replace(/(`+)[^]*?\1/g, (s) => " ".repeat(s.length)));
    }
  }
  return out.join("\n");
}

/** GitHub's anchor for a heading's text (github-slugger's rules). */
function slug(heading) {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // links and images: their text
    .replace(/`([^`]*)`/g, "$1") // code spans: their content
    .replace(/<[^>]+>/g, "") // inline HTML
    .replace(/(\*\*|__|\*|_)(\S[^]*?)\1/g, "$2") // emphasis markers
    .trim();
  return text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
}

/** The headings of a file, from its original lines (code spans kept), outside fenced blocks. */
function headings(markdown) {
  const lines = markdown.split("\n");
  const blank = prose(markdown).split("\n");
  const out = [];
  lines.forEach((line, i) => {
    if (blank[i] === "" && line !== "") return; // inside a fence
    const m = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (m) out.push(m[1]);
  });
  return out;
}

/** The anchors of a file, GitHub's way: each heading's slug, a repeat gets -1, -2, … */
function anchorsOf(markdown) {
  const seen = new Map();
  const out = new Set();
  for (const h of headings(markdown)) {
    const base = slug(h);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The link targets of a Markdown file: inline links, images and reference definitions. */
function links(markdown) {
  const text = prose(markdown);
  const out = [];
  for (const m of text.matchAll(/!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1]);
  for (const m of text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) out.push(m[1]);
  return out;
}

const external = (target) => /^[a-z][a-z0-9+.-]*:/i.test(target);

test("the link finder sees links, images and references, never code", () => {
  const md = "See [a](x.md#b) and ![i](p.png).\n`[no](code.md)`\n```\n[no](fence.md)\n```\n[ref]: r.md\n[t [nested]](n.md)";
  assert.deepEqual(links(md), ["x.md#b", "p.png", "n.md", "r.md"]);
});

test("anchors follow GitHub's slug rules", () => {
  assert.equal(slug("The `phimask` command"), "the-phimask-command");
  assert.equal(slug("Policy reference (version 1)"), "policy-reference-version-1");
  assert.equal(slug("GA4's rules"), "ga4s-rules");
  assert.equal(slug("IDs, time, dedup id, properties"), "ids-time-dedup-id-properties");
  assert.equal(slug("What `make test` runs"), "what-make-test-runs");
  assert.equal(slug("`integrations`"), "integrations");
  assert.equal(slug("Fan-out"), "fan-out");
  assert.equal(slug("Café — straße"), "café--straße");
  assert.deepEqual([...anchorsOf("# A\n## Answers\n```\n# not a heading\n```\n### Answers\n")], ["a", "answers", "answers-1"]);
});

/** What is wrong with the links of `page` (a path from the root) holding `text`: one message per broken link. */
function problems(page, text) {
  const out = [];
  for (const target of links(text)) {
    if (external(target)) {
      if (!/^(https?|mailto):/.test(target)) out.push(`${target}: not a web link`);
      continue;
    }
    const [path, anchor] = target.split("#");
    const file = path === "" ? join(root, page) : resolve(dirname(join(root, page)), decodeURIComponent(path));
    const inside = relative(root, file);
    if (inside.startsWith("..") || resolve(root, inside) !== file) {
      out.push(`${target}: leads outside the repository`);
      continue;
    }
    if (!existsSync(file)) {
      out.push(`${target}: no file ${inside}`);
      continue;
    }
    if (anchor === undefined) continue;
    if (!statSync(file).isFile() || !file.endsWith(".md")) {
      out.push(`${target}: an anchor into ${inside}, which is not Markdown`);
      continue;
    }
    const have = anchorsOf(file === join(root, page) ? text : readFileSync(file, "utf8"));
    if (!have.has(anchor)) out.push(`${target}: no heading #${anchor} in ${inside}`);
  }
  return out;
}

test("a broken link is found: missing file, missing heading, outside the repository, odd scheme", () => {
  const page = "docs/policy.md";
  const bad = [
    "[a](nowhere.md)", "[b](../README.md#no-such-heading)", "[c](#not-here)", "[d](../../shared/DESIGN.md)",
    "[e](/etc/passwd)", "[f](../Cargo.toml#package)", "[g](javascript:alert(1))", "[h](policy%2Emd#nope)",
  ];
  const found = problems(page, `# Title\n\n${bad.join("\n")}\n`);
  assert.equal(found.length, bad.length, found.join("\n"));
  assert.deepEqual(problems(page, "# Title\n\n[ok](../README.md#quick-start) [self](#title) [img](playground.png) `[code](x.md)`\n"), []);
});

for (const page of pages) {
  test(`${page}: every relative link leads to a file of the repository, and every #anchor to a heading`, () => {
    const text = readFileSync(join(root, page), "utf8");
    assert.ok(links(text).length > 0, `${page} links nowhere`);
    assert.deepEqual(problems(page, text), []);
  });
}

test("the README links every page of docs/, and each page links back to the README", () => {
  const readme = links(readFileSync(join(root, "README.md"), "utf8")).map((t) => t.split("#")[0]);
  for (const page of pages.slice(1)) {
    assert.ok(readme.includes(page), `the README does not link ${page}`);
    const back = links(readFileSync(join(root, page), "utf8")).map((t) => t.split("#")[0]);
    assert.ok(back.includes("../README.md"), `${page} does not link back to the README`);
    assert.match(readFileSync(join(root, page), "utf8"), /^# \S/, `${page} has a title`);
  }
});

test("the README stays the front door: short, with the two commands", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  assert.ok(readme.split("\n").length < 300, "README.md is over 300 lines: move reference into docs/");
  assert.match(readme, /^make run {5}# /m);
  assert.match(readme, /^make test {4}# /m);
});
