from datetime import UTC, datetime, timedelta

from ingestion.landing_cursor import LandingCursor, LandingObject, new_objects

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def obj(key: str, etag: str = "e1", seconds: int = 0) -> LandingObject:
    return LandingObject(key, etag, T0 + timedelta(seconds=seconds))


def test_objects_sharing_the_cursor_second_are_not_missed() -> None:
    fresh, cursor = new_objects([obj("a"), obj("b")], LandingCursor())
    assert [o.key for o in fresh] == ["a", "b"]
    # "c" lands in the same second as the high-water mark: a strict "newer than" cursor misses it
    fresh, cursor = new_objects([obj("a"), obj("b"), obj("c")], cursor)
    assert [o.key for o in fresh] == ["c"]
    fresh, _ = new_objects([obj("a"), obj("b"), obj("c")], cursor)
    assert fresh == []


def test_late_upload_with_an_older_timestamp_inside_the_lookback_is_found() -> None:
    _, cursor = new_objects([obj("a", seconds=600)], LandingCursor())
    fresh, _ = new_objects([obj("a", seconds=600), obj("slow", seconds=300)], cursor, lookback=timedelta(minutes=15))
    assert [o.key for o in fresh] == ["slow"]


def test_reupload_is_reported_only_when_the_content_changed() -> None:
    _, cursor = new_objects([obj("a", "e1")], LandingCursor())
    same, cursor = new_objects([obj("a", "e1", seconds=5)], cursor)
    assert same == [], "same ETag = same object version: nothing new"
    changed, _ = new_objects([obj("a", "e2", seconds=6)], cursor)
    assert [(o.key, o.etag) for o in changed] == [("a", "e2")]


def test_cursor_survives_a_restart_and_prunes_old_entries() -> None:
    _, cursor = new_objects([obj("old", seconds=0), obj("new", seconds=3600)], LandingCursor())
    restored = LandingCursor.from_json(cursor.to_json())
    assert restored == cursor
    assert set(restored.seen) == {"new"}, "entries below the look-back window are forgotten"
    fresh, _ = new_objects([obj("old", seconds=0), obj("new", seconds=3600)], restored)
    assert fresh == [], "and objects below the window are not listed again"


def test_from_listing_normalises_etag_and_timezone() -> None:
    entry = {"Key": "k", "ETag": '"abc"', "LastModified": datetime(2026, 1, 1, 0, 0)}
    assert LandingObject.from_listing(entry) == LandingObject("k", "abc", datetime(2026, 1, 1, tzinfo=UTC))
