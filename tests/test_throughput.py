"""genlab.training.throughput: the time an epoch should take comes from this very configuration on
this device (issue 24, item 9): a probe of a few real training steps in a process of its
own, remembered per configuration, and the logged steps of runs of the same configuration
here (not another width, batch size or device, not a shipped run, not the steps a resumed
run made before its resume)."""
from __future__ import annotations

import dataclasses
import json
import math
import sys

from genlab.runs import jobs, store
from genlab.training import throughput
from test_jobs import TINY


def test_a_probe_times_this_configuration_in_its_own_process_once(data_root, monkeypatch):
    """Issue 24, item 9: a few real training steps of the chosen model and options, in a
    process of its own (the training process's device and threads), remembered per
    (model, config, device): asked again, no second process; another width, another probe."""
    model_cfg, train_cfg = jobs.check_train("vae", "mnist", *TINY, root=data_root, build=False)
    rate, steps = throughput.probe_throughput("vae", model_cfg, train_cfg, wait=True)
    assert math.isfinite(rate) and rate > 0 and 1 <= steps <= throughput.PROBE_STEPS
    started = []
    real_popen = throughput.subprocess.Popen
    monkeypatch.setattr(jobs.subprocess, "Popen", lambda *a, **k: started.append(a) or real_popen(*a, **k))
    assert throughput.probe_throughput("vae", model_cfg, train_cfg) == (rate, steps) and not started
    wider = dataclasses.replace(model_cfg, hidden=(48,))
    assert throughput.throughput_key("vae", wider, train_cfg) != throughput.throughput_key("vae", model_cfg, train_cfg)
    assert throughput.probe_throughput("vae", wider, train_cfg, wait=True)[0] > 0 and len(started) == 1
    assert "from genlab.training.throughput import probe_main" in started[0][0][-2]


def test_a_probe_that_fails_says_why_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["-c", json.dumps({"model": "no-such-model", "model_config": {},
                                                        "train": {}})])
    throughput.probe_main()
    said = json.loads(capsys.readouterr().out)
    assert "unknown model" in said["error"] and "\n" not in said["error"]


def test_measured_throughput_counts_only_runs_of_this_configuration(tmp_path, data_root):
    model_cfg, train_cfg = jobs.check_train("vae", "mnist", *TINY, root=data_root, build=False)
    """Not a run of another width, batch size or device, nor a shipped run (the recipe may
    have trained it on another machine), nor a resumed run's steps from before its resume."""
    def steps(rate, seconds=0.0):  # the first of a process's steps, its warm-up, is left out
        return [{"event": "step", "split": "train", "step": i, "seconds": seconds + i,
                 "images_per_s": rate if i else 1.0} for i in range(4)]

    wider = dataclasses.replace(model_cfg, hidden=(512,))
    for name, cfg, st, records in [
            ("same", model_cfg, {"device": "cpu"}, steps(900)),
            ("resumed", model_cfg, {"device": "cpu"}, steps(99999, seconds=50) + steps(1100)),
            ("wider", wider, {"device": "cpu"}, steps(50)),
            ("on-gpu", model_cfg, {"device": "cuda:0 (a GPU)"}, steps(90000)),
            ("shipped", model_cfg, {"device": "cpu", "shipped_from": "x"}, steps(7243))]:
        run = jobs.create_run(tmp_path, name, "vae", cfg, train_cfg)
        store.atomic_write_json(run / store.STATUS, {"state": "done", **st})
        (run / store.METRICS).write_text("".join(json.dumps(r) + "\n" for r in records))
    assert throughput.run_throughput(tmp_path / "same") == (900, 3)
    assert throughput.run_throughput(tmp_path / "resumed") == (1100, 3)  # its latest process's steps
    assert throughput.measured_throughput("vae", model_cfg, train_cfg, [tmp_path]) == (1100, 2)
    other = dataclasses.replace(train_cfg, batch_size=7)
    assert throughput.measured_throughput("vae", model_cfg, other, [tmp_path]) is None
