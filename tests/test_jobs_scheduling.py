"""The batch scheduling rule: priority order, turns between equals, and ageing so nothing starves."""
from astrodash_asgi.jobs.scheduling import AGEING_S, PRIORITIES, WEIGHTS, order, score


def batch(bid, priority, created, served=None):
    return {"id": bid, "priority": priority, "created_at": created, "last_served": served}


def test_higher_priority_goes_first_when_submitted_together():
    bs = [batch("l", "low", 0), batch("n", "normal", 0), batch("c", "critical", 0), batch("h", "high", 0)]
    assert [b["id"] for b in order(bs, now=0)] == ["c", "h", "n", "l"]


def test_equal_batches_take_turns_so_a_small_one_is_not_stuck_behind_a_big_one():
    big, small = batch("big", "normal", 0.0), batch("small", "normal", 5.0)
    now = 5.0
    sequence = []
    for _ in range(4):  # serve a chunk to whoever is first, as the engine does
        first = order([big, small], now)[0]
        sequence.append(first["id"])
        first["last_served"] = now
        now += 1.0
    assert sequence == ["big", "small", "big", "small"]


def test_a_low_batch_catches_up_with_critical_work_after_the_stated_wait():
    wait = (WEIGHTS["critical"] - WEIGHTS["low"]) * AGEING_S
    low = batch("low", "low", 0.0)
    crit = batch("crit", "critical", 0.0)
    # critical work is served continuously (its wait resets every chunk)
    crit["last_served"] = wait - 1.0
    assert order([crit, low], now=wait - 1.0)[0]["id"] == "crit"
    crit["last_served"] = wait + 0.5
    assert order([crit, low], now=wait + 1.0)[0]["id"] == "low"
    assert score(low, wait + 1.0) > score(crit, wait + 1.0)


def test_the_documented_weights_and_ageing():
    """docs/http.md states the rule with these numbers: clients plan with them."""
    assert WEIGHTS == {"critical": 3.0, "high": 2.0, "normal": 1.0, "low": 0.0}
    assert PRIORITIES == tuple(WEIGHTS)  # what submit accepts, highest first
    assert AGEING_S == 30.0
    # a low batch behind continuous critical work: served after 90 s of waiting, not before
    low = batch("low", "low", 0.0)
    assert order([batch("crit", "critical", 0.0, served=89.0), low], now=89.5)[0]["id"] == "crit"
    assert order([batch("crit", "critical", 0.0, served=90.4), low], now=90.5)[0]["id"] == "low"


def test_a_never_served_batch_wins_a_tie_over_one_served_just_before():
    now = 1_000.0
    served = batch("served", "normal", 0.0, served=now - 30.0)  # waited 30 s since its last chunk
    fresh = batch("fresh", "normal", now - 30.0)  # submitted 30 s ago, never served: the same score
    assert score(served, now) == score(fresh, now)
    assert [b["id"] for b in order([served, fresh], now)] == ["fresh", "served"]
