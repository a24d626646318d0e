"""The step budget is enforced by the harness: optimiser steps are counted, hidden steps fail the job."""
from bench.cli import main
from bench.runner.records import iter_records
from tests.helpers import write_suite

HIDDEN = '''
from dataclasses import dataclass
import torch
from bench import Method, simple_loss


@dataclass
class HP:
    steps: int = 4


class Hidden(Method):
    name = "hidden"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        opt = torch.optim.SGD(model.denoiser.parameters(), lr=1e-4)
        batches = remain.batches(8, ctx.generator)
        for _ in range(self.hparams.steps):  # neither capped nor reported
            b = next(batches)
            loss = simple_loss(model, b.x, model.condition(b.keys), ctx.generator)
            opt.zero_grad(); loss.backward(); opt.step()
'''


def test_run_fails_a_method_that_hides_or_exceeds_its_steps(tmp_path):
    (tmp_path / "hidden.py").write_text(HIDDEN)
    suite = write_suite(tmp_path / "s.yaml", ["original", "finetune", str(tmp_path / "hidden.py")], budget=2)
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 1
    recs = {r["label"]: r for r in iter_records(out)}
    assert recs["original"]["cost"]["optimizer_steps"] == 0 and recs["original"]["status"] == "ok"
    assert recs["finetune"]["cost"]["optimizer_steps"] == 2 == recs["finetune"]["cost"]["steps"]
    assert recs["hidden"]["status"] == "failed"
    assert "took 4 steps (4 optimiser steps, 0 reported) with budget max_steps=2" in recs["hidden"]["error"]
    assert "hidden" not in (out / "LEADERBOARD.md").read_text().split("Failed jobs")[0]  # not ranked
