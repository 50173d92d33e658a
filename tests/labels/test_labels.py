"""The labels stage: manual CSV parsing (every problem reported with its line, nothing written),
merging policy, outputs and their schema."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.core.layout import PROB_PREFIX
from pipeline.labels.manual import ManualLabelsError
from pipeline.labels.stage import labels
from pipeline.params import LabelsParams, PathsParams, VocabularyParams

VOCAB = VocabularyParams(groups={"hair_color": {"blonde": "blonde hair", "brown": "brown hair", "grey": "grey hair"},
                                 "hair_style": {"long": "long hair", "twin_tail": "twintails"}},
                         binary={"smile": "smile", "glasses": "glasses"})
FACES = ["aaaa_0", "aaaa_1", "bbbb_0", "cccc_0"]
MD5 = {"aaaa_0": "a" * 32, "aaaa_1": "a" * 32, "bbbb_0": "b" * 32, "cccc_0": "c" * 32}
# tagger probabilities per face (tags absent here are 0.05)
PROBS = {"aaaa_0": {"blonde hair": 0.9, "brown hair": 0.3, "long hair": 0.6, "smile": 0.8},
         "aaaa_1": {"brown hair": 0.2, "grey hair": 0.1, "twintails": 0.95, "glasses": 0.3},
         "bbbb_0": {"grey hair": 0.5, "blonde hair": 0.45, "smile": 0.1}}  # cccc_0 was not tagged


@pytest.fixture
def world(tmp_path):
    faces, raw = tmp_path / "faces", tmp_path / "raw"
    faces.mkdir()
    raw.mkdir()
    pd.DataFrame({"face_id": FACES, "md5": [MD5[f] for f in FACES], "path": [f"{f}.png" for f in FACES]}).to_parquet(faces / "index.parquet")
    pd.DataFrame({"md5": ["a" * 32, "b" * 32, "c" * 32], "path": ["a" * 32 + ".jpg", "b" * 32 + ".png", "c" * 32 + ".png"],
                  "origin": ["/pics/alice.jpg", "/pics/bob.png", "/pics/carol.png"]}).to_parquet(raw / "manifest.parquet")
    rows = [{"face_id": f, "content": "x", "tagged_with": "k",
             **{PROB_PREFIX + t: PROBS[f].get(t, 0.05) for t in VOCAB.tags()}, "tags": [], "tag_probs": []} for f in PROBS]
    pd.DataFrame(rows).to_parquet(tmp_path / "tags.parquet")
    return tmp_path


def run(world, csv: str | bytes | None, **kw):
    manual = world / "manual.csv"
    if csv is not None:
        manual.write_bytes(csv if isinstance(csv, bytes) else csv.encode())
    params = LabelsParams(manual=str(manual), **kw)
    paths = PathsParams(raw=str(world / "raw"), faces=str(world / "faces"), tags=str(world / "tags.parquet"),
                        labels=str(world / "labels.parquet"), labels_vocab=str(world / "vocab.json"),
                        label_conflicts=str(world / "conflicts.csv"))
    result = labels(params, VOCAB, paths)
    return result, pd.read_parquet(world / "labels.parquet").set_index("face_id", drop=False)


def test_tagger_only(world):
    result, t = run(world, None)
    assert t["face_id"].tolist() == FACES
    assert t.loc["aaaa_0", "hair_color"] == "blonde" and t.loc["aaaa_0", "source_hair_color"] == "i2v"
    assert t.loc["aaaa_1", "hair_color"] == "unknown" and t.loc["aaaa_1", "source_hair_color"] == "none"  # best 0.2 < 0.25
    assert t.loc["bbbb_0", "hair_color"] == "grey"  # most likely value of the group
    assert t.loc["aaaa_0", "smile"] == "yes" and t.loc["aaaa_1", "glasses"] == "yes" and t.loc["bbbb_0", "smile"] == "no"
    assert (t.loc["cccc_0", ["hair_color", "hair_style", "smile", "glasses"]] == "unknown").all()
    assert t.loc["aaaa_0", "multi_hot"].tolist() == [1, 0, 0, 1, 0, 1, 0]
    assert t.loc["cccc_0", "multi_hot"].tolist() == [0] * 7
    vocab = json.loads((world / "vocab.json").read_text())
    assert vocab["multi_hot"] == ["hair_color=blonde", "hair_color=brown", "hair_color=grey", "hair_style=long",
                                  "hair_style=twin_tail", "smile", "glasses"]
    assert result.balance["hair_color"] == {"unknown": 2, "blonde": 1, "grey": 1}
    assert list(t.columns) == ["face_id", "hair_color", "hair_style", "smile", "glasses", "multi_hot",
                               "source_hair_color", "source_hair_style", "source_smile", "source_glasses"]


def test_manual_columns_override_and_conflicts_are_reported(world):
    csv = "face_id,hair_color,hair_style,smile,glasses\naaaa_0,Brown_Hair,,no,\ncccc_0,gray,twin tails,yes,0\n"
    result, t = run(world, csv)
    assert t.loc["aaaa_0", "hair_color"] == "brown" and t.loc["aaaa_0", "source_hair_color"] == "manual"
    assert t.loc["aaaa_0", "hair_style"] == "long" and t.loc["aaaa_0", "source_hair_style"] == "i2v"
    assert t.loc["cccc_0", ["hair_color", "hair_style", "smile", "glasses"]].tolist() == ["grey", "twin_tail", "yes", "no"]
    conflicts = pd.read_csv(world / "conflicts.csv")
    assert conflicts[["face_id", "attribute", "manual", "i2v", "line"]].values.tolist() == [
        ["aaaa_0", "hair_color", "brown", "blonde", 2], ["aaaa_0", "smile", "no", "yes", 2]]
    assert result.conflicts == 2 and result.manual_faces == 2


def test_prefer_i2v_keeps_manual_only_where_the_tagger_has_nothing(world):
    csv = "face_id,hair_color\naaaa_0,brown\naaaa_1,grey\n"
    _, t = run(world, csv, precedence=["i2v", "manual"])
    assert t.loc["aaaa_0", "hair_color"] == "blonde" and t.loc["aaaa_1", "hair_color"] == "grey"
    assert t.loc["aaaa_1", "source_hair_color"] == "manual"


def test_tags_column_md5_and_file_keys(world):
    csv = "md5,tags\n" + "A" * 32 + ",Grey_Hair; smile\n"  # md5 keys label every face of the source
    _, t = run(world, csv)
    assert t.loc[["aaaa_0", "aaaa_1"], "hair_color"].tolist() == ["grey", "grey"]
    assert t.loc["aaaa_1", "smile"] == "yes" and t.loc["aaaa_1", "glasses"] == "yes"  # not listed: tagger's value
    _, t = run(world, "file,hair_color\nbob.png,blonde\ncccc_0.png,brown\n")
    assert t.loc["bbbb_0", "hair_color"] == "blonde" and t.loc["cccc_0", "hair_color"] == "brown"


def test_min_known_drops_faces(world):
    result, t = run(world, None, min_known=2)
    assert "cccc_0" not in t.index and result.dropped >= 1 and len(t) == result.faces


def assert_problems(world, csv, *expected):
    (world / "labels.parquet").write_text("previous output")
    with pytest.raises(ManualLabelsError) as e:
        run(world, csv)
    for text in expected:
        assert text in str(e.value), str(e.value)
    assert (world / "labels.parquet").read_text() == "previous output"  # untouched
    assert not (world / "vocab.json").exists() and not (world / "conflicts.csv").exists()
    assert [p.name for p in world.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers
    return e.value


def test_unknown_ids(world):
    assert_problems(world, "face_id,hair_color\naaaa_0,blonde\nzzzz_9,brown\naaaa_2,grey\n",
                    "line 3: unknown face_id 'zzzz_9'", "line 4: unknown face_id 'aaaa_2' (did you mean 'aaaa_1', 'aaaa_0'")


def test_unknown_tags_and_values(world):
    assert_problems(world, "face_id,tags,hair_color,smile\naaaa_0,blond hair;  hat ,,\nbbbb_0,,pinkk,maybe\n",
                    "line 2: unknown tag 'hat'", "line 3: hair_color: unknown value 'pinkk'", "line 3: smile: 'maybe' is not yes/no")


def test_duplicates_and_two_values_for_one_group(world):
    err = assert_problems(world, "face_id,hair_color,tags\naaaa_0,blonde,\nbbbb_0,,\naaaa_0,brown,\ncccc_0,blonde,brown hair\n",
                          "line 4: face aaaa_0 is already labelled on line 2 (duplicate)",
                          "line 5: hair_color given as both 'blonde' and 'brown'")
    assert len(err.problems) == 2


def test_duplicate_through_another_key(world):
    assert_problems(world, "md5,hair_color\n" + "a" * 32 + ",blonde\n" + "A" * 32 + ",brown\n",
                    "line 3: face aaaa_0 is already labelled on line 2", "line 3: face aaaa_1 is already labelled on line 2")


def test_bad_encoding_and_field_counts(world):
    data = b"face_id,hair_color\naaaa_0,blonde\n" + b"bbbb_0,gr\xe9y\n" + b"cccc_0,brown,extra\n"
    assert_problems(world, data, "line 3: not UTF-8 (byte 0xe9 at column 10)", "line 4: 3 fields, the header has 2")


def test_bad_header(world):
    assert_problems(world, "face,hair_colour\naaaa_0,blonde\n", "needs exactly one key column",
                    "unknown column 'hair_colour' (did you mean 'hair_color'")


def test_quoted_multiline_fields_keep_line_numbers(world):
    csv = 'face_id,tags\naaaa_0,"blonde hair,\nsmile"\nnobody,grey hair\n'
    assert_problems(world, csv, "line 4: unknown face_id 'nobody'")


def test_missing_tags_file_or_vocabulary_columns(world):
    (world / "tags.parquet").unlink()
    with pytest.raises(Exception, match="run the tag stage first"):
        run(world, None)
    pd.DataFrame({"face_id": [], PROB_PREFIX + "blonde hair": []}).to_parquet(world / "tags.parquet")
    with pytest.raises(Exception, match="vocabulary changed"):
        run(world, None)


def test_danbooru_tags_label_faces_alone_on_their_post(world):
    """A post's own tags label its only face (below manual, above the tagger); a post with two faces
    (aaaa) or two hair colours (cccc) gives nothing for what it cannot pin to one face."""
    manifest = pd.read_parquet(world / "raw" / "manifest.parquet")
    manifest["tags_general"] = ["1girl brown_hair smile", "1girl grey_hair long_hair glasses", "blonde_hair brown_hair smile"]
    manifest.to_parquet(world / "raw" / "manifest.parquet")
    result, t = run(world, "face_id,smile\nbbbb_0,no\n")
    assert result.danbooru_faces == 2  # bbbb_0 and cccc_0; aaaa has two faces
    assert t.loc["bbbb_0", ["hair_color", "hair_style", "smile", "glasses"]].tolist() == ["grey", "long", "no", "yes"]
    assert t.loc["bbbb_0", ["source_hair_color", "source_smile"]].tolist() == ["danbooru", "manual"]
    assert t.loc["cccc_0", ["hair_color", "smile", "glasses"]].tolist() == ["unknown", "yes", "no"]
    assert t.loc["aaaa_0", "source_hair_color"] == "i2v" and t.loc["aaaa_0", "hair_color"] == "blonde"

    _, t = run(world, None, precedence=["i2v", "danbooru"])
    assert t.loc["bbbb_0", ["hair_color", "source_hair_color"]].tolist() == ["grey", "i2v"]
    assert t.loc["cccc_0", ["smile", "source_smile"]].tolist() == ["yes", "danbooru"]
    _, t = run(world, None, precedence=["manual", "i2v"])
    assert "danbooru" not in set(t["source_smile"])


def test_precedence_names_each_source_once():
    with pytest.raises(ValueError, match="at most once"):
        LabelsParams(precedence=["manual", "manual"])


def test_a_file_key_names_a_face_file_as_crop_writes_it_now_or_wrote_it_before():
    """Face files carry the crop config in their name (``<face_id>.<digest>.png``); manual files keyed
    by the names before that (``<face_id>.png``) still find their faces."""
    from pipeline.labels.manual import face_keys

    index = pd.DataFrame({"face_id": ["cccc_0"], "md5": ["c" * 32], "path": ["cccc_0.0123abcd.png"]})
    keys = face_keys(index)["file"]
    assert keys["cccc_0.0123abcd.png"] == keys["cccc_0.png"] == ["cccc_0"]
