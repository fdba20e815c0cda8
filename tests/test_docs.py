"""Every Python block of README.md and docs/*.md runs as written and prints what the page says.

A block is run as a script in a fresh interpreter: its working directory is a temporary one,
``AGENTCAST_STORAGE`` points at a temporary folder, and no ``RAY_*`` variable leaks in, so a
block starts its own local Ray and never joins another cluster. Two blocks run at a time
(``_Runs``): a block keeps about one core busy while its Ray starts and stops, and the
machines this runs on have two. The output a page states is
the ```text block right after the Python block; a block followed by none must print nothing.

Every ```yaml block is a policy file, loaded with ``load_policies``.

A block that is deliberately a fragment is marked ```python no-run and listed in
``FRAGMENTS``; the number of runnable blocks per page is pinned in ``RUNNABLE``, so a block is
never skipped by accident (a misspelled fence, a parse slip).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from policies import load_policies

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK_TIMEOUT_S = 240
RUNNABLE_INFO = "python"
FRAGMENT_INFO = "python no-run"

# Runnable blocks per page. Each one that starts a System costs a Ray start (10-20 s).
RUNNABLE = {
    "README.md": 2,
    "docs/agents.md": 1,
    "docs/benchmarks.md": 0,
    "docs/budgets.md": 3,
    "docs/context.md": 4,
    "docs/coordination.md": 1,
    "docs/events.md": 1,
    "docs/integrity.md": 2,
    "docs/metrics.md": 0,
    "docs/observability.md": 0,
    "docs/observability-export.md": 1,
    "docs/operations.md": 0,
    "docs/ownership.md": 1,
    "docs/resources.md": 2,
    "docs/storage.md": 0,
    "docs/supervisor.md": 1,
    "docs/visibility.md": 1,
}
# Fragments, by page and first line. A new one must be added here on purpose.
FRAGMENTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("docs/coordination.md", "class InventoryAgent(Agent):"),
        # dead letters of a running system: the runnable path is
        # tests/test_events_dead_letters_ray.py
        ("docs/events.md", "subs = Subscriptions(system.namespace)"),
        # an agent's handler: its messages and the agents it delegates to are the reader's
        ("docs/integrity.md", "class Research(Agent):"),
        # a resource declaration and a verify call: the runnable path is trust_collapse.py
        ("docs/integrity.md", "class Reports(Resource):"),
        ("docs/integrity.md", "verdict = system.supervisor.verify("),
        # a stage's verifier and a downstream requirement: the runnable path is
        # tests/test_stage_rules_ray.py; a keyed read's declaration
        (
            "docs/integrity.md",
            'system.supervisor.declare_stage("draft", verifier="checker")  # verify_within: 60 s',
        ),
        (
            "docs/integrity.md",
            '# drafted: a "rough" stage\'s handle; nobody checked its output: UNVERIFIED_AGENT',
        ),
        ("docs/integrity.md", "class Desk(Resource):"),
        # a timing loop, its figures quoted on the page
        ("docs/observability-export.md", "import timeit"),
        # a sketch: its agent, model and ground truth are the reader's
        ("docs/observability-export.md", "from policies import SamplingPolicy"),
        # a validator alone: the runnable block below it holds one in full
        ("docs/visibility.md", "class PricingAgent(Agent):"),
    }
)

# Fences: the info string, the body, and where the body starts.
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One ```python block of a page, and the output the page states for it."""

    page: str
    line: int
    info: str
    code: str
    expected: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    page = path.relative_to(REPO).as_posix()
    fences = list(_FENCE.finditer(text))
    found = []
    for index, fence in enumerate(fences):
        info = fence.group(1).strip()
        if not info.startswith("py"):
            continue
        after = fences[index + 1] if index + 1 < len(fences) else None
        stated = (
            after is not None
            and after.group(1).strip() == "text"
            and text[fence.end() : after.start()].strip() == ""
        )
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, fence.start()) + 1,
                info=info,
                code=fence.group(2),
                expected=after.group(2) if stated and after is not None else "",
            )
        )
    return found


ALL_BLOCKS = [block for path in PAGES for block in _blocks(path)]
RUNNABLE_BLOCKS = [block for block in ALL_BLOCKS if block.info == RUNNABLE_INFO]
FIRST_PROGRAM = RUNNABLE_BLOCKS[0]


def _run(block: Block, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / "snippet.py"
    script.write_text(block.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["AGENTCAST_STORAGE"] = str(cwd / "agentcast-storage")
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )


def _check(block: Block, done: subprocess.CompletedProcess[str]) -> None:
    where = f"{block.id} exited {done.returncode}; stderr:\n{done.stderr[-4000:]}"
    assert done.returncode == 0, where
    assert done.stdout == block.expected, f"{block.id} printed other output:\n{done.stderr[-2000:]}"


def test_every_python_block_is_runnable_or_a_listed_fragment() -> None:
    infos = {block.info for block in ALL_BLOCKS}
    assert infos <= {RUNNABLE_INFO, FRAGMENT_INFO}, f"unknown Python fences: {infos}"
    fragments = {
        (block.page, block.code.splitlines()[0]) for block in ALL_BLOCKS if block.info != "python"
    }
    assert fragments == FRAGMENTS
    counts = {page.relative_to(REPO).as_posix(): 0 for page in PAGES}
    for block in RUNNABLE_BLOCKS:
        counts[block.page] += 1
    assert counts == RUNNABLE


def test_every_yaml_block_is_a_policy_file_that_loads() -> None:
    bodies = [
        fence.group(2)
        for path in PAGES
        for fence in _FENCE.finditer(path.read_text(encoding="utf-8"))
        if fence.group(1).strip() == "yaml"
    ]
    assert len(bodies) == 3
    loaded = [load_policies(body) for body in bodies]
    assert sorted((len(p.budgets), sorted(p.conflicts)) for p in loaded) == [
        (0, []),  # docs/visibility.md: decision visibility
        (0, ["drafts"]),  # docs/ownership.md: a conflict ladder
        (2, []),
    ]
    assert sorted(rule for p in loaded for rule in p.visibility.rules) == [
        "CustomerException",
        "PriceChanged",
    ]


def test_the_first_program_is_the_readme_s_first_block() -> None:
    assert (FIRST_PROGRAM.page, FIRST_PROGRAM.expected != "") == ("README.md", True)
    assert "System.start" in FIRST_PROGRAM.code


Done = list[subprocess.CompletedProcess[str]]


class _Runs:
    """The selected slow tests' runs, all started at once on two workers in the order the
    tests come, each test waiting for its own. A run is bounded (``BLOCK_TIMEOUT_S``), so
    the whole set ends within ``WAIT_S`` whichever test waits first."""

    WAIT_S = BLOCK_TIMEOUT_S * (len(RUNNABLE_BLOCKS) + 1) + 60  # the first program runs twice

    def __init__(self, jobs: list[tuple[str, Callable[[], Done]]]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="docs-block")
        self._started = {key: self._pool.submit(job) for key, job in jobs}

    def result(self, key: str) -> Done:
        return self._started[key].result(timeout=self.WAIT_S)

    def close(self) -> None:
        for future in self._started.values():
            future.cancel()
        self._pool.shutdown(wait=True)


def _runs_of(block: Block, cwd: Path, times: int) -> Callable[[], Done]:
    # Run again in the same folder, the same storage: nothing of a run may carry over.
    return lambda: [_run(block, cwd) for _ in range(times)]


_FIRST_TEST = "test_the_first_program_prints_the_same_on_a_second_run"
_BLOCK_TEST = "test_block_runs_and_prints_what_the_page_says"


def _planned() -> list[tuple[str, Block, int]]:
    """Each slow test by its node name, with its block and how many runs it takes."""
    return [(_FIRST_TEST, FIRST_PROGRAM, 2)] + [
        (f"{_BLOCK_TEST}[{block.id}]", block, 1) for block in RUNNABLE_BLOCKS[1:]
    ]


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[_Runs]:
    selected = {item.name for item in request.session.items}
    started = _Runs([
        (key, _runs_of(block, tmp_path_factory.mktemp(re.sub(r"\W", "-", block.id)), times))
        for key, block, times in _planned()
        if key in selected
    ])  # fmt: skip
    yield started
    started.close()


@pytest.mark.slow
@pytest.mark.timeout(_Runs.WAIT_S)
def test_the_first_program_prints_the_same_on_a_second_run(runs: _Runs) -> None:
    for done in runs.result(_FIRST_TEST):
        _check(FIRST_PROGRAM, done)


@pytest.mark.slow
@pytest.mark.timeout(_Runs.WAIT_S)
@pytest.mark.parametrize("block", RUNNABLE_BLOCKS[1:], ids=lambda block: block.id)
def test_block_runs_and_prints_what_the_page_says(
    block: Block, runs: _Runs, request: pytest.FixtureRequest
) -> None:
    (done,) = runs.result(request.node.name)
    _check(block, done)


def _commands_table() -> dict[str, str]:
    """docs/operations.md's command table: each row's command text, by subcommand."""
    rows = re.findall(
        r"^\| `agentcast (\w+)(.*?) \| ", (REPO / "docs/operations.md").read_text(), re.M
    )
    return {name: rest for name, rest in rows}


def test_the_command_table_names_every_command_and_bench_target() -> None:
    from actors._cli.main import _parser

    commands = next(
        action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    table = _commands_table()
    assert set(table) == set(commands.choices)
    bench_targets = next(a for a in commands.choices["bench"]._actions if a.dest == "target")
    listed = re.match(r"\s*([\w\\|]+)", table["bench"])
    assert listed is not None
    assert listed.group(1).split("\\|") == list(bench_targets.choices or ())
