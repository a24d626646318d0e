"""`unlearn-bench submit`: an outsider's method file goes through; malformed plug-ins get one clear line."""
import re
from pathlib import Path

import pytest

from bench.cli import main
from bench.core.errors import PluginError
from bench.runner.plugins import load_submission
from bench.runner.records import iter_records
from bench.runner.submit import smoke_test
from tests.helpers import HEADER, method_file, write_suite

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_method() -> str:
    section = README.read_text().split("<!-- BEGIN: writing-a-method -->")[1].split("<!-- END: writing-a-method -->")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


BAD = {
    "no method class": ("from bench import Method\nX = 1\n", "defines no subclass of methods.base.Method"),
    "two classes": (
        HEADER + "\nclass A(Method):\n    name = 'a'\n    HParams = HP\n    def unlearn(self, model, forget, remain, budget, ctx): pass\n"
        "\nclass B(Method):\n    name = 'b'\n    HParams = HP\n    def unlearn(self, model, forget, remain, budget, ctx): pass\n",
        "defines several methods (A, B); pick one with m.py:ClassName",
    ),
    "wrong signature": (
        HEADER + "\nclass A(Method):\n    name = 'a'\n    HParams = HP\n    def unlearn(self, model, forget):\n        pass\n",
        "unlearn must have the signature unlearn(self, model, forget, remain, budget, ctx); got (self, model, forget)",
    ),
    "no unlearn": (HEADER + "\nclass A(Method):\n    name = 'a'\n    HParams = HP\n", "does not implement unlearn"),
    "hparams not a dataclass": (
        "from bench import Method\nclass HP:\n    lr = 1.0\nclass A(Method):\n    name = 'a'\n    HParams = HP\n    def unlearn(self, model, forget, remain, budget, ctx): pass\n",
        "HParams must be a @dataclass",
    ),
    "field without default": (
        "from dataclasses import dataclass\nfrom bench import Method\n@dataclass\nclass HP:\n    lr: float\n"
        "class A(Method):\n    name = 'a'\n    HParams = HP\n    def unlearn(self, model, forget, remain, budget, ctx): pass\n",
        "every hyper-parameter needs a default; missing for lr",
    ),
    "no name": (HEADER + "\nclass A(Method):\n    HParams = HP\n    def unlearn(self, model, forget, remain, budget, ctx): pass\n", "set a class attribute `name"),
    "built-in name": (
        HEADER + "\nclass A(Method):\n    name = 'finetune'\n    HParams = HP\n    def unlearn(self, model, forget, remain, budget, ctx): pass\n",
        "method name 'finetune' is taken by the built-in methods.finetune.Finetune",
    ),
    "import error": ("import not_a_module_xyz\n", "m.py failed to import: ModuleNotFoundError"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_interface_errors_are_precise(tmp_path, case):
    source, message = BAD[case]
    (tmp_path / "m.py").write_text(source)
    with pytest.raises(PluginError) as err:
        load_submission(str(tmp_path / "m.py"))
    assert message in str(err.value)


SMOKE_BAD = {
    "raises": ("""
    def unlearn(self, model, forget, remain, budget, ctx):
        raise RuntimeError("boom at step 0")
""", "raised in its smoke run (2 steps on mini-digits-class): RuntimeError: boom at step 0"),
    "nan weights": ("""
    def unlearn(self, model, forget, remain, budget, ctx):
        with torch.no_grad():
            next(model.denoiser.parameters()).fill_(float("nan"))
""", "left non-finite values in parameter"),
    "nan loss": ("""
    def unlearn(self, model, forget, remain, budget, ctx):
        ctx.step(torch.tensor(float("inf")))
""", "non-finite loss inf at step 0"),
    "ignores budget": ("""
    def unlearn(self, model, forget, remain, budget, ctx):
        for _ in range(self.hparams.steps):
            ctx.step(0.0)
""", "took 5 steps (0 optimiser steps, 5 reported) with budget max_steps=2"),
    "hides its steps": ("""
    def unlearn(self, model, forget, remain, budget, ctx):
        opt = torch.optim.SGD(model.denoiser.parameters(), lr=1e-4)
        batches = remain.batches(8, ctx.generator)
        for _ in range(budget.steps(self.hparams.steps)):
            b = next(batches)
            loss = simple_loss(model, b.x, model.condition(b.keys), ctx.generator)
            opt.zero_grad(); loss.backward(); opt.step()
""", "took 2 optimiser steps but reported no steps"),
    "steps past the cap": ("""
    def unlearn(self, model, forget, remain, budget, ctx):
        opt = torch.optim.SGD(model.denoiser.parameters(), lr=1e-4)
        batches = remain.batches(8, ctx.generator)
        for _ in range(self.hparams.steps):
            b = next(batches)
            loss = simple_loss(model, b.x, model.condition(b.keys), ctx.generator)
            opt.zero_grad(); loss.backward(); opt.step()
        ctx.step(loss)
""", "took 5 steps (5 optimiser steps, 1 reported) with budget max_steps=2"),
    "silent edit": ("""
    def unlearn(self, model, forget, remain, budget, ctx):
        with torch.no_grad():
            next(model.denoiser.parameters()).mul_(0.5)
""", "changed the weights but reported no steps"),
}


def test_smoke_run_catches_bad_behaviour(tmp_path):
    for case, (body, message) in SMOKE_BAD.items():
        ref = str(method_file(tmp_path, body, name=f"bad-{case.replace(' ', '-')}", filename=f"{case.replace(' ', '_')}.py"))
        with pytest.raises(PluginError) as err:
            smoke_test(load_submission(ref), ref)
        assert message in str(err.value), case


def test_malformed_submission_leaves_records_intact(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", ["original"])
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "records").iterdir()}
    bad = method_file(tmp_path, SMOKE_BAD["nan weights"][0], name="nan-weights")
    capsys.readouterr()
    assert main(["submit", str(bad), "--suite", str(suite), "--out", str(out), "--local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("unlearn-bench: error: smoke run") and "non-finite values" in err[-1]
    assert {p.name: p.read_bytes() for p in (out / "records").iterdir()} == before


def test_readme_example_is_submitted_through_ray_and_ranked(tmp_path, capsys, monkeypatch):
    """The README's worked example, as an outsider's file in another directory, through the real harness."""
    outsider = tmp_path / "outsider"
    outsider.mkdir()
    (outsider / "swap_distill.py").write_text(readme_method())
    suite = write_suite(tmp_path / "s.yaml", ["original", "graddiff"])
    out = tmp_path / "res"
    monkeypatch.chdir(outsider)
    assert main(["submit", "swap_distill.py", "--suite", str(suite), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    recs = {r["label"]: r for r in iter_records(out)}
    assert set(recs) == {"original", "graddiff", "swap-distill"}
    assert all(r["status"] == "ok" for r in recs.values())
    assert recs["swap-distill"]["cost"]["steps"] == 2 and recs["swap-distill"]["method"].endswith("swap_distill.py")
    assert re.search(r"mini-digits-class: swap-distill (ranks [12] of 2|ties for rank 1 of 2 with 1 other row\(s\)): UA \(digit-cnn\) = ", captured.out)
    assert "from submit to ranked row" in captured.err
    board = (out / "LEADERBOARD.md").read_text()
    assert "| swap-distill |" in board and "## Overall rank" in board


def test_installed_plugin_is_submitted_by_name(tmp_path, monkeypatch):
    """A method installed through the `unlearn_bench.methods` entry-point group: found, validated, smoke-run."""
    from methods.base import METHODS

    site = tmp_path / "site"
    dist = site / "eg_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: eg-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[unlearn_bench.methods]\neg-plugin = eg_plugin:Outsider\n")
    method_file(site, name="eg-plugin", filename="eg_plugin.py")
    monkeypatch.syspath_prepend(str(site))
    METHODS.names()
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    monkeypatch.setattr(METHODS, "_loaded", False)  # rescan entry points with the new distribution visible
    cls = load_submission("eg-plugin")
    assert cls.__module__ == "eg_plugin" and smoke_test(cls, "eg-plugin") == {"steps": 2, "optimizer_steps": 2}
    with pytest.raises(PluginError, match="'nope' is neither a .py file nor an installed method"):
        load_submission("nope")


def test_a_lone_row_is_said_to_be_unranked_overall(tmp_path):
    from bench.runner.submit import ranking_summary

    out = tmp_path / "res"
    assert main(["run", "--suite", str(write_suite(tmp_path / "s.yaml", ["original", "graddiff"])), "--out", str(out), "--local"]) == 0
    summary = ranking_summary(str(out), "graddiff")
    assert "overall: graddiff is not ranked: no other method has finished jobs on its tasks" in summary
    assert "nan" not in summary and "<NA>" not in summary
    for path in (out / "records").glob("*original*.json"):
        path.unlink()  # no Original: the row has no score at all
    summary = ranking_summary(str(out), "graddiff")
    assert "graddiff is not ranked: no finished Original record on this task to score it against" in summary
    assert "None" not in summary and "of 0" not in summary
