"""Command rendering: W&B's agent rules (WANDB-COMPAT.md section 4, EXPECTED.md rules 1-7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sweepq.command import (
    args_json_path,
    macro_names,
    render,
    uses_args_json_file,
    write_args_json_file,
)

PINNED = {"a": True, "b": False, "c": 1, "d": None}


def argv(command, params=PINNED, **kw):
    cfg = {"command": command, "program": "train.py"}
    kw.setdefault("sweep_id", "S")
    kw.setdefault("run_id", "R")
    return render(cfg, params, **kw)


def test_default_command():
    assert render({"program": "train.py"}, {"lr": 0.01, "layers": 3}, sweep_id="S", run_id="R") == [
        "/usr/bin/env", "python", "train.py", "--layers=3", "--lr=0.01",
    ]  # fmt: skip
    assert render({"program": "t.py", "command": []}, {}, sweep_id="S", run_id="R") == [
        "/usr/bin/env",
        "python",
        "t.py",
    ]


def test_pinned_w_and_b_case_every_macro():
    assert argv(["${args}"]) == ["--a=True", "--b=False", "--c=1", "--d=None"]
    assert argv(["${args_no_hyphens}"]) == ["a=True", "b=False", "c=1", "d=None"]
    assert argv(["${args_no_boolean_flags}"]) == ["--a", "--c=1", "--d=None"]
    assert argv(["${args_no_equals}"]) == ["--a", "True", "--b", "False", "--c", "1", "--d", "None"]
    assert argv(["${args_json}"]) == ['{"a": true, "b": false, "c": 1, "d": null}']
    assert argv(["${args_append_hydra}"]) == ["+a=True", "+b=False", "+c=1", "+d=None"]
    assert argv(["${args_override_hydra}"]) == ["++a=True", "++b=False", "++c=1", "++d=None"]
    assert argv(["${env}", "${interpreter}", "${program}"]) == ["/usr/bin/env", "python", "train.py"]
    assert argv(["${args_json_file}"]) == [os.path.join("wandb", "sweep-S", "config-R.json")]


def test_macro_names_cover_the_table():
    assert macro_names() == {
        "env", "interpreter", "program", "args", "args_no_hyphens", "args_no_boolean_flags",
        "args_no_equals", "args_json", "args_json_file", "args_append_hydra", "args_override_hydra",
    }  # fmt: skip


def test_interpreter_choice():
    assert argv(["${interpreter}"]) == ["python"]
    assert argv(["${interpreter}"], interpreter="/opt/venv/bin/python") == ["/opt/venv/bin/python"]


def test_values_print_with_python_str_and_sorted_keys():
    params = {"z": [400, 300], "lr": 1e-05, "w": 6.5e-05, "f": 1.0, "name": "two words",
              "opt": {"lr": 0.00031, "id": "Adam", "inner": {"b": 1, "a": None}}}  # fmt: skip
    assert argv(["${args}"], params) == [
        "--f=1.0", "--lr=1e-05", "--name=two words",
        "--opt={'id': 'Adam', 'inner': {'a': None, 'b': 1}, 'lr': 0.00031}",
        "--w=6.5e-05", "--z=[400, 300]",
    ]  # fmt: skip
    assert json.loads(argv(["${args_json}"], params)[0]) == params


def test_only_whole_items_are_macros_and_unknown_ones_vanish():
    assert argv(["--cfg=${args_json_file}", "${lr}", "${nope}", "x${args}", "${args}y"], {"lr": 1}) == [
        "--cfg=${args_json_file}", "x${args}", "${args}y",
    ]  # fmt: skip


def test_non_string_items_are_stringified():
    assert argv(["run", 64, 1.5, True, None], {}) == ["run", "64", "1.5", "True", "None"]


def test_envvar_anywhere_and_unset_is_its_name():
    env = {"DATA": "/data", "TAG": "v1"}
    assert argv(["${envvar:DATA}/train", "--tag=${envvar:TAG}-${envvar:TAG}", "${envvar:MISSING}"], {}, env=env) == [
        "/data/train", "--tag=v1-v1", "MISSING",
    ]  # fmt: skip
    # substituted first, so a variable holding a macro expands (as in W&B's order)
    assert argv(["${envvar:CMD}"], {"x": 1}, env={"CMD": "${args}"}) == ["--x=1"]
    # lower-case names are not envvar macros
    assert argv(["${envvar:lower}"], {}, env={"lower": "x"}) == []


def test_envvar_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("SWEEPQ_TEST_VAR", "yes")
    assert argv(["${envvar:SWEEPQ_TEST_VAR}"], {}) == ["yes"]


@pytest.mark.parametrize("evil", ["; rm -rf ~", "$(reboot)", "`id`", "a && b | c > /tmp/x", "'\"", "\n"])
def test_shell_metacharacters_stay_one_literal_argument(evil):
    assert argv(["${args}"], {"x": evil}) == [f"--x={evil}"]
    assert argv(["${args_no_equals}"], {"x": evil}) == ["--x", evil]
    assert argv([evil, "${program}"], {}) == [evil, "train.py"]


def test_program_missing_expands_to_nothing():
    assert render({}, {"a": 1}, sweep_id="S", run_id="R") == ["/usr/bin/env", "python", "--a=1"]


def test_args_json_file_path_and_writer(tmp_path: Path, monkeypatch):
    cfg = {
        "command": ["${env}", "${interpreter}", "${program}", "--file_path", "${args_json_file}"],
        "program": "p.py",
    }
    params = {"b": {"y": 2, "x": 1}, "a": 0.5}
    assert args_json_path("S", "R") == "wandb/sweep-S/config-R.json"
    assert args_json_path("S", "R", tmp_path) == str(tmp_path / "wandb/sweep-S/config-R.json")
    assert render(cfg, params, sweep_id="S", run_id="R", args_json_dir=tmp_path)[-1] == str(
        tmp_path / "wandb/sweep-S/config-R.json"
    )
    assert uses_args_json_file(cfg)
    written = write_args_json_file(params, sweep_id="S", run_id="R", args_json_dir=tmp_path, config=cfg)
    assert written == str(tmp_path / "wandb/sweep-S/config-R.json")
    assert Path(written).read_text() == '{"a": 0.5, "b": {"x": 1, "y": 2}}'
    # relative to the current directory by default
    monkeypatch.chdir(tmp_path)
    rel = write_args_json_file(params, sweep_id="S2", run_id="R2")
    assert rel == "wandb/sweep-S2/config-R2.json" and (tmp_path / rel).exists()


def test_args_json_file_only_written_for_the_exact_item(tmp_path: Path):
    cfg = {"command": ["python", "t.py", "--cfg=${args_json_file}"]}
    assert not uses_args_json_file(cfg)
    assert (
        write_args_json_file({"a": 1}, sweep_id="S", run_id="R", args_json_dir=tmp_path, config=cfg) is None
    )
    assert not (tmp_path / "wandb").exists()
