"""The README's Python snippets (the `openai` and the `litellm` flow) run as
written, from the repository's root, against a gateway like the
quickstart's. The only change: `http://localhost:4000` becomes this test's
gateway. (tests/tests/readme.rs runs the README's shell blocks.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import WORKSPACE

README = WORKSPACE / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_both_snippets():
    blocks = python_blocks()
    assert len(blocks) == 2, blocks
    assert "from openai import OpenAI" in blocks[0]
    assert "import litellm" in blocks[1]


@pytest.mark.parametrize("index", [0, 1], ids=["openai", "litellm"])
def test_readme_snippet_runs(gateway, index):
    code = python_blocks()[index].replace("http://localhost:4000", gateway.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HOSTED_VLLM_"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=WORKSPACE, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stdout.startswith("completed"), done.stdout
    assert '"custom_id": "request-1"' in done.stdout or '"custom_id":"request-1"' in done.stdout, done.stdout
    assert "request-2" in done.stdout
