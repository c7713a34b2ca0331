"""Secrets never reach a terminal: the error line and the board redact like the log does."""

from __future__ import annotations

import subprocess
import sys

from bulkmover.logs import redact_text

SECRETS = [
    "Authorization: Bearer ya29.a0AfH6SMBx-secret_1",
    "bearer abc.DEF-secret_2",
    "access token ya29.secret_3 expired",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQsecret_4\n-----END PRIVATE KEY-----",
]


def test_redact_text_removes_every_kind_of_secret() -> None:
    for text in SECRETS:
        cleaned = redact_text(text)
        assert "secret_" not in cleaned and "[redacted]" in cleaned, cleaned


def test_the_fatal_error_line_is_redacted() -> None:
    code = (
        "from bulkmover.errors import ApiError\n"
        "import bulkmover.cli as cli\n"
        "def boom(): raise ApiError('server said: Authorization: Bearer ya29.secret_5')\n"
        "cli.app.main = lambda **k: boom()\n"
        "cli.main([])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.startswith("error:") and "secret_5" not in result.stderr
    assert "Bearer [redacted]" in result.stderr
