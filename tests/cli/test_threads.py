"""``spendgraph run`` keeps threads encrypted when a key is configured; ``spendgraph threads``
lists and purges them (SQLite beside the ledger, PostgreSQL inside it)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import psycopg
import pytest
from pg_schema import fresh_schema_url

from spendgraph.examples.dungeon import APP as DUNGEON
from spendgraph.graph import open_checkpointer, thread_messages, with_checkpointer
from spendgraph.providers.config import ThreadsConfig

KEY_ENV = "SPENDGRAPH_TEST_THREADS_KEY"
KEY = "0123456789abcdef0123456789abcdef"
TURNS = {
    "g1": ["I open the crimson door of Zanzibar", "I greet the wizard Quexotl"],
    "g2": ["I climb the tower of Brimwhistle"],
}
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def game_config(tmp_path, sim, fleet_toml):
    """``game_config(encrypted)``: the test fleet on the simulator, with a threads key or not."""

    def make(encrypted: bool = True):
        path = tmp_path / ("keyed.toml" if encrypted else "plain.toml")
        threads = f'\n[threads]\nencryption_key_env = "{KEY_ENV}"\n' if encrypted else ""
        path.write_text(fleet_toml(sim.base_url) + threads)
        return str(path)

    return make


def play(cli, config: str, ledger: str, turns=TURNS, key: str | None = KEY) -> dict[str, list]:
    """Every turn of every game through ``spendgraph run dungeon``; the answers per game."""
    answers: dict[str, list] = {}
    for game, actions in turns.items():
        for action in actions:
            result = cli(
                "run", "dungeon", "--config", config, "--ledger", ledger, "--thread", game,
                action, "--json", env={KEY_ENV: key},
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            answers.setdefault(game, []).append(json.loads(result.stdout)["answer"])
    return answers


def listed(cli, ledger: str) -> dict[str, dict]:
    result = cli("threads", "list", "--ledger", ledger, "--json")
    assert result.exit_code == 0, result.output
    return {t["thread_id"]: t for t in json.loads(result.stdout)["threads"]}


def purge(cli, ledger: str, *args: str) -> dict:
    result = cli("threads", "purge", "--ledger", ledger, *args, "--json")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return json.loads(result.stdout)


def sqlite_bytes(ledger_path) -> bytes:
    threads = ledger_path.with_name(ledger_path.stem + ".threads.db")
    return b"".join(p.read_bytes() for p in threads.parent.glob(threads.name + "*"))


def stored_conversations(ledger: str, answers: dict[str, list]) -> dict[str, list[str]]:
    """Each game's thread, read back with the key: every turn of a game, in order, so the
    second turn continued the first (an answer is stored without the run's footer)."""
    conversations = {game: asyncio.run(history(ledger, game)) for game in TURNS}
    for game, actions in TURNS.items():
        messages = conversations[game]
        assert messages[0::2] == actions
        replies = zip(messages[1::2], answers[game], strict=True)
        assert all(reply and answer.startswith(reply) for reply, answer in replies)
    return conversations


async def history(ledger: str, game: str) -> list[str]:
    env = {KEY_ENV: KEY}
    threads = ThreadsConfig(encryption_key_env=KEY_ENV)
    async with open_checkpointer(ledger, env=env, threads=threads) as saver:
        messages = await thread_messages(with_checkpointer(DUNGEON.build(), saver), game)
    return [m["content"] for m in messages]


def test_run_keeps_encrypted_threads_that_continue(cli, tmp_path, game_config):
    ledger = tmp_path / "game.db"
    answers = play(cli, game_config(), str(ledger))
    conversations = stored_conversations(str(ledger), answers)
    stored = sqlite_bytes(ledger)
    for messages in conversations.values():
        for text in messages:
            assert text.encode() not in stored
    threads = listed(cli, str(ledger))
    assert set(threads) == {"g1", "g2"}
    assert all(t["encrypted"] == "yes" and t["checkpoints"] > 0 for t in threads.values())


def test_a_wrong_or_missing_key_stops_run_with_one_line(cli, tmp_path, game_config):
    ledger = str(tmp_path / "game.db")
    play(cli, game_config(), ledger, turns={"g1": TURNS["g1"][:1]})
    cases = [
        (game_config(), "f" * 32, f"the key in ${KEY_ENV} ([threads] encryption_key_env) is not"),
        (game_config(), None, f"key 'threads.encryption_key_env': environment variable {KEY_ENV}"),
        (game_config(encrypted=False), None, "are encrypted and no key is configured"),
    ]
    for config, key, expected in cases:
        result = cli(
            "run", "dungeon", "--config", config, "--ledger", ledger, "--thread", "g1", "hi",
            env={KEY_ENV: key},
        )  # fmt: skip
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.stderr.startswith("error: ") and expected in flat(result.stderr)
        assert "f" * 32 not in result.output


def test_purge_by_thread_and_by_age_on_sqlite(cli, tmp_path, game_config):
    ledger = tmp_path / "game.db"
    play(cli, game_config(encrypted=False), str(ledger), key=None)
    assert TURNS["g2"][0].encode() in sqlite_bytes(ledger)  # unencrypted: the text is there
    before = listed(cli, str(ledger))
    assert {t["encrypted"] for t in before.values()} == {"no"}

    dry = purge(cli, str(ledger), "--thread", "g2", "--thread", "nope", "--dry-run")
    assert [t["thread_id"] for t in dry["purged"]] == ["g2"] and dry["not_found"] == ["nope"]
    assert listed(cli, str(ledger)) == before

    done = purge(cli, str(ledger), "--thread", "g2")
    assert [t["thread_id"] for t in done["purged"]] == ["g2"] and not done["dry_run"]
    assert set(listed(cli, str(ledger))) == {"g1"}
    assert TURNS["g2"][0].encode() not in sqlite_bytes(ledger)  # gone from the file too
    assert TURNS["g1"][0].encode() in sqlite_bytes(ledger)

    assert purge(cli, str(ledger), "--older-than", "30d")["purged"] == []  # g1 is recent
    play(cli, game_config(encrypted=False), str(ledger), turns={"g3": ["I wait"]}, key=None)
    times = {
        tid: datetime.fromisoformat(t["last_active"]) for tid, t in listed(cli, str(ledger)).items()
    }
    between = times["g1"] + (times["g3"] - times["g1"]) / 2
    aged = purge(cli, str(ledger), "--older-than", between.isoformat())
    assert [t["thread_id"] for t in aged["purged"]] == ["g1"]
    assert set(listed(cli, str(ledger))) == {"g3"}


def test_purge_says_which_threads_to_pick(cli, tmp_path):
    result = cli("threads", "purge", "--ledger", str(tmp_path / "x.db"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--older-than AGE (e.g. 30d) and/or --thread ID" in flat(result.stderr)


def test_threads_commands_never_create_a_database(cli, tmp_path):
    ledger = tmp_path / "none.db"
    for command in (["threads", "list"], ["threads", "purge", "--older-than", "1d"]):
        result = cli(*command, "--ledger", str(ledger))
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"no threads database at {tmp_path / 'none.threads.db'}" in flat(result.stderr)
    assert list(tmp_path.iterdir()) == [tmp_path / "cwd"]


def _postgres_rows(url: str, game: str) -> tuple[int, str]:
    """How many rows of ``game`` the three tables hold, and all their rows as text."""
    count, text = 0, []
    with psycopg.connect(url) as conn:
        for table in TABLES:
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            text.append(repr(rows))
            sql = f"SELECT count(*) FROM {table} WHERE thread_id = %s"
            count += conn.execute(sql, (game,)).fetchone()[0]
    return count, "\n".join(text)


def test_encrypted_threads_and_purge_on_postgres(cli, game_config):
    with fresh_schema_url("spendgraph_threads") as url:
        answers = play(cli, game_config(), url)
        conversations = stored_conversations(url, answers)
        count, stored = _postgres_rows(url, "g2")
        assert count > 0
        for messages in conversations.values():
            for text in messages:
                assert text not in stored
        threads = listed(cli, url)
        assert set(threads) == {"g1", "g2"} and {t["encrypted"] for t in threads.values()} == {
            "yes"
        }
        done = purge(cli, url, "--thread", "g2")
        assert [t["thread_id"] for t in done["purged"]] == ["g2"]
        assert _postgres_rows(url, "g2")[0] == 0 and _postgres_rows(url, "g1")[0] > 0
        assert set(listed(cli, url)) == {"g1"}
