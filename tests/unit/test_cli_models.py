"""The command line over model files: train, evaluate, predict, recommend, similar,
interpret and lr-find, with rich output, --json, and an exit code per failure."""

import json

import pandas as pd
import pytest

from collabfilter import generate_ratings
from collabfilter.cli import EXIT_DATA, EXIT_MISSING, EXIT_MODEL_FILE, EXIT_UNKNOWN, main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A synthetic data file with titles, and a model trained on it by the CLI."""
    folder = tmp_path_factory.mktemp("cli")
    synthetic = generate_ratings(200, 300, 9000, n_factors=3, seed=6)
    titles = {k: f"Movie {k} ({1900 + k % 100})" for k in range(1, 301)}
    titles[7] = "Star Wars (1977)"
    frame = synthetic.ratings.with_titles(titles).to_frame()
    data = folder / "ratings.csv"
    frame.to_csv(data, index=False)
    model = folder / "model.cf"
    assert main(["train", str(data), "--title", "title", "--epochs", "4", "--out", str(model)]) == 0
    return data, model, frame


def run_json(capsys, argv):
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_shows_epochs_and_writes_the_model(files, capsys):
    data, model, _ = files
    assert model.is_file()
    document = run_json(capsys, ["train", str(data), "--epochs", "2", "--wd", "0.2", "--bs", "512"])
    assert [row["epoch"] for row in document["history"]] == [1, 2]
    assert document["validation"][0]["model"] == "dot_bias"
    assert document["model_file"] is None and "decay_multiplier" not in document["metrics"]


def test_evaluate_beside_baselines(files, capsys):
    data, model, _ = files
    document = run_json(capsys, ["evaluate", str(model), str(data), "--title", "title"])
    results = {row["model"]: row["rmse"] for row in document["results"]}
    assert document["ratings"] == 9000 and document["unknown_pairs"] == 0
    assert results["model"] < results["global mean"]


def test_predict_a_file_of_pairs_by_raw_id(files, tmp_path, capsys):
    _, model, frame = files
    pairs = frame[["user", "item"]].head(5)
    path = tmp_path / "pairs.csv"
    pairs.to_csv(path, index=False)
    out = tmp_path / "predicted.parquet"
    assert main(["predict", str(model), str(path), "--out", str(out)]) == 0
    written = pd.read_parquet(out)
    assert list(written.columns) == ["user", "item", "prediction"] and len(written) == 5
    document = run_json(capsys, ["predict", str(model), str(path)])
    assert [row["prediction"] for row in document["predictions"]] == pytest.approx(
        written.prediction.tolist()
    )
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("user,item\n1,7\n99999,7\n")
    assert main(["predict", str(model), str(unknown)]) == EXIT_UNKNOWN
    assert "99999" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["predict", str(model), str(unknown), "--unknown", "nan", "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["predictions"][1]["prediction"] is None  # null, never NaN
    assert printed.err.startswith("warning: 1 of 2 pairs have an unknown user")


def test_recommend_for_known_and_new_users(files, capsys):
    _, model, _ = files
    known = run_json(capsys, ["recommend", str(model), "--user", "1", "-n", "4"])
    assert known["user"] == 1 and [row["rank"] for row in known["items"]] == [1, 2, 3, 4]
    new = run_json(capsys, ["recommend", str(model), "--rated", "star wars=5",
                            "--rated", "Movie 8 (1908)=1", "-n", "3"])  # fmt: skip
    assert len(new["items"]) == 3 and 7 not in [row["item"] for row in new["items"]]
    assert main(["recommend", str(model), "--rated", "star wars"]) == EXIT_DATA
    assert main(["recommend", str(model), "--user", "007"]) == EXIT_UNKNOWN
    assert main(["recommend", str(model), "--rated", "no such film=4"]) == EXIT_UNKNOWN


def test_similar_and_interpret(files, tmp_path, capsys):
    _, model, _ = files
    near = run_json(capsys, ["similar", str(model), "star wars", "-n", "5"])
    assert near["item"] == 7 and len(near["items"]) == 5
    capsys.readouterr()
    assert main(["similar", str(model), "star wars"]) == 0
    assert "nearest to 'Star Wars (1977)'" in capsys.readouterr().out
    out = tmp_path / "interpret"
    document = run_json(capsys, ["interpret", str(model), "--out", str(out), "--among", "100"])
    assert len(document["lowest_biases"]) == 15 and len(document["components"]) == 3
    assert (out / "item_map.png").stat().st_size > 10_000 and (out / "item_biases.csv").is_file()


def test_lr_find(files, tmp_path, capsys):
    data, _, _ = files
    plot = tmp_path / "lr.png"
    document = run_json(capsys, ["lr-find", str(data), "--plot", str(plot)])
    assert 0 < document["suggestion"] < 10 and plot.is_file()


def test_failures_are_one_line_with_their_own_code(files, tmp_path, capsys):
    _, model, _ = files
    capsys.readouterr()
    assert main(["similar", str(tmp_path / "absent.cf"), "x"]) == EXIT_MISSING
    broken = tmp_path / "broken.cf"
    broken.write_bytes(model.read_bytes()[:500])
    assert main(["similar", str(broken), "x"]) == EXIT_MODEL_FILE
    assert main(["similar", str(model), "zzqx nothing"]) == EXIT_UNKNOWN
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error:") for line in errors)


def test_train_and_query_a_bayes_model(files, tmp_path, capsys):
    data, _, _ = files
    model = tmp_path / "bayes.cf"
    command = ["train", str(data), "--title", "title", "--model", "bayes", "--epochs", "15",
               "--factors", "4", "--out", str(model)]  # fmt: skip
    document = run_json(capsys, command)
    assert len(document["history"]) == 15 and document["validation"][0]["rmse"] < 1.1
    picks = run_json(capsys, ["recommend", str(model), "--user", "3", "-n", "3"])
    assert all(row["+/- std"] > 0 for row in picks["items"])
    assert main(["train", str(data), "--model", "bayes", "--lr", "0.1"]) == 2  # usage


def test_train_includes_the_ratings_a_service_stored(files, tmp_path, capsys):
    import collabfilter as cf
    from collabfilter.serve import RatingStore

    data, _, _ = files
    database = tmp_path / "ratings.sqlite"
    store = RatingStore(database)
    store.add(9001, [(7, 5.0), (8, 4.0), (9, 1.0)])  # a user the data does not have
    store.close()
    model = tmp_path / "next.cf"
    command = ["train", str(data), "--title", "title", "--epochs", "2", "--wd", "0.1",
               "--ratings-db", str(database), "--out", str(model)]  # fmt: skip
    assert main(command) == 0
    retrained = cf.load_model(model)
    assert 9001 in retrained.users.ids.tolist()
    assert set(retrained.interactions.items_of(retrained.users.index_of(9001))[0]) == set(
        retrained.items.index([7, 8, 9])
    )
    assert main([*command[:-4], "--ratings-db", str(tmp_path / "absent.sqlite")]) == EXIT_MISSING


def test_serve_refuses_bad_settings_with_one_line(files, tmp_path, capsys):
    _, model, _ = files
    capsys.readouterr()
    assert main(["serve", str(tmp_path / "absent.cf")]) == EXIT_MISSING
    assert main(["serve", str(model), "--host", "0.0.0.0"]) == 2  # beyond loopback, no token
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "token" in errors[1]
