#!/usr/bin/env python3
"""run-action.py: runs a composite action's steps (action.yml) the way the GitHub runner does, here,
for shell/release/check-action.sh. Not a runner: just enough of one to run tfshim's own action.yml
for real — its `run` steps in bash with the runner's flags (`bash --noprofile --norc -eo pipefail`),
`${{ … }}` in `env`, `with` and `if` evaluated against a simulated context, step outputs through
GITHUB_OUTPUT, GITHUB_ENV and GITHUB_PATH applied to later steps. A `uses:` step (actions/cache) is
a cache miss. Unknown expressions are an error, never silently empty.

  run-action.py ACTION_DIR STATE_JSON [INPUT=VALUE…]

The GitHub context comes from the environment as on a runner: GITHUB_ACTION_REF,
GITHUB_ACTION_REPOSITORY, GITHUB_REPOSITORY, GITHUB_WORKSPACE, RUNNER_TEMP, RUNNER_TOOL_CACHE… The
action's outputs, and what it left in GITHUB_ENV and GITHUB_PATH, are written to STATE_JSON. Exits
with the first failing step's code (the runner stops there too)."""
import json
import os
import re
import subprocess
import sys

import yaml

action_dir, state_path, *pairs = sys.argv[1:]
action = yaml.safe_load(open(os.path.join(action_dir, "action.yml")))
given = dict(p.split("=", 1) for p in pairs)
for name in given:
    if name not in action["inputs"]:
        sys.exit(f"run-action: unknown input {name}")
inputs = {n: given.get(n, str(d.get("default", ""))) for n, d in action["inputs"].items()}

env = dict(os.environ)
github = {
    "action_ref": env.get("GITHUB_ACTION_REF", ""),
    "action_repository": env.get("GITHUB_ACTION_REPOSITORY", ""),
    "action_path": action_dir,
    "repository": env["GITHUB_REPOSITORY"],
    "workspace": env["GITHUB_WORKSPACE"],
}
runner = {"os": env["RUNNER_OS"], "arch": env["RUNNER_ARCH"], "temp": env["RUNNER_TEMP"]}
steps = {}
job_env, job_path = {}, []

NAME = re.compile(r"\b(inputs|github|runner|steps)((?:\.[A-Za-z0-9_-]+)+)")


def lookup(root, dotted):
    parts = dotted.lstrip(".").split(".")
    if root == "steps":
        sid, kind, key = parts  # steps.ID.outputs.NAME
        assert kind == "outputs", dotted
        return steps.get(sid, {}).get(key, "")
    table = {"inputs": inputs, "github": github, "runner": runner}[root]
    (key,) = parts
    if key not in table:
        raise SystemExit(f"run-action: no {root}.{key} in the simulated context")
    return table[key]


def evaluate(expr):
    py = NAME.sub(lambda m: repr(lookup(m.group(1), m.group(2))), expr)
    py = py.replace("&&", " and ").replace("||", " or ")
    py = re.sub(r"!(?!=)", " not ", py)
    py = py.replace("success()", "True")
    return eval(py, {"__builtins__": {}}, {})  # only literals and operators are left


def expand(text):
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1))), str(text))


def read_file_commands(path):
    """NAME=VALUE lines (and NAME<<DELIM blocks), as GITHUB_OUTPUT and GITHUB_ENV hold them."""
    out, lines = {}, open(path).read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        if line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


temp = runner["temp"]
for n, step in enumerate(action["runs"]["steps"]):
    sid = step.get("id", f"__{n}")
    if not evaluate(step.get("if", "success()")):
        continue
    if "uses" in step:
        steps[sid] = {"cache-hit": ""}  # a cache miss
        continue
    assert step["shell"] == "bash", f"run-action: cannot run a {step['shell']} step on this runner"
    files = {k: os.path.join(temp, f"_runner_{k}_{n}") for k in ("output", "env", "path")}
    for f in files.values():
        open(f, "w").close()
    script = os.path.join(temp, f"_runner_step_{n}.sh")
    with open(script, "w") as f:
        f.write(step["run"])
    step_env = dict(env)
    step_env.update(job_env)
    step_env["PATH"] = os.pathsep.join(job_path[::-1] + [env["PATH"]])
    step_env.update({k: expand(v) for k, v in step.get("env", {}).items()})
    step_env.update(GITHUB_OUTPUT=files["output"], GITHUB_ENV=files["env"], GITHUB_PATH=files["path"])
    step_env["GITHUB_ACTION_PATH"] = action_dir
    step_env["GITHUB_ACTION_REF"] = ""  # empty in a composite action's run steps (actions/runner#2473)
    rc = subprocess.call(["bash", "--noprofile", "--norc", "-eo", "pipefail", script], env=step_env)
    steps[sid] = read_file_commands(files["output"])
    job_env.update(read_file_commands(files["env"]))
    job_path += [p for p in open(files["path"]).read().splitlines() if p]
    if rc != 0:
        print(f"run-action: step {sid} failed (exit {rc})", file=sys.stderr)
        break
else:
    rc = 0

outputs = {k: expand(v["value"]) for k, v in action.get("outputs", {}).items()}
json.dump({"outputs": outputs, "env": job_env, "path": job_path}, open(state_path, "w"), indent=1)
sys.exit(rc)
