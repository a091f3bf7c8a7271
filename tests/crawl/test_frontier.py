"""The frontier: breadth-first order, each URL once, the shortest depth found before a fetch."""

from __future__ import annotations

from hybridio.crawl._frontier import Frontier


def test_each_url_is_queued_once_in_discovery_order() -> None:
    frontier = Frontier()
    assert [frontier.add(u, 1) for u in ("/a", "/b", "/a")] == [True, True, False]
    assert [frontier.pop(), frontier.pop()] == [("/a", 1), ("/b", 1)]
    assert not frontier


def test_a_pending_url_found_again_by_a_shorter_path_keeps_the_shorter_depth() -> None:
    frontier = Frontier()
    frontier.add("/deep", 3)
    assert frontier.add("/deep", 1) is False
    assert frontier.pop() == ("/deep", 1)


def test_a_redirect_to_a_pending_url_is_not_fetched_twice_but_lowers_its_depth() -> None:
    """/go/0 (depth 1) redirects to a page already queued at depth 2 by another link."""
    frontier = Frontier()
    frontier.add("/p/8", 2)
    assert frontier.claim_redirect("/p/8", 1) is False  # the redirect chain stops here
    assert frontier.pop() == ("/p/8", 1)
    assert frontier.claim_redirect("/p/8", 0) is False  # already fetched: nothing to lower
    assert frontier.claim_redirect("/new", 1) is True  # first seen through the redirect
    assert frontier.add("/new", 1) is False


def test_links_beyond_max_depth_are_not_queued() -> None:
    frontier = Frontier(max_depth=1)
    assert frontier.add("/one", 1) is True
    assert frontier.add("/two", 2) is False


def test_pop_waits_until_no_page_in_flight_can_lower_a_depth() -> None:
    frontier = Frontier()
    frontier.add("/", 0)
    assert frontier.pop() == ("/", 0)
    assert frontier.pop() is None  # nothing queued
    frontier.fetched(0, to_parse=True)
    assert frontier.add("/a", 1)
    assert frontier.add("/b", 1)
    frontier.parsed(0)
    assert frontier.pop() == ("/a", 1)
    assert frontier.pop() == ("/b", 1)
    frontier.fetched(1, to_parse=True)  # /b fetched; /a (slow) still fetching
    frontier.parsed(1)
    assert frontier.add("/c", 2)
    # /a may still redirect to /c (depth 1): depth 2 waits for every depth-1 fetch.
    assert frontier.pop() is None
    assert len(frontier) == 1
    assert frontier.in_flight == 1
    frontier.fetched(1, to_parse=True)  # /a fetched, being parsed: it can give depth 2, no less
    assert frontier.pop() == ("/c", 2)
    frontier.fetched(2, to_parse=True)
    frontier.parsed(2)
    assert frontier.add("/d", 3)
    # /a (depth 1) is still being parsed: it may link /d, at depth 2.
    assert frontier.pop() is None
    assert not frontier.add("/d", 2)  # found again, shallower: lowered, not queued twice
    frontier.parsed(1)
    assert frontier.pop() == ("/d", 2)
    assert frontier.pop() is None
    assert len(frontier) == 0


def test_redirect_lowers_a_queued_url() -> None:
    frontier = Frontier()
    frontier.add("/t", 3)
    assert not frontier.claim_redirect("/t", 1)
    assert frontier.pop() == ("/t", 1)
    assert frontier.claim_redirect("/new", 1)
    assert frontier.seen("/new")


def test_lowered_depths_are_reported_for_the_resume_log() -> None:
    frontier = Frontier()
    frontier.add("/t", 3)
    assert frontier.take_lowered() == []
    frontier.add("/t", 2)
    assert frontier.take_lowered() == [("/t", 2)]
    assert frontier.take_lowered() == []
