"""``aemon held-out``: the choice made with each NAB category left out, on scorer outputs made
here (``nab_score.py --json``'s layout: per category, its pooled raw, null and perfect)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aemon.cli.main import main
from aemon.core.errors import ConfigError, DataError
from aemon.tools.held_out import choose, parse_setting, read_run

# (raw, null, perfect) per category; artificialNoAnomaly has no window: its raw is its false
# alarms' cost and its null and perfect are 0.
NULL = {"aws": (-10.0, 10.0), "traffic": (-6.0, 6.0), "art": (-4.0, 4.0), "noAnomaly": (0.0, 0.0)}


def scorer_json(path: Path, raw: dict[str, float]) -> Path:
    categories = {
        c: {"total": {"raw": raw[c], "null": n, "perfect": p, "score": None}}
        for c, (n, p) in NULL.items()
    }
    path.write_text(json.dumps({"yours": {"categories": categories, "total": {}}}))
    return path


def nab(raw: float, null: float, perfect: float) -> float:
    return 100 * (raw - null) / (perfect - null)


@pytest.fixture
def runs(tmp_path) -> dict[str, list]:
    """The incumbent is better on aws, the other on traffic and art (two seeds each)."""
    raws = {
        "incumbent": [
            {"aws": 6.0, "traffic": 0.0, "art": 2.0, "noAnomaly": 0.0},
            {"aws": 4.0, "traffic": 1.0, "art": 2.0, "noAnomaly": -1.0},
        ],
        "other": [
            {"aws": 2.0, "traffic": 3.0, "art": 3.0, "noAnomaly": 0.0},
            {"aws": 0.0, "traffic": 2.0, "art": 3.0, "noAnomaly": 0.0},
        ],
    }
    return {
        s: [read_run(scorer_json(tmp_path / f"{s}-{k}.json", r)) for k, r in enumerate(rs)]
        for s, rs in raws.items()
    }


def test_each_category_is_judged_at_the_choice_made_without_it(runs):
    result = choose(runs)
    rows, left = result["settings"], {x["category"]: x for x in result["left_out"]}
    assert list(left) == ["aws", "traffic", "art"]  # noAnomaly has nothing to find
    # Without aws the other setting wins on traffic + art + noAnomaly; aws is judged there.
    others = {"incumbent": [nab(2.0, -10, 10), nab(2.0, -10, 10)], "other": [nab(6.0, -10, 10)] * 2}
    others["other"][1] = nab(5.0, -10, 10)
    for s, values in others.items():
        assert left["aws"]["others"][s] == pytest.approx(sum(values) / 2)
    assert left["aws"]["chosen"] == "other"
    assert left["aws"]["score"] == pytest.approx((nab(2, -10, 10) + nab(0, -10, 10)) / 2)
    assert left["aws"]["scores"]["incumbent"] == pytest.approx(
        (nab(6, -10, 10) + nab(4, -10, 10)) / 2
    )
    # Without traffic: incumbent aws + art + noAnomaly = 8 and 5, other 5 and 3.
    assert left["traffic"]["chosen"] == "incumbent"
    assert left["traffic"]["score"] == pytest.approx((nab(0, -6, 6) + nab(1, -6, 6)) / 2)
    # The total is NAB's over every file, noAnomaly's false alarm included.
    assert rows["incumbent"]["totals"][1] == pytest.approx(nab(6.0, -20, 20))
    assert rows["incumbent"]["spread"] == pytest.approx(nab(8, -20, 20) - nab(6, -20, 20))
    assert rows["other"]["categories"]["art"] == pytest.approx(nab(3, -4, 4))


def test_a_tie_keeps_the_incumbent(tmp_path):
    same = {"aws": 1.0, "traffic": 1.0, "art": 1.0, "noAnomaly": 0.0}
    settings = {
        s: [read_run(scorer_json(tmp_path / f"{s}.json", same))] for s in ("incumbent", "b")
    }
    assert {x["chosen"] for x in choose(settings)["left_out"]} == {"incumbent"}
    reordered = {"b": settings["b"], "incumbent": settings["incumbent"]}
    assert {x["chosen"] for x in choose(reordered)["left_out"]} == {"b"}


def test_settings_must_be_scored_on_the_same_files(tmp_path, runs):
    other = tmp_path / "fewer.json"
    other.write_text(
        json.dumps(
            {"yours": {"categories": {"aws": {"total": {"raw": 1, "null": -1, "perfect": 1}}}}}
        )
    )
    with pytest.raises(DataError, match="score every setting on the same files"):
        choose({"incumbent": runs["incumbent"], "fewer": [read_run(other)]})
    moved = json.loads(runs["incumbent"][0].path.read_text())
    moved["yours"]["categories"]["art"]["total"]["null"] = -5.0  # another labelling of art
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    with pytest.raises(DataError, match="score every setting on the same files"):
        choose({"incumbent": runs["incumbent"], "moved": [read_run(tmp_path / "moved.json")]})
    alone = {"yours": {"categories": {"aws": {"total": {"raw": 1, "null": -1, "perfect": 1}}}}}
    for k in (0, 1):
        (tmp_path / f"alone-{k}.json").write_text(json.dumps(alone))
    with pytest.raises(DataError, match="leaving one out needs two or more"):
        choose({s: [read_run(tmp_path / f"alone-{k}.json")] for k, s in enumerate("ab")})
    with pytest.raises(ConfigError, match="at least two settings"):
        choose({"incumbent": runs["incumbent"]})


def test_a_setting_names_its_files_by_globs_or_commas(tmp_path):
    for k in (2, 0, 1):
        (tmp_path / f"seed-{k}.json").write_text("{}")
    name, paths = parse_setting(f"a={tmp_path}/seed-*.json")
    assert name == "a" and [p.name for p in paths] == ["seed-0.json", "seed-1.json", "seed-2.json"]
    _, paths = parse_setting(f"b={tmp_path}/seed-2.json,{tmp_path}/seed-0.json")
    assert [p.name for p in paths] == ["seed-2.json", "seed-0.json"]
    with pytest.raises(ConfigError, match="no file matches"):
        parse_setting(f"c={tmp_path}/none-*.json")
    with pytest.raises(ConfigError, match="NAME=FILES"):
        parse_setting(f"{tmp_path}/seed-0.json")
    with pytest.raises(DataError, match="not the output of nab_score"):
        read_run(tmp_path / "seed-0.json")


def test_the_command_prints_the_choice_and_its_json(tmp_path, runs, capsys):
    files = {s: ",".join(str(r.path) for r in rs) for s, rs in runs.items()}
    argv = ["held-out", *(f"{s}={f}" for s, f in files.items())]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "aws                     other" in text and "(incumbent: " in text
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(json.dumps(choose(runs)))
    assert main([argv[0], argv[1], argv[1]]) == 2
    assert "named twice" in capsys.readouterr().err
