"""The README's Python blocks run as written, it stays short, and its relative links resolve.

Every ```python block of README.md is one test case: it runs with exec() in a fresh namespace,
inside a temporary working directory, so any file it writes (clip.mp4, ...) lands there.
"""
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_BYTES = 15_000

# A fenced block: ```python at the start of a line, up to the next ``` at the start of a line.
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# Inline links and images: [text](target) / ![alt](target), with an optional "title".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def python_blocks(text):
    """[(first line number of the code, code)] for every ```python block of `text`."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in PYTHON_BLOCK.finditer(text)]


def relative_links(text):
    """Link targets of `text` that point into the repository (no scheme, not only an anchor)."""
    text = re.sub(r"^```.*?^```[ \t]*$", "", text, flags=re.MULTILINE | re.DOTALL)  # links in code don't count
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "//")):
            continue
        out.append(target)
    return out


README_TEXT = README.read_text(encoding="utf-8")
BLOCKS = python_blocks(README_TEXT)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 1, "README.md has no ```python block to run"


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs(line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"readme_block_line_{line}"}
    exec(compile(code, f"README.md (block at line {line})", "exec"), namespace)
    # The block ran to its end: every name it assigns at top level exists.
    assigned = re.findall(r"^([A-Za-z_]\w*)(?:\s*,\s*[A-Za-z_]\w*)*\s*=(?!=)", code, flags=re.MULTILINE)
    missing = [name for name in assigned if name not in namespace]
    assert not missing, f"names the block assigns are missing after it ran: {missing}"


def test_readme_size():
    size = len(README.read_bytes())
    assert size <= MAX_BYTES, f"README.md is {size} bytes; keep it at most {MAX_BYTES} (move detail to docs/)"


def test_readme_relative_links_exist():
    links = relative_links(README_TEXT)
    assert links, "README.md links to no file in the repository (docs/ pages, the sample sheet)"
    broken = []
    for target in links:
        path = unquote(target.split("#", 1)[0])
        if path and not (README.parent / path).exists():
            broken.append(target)
    assert not broken, f"README.md links to files that do not exist: {broken}"


def test_link_and_block_parsers():
    """The helpers find what they should, so the tests above cannot pass by finding nothing."""
    text = ("See [a](docs/a.md#x), ![img](pics/b.png \"t\"), [web](https://x.org), [top](#top).\n"
            "```python\nx = 1\n```\n"
            "```\n[not a link](in/code.md)\n```\n"
            "```python\ny = 2\n```\n")
    assert relative_links(text) == ["docs/a.md#x", "pics/b.png"]
    assert python_blocks(text) == [(3, "x = 1\n"), (9, "y = 2\n")]
