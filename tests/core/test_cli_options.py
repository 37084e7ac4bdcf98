"""The job options of `stylize`, `video` and `submit`: one definition, errors named by option.

Validation happens before any database, broker or upload, so Typer's runner is enough here.
"""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from api.cli.main import app
from api.cli.options import NST, VIDEO

runner = CliRunner()


def _options(command: str) -> set[str]:
    group = typer.main.get_command(app)
    found: set[str] = set()
    for param in group.commands[command].params:  # type: ignore[attr-defined]
        found |= {*param.opts, *param.secondary_opts}
    return found


def _error(*args: str) -> str:
    done = runner.invoke(app, list(args))
    assert done.exit_code == 2, done.output
    return " ".join(done.output.replace("│", " ").split())  # the box of rich, unwrapped


def test_submit_takes_every_option_of_stylize_and_video():
    flags = {name for group in (NST, VIDEO) for o in group.options for name in o.names}
    flags = {f for name in flags for f in name.split("/")}
    assert flags <= _options("submit")
    assert {f for o in NST.options for n in o.names for f in n.split("/")} <= _options("stylize")
    assert {f for o in VIDEO.options for n in o.names for f in n.split("/")} <= _options("video")
    # The names of today, kept.
    assert {"--filter", "-f", "--filters", "--layout", "--no-audio"} <= _options("video")
    assert {"--style-blend", "--preserve-colors", "--size", "--weights"} <= _options("submit")
    # Grids, the fast engine, averaging, the painting filter and the detectors: everywhere.
    nst = {"--style-weight", "--style-scale", "--average", "--engine", "--strength"}
    video = {"--detector", "--detect-every", "--profile", "--painting-frames", "--style"}
    assert nst <= _options("stylize") & _options("submit")
    assert video <= _options("video") & _options("submit")


def test_every_option_sets_a_field_of_its_schema():
    for group in (NST, VIDEO):
        for option in group.options:
            assert option.field in group.model.model_fields, option.field


@pytest.mark.parametrize(
    ("args", "named", "says"),
    [
        (["video", "v.mp4", "-o", "x.mp4", "--layout", "1x1", "--filters", "blur"],
         "'--filters'", "layout 1x1 takes 0 extra filter(s), not 1"),
        (["video", "v.mp4", "-o", "x.mp4", "--detect-every", "0"],
         "'--detect-every'", "greater than or equal to 1"),
        (["stylize", "a.png", "-s", "b.png", "-o", "out", "--style-blend", "0.7,x"],
         "'--style-blend'", "item 1: Input should be a valid number"),
        (["stylize", "a.png", "-s", "b.png", "-o", "out", "--optimizer", "sgd"],
         "'--optimizer'", "'adam' or 'lbfgs'"),
        (["submit", "a.png", "-s", "b.png", "-p", "filters=blur"],
         "'--param filters'", "no such parameter"),
        (["submit", "--video", "v.mp4", "--layout", "1x2", "-p", "filters=blur,cartoon"],
         "'--param filters'", "layout 1x2 takes 1 extra filter(s), not 2"),
        (["submit", "--video", "v.mp4", "--size", "64"],
         "'--size'", "style transfer options do not apply to a video"),
        (["submit", "a.png", "-s", "b.png", "-p", "size"], "'--param'", "takes key=value"),
        (["demo", "--size", "3"], "'--size'", "greater than or equal to 16"),
        (["video", "v.mp4", "-o", "x.mp4", "--filter", "painting"],
         "'--style'", "the painting filter needs a painting"),
    ],
)  # fmt: skip
def test_every_validation_error_names_the_option_typed(args: list[str], named: str, says: str):
    output = _error(*args)
    assert f"Invalid value for {named}:" in output
    assert says in output
    assert "--:" not in output and "Invalid value:" not in output


def test_several_problems_each_name_their_option():
    output = _error("stylize", "a.png", "-s", "b.png", "-o", "o", "--size", "3", "--seed", "-1")
    assert re.search(r"--size: Input should be greater than or equal to 16", output)
    assert re.search(r"--seed: Input should be greater than or equal to 0", output)


def test_list_parameters_take_commas_as_options_and_as_pairs():
    given = {"style_blend": "0.7, 0.3"}
    for option in NST.options:
        if option.field in given:
            assert option.value(given[option.field]) == ("0.7", "0.3")
    from api.cli.options import GivenParams

    empty = GivenParams({}, {"video": VIDEO})
    for form in ("filters=blur,cartoon,sketch", 'filters=["blur","cartoon","sketch"]'):
        params = empty.with_pairs(["layout=2x2", form], VIDEO.model).build(VIDEO)
        assert params.filters == ("blur", "cartoon", "sketch") and params.layout == "2x2"
    nst = GivenParams({"nst": {"size": 64}}, {"nst": NST})
    pairs = ["style_layers=block1_conv1,block3_conv1", "style_blend=1"]
    params = nst.with_pairs(pairs, NST.model).build(NST)
    assert params.style_layers == ("block1_conv1", "block3_conv1")
    assert params.style_blend == (1.0,) and params.size == 64


def test_worker_names_its_bad_option_before_touching_anything():
    assert "'--pool': choose from prefork, solo, threads" in _error("worker", "--pool", "gevent")
    assert "'--queues': unknown queue(s) ['gpu']" in _error("worker", "--queues", "gpu")


def test_every_default_named_in_the_style_help_is_the_schema_default():
    """`--help` says the defaults as "(10)", "(default 300)" or "adam (default)": each one is
    NSTParams' own, so a changed default cannot leave the help behind."""
    from atelier.schemas import NSTParams

    checked = 0
    for option in NST.options:
        default = NSTParams.model_fields[option.field].default
        number = re.search(r"\((?:default )?(-?[0-9][0-9.e+-]*)\)", option.help)
        word = re.search(r"(\w+) \(default\)", option.help)
        if number:
            assert float(number.group(1)) == float(default), (option.field, option.help)
            checked += 1
        elif word:
            said = f"{default:g}" if isinstance(default, float) else str(default)
            assert word.group(1) == said, (option.field, option.help)
            checked += 1
    assert checked >= 12
