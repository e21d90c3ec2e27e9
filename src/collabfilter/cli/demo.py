"""The quick-start run behind ``make demo``: load, split, train, report.

It only calls public library functions and renders what they return, so it doubles
as a worked example of the API.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.text import Text

from collabfilter import __version__, interpret, plots, recommend
from collabfilter.cli.messages import printable
from collabfilter.cli.tables import frame_table, print_summary
from collabfilter.config import RunOptions
from collabfilter.data import Ratings, Split, load_movielens, split_random
from collabfilter.evaluation.baselines import standard_baselines
from collabfilter.evaluation.reports import error_breakdown, show_results
from collabfilter.evaluation.topn import evaluate_ranking
from collabfilter.metrics import error_metrics
from collabfilter.models import RECIPES, DotConfig, TrainConfig
from collabfilter.progress import HEADER, EpochRecord, format_record
from collabfilter.train import Learner, collab_learner


def train_with_table(
    console: Console, split: Split, model: str = "dot_bias", *, seed: int = 42
) -> tuple[Learner, float]:
    """Train a recipe, printing the epoch table as it goes; returns (learner, seconds).

    The validation column is for information: the recipe's automatic choices are made
    on ratings carved out of the training part and ``keep_best`` is off, so nothing is
    chosen by looking at the held-out part.
    """
    model_config, recipe = RECIPES[model]

    def print_row(record: EpochRecord) -> None:
        console.print(format_record(record), highlight=False)

    learner = collab_learner(
        split.train,
        split.valid,
        model=model_config,
        config=recipe,
        options=RunOptions(seed=seed, progress=False),
        on_epoch=print_row,
    )
    console.print(HEADER, style="bold", highlight=False)
    start = time.perf_counter()
    learner.fit_recipe()
    return learner, time.perf_counter() - start


def metrics_table(learner: Learner, split: Split, label: str, seconds: float) -> pd.DataFrame:
    """RMSE/MAE of the model beside the baselines, on the validation part."""
    truth = split.valid.rating
    rows = [{"model": label, **error_metrics(learner.predict_ratings(split.valid), truth),
             "fit s": seconds}]  # fmt: skip
    for name, baseline in standard_baselines().items():
        start = time.perf_counter()
        baseline.fit(split.train)
        elapsed = time.perf_counter() - start
        rows.append({"model": name, **error_metrics(baseline.predict_ratings(split.valid), truth),
                     "fit s": elapsed})  # fmt: skip
    return pd.DataFrame(rows)


NEW_USER = {
    "Star Wars (1977)": 5,
    "Raiders of the Lost Ark (1981)": 5,
    "Terminator, The (1984)": 4,
    "Sleepless in Seattle (1993)": 1,
}
"""The demo's brand-new user: likes classic action and science fiction."""


def _print_frame(console: Console, frame: pd.DataFrame, title: str, digits: int = 3) -> None:
    console.print()
    console.print(frame_table(frame, title, digits=digits))


def _report_interpretation(console: Console, learner: Learner) -> None:
    biases = interpret.item_biases(learner, among=1000)
    columns = ["title", "bias", "mean rating", "ratings"]
    _print_frame(
        console, biases.head(15)[columns], "Lowest item biases (among the 1000 most rated)"
    )
    _print_frame(
        console, biases.tail(15)[::-1][columns], "Highest item biases (among the 1000 most rated)"
    )
    pca = interpret.item_pca(learner, 3, among=1000)
    for component in range(3):
        ends = interpret.pca_extremes(pca, component, n=8)
        share = pca.explained[component]
        _print_frame(
            console, ends, f"Principal component {component + 1} of item factors ({share:.0%})"
        )
    similar = interpret.similar_items(learner, "Star Wars (1977)", k=10)
    _print_frame(
        console, similar, 'The 10 titles nearest to "Star Wars (1977)" (cosine of factors)'
    )


def _report_recommendations(console: Console, learner: Learner) -> None:
    user = learner.users.ids[0]
    picks = recommend.recommend(learner, [user], k=10, min_ratings=20).to_frame(learner)
    _print_frame(
        console,
        picks.drop(columns="user"),
        f"10 recommendations for user {user} (items with >= 20 ratings)",
    )
    liked = ", ".join(f"{title}: {stars}" for title, stars in NEW_USER.items())
    fresh = recommend.recommend_new_user(learner, NEW_USER, k=10, min_ratings=20)
    _print_frame(console, fresh, f"10 recommendations for a new user who rated {liked}")


def _report_ranking(console: Console, learner: Learner, split: Split) -> None:
    # The trained model on its own validation part: a second fit on a per-user
    # hold-out (benchmarks/bench_ranking.py) would lengthen the demo.
    table = evaluate_ranking(learner, split, ks=(10, 20), relevance=4.0)
    shown = table[["scorer", "k", "ndcg", "recall", "precision", "map", "hit_rate", "coverage"]]
    _print_frame(
        console, shown,
        "Top-N on the validation part (hits: held-out ratings >= 4; seen items excluded)",
        digits=4,
    )  # fmt: skip


def _draw_plots(learner: Learner, valid: Ratings, out: Path) -> list[Path]:
    """The three plots that tell most (the learning-rate finder and rating distribution
    plots exist too)."""
    pca = interpret.item_pca(learner, 2, among=1000)
    return [
        plots.plot_losses(learner.history_frame(), out / "loss_curves.png"),
        plots.plot_predicted_vs_actual(
            learner.predict_ratings(valid), valid.rating, out / "predicted_vs_actual.png"
        ),
        plots.plot_item_map(pca, out / "item_map.png"),
    ]


def run_demo(
    console: Console, *, data: str | Path | None = None, out: Path = Path("out/demo")
) -> int:
    """The whole quick-start run; returns the exit code."""
    start = time.perf_counter()
    console.rule(f"collabfilter {__version__} demo: MovieLens 100K")
    ratings: Ratings = load_movielens("ml-100k", path=data)
    print_summary(console, ratings, sample=5)
    split = split_random(ratings, 0.1, seed=42)
    console.print(Text.assemble("\n", ("split", "bold"), f" {split.report}"))
    model_config, recipe = RECIPES["dot_bias"]
    assert isinstance(model_config, DotConfig) and isinstance(recipe, TrainConfig)
    console.print(
        Text.assemble(
            "\n",
            ("Training DotProductBias", "bold"),
            f" ({model_config.n_factors} factors, {recipe.epochs} epochs, batch "
            f"{recipe.batch_for(len(split.train))}, per-rating SGD, one-cycle lr {recipe.lr}, "
            "decay strength chosen on carved training ratings)",
        )
    )
    learner, seconds = train_with_table(console, split)
    if learner.decay_choice is not None:
        console.print(f"note: {learner.decay_choice.describe()}", highlight=False)
    table = metrics_table(learner, split, "DotProductBias", seconds)
    _print_frame(console, table, "Validation error beside the baselines", digits=4)
    best = table.iloc[0]
    console.print(
        f"\nfinal validation RMSE {best['rmse']:.4f}, MAE {best['mae']:.4f} "
        f"(global mean: RMSE {table.iloc[1]['rmse']:.4f}); fit {seconds:.2f} s"
    )
    _print_frame(console, show_results(learner, split.valid, 8), "Predictions beside truth")
    breakdown = error_breakdown(learner, split.valid)["by item popularity"]
    _print_frame(console, breakdown, "Validation error by the item's number of training ratings")
    _report_interpretation(console, learner)
    _report_recommendations(console, learner)
    _report_ranking(console, learner, split)
    written = _draw_plots(learner, split.valid, out)
    names = ", ".join(p.name for p in written)
    console.print(printable(f"\nplots written to {out.resolve()}/: {names}"))
    console.print(f"\ndemo finished in {time.perf_counter() - start:.1f} s", style="dim")
    return 0
