"""Numba's on-disk cache of the compiler kernels is keyed on kernels.py alone: the PARAM_* layout they freeze
from ppa.py must be spelt out in kernels.py, and a mismatch must refuse to import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import rnc.simulator.kernels as kernels
import rnc.simulator.ppa as ppa


def test_layout_lists_every_ppa_parameter_in_order() -> None:
    names = [n for n in vars(ppa) if n.startswith("PARAM_")]
    assert sorted(names, key=lambda n: getattr(ppa, n)) == list(kernels.PARAM_LAYOUT)
    assert len(kernels.PARAM_LAYOUT) == ppa.N_PARAMS


def test_renumbered_ppa_parameters_refuse_to_import(tmp_path: Path) -> None:
    # a copy of the package with two indices swapped in ppa.py only: importing the kernels must fail loudly
    # instead of running cached machine code that reads the wrong parameters
    import shutil

    root = Path(kernels.__file__).resolve().parents[2]
    shutil.copytree(root / "rnc", tmp_path / "rnc", ignore=shutil.ignore_patterns("__pycache__"))
    ppa_file = tmp_path / "rnc" / "simulator" / "ppa.py"
    text = ppa_file.read_text()
    swapped = text.replace("PARAM_READ_NS, PARAM_ADCS,", "PARAM_ADCS, PARAM_READ_NS,", 1)
    assert swapped != text
    ppa_file.write_text(swapped)
    code = textwrap.dedent("""
        import rnc.simulator.kernels
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "nb"), "PATH": ""})
    assert proc.returncode != 0
    assert "PARAM_LAYOUT" in proc.stderr
