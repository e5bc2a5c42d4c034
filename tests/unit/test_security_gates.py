"""`make security` can fail: the scanners it runs catch a planted shell injection and a planted key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipelines.settings import REPO_ROOT

BIN = Path(sys.executable).parent


def test_bandit_fails_on_a_medium_or_high_finding(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n")
    scan = subprocess.run([BIN / "bandit", "-q", "-ll", str(planted)], capture_output=True, text=True)
    assert scan.returncode == 1
    assert "B602" in scan.stdout  # subprocess with shell=True


def test_detect_secrets_fails_on_a_new_secret_against_the_committed_baseline(tmp_path):
    planted = tmp_path / "settings_override.py"
    key = "AKIA" + "QX7RZ3M5L2N8P4TB"  # an AWS access key id shape, assembled so this file holds none
    planted.write_text(f'AWS_ACCESS_KEY_ID = "{key}"\n')
    scan = subprocess.run([BIN / "detect-secrets-hook", "--baseline", str(REPO_ROOT / ".secrets.baseline"),
                           str(planted)], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert scan.returncode == 1
    assert "AWS Access Key" in scan.stdout
