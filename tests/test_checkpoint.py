"""Checkpoints round-trip exactly and refuse truncated, foreign or mismatched files with one clear line."""
import json
import subprocess
import sys

import pytest
import torch

from actstore.errors import UserError
from actstore.models import build_twin, load_checkpoint, save_checkpoint
from actstore.models import checkpoint
from actstore.store.paths import META, weights_file


def weights_path(folder):
    """The weights file that the folder's model.json names."""
    return folder / json.loads((folder / META).read_text())["weights"]


@pytest.fixture
def saved(tmp_path):
    twin = build_twin("xu_cnn", (30, 40), {"a": 5, "b": 2}, encoder_dim=16, hidden_dim=8, seed=1)
    folder = tmp_path / "models" / "xu_cnn-s1"
    digest = save_checkpoint(twin, str(folder), {"seed": 1})
    return twin, folder, digest


def test_roundtrip_is_exact(saved):
    twin, folder, digest = saved
    loaded, meta = load_checkpoint(str(folder), expect={"arch": "xu_cnn", "encoder_dim": 16})
    assert meta["sha256"] == digest and meta["provenance"] == {"seed": 1}
    a, b = twin.state_dict(), loaded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resaving_a_loaded_checkpoint_keeps_its_sha256(tmp_path):
    # mice listed out of alphabetical order, as a catalog may: model.json sorts them, the reloaded twin too
    twin = build_twin("xu_cnn", (30, 40), {"b": 2, "a": 5}, encoder_dim=16, hidden_dim=8, seed=1)
    digest = save_checkpoint(twin, str(tmp_path / "first"))
    loaded, _ = load_checkpoint(str(tmp_path / "first"))
    assert list(loaded.readouts) != list(twin.readouts)
    assert save_checkpoint(loaded, str(tmp_path / "again")) == digest


def test_a_replaced_checkpoint_is_read_whole_by_a_reader_that_raced_it(saved, monkeypatch):
    """A reader that read the old model.json just before a replacement finds the old weights removed and reads the
    new pair; the folder keeps only the new weights."""
    twin, folder, first = saved
    stale = json.loads((folder / META).read_text())
    second = save_checkpoint(build_twin("xu_cnn", (30, 40), {"a": 5, "b": 2}, encoder_dim=16, hidden_dim=8, seed=2),
                             str(folder), {"seed": 2})
    assert second != first
    assert sorted(p.name for p in folder.iterdir()) == sorted([META, weights_file(second)])
    reads = iter([stale])
    real = checkpoint.read_meta
    monkeypatch.setattr(checkpoint, "read_meta", lambda f: next(reads, None) or real(f))
    meta, data = checkpoint.read_weights(str(folder))
    assert meta["sha256"] == second and data == weights_path(folder).read_bytes()
    monkeypatch.setattr(checkpoint, "read_meta", real)
    weights_path(folder).unlink()
    with pytest.raises(UserError, match=rf"{weights_file(second)}: missing"):
        load_checkpoint(str(folder))


@pytest.mark.parametrize("arch", ["alexnet", "regnet_y_400mf"])  # built on the meta device / built normally
def test_loading_gives_the_saved_twin_and_draws_no_random_numbers(arch, tmp_path):
    """The loaded twin computes exactly what the saved one does. One built on the meta device (alexnet) computes
    no initial weights, so loading leaves torch's random stream as it was; RegNet reads tensors while it is built
    and is built normally."""
    twin = build_twin(arch, (30, 40), {"a": 5}, encoder_dim=16, hidden_dim=8, seed=3).eval()
    save_checkpoint(twin, str(tmp_path / arch))
    state = torch.get_rng_state()
    loaded, _ = load_checkpoint(str(tmp_path / arch))
    if arch == "alexnet":
        assert torch.equal(torch.get_rng_state(), state)
    clips = torch.rand(2, 5, 1, 30, 40)
    with torch.inference_mode():
        assert torch.equal(loaded.eval()(clips, "a"), twin(clips, "a"))


def test_roundtrip_on_fsspec_memory():
    twin = build_twin("xu_cnn", (30, 40), {"a": 5}, encoder_dim=16, hidden_dim=8, seed=2)
    save_checkpoint(twin, "memory://ckpt/xu_cnn-s2")
    loaded, _ = load_checkpoint("memory://ckpt/xu_cnn-s2")
    assert torch.equal(loaded.readouts["a"].weight, twin.readouts["a"].weight)


def test_truncated_weights(saved):
    _, folder, _ = saved
    weights = weights_path(folder)
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(UserError, match=rf"{weights.name}: sha256 does not match"):
        load_checkpoint(str(folder))


def test_foreign_file(saved, tmp_path):
    _, folder, _ = saved
    (folder / "model.json").write_text(json.dumps({"hello": "world"}))
    with pytest.raises(UserError, match=r"model\.json: format"):
        load_checkpoint(str(folder))
    (folder / "model.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_checkpoint(str(folder))
    with pytest.raises(UserError, match="missing; not an actstore checkpoint"):
        load_checkpoint(str(tmp_path / "nowhere"))


def test_weights_that_do_not_fit_config(saved):
    _, folder, _ = saved
    meta = json.loads((folder / "model.json").read_text())
    meta["config"]["hidden_dim"] = 9
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="weights do not fit config"):
        load_checkpoint(str(folder))


def test_not_a_state_dict(saved):
    _, folder, _ = saved
    import hashlib
    junk = b"this is not a torch file"
    weights_path(folder).write_bytes(junk)
    meta = json.loads((folder / "model.json").read_text())
    meta["sha256"] = hashlib.sha256(junk).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="not a readable state dict"):
        load_checkpoint(str(folder))


def test_expected_config_mismatch(saved):
    _, folder, _ = saved
    with pytest.raises(UserError, match=r"config\.arch: is 'xu_cnn', expected 'alexnet'"):
        load_checkpoint(str(folder), expect={"arch": "alexnet"})


def test_cli_reports_one_line_and_exit_2(saved):
    """A corrupt checkpoint reached through a CLI path prints one line, no traceback, exit code 2."""
    _, folder, _ = saved
    weights = weights_path(folder)
    weights.write_bytes(b"")
    code = (
        "import sys; from actstore.cli import cli, main; import click\n"
        "@cli.command('load-ckpt')\n@click.argument('folder')\ndef _c(folder):\n"
        "    from actstore.models import load_checkpoint; load_checkpoint(folder)\n"
        f"main(['load-ckpt', {str(folder)!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{weights.name}: sha256 does not match" in lines[0]
