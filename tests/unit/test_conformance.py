"""The real-config corpus (tests/data/wandb-configs, a copy of ../shared/conformance/wandb-configs).

* Every file is judged as its INDEX.md says: valid, "W&B warns" and "invalid as W&B loads it"
  (number strings, ruling 1) are accepted by ``sweepq validate`` (exit 0, warnings printed);
  INVALID files exit 2 with a message naming the offending key.
* Every EXPECTED.md case's argv is reproduced by ``sweepq preview --params ... --json``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sweepq.cli import main
from sweepq.command import args_json_text, render
from sweepq.config import _Loader, validate

CORPUS = Path(__file__).resolve().parent.parent / "data" / "wandb-configs"
FILES = sorted(CORPUS.glob("*.yaml"))


def _index() -> dict[str, str]:
    """file name -> verdict column of INDEX.md."""
    verdicts = {}
    for line in (CORPUS / "INDEX.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 9 and re.fullmatch(r"\d{3}", cells[1]):
            verdicts[cells[2].strip("`")] = cells[8]
    return verdicts


INDEX = _index()

# The key each INVALID file's message must name (from INDEX.md's quoted W&B reason).
INVALID_KEYS = {
    "005": ["parameters.optimizer", "parameters.lr", "parameters.batch_size"],
    "019": ["parameters.scheduler_interval", "parameters.epochs", "parameters.learning_rate",
            "parameters.image_dims", "parameters.batch_size", "parameters.augmentation"],
    "021": ["count"],
    "023": ["parameters.step-penalty"],
    "033": ["early_terminate.eta"],
    "049": ["metric.goal"],
    "053": ["parameters.model.gain"],
    "055": ["parameters.model_params.max_freq"],
    "057": ["parameters.optimizer_config/optimizer/init_args/lr",
            "parameters.optimizer_config/optimizer/init_args/weight_decay"],
}  # fmt: skip


def test_index_covers_every_file():
    assert {f.name for f in FILES} == set(INDEX)
    invalid = {name[:3] for name, verdict in INDEX.items() if "**INVALID**" in verdict}
    assert invalid == set(INVALID_KEYS)


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:3])
def test_validate_verdict(path: Path):
    verdict = INDEX[path.name]
    result = run_cli("validate", str(path))
    assert "Traceback" not in result.output
    if "**INVALID**" in verdict:
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith(("error: ", "warning: ")) for line in lines)
        for key in INVALID_KEYS[path.name[:3]]:
            assert any(line.startswith(f"error: {key}") for line in lines), (key, lines)
        return
    assert result.exit_code == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["parameters"] and "_normalised" not in printed
    if "W&B warns" in verdict:
        assert re.search(r"warning: parameters\..*log_uniform", result.stderr)
    # number strings (ruling 1) are numbers: no parameter bound is left a string
    config, _, _ = validate(path)
    for spec in _leaf_specs(config["parameters"]):
        for key in ("min", "max", "q", "mu", "sigma"):
            assert not isinstance(spec.get(key), str)


def _leaf_specs(params: dict):
    for spec in params.values():
        if spec["distribution"] == "param_dict":
            yield from _leaf_specs(spec["parameters"])
        else:
            yield spec


def test_number_strings_read_as_numbers():
    config, errors, _ = validate(
        CORPUS / "001-amyxlu-plaid-dev-distributed-bayes-hyperband-runcap-target.yaml"
    )
    assert not errors
    lr = config["parameters"]["opt-config.lr"]
    assert (lr["min"], lr["max"]) == (1e-5, 1e-4)
    config, _, _ = validate(CORPUS / "011-OpenBioML-bio-chem-lm-random-runcap-accelerate.yaml")
    assert config["parameters"]["lr"]["min"] == 9e-6


# --- EXPECTED.md ---------------------------------------------------------------------------------


def _expected_cases() -> list[dict]:
    text = (CORPUS / "EXPECTED.md").read_text()
    cases = []
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        m = re.match(r"(E\d+): `([^`]+)`", block)
        if not m:
            continue
        assignment = re.search(r"Assignment:.*?```yaml\n(.*?)```", block, re.S).group(1)
        argv = re.search(r"Expected argv.*?```json\n(.*?)```", block, re.S).group(1)
        file_json = re.search(r"Contents of `[^`]+`.*?```json\n(.*?)```", block, re.S)
        cases.append({
            "id": m.group(1),
            "file": m.group(2),
            "params": yaml.load(assignment, Loader=_Loader),  # noqa: S506 - a SafeLoader
            "argv": json.loads(argv),
            "file_json": file_json.group(1).strip() if file_json else None,
        })  # fmt: skip
    return cases


CASES = _expected_cases()


def test_expected_has_every_case():
    assert [c["id"] for c in CASES] == ["E02", "E04", "E06", "E07", "E08", "E10", "E12", "E14"]


def _literals(argv: list[str]) -> list[str]:
    return [a for a in argv if not re.match(r"^(--|\+\+?)?[A-Za-z_][\w.\-/]*=", a)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_preview_reproduces_expected_argv(case):
    path = CORPUS / case["file"]
    args = ["preview", str(path), "--params", json.dumps(case["params"]), "--json",
            "--sweep-id", "SWEEPID", "--run-id", "RUNID"]  # fmt: skip
    result = run_cli(*args)
    if "**INVALID**" in INDEX[case["file"]]:
        # E12: EXPECTED shows what W&B's agent would build had the service accepted the file;
        # sweepq refuses the file, so the renderer is checked on the raw config instead.
        assert result.exit_code == 2
        raw = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506
        got = render(raw, case["params"], sweep_id="SWEEPID", run_id="RUNID")
    else:
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 1
        got = json.loads(lines[0])
    expected = case["argv"]
    assert Counter(got) == Counter(expected)  # the same items...
    assert _literals(got) == _literals(expected)  # ...literal items in their written order
    assert got == expected  # and sweepq's documented sorted key order matches EXPECTED's
    if case["file_json"]:
        assert args_json_text(case["params"]) == case["file_json"]
        if result.exit_code == 0:
            assert f"wandb/sweep-SWEEPID/config-RUNID.json: {case['file_json']}" in result.stderr


@pytest.mark.parametrize(
    "path", [f for f in FILES if "**INVALID**" not in INDEX[f.name]], ids=lambda p: p.name[:3]
)
def test_preview_every_valid_file(path: Path):
    result = run_cli("preview", str(path), "-n", "3", "--json", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert 1 <= len(lines) <= 3
    assert all(isinstance(json.loads(line), list) for line in lines)
