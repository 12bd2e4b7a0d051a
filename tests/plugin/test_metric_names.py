"""The plugin's metric names: the docs table lists exactly what the sources count, and each
name reaches Prometheus as the table says (real Falco's `/metrics` is checked in
tests/falco/test_real_falco.py)."""

from __future__ import annotations

from tests.support.metric_names import PREFIX, code_names, documented, reasons, served


def test_the_docs_list_every_metric_the_sources_count() -> None:
    assert set(documented()) == code_names()


def test_every_name_is_served_as_documented() -> None:
    for name, prom in documented().items():
        for reason in reasons() if "<reason>" in name else [""]:
            expected = prom.replace("<reason>", reason)
            assert served(name.replace("<reason>", reason)) == expected, (name, reason)


def test_the_conversion_cuts_unit_words_as_libsinsp_does() -> None:
    """The names Falco 0.45 served before the rename (seen on its /metrics)."""
    assert served("queue_oldest_message_age_seconds") == (
        PREFIX + "queue_oldest_message_ageonds_total")
    assert served("seconds_since_last_receive") == PREFIX + "seconds_since_last_receive_total"
    assert served("dead_lettered.bad_base64") == PREFIX + "dead_lettered_bad_base64_total"
