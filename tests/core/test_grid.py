"""Parameter grids: every combination, names that carry the varying values, a size guard, one
message per parameter set and a sheet that groups the combinations (reuse per cell: e2e)."""

from __future__ import annotations

import io

import pytest
import typer
from PIL import Image

from api.cli.options import NST, GivenParams
from api.cli.stylize import grid_params
from atelier.batches import create_nst_batch, ingest_image
from atelier.db import migrate, session_scope
from atelier.errors import InputError
from atelier.export import batch_sheet_png, cell_stem
from atelier.grid import cell_label, check_size, combinations, parse_list, varying
from atelier.models import Batch, Job, JobState
from atelier.settings import Settings


def test_lists_expand_to_every_combination_last_axis_fastest():
    combos = combinations({"style_weight": [100, 1000], "style_scale": [0.5, 1.0], "size": 64})
    assert [(c.style_weight, c.style_scale, c.size) for c in combos] == [
        (100, 0.5, 64),
        (100, 1.0, 64),
        (1000, 0.5, 64),
        (1000, 1.0, 64),
    ]
    dumps = [c.model_dump() for c in combos]
    assert varying(dumps) == ["style_weight", "style_scale"]
    assert [cell_label(d, varying(dumps)) for d in dumps] == [
        "sw100_ss0.5",
        "sw100_ss1",
        "sw1000_ss0.5",
        "sw1000_ss1",
    ]
    assert combinations({"size": 64})[0].size == 64  # no list: one combination
    names = {"c": "tubingen", "s": "starry"}
    inputs = {"content": "c", "styles": ["s"]}
    assert cell_stem(names, inputs, dumps[2], ["style_weight", "style_scale"]) == (
        "tubingen__starry__sw1000_ss0.5"
    )
    assert cell_stem(names, inputs, dumps[2], []) == "tubingen__starry"


def _typed(**flags: str) -> GivenParams:
    """What `with_params(NST)` hands a command when these options are typed."""
    values = {o.field: o.value(flags[o.field]) for o in NST.options if o.field in flags}
    return GivenParams({NST.name: values}, {NST.name: NST})


def _refusal(**flags: str) -> str:
    with pytest.raises(typer.BadParameter) as caught:
        grid_params(_typed(**flags))
    return caught.value.format_message()


def test_cli_flags_take_comma_separated_lists_and_name_bad_ones():
    combos = grid_params(_typed(style_weight="1e2,1e3", tv_weight="0", iterations="5,10"))
    assert [(c.style_weight, c.iterations, c.tv_weight) for c in combos] == [
        (100.0, 5, 0.0),
        (100.0, 10, 0.0),
        (1000.0, 5, 0.0),
        (1000.0, 10, 0.0),
    ]
    assert _refusal(style_weight="1e2,lots").startswith(
        "Invalid value for '--style-weight': takes a number"
    )
    assert _refusal(size="64,8").startswith("Invalid value for '--size': Input should be greater")
    with pytest.raises(InputError, match="needs at least one value"):
        parse_list(",", float, "--tv-weight")


def test_a_grid_larger_than_the_limit_is_refused_with_the_arithmetic():
    assert check_size(2, 3, 4, 24) == 24
    with pytest.raises(InputError) as refused:
        check_size(2, 3, 5, 24)
    message = str(refused.value)
    assert "30 jobs" in message and "5 parameter combination" in message
    assert "ATELIER_MAX_GRID" in message and "24" in message


def test_batch_rows_messages_reuse_and_sheet(tmp_path, test_data):
    settings = Settings(data_dir=tmp_path, vgg_weights="none", max_batch=4, max_grid=8)
    migrate(settings.resolved_database_url)
    with session_scope(settings.resolved_database_url) as session:
        contents = [
            ingest_image(session, settings, test_data / f"content/{n}.jpg").sha256
            for n in ("tubingen", "golden_gate")
        ]
        style = ingest_image(session, settings, test_data / "style/starry_night.jpg").sha256
    combos = combinations({"size": 32, "iterations": 2, "style_weight": [10.0, 100.0]})
    plan = create_nst_batch(settings, contents, [style], combos)
    assert len(plan.job_ids) == 4 and not plan.reused
    with session_scope(settings.resolved_database_url) as session:
        jobs = {j.id: j for j in session.query(Job).filter(Job.id.in_(plan.job_ids))}
        batch = session.get(Batch, plan.batch_id)
        assert batch.params["style_weight"] == [10.0, 100.0]
        for message in plan.messages:  # each message: one parameter set, so one engine batch
            assert len({jobs[i].params["style_weight"] for i in message}) == 1
        assert sorted(len(m) for m in plan.messages) == [2, 2]
        assert {j.state for j in jobs.values()} == {JobState.QUEUED}
    sheet = Image.open(io.BytesIO(batch_sheet_png(settings, plan.batch_id)))
    # rows: a header, then content x style pairs; columns: a header, then the two combinations
    assert sheet.size == (3 * 160 + 2 * 4, 3 * 160 + 2 * 4)
    one = Image.open(io.BytesIO(batch_sheet_png(settings, plan.batch_id, contents[0])))
    assert one.size == (3 * 160 + 2 * 4, 2 * 160 + 4)

    with pytest.raises(InputError, match="ATELIER_MAX_GRID"):
        create_nst_batch(
            settings, contents, [style], combinations({"size": [32, 48], "tv_weight": [0, 1, 2]})
        )
