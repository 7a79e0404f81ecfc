"""The README's quickstart reaches the accuracy the README promises."""
import runpy
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_learns_stripe_orientation(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--epochs", "3"])
    namespace = runpy.run_path(str(EXAMPLE), run_name="quickstart_test")
    history, val_accuracy = namespace["main"](["--epochs", "3"])
    assert val_accuracy >= 0.9
    assert history.history["loss"][-1] < history.history["loss"][0]
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "Final validation accuracy:" in out
