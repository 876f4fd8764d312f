"""No code runs from a model file or a MODEL string unless the user says they trust it.

Each malicious file here carries a payload that creates a marker file when it runs; the
tests check that nncompare refuses the file with a message naming ``--allow-pickle`` and
that the marker does not appear, and (control) that plain ``torch.export.load`` does run
the payload, so the archive really is malicious.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import click
import pytest
import torch

from nncompare.cli._archives import UnsafeModelFileError
from nncompare.cli.loading import load_model
from nncompare.cli.main import cli
from nncompare.workbench.models import SmallCNN

SRC = Path(__file__).resolve().parents[1] / "src"


class _Marker:
    """Pickles to ``open(path, "w")``: unpickling it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickled_marker(path: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(_Marker(path), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A genuine torch.export archive of SmallCNN (dynamic batch) and the model."""
    torch.manual_seed(0)
    model = SmallCNN().eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: batch},))
    path = tmp_path_factory.mktemp("pt2") / "good.pt2"
    torch.export.save(program, str(path))
    return path, model


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy the archive ``src`` to ``dst`` with ``edit(files)`` applied to its members."""
    with zipfile.ZipFile(src) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    prefix = next(iter(members)).split("/")[0] + "/"
    files = {name[len(prefix) :]: data for name, data in members.items()}
    edit(files)
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return dst


def _edit_program(files, change) -> None:
    program = json.loads(files["models/model.json"])
    change(program)
    files["models/model.json"] = json.dumps(program).encode()


def _pickled_weight(marker: Path):
    def edit(files):
        config = json.loads(files["data/weights/model_weights_config.json"])
        entry = config["config"]["conv1.weight"]
        entry["use_pickle"] = True
        files["data/weights/model_weights_config.json"] = json.dumps(config).encode()
        files["data/weights/" + entry["path_name"]] = _pickled_marker(marker)

    return edit


def _pickled_sample_inputs(marker: Path):
    def edit(files):
        files["data/sample_inputs/model.pt"] = _pickled_marker(marker)

    return edit


def _sympy_payload(marker: Path):
    """A symbolic-shape string that sympy.sympify evaluates (it calls eval)."""
    symbol = "Symbol('s31', positive=True, integer=True)"
    code = f"__import__('builtins').open({str(marker)!r}, 'w') and {symbol}"

    def edit(files):
        text = files["models/model.json"].decode()
        found = json.dumps(symbol)
        assert found in text, "the export format changed: update the test"
        files["models/model.json"] = text.replace(found, json.dumps(code)).encode()

    return edit


def _guard_payload(marker: Path):
    """guards_code strings are compiled into the module's forward by torch."""
    code = f"__import__('builtins').open({str(marker)!r}, 'w') is not None"
    return lambda files: _edit_program(files, lambda p: p.update(guards_code=[code]))


PAYLOADS = {
    "pickled weight": (_pickled_weight, r"the weight 'conv1\.weight' is stored as a pickle"),
    "pickled sample inputs": (_pickled_sample_inputs, r"its sample inputs are not plain tensors"),
    "sympy expression": (
        _sympy_payload,
        r"symbolic-shape expression .* uses the name '__import__'",
    ),
    "guard code": (_guard_payload, r"the guard .* is not a plain size check"),
}


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_malicious_pt2_is_refused_and_its_payload_never_runs(runner, exported, tmp_path, name):
    make, message = PAYLOADS[name]
    marker = tmp_path / "PAYLOAD_RAN"
    evil = _rewrite(exported[0], tmp_path / "evil.pt2", make(marker))
    res = runner.invoke(cli, ["layers", str(evil)])
    assert res.exit_code != 0
    assert not marker.exists(), "the payload ran"
    assert "Traceback" not in res.output
    assert res.output.startswith(f"Error: refusing to load {evil}: ")
    assert len(res.output.strip().splitlines()) == 1
    assert re.search(message, res.output), res.output
    assert "pass --allow-pickle to load it as it is" in res.output
    # the same archive under a TorchScript/checkpoint name takes the same path (content decides)
    renamed = evil.with_suffix(".pth")
    renamed.write_bytes(evil.read_bytes())
    res = runner.invoke(cli, ["layers", str(renamed)])
    assert res.exit_code != 0 and not marker.exists()
    assert "refusing to load" in res.output
    # control: torch's own loader runs the payload, so the archive really is malicious
    try:
        torch.export.load(str(evil)).module()(torch.zeros(2, 1, 8, 8))
    except Exception:  # the payload matters, not the outcome
        pass
    assert marker.exists(), "control failed: torch.export.load no longer runs this payload"


def test_pt2_members_outside_the_allow_list_are_refused(runner, exported, tmp_path):
    def aoti(files):
        files["data/aotinductor/model/model.so"] = b"\x7fELF"

    res = runner.invoke(cli, ["layers", str(_rewrite(exported[0], tmp_path / "a.pt2", aoti))])
    assert res.exit_code != 0
    assert "AOTInductor compiled native code" in res.output and "--allow-pickle" in res.output

    def legacy_weights(files):
        files["data/weights/model.pt"] = _pickled_marker(tmp_path / "M")

    res = runner.invoke(
        cli, ["layers", str(_rewrite(exported[0], tmp_path / "b.pt2", legacy_weights))]
    )
    assert res.exit_code != 0 and "contains 'data/weights/model.pt' (a pickle)" in res.output
    assert not (tmp_path / "M").exists()


def test_pt2_objects_and_operators_outside_the_allow_list_are_refused(exported, tmp_path):
    def opaque_constant(files):
        config = json.loads(files["data/constants/model_constants_config.json"])
        config["config"]["x"] = {"path_name": "opaque_obj_0", "use_pickle": False}
        files["data/constants/model_constants_config.json"] = json.dumps(config).encode()

    def system_target(files):
        def change(program):
            program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"

        _edit_program(files, change)

    def quoted_parameter_name(files):
        def change(program):
            spec = program["graph_module"]["signature"]["input_specs"][0]
            spec["parameter"]["parameter_name"] = 'conv1")+__import__("os").getpid()+("'

        _edit_program(files, change)

    def enum_in_treespec(files):
        def change(program):
            sig = program["graph_module"]["module_call_graph"][0]["signature"]
            spec = json.loads(sig["in_spec"])
            spec[1]["context"] = json.dumps({"__enum__": True, "fqn": "os:environ", "name": "x"})
            sig["in_spec"] = json.dumps(spec)

        _edit_program(files, change)

    def custom_namespace_op(files):
        def change(program):
            program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.ops.mylib.op.default"

        _edit_program(files, change)

    cases = {
        opaque_constant: r"'opaque_obj_0' payload, not a raw tensor",
        system_target: r"the graph calls 'torch\.os\.system', which is not an aten/prims",
        quoted_parameter_name: r"holds the string .*conv1.* \(parameter_name\)",
        enum_in_treespec: r"a pytree spec names a Python object to import \('__enum__'\)",
        custom_namespace_op: r"'torch\.ops\.mylib\.op\.default', outside the aten and prims",
    }
    for i, (edit, message) in enumerate(cases.items()):
        path = _rewrite(exported[0], tmp_path / f"e{i}.pt2", edit)
        with pytest.raises(UnsafeModelFileError, match=message):
            load_model(str(path))


def test_symbolic_shape_grammar():
    from nncompare.cli._archives import check_sym_expr

    symbol = "Symbol('s77', positive=True, integer=True)"
    for ok in (
        symbol,
        f"Add(FloorDiv({symbol}, Integer(2)), Integer(1))",
        f"Mul(Integer(4), Pow(Max(Integer(1), Add({symbol}, Integer(-2))), Integer(2)))",
        "s0*2 + 1",
    ):
        assert check_sym_expr(ok) is None, ok
    refused = {
        "S('__import__(\"os\")')": r"uses the name 'S'",
        f"{symbol}.func": r"uses '\.'",
        "Symbol(''.join)": r"bad symbol name",
        "Integer('1')": r"has a string literal",
        "lambdify(s0, 'x')": r"uses the name 'lambdify'",
        "Symbol('a b')": r"bad symbol name",
        "Pow(Integer(10), Integer(100000000000))": r"raises to the power 1e\+11",
        "Integer(1" + "0" * 40 + ")": r"huge literal",
        "s0[0]": r"uses '\['",
    }
    for expr, message in refused.items():
        why = check_sym_expr(expr)
        assert why is not None and re.search(message, why), (expr, why)


def test_genuine_pt2_archives_still_load(exported, tmp_path):
    path, model = exported
    net = load_model(str(path))
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(net(x), model(x))

    # stack traces are dropped, whatever they hold (torch.fx copies them into source code)
    def odd_trace(files):
        def change(program):
            node = program["graph_module"]["graph"]["nodes"][0]
            node["metadata"]["stack_trace"] = "x\r__import__('os')\n\"'"

        _edit_program(files, change)

    net = load_model(str(_rewrite(path, tmp_path / "t.pt2", odd_trace)))
    torch.testing.assert_close(net(x), model(x))
    # a strict (dynamo) export carries provenance metadata ("from_node") with free text
    batch = torch.export.Dim("batch", min=1)
    strict = torch.export.export(
        model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: batch},), strict=True
    )
    torch.export.save(strict, str(tmp_path / "strict.pt2"))
    net = load_model(str(tmp_path / "strict.pt2"))
    torch.testing.assert_close(net(x), model(x))
    assert {"conv1", "relu2", "fc"} <= {name for name, _ in net.named_modules()}
    # several dynamic dimensions: symbolic expressions (Max, Add, Pow) and a size guard
    seq = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(16, 3),
    ).eval()  # fmt: skip
    batch = torch.export.Dim("batch", min=1)
    side = torch.export.Dim("side", min=4, max=64)
    program = torch.export.export(
        seq, (torch.zeros(2, 3, 16, 16),), dynamic_shapes=({0: batch, 2: side, 3: side},)
    )
    assert program._guards_code, "expected a guard in this export"
    torch.export.save(program, str(tmp_path / "dyn.pt2"))
    net = load_model(str(tmp_path / "dyn.pt2"))
    x = torch.rand(3, 3, 12, 12)
    torch.testing.assert_close(net(x), seq(x))


def test_torchscript_is_trusted_only_explicitly_and_never_falls_back(runner, tmp_path):
    model = SmallCNN().eval()
    path = tmp_path / "model.pt2"  # a TorchScript archive under an export name
    torch.jit.trace(model, torch.zeros(2, 1, 8, 8)).save(str(path))
    res = runner.invoke(cli, ["layers", str(path)])
    assert res.exit_code != 0
    assert f"refusing to load {path}: it is a TorchScript archive" in res.output
    assert "--allow-pickle" in res.output and "torch.export.save" in res.output
    res = runner.invoke(cli, ["layers", str(path), "--allow-pickle"])
    assert res.exit_code == 0 and "output" in res.output


def test_pickles_never_load_without_the_flag(runner, tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(_pickled_marker(marker))
    for args in (
        ["layers", str(evil)],
        ["layers", "nncompare.models:SmallCNN()", "--weights", str(evil)],
    ):
        res = runner.invoke(cli, args)
        assert res.exit_code != 0 and not marker.exists()
        assert re.search(r"it needs the Python object (io|builtins)\.open\b", res.output)
        assert "pass --allow-pickle" in res.output


def test_full_model_pickle_loads_with_allow_pickle(runner, tmp_path):
    torch.manual_seed(3)
    model = SmallCNN().eval()
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    res = runner.invoke(cli, ["layers", str(path)])
    assert res.exit_code != 0
    assert "needs the Python object nncompare.workbench.models.small_cnn.SmallCNN" in res.output
    res = runner.invoke(cli, ["layers", str(path), "--allow-pickle", "--input-shape", "2,1,8,8"])
    assert res.exit_code == 0, res.output
    assert "conv1" in res.output and "(2, 10)" in res.output
    net = load_model(str(path), allow_pickle=True)
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(net(x), model(x))
    # as --weights: its state dict goes into the named architecture (which must fit)
    net = load_model("nncompare.models:SmallCNN()", weights=str(path), allow_pickle=True)
    torch.testing.assert_close(net(x), model(x))


# --------------------------------------------------------------------------- module:factory

DANGEROUS = [
    ("os:system(command='touch {m}')", r"refusing to call os:system \(defined in '(posix|nt)'\)"),
    ("subprocess:run(args='touch {m}', shell=True)", r"refusing to call subprocess:run"),
    ("subprocess:check_call(args=['touch', '{m}'])", r"refusing to call subprocess:check_call"),
    ('builtins:exec(source=\'open("{m}", "w")\')', r"refusing to call builtins:exec"),
    ('builtins:eval(source=\'open("{m}", "w")\')', r"refusing to call builtins:eval"),
    ("builtins:open(file='{m}', mode='w')", r"refusing to call builtins:open"),
    ("pathlib:Path(args='{m}')", r"the class pathlib\.Path, not a torch\.nn\.Module"),
]


@pytest.mark.parametrize("spec,message", DANGEROUS)
def test_dangerous_factories_are_refused_before_any_call(runner, tmp_path, spec, message):
    marker = tmp_path / "RAN"
    res = runner.invoke(cli, ["layers", spec.format(m=marker)])
    assert res.exit_code != 0 and not marker.exists()
    assert re.search(message, res.output), res.output
    assert "Traceback" not in res.output
    if "class" not in message:
        assert "--trust-module" in res.output


def test_rmtree_is_refused(runner, tmp_path):
    victim = tmp_path / "keep"
    victim.mkdir()
    (victim / "data.txt").write_text("precious")
    res = runner.invoke(cli, ["layers", f"shutil:rmtree(path={str(victim)!r})"])
    assert res.exit_code != 0 and (victim / "data.txt").exists()
    assert "refusing to call shutil:rmtree (defined in 'shutil')" in res.output
    assert "pass --trust-module shutil" in res.output


@pytest.fixture
def mypkg(tmp_path, monkeypatch):
    root = tmp_path / "site"
    (root / "mypkg" / "sub").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text(
        textwrap.dedent(
            """
            import torch
            from os import system  # a re-export: still os.system


            def build(width=3):
                return torch.nn.Linear(2, width)


            def not_a_model():
                return 42
            """
        )
    )
    (root / "mypkg" / "sub" / "__init__.py").write_text(
        "import torch\n\ndef build():\n    return torch.nn.Linear(2, 5)\n"
    )
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


def test_trust_module_allows_its_functions_only(runner, mypkg):
    res = runner.invoke(cli, ["layers", "mypkg:build(width=4)"])
    assert res.exit_code != 0
    assert "refusing to call mypkg:build (defined in 'mypkg')" in res.output
    assert "pass --trust-module mypkg" in res.output
    res = runner.invoke(cli, ["layers", "mypkg:build(width=4)", "--trust-module", "mypkg"])
    assert res.exit_code == 0, res.output
    # prefix match on dotted names: 'mypkg' trusts mypkg.sub, 'mypk' trusts nothing here
    res = runner.invoke(cli, ["layers", "mypkg.sub:build", "--trust-module", "mypkg"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["layers", "mypkg:build", "--trust-module", "mypk"])
    assert res.exit_code != 0 and "refusing to call mypkg:build" in res.output
    res = runner.invoke(cli, ["layers", "mypkg:build", "--trust-module", "mypkg.sub"])
    assert res.exit_code != 0 and "refusing to call mypkg:build" in res.output
    # a re-exported os.system is judged by where it is defined
    res = runner.invoke(cli, ["layers", "mypkg:system(command='true')", "--trust-module", "mypkg"])
    assert res.exit_code != 0
    assert re.search(r"refusing to call mypkg:system \(defined in '(posix|nt)'\)", res.output)
    res = runner.invoke(cli, ["layers", "mypkg:not_a_model", "--trust-module", "mypkg"])
    assert res.exit_code != 0
    assert "mypkg:not_a_model returned an object of type int, not a torch.nn.Module" in res.output
    res = runner.invoke(cli, ["layers", "mypkg:build", "--trust-module", "my-pkg"])
    assert res.exit_code != 0 and "expected a dotted module name" in res.output


def test_module_classes_and_nncompare_factories_need_no_trust(runner):
    res = runner.invoke(cli, ["layers", "torch.nn:Linear(in_features=3, out_features=2)"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["layers", "nncompare.models:cifar_resnet(depth=20)"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["layers", "collections:OrderedDict"])
    assert res.exit_code != 0
    assert "the class collections.OrderedDict, not a torch.nn.Module subclass" in res.output
    res = runner.invoke(cli, ["layers", "nncompare.models.resnet_cifar:torch"])
    assert res.exit_code != 0 and "it is a module, not a class or function" in res.output


def test_model_zoo_is_trusted_under_both_names_and_nothing_else_of_the_workbench(runner):
    """nncompare.models is an alias of nncompare.workbench.models: factories work under either
    name; the rest of the workbench (data, training, the alias helper) stays untrusted."""
    for spec in (
        "nncompare.models:cifar_resnet(depth=20)",
        "nncompare.workbench.models:cifar_resnet(depth=20)",
        "nncompare.models.resnet_cifar:cifar_resnet(depth=20)",
        "nncompare.workbench.models.resnet_cifar:cifar_resnet(depth=20)",
    ):
        res = runner.invoke(cli, ["layers", spec])
        assert res.exit_code == 0, (spec, res.output)
    for spec, where in (
        ("nncompare.workbench.data:load_digits", "nncompare.workbench.data.digits"),
        ("nncompare.data:load_digits", "nncompare.workbench.data.digits"),
        ("nncompare.training:train", "nncompare.workbench.training"),
        ("nncompare.workbench._alias:install_alias", "nncompare.workbench._alias"),
    ):
        res = runner.invoke(cli, ["layers", spec])
        assert res.exit_code != 0
        assert f"refusing to call {spec} (defined in {where!r})" in res.output, res.output


def _evil_cwd(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "IMPORTED"
    code = (
        f"open({str(marker)!r}, 'w').close()\n"
        "import torch\n\nclass Net(torch.nn.Linear):\n"
        "    def __init__(self):\n        super().__init__(2, 2)\n"
    )
    (work / "evilmod.py").write_text(code)
    (work / "torch.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return work, marker


def _run_module(args: list[str], cwd: Path, pythonpath: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nncompare.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_python_m_does_not_import_from_the_current_directory(tmp_path):
    work, marker = _evil_cwd(tmp_path)
    proc = _run_module(["layers", "evilmod:Net"], work, str(SRC))
    assert proc.returncode != 0
    assert not marker.exists(), "a module from the current directory was imported"
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: cannot import 'evilmod'")
    assert "nncompare does not import from it" in proc.stderr and "PYTHONPATH=." in proc.stderr
    # the lazily imported torch is the real one, not ./torch.py
    proc = _run_module(["layers", "torch.nn:Linear(in_features=2, out_features=2)"], work, str(SRC))
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    # the explicit opt-in: PYTHONPATH naming the directory
    (work / "torch.py").unlink()
    proc = _run_module(["layers", "evilmod:Net"], work, os.pathsep.join([str(SRC), str(work)]))
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_load_model_ignores_the_current_directory(tmp_path, monkeypatch):
    work, marker = _evil_cwd(tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend("")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(
        click.ClickException, match=r"cannot import 'evilmod'.*does not import from it"
    ):
        load_model("evilmod:Net")
    assert not marker.exists()
    assert "" in sys.path  # restored after the import attempt
