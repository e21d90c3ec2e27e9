import numpy as np
import pandas as pd
import pytest

from collabfilter import Ratings
from collabfilter.errors import DataError, RatingsFormatError


def write(tmp_path, text, name="r.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_header_and_titles(tmp_path):
    path = write(
        tmp_path,
        'u,i,r,t,name\n1,10,4,100,"Heat, The"\n2,10,3.5,200,"Heat, The"\n1,11,5,300,Up\n',
    )
    ratings = Ratings.from_csv(path, user="u", item="i", rating="r", timestamp="t", title="name")
    assert len(ratings) == 3 and ratings.n_users == 2 and ratings.n_items == 2
    assert ratings.rating.dtype == np.float32 and ratings.user_idx.dtype == np.int32
    assert ratings.timestamp.tolist() == [100, 200, 300]
    assert ratings.items.titles.tolist() == ["Heat, The", "Up"]
    assert ratings.scale.step == 0.5


def test_headerless_tsv_by_position_and_by_names(tmp_path):
    path = write(tmp_path, "1\t10\t4\t9\n2\t11\t2\t8\n", "u.data")
    by_position = Ratings.from_csv(path, sep="\t", header=False, user="0", item="1", rating="2")
    by_name = Ratings.from_csv(
        path, sep="\t", header=False, names=["a", "b", "c", "d"], user="a", item="b", rating="c"
    )
    assert by_position.rating.tolist() == by_name.rating.tolist() == [4.0, 2.0]


def test_multichar_separator_and_latin1(tmp_path):
    path = write(tmp_path, "1::10::4::9\n2::11::2::8\n", "ratings.dat", encoding="latin-1")
    ratings = Ratings.from_csv(
        path, sep="::", header=False, names=["u", "i", "r", "t"], user="u", item="i", rating="r",
        encoding="latin-1",
    )  # fmt: skip
    assert ratings.items.ids.tolist() == [10, 11]


def test_string_ids_are_kept_as_text(tmp_path):
    path = write(tmp_path, "user,item,rating\nalice,x1,3\nbob,x2,4\n")
    ratings = Ratings.from_csv(path)
    assert ratings.users.ids.tolist() == ["alice", "bob"]


@pytest.mark.parametrize(
    ("body", "column", "lines", "message"),
    [
        ("1,10,4\n2,11,abc\n3,12,5\n", "rating", [3], "is not a number at line 3: \\['abc'\\]"),
        ("1,10,4\n2,11,\n", "rating", [3], "missing rating"),
        ("1,10,4\n,11,3\n", "user", [3], "has no user id"),
        ("1,10,4\n2,11,9\n3,12,0\n", "rating", [3, 4], "outside the declared scale \\[1, 5\\]"),
        ("1,10,4\n2,11,inf\n", "rating", [3], "infinite"),
    ],
)
def test_bad_values_name_file_line_and_column(tmp_path, body, column, lines, message):
    path = write(tmp_path, "user,item,rating\n" + body)
    with pytest.raises(RatingsFormatError, match=message) as caught:
        Ratings.from_csv(path, scale=(1, 5))
    assert caught.value.column == column
    assert caught.value.lines == lines
    assert str(path) in str(caught.value)


def test_line_numbers_count_blank_lines_which_are_reported(tmp_path):
    path = write(tmp_path, "user,item,rating\n1,10,4\n\n2,11,x\n")
    with pytest.raises(RatingsFormatError) as caught:
        Ratings.from_csv(path)
    assert caught.value.lines == [4]
    fine = write(tmp_path, "user,item,rating\n1,10,4\n\n2,11,3\n", "ok.csv")
    ratings = Ratings.from_csv(fine)
    assert len(ratings) == 2 and ratings.report.blank_lines == 1


def test_many_offenders_are_summarised(tmp_path):
    body = "".join(f"{u},1,bad\n" for u in range(20))
    path = write(tmp_path, "user,item,rating\n" + body)
    with pytest.raises(RatingsFormatError, match=r"lines 2, 3, 4, 5, 6 \(and 15 more\)"):
        Ratings.from_csv(path)


def test_missing_column_lists_what_exists(tmp_path):
    path = write(tmp_path, "userId,movieId,stars\n1,2,3\n")
    with pytest.raises(DataError, match=r"missing column\(s\) user \('user'\).*found \['userId'"):
        Ratings.from_csv(path)


def test_empty_inputs(tmp_path):
    with pytest.raises(DataError, match="empty"):
        Ratings.from_csv(write(tmp_path, ""))
    with pytest.raises(DataError, match="no ratings"):
        Ratings.from_csv(write(tmp_path, "user,item,rating\n", "h.csv"))
    with pytest.raises(FileNotFoundError):
        Ratings.from_csv(tmp_path / "absent.csv")


def test_wrong_encoding_suggests_latin1(tmp_path):
    path = write(tmp_path, "user,item,rating,title\n1,2,3,Café\n", encoding="latin-1")
    with pytest.raises(RatingsFormatError, match="latin-1"):
        Ratings.from_csv(path, title="title")


def test_dataframe_errors_name_rows_and_timestamps_convert():
    frame = pd.DataFrame(
        {"u": [1, 2, 3], "i": [1, 1, 2], "r": [3.0, np.nan, 4.0], "when": [1, 2, 3]}
    )
    with pytest.raises(RatingsFormatError, match="at row 1"):
        Ratings.from_df(frame, user="u", item="i", rating="r")
    frame["r"] = [3.0, 4.0, 5.0]
    frame["when"] = pd.to_datetime(["2000-01-01", "2000-01-02", "2000-01-03"])
    ratings = Ratings.from_df(frame, user="u", item="i", rating="r", timestamp="when")
    assert ratings.timestamp.tolist() == [946684800, 946771200, 946857600]


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"user": [1, 2], "item": ["a", "b"], "rating": [1.0, 2.0]})
    original = Ratings.from_df(frame)
    path = original.to_parquet(tmp_path / "out" / "r.parquet")
    loaded = Ratings.from_parquet(path)
    assert loaded.to_frame().equals(original.to_frame())
    assert not list(path.parent.glob(".*tmp"))
