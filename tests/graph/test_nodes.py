"""What agents see: recent history, then one message with the request, the work and the task."""

from __future__ import annotations

from spendgraph.graph.nodes import last_output, prompt

HISTORY = [
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "second question"},
]
STATE = {"messages": HISTORY, "input": "second question"}


def test_a_plain_agent_sees_the_history_and_the_request():
    assert prompt(STATE, history_limit=20) == HISTORY


def test_work_and_task_are_folded_into_the_last_user_message():
    work = [{"agent": "scribe", "content": "a note"}]
    messages = prompt(STATE, history_limit=20, work=work, task="review it", note="Be brief.")
    assert messages[:-1] == HISTORY[:-1]
    last = messages[-1]
    assert last["role"] == "user"
    assert last["content"] == (
        "Request: second question\n\nWork so far:\n[scribe] a note\n\nYour task: review it"
        "\n\nBe brief."
    )


def test_history_is_limited():
    assert prompt(STATE, history_limit=1) == HISTORY[1:]
    assert prompt(STATE, history_limit=0) == HISTORY[-1:]


def test_last_output_is_the_best_answer_of_a_sequence():
    assert last_output({"outputs": [{"content": "a"}, {"content": "b"}]}) == "b"
    assert last_output({}) == ""
