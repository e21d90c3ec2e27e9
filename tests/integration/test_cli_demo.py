import pytest

from collabfilter.cli import main

pytestmark = pytest.mark.realdata


def test_demo_prints_the_ml100k_summary(ml100k_dir, capsys):
    assert main(["demo", "--data", str(ml100k_dir)]) == 0
    out = capsys.readouterr().out
    assert "100,000 ratings, 943 users, 1,682 items" in out
    assert "Rating histogram" in out and "34,174" in out
    assert "Crosstab" in out and "50=Star Wars (1977)" in out
