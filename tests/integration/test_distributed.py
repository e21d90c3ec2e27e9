"""Data-parallel training with torch.distributed: two processes on 127.0.0.1 (gloo)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import collabfilter as cf
from collabfilter import split_random
from collabfilter.config import RunOptions
from collabfilter.models import RECIPES
from collabfilter.train import collab_learner

pytestmark = pytest.mark.realdata


def torchrun(tmp_path, *arguments, timeout=300):
    """``torchrun --nproc-per-node 2 --standalone -m collabfilter ...``, one thread a rank."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--standalone", "-m", "collabfilter", *arguments]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_processes_train_the_default_model_as_one(ml100k, ml100k_dir, tmp_path):
    model_file = tmp_path / "model.cf"
    done = torchrun(tmp_path, "train", "ml-100k", "--data", str(ml100k_dir), "--wd", "0.1",
                    "--out", str(model_file), "--json")  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])  # rank 0 alone prints
    assert report["processes"] == 2 and len(report["parameters_sha256"]) == 64
    split = split_random(ml100k, 0.1, seed=42)
    config = cf.load_model(model_file).config
    assert config.weight_decay == 0.1 and not config.tune_decay
    single = collab_learner(split.train, None, config=config, options=RunOptions(progress=False))
    single.fit_recipe()
    distributed = cf.load_model(model_file)
    errors = {
        name: float(
            np.sqrt(np.mean((model.predict_ratings(split.valid) - split.valid.rating) ** 2))
        )
        for name, model in (("single", single), ("distributed", distributed))
    }
    assert abs(errors["distributed"] - errors["single"]) < 0.005, errors
    assert errors["distributed"] < 0.905
    assert RECIPES["dot_bias"][0].n_factors == distributed.model.user_factors.shape[1]


def test_two_processes_sample_the_bayesian_model_as_one(ml100k, ml100k_dir, tmp_path):
    """Each rank sums its shard's Gram matrices and moments and the ranks add them: the
    chain is the single-process chain, to floating-point order."""
    model_file = tmp_path / "bayes.cf"
    done = torchrun(tmp_path, "train", "ml-100k", "--data", str(ml100k_dir), "--model", "bayes",
                    "--epochs", "25", "--out", str(model_file), "--json")  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["processes"] == 2 and len(report["history"]) == 25
    split = split_random(ml100k, 0.1, seed=42)
    single = collab_learner(split.train, None, model="bayes",
                            config=cf.load_model(model_file).config,
                            options=RunOptions(progress=False))  # fmt: skip
    single.fit_recipe()
    distributed = cf.load_model(model_file)
    assert np.allclose(distributed.predict_ratings(split.valid),
                       single.predict_ratings(split.valid), atol=1e-3)  # fmt: skip
