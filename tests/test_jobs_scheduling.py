"""The batch scheduling rule: priority order, turns between equals, and ageing so nothing starves."""
from astrodash_asgi.jobs.scheduling import AGEING_S, WEIGHTS, order, score


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
