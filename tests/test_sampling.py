"""The sampling policy: a subtask is chosen by its id alone, at the declared rate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import SamplingPolicy


@given(st.text(min_size=1), st.floats(min_value=0.0, max_value=1.0), st.text())
def test_the_choice_depends_on_the_id_and_salt_only(
    subtask_id: str, rate: float, salt: str
) -> None:
    one = SamplingPolicy(rate=rate, salt=salt)
    assert one.chosen(subtask_id) == SamplingPolicy(rate=rate, salt=salt).chosen(subtask_id)


@given(st.text(min_size=1))
def test_rate_zero_chooses_none_and_rate_one_all(subtask_id: str) -> None:
    assert not SamplingPolicy(rate=0.0).chosen(subtask_id)
    assert SamplingPolicy(rate=1.0).chosen(subtask_id)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_the_share_chosen_is_the_rate(rate: float) -> None:
    ids = [f"t-{i:06d}" for i in range(20_000)]
    share = sum(SamplingPolicy(rate=rate).chosen(i) for i in ids) / len(ids)
    assert abs(share - rate) < 0.015


def test_a_salt_draws_another_sample() -> None:
    ids = [f"t-{i}" for i in range(2_000)]
    plain = {i for i in ids if SamplingPolicy(rate=0.5).chosen(i)}
    salted = {i for i in ids if SamplingPolicy(rate=0.5, salt="b").chosen(i)}
    assert plain != salted


@pytest.mark.parametrize(
    "bad", [{"rate": -0.1}, {"rate": 1.5}, {"timeout": timedelta(0)}, {"rate": float("nan")}]
)
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="SamplingPolicy"):
        SamplingPolicy(**bad)  # type: ignore[arg-type]
