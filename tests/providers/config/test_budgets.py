"""``[[budgets]]``: scoped budgets declared in the config, one clear error per bad entry."""

from __future__ import annotations

from decimal import Decimal

import pytest
from config_samples import ENDPOINT

from spendgraph.providers.budgets import BudgetLimit, Period, ScopeKind
from spendgraph.providers.config import parse_config
from spendgraph.providers.errors import ConfigError


def test_budgets_become_limits():
    text = ENDPOINT + (
        '[[budgets]]\nscope = "user"\nperiod = "day"\nusd = 5\n'
        '[[budgets]]\nscope = "app"\nperiod = "month"\ntokens = 1000000\nid = "shop"\n'
        '[[budgets]]\nscope = "query"\nusd = 0.25\n'
    )
    config = parse_config(text, env={})
    assert [b.limit() for b in config.budgets] == [
        BudgetLimit(ScopeKind.USER, Period.DAY, usd=Decimal(5)),
        BudgetLimit(ScopeKind.APP, Period.MONTH, tokens=1_000_000, id="shop"),
        BudgetLimit(ScopeKind.QUERY, Period.QUERY, usd=Decimal("0.25")),
    ]


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ('scope = "user"\nusd = 5', "budgets[0]", 'needs period = "day" or "month"'),
        ('scope = "team"\nperiod = "day"\nusd = 5', "budgets[0].scope", "'tenant'"),
        ('scope = "user"\nperiod = "week"\nusd = 5', "budgets[0].period", '"week"'),
        ('scope = "user"\nperiod = "day"\nusd = -1', "budgets[0].usd", "> 0"),
        ('scope = "user"\nperiod = "day"\nusd = "5"', "budgets[0].usd", 'string "5"'),
        ('scope = "user"\nperiod = "day"', "budgets[0]", "usd and/or tokens"),
        ('scope = "query"\nperiod = "day"\nusd = 1', "budgets[0]", "no calendar period"),
        ('scope = "query"\nid = "x"\nusd = 1', "budgets[0]", "takes no id"),
        ('scope = "user"\nperiod = "day"\nusd = 1\nlimit = 2', "budgets[0].limit", ""),
    ],
)
def test_a_bad_budget_names_file_key_and_value(entry, key, message):
    with pytest.raises(ConfigError) as error:
        parse_config(ENDPOINT + f"[[budgets]]\n{entry}\n", source="spend.toml", env={})
    text = str(error.value)
    assert "spend.toml" in text and f"key {key!r}" in text and message in text
