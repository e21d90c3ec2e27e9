"""Training by stochastic gradient steps, for any family whose module names its row
tables: the config, the row-wise optimizer, schedules, epoch orders, decay rules, the
loop and the generic (autograd) step."""

from collabfilter.sgd.config import OptimizerName, ScheduleName, TrainConfig
from collabfilter.sgd.fit import fit_sgd
from collabfilter.sgd.loop import LoopResult, run_epochs, sweep_rates
from collabfilter.sgd.optim import RowOptimizer
from collabfilter.sgd.steps import RowTrained, Steps, StepsFactory, autograd_steps

__all__ = [
    "LoopResult",
    "OptimizerName",
    "RowOptimizer",
    "RowTrained",
    "ScheduleName",
    "Steps",
    "StepsFactory",
    "TrainConfig",
    "autograd_steps",
    "fit_sgd",
    "run_epochs",
    "sweep_rates",
]
