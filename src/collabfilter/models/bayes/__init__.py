"""The Bayesian family: matrix factorisation with implicit feedback, fitted by Gibbs
sampling; its model is the average of the kept samples."""

from __future__ import annotations

from collabfilter.data import RatingScale
from collabfilter.models.bayes.config import RECIPES, BayesConfig, BayesMFConfig
from collabfilter.models.bayes.fit import fit_bayes
from collabfilter.models.bayes.gibbs import GibbsSampler, run_gibbs
from collabfilter.models.bayes.module import BayesianMF
from collabfilter.models.family import Family


def build(config: BayesMFConfig, n_users: int, n_items: int, scale: RatingScale) -> BayesianMF:
    """An empty model of the config's sizes (it holds samples once the chain has run)."""
    return BayesianMF(n_users, n_items, 1, config.n_factors, config.implicit)


FAMILY = Family(
    name="bayes",
    model_config=BayesMFConfig,
    fit_config=BayesConfig,
    modules=(BayesianMF,),
    recipes=RECIPES,
    build=build,
    fit=fit_bayes,
    uses_features=True,
)

__all__ = ["FAMILY", "BayesConfig", "BayesMFConfig", "BayesianMF", "GibbsSampler", "run_gibbs"]
