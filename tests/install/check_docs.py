#!/usr/bin/env python3
"""The man pages and shell completions generated from ppnet's option tables, checked against
what the binary itself says (`ppnet CMD --help`):

  * every page renders with `groff -man -Tutf8 -ww -z` without a warning (and with `man -l`
    where man-db is installed), has NAME, SYNOPSIS, OPTIONS, EXIT STATUS, FILES and EXAMPLES,
    and lists every option --help lists; there is one page per command and ppnet(1);
  * `ppnet completion bash`, loaded into bash, completes commands, options, choices, folders
    for folder options and files for file options (queried as bash's completion would);
  * `ppnet completion zsh` parses (zsh -n) and compinit picks it up as ppnet's.

Usage: check_docs.py PPNET MAN_DIR WORK. Exit 0 when every check passes."""
import functools
import os
import re
import shutil
import subprocess
import sys

ppnet, man_dir, work = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


help_text = run([ppnet, "--help"]).stdout
commands = re.findall(r"^  ([a-z-]+)  ", help_text.split("Commands:")[1].split("\n\n")[0], re.M)
check(len(commands) >= 15, f"ppnet --help lists {len(commands)} commands")


@functools.lru_cache(maxsize=None)
def help_options(command):
    out = run([ppnet, command, "--help"]).stdout
    return set(re.findall(r"^\s+(?:-\w \[ )?--([a-z][a-z0-9-]*)", out, re.M))


# Man pages
pages = sorted(f for f in os.listdir(man_dir) if f.endswith(".1"))
check(pages == sorted(["ppnet.1"] + [f"ppnet-{c}.1" for c in commands]),
      f"man pages {pages} are not ppnet.1 and one per command {commands}")
for page in pages:
    path = os.path.join(man_dir, page)
    text = open(path, encoding="ascii").read()  # non-ASCII must have become groff glyphs
    groff = run(["groff", "-man", "-Tutf8", "-ww", "-z", path])
    check(groff.returncode == 0 and groff.stderr == "", f"groff -ww on {page}: rc {groff.returncode}: {groff.stderr.strip()}")
    for section in ["NAME", "SYNOPSIS", "OPTIONS", "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"]:
        check(re.search(rf'^\.SH "?{section}"?$', text, re.M), f"{page} has no {section} section")
    if shutil.which("man"):
        rendered = run(["man", "-l", path], env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0", "PAGER": "cat"})
        check(rendered.returncode == 0 and rendered.stderr == "", f"man -l {page}: {rendered.stderr.strip()}")
for command in commands:
    text = open(os.path.join(man_dir, f"ppnet-{command}.1"), encoding="ascii").read()
    text = re.sub(r"^\\fB\\-[a-zA-Z]\\fR, ", "", text, flags=re.M)  # "-q, --quiet": the long name counts
    listed = set(re.findall(r"^\\fB\\-\\-([a-z0-9\\-]+)\\fR", text, re.M))
    listed = {name.replace("\\-", "-") for name in listed}
    expected = help_options(command)
    check(listed == expected, f"ppnet-{command}.1 lists {sorted(listed ^ expected)} differently from --help")

# bash completion
script = os.path.join(work, "ppnet.bash")
os.makedirs(work, exist_ok=True)
with open(script, "w") as f:
    f.write(run([ppnet, "completion", "bash"]).stdout)
folder = os.path.join(work, "place")
os.makedirs(os.path.join(folder, "runs-a"), exist_ok=True)
open(os.path.join(folder, "notes.txt"), "w").close()


def complete(*words):
    """What bash's completion offers for `ppnet WORDS…` (the last word the one being typed)."""
    line = " ".join("'" + w + "'" for w in ("ppnet",) + words)
    probe = (f"source {script}\nCOMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_LINE=x; "
             "_ppnet; printf '%s\\n' \"${COMPREPLY[@]}\"")
    result = run(["bash", "--norc", "--noprofile", "-c", probe], cwd=folder)
    check(result.returncode == 0, f"bash completion of {words}: {result.stderr}")
    return set(filter(None, result.stdout.split("\n")))


def expect(words, wanted, exact=True):
    got = complete(*words)
    check(got == set(wanted) if exact else set(wanted) <= got, f"ppnet {' '.join(words)}<TAB> offers {sorted(got)}, expected {sorted(wanted)}")


expect(("",), set(commands) | {"help", "--help", "--version"})
expect(("tr",), {"train"})
expect(("help", "ex"), {"explain", "export"})
expect(("train", "--st"), {"--stage"})
expect(("train", "--stage", ""), {"warm", "joint"})
expect(("last-layer", "--solver", ""), {"prox", "adam", "newton", "fista"})
expect(("train", "--arch", "resnet"), {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"})
expect(("evaluate", "--split", ""), {"test", "val", "train"})
expect(("completion", ""), {"bash", "zsh"})
expect(("train", "--run", ""), {"runs-a"})               # a folder option: folders only
expect(("train", "--weights", ""), {"runs-a", "notes.txt"})  # a file option: files and folders
expect(("train", "--epochs", ""), set())                   # a number: nothing to offer
expect(("train", "--epochs", "3", "--resu"), {"--resume"})
for command in commands:
    expect((command, "--"), {"--" + o for o in help_options(command)})
registered = run(["bash", "--norc", "-c", f"source {script}; complete -p ppnet"])
check("-F _ppnet" in registered.stdout, f"the bash script does not register _ppnet: {registered.stdout}{registered.stderr}")

# zsh completion
if shutil.which("zsh") is None:
    failures.append("zsh is not installed (scripts/install-deps.sh installs it)")
else:
    zdir = os.path.join(work, "zsh")
    os.makedirs(zdir, exist_ok=True)
    with open(os.path.join(zdir, "_ppnet"), "w") as f:
        f.write(run([ppnet, "completion", "zsh"]).stdout)
    syntax = run(["zsh", "-n", os.path.join(zdir, "_ppnet")])
    check(syntax.returncode == 0, f"zsh -n _ppnet: {syntax.stderr}")
    loaded = run(["zsh", "-fc", f"fpath=({zdir} $fpath); autoload -Uz compinit; compinit -u -d {zdir}/.zcompdump; "
                  "print -r -- ${_comps[ppnet]}"])
    check(loaded.stdout.strip() == "_ppnet", f"zsh's compinit does not take _ppnet for ppnet: {loaded.stdout}{loaded.stderr}")
    for command in commands:
        spec = re.search(rf"^    {re.escape(command)}\) _arguments(.*?);;$", open(os.path.join(zdir, "_ppnet")).read(), re.M | re.S)
        named = set(re.findall(r"'--([a-z0-9-]+)\[", spec.group(1))) if spec else set()
        check(named == help_options(command), f"zsh's {command} offers {sorted(named ^ help_options(command))} differently from --help")

for f in failures:
    print("check_docs:", f, file=sys.stderr)
print(f"check_docs: {len(pages)} man pages, bash and zsh completion for {len(commands)} commands: "
      f"{'all checks passed' if not failures else str(len(failures)) + ' failures'}")
sys.exit(1 if failures else 0)
