"""Outputs a user can trust: special files written through, symlinks followed, umask modes,
one-line errors for OS failures, flags anywhere among overrides, hints in the form the user types."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from dpokit.cli import main
from dpokit.errors import DpokitError
from dpokit.outputs import staged_dir, write_file, write_jsonl

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------- the writer


def test_new_files_and_dirs_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path, umask_027):
    path = write_file(tmp_path / "sub" / "out.txt", "one")
    assert _mode(path) == 0o640 and _mode(path.parent) == 0o750
    os.chmod(path, 0o604)
    write_file(path, "two")
    assert path.read_text() == "two" and _mode(path) == 0o604
    with staged_dir(tmp_path / "model") as tmp:
        (tmp / "weights.bin").write_bytes(b"x")
        os.chmod(tmp / "weights.bin", 0o600)  # as safetensors and tempfile leave files
    assert _mode(tmp_path / "model") == 0o750 and _mode(tmp_path / "model" / "weights.bin") == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_symlink_is_followed_and_kept(tmp_path):
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    write_jsonl(link, [{"a": 1}])
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == '{"a": 1}\n'


def _read_fifo(path: Path, into: list) -> threading.Thread:
    def read():
        with open(path, "rb") as handle:
            into.append(handle.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_a_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list = []
    reader = _read_fifo(fifo, received)
    write_file(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("make_path, cause", [
    (lambda tmp: tmp / "a-file" / "out.jsonl", "Not a directory"),
    (lambda tmp: Path("/dev/full"), "No space left on device"),
    (lambda tmp: Path("/proc/no-such-dir/out.jsonl"), ""),
])
def test_os_errors_are_one_line_errors_naming_the_path(tmp_path, make_path, cause):
    (tmp_path / "a-file").write_text("x")
    path = make_path(tmp_path)
    with pytest.raises(DpokitError) as err:
        write_file(path, "data")
    assert str(path.parent if "proc" in str(path) else path).split("/out")[0] in str(err.value)
    assert cause in str(err.value)
    assert (tmp_path / "a-file").read_text() == "x"


# ---------------------------------------------------------------- commands


def test_convert_writes_through_a_fifo_and_follows_a_symlink(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list = []
    reader = _read_fifo(fifo, received)
    assert main(["data", "convert", str(DATA / "standard.jsonl"), "--out", str(fifo)]) == 0
    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    rows = [json.loads(line) for line in received[0].decode().splitlines()]
    assert rows and all(set(r) >= {"prompt", "chosen", "rejected"} for r in rows)

    target = tmp_path / "kept" / "pairs.jsonl"
    target.parent.mkdir()
    link = tmp_path / "pairs.jsonl"
    link.symlink_to(target)
    assert main(["data", "convert", str(DATA / "standard.jsonl"), "--out", str(link)]) == 0
    assert link.is_symlink() and len(target.read_text().splitlines()) == len(rows)


def test_an_output_under_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    code = main(["data", "convert", str(DATA / "standard.jsonl"), "--out", str(tmp_path / "a-file" / "o.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "a-file" in err and "Not a directory" in err


def test_generate_and_eval_write_through_special_files(tmp_path, tiny_model_dir, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hello\nName a fruit\n")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list = []
    reader = _read_fifo(fifo, received)
    assert main(["generate", tiny_model_dir, "--prompts", str(prompts), "--out", str(fifo),
                 "--max-new-tokens", "3", "--temperature", "0"]) == 0
    reader.join(timeout=30)
    assert len(received[0].decode().splitlines()) == 2 and stat.S_ISFIFO(os.stat(fifo).st_mode)
    code = main(["eval", tiny_model_dir, "--data", str(DATA / "standard.jsonl"), "--output", "/dev/full"])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "Traceback" not in err


def test_train_accepts_flags_among_overrides_and_an_unwritable_run_dir_is_one_line(tmp_path, tiny_model_dir, capsys,
                                                                                    monkeypatch, umask_027):
    from test_train import tiny_config, write_pairs
    from dpokit.config import dump_config

    monkeypatch.setenv("DPOKIT_HOME", str(tmp_path / "home"))
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    config = tmp_path / "run.yaml"
    config.write_text(dump_config(tiny_config(tiny_model_dir, pairs, tmp_path / "run")))
    assert main(["train", str(config), "--no-progress", "training.max_steps=1", "training.save_steps=1",
                 "training.report_to=[tensorboard]"]) == 0
    run = tmp_path / "run"
    # Everything the run wrote is readable by the group, as the umask asks (not 0600/0700).
    for path in [run, run / "final", run / "config.yaml", run / "metrics.jsonl", run / "final" / "adapter_model.safetensors",
                 run / "checkpoints" / "checkpoint-1" / "optimizer.pt", run / "plots" / "loss.png", run / "README.md",
                 *(tmp_path / "home" / "refcache").iterdir()]:
        assert _mode(path) == (0o750 if path.is_dir() else 0o640), path
    (tmp_path / "a-file").write_text("x")
    code = main(["train", str(config), f"output.output_dir={tmp_path / 'a-file' / 'run'}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "a-file" in err


def test_interrupted_training_says_how_to_resume(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from test_train import tiny_config, write_pairs
    from dpokit import recipe
    from dpokit.config import dump_config

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    config = tmp_path / "run.yaml"
    config.write_text(dump_config(tiny_config(tiny_model_dir, pairs, tmp_path / "run")))
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-3"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe, "train", interrupted)
    assert main(["train", str(config)]) == 130
    err = capsys.readouterr().err
    assert "checkpoint-3" in err and "training.resume_from_checkpoint=latest" in err and str(tmp_path / "run") in err


def test_hints_name_the_flag_on_the_command_line_and_the_key_in_a_config(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{not json\n')
    assert main(["data", "inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "--skip-bad-records" in err and "data.skip_bad_records" not in err
    with pytest.raises(DpokitError, match="data.skip_bad_records=true"):
        from dpokit.data.load import load_preference_data

        load_preference_data([str(bad)])


def test_a_config_data_path_relative_to_the_config_folder_gets_a_hint(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "configs"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "pairs.jsonl").write_text((DATA / "standard.jsonl").read_text())
    (folder / "run.yaml").write_text("data:\n  train_files: [data/pairs.jsonl]\n")
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(folder / "run.yaml")]) == 2
    err = capsys.readouterr().err
    assert "working directory" in err and str(folder / "data" / "pairs.jsonl") in err


def test_pku_saferlhf_reports_which_column_chose(capsys):
    assert main(["data", "inspect", str(DATA / "pku_saferlhf.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["choices"] == {"pku_saferlhf: chosen answer by better_response_id": 2}
    assert main(["data", "inspect", str(DATA / "pku_saferlhf.jsonl"), "--columns", "chosen_id=safer_response_id"]) == 0
    assert "chosen answer by safer_response_id (2 records)" in capsys.readouterr().out
