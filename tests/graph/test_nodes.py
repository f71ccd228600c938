"""What agents see: recent history, then one message with the request, the work and the task."""

from __future__ import annotations

from spendgraph.graph.nodes import history_window, last_output, prompt

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


def test_history_window_moves_in_steps_so_the_prompt_start_stays_put():
    messages = [{"role": "user", "content": str(i)} for i in range(45)]
    starts = [history_window(messages[:n], 20)[0]["content"] for n in range(21, 46)]
    # The start moves every 10 messages, not every message: 10 x "10", 10 x "20", ...
    assert starts == ["10"] * 10 + ["20"] * 10 + ["30"] * 5
    assert all(10 < len(history_window(messages[:n], 20)) <= 20 for n in range(21, 46))
    assert history_window(messages[:5], 20) == messages[:5]
    assert history_window(messages, 0) == []
