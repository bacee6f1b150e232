"""The command line: instant help (no heavy imports) and one-line errors with exit code 2."""
import subprocess
import sys

import numpy as np
import pytest

HEAVY = ("torch", "xarray", "dask", "zarr", "scipy", "pandas")
COMMANDS = ["run", "data", "train", "extract", "analyze", "query", "status", "report"]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "actstore.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_help_imports_nothing_heavy():
    code = (
        "import sys\nfrom actstore.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_every_subcommand_has_help():
    from actstore.cli import cli

    for name in cli.commands:
        proc = run_cli(name, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "Usage: actstore " in proc.stdout


def test_bad_profile_is_one_line_exit_2():
    proc = run_cli("--profile", "nope", "status")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        proc.stderr.strip(),
    ] and "unknown profile 'nope'" in proc.stderr


def test_bad_catalog_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("name: [\n")
    proc = run_cli("--catalog", str(bad), "status")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert str(bad) in proc.stderr and "malformed YAML" in proc.stderr


def test_status_lists_the_zoo(tmp_path):
    proc = run_cli("--profile", "smoke", "--root", str(tmp_path), "status")
    assert proc.returncode == 0, proc.stderr
    assert "xu_cnn-s0" in proc.stdout and "alexnet-s0" in proc.stdout and "missing" in proc.stdout


@pytest.mark.parametrize("root", ["/etc/passwd", "/etc/passwd/stores"])
def test_a_root_that_cannot_be_a_folder_is_one_line_exit_2(root):
    proc = run_cli("--profile", "smoke", "--root", root, "status")
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and f"--root {root}: " in proc.stderr
    assert ("is a file" if root == "/etc/passwd" else "lies inside the file /etc/passwd") in proc.stderr


def test_status_checks_the_data_as_data_does(tmp_path):
    """A deleted segment file or a changed one makes the data stale in status, with what is wrong; `data`
    agrees and re-prepares."""
    from actstore.catalog import load_catalog
    from actstore.data import prepare_data
    from actstore.status import status_lines

    catalog, root = load_catalog(profile="smoke"), str(tmp_path)
    prepare_data(catalog, root)

    def data_line() -> str:
        return next(line for line in status_lines(catalog, root) if line.startswith("  data"))

    assert " present " in data_line()
    session = tmp_path / "data" / "smoke" / "070921_J553RT"
    gone = sorted(session.glob("test_nsp_seg_*.npy"))[0]
    gone.unlink()
    assert " stale " in data_line() and f"1 file(s) missing since prepared (070921_J553RT/{gone.name})" in data_line()
    assert prepare_data(catalog, root) != ["data: synthetic, 3 sessions up to date"]
    assert " present " in data_line()
    np.save(gone, np.load(gone) + 1)
    assert f"1 file(s) changed since prepared (070921_J553RT/{gone.name})" in data_line()
