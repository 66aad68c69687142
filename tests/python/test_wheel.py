"""The built wheel as a user gets it: one abi3 file for every CPython from
3.9, with its type stubs and license, that installs into a fresh venv
without a network and there gives the command's bytes, with or without
pyarrow; and stubs that name exactly what the module has."""

import ast
import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import KEY, ROOT, cli_sanitize

PRODUCTION = ROOT / "policies" / "production.json"
EXAMPLES = sorted((ROOT / "examples" / "events").glob("*.json"))


def wheel_path() -> Path:
    given = os.environ.get("PHIMASK_WHEEL")
    if given:
        return Path(given)
    built = sorted((ROOT / "dist").glob("phimask-*.whl"), key=lambda p: p.stat().st_mtime)
    if not built:
        pytest.fail("no wheel: set PHIMASK_WHEEL or build one into dist/ (make wheel)")
    return built[-1]


@pytest.fixture(scope="module")
def wheel() -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel_path()) as z:
        yield z


def dist_info(z: zipfile.ZipFile) -> str:
    (name,) = {n.split("/")[0] for n in z.namelist() if n.split("/")[0].endswith(".dist-info")}
    return name


def command(destination: str, data: bytes) -> bytes:
    """What `phimask sanitize -p POLICY -d DESTINATION` writes for `data`."""
    return cli_sanitize(PRODUCTION, destination, data)


# --- the file ------------------------------------------------------------


def test_one_abi3_wheel_for_cpython_39_and_later(wheel):
    name = wheel_path().name
    _, version, python, abi, platform = name[: -len(".whl")].split("-")
    assert (python, abi) == ("cp39", "abi3"), name
    meta = wheel.read(f"{dist_info(wheel)}/WHEEL").decode()
    tags = [line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Tag: ")]
    assert tags and all(t.startswith("cp39-abi3-") for t in tags), tags
    assert f"cp39-abi3-{platform}" in tags
    metadata = wheel.read(f"{dist_info(wheel)}/METADATA").decode()
    assert "Requires-Python: >=3.9" in metadata
    assert f"Version: {version}" in metadata
    # The native module is the stable-ABI one, not one per Python version.
    native = [n for n in wheel.namelist() if n.startswith("phimask/") and n.endswith(".so")]
    assert [n.rsplit("/", 1)[1] for n in native] == ["phimask.abi3.so"]


def test_the_wheel_holds_its_stubs_py_typed_and_license(wheel):
    names = set(wheel.namelist())
    assert wheel.read("phimask/__init__.pyi") == (ROOT / "phimask.pyi").read_bytes()
    assert "phimask/py.typed" in names
    assert wheel.read(f"{dist_info(wheel)}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert "License-File: LICENSE" in wheel.read(f"{dist_info(wheel)}/METADATA").decode()


def test_every_file_is_the_one_its_record_names(wheel):
    record = wheel.read(f"{dist_info(wheel)}/RECORD").decode()
    listed = {}
    for path, digest, _size in csv.reader(io.StringIO(record)):
        listed[path] = digest
    assert set(listed) == set(wheel.namelist())
    for path, digest in listed.items():
        if path.endswith("/RECORD"):
            continue
        algorithm, expected = digest.split("=", 1)
        assert algorithm == "sha256"
        actual = base64.urlsafe_b64encode(hashlib.sha256(wheel.read(path)).digest()).rstrip(b"=")
        assert actual.decode() == expected, path


# --- installed in a fresh venv -------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv (no pyarrow, nothing but pip) with the wheel installed
    from the file alone: no index, no network."""
    where = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, capture_output=True)
    python = where / "bin" / "python"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PIP_NO_INDEX": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--no-deps", str(wheel_path())],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return python


def run_in(python: Path, code: str, **env) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(python), "-I", "-c", code],
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return done


def test_the_fresh_venv_has_no_pyarrow_and_imports_the_installed_wheel(venv):
    out = run_in(
        venv,
        "import importlib.util, phimask, sys; "
        "print(importlib.util.find_spec('pyarrow') is None, phimask.__file__.startswith(sys.prefix))",
    )
    assert out.stdout.split() == [b"True", b"True"]


def hostile_ndjson() -> bytes:
    lines = [json.dumps(json.loads(p.read_text()), separators=(",", ":")).encode() for p in EXAMPLES]
    lines += [
        b'{"type":"track","event":"Order Completed","userId":"u1","properties":{"note":"Jane Doe"',
        b'{"type":"identify","userId":"Jane Doe \xff HIV positive"}',
        b"",
        b'{"type":"track","event":"Order Completed","userId":"u2"}\r',
        b'{"type":"track","event":"Order Completed","userId":"u3","properties":{"n":"a\x00b"}}',
        b"Jane Doe " * 10_000,
    ]
    return b"\n".join(lines) + b"\n"


def test_in_the_fresh_venv_sanitize_ndjson_gives_the_commands_bytes(venv, tmp_path):
    data = hostile_ndjson()
    (tmp_path / "in.ndjson").write_bytes(data)
    code = """
import os
from pathlib import Path
import phimask
where = Path(os.environ["WHERE"])
s = phimask.Sanitizer(Path(os.environ["POLICY"]).read_text(), os.environ["KEY"])
data = (where / "in.ndjson").read_bytes()
for d in s.destinations():
    (where / (d + ".out")).write_bytes(s.sanitize_ndjson(data, d))
print(" ".join(s.destinations()))
"""
    out = run_in(venv, code, WHERE=str(tmp_path), POLICY=str(PRODUCTION), KEY=KEY)
    destinations = out.stdout.decode().split()
    assert destinations == ["amplitude", "mixpanel", "warehouse"]
    for destination in destinations:
        expected = command(destination, data)
        assert expected
        assert (tmp_path / f"{destination}.out").read_bytes() == expected, destination


def test_in_the_fresh_venv_sanitize_arrow_says_pyarrow_is_needed(venv):
    code = """
import json, os
import phimask
s = phimask.Sanitizer(open(os.environ["POLICY"]).read(), os.environ["KEY"])
try:
    s.sanitize_arrow(['{"type":"track"}'], "amplitude")
except TypeError as e:
    print(e)
else:
    raise SystemExit("no TypeError")
"""
    out = run_in(venv, code, POLICY=str(PRODUCTION), KEY=KEY)
    # What to do about it, not only that the column was refused (the
    # TypeError for a column that is not Arrow names pyarrow too).
    assert b"needs pyarrow" in out.stdout and b"pip install pyarrow" in out.stdout
    assert KEY.encode() not in out.stdout


# --- the stubs name what the module has ----------------------------------


def stub_params(args: ast.arguments) -> list:
    """A stub's parameters after self, as "name", "name=default" and
    "*name=default" (keyword-only): a default the stub states wrongly
    misleads every caller and type checker as much as a wrong name."""
    positional = args.args[1:]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = [a.arg + ("" if d is None else "=" + ast.unparse(d)) for a, d in zip(positional, defaults)]
    out += [
        "*" + a.arg + ("" if d is None else "=" + ast.unparse(d))
        for a, d in zip(args.kwonlyargs, args.kw_defaults)
    ]
    return out


def stub_names(tree: ast.Module):
    """Public module names, and each class's public members, as the .pyi
    defines them (private helpers such as a TypeVar left out)."""
    module, classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            module.add(node.name)
            members = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members[item.name] = stub_params(item.args)
                elif isinstance(item, ast.AnnAssign):
                    members[item.target.id] = None
            classes[node.name] = {
                "bases": [ast.unparse(b) for b in node.bases],
                "members": members,
            }
        elif isinstance(node, ast.AnnAssign):
            module.add(node.target.id)
        elif isinstance(node, ast.Assign):
            module.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.FunctionDef):
            module.add(node.name)
    return {n for n in module if not n.startswith("_") or n == "__version__"}, classes


RUNTIME = """
import inspect, json, os, types
import phimask
def params(f):
    out = []
    for p in list(inspect.signature(f).parameters.values()):
        if p.name == "self":
            continue
        default = "" if p.default is p.empty else "=" + repr(p.default)
        out.append(("*" if p.kind is p.KEYWORD_ONLY else "") + p.name + default)
    return out
names = [n for n in dir(phimask)
         if (not n.startswith("_") or n == "__version__")
         and not isinstance(getattr(phimask, n), types.ModuleType)]
s = phimask.Sanitizer(open(os.environ["POLICY"]).read(), os.environ["KEY"])
methods = {n: params(getattr(phimask.Sanitizer, n)) for n in dir(phimask.Sanitizer) if not n.startswith("_")}
methods["__init__"] = params(phimask.Sanitizer)
errors = {}
def caught(f):
    try:
        f()
    except phimask.Error as e:
        return e
e = caught(lambda: phimask.Sanitizer("{"))
errors["PolicyError"] = [type(e).__name__, sorted(k for k in ("code", "message", "problems") if hasattr(e, k))]
e = caught(lambda: s.sanitize("[", "amplitude"))
errors["EventError"] = [type(e).__name__, sorted(k for k in ("code", "message", "problems") if hasattr(e, k))]
e = caught(lambda: s.sanitize("{}", "nowhere"))
errors["Error"] = [type(e).__name__, sorted(k for k in ("code", "message", "problems") if hasattr(e, k))]
bases = {c: [b.__name__ for b in getattr(phimask, c).__bases__] for c in ("Error", "PolicyError", "EventError", "Sanitizer")}
print(json.dumps({"names": sorted(names), "all": sorted(phimask.__all__), "methods": methods, "errors": errors, "bases": bases}))
"""


def test_the_stubs_name_exactly_the_runtimes_public_names(venv, wheel):
    tree = ast.parse(wheel.read("phimask/__init__.pyi").decode())
    names, classes = stub_names(tree)
    runtime = json.loads(run_in(venv, RUNTIME, POLICY=str(PRODUCTION), KEY=KEY).stdout)
    assert set(runtime["names"]) == names
    assert set(runtime["all"]) == names
    for name, bases in runtime["bases"].items():
        assert classes[name]["bases"] == [b for b in bases if b != "object"], name
    # Sanitizer's methods, each with the stub's parameters in order.
    stubbed = classes["Sanitizer"]["members"]
    assert {n for n in stubbed if not n.startswith("_") or n == "__init__"} == set(runtime["methods"])
    for method, params in runtime["methods"].items():
        assert stubbed[method] == params, method
    # The attributes the stubs give each error (its own and its bases')
    # are on the raised ones.
    def declared(cls):
        own = {n for n, v in classes[cls]["members"].items() if v is None}
        for base in classes[cls]["bases"]:
            if base in classes:
                own |= declared(base)
        return own

    for cls in ("Error", "EventError", "PolicyError"):
        raised_type, attributes = runtime["errors"][cls]
        assert raised_type == cls
        assert set(attributes) == declared(cls), cls
