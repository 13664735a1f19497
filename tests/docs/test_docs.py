"""Docs that cannot drift: every curl example and command of the pages
(README.md, docs/*.md, clients/README.md, clients/*/README.md: found, not
listed, so a new page is covered the day it lands) runs against a fresh
easytorchd, and what it prints and answers is compared with what the page
documents, numbers included.

    /usr/bin/python3 tests/docs/test_docs.py EASYTORCHD SRCROOT [--build=DIR] [--print] [FILE...]
    /usr/bin/python3 tests/docs/test_docs.py EASYTORCHD SRCROOT --self-test

How a page is read
  * Every ```sh block (also an indented one, in a list item) runs, in page
    order, in one bash session per page
    (files a command writes are there for the next one), against a
    daemon started for the page (fresh data dir, free port).  "127.0.0.1:8080"
    in a command is that daemon's address; EASYTORCH_URL points at it too.
  * Commands are complete shell commands (quotes and line continuations
    followed).  A command's documented output is either
      - the lines after it in a "$ command" block, up to the next "$ ", or
      - "#   <output>" comment lines right after it, or a trailing
        "# {...}" comment on its own line (JSON only).
    An output line may end in "# 409": the status the command answers.
  * Comparison: "..." stands for anything; everything else must be what the
    command printed.  For JSON, whitespace between tokens is ignored (so
    "{"a": 1}" documents {"a":1} and jq's pretty output).  A command with no
    documented output must print nothing; every curl must answer 2xx unless
    its status is documented.  Numbers are compared as written: "0.0621"
    means exactly that, "0.06..." any number starting so.
  * Directives in HTML comments just before a block:
      <!-- doctest: setup -->  the block is setup for what follows (runs,
                                 nothing compared but exit codes);
      <!-- doctest: hidden COMMANDS -->  commands run before the next block
                                 (setup a reader does not need to see);
      <!-- doctest: daemon ARGS -->  the block runs against a second daemon
                                 started with ARGS (paths relative to the
                                 session's directory); U and URL point there;
      <!-- doctest: in-source -->  the block runs in a folder where include/,
                                 examples/ are the source tree's and build/ is the
                                 build being tested (--build DIR);
      <!-- doctest: skip REASON -->  not run (reported);
      <!-- doctest: excerpt PATH -->  not run: every line of the block that is
                                 not a comment must be a line of PATH (spaces
                                 at the ends aside), so a quoted script
                                 cannot drift from the script.
    Commands that start a daemon (easytorchd ..., scripts/run) are replaced
    by the one the test started.
  * A curl command in a block that is not ```sh (unlabelled, ```console, ...)
    fails the test, and so does a command (curl, meson, scripts/..., ...) in
    an indented code block: fence it as sh so it runs, or skip it with a
    reason.
  * The suites of the build, those `scripts/test --help` describes and
    README.md's list are the same (fuzz: only in the libFuzzer build).
  * docs/API.md's "## Command line" table and `easytorchd --help` list the
    same options, with the same environment variables and defaults (the
    first word of the default cell against "(default X)" of the help).
--print shows what each command printed (to write the docs from a run).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
from daemon import Daemon  # noqa: E402

FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
INDENTED_COMMAND = re.compile(r"^(    |\t)\s*(\$ )?(curl|meson|ninja|scripts/|/usr/bin/python3|python3|"
                              r"easytorchd|build[\w-]*/|docker|cc|gcc|clang|pip|npm|node|jq)\b")
CURL_LINE = re.compile(r"^\s*(\$\s+)?(\S+=\S*\s+)*curl\s")


def pages(src):
    """Every page whose examples are tested, in a stable order."""
    import glob
    found = ["README.md"]
    found += sorted(os.path.relpath(p, src) for p in glob.glob(os.path.join(src, "docs", "*.md")))
    found += ["clients/README.md"] if os.path.exists(os.path.join(src, "clients", "README.md")) else []
    found += sorted(os.path.relpath(p, src)
                    for p in glob.glob(os.path.join(src, "clients", "*", "README.md")))
    return found
DIRECTIVE = re.compile(r"<!--\s*doctest:\s*([\w-]+)\s*(.*?)\s*-->", re.S)
STATUS = re.compile(r"\s+#\s*(\d{3})\s*$")
DAEMON_START = re.compile(r"^\s*(easytorchd|scripts/run|build/src/server/easytorchd)\b")


class Command:
    def __init__(self, text, line, doc):
        self.text = text          # shell text (may span lines)
        self.line = line          # line number in the page
        self.doc = doc
        self.expect = None        # documented output, or None: nothing printed
        self.status = None        # documented status


def complete(text):
    """Is text a complete shell command (quotes closed, no continuation)?"""
    sq = dq = False
    i = 0
    while i < len(text):
        c = text[i]
        if sq:
            sq = c != "'"
        elif dq:
            if c == "\\":
                i += 1
            elif c == '"':
                dq = False
        elif c == "\\":
            i += 1
        elif c == "'":
            sq = True
        elif c == '"':
            dq = True
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n"):
            nl = text.find("\n", i)
            if nl < 0:
                break
            i = nl
        i += 1
    if sq or dq:
        return False
    last = text.rstrip("\n").split("\n")[-1]
    body = strip_comment(last).rstrip()
    return not (body.endswith("\\") or body.endswith("|") or body.endswith("&&"))


def strip_comment(line):
    """line without a trailing shell comment (quotes respected)."""
    sq = dq = False
    for i, c in enumerate(line):
        if sq:
            sq = c != "'"
        elif dq:
            dq = c != '"'
        elif c == "'":
            sq = True
        elif c == '"':
            dq = True
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def trailing_comment(line):
    body = strip_comment(line)
    return line[len(body):].lstrip("#").strip() if len(body) < len(line) else None


def take_status(lines):
    """Documented output lines with a final "# NNN" taken off; (lines, status)."""
    status = None
    out = []
    for ln in lines:
        m = STATUS.search(ln)
        if m:
            status = int(m.group(1))
            ln = ln[:m.start()]
        out.append(ln.rstrip())
    return out, status


def parse_block(lines, first_line, doc):
    """Commands of one block with their documented output."""
    cmds = []
    dollar = any(ln.startswith("$ ") for ln in lines)
    i = 0
    while i < len(lines):
        ln = lines[i]
        if not ln.strip() or (ln.lstrip().startswith("#") and not dollar):
            i += 1
            continue
        if dollar and not ln.startswith("$ "):
            raise SyntaxError("%s:%d: output without a command" % (doc, first_line + i))
        start = i
        text = ln[2:] if dollar else ln
        while not complete(text) and i + 1 < len(lines):
            i += 1
            nxt = lines[i]
            text += "\n" + (nxt[2:] if dollar and nxt.startswith("$ ") else nxt)
        c = Command(text, first_line + start, doc)
        i += 1
        out = []
        if dollar:
            while i < len(lines) and not lines[i].startswith("$ "):
                out.append(lines[i])
                i += 1
            while out and not out[-1].strip():
                out.pop()
        else:
            tc = trailing_comment(text.split("\n")[-1])
            if tc and tc[:1] in "{[":
                out = [tc]
            while i < len(lines) and re.match(r"^#\s{3}", lines[i]):
                out.append(lines[i][1:].strip())
                i += 1
        if out:
            c.expect, c.status = take_status(out)
            c.expect = "\n".join(c.expect)
        cmds.append(c)
    return cmds


def parse_doc(path, doc):
    """[(directives, first line, [Command])] for every sh block of the page."""
    text = open(path).read()
    blocks = []
    lines = text.split("\n")
    pending = []   # directives seen since the last block
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            # directives may span lines: gather the comment
            if "<!--" in lines[i]:
                j = i
                chunk = lines[i]
                while "-->" not in chunk and j + 1 < len(lines):
                    j += 1
                    chunk += "\n" + lines[j]
                for d in DIRECTIVE.finditer(chunk):
                    pending.append((d.group(1), d.group(2)))
                i = j
            elif lines[i].strip():
                if (INDENTED_COMMAND.match(lines[i]) and i > 0 and not lines[i - 1].strip()
                        and not (i > 1 and re.match(r"^\s*([-*+]|\d+\.)\s", lines[i - 2]))):
                    raise SyntaxError("%s:%d: a command in an indented code block is not run: "
                                      "fence it as ```sh (and skip it with a reason if it "
                                      "cannot run here)" % (doc, i + 1))
                pending = [p for p in pending if p[0] == "hidden"]
            i += 1
            continue
        indent, lang = m.group(1), m.group(2)
        j = i + 1
        while j < len(lines) and not FENCE.match(lines[j]):
            j += 1
        # a block in a list item is indented as its fence is
        body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip()
                for ln in lines[i + 1:j]]
        if lang in ("sh", "bash", "shell"):
            blocks.append((pending, i + 2, parse_block(body, i + 2, doc)))
        elif lang not in ("python", "json", "c") and not any(k == "skip" for k, _ in pending):
            for k, ln in enumerate(body):
                if CURL_LINE.match(ln):
                    raise SyntaxError("%s:%d: a curl example in a ```%s block is not run: "
                                      "label the block sh, or skip it with a reason"
                                      % (doc, i + 2 + k, lang))
        pending = []
        i = j + 1
    return blocks


# ---------------------------------------------------------------- comparing

def squeeze_json(s):
    """s with the whitespace between JSON tokens removed (strings kept)."""
    out = []
    in_str = esc = False
    for ch in s:
        if in_str:
            out.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
            out.append(ch)
        elif ch not in " \t\r\n":
            out.append(ch)
    return "".join(out)


def matches(expect, got):
    is_json = expect.replace("...", "").lstrip()[:1] in ("{", "[")
    if is_json:
        expect, got = squeeze_json(expect), squeeze_json(got)
    else:
        expect = "\n".join(ln.rstrip() for ln in expect.strip("\n").split("\n"))
        got = "\n".join(ln.rstrip() for ln in got.strip("\n").split("\n"))
    pattern = ".*?".join(re.escape(p) for p in expect.split("..."))
    return re.fullmatch(pattern, got, re.S) is not None


# ---------------------------------------------------------------- running

class Session:
    """One bash process; commands are sent one at a time, output split by markers."""

    def __init__(self, cwd, env):
        self.p = subprocess.Popen(["bash", "--norc", "--noprofile"], cwd=cwd, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1)
        self.n = 0
        # every curl reports its status on stderr
        # (no pipefail: `curl ... | head -c 40` is a fine example; a curl that
        # fails answers status 000, which the status check refuses)
        self.send_raw("curl() { command curl --write-out '%{stderr}@@status %{http_code}\\n' \"$@\"; }\n")

    def send_raw(self, s):
        self.p.stdin.write(s)
        self.p.stdin.flush()

    def run(self, text):
        self.n += 1
        mark = "@@done-%d" % self.n
        # stdin is /dev/null: a command must not eat the commands that follow
        self.send_raw("{ %s\n} < /dev/null\n__rc=$?; echo; echo '%s' \"$__rc\"; echo '%s' >&2\n"
                      % (text, mark, mark))
        out = self.read_until(self.p.stdout, mark)
        err = self.read_until(self.p.stderr, mark)
        lines = out.split("\n")
        rc = int(lines[-1].split()[1]) if lines[-1].startswith(mark) else -1
        stdout = "\n".join(lines[:-1])
        if stdout.endswith("\n"):
            stdout = stdout[:-1]  # the echo before the mark
        statuses = [int(s) for s in re.findall(r"@@status (\d+)", err)]
        err = re.sub(r"@@status \d+\n?", "", err)
        err = err.replace(mark, "")
        return rc, stdout, err, statuses

    @staticmethod
    def read_until(f, mark):
        buf = []
        while True:
            ln = f.readline()
            if not ln:
                return "".join(buf) + mark + " -1"
            if ln.startswith(mark):
                buf.append(ln.rstrip("\n"))
                return "".join(buf)
            buf.append(ln)

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.p.kill()


def check_excerpt(doc, line, path, cmds, src):
    """A block quoting a file: its non-comment lines are lines of the file."""
    try:
        have = {ln.strip() for ln in open(os.path.join(src, path)).read().split("\n")}
    except OSError as e:
        return (doc, line, "FAIL", "excerpt of %s: %s" % (path, e))
    missing = [ln.strip() for c in cmds for ln in c.text.split("\n")
               if ln.strip() and not ln.strip().startswith("#") and ln.strip() not in have]
    return (doc, line, "FAIL" if missing else "ok",
            "excerpt of %s" % path + "".join("\n    not in %s: %s" % (path, m) for m in missing))


def sanitized(build):
    """Was the build configured with -Db_sanitize?"""
    import json
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError, KeyError):
        return False
    return opts.get("b_sanitize", "none") != "none"


def substitute(text, addr):
    return text.replace("127.0.0.1:8080", addr)


def run_doc(doc, path, easytorchd, show, results, src, build):
    blocks = parse_doc(path, doc)
    if all("skip" in dict(d) or "excerpt" in dict(d) for d, _, _ in blocks):
        for d, line, cmds in blocks:  # nothing runs: no daemon either
            kinds = dict(d)
            results.append((doc, line, "skip", kinds["skip"]) if "skip" in kinds else
                           check_excerpt(doc, line, kinds["excerpt"], cmds, src))
        return
    work = tempfile.mkdtemp(prefix="et-doctest-")
    tree = os.path.join(work, "tree")  # for in-source blocks
    os.makedirs(tree)
    for name, target in (("include", os.path.join(src, "include")),
                         ("examples", os.path.join(src, "examples")), ("build", build)):
        if target:
            os.symlink(target, os.path.join(tree, name))
    daemons = []
    main_d = Daemon(extra_args=["--quiet"]).start()
    daemons.append(main_d)
    addr = "%s:%d" % (main_d.host, main_d.port)
    env = dict(os.environ)
    for k in [k for k in env if k.startswith("EASYTORCH_")]:
        del env[k]
    env.update({"EASYTORCH_URL": "http://" + addr, "U": "http://" + addr, "LC_ALL": "C"})
    env["PATH"] = os.path.dirname(os.path.abspath(easytorchd)) + os.pathsep + env["PATH"]
    sh = Session(work, env)
    try:
        for directives, line, cmds in blocks:
            kinds = dict(directives)
            if "skip" in kinds:
                results.append((doc, line, "skip", kinds["skip"]))
                continue
            if "excerpt" in kinds:
                results.append(check_excerpt(doc, line, kinds["excerpt"], cmds, src))
                continue
            for k, v in directives:
                if k == "hidden":
                    rc, out, err, st = sh.run(substitute(v, addr))
                    bad = rc != 0 or any(s >= 400 for s in st)
                    results.append((doc, line, "FAIL" if bad else "ok",
                                    "hidden setup" + (": rc %d %s %s" % (rc, out, err) if bad else "")))
            block_addr = addr
            if "in-source" in kinds:
                if not build:
                    results.append((doc, line, "FAIL", "in-source block: no --build DIR given"))
                    continue
                if sanitized(build):
                    results.append((doc, line, "skip", "in-source block: a sanitizer build "
                                    "(a program linked to it needs the sanitizer flags)"))
                    continue
                sh.run('cd "%s"' % tree)
            if "daemon" in kinds:
                args = kinds["daemon"].split()
                args = [os.path.join(work, a) if os.path.exists(os.path.join(work, a)) else a
                        for a in args]
                extra = Daemon(extra_args=["--quiet"] + args).start()
                daemons.append(extra)
                block_addr = "%s:%d" % (extra.host, extra.port)
                sh.run("U=http://%s; URL=$U" % block_addr)
            for c in cmds:
                if DAEMON_START.match(c.text):
                    results.append((doc, c.line, "skip", "starts a daemon (the test's is used)"))
                    continue
                rc, out, err, st = sh.run(substitute(c.text, block_addr))
                if show:
                    print("---- %s:%d  $ %s\n%s\n[rc %d, status %s]%s" % (
                        doc, c.line, c.text, out, rc, st, ("\n[stderr] " + err.strip()) if err.strip() else ""))
                problems = []
                if rc != 0:
                    problems.append("exit status %d (stderr: %s)" % (rc, err.strip()[-300:]))
                if "setup" in kinds:
                    if any(s >= 400 for s in st):
                        problems.append("status %s" % st)
                else:
                    if c.status is not None:
                        if st != [c.status]:
                            problems.append("status %s, documented %d" % (st, c.status))
                    elif any(not 200 <= s < 300 for s in st):
                        problems.append("status %s (document a non-2xx status as '# NNN')" % st)
                    if c.expect is None:
                        if out.strip():
                            problems.append("printed output the page does not show:\n%s" % out[:2000])
                    elif not matches(c.expect, out):
                        problems.append("documented:\n%s\nprinted:\n%s" % (c.expect, out[:3000]))
                first = c.text.split("\n")[0][:100]
                results.append((doc, c.line, "FAIL" if problems else "ok",
                                first + ("\n    " + "\n    ".join("\n".join(problems).split("\n"))
                                         if problems else "")))
            if "daemon" in kinds:
                sh.run("U=http://%s; URL=$U" % addr)
            if "in-source" in kinds:
                sh.run('cd "%s"' % work)
    finally:
        sh.close()
        for d in daemons:
            d.cleanup()
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- the options table

def help_options(text):
    """{flag: (env or None, default or None)} from `easytorchd --help`."""
    opts, cur = {}, None
    for ln in text.split("\n"):
        m = re.match(r"^  (--[\w-]+)(?: \S+)?\s*(?:\[env (\w+)\])?\s*$", ln)
        if m:
            cur = m.group(1)
            opts[cur] = [m.group(2), None]
        elif cur and ln.startswith("    ") and opts[cur][1] is None:
            d = re.search(r"\(default ([^;)]+)", ln)
            if d:
                opts[cur][1] = first_word(d.group(1))
        elif not ln.startswith("    "):
            cur = None
    return {k: tuple(v) for k, v in opts.items()}


def first_word(s):
    w = s.replace("`", "").strip().split()
    return w[0].rstrip(";:,.") if w else ""


def table_options(md):
    """{flag: (env or None, default cell's first word)} from the "## Command
    line" table of docs/API.md."""
    m = re.search(r"^## Command line\n(.*?)(?=^## |\Z)", md, re.M | re.S)
    opts = {}
    for row in (m.group(1).split("\n") if m else []):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]  # "\|" is in a cell
        if len(cells) < 3 or not cells[0].startswith("`--"):
            continue
        env = re.search(r"EASYTORCH_\w+", cells[1])
        for flag in re.findall(r"`(--[\w-]+)", cells[0]):
            opts[flag] = (env.group(0) if env else None, first_word(cells[2]))
    return opts


def compare_options(help_text, md):
    """The problems between --help and docs/API.md's option table."""
    h, t = help_options(help_text), table_options(md)
    problems = []
    if not t:
        return ["docs/API.md: no \"## Command line\" table of options"]
    for flag in sorted(set(h) - set(t)):
        problems.append("%s (in --help) has no row in docs/API.md's Command line table" % flag)
    for flag in sorted(set(t) - set(h)):
        problems.append("%s is in docs/API.md's Command line table but not in --help" % flag)
    for flag in sorted(set(h) & set(t)):
        (henv, hdef), (tenv, tdef) = h[flag], t[flag]
        if henv and henv != tenv:
            problems.append("%s: --help says env %s, docs/API.md %s" % (flag, henv, tenv))
        if hdef and hdef != tdef:
            problems.append("%s: --help says default %s, docs/API.md %s" % (flag, hdef, tdef))
    return problems


def check_options(easytorchd, src, results):
    out = subprocess.run([easytorchd, "--help"], capture_output=True, text=True).stdout
    md = open(os.path.join(src, "docs", "API.md")).read()
    problems = compare_options(out, md)
    results.append(("docs/API.md", 0, "FAIL" if problems else "ok",
                    "the Command line table against easytorchd --help (%d options)"
                    % len(help_options(out)) + "".join("\n    " + p for p in problems)))


# ---------------------------------------------------------------- the suites

def suite_lists(src, build):
    """{where: set of suite names}: the build's tests, `scripts/test --help`
    and README.md's "runs one suite" list."""
    import json
    out = {}
    r = subprocess.run(["meson", "introspect", build, "--tests"], capture_output=True, text=True)
    try:
        out["the build (meson)"] = {x.split(":", 1)[-1] for t in json.loads(r.stdout)
                                    for x in t["suite"]}
    except (ValueError, KeyError):
        out["the build (meson)"] = None
    h = subprocess.run([os.path.join(src, "scripts", "test"), "--help"], capture_output=True,
                       text=True).stdout
    sec = h.split("Suites:", 1)[1] if "Suites:" in h else ""
    out["scripts/test --help"] = set(re.findall(r"^  (\w+)\s{2,}", sec.split("\n\n")[0], re.M))
    readme = open(os.path.join(src, "README.md")).read()
    m = re.search(r"runs one suite \((.*?)\)", readme, re.S)
    out["README.md"] = set(re.findall(r"`(\w+)`", m.group(1))) if m else set()
    return out


def compare_suites(have, lists):
    problems = []
    for where, names in lists.items():
        for name in sorted(have - names):
            problems.append("suite %s (in the build) is not in %s" % (name, where))
        for name in sorted(names - have - {"fuzz"}):
            problems.append("%s names suite %s, which the build does not have" % (where, name))
    return problems


def check_suites(src, build, results):
    """Every suite the build has is described by scripts/test --help and
    listed in README.md, and neither names a suite that does not exist
    (fuzz: only in the libFuzzer build)."""
    try:
        import json
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            tests_on = {o["name"]: o["value"] for o in json.load(f)}.get("tests", True)
    except (OSError, ValueError, KeyError):
        tests_on = True
    if not tests_on:
        results.append(("README.md", 0, "skip", "suites: a -Dtests=false build has only some"))
        return
    lists = suite_lists(src, build)
    have = lists.pop("the build (meson)")
    if have is None:
        results.append(("README.md", 0, "FAIL", "suites: meson introspect %s failed" % build))
        return
    problems = compare_suites(have, lists)
    results.append(("README.md", 0, "FAIL" if problems else "ok",
                    "the suites (%s) in scripts/test --help and README.md" % ", ".join(sorted(have))
                    + "".join("\n    " + p for p in problems)))


SELF_TEST_HELP = """usage
  --listen HOST:PORT                 [env EASYTORCH_LISTEN]
    address (default 127.0.0.1:8080; port 0 picks)
  --max-models N                     [env EASYTORCH_MAX_MODELS]
    most models (default 1024)
  --timeout SECONDS                  [env EASYTORCH_TIMEOUT]
    close idle (default 30)
  --new-flag N                       [env EASYTORCH_NEW_FLAG]
    undocumented (default 3)
"""
SELF_TEST_TABLE = """## Command line

| flag | env | default |
|---|---|---|
| `--listen HOST:PORT` | `EASYTORCH_LISTEN` | `127.0.0.1:8080`; port 0 |
| `--max-models N` | `EASYTORCH_MAX_MODELS` | 256 |
| `--timeout SECONDS` | `EASYTORCH_TIMEOUTS` | 30 |
| `--gone N` | `EASYTORCH_GONE` | 1 |
"""
SELF_TEST_OPTION_PROBLEMS = ["--new-flag (in --help) has no row", "--gone is in docs/API.md",
                             "--max-models: --help says default 1024, docs/API.md 256",
                             "--timeout: --help says env EASYTORCH_TIMEOUT"]


SELF_TEST_PAGE = """\
```sh
$ curl -s $U/healthz
{"status": "ok"}
$ curl -s $U/healthz
{"status":"bad"}
$ echo '{"loss":0.010739505}'
{"loss":0.010739...}
$ echo '{"loss":0.010739505}'
{"loss":0.0107394...}
$ curl -s $U/v1/models/nope
{"error":"no model named \\"nope\\""}   # 404
$ curl -s $U/v1/models/nope
{"error":"no model named \\"nope\\""}
$ curl -s $U/v1/models/nope
{"error":"no model named ..."}   # 400
$ echo surprise
```
<!-- doctest: skip not run -->
```sh
false
```
<!-- doctest: excerpt script.sh -->
```sh
# a comment need not be there
false
```
<!-- doctest: excerpt script.sh -->
```sh
false
echo not in the script
```
"""
SELF_TEST_EXPECT = ["ok", "FAIL", "ok", "FAIL", "ok", "FAIL", "FAIL", "FAIL", "skip", "ok", "FAIL"]


def self_test(easytorchd):
    """The comparison can fail: a page with right and wrong examples gets the
    verdicts it should, and a curl outside a sh block fails its page."""
    work = tempfile.mkdtemp(prefix="et-doctest-self-")
    try:
        with open(os.path.join(work, "page.md"), "w") as f:
            f.write(SELF_TEST_PAGE)
        with open(os.path.join(work, "script.sh"), "w") as f:
            f.write("#!/bin/sh\n    false   \n")
        with open(os.path.join(work, "bad.md"), "w") as f:
            f.write("```\ncurl -s $U/healthz\n```\n")
        with open(os.path.join(work, "bad2.md"), "w") as f:
            f.write("Run it:\n\n    meson test -C build --suite docs\n")
        results = []
        run_doc("page.md", os.path.join(work, "page.md"), easytorchd, False, results, work, None)
        got = [r[2] for r in results]
        bad = []
        for page, what in (("bad.md", "a curl in an unlabelled block"),
                           ("bad2.md", "a command in an indented block")):
            try:
                parse_doc(os.path.join(work, page), page)
                bad.append(what + " was not refused")
            except SyntaxError:
                pass
        suite_problems = compare_suites({"core", "server", "docs"},
                                        {"README.md": {"core", "server", "fuzz"},
                                         "scripts/test --help": {"core", "server", "docs", "old"}})
        if suite_problems != ["suite docs (in the build) is not in README.md",
                              "scripts/test --help names suite old, which the build does not have"]:
            bad.append("suite check found %s" % suite_problems)
        opt_problems = compare_options(SELF_TEST_HELP, SELF_TEST_TABLE)
        for w in SELF_TEST_OPTION_PROBLEMS:
            if not any(p.startswith(w) for p in opt_problems):
                bad.append("option check missed: " + w)
        if len(opt_problems) != len(SELF_TEST_OPTION_PROBLEMS):
            bad.append("option check found %s" % opt_problems)
        for r in results:
            print("self-test %s: line %d: %s" % (r[2], r[1], r[3].split("\n")[0]))
        if got != SELF_TEST_EXPECT or bad:
            print("self-test FAILED: verdicts %s, expected %s %s" % (got, SELF_TEST_EXPECT, bad))
            return 1
        print("self-test: %d verdicts as expected" % len(got))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show = "--print" in sys.argv
    build = None
    for a in sys.argv[1:]:
        if a.startswith("--build="):
            build = os.path.abspath(a.split("=", 1)[1])
    if len(args) < 2:
        print(__doc__)
        return 2
    import daemon as dmod
    dmod.DAEMON_PATH = os.path.abspath(args[0])
    if "--self-test" in sys.argv:
        return self_test(args[0])
    src = os.path.abspath(args[1])
    docs = args[2:] or pages(src)
    results = []
    if not args[2:]:
        check_options(args[0], src, results)
        if build:
            check_suites(src, build, results)
    for doc in docs:
        try:
            run_doc(doc, os.path.join(src, doc), args[0], show, results, src, build)
        except Exception as e:  # noqa: BLE001
            results.append((doc, 0, "FAIL", "%s: %s" % (type(e).__name__, e)))
    passed = failed = skipped = 0
    for doc, line, verdict, what in results:
        if verdict == "skip":
            skipped += 1
            print("skip: %s:%d: %s" % (doc, line, what))
        elif verdict == "ok":
            passed += 1
            print("ok: %s:%d: %s" % (doc, line, what))
        else:
            failed += 1
            print("FAIL: %s:%d: %s" % (doc, line, what))
    print("%d passed, %d failed (%d skipped)" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
