"""How the Bayesian family is fitted: the Gibbs chain, each sweep a row of the table."""

from __future__ import annotations

import torch
from torch import Tensor

from collabfilter import distributed
from collabfilter.config import FitConfig
from collabfilter.data.csr import SparseRows
from collabfilter.models.bayes.config import BayesConfig
from collabfilter.models.bayes.gibbs import run_gibbs
from collabfilter.models.bayes.module import BayesianMF
from collabfilter.models.family import FamilyModule, FitJob, FitOutcome
from collabfilter.progress import EpochRecord, EpochReporter


def fit_bayes(module: FamilyModule, job: FitJob, config: FitConfig) -> FitOutcome:
    """Run the chain; each sweep is a row of the table (running-average RMSE of the kept
    samples, squared in the loss columns), and the chain's kept samples become the
    model, of ``module``'s sizes. In a torch.distributed job each rank sums the Gram
    matrices and moments of its shard, and every rank draws the same samples."""
    if not isinstance(module, BayesianMF) or not isinstance(config, BayesConfig):
        raise TypeError(
            f"the Bayesian fit samples a BayesianMF by a BayesConfig, not "
            f"{type(module).__name__} by {type(config).__name__}"
        )
    data, valid, options = job.tensors, job.valid, job.options
    shard = None
    group = distributed.current()
    if group is not None:
        rows = torch.from_numpy(distributed.shard_rows(len(data), group, options.seed))
        shard = (data.user_idx[rows], data.item_idx[rows], data.rating[rows])
    records: list[EpochRecord] = []
    generator = torch.Generator(device=data.device).manual_seed(options.seed)
    scale = job.train.scale
    with EpochReporter(config.sweeps, 1, options.progress) as reporter:

        def on_sweep(sweep: int, train: float, valid_rmse: float | None, seconds: float) -> None:
            valid_loss = None if valid_rmse is None else valid_rmse**2
            epoch = job.first_epoch + sweep - 1
            record = EpochRecord(epoch, train**2, valid_loss, valid_rmse, seconds)
            records.append(record)
            reporter.advance(1)
            reporter.epoch_done(record)
            if job.on_epoch is not None:
                job.on_epoch(record)

        model = run_gibbs(
            data.user_idx, data.item_idx, data.rating, data.n_users, data.n_items, config,
            generator=generator, device=data.device,
            valid=None if valid is None else (valid.user_idx, valid.item_idx, valid.rating),
            rating_range=(scale.low, scale.high), on_sweep=on_sweep, shard=shard,
            n_factors=module.n_factors, implicit=module.implicit,
            user_features=feature_tensor(job.train.feature_rows("user"), data.device),
            item_features=feature_tensor(job.train.feature_rows("item"), data.device),
        )  # fmt: skip
    return FitOutcome(model, records)


def feature_tensor(rows: SparseRows | None, device: torch.device) -> Tensor | None:
    """Encoded feature rows (:meth:`~collabfilter.data.Ratings.feature_rows`) as a CSR
    tensor on ``device``."""
    return None if rows is None else rows.to_torch().to(device)
