"""qaexp as a user installs it: a wheel installed into a fresh virtual environment (not editable), used from a
directory that has nothing to do with the repository. The configs ship inside the package (qaexp.conf)."""
import json
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

from helpers.repo import REPO
from qaexp.tools import TOOLS

pytestmark = pytest.mark.slow


def run(args, cwd, timeout=600):
    # Deliberately not helpers.cli.run_cli: these commands run an installed wheel's interpreter from outside the
    # checkout, so this checkout must NOT be put on PYTHONPATH (it is removed), and the interpreter varies.
    env = {**os.environ}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def sees_running_environment(venv_root: pathlib.Path) -> None:
    """Make the venv at `venv_root` see every package the running interpreter sees, after its own.

    `venv --system-site-packages` would give the *base* interpreter's packages, which inside a virtualenv are not
    the ones installed (TensorFlow & co. live in the running venv). A .pth file in the new venv's site-packages
    instead adds each of the running environment's site directories (processing their own .pth files, as site.py
    does), whether that is a venv, a system interpreter or a conda-like prefix. The new venv's site-packages is
    already on sys.path when the .pth is read, so the installed wheel comes before any editable qaexp."""
    import site
    # site.py's own order: the user site before the environment's site-packages
    dirs = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    dirs += site.getsitepackages()
    (site_packages,) = venv_root.glob("lib/python*/site-packages")
    (site_packages / "zz_running_environment.pth").write_text(
        f"import site; list(map(site.addsitedir, {[str(d) for d in dirs]!r}))\n")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv with its own qaexp wheel that resolves TensorFlow & co. from the running environment."""
    root = tmp_path_factory.mktemp("install")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist",
                 REPO], cwd=root)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("qaexp-*.whl")
    made = run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], cwd=root)
    assert made.returncode == 0, made.stderr[-3000:]
    sees_running_environment(root / "venv")
    python = root / "venv" / "bin" / "python"
    # pip comes from the running environment too; --ignore-installed so that it never touches the qaexp (editable
    # or not) that the running environment has, only writes the wheel into the new venv.
    installed = run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel],
                    cwd=root)
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = root / "elsewhere"  # no conf/, no qaexp/: only the installed package can answer
    elsewhere.mkdir()
    return wheel, python, root / "venv" / "bin" / "qaexp", elsewhere


def test_the_wheel_ships_every_package_and_the_configs(venv):
    wheel, _, _, _ = venv
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "qaexp").rglob("__init__.py")}
    assert {f"{package}/__init__.py" for package in packages} <= names
    configs = {str(p.relative_to(REPO)) for p in (REPO / "conf").rglob("*.yaml")}
    assert configs and {f"qaexp/{config}" for config in configs} <= names


def test_the_installed_package_is_the_wheel_not_the_checkout(venv):
    _, python, _, elsewhere = venv
    result = run([python, "-c", "import qaexp; print(qaexp.__file__)"], cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    location = pathlib.Path(result.stdout.strip())
    assert location.is_relative_to(python.parent.parent) and not location.is_relative_to(REPO)


def test_help_and_composed_config_from_any_directory(venv):
    _, python, qaexp, elsewhere = venv
    for command in ([qaexp, "--help"], [python, "-m", "qaexp", "--help"]):
        result = run(command, cwd=elsewhere, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "model: " in result.stdout and "tiny" in result.stdout and "Traceback" not in result.stderr
        assert all(f"python -m qaexp.{tool} " in result.stdout for tool in TOOLS)  # the help names every tool
    result = run([qaexp, "--cfg", "job", "model=tiny"], cwd=elsewhere, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "family: roformer" in result.stdout


def test_a_short_run_with_a_users_own_model_config_from_any_directory(venv):
    """A real run from outside the repository: the installed package's own configs, and one of the user's beside
    them (--config-dir); it trains, evaluates and saves the model."""
    _, _, qaexp, elsewhere = venv
    mine = elsewhere / "my_configs"
    (mine / "model").mkdir(parents=True)
    tiny = (REPO / "conf" / "model" / "tiny.yaml").read_text()
    (mine / "model" / "tiny_wide.yaml").write_text(tiny.replace("hidden_size: 128", "hidden_size: 96"))
    composed = run([qaexp, "--config-dir", mine, "--cfg", "job", "model=tiny_wide"], cwd=elsewhere, timeout=120)
    assert composed.returncode == 0, composed.stderr[-2000:]
    assert "hidden_size: 96" in composed.stdout
    result = run([qaexp, "--config-dir", mine, "experiment=quickstart", "model=tiny_wide", "data.num_train=100",
                  "data.num_validation=10", "trainer.epochs=1", "trainer.verbose=0", "hydra.run.dir=mine"],
                 cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (elsewhere / "mine" / "metrics.json").exists() and (elsewhere / "mine" / "model" / "config.json").exists()
    assert '"hidden_size": 96' in (elsewhere / "mine" / "model" / "config.json").read_text()


# ---- the dependency set a user gets -------------------------------------------------------------------------------

HUB_LIBRARIES = ["transformers", "huggingface_hub", "datasets"]


def distributions(python: pathlib.Path, cwd) -> dict[str, str]:
    """{normalised distribution name: version} of everything installed in the venv of `python`."""
    listed = run([python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"], cwd=cwd)
    assert listed.returncode == 0, listed.stderr[-2000:]
    return {normalised(entry["name"]): entry["version"] for entry in json.loads(listed.stdout)}


def normalised(name: str) -> str:
    """A distribution's name as PEP 503 compares names (pip list and pip's report spell some differently)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_qaexp_installs_beside_the_newest_hub_libraries_without_downgrading_them(tmp_path):
    """A user who already has the newest transformers, huggingface_hub and datasets installs qaexp (with its dev
    extras, as CI does) on top: nothing installed is replaced or downgraded, no tf-keras comes along (qaexp's models
    are Keras 3; transformers 5 has no TensorFlow classes that would need it) and the environment stays consistent.
    Needs the package index.

    The hub libraries are really installed (and `pip check` passes on them); qaexp[dev] on top is resolved by pip
    with --dry-run --report, which runs the same resolver as the real install without downloading and installing
    TensorFlow & co.: the report lists everything the install would add or replace. Consistency follows without a
    second `pip check`: what was installed is consistent (checked), the report shows none of it would change, and
    pip's resolver only reports a set that satisfies the requirements of everything it would install."""
    made = run([sys.executable, "-m", "venv", tmp_path / "venv"], cwd=tmp_path, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    python = tmp_path / "venv" / "bin" / "python"
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    probe = run([*pip, "index", "versions", "transformers"], cwd=tmp_path, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"the package index is unreachable from here (pip index versions transformers: "
                    f"{(probe.stderr.strip().splitlines() or ['no output'])[-1]})")
    # --no-compile: pip's bytecode compilation of pandas, pyarrow & co. was 13 of the install's 22 CPU s, and has no
    # bearing on which versions are installed, which is what the test compares.
    first = run([*pip, "install", "--no-compile", *HUB_LIBRARIES], cwd=tmp_path, timeout=1200)
    assert first.returncode == 0, first.stderr[-3000:]
    before = distributions(python, tmp_path)
    assert int(before["transformers"].split(".")[0]) >= 5, before["transformers"]
    checked = run([*pip, "check"], cwd=tmp_path, timeout=300)
    assert checked.returncode == 0, checked.stdout[-3000:]
    report = tmp_path / "report.json"
    then = run([*pip, "install", "--dry-run", "--report", report, f"{REPO}[dev]"], cwd=tmp_path, timeout=1800)
    assert then.returncode == 0, then.stderr[-3000:]
    would_install = {normalised(item["metadata"]["name"]): item["metadata"]["version"]
                     for item in json.loads(report.read_text())["install"]}
    changed = {name: (version, would_install[name]) for name, version in before.items() if name in would_install}
    assert not changed, f"installing qaexp would replace what was installed before it: {changed}"
    assert "qaexp" in would_install and not {"tf-keras", "tf-keras-nightly"} & set(would_install), \
        sorted(would_install)
