"""SourceLedger: which positions are settled, and which offset may be committed."""
import pickle
import random

from pipeline.ledger import SourceLedger, SourcePosition


def pos(offset, prev=None, starts_run=False, partition=0):
    return SourcePosition("t", partition, offset, offset - 1 if prev is None else prev, starts_run)


def test_in_order_run_commits_one_past_the_last_record():
    ledger = SourceLedger()
    ledger.settle(pos(5, starts_run=True))      # a run that started at offset 5
    ledger.settle(pos(6))
    ledger.settle(pos(7))
    assert ledger.commit_offsets() == {("t", 0): 8}
    assert ledger.is_settled(pos(0)) and ledger.is_settled(pos(7))
    assert not ledger.is_settled(pos(8))


def test_out_of_order_records_commit_only_the_gapless_prefix():
    ledger = SourceLedger()
    ledger.settle(pos(3))                       # arrives before the run's first record
    assert ledger.commit_offsets() == {}        # 0..2 unknown: nothing may be committed
    ledger.settle(pos(0, starts_run=True))
    assert ledger.commit_offsets() == {("t", 0): 1}
    ledger.settle(pos(2))
    assert ledger.commit_offsets() == {("t", 0): 1}
    assert ledger.is_settled(pos(2)) and not ledger.is_settled(pos(1))
    ledger.settle(pos(1))
    assert ledger.commit_offsets() == {("t", 0): 4}
    assert ledger.open_ranges() == 1


def test_a_gap_without_records_is_closed_by_prev_offset():
    ledger = SourceLedger()
    ledger.settle(pos(0, starts_run=True))
    ledger.settle(pos(4, prev=0))               # offsets 1..3: transaction markers
    assert ledger.commit_offsets() == {("t", 0): 5}
    assert ledger.is_settled(pos(2))


def test_restart_from_an_older_commit_skips_what_the_checkpoint_holds():
    ledger = SourceLedger()
    for o in range(10):
        ledger.settle(pos(o, starts_run=o == 0))
    restored = pickle.loads(pickle.dumps(ledger))  # as a checkpoint saves it
    # The group's committed offset was 6 (the commit after the checkpoint was lost).
    replayed = [o for o in range(6, 14) if restored.is_settled(pos(o, starts_run=o == 6))]
    assert replayed == [6, 7, 8, 9]
    for o in range(6, 14):
        restored.settle(pos(o, starts_run=o == 6))
    assert restored.commit_offsets() == {("t", 0): 14}


def test_partitions_are_kept_apart():
    ledger = SourceLedger()
    ledger.settle(pos(0, starts_run=True, partition=0))
    ledger.settle(pos(0, starts_run=True, partition=1))
    ledger.settle(pos(1, partition=1))
    assert ledger.commit_offsets() == {("t", 0): 1, ("t", 1): 2}
    assert not ledger.is_settled(pos(1, partition=0))


def test_any_arrival_order_ends_with_one_range():
    rng = random.Random(7)
    offsets = [0, 1, 2, 5, 6, 9, 10, 11, 20]    # gaps between: no records there
    positions = [pos(o, prev=p, starts_run=i == 0)
                 for i, (p, o) in enumerate(zip([-1] + offsets, offsets))]
    for _ in range(50):
        rng.shuffle(positions)
        ledger = SourceLedger()
        for p in positions:
            ledger.settle(p)
        assert ledger.commit_offsets() == {("t", 0): 21}
        assert ledger.open_ranges() == 1


def test_a_gap_is_open_until_every_earlier_message_is_settled():
    ledger = SourceLedger()
    assert not ledger.has_gaps()                 # nothing read yet
    ledger.settle(pos(10, prev=9, starts_run=True))
    assert not ledger.has_gaps()                 # [0, 11): one range from 0
    ledger.settle(pos(13, prev=12))              # 11 and 12 still on their way
    assert ledger.has_gaps()
    ledger.settle(pos(12, prev=11))
    assert ledger.has_gaps()
    ledger.settle(pos(11))
    assert not ledger.has_gaps()
    ledger.settle(pos(3, partition=1))           # partition 1: its run's start not here yet
    assert ledger.has_gaps()
    ledger.settle(pos(0, partition=1, starts_run=True))
    assert ledger.has_gaps()                     # 1..2 of partition 1 missing
    ledger.settle(pos(2, partition=1, prev=0))   # offset 1 held no record
    assert not ledger.has_gaps()
