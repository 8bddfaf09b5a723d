"""The edge install: `vitalgate[gateway]` must not bring or import the server stack."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVER_ONLY_PACKAGES = ("fastapi", "pandas", "sqlalchemy", "influxdb_client")


@pytest.mark.integration
@pytest.mark.slow
def test_gateway_extra_installs_without_the_server_stack(tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{PROJECT_ROOT}[gateway]",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    probe = (
        "import importlib.util, json\n"
        f"print(json.dumps({{name: importlib.util.find_spec(name) is not None "
        f"for name in {SERVER_ONLY_PACKAGES!r}}}))\n"
    )
    found = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == (
        '{"fastapi": false, "pandas": false, "sqlalchemy": false, "influxdb_client": false}'
    )

    help_run = subprocess.run(
        [str(environment / "bin" / "vitalgate"), "--help"], capture_output=True, text=True
    )
    assert help_run.returncode == 0, help_run.stderr
    assert "gateway" in help_run.stdout

    # Importing every edge package must not reach for the server stack either.
    imports = subprocess.run(
        [
            str(python),
            "-c",
            "import sys, readings, device_drivers, gateway\n"
            "import pkgutil, importlib\n"
            "for package in (readings, device_drivers, gateway):\n"
            "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
            "        if module.name.endswith('__main__'):\n"
            "            continue\n"
            "        importlib.import_module(module.name)\n"
            f"print(sorted(n for n in {SERVER_ONLY_PACKAGES!r} if n in sys.modules))\n",
        ],
        capture_output=True,
        text=True,
    )
    assert imports.returncode == 0, imports.stderr[-3000:]
    assert imports.stdout.strip() == "[]"
