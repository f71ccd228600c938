"""Vocabulary and sentence templates for the simulator's English-ish text.

All ASCII on purpose: every token of the generated text decodes on its own,
so streamed chunks are whole characters.
"""

from __future__ import annotations

import random
import re


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NOUNS = _split(
    "system request model answer budget replica token cache report result plan "
    "review summary note record patient visit player story question source claim "
    "draft order account customer ticket policy schedule detail option value signal "
    "window river garden village tower market engine lantern journey harbor letter "
    "method "
)
ADJECTIVES = _split(
    "clear careful quick steady short simple useful recent likely small large quiet "
    "bright final early common direct stable open "
)
VERBS = _split(
    "checks explains covers supports shows keeps follows describes improves confirms "
    "needs reaches handles lists suggests tracks "
)
ADVERBS = _split("quickly carefully usually clearly mostly often rarely now")
_STOPWORDS = frozenset(
    _split(
        "about above after again also because been before being between both could does doing "
        "each from further have having here into itself just more most other over same should "
        "some such than that their them then there these they this those through under until "
        "very what when where which while with would your yours please tell give make"
    )
)
_TEMPLATES = (
    "The {adj} {noun} {verb} the {noun2}.",
    "A {adj} {noun} {adverb} {verb} every {noun2}.",
    "In short, the {noun} {verb} a {adj} {noun2}.",
    "Each {noun} {verb} the {adj} {noun2} {adverb}.",
    "This {noun} {verb} what the {noun2} {verb2}.",
)
_TOPIC_TEMPLATES = (
    "On {topic}, the {adj} {noun} {verb} the {noun2}.",
    "The {noun} around {topic} {verb} a {adj} {noun2}.",
    "When it comes to {topic}, a {adj} {noun} {adverb} {verb} the {noun2}.",
    "As for {topic}, each {noun} {verb} the {noun2} {adverb}.",
)


def pick_words(rng: random.Random, count: int) -> list[str]:
    """``count`` words, adjectives and nouns mixed."""
    return [rng.choice(ADJECTIVES if i % 2 == 0 and i < count - 1 else NOUNS) for i in range(count)]


def topic_words(text: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` distinct content words of ``text`` (ASCII letters, 4+ long), in order."""
    topics: list[str] = []
    seen: set[str] = set()
    for word in re.findall(r"[A-Za-z]{4,}", text):
        lowered = word.lower()
        if lowered not in _STOPWORDS and lowered not in seen:
            seen.add(lowered)
            topics.append(word)
        if len(topics) == limit:
            break
    return topics


def sentence(rng: random.Random, topics: list[str]) -> str:
    """One sentence; about half of them mention one of ``topics`` when there are any."""
    use_topic = bool(topics) and rng.random() < 0.5
    template = rng.choice(_TOPIC_TEMPLATES if use_topic else _TEMPLATES)
    return template.format(
        topic=rng.choice(topics) if topics else "",
        adj=rng.choice(ADJECTIVES),
        noun=rng.choice(NOUNS),
        noun2=rng.choice(NOUNS),
        verb=rng.choice(VERBS),
        verb2=rng.choice(VERBS),
        adverb=rng.choice(ADVERBS),
    )
